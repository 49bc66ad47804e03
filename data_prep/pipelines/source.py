"""Grain random-access data source over TFRecord clip shards: record i -> VideoRecord.

Implements Grain's `RandomAccessDataSource` protocol (`__len__`, `__getitem__`), so
`grain.MapDataset.source(ClipShardSource(paths))` gets global shuffling, per-host slicing and
exact resume. Records are read with `pread` at the offsets of the shard index files and
CRC-checked. File handles open lazily per process and are dropped when pickled, so the
source travels to Grain worker processes.
"""
from __future__ import annotations

import bisect
import os
from collections.abc import Sequence

import numpy as np

from data_prep.labels.types import VideoLabels
from data_prep.shards.index import load_or_build_index
from data_prep.shards.records import VideoRecord, labels_from_json, parse_video_record
from data_prep.shards.tfrecord import read_record_at


class ClipShardSource:
    """Random access to the video records of `shard_paths` (in the given shard order).

    Args:
      shard_paths: TFRecord shard files. Each has an index file beside it, or (files written
        by TensorFlow or other tools) is scanned once at construction.
      verify_crc: check the masked CRC32C of every record read.

    Attributes (per record i, read from the indexes without touching frames):
      video_ids: list[str]; num_frames: int64 [N]; fps: float64 [N]; labels(i) -> VideoLabels.
    """

    def __init__(self, shard_paths: Sequence[str], verify_crc: bool = True):
        self.shard_paths = [os.fspath(p) for p in shard_paths]
        if not self.shard_paths:
            raise ValueError("ClipShardSource: no shard paths given")
        self.verify_crc = verify_crc
        self._entries: list[dict] = []
        self._starts: list[int] = []  # first global record index of each shard
        self._shard_of: list[int] = []
        for k, path in enumerate(self.shard_paths):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"ClipShardSource: shard {path} does not exist")
            index = load_or_build_index(path)
            self._starts.append(len(self._entries))
            self._entries.extend(index["records"])
            self._shard_of.extend([k] * len(index["records"]))
        self.video_ids = [e["video_id"] for e in self._entries]
        self.num_frames = np.asarray([e["num_frames"] for e in self._entries], np.int64)
        self.fps = np.asarray([e["fps"] for e in self._entries], np.float64)
        self._labels_cache: dict[int, VideoLabels] = {}
        self._files: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def labels(self, i: int) -> VideoLabels:
        """The VideoLabels of record i (from the index; no frame I/O)."""
        if i not in self._labels_cache:
            self._labels_cache[i] = labels_from_json(self._entries[i]["labels"])
        return self._labels_cache[i]

    def entry(self, i: int) -> dict:
        """The index entry of record i (offset, length, video_id, num_frames, fps, ...)."""
        return self._entries[i]

    def _file(self, k: int):
        f = self._files.get(k)
        if f is None:
            f = open(self.shard_paths[k], "rb")
            self._files[k] = f
        return f

    def read_bytes(self, i: int) -> bytes:
        """The serialized SequenceExample of record i (CRC checked)."""
        if not 0 <= i < len(self._entries):
            raise IndexError(f"record {i} out of range [0, {len(self._entries)})")
        k = self._shard_of[i]
        e = self._entries[i]
        return read_record_at(self._file(k), self.shard_paths[k], e["offset"], e["length"],
                              self.verify_crc)

    def __getitem__(self, i: int) -> VideoRecord:
        i = int(i)
        k = self._shard_of[i] if 0 <= i < len(self._entries) else 0
        record = parse_video_record(
            self.read_bytes(i), where=f"{self.shard_paths[k]} record {i - self._starts[k]}"
        )
        if record.video_id != self._entries[i]["video_id"]:
            raise ValueError(
                f"{self.shard_paths[k]}: record {i - self._starts[k]} is video "
                f"{record.video_id} but the index says {self._entries[i]['video_id']}"
            )
        return record

    def index_of(self, video_id: str) -> int:
        """Global record index of `video_id` (KeyError if absent)."""
        if not hasattr(self, "_by_id"):
            self._by_id = {v: i for i, v in enumerate(self.video_ids)}
        return self._by_id[video_id]

    def shard_of_record(self, i: int) -> tuple[int, int]:
        """(shard number, record number inside the shard) of global record i."""
        k = bisect.bisect_right(self._starts, i) - 1
        return k, i - self._starts[k]

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_files"] = {}  # open files do not pickle; reopen in the worker
        return state

    def __repr__(self) -> str:
        return f"ClipShardSource({len(self.shard_paths)} shards, {len(self)} videos)"
