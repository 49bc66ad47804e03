"""Temporal box helpers (PDVC `misc/detr_utils/box_ops.py`), vectorised in JAX.

Boxes are (centre, length) or (start, end), normalised by the video duration unless stated.
`box_iou` and `generalized_box_iou` use PDVC's epsilon of 1e-5 in the denominators.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def cl_to_xy(boxes: Array) -> Array:
    """(centre, length) -> (start, end); [..., 2]."""
    c, length = boxes[..., 0], boxes[..., 1]
    return jnp.stack([c - 0.5 * length, c + 0.5 * length], axis=-1)


def xy_to_cl(boxes: Array) -> Array:
    """(start, end) -> (centre, length); [..., 2]."""
    s, e = boxes[..., 0], boxes[..., 1]
    return jnp.stack([(s + e) / 2, e - s], axis=-1)


def box_iou(a: Array, b: Array) -> tuple[Array, Array]:
    """Pairwise IoU and union of (start, end) boxes a [..., N, 2], b [..., M, 2] -> [..., N, M]."""
    len_a = a[..., :, None, 1] - a[..., :, None, 0]
    len_b = b[..., None, :, 1] - b[..., None, :, 0]
    inter = jnp.maximum(
        jnp.minimum(a[..., :, None, 1], b[..., None, :, 1])
        - jnp.maximum(a[..., :, None, 0], b[..., None, :, 0]),
        0.0,
    )
    union = len_a + len_b - inter
    return inter / (union + 1e-5), union


def generalized_box_iou(a: Array, b: Array) -> Array:
    """Pairwise GIoU of (start, end) boxes: IoU - (hull - union) / hull -> [..., N, M]."""
    iou, union = box_iou(a, b)
    hull = jnp.maximum(
        jnp.maximum(a[..., :, None, 1], b[..., None, :, 1])
        - jnp.minimum(a[..., :, None, 0], b[..., None, :, 0]),
        0.0,
    )
    return iou - (hull - union) / (hull + 1e-5)


def paired_generalized_box_iou(a: Array, b: Array) -> Array:
    """Elementwise GIoU of matching (start, end) boxes a, b [..., 2] -> [...]."""
    return generalized_box_iou(a[..., None, :], b[..., None, :])[..., 0, 0]


def inverse_sigmoid(x: Array, eps: float = 1e-5) -> Array:
    """log(x / (1 - x)) with x clamped to [0, 1] and both terms to >= eps (Deformable DETR)."""
    x = jnp.clip(x, 0.0, 1.0)
    return jnp.log(jnp.maximum(x, eps) / jnp.maximum(1.0 - x, eps))
