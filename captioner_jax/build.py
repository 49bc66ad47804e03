"""Builders shared by the captioner's stages: config -> vocabulary, feature loader, model,
optimizer, and the split readers. Configs stay outside modules (modules get typed fields)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging

import numpy as np
import optax

from captioner_jax.data.features import FeatureLoader, FeatureSource
from captioner_jax.data.pipeline import CaptionInputConfig
from captioner_jax.models.pdvc import PDVC
from data_prep.annotations.activitynet_captions import VideoCaptions, read_captions
from data_prep.infra import distributed, paths
from data_prep.infra.atomic_files import atomic_write_json, read_json
from data_prep.text.caption_vocab import CaptionVocab, build_caption_vocab

log = logging.getLogger(__name__)

MODEL_FIELDS = (
    "hidden_dim", "num_heads", "ffn_dim", "dropout", "enc_layers", "dec_layers", "num_levels",
    "enc_points", "dec_points", "num_queries", "max_event_count", "caption_head", "cap_heads",
    "cap_levels", "cap_points", "rnn_size", "word_dim", "att_hid", "cap_dropout", "box_refine",
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
    if path and paths.is_file(path):
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


def build_optimizer(optim_cfg, steps_per_epoch: int, num_epochs: int):
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


def usable_ids(loader, ids, workdir: str, zero_fill: bool, what: str) -> list[str]:
    """The video ids to use; videos without feature files are reported in
    workdir/missing_features_<what>.json and left out unless zero-filled (PDVC)."""
    ids = list(ids)
    missing = loader.find_missing(ids)
    if missing:
        report = paths.join(workdir, f"missing_features_{what}.json")
        if distributed.is_main_process():
            atomic_write_json(report, missing)
        log.warning("%s: %d of %d videos miss feature files (%s); %s", what, len(missing),
                    len(ids), report, "zero-filled" if zero_fill else "left out")
        if not zero_fill:
            ids = [v for v in ids if v not in missing]
    if not ids:
        raise ValueError(f"{what}: no video has features")
    return ids


def config_fingerprint(config) -> dict:
    """The resolved config without the per-process `run` block (what every process of a
    multi-host run must agree on)."""
    out = config.to_dict()
    out.pop("run", None)
    return out


def count_params(params) -> int:
    import jax

    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def train_iterator(config, train_ids, videos, loader, vocab, per_host_batch: int):
    """The training iterator of a captioner trainer (XE or SCST): this host's slice, batches
    of `per_host_batch`; its position is checkpointed with the state (`get_state`)."""
    from captioner_jax.data.pipeline import caption_dataset

    in_cfg = input_config(config.data, per_host_batch)
    return iter(caption_dataset(train_ids, videos, loader, vocab, in_cfg,
                                seed=int(config.seed), train=True))


# ---------------------------------------------------------------------- trained-run record
# A trained run's workdir holds, beside its checkpoints, the vocabulary its output layer was
# trained with (VOCAB_FILE) and MODEL_INFO: the model config, the vocabulary's size and
# sha256, the feature dimension and length. Every later stage (SCST, captioner_predict,
# caption_video) reads them from the run instead of rebuilding them from its own config.
VOCAB_FILE = "vocab.json"
MODEL_INFO = "model_info.json"
MODEL_INFO_FORMAT = 1


def vocab_digest(vocab: CaptionVocab) -> str:
    """sha256 of the vocabulary's word list (ids are positions): equal iff same token ids."""
    return hashlib.sha256(json.dumps(vocab.words).encode("utf-8")).hexdigest()


class VocabularyMismatchError(ValueError):
    pass


def _vocab_text(vocab: CaptionVocab, where: str) -> str:
    return f"{where} ({vocab.size} words, sha256 {vocab_digest(vocab)[:12]})"


