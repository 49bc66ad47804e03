"""PDVC's base encoder: multi-level temporal feature maps with position embeddings.

Level 0: Conv1d k1 (C -> D) + GroupNorm(32); level 1: Conv1d k3 s2 p1 on the input features;
levels >= 2: Conv1d k3 s2 p1 (D -> D) on the previous level; each + GroupNorm(32), no
activation. For T = 100 the levels have 100 / 50 / 25 / 13 steps. Conv kernels Xavier-uniform,
biases 0 (PDVC `BaseEncoder`).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from captioner_jax.models.embeddings import PositionDurationEmbedding

Array = jax.Array


def conv_output_length(length: int) -> int:
    """Length after Conv1d(kernel 3, stride 2, padding 1)."""
    return (length + 2 - 3) // 2 + 1


def level_lengths(num_steps: int, num_levels: int) -> tuple[int, ...]:
    lengths = [num_steps]
    for _ in range(1, num_levels):
        lengths.append(conv_output_length(lengths[-1]))
    return tuple(lengths)


def lengths_from_total(total: int, num_levels: int) -> tuple[int, ...]:
    """Level lengths whose sum is the flattened memory length `total` (inverse of the above)."""
    for t in range((total + 1) // 2, total + 1):
        lengths = level_lengths(t, num_levels)
        if sum(lengths) == total:
            return lengths
    raise ValueError(f"no temporal length gives a {num_levels}-level memory of {total} steps")


def resize_mask_nearest(valid: Array, length: int) -> Array:
    """`F.interpolate(mode='nearest')` of a [B, T] mask to [B, length]: index floor(i*T/len)."""
    t = valid.shape[1]
    idx = jnp.floor(jnp.arange(length) * (t / length)).astype(jnp.int32)
    return valid[:, jnp.clip(idx, 0, t - 1)]


class StridedConv1d(nn.Module):
    """Conv1d(kernel 3, stride 2, padding 1) of [B, T, C] -> [B, T', features], computed as one
    matmul of the three taps side by side ([B, T', 3C] x [3C, features]).

    The parameters are `nn.Conv`'s ("kernel" [3, C, features], "bias" [features], the same
    names, shapes and initialisation), so checkpoints and the PDVC import are unchanged. XLA
    CPU ran `nn.Conv` here as a windowed convolution that transposed the [3, C, D] kernel
    at every call (a single-core profile of the batch-1 train step: ~15 ms of convolution
    and kernel transposes forward and backward for these three layers); the product of the
    reshaped kernel is the same sum in another order (float rounding)."""

    features: int
    kernel_init: nn.initializers.Initializer = nn.initializers.xavier_uniform()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: Array) -> Array:
        b, t, c = x.shape
        kernel = self.param("kernel", self.kernel_init, (3, c, self.features))
        bias = self.param("bias", self.bias_init, (self.features,))
        out = conv_output_length(t)
        padded = jnp.pad(x, ((0, 0), (1, 1), (0, 0)))
        # Output step i reads padded steps 2i, 2i + 1, 2i + 2 (tap k = padded[2i + k]).
        taps = jnp.concatenate(
            [padded[:, k:k + 2 * out - 1:2] for k in range(3)], axis=-1)  # [B, T', 3C]
        return taps @ kernel.reshape(3 * c, self.features) + bias


class BaseEncoder(nn.Module):
    """feats [B, T, C], valid [B, T] bool, duration_s [B] ->
    (srcs: list of [B, T_l, D], valids: list of [B, T_l], pos: list of [B, T_l, D])."""

    hidden_dim: int = 512
    num_levels: int = 4
    num_groups: int = 32

    @nn.compact
    def __call__(self, feats: Array, valid: Array, duration_s: Array):
        conv = dict(
            kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.zeros
        )
        pos_embed = PositionDurationEmbedding(self.hidden_dim, name="pos_embed")
        srcs, valids, poses = [], [], []
        for level in range(self.num_levels):
            if level == 0:
                x = nn.Conv(self.hidden_dim, (1,), name=f"input_proj_{level}", **conv)(feats)
                m = valid
            else:
                src_in = feats if level == 1 else srcs[-1]
                x = StridedConv1d(self.hidden_dim, name=f"input_proj_{level}", **conv)(src_in)
                m = resize_mask_nearest(valid, x.shape[1])
            x = nn.GroupNorm(num_groups=self.num_groups, epsilon=1e-5, name=f"norm_{level}")(x)
            srcs.append(x)
            valids.append(m)
            poses.append(pos_embed(m, duration_s))
        return srcs, valids, poses


def flatten_levels(srcs, valids, poses, level_embed: Array):
    """Concatenates levels on time. Returns memory [B, S, D], valid [B, S],
    pos + level embedding [B, S, D], valid_ratios [B, L] (valid fraction per level)."""
    memory = jnp.concatenate(srcs, axis=1)
    valid = jnp.concatenate(valids, axis=1)
    pos = jnp.concatenate([p + level_embed[i][None, None] for i, p in enumerate(poses)], axis=1)
    ratios = jnp.stack([v.astype(jnp.float32).mean(axis=1) for v in valids], axis=1)
    return memory, valid, pos, ratios
