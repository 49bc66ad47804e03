"""Optimizers of TSP pretraining: per-group learning rates, frozen stem, warmup + steps.

TSP (train/train.py): SGD momentum 0.9, weight decay 0.005 (PyTorch SGD: the decay is added to
the gradient before the momentum buffer), two parameter groups — backbone (lr 1e-4 x world
size) and heads (lr 2e-3 x world size) — and `WarmupMultiStepLR`:
  factor(it) = [wf * (1 - it / W) + it / W if it < W else 1] * gamma ** #(milestones <= it)
with wf = 1e-5, W = warmup epochs x iterations per epoch, milestones in iterations.
The stem is frozen (docs/reference.md section 2: lr 0): its parameters get no update at all.
The "adam" option swaps SGD for AdamW with the same groups and schedule.
"""
from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

FROZEN, BACKBONE, HEAD = "frozen", "backbone", "head"


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Learning rates are per step of the *global* batch (TSP multiplies by world size)."""

    name: str = "sgd"  # "sgd" | "adam"
    backbone_lr: float = 1e-4 * 2
    head_lr: float = 2e-3 * 2
    momentum: float = 0.9
    weight_decay: float = 0.005
    warmup_epochs: float = 2.0
    warmup_factor: float = 1e-5
    milestones_epochs: Sequence[float] = (4, 6)
    gamma: float = 0.01
    freeze_stem: bool = True
    adam_b1: float = 0.9
    adam_b2: float = 0.999

    @classmethod
    def from_mapping(cls, d) -> OptimConfig:
        d = dict(d)
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise KeyError(f"unknown optimizer settings {unknown}")
        if "milestones_epochs" in d:
            d["milestones_epochs"] = tuple(d["milestones_epochs"])
        return cls(**d)


def lr_factor_fn(steps_per_epoch: int, cfg: OptimConfig):
    """step -> multiplicative lr factor (TSP WarmupMultiStepLR, counted in optimizer steps)."""
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    milestones = [float(round(m * steps_per_epoch)) for m in cfg.milestones_epochs]

    def factor(step):
        step = jnp.asarray(step, jnp.float32)
        if warmup > 0:
            alpha = step / warmup
            warm = jnp.where(step < warmup, cfg.warmup_factor * (1 - alpha) + alpha, 1.0)
        else:
            warm = 1.0
        passed = sum((step >= m).astype(jnp.float32) for m in milestones) if milestones else 0.0
        return warm * jnp.power(cfg.gamma, passed)

    return factor


def lr_factor_reference(step: int, steps_per_epoch: int, cfg: OptimConfig) -> float:
    """Pure-Python version of the schedule (for logs and tests)."""
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    milestones = sorted(int(round(m * steps_per_epoch)) for m in cfg.milestones_epochs)
    warm = 1.0
    if step < warmup:
        alpha = step / warmup
        warm = cfg.warmup_factor * (1 - alpha) + alpha
    return warm * cfg.gamma ** bisect.bisect_right(milestones, step)


def param_labels(params, freeze_stem: bool = True):
    """Pytree of group labels: stem -> "frozen" (if asked), other backbone -> "backbone",
    everything else (heads) -> "head"."""

    def label(path, _):
        keys = [getattr(p, "key", str(p)) for p in path]
        if keys and keys[0] == "backbone":
            if freeze_stem and len(keys) > 1 and keys[1].startswith("stem"):
                return FROZEN
            return BACKBONE
        return HEAD

    return jax.tree_util.tree_map_with_path(label, params)


def _group(lr: float, factor, cfg: OptimConfig) -> optax.GradientTransformation:
    schedule = lambda step: lr * factor(step)
    if cfg.name == "sgd":
        return optax.chain(
            optax.add_decayed_weights(cfg.weight_decay),  # PyTorch SGD: g += wd * p first
            optax.trace(decay=cfg.momentum, nesterov=False),  # buf = m * buf + g
            optax.scale_by_learning_rate(schedule),
        )
    if cfg.name == "adam":
        return optax.adamw(schedule, b1=cfg.adam_b1, b2=cfg.adam_b2,
                           weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.name!r} (expected 'sgd' or 'adam')")


def make_optimizer(cfg: OptimConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """optax.multi_transform over the frozen / backbone / head groups."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    factor = lr_factor_fn(steps_per_epoch, cfg)
    transforms = {
        FROZEN: optax.set_to_zero(),
        BACKBONE: _group(cfg.backbone_lr, factor, cfg),
        HEAD: _group(cfg.head_lr, factor, cfg),
    }
    return optax.multi_transform(transforms, lambda p: param_labels(p, cfg.freeze_stem))