def check_vocab_file(vocab: CaptionVocab, data_cfg, where: str) -> None:
    """Raises VocabularyMismatchError if `data_cfg.vocab_path` names an existing vocabulary
    file other than `vocab` (the one the run at `where` was trained with)."""
    path = data_cfg.get("vocab_path") or ""
    if not path or not paths.is_file(path):
        return
    other = CaptionVocab.load(path)
    if vocab_digest(other) != vocab_digest(vocab):
        raise VocabularyMismatchError(
            f"caption vocabulary mismatch: data.vocab_path {_vocab_text(other, path)} is not "
            f"the vocabulary the checkpoints were trained with, "
            f"{_vocab_text(vocab, where)}; set data.vocab_path to that file (or leave it "
            "empty)")


def model_info(config, vocab: CaptionVocab, feature_dim: int, model_cfg=None) -> dict:
    model_cfg = config.model if model_cfg is None else model_cfg
    model = {k: model_cfg[k] for k in MODEL_FIELDS if k in model_cfg}
    return {"format": MODEL_INFO_FORMAT, "model": model, "mode": str(config.mode),
            "feature_dim": int(feature_dim), "num_steps": int(config.data.num_steps),
            "vocab": {"file": VOCAB_FILE, "size": vocab.size, "sha256": vocab_digest(vocab)}}


def write_model_info(workdir: str, info: dict, vocab: CaptionVocab) -> None:
    """Writes `vocab.json` + `model_info.json` into a trainer's workdir (process 0).

    A workdir that already holds a run with another vocabulary (a resume after the vocabulary
    changed) is a VocabularyMismatchError: its checkpoints index the old token ids."""
    info_path = paths.join(workdir, MODEL_INFO)
    if paths.exists(info_path):
        old = read_json(info_path).get("vocab", {})
        if old.get("sha256") != info["vocab"]["sha256"]:
            raise VocabularyMismatchError(
                f"caption vocabulary mismatch: {workdir} holds a run trained with another "
                f"vocabulary ({old.get('size')} words, sha256 {str(old.get('sha256'))[:12]}) "
                f"than this one ({_vocab_text(vocab, 'now')}); use a new workdir")
    if distributed.is_main_process():
        vocab.save(paths.join(workdir, VOCAB_FILE))
        atomic_write_json(info_path, info)


@dataclasses.dataclass
class TrainedRun:
    """A trained captioner run: its workdir, vocabulary and `model_info.json`."""

    workdir: str
    vocab: CaptionVocab
    info: dict

    def build_model(self, config_model=None) -> PDVC:
        """The trained architecture (differences of `config_model` are logged, not used)."""
        if config_model is not None:
            differ = sorted(k for k, v in self.info["model"].items()
                            if k in config_model and config_model[k] != v)
            if differ:
                log.warning("model config differs from the trained run %s in %s: using the "
                            "trained run's values", self.workdir, differ)
        return build_model(self.info["model"], self.vocab.size + 1)

    def check_feature_dim(self, feature_dim: int) -> None:
        if int(feature_dim) != int(self.info["feature_dim"]):
            raise ValueError(
                f"features have {feature_dim} channels, but the captioner in {self.workdir} "
                f"was trained on {self.info['feature_dim']}: check data.features")


def load_trained_run(workdir: str, data_cfg=None) -> TrainedRun:
    """The vocabulary and model record of a trained run (see MODEL_INFO above); with
    `data_cfg`, its `vocab_path` (if it names a file) must be that vocabulary."""
    info_path = paths.join(workdir, MODEL_INFO)
    if not paths.exists(info_path):
        raise FileNotFoundError(
            f"{info_path} not found: {workdir} is not a trained captioner run (captioner_train "
            "writes its vocabulary and model record there)")
    info = read_json(info_path)
    vocab_path = paths.join(workdir, info["vocab"]["file"])
    vocab = CaptionVocab.load(vocab_path)
    if vocab_digest(vocab) != info["vocab"]["sha256"]:
        raise VocabularyMismatchError(
            f"caption vocabulary mismatch: {_vocab_text(vocab, vocab_path)} is not the "
            f"vocabulary recorded in {info_path} ({info['vocab']['size']} words, sha256 "
            f"{info['vocab']['sha256'][:12]})")
    if data_cfg is not None:
        check_vocab_file(vocab, data_cfg, vocab_path)
    return TrainedRun(workdir, vocab, info)
