"""Builders shared by the captioner's stages: config -> vocabulary, feature loader, model,
optimizer, and the split readers. Configs stay outside modules (modules get typed fields)."""
from __future__ import annotations

import logging
import os

import numpy as np
import optax

from captioner_jax.data.features import FeatureLoader, FeatureSource
from captioner_jax.data.pipeline import CaptionInputConfig
from captioner_jax.models.pdvc import PDVC
from data_prep.annotations.activitynet_captions import VideoCaptions, read_captions
from data_prep.text.caption_vocab import CaptionVocab, build_caption_vocab

log = logging.getLogger(__name__)

MODEL_FIELDS = (
    "hidden_dim", "num_heads", "ffn_dim", "dropout", "enc_layers", "dec_layers", "num_levels",
    "enc_points", "dec_points", "num_queries", "max_event_count", "caption_head", "cap_heads",
    "cap_levels", "cap_points", "rnn_size", "word_dim", "att_hid", "cap_dropout",
)


def read_split(path: str, problems: list[str] | None = None) -> dict[str, VideoCaptions]:
    """Caption file -> {video_id: VideoCaptions}; malformed videos are skipped and reported."""
    problems = [] if problems is None else problems
    videos = read_captions(path, on_error="skip", problems=problems)
    for p in problems:
        log.warning("%s", p)
    return videos


def load_vocab(data_cfg, train_videos: dict[str, VideoCaptions] | None = None) -> CaptionVocab:
    """The vocabulary file if given and present, else built from the training captions."""
    path = data_cfg.get("vocab_path") or ""
    if path and os.path.isfile(path):
        return CaptionVocab.load(path)
    if train_videos is None:
        raise FileNotFoundError(f"caption vocabulary {path!r} not found and no captions given")
    sentences = [s for v in train_videos.values() for s in v.sentences]
    vocab = build_caption_vocab(sentences, int(data_cfg.get("vocab_count_threshold", 4)))
    log.info("built a vocabulary of %d words from %d training captions", vocab.size,
             len(sentences))
    return vocab


def feature_loader(data_cfg) -> FeatureLoader:
    sources = [FeatureSource.from_mapping(dict(s)) for s in data_cfg.features]
    return FeatureLoader(sources, num_steps=int(data_cfg.num_steps),
                         zero_fill_missing=bool(data_cfg.zero_fill_missing),
                         rescale=bool(data_cfg.get("rescale", True)))


def input_config(data_cfg, batch_size: int) -> CaptionInputConfig:
    return CaptionInputConfig(
        batch_size=int(batch_size), num_steps=int(data_cfg.num_steps),
        max_events=int(data_cfg.max_events), max_caption_len=int(data_cfg.max_caption_len),
        read_threads=int(data_cfg.get("read_threads", 2)),
    )


def build_model(model_cfg, vocab_size: int) -> PDVC:
    """`vocab_size` = number of output classes (vocab entries + 1 for index 0)."""
    kwargs = {k: model_cfg[k] for k in MODEL_FIELDS if k in model_cfg}
    return PDVC(vocab_size=int(vocab_size), **kwargs)


def pdvc_lr_schedule(base_lr: float, steps_per_epoch: int, decay_start_epoch: int,
                     decay_every_epochs: int, decay_rate: float, num_epochs: int):
    """PDVC: MultiStepLR with milestones start + every * k (< num_epochs), gamma `decay_rate`
    (ActivityNet: x0.5 at epochs 8, 11, ..., 26 of 30)."""
    count = int((num_epochs - decay_start_epoch) / decay_every_epochs) if decay_every_epochs else 0
    milestones = [decay_start_epoch + decay_every_epochs * k for k in range(max(count, 0))]
    boundaries = {int(m * steps_per_epoch): decay_rate for m in milestones if m > 0}
    return optax.piecewise_constant_schedule(base_lr, boundaries)


def build_optimizer(optim_cfg, steps_per_epoch: int, num_epochs: int, trainable_mask=None):
    """PyTorch Adam with L2 weight decay (added to the gradient after clipping, as
    `clip_grad_norm_` then `Adam(weight_decay=...)`), PDVC's step schedule."""
    schedule = pdvc_lr_schedule(
        float(optim_cfg.lr), steps_per_epoch, int(optim_cfg.decay_start_epoch),
        int(optim_cfg.decay_every_epochs), float(optim_cfg.decay_rate), num_epochs)
    tx = optax.chain(
        optax.clip_by_global_norm(float(optim_cfg.grad_clip)),
        optax.add_decayed_weights(float(optim_cfg.weight_decay)),
        optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
        optax.scale_by_learning_rate(schedule),
    )
    return tx, schedule


def video_id_table(videos: dict[str, VideoCaptions], limit: int = 0) -> list[str]:
    ids = list(videos)
    return ids[:limit] if limit and limit > 0 else ids


def make_mesh(config):
    """The configured mesh over the first `config.num_devices` devices (0 = all)."""
    import jax

    from data_prep.infra import mesh as mesh_lib

    devices = jax.devices()
    n = int(config.get("num_devices", 0) or len(devices))
    return mesh_lib.make_mesh(tuple(tuple(a) for a in config.mesh), devices=devices[:n])


def count_params(params) -> int:
    import jax

    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def resumable_training_input(config, workdir: str, train_ids, videos, loader, vocab,
                             per_host_batch: int, abstract_state, state_shardings):
    """The training iterator and step checkpointer of a captioner trainer (XE or SCST),
    restored to the newest checkpoint in `workdir/checkpoints` when there is one.

    Returns (train_iter, checkpointer, restored_state or None, start_step). The iterator's
    position is checkpointed with the state, so a resumed run sees the batches the killed one
    would have seen next.
    """
    from captioner_jax.data.pipeline import caption_dataset
    from data_prep.infra.checkpointing import Checkpointer

    in_cfg = input_config(config.data, per_host_batch)
    train_iter = iter(caption_dataset(train_ids, videos, loader, vocab, in_cfg,
                                      seed=int(config.seed), train=True))
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"),
                        max_to_keep=int(config.get("keep_checkpoints", 3)),
                        save_every_steps=int(config.checkpoint_every_steps))
    restored, start = ckpt.restore_latest(abstract_state, state_shardings,
                                          data_iterator=train_iter)
    return train_iter, ckpt, restored, start
