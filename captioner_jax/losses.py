"""PDVC's set losses for one decoder layer, given a query -> ground-truth assignment.

All localisation losses are normalised by the number of ground-truth events in the batch
(clamped to >= 1), as PDVC's `SetCriterion`:
  * loss_ce: sigmoid focal loss (alpha 0.25, gamma 2) summed over every query / num_gt;
  * loss_bbox: L1 of matched (centre, length) boxes / num_gt;
  * loss_giou: sum(1 - GIoU) of matched boxes / num_gt;
  * loss_counter: BCE-with-logits on the one-hot of min(#GT, C) over C + 1 count classes,
    weighted by (1 - PDVC's ActivityNet count-class rate) and by PDVC's Gaussian mask
    (sigma 2, beta 1) on the negative classes, mean over classes and videos;
  * loss_caption: per caption -sum(log p(word) * mask) / (#tokens + 1e-6) (EOS included),
    averaged over matched captions.
PDVC's ActivityNet weights: ce 2, bbox 0, giou 4, counter 0.5, caption 2, same on every layer.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from captioner_jax import box_ops

Array = jax.Array

# PDVC `criterion.py`: frequency of each event count on ActivityNet train (index = count).
COUNTER_CLASS_RATE = np.asarray([
    0.0, 0.0, 1.93425917e-01, 4.12129084e-01, 1.88929963e-01, 7.81296833e-02,
    5.09541413e-02, 3.12718553e-02, 1.84833650e-02, 8.39244680e-03, 6.59406534e-03,
    4.49595364e-03, 2.19802178e-03, 1.79838146e-03, 5.99460486e-04, 4.99550405e-04,
    4.99550405e-04, 1.99820162e-04, 2.99730243e-04, 3.99640324e-04, 2.99730243e-04, 0.0,
    1.99820162e-04, 0.0, 0.0, 0.0, 9.99100809e-05, 9.99100809e-05,
], np.float32)

PDVC_WEIGHTS = {
    "loss_ce": 2.0, "loss_bbox": 0.0, "loss_giou": 4.0, "loss_counter": 0.5, "loss_caption": 2.0
}


def sigmoid_focal_loss(logits: Array, targets: Array, alpha=0.25, gamma=2.0) -> Array:
    """Elementwise RetinaNet focal loss."""
    p = jax.nn.sigmoid(logits)
    ce = jnp.maximum(logits, 0) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    return (alpha * targets + (1 - alpha) * (1 - targets)) * loss


def counter_loss(count_logits: Array, num_gt: Array, gaussian_mask: bool = True,
                 beta: float = 1.0, sigma: float = 2.0) -> Array:
    """count_logits [B, C+1], num_gt [B] -> scalar (PDVC `cross_entropy_with_gaussian_mask`)."""
    classes = count_logits.shape[-1]
    target_idx = jnp.minimum(num_gt, classes - 1)
    target = jax.nn.one_hot(target_idx, classes)
    rate = np.zeros(classes, np.float32)
    rate[: min(classes, len(COUNTER_CLASS_RATE))] = COUNTER_CLASS_RATE[:classes]
    weight = 1.0 - jnp.asarray(rate)
    bce = (jnp.maximum(count_logits, 0) - count_logits * target
           + jnp.log1p(jnp.exp(-jnp.abs(count_logits)))) * weight
    if gaussian_mask:
        k = jnp.arange(classes, dtype=jnp.float32)[None, :]
        mask = jnp.exp(-((k - target_idx[:, None]) ** 2) / (2 * sigma**2))
        coef = target + ((1 - mask) ** beta) * (1 - target)
    else:
        coef = jnp.ones_like(target)
    return (bce * coef).mean(axis=1).mean()


def caption_nll(token_logprobs: Array, token_mask: Array) -> Array:
    """token_logprobs, token_mask [..., T] -> [...] mean NLL per caption (PDVC build_loss)."""
    mask = token_mask.astype(token_logprobs.dtype)
    return -(token_logprobs * mask).sum(-1) / (mask.sum(-1) + 1e-6)


def set_losses(
    logits: Array,
    boxes: Array,
    counts: Array,
    assignment: Array,
    gt_boxes: Array,
    gt_valid: Array,
    *,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
) -> dict[str, Array]:
    """Localisation losses of one layer.

    logits [B, N]; boxes [B, N, 2] (centre, length); counts [B, C+1]; assignment [B, N]
    (GT index or -1); gt_boxes [B, G, 2]; gt_valid [B, G].
    """
    num_gt_per_video = gt_valid.astype(jnp.int32).sum(1)
    num_boxes = jnp.maximum(num_gt_per_video.sum().astype(jnp.float32), 1.0)
    matched = assignment >= 0
    target_cls = matched.astype(logits.dtype)
    loss_ce = sigmoid_focal_loss(logits, target_cls, focal_alpha, focal_gamma).sum() / num_boxes
    idx = jnp.maximum(assignment, 0)
    tgt = jnp.take_along_axis(gt_boxes, idx[..., None], axis=1)  # [B, N, 2]
    w = matched.astype(boxes.dtype)
    loss_bbox = (jnp.abs(boxes - tgt).sum(-1) * w).sum() / num_boxes
    giou = box_ops.paired_generalized_box_iou(box_ops.cl_to_xy(boxes), box_ops.cl_to_xy(tgt))
    loss_giou = ((1 - giou) * w).sum() / num_boxes
    return {
        "loss_ce": loss_ce,
        "loss_bbox": loss_bbox,
        "loss_giou": loss_giou,
        "loss_counter": counter_loss(counts, num_gt_per_video),
    }


def matched_caption_loss(token_logprobs: Array, token_mask: Array, assignment: Array) -> Array:
    """token_logprobs, token_mask [B, N, T] (targets of each query's matched caption);
    assignment [B, N] -> scalar mean NLL over matched queries."""
    per_caption = caption_nll(token_logprobs, token_mask)
    matched = (assignment >= 0).astype(per_caption.dtype)
    return (per_caption * matched).sum() / jnp.maximum(matched.sum(), 1.0)


def weighted_total(losses: dict[str, Array], weights: dict[str, float]) -> Array:
    """Sum of `weights[name] * value` over per-layer keys named `<name>` or `<name>_<layer>`."""
    total = 0.0
    for key, value in losses.items():
        base = key.rsplit("_", 1)[0] if key[-1].isdigit() else key
        total = total + weights.get(base, 0.0) * value
    return total
