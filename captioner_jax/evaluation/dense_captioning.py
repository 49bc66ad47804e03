"""Fast path of the official dense-captioning metrics (densevid_eval "2018" and latest).

Same numbers as `evaluate2018.py` / `evaluate2021.py` (see docs/evaluation.md §2-3),
computed differently:
  * the captions are tokenized in ONE PTBTokenizer call (`ptb_tokenize_documents`), instead
    of two calls per scorer per threshold, but each line in exactly the context the official
    calls give it (the lexer looks ahead across lines): per threshold one document of
    prediction lines and one of reference lines, one line per pair in the official order
    (videos, then predictions in file order, then reference files and segments), so a
    prediction matched to k segments is k lines in a row; each distinct context once, and
    reference-line contexts remembered across evaluations (`token_cache`, on disk, keyed by
    the references' content and the tokenizer version);
  * every distinct (hypothesis, reference) token pair is scored once for all thresholds:
    BLEU statistics and ROUGE-L vectorized in numpy, METEOR statistics in pipelined
    requests to long-lived jars (one per core for big evaluations, `meteor.MeteorPool`);
    per (video, threshold) the BLEU statistics are summed,
    ROUGE-L averaged, and METEOR aggregated by the jar (`EVAL` of the group's statistics,
    summed beforehand as the jar sums them, see `meteor.group_stats`), exactly as the official
    scorers do per video;
  * CIDEr-D depends on each video's own pair references, so it is computed per
    (video, threshold) group, all groups at once (`grouped_cider`).

"latest" garbage reference: the official script draws an unseeded random lowercase string of
10-20 letters per unmatched proposal; we draw one such string per evaluation from a seeded
generator. A random string never matches, so every metric is unchanged (the slow path, which
draws one per pair, checks this in tests), and as a tokenizer line it is one lower-case word
like any other garbage string, so it gives the preceding line the same look-ahead.
"""
from __future__ import annotations

import json
import logging
import os
import random
import string
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from captioner_jax.evaluation import token_cache
from captioner_jax.evaluation.bleu import bleu_pair_stats, grouped_bleu
from captioner_jax.evaluation.cider import grouped_cider
from captioner_jax.evaluation.meteor import MeteorProcess, get_meteor
from captioner_jax.evaluation.ngrams import NgramTable
from captioner_jax.evaluation.rouge import rouge_l_text_pairs
from captioner_jax.evaluation.submission import ReferenceVideo, Submission, SubmissionError
from captioner_jax.evaluation.text import ptb_tokenize_documents, remove_nonascii
from captioner_jax.evaluation.tiou import caption_pairs, densevid_tiou_matrix, precision_recall

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


# Child-interpreter programs that rebuild the official scripts' video sets the way they
# build them and print the iteration order (stdin: JSON arguments).
_DENSEVID_ORDER = """
import json, sys
vid_ids = set([])
for keys in json.load(sys.stdin):
    vid_ids |= set(keys)
json.dump(list(vid_ids), sys.stdout)
"""
_SODA_ORDER = """
import json, sys
gold, pred = json.load(sys.stdin)
gt_vids = set()
gt_vids.update(gold)
json.dump(list(set(gt_vids) & set(pred)), sys.stdout)
"""


