"""Temporal IoU, the official pairing rule, and detection precision / recall.

tIoU (densevid_eval `ANETcaptions.iou`, reproduced with its quirks):
    inter = max(0, min(e1, e2) - max(s1, s2))
    union = min(max(e1, e2) - min(s1, s2), (e1 - s1) + (e2 - s2))
    tiou  = inter / (union + 1e-8)
so identical segments give 1 - eps, an exact 0.5 overlap fails `>= 0.5`, reversed or
zero-length segments never overlap. No clipping to the video duration. Times in seconds.

`densevid_tiou_matrix` is that formula with the official script's Python semantics, for
the caption metrics and precision/recall: Python's `min(a, b)` / `max(a, b)` return `a`
unless `b` compares smaller / larger, so a NaN *prediction* bound is simply ignored in favour
of the reference bound (`[nan, 5]` against `[0, 10]` has tIoU 0.5, not NaN), and the sums are
evaluated left to right as written. For finite times it equals `tiou_matrix` up to the last
bit of the union's rounding. `tiou_matrix` (numpy min/max) stays what SODA uses.
"""
from __future__ import annotations

import numpy as np

_EPS = 1e-8


def tiou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """tIoU of every prediction with every reference segment.

    pred: [P, 2] (start, end) seconds; gt: [G, 2]. Returns [P, G] float64.
    """
    pred = np.asarray(pred, np.float64).reshape(-1, 2)
    gt = np.asarray(gt, np.float64).reshape(-1, 2)
    s1, e1 = pred[:, None, 0], pred[:, None, 1]
    s2, e2 = gt[None, :, 0], gt[None, :, 1]
    inter = np.maximum(0.0, np.minimum(e2, e1) - np.maximum(s2, s1))
    union = np.minimum(np.maximum(e2, e1) - np.minimum(s2, s1), (e2 - s2) + (e1 - s1))
    return inter / (union + _EPS)


def densevid_tiou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """tIoU as densevid_eval's `iou(prediction, reference)` computes it, NaN included.

    pred: [P, 2] (start, end) seconds (may hold NaN / inf); gt: [G, 2]. Returns [P, G].
    Python's min(x, y) is `y if y < x else x`; max(x, y) is `y if y > x else x`.
    """
    pred = np.asarray(pred, np.float64).reshape(-1, 2)
    gt = np.asarray(gt, np.float64).reshape(-1, 2)
    ps, pe = pred[:, None, 0], pred[:, None, 1]
    gs, ge = gt[None, :, 0], gt[None, :, 1]

    def py_min(x, y):
        return np.where(y < x, y, x)

    def py_max(x, y):
        return np.where(y > x, y, x)

    with np.errstate(invalid="ignore"):
        overlap = py_min(ge, pe) - py_max(gs, ps)
        inter = np.where(overlap > 0, overlap, 0.0)  # max(0, overlap); NaN -> 0
        union = py_min(py_max(ge, pe) - py_min(gs, ps), ge - gs + pe - ps)
        denominator = union + _EPS
    if np.any(denominator == 0):
        # Python raises ZeroDivisionError here; numpy would give inf/NaN silently.
        raise ZeroDivisionError("a tIoU union of exactly -1e-8 (the official script crashes)")
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / denominator


def tiou(a, b) -> float:
    """tIoU of prediction `a` with reference `b`, (start, end) each, as densevid_eval."""
    return float(densevid_tiou_matrix(np.asarray([a[:2]]), np.asarray([b[:2]]))[0, 0])


def caption_pairs(ious: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The official one-to-many pairing for one video at one threshold.

    ious: [P, G] tIoU of the (first max_proposals, file-order) predictions with the video's
      reference segments of all reference files concatenated in file order.
    Returns (pred_index [K], gt_index [K]) in the official order (prediction-major, then
    reference file, then segment); gt_index == -1 marks the garbage pair a prediction gets when
    it reaches `threshold` with no segment at all.
    """
    hit = ious >= threshold
    matched = hit.any(axis=1)
    p_idx, g_idx = np.nonzero(hit)
    garbage = np.flatnonzero(~matched)
    pred_index = np.concatenate([p_idx, garbage])
    gt_index = np.concatenate([g_idx, np.full(len(garbage), -1, np.int64)])
    order = np.lexsort((np.arange(len(pred_index)), pred_index))
    return pred_index[order].astype(np.int64), gt_index[order].astype(np.int64)


def precision_recall(
    ious: np.ndarray, file_of_gt: np.ndarray, num_files: int, threshold: float
) -> tuple[float, float]:
    """densevid_eval `evaluate_detection` for one video at one threshold (strict `>`).

    For each reference file R containing the video: precision_R = fraction of predictions
    with some segment of R at tIoU > threshold, recall_R = fraction of R's segments with some
    prediction at tIoU > threshold; the best precision and best recall over files are taken
    independently. ious: [P, G] (P may be 0 -> both 0); file_of_gt: [G] file index per segment.
    """
    best_p = best_r = 0.0
    hit = ious > threshold
    for f in range(num_files):
        cols = file_of_gt == f
        n_gt = int(cols.sum())
        if n_gt == 0:
            continue
        sub = hit[:, cols]
        if sub.shape[0] > 0:
            best_p = max(best_p, float(sub.any(axis=1).sum()) / sub.shape[0])
        best_r = max(best_r, float(sub.any(axis=0).sum()) / n_gt)
    return best_p, best_r
