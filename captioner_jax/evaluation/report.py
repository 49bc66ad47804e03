"""Human-readable tables and atomic JSON output for evaluation results (path layer:
local or `gs://`)."""
from __future__ import annotations

import os
import tempfile

from captioner_jax.evaluation.dense_captioning import CAPTION_METRICS
from data_prep.infra import atomic_files, paths

TABLE_METRICS = (*CAPTION_METRICS, "Recall", "Precision")
# Printed in every table header: which official script the numbers equal.
VERSION_NOTES = {
    "2018": "densevid_eval deba7d7 = PDVC evaluate2018.py, what PDVC and most papers report",
    "latest": "densevid_eval 9d4045a = PDVC evaluate2021.py, the official repository's HEAD",
}


def format_table(result: dict) -> str:
    """One row per tIoU threshold and one for the average; values x100, 4 decimals."""
    names = [m for m in TABLE_METRICS if m in result]
    width = max(9, *(len(m) for m in names))
    head = f"{'tIoU':>8} | " + " | ".join(f"{m:>{width}}" for m in names)
    mode = result.get("input_mode", "strict")
    lines = [f"dense captioning, evaluator version {result.get('version', '?')} "
             f"({VERSION_NOTES.get(result.get('version'), 'unknown version')})"
             f"{'' if mode == 'strict' else f', inputs {mode}'}: "
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
    for kind, info in (result.get("input_notes") or {}).items():
        lines.append(f"warning: {info['count']} x {kind.replace('_', ' ')} (scored as the "
                     f"official script scores them), first: {info['first']}")
    if result.get("num_dropped_entries"):
        lines.append(f"warning: {result['num_dropped_entries']} bad entries dropped")
    return "\n".join(lines)


def jsonable(result: dict) -> dict:
    """Result with string keys (per-tIoU thresholds) so it round-trips through JSON."""
    out = dict(result)
    if "per_tiou" in out:
        out["per_tiou"] = {f"{float(k):g}": v for k, v in out["per_tiou"].items()}
    return out


def check_writable(path: str) -> None:
    """Fails now, with an OSError naming `path`, when the atomic write of `path` would fail
    later (so an unwritable `--json` is reported before minutes of computing): the folder
    is created and a temporary file is made in it and removed, as the atomic write does.
    Object stores (`gs://`) check permissions only at the write itself."""
    if paths.is_dir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a folder")
    folder = os.path.dirname(paths.absolute(path)) or "."
    try:
        paths.make_dirs(folder)
        if paths.is_local(path):
            fd, probe = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                         dir=folder)
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise OSError(f"cannot write {path}: {e.strerror or e}") from e


def write_json_atomic(path: str, result: dict) -> None:
    """Writes `result` as JSON, atomically (local or `gs://`; never a partial file)."""
    atomic_files.atomic_write_json(path, jsonable(result), indent=2, sort_keys=True)
