"""Validation metrics of SA-TSP pretraining, on host numpy arrays (accumulated over batches).

- action accuracy: top-1 over foreground clips (label != IGNORE_INDEX), as TSP's validation.
- region accuracy: top-1 over all clips.
- concept mAP: mean over concepts with at least one positive of the average precision
  (mean of precision@k over the ranks k of the positives, ties broken by input order).
- concept micro F1 / precision / recall at a sigmoid threshold.
Padding clips (valid == False) are excluded everywhere.
"""
from __future__ import annotations

import numpy as np

from data_prep.labels.types import IGNORE_INDEX


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """AP of one class. scores, targets [N]; NaN when the class has no positive."""
    targets = np.asarray(targets) > 0
    if not targets.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    hits = targets[order]
    precision_at_k = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at_k[hits].mean())


def concept_map(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean AP over the concepts that have positives. scores/targets [N, C]."""
    aps = [average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1])]
    aps = [a for a in aps if not np.isnan(a)]
    return float(np.mean(aps)) if aps else float("nan")


def micro_f1(probs: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    pred = probs >= threshold
    gt = targets > 0
    tp = float(np.sum(pred & gt))
    precision = tp / max(float(pred.sum()), 1.0)
    recall = tp / max(float(gt.sum()), 1.0)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"concept_precision": precision, "concept_recall": recall, "concept_f1": f1}


class MetricAccumulator:
    """Collects per-batch outputs and labels; `result()` gives the metric dict."""

    def __init__(self, concept_threshold: float = 0.5):
        self.threshold = concept_threshold
        self.parts: dict[str, list[np.ndarray]] = {}

    def add(self, outputs: dict[str, np.ndarray], batch: dict[str, np.ndarray]) -> None:
        valid = np.asarray(batch.get("valid", np.ones(len(batch["region_label"]), bool)), bool)
        items = {"action_label": batch["action_label"], "region_label": batch["region_label"]}
        if "concepts" in batch:
            items["concepts"] = batch["concepts"]
        for key in ("action_logits", "region_logits", "concept_logits"):
            if key in outputs:
                items[key] = outputs[key]
        for key, value in items.items():
            self.parts.setdefault(key, []).append(np.asarray(value)[valid])

    def result(self) -> dict[str, float]:
        data = {k: np.concatenate(v) for k, v in self.parts.items()}
        out: dict[str, float] = {"num_clips": float(len(data.get("region_label", [])))}
        if "action_logits" in data:
            fg = data["action_label"] != IGNORE_INDEX
            pred = data["action_logits"].argmax(-1)
            out["action_accuracy"] = (float(np.mean(pred[fg] == data["action_label"][fg]))
                                      if fg.any() else float("nan"))
        if "region_logits" in data:
            out["region_accuracy"] = float(
                np.mean(data["region_logits"].argmax(-1) == data["region_label"]))
        if "concept_logits" in data and "concepts" in data:
            probs = 1.0 / (1.0 + np.exp(-data["concept_logits"].astype(np.float64)))
            out["concept_map"] = concept_map(probs, data["concepts"])
            out.update(micro_f1(probs, data["concepts"], self.threshold))
        accs = [out[k] for k in ("action_accuracy", "region_accuracy") if k in out]
        # TSP picks the best epoch by the mean of the heads' accuracies.
        out["mean_accuracy"] = float(np.nanmean(accs)) if accs else float("nan")
        return out
