"""Deformable transformer layers of PDVC (post-norm), d_model 512, 8 heads, FFN 512.

Encoder layer: deformable self-attention (query = src + pos) -> add & LayerNorm -> FFN ->
add & LayerNorm. Decoder layer: multi-head self-attention over the event queries
(q = k = tgt + query_pos, v = tgt) -> add & norm -> deformable cross-attention -> add & norm ->
FFN -> add & norm. Dropout 0.1 after each sub-layer (and on attention weights, as
`nn.MultiheadAttention(dropout=0.1)`).
"""
from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from captioner_jax.models.deformable_attention import MSDeformAttn1D
from captioner_jax.models.init import xavier_linear

Array = jax.Array


class FeedForward(nn.Module):
    d_model: int = 512
    ffn_dim: int = 512
    dropout: float = 0.1

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        y = nn.Dense(self.ffn_dim, name="linear1", **xavier_linear(self.d_model))(x)
        y = nn.Dropout(self.dropout)(nn.relu(y), deterministic=not train)
        y = nn.Dense(self.d_model, name="linear2", **xavier_linear(self.ffn_dim))(y)
        x = x + nn.Dropout(self.dropout)(y, deterministic=not train)
        return nn.LayerNorm(epsilon=1e-5, name="norm")(x)


class EncoderLayer(nn.Module):
    d_model: int = 512
    ffn_dim: int = 512
    dropout: float = 0.1
    num_levels: int = 4
    num_heads: int = 8
    num_points: int = 4

    @nn.compact
    def __call__(self, src, pos, reference_points, level_lengths, padding, train: bool):
        """src, pos [B, S, D]; reference_points [B, S, L, 1]; padding [B, S] True = padded."""
        attn = MSDeformAttn1D(
            self.d_model, self.num_levels, self.num_heads, self.num_points, name="self_attn"
        )(src + pos, reference_points, src, level_lengths, padding)
        src = src + nn.Dropout(self.dropout)(attn, deterministic=not train)
        src = nn.LayerNorm(epsilon=1e-5, name="norm1")(src)
        return FeedForward(self.d_model, self.ffn_dim, self.dropout, name="ffn")(src, train)


def encoder_reference_points(level_lengths: Sequence[int], valid_ratios: Array) -> Array:
    """Centres of every memory step, PDVC `get_reference_points`.

    valid_ratios [B, L] -> [B, S, L, 1]: step i of level l sits at (i + 0.5) / (r_l * T_l),
    rescaled by each level's valid ratio r for sampling on that level.
    """
    refs = []
    for level, length in enumerate(level_lengths):
        centres = (jnp.arange(length, dtype=jnp.float32) + 0.5)[None, :]
        refs.append(centres / (valid_ratios[:, level, None] * length))
    ref = jnp.concatenate(refs, axis=1)  # [B, S]
    return (ref[:, :, None] * valid_ratios[:, None, :])[..., None]


class DecoderLayer(nn.Module):
    d_model: int = 512
    ffn_dim: int = 512
    dropout: float = 0.1
    num_levels: int = 4
    num_heads: int = 8
    num_points: int = 4

    @nn.compact
    def __call__(
        self, tgt, query_pos, reference_points, memory, level_lengths, memory_padding,
        query_valid, train: bool,
    ):
        """tgt, query_pos [B, N, D]; reference_points [B, N, L, 1|2]; memory [B, S, D];
        memory_padding [B, S] True = padded; query_valid [B, N] bool (GT-proposal padding)."""
        q = tgt + query_pos
        mask = nn.make_attention_mask(jnp.ones_like(query_valid), query_valid)  # [B,1,N,N]
        attn = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads,
            qkv_features=self.d_model,
            out_features=self.d_model,
            dropout_rate=self.dropout,
            kernel_init=nn.initializers.xavier_uniform(),
            bias_init=nn.initializers.zeros,
            name="self_attn",
        )(q, q, tgt, mask=mask, deterministic=not train)
        tgt = tgt + nn.Dropout(self.dropout)(attn, deterministic=not train)
        tgt = nn.LayerNorm(epsilon=1e-5, name="norm2")(tgt)
        cross = MSDeformAttn1D(
            self.d_model, self.num_levels, self.num_heads, self.num_points, name="cross_attn"
        )(tgt + query_pos, reference_points, memory, level_lengths, memory_padding)
        tgt = tgt + nn.Dropout(self.dropout)(cross, deterministic=not train)
        tgt = nn.LayerNorm(epsilon=1e-5, name="norm1")(tgt)
        return FeedForward(self.d_model, self.ffn_dim, self.dropout, name="ffn")(tgt, train)