def python_set_order(program: str, argument, hash_seed: int) -> list[str]:
    """Runs `program` (reads JSON `argument` on stdin, prints a JSON list) in a child Python
    with PYTHONHASHSEED=hash_seed: the iteration order of a set of strings built there."""
    if not 0 <= hash_seed <= 4294967295:
        raise ValueError(f"hash_seed must be in [0, 4294967295] (PYTHONHASHSEED), got {hash_seed}")
    proc = subprocess.run(
        [sys.executable, "-c", program], input=json.dumps(argument),
        capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONHASHSEED": str(hash_seed)})
    if proc.returncode != 0:
        raise RuntimeError(f"computing the official video order failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def official_video_order(key_lists: Sequence[Sequence[str]], hash_seed: int | None) -> list[str]:
    """The order in which the official script visits the reference videos.

    key_lists: each reference file's video ids in file order. The official script iterates
    `set().union(...)` built as its `get_gt_vid_ids` builds it, an order that depends on
    PYTHONHASHSEED (string hashing). It matters only through the tokenizer's look-ahead at
    the line where one video's pairs end and the next one's begin. hash_seed None: sorted
    ids (deterministic; equals the official run of whichever seed happens to give that
    order). An integer: the order of an official run under `PYTHONHASHSEED=hash_seed` with
    this Python (same string hash), computed in a child interpreter with that seed.
    """
    if hash_seed is None:
        return sorted(set().union(*map(set, key_lists)))
    return python_set_order(_DENSEVID_ORDER, [list(k) for k in key_lists], hash_seed)


def soda_video_order(reference_ids: Sequence[str], predicted_ids: Sequence[str],
                     hash_seed: int | None) -> list[str]:
    """fujiso/SODA's video order for one run (one reference file in PDVC's SODA_c):
    `list(set(reference ids) & set(predicted ids))`; None: sorted."""
    if hash_seed is None:
        return sorted(set(reference_ids) & set(predicted_ids))
    return python_set_order(_SODA_ORDER, [list(reference_ids), list(predicted_ids)], hash_seed)


_PY2_WHITESPACE = frozenset(" \t\n\r\x0b\x0c")


def python2_split_text(text: str) -> str:
    """`text` with every character Python 3's `str.split()` splits on but Python 2's
    `bytes.split()` does not (U+00A0 in PTB output, U+001C-U+001F, ...) replaced by a
    distinct non-space character (Supplementary Private Use Area), so that `.split()` gives
    Python 2's tokens: the same tokens equal, the same counts."""
    if text.isascii() and not any("\x1c" <= c <= "\x1f" for c in text):
        return text
    return "".join(chr(0xF0000 + ord(c)) if c.isspace() and c not in _PY2_WHITESPACE else c
                   for c in text)


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
        try:
            ious = densevid_tiou_matrix(preds.timestamps, gt_ts)
        except ZeroDivisionError as e:
            raise SubmissionError(f"{sub.source}: video {vid!r}: {e}") from e
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


def _tokenize_like_official(
    pairs: _Pairs, texts: list[str], num_v: int, num_t: int,
    cache: tuple[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """Tokens of every pair instance's hypothesis and reference, [I] each.

    The official script tokenizes, per threshold, the hypotheses of all pairs as one
    document and their references as another, one line per pair in pair order; `_collect`
    appends instances video by video, so the instances of threshold t in array order are
    exactly that order (videos in `official_video_order`).
    cache: (cache_dir, references digest): reference-line contexts remembered by earlier
    evaluations are not tokenized again, new ones are remembered (`token_cache`).
    """
    thr_of = pairs.group // max(num_v, 1)
    per_thr = [np.flatnonzero(thr_of == t) for t in range(num_t)]
    docs = [[texts[s] for s in pairs.hyp[idx].tolist()] for idx in per_thr]
    docs += [[texts[s] for s in pairs.ref[idx].tolist()] for idx in per_thr]
    if cache is None:
        tokens = ptb_tokenize_documents(docs)
    else:
        known = token_cache.load(*cache)
        tokens, contexts = ptb_tokenize_documents(
            docs, known=known, collect=range(num_t, 2 * num_t))
        log.info("reference-token cache: %d of %d reference contexts remembered",
                 sum(1 for k in contexts if k in known), len(contexts))
        token_cache.store(*cache, known, contexts)
    hyp_tokens: list[str] = [""] * len(pairs.group)
    ref_tokens: list[str] = [""] * len(pairs.group)
    for t, idx in enumerate(per_thr):
        for i, h, r in zip(idx.tolist(), tokens[t], tokens[num_t + t]):
            hyp_tokens[i], ref_tokens[i] = h, r
    return hyp_tokens, ref_tokens


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
    meteor: MeteorProcess | None = None, hash_seed: int | None = None,
    video_order: Sequence[str] | None = None, cache_dir: str | None = None,
    python2_split: bool = False,
) -> dict:
    """Official caption metrics and precision/recall, per threshold and averaged (x100).

    hash_seed: visit the videos in the order of an official run with this PYTHONHASHSEED
    (`official_video_order`); None: sorted ids.
    video_order: visit the videos in exactly this order instead (every reference video once,
      e.g. the order a Python 2 run of densevid_eval's `evaluate.py` visits them in).
    cache_dir: remember the tokens of reference lines there across evaluations
      (`token_cache`; same numbers); None: no cache.
    python2_split: BLEU and CIDEr-D split tokens as the original Python 2 densevid_eval +
      coco-caption do (`str.split()` of bytes: ASCII whitespace only) instead of as the
      Python 3 ports (PDVC `evaluate2018.py`, pycocoevalcap 1.2; the default, which the
      golden tests pin). They differ only where a PTB token holds a no-break space
      (U+00A0: the jar joins "925 606 0946" or "7 1/2" into one token): Python 3 splits it.
    Returns {"per_tiou": {t: {metric: value}}, metric: mean over thresholds, ...,
    "num_videos": V, "num_predicted_videos": ...}.
    """
    if video_order is not None:
        gt_vids = list(video_order)
        expected = set().union(*[f.keys() for f in files])
        if len(gt_vids) != len(expected) or set(gt_vids) != expected:
            raise ValueError(
                f"video_order must list every reference video exactly once: "
                f"{len(gt_vids)} ids ({len(set(gt_vids))} distinct) for {len(expected)} "
                f"reference videos, e.g. missing {sorted(expected - set(gt_vids))[:3]}, "
                f"unknown {sorted(set(gt_vids) - expected)[:3]}")
    else:
        gt_vids = official_video_order([list(f) for f in files], hash_seed)
    num_v, num_t = len(gt_vids), len(tious)
    pairs, texts, precision, recall = _collect(
        gt_vids, files, sub, tious, max_proposals, garbage_reference(version))
    per_video = np.zeros((num_t * num_v, len(CAPTION_METRICS)))
    log.info("%d caption pairs over %d videos x %d tIoUs, %d distinct sentences",
             len(pairs.group), num_v, num_t, len(texts))
    if len(pairs.group):
        start = time.perf_counter()
        cache = None
        if cache_dir is not None:
            cache = (cache_dir, token_cache.references_digest(
                [{v: [remove_nonascii(x) for x in r.sentences] for v, r in f.items()}
                 for f in files]))
        hyp_tokens, ref_tokens = _tokenize_like_official(pairs, texts, num_v, num_t, cache)
        log.info("PTB-tokenized %d pair lines in %.1f s", 2 * len(pairs.group),
                 time.perf_counter() - start)
        tok_index: dict[str, int] = {}
        hyp_t = np.asarray([tok_index.setdefault(t, len(tok_index)) for t in hyp_tokens],
                           np.int64)
        ref_t = np.asarray([tok_index.setdefault(t, len(tok_index)) for t in ref_tokens],
                           np.int64)
        tok_texts = list(tok_index)
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
            table = NgramTable.build(
                [python2_split_text(t) for t in tok_texts] if python2_split else tok_texts)
            bleu_u = bleu_pair_stats(table, u_hyp, u_ref)
            rouge_u = rouge_l_text_pairs(tok_texts, u_hyp, u_ref)
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
