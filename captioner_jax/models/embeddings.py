"""Position, duration and proposal embeddings of PDVC (`position_encoding.py`, transformer).

Masks here are *valid* masks (True = a real time step), the opposite of PDVC's padding masks.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from captioner_jax.models.init import torch_linear

Array = jax.Array


def _interleave_sin_cos(pos: Array) -> Array:
    """[..., F] phases -> [..., F]: (sin of even channels, cos of odd channels) pairwise."""
    sin = jnp.sin(pos[..., 0::2])
    cos = jnp.cos(pos[..., 1::2])
    return jnp.stack([sin, cos], axis=-1).reshape(pos.shape)


def _dim_t(num_feats: int, temperature: float) -> Array:
    d = jnp.arange(num_feats, dtype=jnp.float32)
    return temperature ** (2 * (d // 2) / num_feats)


def sine_position_embedding(
    valid: Array, num_feats: int = 256, temperature: float = 10000.0
) -> Array:
    """DETR/PDVC normalized sine embedding of time steps.

    valid: [B, T] bool. Position of step t = cumsum(valid)[t], normalised as
    (pos - 0.5) / (count + 1e-6) * 2*pi. Returns [B, T, num_feats].
    """
    x = jnp.cumsum(valid.astype(jnp.float32), axis=1)
    x = (x - 0.5) / (x[:, -1:] + 1e-6) * (2 * math.pi)
    return _interleave_sin_cos(x[:, :, None] / _dim_t(num_feats, temperature))


def proposal_sine_embedding(
    boxes: Array, num_feats: int = 256, temperature: float = 10000.0, eps: float = 1e-5
) -> Array:
    """PDVC `get_proposal_pos_embed`: boxes [B, N, 2] in [0, 1] (centre, length) ->
    [B, N, 2 * num_feats]. PDVC computes sigmoid(inverse_sigmoid(box)), i.e. the box clamped
    to [eps, 1 - eps], times 2*pi."""
    b = jnp.clip(boxes, eps, 1.0 - eps) * (2 * math.pi)
    pos = _interleave_sin_cos(b[..., None] / _dim_t(num_feats, temperature))  # [B, N, 2, F]
    return pos.reshape(*boxes.shape[:-1], 2 * num_feats)


class DurationEmbedding(nn.Module):
    """Linear(max_duration -> max_duration) on a vector with ones in its first
    min(int(duration_s), max_duration) slots (PDVC `duration_embedding`)."""

    max_duration: int = 256

    @nn.compact
    def __call__(self, duration_s: Array) -> Array:
        """duration_s [B] seconds -> [B, max_duration]."""
        n = jnp.clip(duration_s.astype(jnp.int32), 0, self.max_duration)
        ones = (jnp.arange(self.max_duration)[None, :] < n[:, None]).astype(jnp.float32)
        return nn.Dense(self.max_duration, **torch_linear(self.max_duration))(ones)


class PositionDurationEmbedding(nn.Module):
    """PDVC position embedding: [sine(hidden/2), duration(hidden/2)] -> [B, T, hidden]."""

    hidden_dim: int = 512

    @nn.compact
    def __call__(self, valid: Array, duration_s: Array) -> Array:
        half = self.hidden_dim // 2
        pos = sine_position_embedding(valid, half)
        dur = DurationEmbedding(half, name="duration")(duration_s)
        return jnp.concatenate([pos, jnp.broadcast_to(dur[:, None], pos.shape)], axis=-1)
