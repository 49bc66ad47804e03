"""Whole-video sliding-window clip pipeline for feature extraction (Grain).

As TSP's extract_features/EvalVideoDataset: per video of F stored frames (at the extraction
fps), clips of `clip_length` frames start at frames 0, stride, 2*stride, ...:
N = floor((F - clip_length) / stride) + 1 clips, eval transform (center crop, TSP
normalisation). Deliberate difference: TSP yields no clip (and crashes) for a video shorter
than one clip; we yield one clip whose missing frames repeat the last frame, so every video
gets a (1, D) feature.

Videos are split across hosts ([process_index::process_count] over records); each host's clip
list is padded to the same number of batches (valid=False), so multi-host extraction runs the
same number of steps everywhere. Batches are dicts of numpy arrays:

  clips        float32 [B, T, crop, crop, 3]
  video_index  int32   [B]  record index in the ClipShardSource
  video_id     str     [B]
  clip_index   int32   [B]  n in [0, N) — place the feature at row n of the video's (N, D)
  num_clips    int32   [B]  N of that video (a video is complete after N valid clips)
  valid        bool    [B]
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import grain
import numpy as np

from data_prep.pipelines.clip_transforms import (
    TSP_MEAN,
    TSP_STD,
    RecordCache,
    crop_and_flip,
    decode_clip,
    normalize,
)
from data_prep.pipelines.source import ClipShardSource


def num_sliding_clips(num_frames: int, clip_length: int, stride: int) -> int:
    """TSP's clip count floor((F - T) / stride) + 1, at least 1 (see module docstring)."""
    if num_frames < clip_length:
        return 1
    return (num_frames - clip_length) // stride + 1


class _WindowTable:
    """(record, clip n) rows of one host, padded with -1 rows; a Grain data source."""

    def __init__(self, records: np.ndarray, clip_index: np.ndarray, num_clips: np.ndarray,
                 total: int):
        self.records, self.clip_index, self.num_clips = records, clip_index, num_clips
        self.total = total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, j: int) -> int:
        return int(j) if j < len(self.records) else -1


@dataclasses.dataclass
class _WindowLoader:
    table: _WindowTable
    cache: RecordCache
    clip_length: int
    stride: int
    resize: tuple[int, int] | None
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, row: int) -> dict:
        valid = row >= 0
        row = max(row, 0)
        rec = int(self.table.records[row])
        n = int(self.table.clip_index[row])
        record = self.cache.get(rec)
        frames = decode_clip(record.frames, n * self.stride, self.clip_length, self.resize)
        clip = normalize(crop_and_flip(frames, self.crop, False, None), self.mean, self.std)
        return {
            "clips": clip,
            "video_index": np.int32(rec),
            "video_id": record.video_id,
            "clip_index": np.int32(n),
            "num_clips": np.int32(self.table.num_clips[row]),
            "valid": np.bool_(valid),
        }


def sliding_window_batches(
    shard_paths: Sequence[str] | ClipShardSource,
    *,
    batch_size: int,
    clip_length: int = 16,
    stride: int = 16,
    resize: tuple[int, int] | None = (128, 171),
    crop: int = 112,
    mean: tuple[float, float, float] = TSP_MEAN,
    std: tuple[float, float, float] = TSP_STD,
    process_index: int | None = None,
    process_count: int | None = None,
    read_threads: int = 4,
) -> grain.IterDataset:
    """Batches of every sliding-window clip of every video of this host (in record order).

    Args:
      shard_paths: shard files or a ClipShardSource (frames stored at the extraction fps).
      batch_size: per-host batch size; the last batch is padded (valid=False).
      clip_length, stride: frames per clip and between clip starts (TSP ActivityNet: 16, 16).
      resize: (H, W) before the center crop (None: as stored). crop: square crop side.
      process_index, process_count: host slice over videos; default jax.process_index/count().
    Returns:
      grain.IterDataset of batch dicts (see the module docstring).
    """
    if process_index is None or process_count is None:
        import jax

        process_index, process_count = jax.process_index(), jax.process_count()
    source = (shard_paths if isinstance(shard_paths, ClipShardSource)
              else ClipShardSource(shard_paths))
    counts = [num_sliding_clips(int(f), clip_length, stride) for f in source.num_frames]
    host_totals = [sum(counts[h::process_count]) for h in range(process_count)]
    # Same number of batches on every host (padding rows are marked invalid).
    total = -(-max(host_totals) // batch_size) * batch_size if max(host_totals) else 0
    recs, clip_ids, nums = [], [], []
    for rec in range(process_index, len(source), process_count):
        recs.extend([rec] * counts[rec])
        clip_ids.extend(range(counts[rec]))
        nums.extend([counts[rec]] * counts[rec])
    table = _WindowTable(np.asarray(recs, np.int32), np.asarray(clip_ids, np.int32),
                         np.asarray(nums, np.int32), total)
    loader = _WindowLoader(table, RecordCache(source), clip_length, stride,
                           None if resize is None else tuple(resize), crop, tuple(mean),
                           tuple(std))
    ds = grain.MapDataset.source(table).map(loader).batch(batch_size)
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads))
