"""Grain random-access data source over TFRecord clip shards: record i -> VideoRecord.

Implements Grain's `RandomAccessDataSource` protocol (`__len__`, `__getitem__`), so
`grain.MapDataset.source(ClipShardSource(paths))` gets global shuffling, per-host slicing and
exact resume. Records are read at the offsets of the shard index files and CRC-checked;
shards may be local or remote (`gs://...`: `data_prep.shards.tfrecord.ShardFile` reads a
remote file object with seek + read; Grain's read threads share it under a lock). File
handles open lazily per process and are dropped when pickled, so the source travels to Grain
worker processes.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from data_prep.infra import paths
from data_prep.labels.types import VideoLabels
from data_prep.shards.index import load_or_build_index
from data_prep.shards.records import VideoRecord, labels_from_json, parse_video_record
from data_prep.shards.tfrecord import ShardFile, read_record_at


class ClipShardSource:
    """Random access to the video records of `shard_paths` (in the given shard order).

    Args:
      shard_paths: TFRecord shard files (local or remote). Each has an index file beside it,
        or (files written by TensorFlow or other tools) is scanned once at construction.
      verify_crc: check the masked CRC32C of every record read.
      records: internal (see `subset`): the records as (shard number, record number inside
        the shard, index entry) instead of reading the index files.

    Attributes (per record i, read from the indexes without touching frames):
      video_ids: list[str]; num_frames: int64 [N]; fps: float64 [N]; labels(i) -> VideoLabels.
    """

    def __init__(self, shard_paths: Sequence[str], verify_crc: bool = True, *,
                 records: Sequence[tuple[int, int, dict]] | None = None):
        self.shard_paths = [os.fspath(p) for p in shard_paths]
        if not self.shard_paths:
            raise ValueError("ClipShardSource: no shard paths given")
        self.verify_crc = verify_crc
        if records is None:
            records = []
            for k, path in enumerate(self.shard_paths):
                if not paths.is_file(path):
                    raise FileNotFoundError(f"ClipShardSource: shard {path} does not exist")
                index = load_or_build_index(path)
                records.extend((k, j, e) for j, e in enumerate(index["records"]))
        self._shard_of = [int(k) for k, _, _ in records]
        self._position = [int(j) for _, j, _ in records]  # record number inside its shard
        self._entries = [e for _, _, e in records]
        self.video_ids = [e["video_id"] for e in self._entries]
        self.num_frames = np.asarray([e["num_frames"] for e in self._entries], np.int64)
        self.fps = np.asarray([e["fps"] for e in self._entries], np.float64)
        self._labels_cache: dict[int, VideoLabels] = {}
        self._by_id: dict[str, int] | None = None
        self._files: dict[int, ShardFile] = {}
        self._open_lock = threading.Lock()

    def subset(self, indices: Sequence[int]) -> ClipShardSource:
        """A source over records `indices` of this one, renumbered 0..k-1 (the index entries
        are shared, nothing is read again; files are opened by the new source on use)."""
        n = len(self._entries)
        bad = [int(i) for i in indices if not 0 <= int(i) < n]
        if bad:
            raise IndexError(f"records {bad[:5]} out of range [0, {n})")
        return ClipShardSource(self.shard_paths, self.verify_crc, records=[
            (self._shard_of[i], self._position[i], self._entries[i]) for i in map(int, indices)])

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

    def _file(self, k: int) -> ShardFile:
        with self._open_lock:  # Grain's read threads: open each shard once
            f = self._files.get(k)
            if f is None:
                f = ShardFile(self.shard_paths[k])
                self._files[k] = f
            return f

    def _where(self, i: int) -> str:
        return f"{self.shard_paths[self._shard_of[i]]} record {self._position[i]}"

    def read_bytes(self, i: int) -> bytes:
        """The serialized SequenceExample of record i (CRC checked)."""
        if not 0 <= i < len(self._entries):
            raise IndexError(f"record {i} out of range [0, {len(self._entries)})")
        e = self._entries[i]
        return read_record_at(self._file(self._shard_of[i]), e["offset"], e["length"],
                              self.verify_crc)

    def __getitem__(self, i: int) -> VideoRecord:
        i = int(i)
        data = self.read_bytes(i)
        record = parse_video_record(data, where=self._where(i))
        if record.video_id != self._entries[i]["video_id"]:
            raise ValueError(f"{self._where(i)} is video {record.video_id} but the index "
                             f"says {self._entries[i]['video_id']}")
        return record

    def index_of(self, video_id: str) -> int:
        """Record index of `video_id` in this source (KeyError if absent)."""
        if self._by_id is None:
            self._by_id = {v: i for i, v in enumerate(self.video_ids)}
        return self._by_id[video_id]

    def close(self) -> None:
        with self._open_lock:
            for f in self._files.values():
                f.close()
            self._files = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_files"] = {}  # open files and locks do not pickle; reopen in the worker
        del state["_open_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._open_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ClipShardSource({len(self.shard_paths)} shards, {len(self)} videos)"
