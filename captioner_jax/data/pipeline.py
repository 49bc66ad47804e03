"""The caption Grain pipeline: per-video features + events + tokenised captions, batched.

Each element is one video (numpy arrays, fixed shapes so that batches of several videos
stack; PDVC itself only trains with batch 1):
  feats        float32 [T, C]   combined features (see `features.FeatureLoader`)
  feat_valid   bool    [T]      all True after PDVC's fixed-length resize
  duration     float32 []       seconds
  gt_boxes     float32 [E, 2]   (centre, length) / duration of the events (zeros = padding)
  gt_valid     bool    [E]      a prefix mask: the first `num_events` slots are events
  captions     int32   [E, L]   vocab.encode(sentence, L): [0, w..., 0, pad 0...]
  caption_mask bool    [E, L]   True on BOS, words and the closing EOS (PDVC `cap_mask`)
  num_events   int32   []
  index        int32   []       position of the video in the split's id list (for its id)
  valid        bool    []       False for the padding videos of the last evaluation batch
Videos with more than E events keep a random subset of E of them (PDVC
`gt_proposal_sample_num`), in their original order; the subset depends on (seed, epoch,
video) so a resumed iterator reproduces it.

Training: shuffle(seed) -> repeat -> load -> this host's rows of every global batch
(`HostBatchSlice`: N hosts see exactly the batches of one) -> drop unreadable videos
(reported) -> batch (drop remainder). Evaluation: fixed order, padded to whole global batches
(valid=False) so all hosts run the same number of steps. `iter(dataset)` supports
get_state()/set_state() (checkpointed by `data_prep.infra.checkpointing`).
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import grain
import numpy as np

from captioner_jax.data.features import CorruptFeatureError, FeatureLoader, MissingFeatureError
from data_prep.annotations.activitynet_captions import VideoCaptions
from data_prep.pipelines.batching import HostBatchSlice

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CaptionInputConfig:
    batch_size: int = 1  # per host
    num_steps: int = 100  # T (PDVC frame_embedding_num)
    max_events: int = 10  # E
    max_caption_len: int = 30  # L, BOS and EOS included (PDVC max_caption_len)
    read_threads: int = 2
    prefetch: int = 4


def event_arrays(video: VideoCaptions, vocab, max_events: int, max_caption_len: int,
                 rng: np.random.Generator | None) -> dict[str, np.ndarray]:
    """Boxes, masks and tokens of one video's events (see the module docstring)."""
    n = len(video.sentences)
    keep = np.arange(n)
    if n > max_events:
        if rng is None:  # evaluation: the first events (deterministic)
            keep = keep[:max_events]
        else:
            keep = np.sort(rng.choice(n, max_events, replace=False))
    boxes = np.zeros((max_events, 2), np.float32)
    captions = np.zeros((max_events, max_caption_len), np.int32)
    cap_mask = np.zeros((max_events, max_caption_len), bool)
    dur = float(video.duration)
    for slot, i in enumerate(keep):
        start, end = video.timestamps[i]
        boxes[slot] = ((start + end) / (2 * dur), (end - start) / dur)
        tokens = vocab.encode(video.sentences[i], max_caption_len)
        captions[slot] = tokens
        length = int(np.count_nonzero(tokens[1:])) + 2  # BOS + words + EOS
        cap_mask[slot, : min(length, max_caption_len)] = True
    valid = np.zeros(max_events, bool)
    valid[: len(keep)] = True
    return {"gt_boxes": boxes, "gt_valid": valid, "captions": captions,
            "caption_mask": cap_mask, "num_events": np.int32(len(keep))}


class _VideoLoader:
    """index -> element dict (None when the video's features cannot be read)."""

    def __init__(self, video_ids, videos, loader: FeatureLoader, vocab, config, seed, train,
                 per_host: int):
        self.video_ids, self.videos, self.loader = list(video_ids), videos, loader
        self.vocab, self.config, self.seed, self.train = vocab, config, seed, train
        self.per_host = max(per_host, 1)

    def __call__(self, index: int, row: int):
        real = row >= 0
        row = row if real else -row - 1
        vid = self.video_ids[row]
        try:
            feats = self.loader.load(vid)
        except (MissingFeatureError, CorruptFeatureError, OSError, ValueError) as e:
            if not real:  # padding slot: any readable video will do, it is masked out
                raise
            log.error("skipping video %s: %s", vid, e)
            return None
        rng = None
        if self.train:
            rng = np.random.default_rng([self.seed, index // self.per_host, row])
        out = event_arrays(self.videos[vid], self.vocab, self.config.max_events,
                           self.config.max_caption_len, rng)
        out.update(feats=feats.astype(np.float32), feat_valid=np.ones(len(feats), bool),
                   duration=np.float32(self.videos[vid].duration), index=np.int32(row),
                   valid=np.bool_(real))
        return out


def caption_dataset(
    video_ids: Sequence[str],
    videos: dict[str, VideoCaptions],
    loader: FeatureLoader,
    vocab,
    config: CaptionInputConfig,
    *,
    seed: int,
    train: bool,
    process_index: int | None = None,
    process_count: int | None = None,
    num_epochs: int | None = None,
) -> grain.IterDataset:
    """The pipeline as a Grain IterDataset of batches (see the module docstring)."""
    if process_index is None or process_count is None:
        import jax

        process_index, process_count = jax.process_index(), jax.process_count()
    n = len(video_ids)
    if n == 0:
        raise ValueError("no videos to read")
    rows = np.arange(n, dtype=np.int64)
    global_batch = config.batch_size * process_count
    if train:
        if n < global_batch:
            raise ValueError(f"{n} videos: fewer than one global batch of {global_batch} "
                             f"({config.batch_size} per host x {process_count})")
        ds = grain.MapDataset.source(rows).shuffle(seed=seed).repeat(num_epochs)
        epoch_length = n
    else:
        epoch_length = -(-n // global_batch) * global_batch
        # Padding slots (negative rows) repeat video 0 and are marked valid=False.
        padded = np.concatenate([rows, -np.ones(epoch_length - n, np.int64)])
        ds = grain.MapDataset.source(padded).repeat(num_epochs or 1)
    # Elements are made on the global stream, then each host takes its rows of every global
    # batch (data_prep.pipelines.batching.HostBatchSlice): N hosts see 1 host's batches.
    load = _VideoLoader(video_ids, videos, loader, vocab, config, seed, train, epoch_length)
    ds = ds.map_with_index(lambda i, r: load(i, int(r)))
    ds = HostBatchSlice(ds, config.batch_size, process_index, process_count)
    ds = ds.filter(lambda x: x is not None)
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=config.read_threads,
                                              prefetch_buffer_size=config.prefetch))
    return it.batch(config.batch_size, drop_remainder=train)
