"""Metrics a user can plot: JSON lines (always) and TensorBoard scalars (tensorboardX).

One line per `write()`: `{"step": 10, "split": "train", "time": 1732890000.1, "loss": 1.2}`.
Only process 0 writes (on other processes the writer is inert). A resumed run calls
`truncate_after(restored_step)` first, so the file never holds lines of steps that are
recomputed, and the resumed file equals the one an uninterrupted run writes (up to `time`).

Local files are appended to and flushed line by line; on an object store (`gs://`), which
cannot append, the writer keeps the lines and rewrites the object at every write (metric files
are small).

TensorBoard: every split gets an event file under `workdir/tensorboard/<split>/` (view with
`tensorboard --logdir WORKDIR/tensorboard`), written by tensorboardX (a requirement; without
it the writer logs one warning and writes the JSON lines only). The event file is flushed
at every write. On an object store the event file is written in a local temporary folder
and uploaded (the whole file, one object) at every write and at close. After
`truncate_after(step)` the next event files carry TensorBoard's purge step `step + 1`, so
TensorBoard drops the earlier run's points past the restored step, as the JSON lines do.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
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
    """Appends metrics to `workdir/filename` and to TensorBoard event files in
    `workdir/tensorboard/<split>/` (process 0 only; `tensorboard=False`: JSON lines only)."""

    def __init__(self, workdir: str, filename: str = "metrics.jsonl", tensorboard: bool = True):
        import jax

        self.active = jax.process_index() == 0
        self.path = paths.join(workdir, filename)
        self._local = paths.is_local(self.path)
        self._lines: list[str] = []
        self._file = None
        self._tb_root = paths.join(workdir, "tensorboard") if tensorboard else None
        self._tb: dict[str, object] = {}
        # Remote workdir: split -> local folder tensorboardX writes into (uploaded per write).
        self._tb_local: dict[str, str] = {}
        self._tb_purge_step: int | None = None
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
        # TensorBoard event files cannot be truncated: new writers mark the purge step.
        self._close_tb()
        self._tb_purge_step = int(step) + 1

    def _tb_writer(self, split: str):
        if self._tb_root is None:
            return None
        if split not in self._tb:
            try:
                writer_class = _synchronous_event_writer()
            except ImportError:
                logging.warning("tensorboardX is not installed (it is in requirements.txt): "
                                "metrics go to %s only", self.path)
                self._tb_root = None
                return None
            target = paths.join(self._tb_root, split)
            if paths.is_local(target):
                logdir = os.fspath(target)
                paths.make_dirs(logdir)
            else:
                logdir = tempfile.mkdtemp(prefix=f"dvc-tensorboard-{split}-")
                self._tb_local[split] = logdir
            self._tb[split] = writer_class(logdir, self._tb_purge_step)
        return self._tb[split]

    def _upload_tb(self, split: str) -> None:
        """Copies the local event files of `split` to the remote workdir (whole objects)."""
        local = self._tb_local.get(split)
        if local is None:
            return
        target = paths.join(self._tb_root, split)
        paths.make_dirs(target)
        for name in sorted(os.listdir(local)):  # a local temporary folder, not a user path
            with open(os.path.join(local, name), "rb") as inp:
                paths.as_path(paths.join(target, name)).write_bytes(inp.read())

    def _close_tb(self) -> None:
        for split, writer in self._tb.items():
            writer.close()
            self._upload_tb(split)
        for local in self._tb_local.values():
            shutil.rmtree(local, ignore_errors=True)
        self._tb, self._tb_local = {}, {}

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
            writer.add_scalars(int(step), record["time"],
                               {k: v for k, v in record.items()
                                if k not in ("step", "split", "time")})
            self._upload_tb(split)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._close_tb()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _synchronous_event_writer():
    """The TensorBoard event-file writer class (ImportError without tensorboardX).

    tensorboardX's SummaryWriter queues events for a background thread whose `flush()` does
    not wait for the queue, so a file read (or uploaded) right after a write can miss it; its
    synchronous EventsWriter (the file layer under it: TFRecord framing, the
    `events.out.tfevents.<time>.<host>` name) writes every event before returning.
    """
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto.event_pb2 import Event, SessionLog
    from tensorboardX.proto.summary_pb2 import Summary

    class EventFile:
        def __init__(self, logdir: str, purge_step: int | None):
            # Its name has whole seconds: the nanosecond suffix keeps a resumed run's file
            # from overwriting one opened in the same second, and sorts it after that one.
            self._writer = EventsWriter(os.path.join(logdir, "events"),
                                        filename_suffix=f".{time.time_ns()}")
            if purge_step is not None:
                # What SummaryWriter(purge_step=) writes: TensorBoard hides the points of
                # earlier files at steps >= purge_step (recomputed after a restore).
                self._writer.write_event(Event(step=purge_step, file_version="brain.Event:2"))
                self._writer.write_event(Event(step=purge_step, session_log=SessionLog(
                    status=SessionLog.START)))
            self._writer.flush()

        def add_scalars(self, step: int, wall_time: float, scalars: dict) -> None:
            """One event holding every scalar of this write, flushed to the file."""
            summary = Summary(value=[Summary.Value(tag=k, simple_value=float(v))
                                     for k, v in scalars.items()])
            self._writer.write_event(Event(wall_time=wall_time, step=step, summary=summary))
            self._writer.flush()

        def close(self) -> None:
            self._writer.close()

    return EventFile


def read_metrics(path: str) -> list[dict]:
    """Reads a JSON-lines metrics file; a truncated last line (killed run) is ignored."""
    return _parse_lines(paths.read_text(path), path)
