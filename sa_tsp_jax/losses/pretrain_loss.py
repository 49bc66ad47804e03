"""The SA-TSP pretraining objective: L = L_action + alpha * L_temporal + beta * L_semantic.

- L_action: cross-entropy of the action head, background clips (label IGNORE_INDEX) ignored;
  mean over the non-ignored clips, as `torch.nn.CrossEntropyLoss(ignore_index=-1)`. When a
  batch has no foreground clip PyTorch returns NaN; we return 0 (deliberate difference, so a
  background-only batch does not trip the NaN guard).
- L_temporal: cross-entropy of the region head ("Action" / "No action"), mean over clips.
- L_semantic: the Asymmetric Loss (sum reduction, docs/reference.md section 3) of the concept head.
Setting a weight to 0 removes that term (and its head's gradient): action-only (alpha=beta=0),
TSP (beta=0) and SA-TSP pretraining are the same code. alpha and beta are not given in the
report; the defaults are 1 and 1.

Every term accepts an optional per-clip `valid` mask [B] (0 for padding clips of a
partial batch); padded clips contribute nothing.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from data_prep.labels.types import IGNORE_INDEX
from sa_tsp_jax.losses.asymmetric_loss import asymmetric_loss


@dataclasses.dataclass(frozen=True)
class PretrainLossConfig:
    """Weights and ASL hyper-parameters (action weight is TSP's 1.0)."""

    action_weight: float = 1.0
    alpha: float = 1.0  # temporal-region weight
    beta: float = 1.0  # semantic-concept weight
    gamma_neg: float = 4.0
    gamma_pos: float = 1.0
    clip: float = 0.05
    eps: float = 1e-8


def cross_entropy_ignore(logits: jnp.ndarray, labels: jnp.ndarray,
                         ignore_index: int = IGNORE_INDEX,
                         valid: jnp.ndarray | None = None) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Mean CE over clips whose label != ignore_index.

    Args: logits [B, K]; labels int [B]; valid optional [B] {0,1}.
    Returns: (loss scalar, number of counted clips scalar), float32.
    """
    logits = logits.astype(jnp.float32)
    keep = labels != ignore_index
    if valid is not None:
        keep = keep & (valid > 0)
    safe = jnp.where(keep, labels, 0)
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, safe[:, None].astype(jnp.int32), axis=-1)[:, 0]
    count = jnp.sum(keep.astype(jnp.float32))
    loss = jnp.sum(jnp.where(keep, nll, 0.0)) / jnp.maximum(count, 1.0)
    return loss, count


def pretrain_loss(outputs: dict[str, jnp.ndarray], batch: dict[str, jnp.ndarray],
                  cfg: PretrainLossConfig) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """Total loss and its terms.

    Args:
      outputs: model outputs (`action_logits`, `region_logits`, `concept_logits`).
      batch: `action_label` int [B], `region_label` int [B], `concepts` [B, N] multi-hot,
        optional `valid` [B].
      cfg: weights and ASL settings.
    Returns:
      (total, {"loss", "loss_action", "loss_temporal", "loss_semantic"}) float32 scalars;
      a disabled term is reported as 0.
    """
    valid = batch.get("valid")
    zero = jnp.zeros((), jnp.float32)
    terms = {"loss_action": zero, "loss_temporal": zero, "loss_semantic": zero}
    total = zero
    if cfg.action_weight > 0:
        terms["loss_action"], _ = cross_entropy_ignore(
            outputs["action_logits"], batch["action_label"], IGNORE_INDEX, valid)
        total = total + cfg.action_weight * terms["loss_action"]
    if cfg.alpha > 0:
        # No ignore index here: every real clip has a region label.
        terms["loss_temporal"], _ = cross_entropy_ignore(
            outputs["region_logits"], batch["region_label"], IGNORE_INDEX, valid)
        total = total + cfg.alpha * terms["loss_temporal"]
    if cfg.beta > 0:
        terms["loss_semantic"] = asymmetric_loss(
            outputs["concept_logits"], batch["concepts"], cfg.gamma_neg, cfg.gamma_pos,
            cfg.clip, cfg.eps, weights=valid)
        total = total + cfg.beta * terms["loss_semantic"]
    terms["loss"] = total
    return total, terms
