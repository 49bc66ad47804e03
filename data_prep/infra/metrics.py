"""Metrics a user can plot: JSON lines (always) and TensorBoard scalars (when available).

One line per `write()`: `{"step": 10, "split": "train", "time": 1732890000.1, "loss": 1.2}`.
Only process 0 writes (on other processes the writer is inert). A resumed run calls
`truncate_after(restored_step)` first, so the file never holds lines of steps that are
recomputed, and the resumed file equals the one an uninterrupted run writes (up to `time`).

Local files are appended to and flushed line by line; on an object store (`gs://`), which
cannot append, the writer keeps the lines and rewrites the object at every write (metric files
are small).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time

import numpy as np

from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_text


def _to_float(value) -> float:
    value = float(np.asarray(value))
    return value if math.isfinite(value) else float("nan")


def _parse_lines(text: str, where: str) -> list[dict]:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            logging.warning("%s:%d: unreadable metrics line skipped", where, number)
    return records


class MetricWriter:
    """Appends metrics to `workdir/filename` and, if tensorboardX is importable, to
    TensorBoard event files in `workdir/tensorboard/<split>` (process 0 only)."""

    def __init__(self, workdir: str, filename: str = "metrics.jsonl", tensorboard: bool = True):
        import jax

        self.active = jax.process_index() == 0
        self.path = paths.join(workdir, filename)
        self._local = paths.is_local(self.path)
        self._lines: list[str] = []
        self._file = None
        self._tb_root = paths.join(workdir, "tensorboard") if tensorboard else None
        self._tb: dict[str, object] = {}
        if not self.active:
            return
        paths.make_dirs(workdir)
        if not self._local and paths.exists(self.path):
            self._lines = paths.read_text(self.path).splitlines()

    def _open(self):
        if self._file is None and self._local:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        return self._file

    def truncate_after(self, step: int) -> None:
        """Drops the lines of steps > `step` (call after restoring checkpoint `step`)."""
        if not self.active or not paths.exists(self.path):
            return
        if self._file is not None:
            self._file.close()
            self._file = None
        records = _parse_lines(paths.read_text(self.path), self.path)
        kept = [json.dumps(r) for r in records if int(r.get("step", 0)) <= int(step)]
        if len(kept) != len(records):
            logging.info("%s: dropped %d lines past the restored step %d", self.path,
                         len(records) - len(kept), step)
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        self._lines = kept

    def _tb_writer(self, split: str):
        if self._tb_root is None:
            return None
        if split not in self._tb:
            try:
                from tensorboardX import SummaryWriter  # optional dependency
            except ImportError:
                self._tb_root = None
                return None
            self._tb[split] = SummaryWriter(os.fspath(paths.join(self._tb_root, split)))
        return self._tb[split]

    def write(self, step: int, metrics: dict, split: str = "train") -> None:
        if not self.active:
            return
        record = {"step": int(step), "split": split, "time": round(time.time(), 3)}
        record.update({k: _to_float(v) for k, v in metrics.items()})
        # json.dumps writes NaN as `NaN`, which Python's json reads back.
        line = json.dumps(record)
        if self._local:
            f = self._open()
            f.write(line + "\n")
            f.flush()
        else:
            self._lines.append(line)
            paths.as_path(self.path).write_text("".join(x + "\n" for x in self._lines))
        writer = self._tb_writer(split)
        if writer is not None:
            for key, value in record.items():
                if key not in ("step", "split", "time"):
                    writer.add_scalar(key, value, int(step))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        for writer in self._tb.values():
            writer.close()
        self._tb = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_metrics(path: str) -> list[dict]:
    """Reads a JSON-lines metrics file; a truncated last line (killed run) is ignored."""
    return _parse_lines(paths.read_text(path), path)
