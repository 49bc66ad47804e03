"""Slow path: the official evaluator's structure, with pycocoevalcap's own scorers.

This mirrors densevid_eval `evaluate_tiou` / `evaluate_detection` step by step — per
threshold build the pair dictionaries, tokenize them with pycocoevalcap's `PTBTokenizer`
(once per scorer, as the official code does), then call each scorer once per video — so it
costs what the official script costs. It exists to check the fast path (tests) and to
measure the speed-up (benchmarks/evaluate_speed.py); use `evaluate_submission` otherwise.

For the "latest" version the garbage string is drawn per unmatched proposal, as officially,
but from a seeded generator.
"""
from __future__ import annotations

import contextlib
import io
import random
import string
from collections.abc import Sequence

import numpy as np

from captioner_jax.evaluation.dense_captioning import CAPTION_METRICS, DEFAULT_TIOUS, GARBAGE_2018
from captioner_jax.evaluation.submission import ReferenceVideo, Submission
from captioner_jax.evaluation.text import remove_nonascii
from captioner_jax.evaluation.tiou import tiou


def _garbage_fn(version: str, seed: int):
    if version == "2018":
        return lambda: GARBAGE_2018
    rng = random.Random(seed)
    return lambda: "".join(
        rng.choice(string.ascii_lowercase) for _ in range(rng.randint(10, 20)))


def slow_score_captions(
    sub: Submission, files: Sequence[dict[str, ReferenceVideo]], *, version: str = "2018",
    tious: Sequence[float] = DEFAULT_TIOUS, max_proposals: int = 1000, seed: int = 0,
    coco_meteor=None,
) -> dict:
    """Same output layout as `dense_captioning.score_captions`.

    coco_meteor: an existing pycocoevalcap `Meteor()` to reuse (tests share one); by default
    a new one is started, as the official script does.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    garbage = _garbage_fn(version, seed)
    tokenizer = PTBTokenizer()
    scorers = [(Bleu(4), ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"]),
               (coco_meteor or Meteor(), "METEOR"), (Rouge(), "ROUGE_L"), (Cider(), "CIDEr")]
    gt_vids = sorted(set().union(*[f.keys() for f in files]))
    preds = {v: p.capped(max_proposals) for v, p in sub.videos.items()}
    out: dict = {"per_tiou": {}}
    for thr in tious:
        row = {}
        cur_res, cur_gts, vid2capid, idx = {}, {}, {}, 0
        for vid in gt_vids:
            vid2capid[vid] = []
            if vid not in preds:
                continue
            p = preds[vid]
            for sentence, ts in zip(p.sentences, p.timestamps.tolist()):
                added = False
                for f in files:
                    if vid not in f:
                        continue
                    for j, gts in enumerate(f[vid].timestamps.tolist()):
                        if tiou(ts, gts) >= thr:
                            cur_res[idx] = [{"caption": remove_nonascii(sentence)}]
                            cur_gts[idx] = [{"caption": remove_nonascii(f[vid].sentences[j])}]
                            vid2capid[vid].append(idx)
                            idx += 1
                            added = True
                if not added:
                    cur_res[idx] = [{"caption": remove_nonascii(sentence)}]
                    cur_gts[idx] = [{"caption": garbage()}]
                    vid2capid[vid].append(idx)
                    idx += 1
        for scorer, method in scorers:
            if cur_res:
                tok_res = tokenizer.tokenize(cur_res)
                tok_gts = tokenizer.tokenize(cur_gts)
            scores = []
            for vid in gt_vids:
                ids = vid2capid[vid]
                if not ids:
                    scores.append([0.0] * len(method) if isinstance(method, list) else 0.0)
                    continue
                res = {i: tok_res[i] for i in ids}
                gts = {i: tok_gts[i] for i in ids}
                with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints per call
                    score, _ = scorer.compute_score(gts, res)
                scores.append(score)
            mean = np.mean(scores, axis=0) if scores else np.zeros(
                len(method) if isinstance(method, list) else ())
            if isinstance(method, list):
                for m, name in enumerate(method):
                    row[name] = 100.0 * float(mean[m])
            else:
                row[method] = 100.0 * float(mean)
        precision, recall = [], []
        for vid in gt_vids:
            best_p = best_r = 0.0
            for f in files:
                if vid not in f:
                    continue
                refs = f[vid].timestamps.tolist()
                covered_gt, covered_pred = set(), set()
                if vid in preds:
                    stamps = preds[vid].timestamps.tolist()
                    for i, ts in enumerate(stamps):
                        for j, gts in enumerate(refs):
                            if tiou(ts, gts) > thr:
                                covered_gt.add(j)
                                covered_pred.add(i)
                    if stamps:
                        best_p = max(best_p, len(covered_pred) / len(stamps))
                if refs:
                    best_r = max(best_r, len(covered_gt) / len(refs))
            precision.append(best_p)
            recall.append(best_r)
        row["Recall"] = 100.0 * float(np.mean(recall)) if recall else 0.0
        row["Precision"] = 100.0 * float(np.mean(precision)) if precision else 0.0
        out["per_tiou"][float(thr)] = row
    for m in (*CAPTION_METRICS, "Recall", "Precision"):
        out[m] = float(np.mean([out["per_tiou"][float(t)][m] for t in tious]))
    return out
