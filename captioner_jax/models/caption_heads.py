"""PDVC caption heads as one-step cells (the time loop lives in `captioner_jax.decoding`).

LSTM-DSA ("standard", PDVC `LSTM_DSA.py`): at every step the query [h_{t-1}, event feature]
drives a 1-head deformable sampler (L levels x P points, border padding) around the event's
reference; additive attention (ctx2att, h2att, tanh, alpha_net, softmax over the L*P samples)
pools the sampled vectors; an LSTM without biases reads [word embedding, attended context,
event feature]; dropout 0.5; Linear(rnn -> vocab) and log-softmax.

Light ("light", PDVC `LSTM.py` LightCaptioner): the LSTM reads [word embedding, event feature].

Inits as PDVC: embedding and logit weights U(-0.1, 0.1), logit bias 0; LSTM weights
U(-1/sqrt(rnn), +); attention Linears PyTorch default.

Shapes: events are batched as [B, E] (B videos, E event slots per video); the state is
(h, c), each [B, E, rnn_size]; `vocab_size` counts every output index (index 0 = BOS/EOS/pad).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from captioner_jax.models.deformable_attention import DeformableSampler1D
from captioner_jax.models.init import torch_linear, torch_uniform

Array = jax.Array
CAPTION_HEADS = ("lstm_dsa", "light")


class LSTMCellNoBias(nn.Module):
    """PyTorch `nn.LSTM(bias=False)` single step, gate order (input, forget, cell, output)."""

    hidden: int

    @nn.compact
    def __call__(self, state, x):
        h, c = state
        init = torch_uniform(1.0 / math.sqrt(self.hidden))
        gates = nn.Dense(4 * self.hidden, use_bias=False, kernel_init=init, name="ih")(x)
        gates = gates + nn.Dense(4 * self.hidden, use_bias=False, kernel_init=init, name="hh")(h)
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return h, c


class CaptionCell(nn.Module):
    """One decoding step of a PDVC caption head."""

    kind: str = "lstm_dsa"
    vocab_size: int = 5748
    d_model: int = 512
    rnn_size: int = 512
    word_dim: int = 512
    att_hid: int = 512
    num_levels: int = 4
    num_heads: int = 1
    num_points: int = 4
    dropout: float = 0.5

    def setup(self):
        if self.kind not in CAPTION_HEADS:
            raise ValueError(f"caption head {self.kind!r} unknown; use one of {CAPTION_HEADS}")
        self.embed = nn.Embed(self.vocab_size, self.word_dim, embedding_init=torch_uniform(0.1))
        self.lstm = LSTMCellNoBias(self.rnn_size)
        self.logit = nn.Dense(
            self.vocab_size, kernel_init=torch_uniform(0.1), bias_init=nn.initializers.zeros
        )
        self.drop = nn.Dropout(self.dropout)
        if self.kind == "lstm_dsa":
            if self.rnn_size != self.d_model:
                raise ValueError("LSTM-DSA needs rnn_size == d_model (PDVC's 2*d_model query)")
            self.sampler = DeformableSampler1D(
                self.d_model, self.num_levels, self.num_heads, self.num_points
            )
            dh = self.d_model // self.num_heads
            self.ctx2att = nn.Dense(self.att_hid, **torch_linear(dh))
            self.h2att = nn.Dense(self.att_hid, **torch_linear(self.rnn_size))
            self.alpha_net = nn.Dense(1, **torch_linear(self.att_hid))

    def values(self, memory: Array, memory_padding: Array | None) -> Array | None:
        """Per-video sampler values [B, S, H, Dh] (computed once, reused at every step)."""
        if self.kind != "lstm_dsa":
            return None
        return self.sampler.project(memory, memory_padding)

    def initial_state(self, batch_shape: Sequence[int]):
        zeros = jnp.zeros((*batch_shape, self.rnn_size), jnp.float32)
        return zeros, zeros

    def __call__(
        self,
        state,
        tokens: Array,
        event_feats: Array,
        event_refs: Array | None,
        values: Array | None,
        level_lengths: Sequence[int],
        train: bool = False,
    ):
        """state (h, c) [B, E, R]; tokens [B, E] previous words; event_feats [B, E, D];
        event_refs [B, E, L, 1|2] (already scaled by valid ratios); values from `values()`.
        Returns (new state, log-probabilities [B, E, V])."""
        h, _ = state
        words = self.embed(tokens)
        if self.kind == "lstm_dsa":
            query = jnp.concatenate([h, event_feats], axis=-1)
            sampled = self.sampler.sample(query, event_refs, values, level_lengths)  # [B,E,H,K,Dh]
            scores = self.ctx2att(sampled) + self.h2att(h)[:, :, None, None, :]
            scores = self.alpha_net(jnp.tanh(scores))[..., 0]  # [B, E, H, K]
            weights = jax.nn.softmax(scores, axis=-1)
            attended = jnp.einsum("behk,behkd->behd", weights, sampled)
            attended = attended.reshape(*attended.shape[:2], -1)
            x = jnp.concatenate([words, attended, event_feats], axis=-1)
        else:
            x = jnp.concatenate([words, event_feats], axis=-1)
        new_state = self.lstm(state, x)
        out = self.drop(new_state[0], deterministic=not train)
        return new_state, jax.nn.log_softmax(self.logit(out), axis=-1)
