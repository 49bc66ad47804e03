"""Metrics a user can plot: JSON lines (always) and TensorBoard scalars (when available).

One line per `write()`: `{"step": 10, "split": "train", "time": 1732890000.1, "loss": 1.2}`.
The file is appended to, so a resumed run continues the same curve.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time

import numpy as np


def _to_float(value) -> float:
    value = float(np.asarray(value))
    return value if math.isfinite(value) else float("nan")


class MetricWriter:
    """Appends metrics to `workdir/filename` and, if tensorboardX is importable, to
    TensorBoard event files in `workdir/tensorboard/<split>`."""

    def __init__(self, workdir: str, filename: str = "metrics.jsonl", tensorboard: bool = True):
        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(workdir, filename)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        self._tb_root = os.path.join(workdir, "tensorboard") if tensorboard else None
        self._tb: dict[str, object] = {}

    def _tb_writer(self, split: str):
        if self._tb_root is None:
            return None
        if split not in self._tb:
            try:
                from tensorboardX import SummaryWriter  # optional dependency
            except ImportError:
                self._tb_root = None
                return None
            self._tb[split] = SummaryWriter(os.path.join(self._tb_root, split))
        return self._tb[split]

    def write(self, step: int, metrics: dict, split: str = "train") -> None:
        record = {"step": int(step), "split": split, "time": round(time.time(), 3)}
        record.update({k: _to_float(v) for k, v in metrics.items()})
        # json.dumps writes NaN as `NaN`, which Python's json reads back.
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        writer = self._tb_writer(split)
        if writer is not None:
            for key, value in record.items():
                if key not in ("step", "split", "time"):
                    writer.add_scalar(key, value, int(step))

    def close(self) -> None:
        self._file.close()
        for writer in self._tb.values():
            writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_metrics(path: str) -> list[dict]:
    """Reads a JSON-lines metrics file; a truncated last line (killed run) is ignored."""
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                logging.warning("%s:%d: unreadable metrics line skipped", path, number)
    return records
