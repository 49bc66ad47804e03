"""Fast path of the official dense-captioning metrics (densevid_eval "2018" and latest).

Same numbers as `evaluate2018.py` / `evaluate2021.py` (see ../shared/docs/EVALUATION.md §2-3),
computed differently:
  * every distinct caption (predictions, references, the garbage string) is tokenized in ONE
    PTBTokenizer call, instead of two calls per scorer per threshold;
  * every distinct (hypothesis, reference) token pair is scored once for all thresholds:
    BLEU statistics and ROUGE-L vectorized in numpy, METEOR statistics in one pipelined
    request to one long-lived jar; per (video, threshold) the BLEU statistics are summed,
    ROUGE-L averaged, and METEOR aggregated by the jar (`EVAL` of the group's statistics,
    summed beforehand as the jar sums them, see `meteor.group_stats`), exactly as the official
    scorers do per video;
  * CIDEr-D depends on each video's own pair references, so it is computed per
    (video, threshold) group, all groups at once (`grouped_cider`).

"latest" garbage reference: the official script draws an unseeded random lowercase string of
10-20 letters per unmatched proposal; we draw one such string per evaluation from a seeded
generator. A random string never matches, so every metric is unchanged (the slow path, which
draws one per pair, checks this in tests).
"""
from __future__ import annotations

import logging
import random
import string
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from captioner_jax.evaluation.bleu import bleu_pair_stats, grouped_bleu
from captioner_jax.evaluation.cider import grouped_cider
from captioner_jax.evaluation.meteor import MeteorProcess, get_meteor
from captioner_jax.evaluation.ngrams import NgramTable
from captioner_jax.evaluation.rouge import rouge_l_scores
from captioner_jax.evaluation.submission import ReferenceVideo, Submission
from captioner_jax.evaluation.text import ptb_tokenize, remove_nonascii
from captioner_jax.evaluation.tiou import caption_pairs, precision_recall, tiou_matrix

log = logging.getLogger(__name__)

CAPTION_METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
DEFAULT_TIOUS = (0.3, 0.5, 0.7, 0.9)
GARBAGE_2018 = "abc123!@#"


def garbage_reference(version: str, seed: int = 0) -> str:
    """The reference an unmatched proposal is scored against ("2018" or "latest"/"2021")."""
    if version == "2018":
        return GARBAGE_2018
    if version in ("latest", "2021"):
        rng = random.Random(seed)
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(10, 20)))
    raise ValueError(f"unknown evaluator version {version!r}; use '2018' or 'latest'")


@dataclass
class _Pairs:
    """All (video, threshold) caption pairs as flat arrays over instances."""

    group: np.ndarray  # [I] group id = threshold_index * num_videos + video_index
    hyp: np.ndarray  # [I] sentence id (raw text id)
    ref: np.ndarray  # [I] sentence id


def _collect(
    gt_vids: Sequence[str], files: Sequence[dict[str, ReferenceVideo]], sub: Submission,
    tious: Sequence[float], max_proposals: int, garbage: str,
) -> tuple[_Pairs, list[str], np.ndarray, np.ndarray]:
    """Pairs, sentence texts, precision [T, V] and recall [T, V]."""
    texts: dict[str, int] = {}

    def sid(s: str) -> int:
        return texts.setdefault(s, len(texts))

    garbage_id = sid(garbage)
    num_v, num_t = len(gt_vids), len(tious)
    precision = np.zeros((num_t, num_v))
    recall = np.zeros((num_t, num_v))
    groups, hyps, refs = [], [], []
    for v, vid in enumerate(gt_vids):
        preds = sub.videos.get(vid)
        if preds is None:
            continue
        preds = preds.capped(max_proposals)
        ann = [(f, files[f][vid]) for f in range(len(files)) if vid in files[f]]
        gt_ts = np.concatenate([a.timestamps for _, a in ann])
        gt_file = np.concatenate([np.full(len(a.sentences), f) for f, a in ann])
        gt_sid = np.asarray(
            [sid(remove_nonascii(s)) for _, a in ann for s in a.sentences], np.int64)
        ious = tiou_matrix(preds.timestamps, gt_ts)
        for t, thr in enumerate(tious):
            precision[t, v], recall[t, v] = precision_recall(ious, gt_file, len(files), thr)
        if not preds.sentences:
            continue
        pred_sid = np.asarray([sid(remove_nonascii(s)) for s in preds.sentences], np.int64)
        for t, thr in enumerate(tious):
            p_idx, g_idx = caption_pairs(ious, thr)
            groups.append(np.full(len(p_idx), t * num_v + v, np.int64))
            hyps.append(pred_sid[p_idx])
            refs.append(np.where(g_idx >= 0, gt_sid[np.maximum(g_idx, 0)], garbage_id))
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros((0,), np.int64)
    return _Pairs(cat(groups), cat(hyps), cat(refs)), list(texts), precision, recall


