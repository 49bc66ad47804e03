"""SODA_c (fujiso/SODA v1.1) exactly as PDVC reports it (`densevid_eval3/eval_soda.py`).

Per reference file R separately (PDVC runs SODA once per file, `multi_reference=False`):
  * videos = those of R that have a `results` entry (unpredicted ones are ignored, not 0);
  * predictions: ALL of the video's entries (no 1000 cap), stably sorted by start time;
    references: R's segments stably sorted by start time;
  * captions: `remove_nonascii` + PTB tokenization, per file one document of the predicted
    and one of the reference sentences in that order (videos sorted by id; SODA uses a
    `set` order), each line in its look-ahead context (`ptb_tokenize_documents`);
  * S[g, p] = METEOR segment score with the *reference* sentence g as hypothesis and the
    predicted sentence p as reference (SODA calls `Meteor.compute_score(res, gt)`, arguments
    swapped); U[g, p] = tIoU; X = U * S;
  * F = maximum total X of an order-preserving one-to-one matching, by the DP
    dp[i, j] = max(dp[i-1, j], dp[i, j-1], dp[i-1, j-1] + X[i, j]) (`soda_dp`);
    precision = F / #pred, recall = F / #gt, f1 = 2PR / (P + R) (0 if both are 0);
  * mean over the videos of P, R, f1.
Then P, R, f1 are averaged over the reference files; SODA_c = that f1 (x100 here).

Differences from the reference code, none changing a number it can produce: the DP is an
iterative row sweep (the original recursion hits Python's recursion limit at ~1000
proposals); METEOR is only computed where tIoU > 0 (elsewhere X = 0 whatever S is); a predicted
video with an empty list scores P = R = f1 = 0 (the original crashes in the METEOR jar).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from captioner_jax.evaluation.dense_captioning import soda_video_order
from captioner_jax.evaluation.meteor import MeteorProcess, get_meteor
from captioner_jax.evaluation.submission import ReferenceVideo, Submission
from captioner_jax.evaluation.text import ptb_tokenize_documents, remove_nonascii
from captioner_jax.evaluation.tiou import tiou_matrix


def soda_dp(x: np.ndarray) -> float:
    """Best order-preserving one-to-one matching score of a non-negative matrix [G, P].

    Row sweep of the SODA recurrence: with a[j] = max(dp[i-1, j], dp[i-1, j-1] + x[i, j])
    (dp[-1, :] = dp[:, -1] = 0), dp[i, :] = running maximum of a. O(G * P), no recursion.
    """
    x = np.asarray(x, np.float64)
    if x.size == 0:
        return 0.0
    prev = np.zeros(x.shape[1] + 1)
    for row in x:
        a = np.maximum(prev[1:], prev[:-1] + row)
        prev = np.concatenate([[0.0], np.maximum.accumulate(a)])
    return float(prev[-1])


def _sorted_by_start(stamps: np.ndarray) -> np.ndarray:
    return np.argsort(stamps[:, 0], kind="stable") if len(stamps) else np.zeros(0, np.int64)


def soda_c_per_file(
    sub: Submission, files: Sequence[dict[str, ReferenceVideo]],
    meteor: MeteorProcess | None = None, hash_seed: int | None = None,
) -> dict:
    """PDVC's SODA_c over reference files; returns x100 "SODA_c" (f1), precision, recall.

    hash_seed: videos in the order of a SODA run with that PYTHONHASHSEED (look-ahead at
    video boundaries, `soda_video_order`); None: sorted ids.
    """
    jobs = []  # (file, iou [G, P], gt line positions [G], pred line positions [P])
    docs: list[list[str]] = []  # per file: predictions document, then references document
    for f, ref in enumerate(files):
        pred_doc: list[str] = []
        gt_doc: list[str] = []
        for vid in soda_video_order(list(ref), list(sub.videos), hash_seed):
            preds = sub.videos[vid]
            g_order = _sorted_by_start(ref[vid].timestamps)
            p_order = _sorted_by_start(preds.timestamps)
            gt_pos = np.arange(len(gt_doc), len(gt_doc) + len(g_order))
            pr_pos = np.arange(len(pred_doc), len(pred_doc) + len(p_order))
            gt_doc.extend(remove_nonascii(ref[vid].sentences[i]) for i in g_order)
            pred_doc.extend(remove_nonascii(preds.sentences[i]) for i in p_order)
            iou = tiou_matrix(preds.timestamps[p_order], ref[vid].timestamps[g_order]).T
            jobs.append((f, iou, gt_pos, pr_pos))
        docs += [pred_doc, gt_doc]
    # SODA tokenizes, per run (one reference file in PDVC), all predictions as one document
    # and all references as another, videos in turn: same line contexts here.
    tokens = ptb_tokenize_documents(docs)
    # METEOR for every distinct (gt tokens, pred tokens) pair that overlaps somewhere, once.
    pair_index: dict[tuple[str, str], int] = {}
    job_keys = []
    for f, iou, g, p in jobs:
        gi, pi = np.nonzero(iou > 0)
        keys = [(tokens[2 * f + 1][a], tokens[2 * f][b])
                for a, b in zip(g[gi].tolist(), p[pi].tolist())]
        for key in keys:
            pair_index.setdefault(key, len(pair_index))
        job_keys.append((gi, pi, keys))
    scores = np.zeros(0)
    if pair_index:
        meteor = meteor or get_meteor()
        keys = list(pair_index)
        scores = meteor.pair_scores([a for a, _ in keys], [[b] for _, b in keys])
    per_file: list[list[tuple[float, float, float]]] = [[] for _ in files]
    for (f, iou, _, _), (gi, pi, keys) in zip(jobs, job_keys):
        if iou.shape[1] == 0:
            per_file[f].append((0.0, 0.0, 0.0))
            continue
        s = np.zeros_like(iou)
        if len(gi):
            s[gi, pi] = scores[[pair_index[key] for key in keys]]
        best = soda_dp(iou * s)
        prec, rec = best / iou.shape[1], best / iou.shape[0]
        f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
        per_file[f].append((prec, rec, f1))
    file_means = [np.mean(v, axis=0) for v in per_file if v]
    if not file_means:
        return {"SODA_c": 0.0, "SODA_c_precision": 0.0, "SODA_c_recall": 0.0}
    # PDVC averages the per-file [P, R, F1]; a file without any predicted video would give
    # NaN there (mean of nothing) — we leave such a file out instead.
    avg = np.mean(file_means, axis=0)
    return {"SODA_c": 100.0 * float(avg[2]), "SODA_c_precision": 100.0 * float(avg[0]),
            "SODA_c_recall": 100.0 * float(avg[1])}
