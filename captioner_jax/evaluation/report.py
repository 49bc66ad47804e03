"""Human-readable tables and atomic JSON output for evaluation results."""
from __future__ import annotations

import json
import os
import tempfile

from captioner_jax.evaluation.dense_captioning import CAPTION_METRICS

TABLE_METRICS = (*CAPTION_METRICS, "Recall", "Precision")


def format_table(result: dict) -> str:
    """One row per tIoU threshold and one for the average; values x100, 4 decimals."""
    names = [m for m in TABLE_METRICS if m in result]
    width = max(9, *(len(m) for m in names))
    head = f"{'tIoU':>8} | " + " | ".join(f"{m:>{width}}" for m in names)
    lines = [f"dense captioning, evaluator version {result.get('version', '?')}: "
             f"{result.get('num_videos', '?')} reference videos, "
             f"{result.get('num_predicted_videos', '?')} predicted", head, "-" * len(head)]
    for thr, row in result.get("per_tiou", {}).items():
        lines.append(f"{thr:>8.2f} | " + " | ".join(f"{row[m]:>{width}.4f}" for m in names))
    lines.append("-" * len(head))
    lines.append(f"{'average':>8} | " + " | ".join(f"{result[m]:>{width}.4f}" for m in names))
    extra = [(k, v) for k, v in result.items()
             if (k.startswith("SODA_c") or k.startswith("para_")) and isinstance(v, float)]
    for k, v in extra:
        lines.append(f"| {k}: {v:2.4f}")
    return "\n".join(lines)


def jsonable(result: dict) -> dict:
    """Result with string keys (per-tIoU thresholds) so it round-trips through JSON."""
    out = dict(result)
    if "per_tiou" in out:
        out["per_tiou"] = {f"{float(k):g}": v for k, v in out["per_tiou"].items()}
    return out


def write_json_atomic(path: str, result: dict) -> None:
    """Writes `result` as JSON via a temporary file + os.replace (never a partial file)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(jsonable(result), f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