def _meteor_per_group(
    meteor: MeteorProcess, hyps: list[str], refs: list[list[str]], inst_to_uniq: np.ndarray,
    group: np.ndarray, present: np.ndarray,
) -> np.ndarray:
    """Jar statistics of each distinct pair, then the jar's aggregate of each group's
    statistics (`MeteorProcess.aggregates`); returns it per group in `present` (sorted ids)."""
    stats_u = meteor.stats(hyps, refs)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], present, side="left")
    ends = np.r_[bounds[1:], len(order)]
    # A video's pair list is often the same at several thresholds: evaluate each list once.
    keys = [tuple(inst_to_uniq[order[b:e]].tolist()) for b, e in zip(bounds, ends)]
    distinct = list(dict.fromkeys(keys))
    aggregates = meteor.aggregates(stats_u, distinct)
    value = dict(zip(distinct, aggregates.tolist()))
    return np.asarray([value[key] for key in keys], np.float64)


def score_captions(
    sub: Submission, files: Sequence[dict[str, ReferenceVideo]], *, version: str = "2018",
    tious: Sequence[float] = DEFAULT_TIOUS, max_proposals: int = 1000,
    meteor: MeteorProcess | None = None,
) -> dict:
    """Official caption metrics and precision/recall, per threshold and averaged (x100).

    Returns {"per_tiou": {t: {metric: value}}, metric: mean over thresholds, ...,
    "num_videos": V, "num_predicted_videos": ...}.
    """
    gt_vids = sorted(set().union(*[f.keys() for f in files]))
    num_v, num_t = len(gt_vids), len(tious)
    pairs, texts, precision, recall = _collect(
        gt_vids, files, sub, tious, max_proposals, garbage_reference(version))
    per_video = np.zeros((num_t * num_v, len(CAPTION_METRICS)))
    log.info("%d caption pairs over %d videos x %d tIoUs, %d distinct sentences",
             len(pairs.group), num_v, num_t, len(texts))
    if len(pairs.group):
        start = time.perf_counter()
        tokens = ptb_tokenize(texts)
        log.info("PTB-tokenized %d sentences in %.1f s", len(texts), time.perf_counter() - start)
        tok_index: dict[str, int] = {}
        tok_of_sid = np.asarray([tok_index.setdefault(t, len(tok_index)) for t in tokens])
        tok_texts = list(tok_index)
        hyp_t, ref_t = tok_of_sid[pairs.hyp], tok_of_sid[pairs.ref]
        num_tok = len(tok_texts)
        uniq, inst_to_uniq = np.unique(hyp_t * num_tok + ref_t, return_inverse=True)
        u_hyp, u_ref = uniq // num_tok, uniq % num_tok
        meteor = meteor or get_meteor()
        present = np.unique(pairs.group)
        with ThreadPoolExecutor(max_workers=1) as pool:
            # The jar works in its own process: let it score while numpy does the rest.
            meteor_future = pool.submit(
                _meteor_per_group, meteor, [tok_texts[i] for i in u_hyp],
                [[tok_texts[i]] for i in u_ref], inst_to_uniq, pairs.group, present)
            table = NgramTable.build(tok_texts)
            bleu_u = bleu_pair_stats(table, u_hyp, u_ref)
            rouge_u = rouge_l_scores([tok_texts[i] for i in u_hyp],
                                     [[tok_texts[i]] for i in u_ref])
            cider_i = grouped_cider(table, hyp_t, ref_t, pairs.group, num_t * num_v)
            # Per group: BLEU from summed stats, ROUGE-L / CIDEr means, METEOR jar aggregate.
            per_video[:, :4] = grouped_bleu(bleu_u[inst_to_uniq], pairs.group, num_t * num_v)
            count = np.bincount(pairs.group, minlength=num_t * num_v)
            safe = np.maximum(count, 1)
            per_video[:, 5] = np.bincount(pairs.group, rouge_u[inst_to_uniq],
                                          num_t * num_v) / safe
            per_video[:, 6] = np.bincount(pairs.group, cider_i, num_t * num_v) / safe
            log.info("BLEU / ROUGE-L / CIDEr-D of %d distinct pairs done after %.1f s; "
                     "waiting for METEOR", len(uniq), time.perf_counter() - start)
            per_video[present, 4] = meteor_future.result()
            log.info("METEOR done after %.1f s", time.perf_counter() - start)
        per_video[count == 0] = 0.0
    per_video = per_video.reshape(num_t, num_v, len(CAPTION_METRICS))
    per_tiou_values = per_video.mean(axis=1) if num_v else np.zeros((num_t, 7))
    out: dict = {"per_tiou": {}}
    for t, thr in enumerate(tious):
        row = {m: 100.0 * float(per_tiou_values[t, i]) for i, m in enumerate(CAPTION_METRICS)}
        row["Recall"] = 100.0 * float(recall[t].mean()) if num_v else 0.0
        row["Precision"] = 100.0 * float(precision[t].mean()) if num_v else 0.0
        out["per_tiou"][float(thr)] = row
    for m in (*CAPTION_METRICS, "Recall", "Precision"):
        out[m] = float(np.mean([out["per_tiou"][float(t)][m] for t in tious]))
    out["num_videos"] = num_v
    out["num_predicted_videos"] = sum(1 for v in gt_vids if v in sub.videos)
    out["num_pairs"] = int(len(pairs.group))
    return out
