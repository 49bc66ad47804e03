"""Hungarian matching of event queries to ground-truth events with PDVC's costs.

cost[q, g] = w_class * focal_cost(q) + w_bbox * L1(box_q, box_g) + w_giou * (-GIoU(q, g)),
focal_cost = alpha (1-p)^gamma (-log(p + 1e-8)) - (1-alpha) p^gamma (-log(1 - p + 1e-8)),
p = sigmoid(class logit). PDVC (ActivityNet): w_class 2, w_bbox 0, w_giou 4, alpha 0.25,
gamma 2 (`cfgs/anet_c3d_pdvcl.yml`, `pdvc/matcher.py`).

The cost matrix is computed in JAX; the assignment is solved on the host by SciPy's
`linear_sum_assignment` through `jax.pure_callback`, so `match` works inside `jit`. The result
is a fixed-shape int32 array [B, N]: for every query the index of its ground-truth event or -1.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from captioner_jax import box_ops

Array = jax.Array


def focal_class_cost(logits: Array, alpha: float = 0.25, gamma: float = 2.0) -> Array:
    """[...] logits -> [...] cost of calling that query an event (Deformable DETR)."""
    p = jax.nn.sigmoid(logits)
    neg = (1 - alpha) * (p**gamma) * (-jnp.log(1 - p + 1e-8))
    pos = alpha * ((1 - p) ** gamma) * (-jnp.log(p + 1e-8))
    return pos - neg


def matching_cost(
    logits: Array,
    boxes: Array,
    gt_boxes: Array,
    *,
    cost_class: float = 2.0,
    cost_bbox: float = 0.0,
    cost_giou: float = 4.0,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> Array:
    """logits [B, N], boxes [B, N, 2] and gt_boxes [B, G, 2] in (centre, length) -> [B, N, G]."""
    cls = focal_class_cost(logits, alpha, gamma)[:, :, None]
    l1 = jnp.abs(boxes[:, :, None, :] - gt_boxes[:, None, :, :]).sum(-1)
    giou = box_ops.generalized_box_iou(box_ops.cl_to_xy(boxes), box_ops.cl_to_xy(gt_boxes))
    return cost_bbox * l1 + cost_class * cls - cost_giou * giou


def hungarian_assign_host(cost: np.ndarray, num_gt: np.ndarray) -> np.ndarray:
    """Host solver: cost [B, N, G], num_gt [B] (valid events are the first num_gt columns)
    -> [B, N] int32 ground-truth index per query or -1. min(N, num_gt) pairs per video."""
    cost = np.asarray(cost, np.float64)
    num_gt = np.asarray(num_gt).reshape(-1)
    out = np.full(cost.shape[:2], -1, np.int32)
    for b in range(cost.shape[0]):
        n = int(num_gt[b])
        if n <= 0:
            continue
        c = cost[b, :, :n]
        if not np.all(np.isfinite(c)):
            c = np.nan_to_num(c, nan=1e8, posinf=1e8, neginf=-1e8)
        rows, cols = linear_sum_assignment(c)
        out[b, rows] = cols
    return out


def hungarian_assign(cost: Array, gt_valid: Array) -> Array:
    """In-graph wrapper: cost [B, N, G], gt_valid [B, G] (a prefix mask) -> [B, N] int32."""
    num_gt = gt_valid.astype(jnp.int32).sum(axis=1)
    shape = jax.ShapeDtypeStruct(cost.shape[:2], jnp.int32)
    return jax.pure_callback(
        hungarian_assign_host, shape, jax.lax.stop_gradient(cost), num_gt,
        vmap_method="sequential",
    )


def identity_assign(num_queries: int, gt_valid: Array) -> Array:
    """GT-proposal mode: query i is built from ground-truth event i, so it is matched to it
    (the optimum PDVC's GIoU matcher finds for identical boxes). -> [B, N] int32."""
    idx = jnp.arange(num_queries, dtype=jnp.int32)[None, :]
    valid = jnp.pad(gt_valid, ((0, 0), (0, max(0, num_queries - gt_valid.shape[1]))))
    return jnp.where(valid[:, :num_queries], idx, -1)
