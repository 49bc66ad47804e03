"""TSP training/validation input pipeline over clip shards (Grain).

Elements are (video, segment, clip k): every segment of the VideoLabels table that is at
least one clip long contributes `clips_per_segment` elements per epoch (TSP:
UntrimmedVideoDataset). Clip start, as TSP: `t = t_start + r * (t_end - t_start - clip_s)`
with r ~ U(0, 1) in training and r = linspace(0, 1, K)[k] in validation; the first frame is
the first stored frame at or after t (TSP's read_video starts at pts >= t).

Pipeline: source(element table) -> shuffle(seed) [train] -> repeat(num_epochs) ->
load+augment (rng from (seed, epoch, element id), so a resumed iterator yields the same next
batch) -> this host's rows of every global batch (`HostBatchSlice`: host i takes rows
[i*b, (i+1)*b) of each global batch of b*process_count, so N hosts see exactly the batches
of one process) -> batch -> to_iter_dataset (thread prefetch). Batches are dicts of numpy arrays:

  clips         float32 [B, T, crop, crop, 3]  normalised with the TSP mean/std
  action_label  int32   [B]  class, IGNORE_INDEX (-1) for background segments
  region_label  int32   [B]  REGION_ACTION (0) / REGION_BACKGROUND (1)
  concepts      float32 [B, C]  multi-hot clip concepts (only when num_concepts > 0)
  video_index   int32   [B]  record index in the ClipShardSource (for GVF lookup)
  video_id      str     [B]  (numpy unicode; drop it before jax.device_put)
  element_id    int32   [B]  row of the (video, segment, clip k) table (debugging, tests)
  clip_start_s  float32 [B]  clip start time [s]
  valid         bool    [B]  False for padding in the last validation batch

Validation pads the element list to whole global batches (valid=False), so all hosts run the
same number of fixed-shape steps. Training streams epochs back to back and drops nothing but
the last partial global batch of a finite run.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import grain
import numpy as np

from data_prep.labels.types import IGNORE_INDEX
from data_prep.pipelines.batching import HostBatchSlice
from data_prep.pipelines.clip_transforms import (
    TSP_MEAN,
    TSP_STD,
    RecordCache,
    crop_and_flip,
    decode_clip,
    normalize,
)
from data_prep.pipelines.source import ClipShardSource


@dataclasses.dataclass(frozen=True)
class TspInputConfig:
    """Settings of the TSP clip pipeline (defaults: TSP on ActivityNet).

    batch_size: per-host batch size. clip_length: frames per clip (T). fps: frame rate of the
    shards [frames/s] (checked). clips_per_segment: clips per segment per epoch (TSP: 5).
    resize: (H, W) frames are brought to before cropping (TSP: 128x171; the shard writer
    normally stores this size already). crop: square crop side (TSP: 112).
    hflip: random horizontal flips in training (TSP: True). False where the labels see left
    and right (the synthetic data set's "Moving left" / "Moving right").
    num_concepts: size C of the concept vocabulary (0: no `concepts` key).
    concept_rule: overlap rule passed to `clip_concept_targets`.
    read_threads / prefetch_buffer: Grain ReadOptions for the thread prefetch.
    """

    batch_size: int
    clip_length: int = 16
    fps: float = 15.0
    clips_per_segment: int = 5
    resize: tuple[int, int] = (128, 171)
    crop: int = 112
    hflip: bool = True
    mean: tuple[float, float, float] = TSP_MEAN
    std: tuple[float, float, float] = TSP_STD
    num_concepts: int = 0
    concept_rule: str = "any_overlap"
    read_threads: int = 4
    prefetch_buffer: int = 8

    @classmethod
    def from_mapping(cls, d) -> TspInputConfig:
        """From a dict / ConfigDict; unknown keys are an error naming them."""
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise KeyError(f"unknown TSP input settings {unknown}; known: {sorted(names)}")
        for key in ("resize", "mean", "std"):
            if key in d and d[key] is not None:
                d[key] = tuple(d[key])
        return cls(**d)


class SegmentClipTable:
    """Random-access table of (record, segment, clip k) elements; a Grain data source.

    Segments are clipped to [0, min(annotated duration, stored frames / fps)] and dropped when
    shorter than one clip (TSP's _clean_df_and_remove_short_segments).
    """

    def __init__(self, source: ClipShardSource, clip_length: int, fps: float,
                 clips_per_segment: int):
        clip_s = clip_length / fps
        rows = []
        for i in range(len(source)):
            if abs(source.fps[i] - fps) > 1e-3:
                raise ValueError(
                    f"video {source.video_ids[i]}: shards store {source.fps[i]} fps but the "
                    f"pipeline wants {fps} fps"
                )
            labels = source.labels(i)
            end_limit = min(float(labels.duration) if labels.duration > 0 else np.inf,
                            source.num_frames[i] / fps)
            for s, (t0, t1) in enumerate(labels.segments):
                t0, t1 = max(float(t0), 0.0), min(float(t1), end_limit)
                # TSP keeps a segment iff (t1 - t0) * fps >= clip_length frames.
                if (t1 - t0) * fps + 1e-6 < clip_length:
                    continue
                for k in range(clips_per_segment):
                    rows.append((i, s, k, t0, t1, labels.action_labels[s],
                                 labels.region_labels[s]))
        if not rows:
            raise ValueError(f"{source}: no segment is at least one clip ({clip_s:.3f} s) long")
        cols = list(zip(*rows))
        self.record = np.asarray(cols[0], np.int32)
        self.segment = np.asarray(cols[1], np.int32)
        self.clip_k = np.asarray(cols[2], np.int32)
        self.t_start = np.asarray(cols[3], np.float64)
        self.t_end = np.asarray(cols[4], np.float64)
        self.action = np.asarray(cols[5], np.int32)
        self.region = np.asarray(cols[6], np.int32)

    def __len__(self) -> int:
        return len(self.record)

    def __getitem__(self, j: int) -> int:
        return int(j)  # elements are table row ids; the loader looks the row up


class _PaddedRange:
    """Row ids 0..n-1 followed by `pad` copies of -1 (padding marker) — a Grain source."""

    def __init__(self, n: int, total: int):
        self.n, self.total = n, total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, j: int) -> int:
        return int(j) if j < self.n else -1


@dataclasses.dataclass
class _ClipLoader:
    """Maps (index in the host stream, row id) -> one example dict (see module docstring)."""

    table: SegmentClipTable
    cache: RecordCache
    cfg: TspInputConfig
    train: bool
    seed: int
    epoch_length: int
    concept_fn: Callable | None

    def __call__(self, index: int, row: int) -> dict:
        valid = row >= 0
        row = max(row, 0)
        t = self.table
        epoch = index // self.epoch_length
        rng = np.random.default_rng([self.seed, epoch, row])
        cfg = self.cfg
        clip_s = cfg.clip_length / cfg.fps
        if self.train:
            ratio = rng.random()
        else:
            k = cfg.clips_per_segment
            ratio = t.clip_k[row] / (k - 1) if k > 1 else 0.0  # np.linspace(0, 1, k)[clip_k]
        t_clip = t.t_start[row] + ratio * (t.t_end[row] - t.t_start[row] - clip_s)
        record = self.cache.get(int(t.record[row]))
        num_frames = record.num_frames
        start = math.ceil(t_clip * cfg.fps - 1e-6)
        start = max(0, min(start, num_frames - cfg.clip_length))
        frames = decode_clip(record.frames, start, cfg.clip_length, cfg.resize)
        clip = normalize(crop_and_flip(frames, cfg.crop, self.train, rng, cfg.hflip),
                         cfg.mean, cfg.std)
        out = {
            "clips": clip,
            "action_label": np.int32(t.action[row] if valid else IGNORE_INDEX),
            "region_label": np.int32(t.region[row]),
            "video_index": np.int32(t.record[row]),
            "video_id": record.video_id,
            "element_id": np.int32(row),
            "clip_start_s": np.float32(start / cfg.fps),
            "valid": np.bool_(valid),
        }
        if cfg.num_concepts > 0:
            t0 = start / cfg.fps
            target = self.concept_fn(t0, t0 + clip_s, record.labels, cfg.num_concepts,
                                     cfg.concept_rule)
            out["concepts"] = np.asarray(target, np.float32).reshape(cfg.num_concepts)
        return out


def _default_concept_fn():
    from data_prep.labels import clip_concept_targets

    return clip_concept_targets


def tsp_train_dataset(
    shard_paths: Sequence[str] | ClipShardSource,
    config: TspInputConfig,
    *,
    seed: int,
    train: bool,
    process_index: int | None = None,
    process_count: int | None = None,
    num_epochs: int | None = None,
    concept_fn: Callable | None = None,
    table: SegmentClipTable | None = None,
    gvf_lookup: Callable | None = None,
) -> grain.IterDataset:
    """The TSP clip pipeline as a Grain IterDataset of batches (see the module docstring).

    Args:
      shard_paths: shard files, or an existing ClipShardSource.
      config: TspInputConfig.
      seed: shuffling and augmentation seed (0 <= seed < 2**32).
      train: True: shuffle, random clip start, random crop + flip, drop partial batches;
        False: fixed order, evenly spaced clips, center crop, padded last batch.
      process_index, process_count: this host's slice; default jax.process_index/count().
      num_epochs: None repeats forever (train) — default for eval is 1 epoch.
      concept_fn: `(clip_start_s, clip_end_s, labels, num_concepts, rule) -> [C]`; default
        data_prep.labels.clip_concept_targets. Only used when config.num_concepts > 0.
      table: the SegmentClipTable of `shard_paths` for `config` when the caller already
        built it (the trainer sizes its epochs with it); built here otherwise.
      gvf_lookup: `video ids [B] -> float32 [B, D]` (a GVF table's `lookup`): adds the
        batch's global video features as "gvf", so the join happens in the input pipeline.
    Returns:
      grain.IterDataset; `iter(ds)` has get_state()/set_state() for exact resume.
    """
    if process_index is None or process_count is None:
        import jax

        process_index, process_count = jax.process_index(), jax.process_count()
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    source = (shard_paths if isinstance(shard_paths, ClipShardSource)
              else ClipShardSource(shard_paths))
    if table is None:
        table = SegmentClipTable(source, config.clip_length, config.fps,
                                 config.clips_per_segment)
    if config.num_concepts > 0 and concept_fn is None:
        concept_fn = _default_concept_fn()
    n = len(table)
    global_batch = config.batch_size * process_count
    if train:
        if n < global_batch:
            raise ValueError(f"{n} clips per epoch: fewer than one global batch of "
                             f"{global_batch} ({config.batch_size} per host x {process_count})")
        ds = grain.MapDataset.source(table).shuffle(seed=seed)
        epoch_length = n
    else:
        # Padded to whole global batches; padding slots are marked valid=False.
        epoch_length = -(-n // global_batch) * global_batch
        ds = grain.MapDataset.source(_PaddedRange(n, epoch_length))
    ds = ds.repeat(num_epochs if (train or num_epochs is not None) else 1)
    # Elements are made on the global stream (their rng depends on the global position only)
    # and each host then takes its rows of every global batch: the same batches as 1 process.
    loader = _ClipLoader(table, RecordCache(source), config, train, seed, epoch_length,
                         concept_fn)
    ds = ds.map_with_index(loader)
    ds = HostBatchSlice(ds, config.batch_size, process_index, process_count)
    ds = ds.batch(config.batch_size, drop_remainder=train)
    if gvf_lookup is not None:
        ds = ds.map(lambda batch: {**batch, "gvf": np.asarray(gvf_lookup(batch["video_id"]),
                                                              np.float32)})
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=config.read_threads,
                                                prefetch_buffer_size=config.prefetch_buffer))
