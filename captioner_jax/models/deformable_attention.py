"""1-D multi-scale deformable attention (PDVC's temporal version of Deformable DETR), in JAX.

Notation: B videos, Q queries, S = sum_l T_l flattened memory positions over L levels, H heads,
P sampling points per head and level, Dh = d_model / H channels per head.

A sampling location is a fraction of the (valid) video length in [0, 1]. On level l with T_l
steps it is read at the continuous index `x = loc * T_l - 0.5` by linear interpolation between
floor(x) and floor(x) + 1. This equals PyTorch `grid_sample(align_corners=False)` on a 1 x T_l
"image", which is what PDVC's CUDA kernel computes for the transformer (`padding="zeros"`:
neighbours outside [0, T_l) contribute 0) and what its pure-PyTorch path computes for the
caption head's sampler (`padding="border"`: the coordinate is clamped to [0, T_l - 1]).

Everything is batched and gathers with `take_along_axis`, so it runs on any backend under
`jit` without a custom kernel.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def level_start_index(level_lengths: Sequence[int]) -> tuple[int, ...]:
    """Offsets of each level in the flattened memory: (0, T_0, T_0 + T_1, ...)."""
    starts, total = [], 0
    for length in level_lengths:
        starts.append(total)
        total += int(length)
    return tuple(starts)


def sample_levels(
    value: Array,
    level_lengths: Sequence[int],
    sampling_locations: Array,
    padding: str = "zeros",
) -> Array:
    """Linearly interpolated values at the sampling locations.

    Args:
      value: [B, S, H, Dh] flattened multi-level memory (already projected).
      level_lengths: static (T_0, ..., T_{L-1}) with sum == S.
      sampling_locations: [B, Q, H, L, P] normalised positions (0 = start, 1 = end).
      padding: "zeros" (PDVC transformer) or "border" (PDVC caption sampler).

    Returns:
      [B, Q, H, L, P, Dh] sampled values.
    """
    if padding not in ("zeros", "border"):
        raise ValueError(f"padding must be 'zeros' or 'border', got {padding!r}")
    b, s, h, dh = value.shape
    _, q, _, num_levels, p = sampling_locations.shape
    if sum(level_lengths) != s or len(level_lengths) != num_levels:
        raise ValueError(
            f"level lengths {tuple(level_lengths)} do not fit memory length {s} and "
            f"{num_levels} sampled levels"
        )
    per_level = []
    for level, (start, length) in enumerate(
        zip(level_start_index(level_lengths), level_lengths)
    ):
        v = jnp.transpose(value[:, start : start + length], (0, 2, 1, 3))  # [B, H, T, Dh]
        x = sampling_locations[:, :, :, level, :] * length - 0.5  # [B, Q, H, P]
        if padding == "border":
            x = jnp.clip(x, 0.0, length - 1.0)
        x0 = jnp.floor(x)
        frac = x - x0
        i0 = x0.astype(jnp.int32)
        i1 = i0 + 1
        w0 = 1.0 - frac
        w1 = frac
        # Out-of-range neighbours read zeros (for "border" only i1 == T with weight 0 happens).
        w0 = jnp.where((i0 >= 0) & (i0 < length), w0, 0.0)
        w1 = jnp.where((i1 >= 0) & (i1 < length), w1, 0.0)
        i0 = jnp.clip(i0, 0, length - 1)
        i1 = jnp.clip(i1, 0, length - 1)

        def gather(idx, v=v):
            # idx [B, Q, H, P] -> [B, H, Q*P, 1] to gather along T of [B, H, T, Dh].
            flat = jnp.transpose(idx, (0, 2, 1, 3)).reshape(b, h, q * p, 1)
            got = jnp.take_along_axis(v, flat, axis=2)  # [B, H, Q*P, Dh]
            return jnp.transpose(got.reshape(b, h, q, p, dh), (0, 2, 1, 3, 4))  # [B,Q,H,P,Dh]

        sampled = gather(i0) * w0[..., None].astype(value.dtype) + gather(i1) * w1[
            ..., None
        ].astype(value.dtype)
        per_level.append(sampled)
    return jnp.stack(per_level, axis=3)  # [B, Q, H, L, P, Dh]


def ms_deform_attn_core(
    value: Array,
    level_lengths: Sequence[int],
    sampling_locations: Array,
    attention_weights: Array,
    padding: str = "zeros",
) -> Array:
    """Attention-weighted sum of the sampled values.

    Computed as one dense product per level: the attention weights times the interpolation
    weights of every point form a [Q, T_l] matrix per video and head (at most 2 * P non-zeros
    in a row), multiplied with the level's values. This is `sample_levels` followed by the
    weighted sum over levels and points, with the sums in another order (float rounding
    noise), and it avoids gathers: on CPU, XLA's gather and, in the backward pass, its
    scatter-add cost 5-25x the dense products at PDVC's sizes (T_l <= a few hundred).

    Args:
      value: [B, S, H, Dh]; sampling_locations, attention_weights: [B, Q, H, L, P].
    Returns:
      [B, Q, H * Dh].
    """
    if padding not in ("zeros", "border"):
        raise ValueError(f"padding must be 'zeros' or 'border', got {padding!r}")
    b, s, h, dh = value.shape
    _, q, _, num_levels, p = sampling_locations.shape
    if sum(level_lengths) != s or len(level_lengths) != num_levels:
        raise ValueError(
            f"level lengths {tuple(level_lengths)} do not fit memory length {s} and "
            f"{num_levels} sampled levels"
        )
    weights = attention_weights.astype(value.dtype)
    out = None
    for level, (start, length) in enumerate(
        zip(level_start_index(level_lengths), level_lengths)
    ):
        x = sampling_locations[:, :, :, level, :] * length - 0.5  # [B, Q, H, P]
        if padding == "border":
            x = jnp.clip(x, 0.0, length - 1.0)
        x0 = jnp.floor(x)
        frac = (x - x0).astype(value.dtype)
        i0 = x0.astype(jnp.int32)[..., None]
        a = weights[:, :, :, level, :]
        steps = jnp.arange(length, dtype=jnp.int32)
        # Out-of-range neighbours match no step: they read zeros ("zeros" padding; for
        # "border" only i0 + 1 == T happens, with weight 0).
        mix = (jnp.where(i0 == steps, (a * (1.0 - frac))[..., None], 0.0)
               + jnp.where(i0 + 1 == steps, (a * frac)[..., None], 0.0)).sum(3)  # [B,Q,H,T]
        part = jnp.einsum("bqht,bthd->bqhd", mix, value[:, start:start + length])
        out = part if out is None else out + part
    return out.reshape(b, q, h * dh)


def sampling_locations_from_reference(
    reference_points: Array, offsets: Array, level_lengths: Sequence[int], num_points: int
) -> Array:
    """PDVC's sampling locations.

    Args:
      reference_points: [B, Q, L, 1] (centres) or [B, Q, L, 2] (centre, length), in [0, 1].
      offsets: [B, Q, H, L, P] raw offsets from the query.
    Returns:
      [B, Q, H, L, P]: `ref + offset / T_l` for point references, and
      `c + offset / P * l * 0.5` for (c, l) references (offsets scaled by the box).
    """
    if reference_points.shape[-1] == 1:
        normaliser = jnp.asarray(level_lengths, offsets.dtype)[None, None, None, :, None]
        return reference_points[:, :, None, :, None, 0] + offsets / normaliser
    if reference_points.shape[-1] == 2:
        centre = reference_points[:, :, None, :, None, 0]
        length = reference_points[:, :, None, :, None, 1]
        return centre + offsets / num_points * length * 0.5
    raise ValueError(f"reference points must end in 1 or 2, got {reference_points.shape}")


def offset_bias_init(num_heads: int, num_levels: int, num_points: int, centred: bool = False):
    """PDVC's initial sampling offsets: head h looks in direction d_h (the x component of the
    unit-square direction at angle 2*pi*h/H, i.e. [1, 1, 0, -1, -1, -1, 0, 1] for 8 heads),
    point p at distance p + 1. `centred` (the caption sampler) subtracts the mean over points.
    Returns an initializer for a [H * L * P] bias, ordered (head, level, point)."""

    def init(key, shape, dtype=jnp.float32):
        del key
        thetas = jnp.arange(num_heads, dtype=jnp.float32) * (2.0 * math.pi / num_heads)
        cos, sin = jnp.cos(thetas), jnp.sin(thetas)
        direction = cos / jnp.maximum(jnp.abs(cos), jnp.abs(sin))
        grid = direction[:, None, None] * jnp.arange(1, num_points + 1, dtype=jnp.float32)
        grid = jnp.broadcast_to(grid, (num_heads, num_levels, num_points))
        if centred:
            grid = grid - grid.mean(axis=2, keepdims=True)
        return grid.reshape(shape).astype(dtype)

    return init


class MSDeformAttn1D(nn.Module):
    """Multi-scale deformable attention over a 1-D multi-level memory (PDVC `MSDeformAttn`).

    Init as PDVC: offset and attention-weight projections have zero kernels, offset bias from
    `offset_bias_init`, attention bias 0; value/output projections Xavier-uniform, bias 0.
    """

    d_model: int = 512
    num_levels: int = 4
    num_heads: int = 8
    num_points: int = 4
    padding: str = "zeros"

    @nn.compact
    def __call__(
        self,
        query: Array,
        reference_points: Array,
        memory: Array,
        level_lengths: Sequence[int],
        memory_padding: Array | None = None,
    ) -> Array:
        """query [B, Q, C]; reference_points [B, Q, L, 1|2]; memory [B, S, d_model];
        memory_padding [B, S] True where padded. Returns [B, Q, d_model]."""
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} not divisible by {self.num_heads} heads")
        b, q, _ = query.shape
        h, lv, p = self.num_heads, self.num_levels, self.num_points
        value = nn.Dense(
            self.d_model,
            kernel_init=nn.initializers.xavier_uniform(),
            bias_init=nn.initializers.zeros,
            name="value_proj",
        )(memory)
        if memory_padding is not None:
            value = jnp.where(memory_padding[..., None], 0.0, value)
        value = value.reshape(b, value.shape[1], h, self.d_model // h)
        offsets = nn.Dense(
            h * lv * p,
            kernel_init=nn.initializers.zeros,
            bias_init=offset_bias_init(h, lv, p),
            name="sampling_offsets",
        )(query).reshape(b, q, h, lv, p)
        weights = nn.Dense(
            h * lv * p,
            kernel_init=nn.initializers.zeros,
            bias_init=nn.initializers.zeros,
            name="attention_weights",
        )(query).reshape(b, q, h, lv * p)
        weights = jax.nn.softmax(weights, axis=-1).reshape(b, q, h, lv, p)
        locations = sampling_locations_from_reference(reference_points, offsets, level_lengths, p)
        out = ms_deform_attn_core(value, level_lengths, locations, weights, self.padding)
        return nn.Dense(
            self.d_model,
            kernel_init=nn.initializers.xavier_uniform(),
            bias_init=nn.initializers.zeros,
            name="output_proj",
        )(out)


class DeformableSampler1D(nn.Module):
    """The caption head's sampler (PDVC `MSDeformAttnCap`): returns the H x L x P sampled value
    vectors around an event instead of their weighted sum (the LSTM-DSA head attends over them
    itself). Border padding and point-centred offset init as PDVC.

    Deliberate difference: PDVC also builds an attention-weight projection and an output
    projection that it never uses; they are omitted here (no effect on outputs or gradients).

    Use `project(memory)` once per video and `sample(query, refs, values)` per decoding step.
    """

    d_model: int = 512
    num_levels: int = 4
    num_heads: int = 1
    num_points: int = 4

    def setup(self):
        h, lv, p = self.num_heads, self.num_levels, self.num_points
        self.value_proj = nn.Dense(
            self.d_model,
            kernel_init=nn.initializers.xavier_uniform(),
            bias_init=nn.initializers.zeros,
        )
        self.sampling_offsets = nn.Dense(
            h * lv * p,
            kernel_init=nn.initializers.zeros,
            bias_init=offset_bias_init(h, lv, p, centred=True),
        )

    def project(self, memory: Array, memory_padding: Array | None = None) -> Array:
        """memory [B, S, d_model] -> values [B, S, H, Dh]."""
        value = self.value_proj(memory)
        if memory_padding is not None:
            value = jnp.where(memory_padding[..., None], 0.0, value)
        b, s, _ = value.shape
        return value.reshape(b, s, self.num_heads, self.d_model // self.num_heads)

    def sample(
        self, query: Array, reference_points: Array, values: Array, level_lengths: Sequence[int]
    ) -> Array:
        """query [B, Q, C]; reference_points [B, Q, L', 1|2] (first `num_levels` levels used);
        values [B, S, H, Dh]. Returns [B, Q, H, L * P, Dh]."""
        b, q, _ = query.shape
        h, lv, p = self.num_heads, self.num_levels, self.num_points
        level_lengths = tuple(level_lengths)[:lv]
        values = values[:, : sum(level_lengths)]
        reference_points = reference_points[:, :, :lv]
        offsets = self.sampling_offsets(query).reshape(b, q, h, lv, p)
        locations = sampling_locations_from_reference(reference_points, offsets, level_lengths, p)
        sampled = sample_levels(values, level_lengths, locations, padding="border")
        return sampled.reshape(b, q, h, lv * p, sampled.shape[-1])
