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

from captioner_jax.models.deformable_attention import (
    DeformableSampler1D,
    sampling_locations_from_reference,
)
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


# ------------------------------------------------------------------------------------------
# Hoisted step (the fast path of every caption loop: teacher forcing, greedy, sampling).
#
# `CaptionCell.__call__` above is the definition (PDVC's per-step computation, used to create
# the parameters and as the tests' reference). The functions below compute the same step
# with everything that does not change from word to word moved out of the time loop:
#   * the sampler's value projection and ctx2att: ctx2att is affine and the border-padded
#     interpolation weights of the two neighbours sum to 1, so ctx2att(sample(values)) ==
#     sample(ctx2att(values)); projecting the S memory positions once replaces projecting
#     E x L x P samples at every step (PDVC: 160 rows x 512 x 512 per step at ActivityNet size);
#   * sampling as dense products with per-level interpolation matrices (no gathers; the
#     attention-weighted sum of the values folded into one product per level);
#   * the event feature's parts of the LSTM input and of the sampling offsets (constant over
#     time), and, when the words are known (teacher forcing), the word part of the LSTM input
#     for all steps in one matmul;
#   * everything that reads h_{t-1} (h2att, sampling offsets, LSTM hidden gates) as one matmul.
# Only the reduction order of these sums changes (float rounding noise); the word projection
# (logit) is left to the caller, so teacher forcing can run it once over the real positions.
# ------------------------------------------------------------------------------------------


def step_context(cell: CaptionCell, p: dict, memory: Array, memory_padding: Array | None,
                 event_feats: Array, event_refs: Array | None,
                 level_lengths: Sequence[int], attention_gates: bool = False) -> dict:
    """The per-call constants of the hoisted step.

    Args:
      cell: the (unbound) CaptionCell whose fields define the head.
      p: its parameters (`params["caption_cell"]`).
      memory [B, S, D], memory_padding [B, S] (True = padded); event_feats [B, E, D];
      event_refs [B, E, L', 1|2] already scaled by the valid ratios (None for "light");
      level_lengths: static (T_0, ..., T_{L'-1}).
      attention_gates: also project every level's values through the LSTM's attention input
        weight once per call (ctx["values_gates"] [B, H, S', 4R], S' = sum(T_l), in place
        of the per-level ctx["values"]); the step then forms that
        part of its gates as attention-weighted sums of these rows instead of multiplying the
        attended vector [B, E, D] with the [D, 4R] weight at every step. Worth it when the
        steps outnumber sum(T_l) / E (greedy decoding: 30 steps; 188 positions at
        ActivityNet size), not for teacher forcing of a few events with gradients.
    Returns a dict of arrays (a pytree; shapes in the comments below). A caller that mixes
    centre-only and (centre, length) references pads the former to 2 and adds
    ctx["is_point"] [B, E] bool (True: the row's reference is its centre only).
    """
    r, w = cell.rnn_size, cell.word_dim
    w_ih = p["lstm"]["ih"]["kernel"]  # [W + (D) + D, 4R]
    ctx = {"w_word": w_ih[:w], "w_hh": p["lstm"]["hh"]["kernel"]}
    if cell.kind != "lstm_dsa":
        ctx["gates_event"] = event_feats @ w_ih[w:]  # [B, E, 4R]
        return ctx
    d, h, lv = cell.d_model, cell.num_heads, cell.num_levels
    lengths = tuple(int(x) for x in level_lengths)[:lv]
    sp = p["sampler"]
    values = memory @ sp["value_proj"]["kernel"] + sp["value_proj"]["bias"]
    if memory_padding is not None:
        values = jnp.where(memory_padding[..., None], 0.0, values)
    b, s, _ = values.shape
    values = values.reshape(b, s, h, d // h)[:, : sum(lengths)]  # [B, S', H, Dh]
    projected = values @ p["ctx2att"]["kernel"] + p["ctx2att"]["bias"]  # [B, S', H, A]
    starts = [sum(lengths[:i]) for i in range(lv)]
    # Per level, the ctx2att projections [B, H, A, T_l] (and below the values [B, H, Dh, T_l]),
    # time last: the layout of the per-step products' operand, so that the decode loop does
    # not transpose these loop constants at every step.
    ctx["projected"] = [jnp.transpose(projected[:, st:st + n], (0, 2, 3, 1))
                        for st, n in zip(starts, lengths)]
    w_off = sp["sampling_offsets"]["kernel"]  # [R + D, H*L*P] (query = [h, event])
    ctx["offsets_event"] = event_feats @ w_off[r:] + sp["sampling_offsets"]["bias"]
    ctx["gates_event"] = event_feats @ w_ih[w + d:]  # [B, E, 4R]
    ctx["w_att"] = w_ih[w:w + d]  # [D, 4R]
    if attention_gates:  # per head: [B, S', Dh] x [Dh, 4R] -> [B, H, S', 4R]
        # Plain 2-D products (a batched einsum over heads made XLA CPU transpose the weight).
        w_att = ctx["w_att"].reshape(h, d // h, -1)
        ctx["values_gates"] = jnp.stack([values[:, :, i] @ w_att[i] for i in range(h)], axis=1)
    else:
        ctx["values"] = [jnp.transpose(values[:, st:st + n], (0, 2, 3, 1))
                         for st, n in zip(starts, lengths)]
    # Everything that reads h_{t-1}: [R, 4R + A + H*L*P] (LSTM gates | h2att | offsets).
    ctx["w_h"] = jnp.concatenate([ctx.pop("w_hh"), p["h2att"]["kernel"], w_off[:r]], axis=1)
    ctx["h2att_bias"] = p["h2att"]["bias"]
    ctx["alpha_kernel"] = p["alpha_net"]["kernel"][:, 0]
    ctx["alpha_bias"] = p["alpha_net"]["bias"][0]
    ctx["refs"] = event_refs[:, :, :lv]
    return ctx


def _border_mix(locations: Array, lengths: Sequence[int]) -> list[Array]:
    """locations [B, E, H, L, P] -> per level the interpolation weights [B, E, H, P, T_l] of
    PDVC's caption sampler (linear, border padding: the arithmetic of `sample_levels`), so
    that sampling is a dense product with the level's memory (gathers, and in training their
    scatter-add, cost far more than these small products on CPU)."""
    mixes = []
    for level, length in enumerate(lengths):
        x = jnp.clip(locations[..., level, :] * length - 0.5, 0.0, length - 1.0)
        x0 = jnp.floor(x)
        frac = (x - x0)[..., None]
        i0 = x0.astype(jnp.int32)[..., None]
        steps = jnp.arange(length, dtype=jnp.int32)
        # i0 + 1 == T_l (weight 0) matches no step, as the border padding reads it.
        mixes.append(jnp.where(i0 == steps, 1.0 - frac, 0.0)
                     + jnp.where(i0 + 1 == steps, frac, 0.0))
    return mixes


def word_gates(ctx: dict, words: Array) -> Array:
    """Embedded words [..., W] -> their part of the LSTM input gates [..., 4R]."""
    return words @ ctx["w_word"]


def hoisted_step(cell: CaptionCell, ctx: dict, state, gates_word: Array,
                 level_lengths: Sequence[int], linear=None):
    """One step of the caption head without the word projection.

    state (h, c) [B, E, R]; gates_word [B, E, 4R] (`word_gates` of the previous words).
    linear: (name, v) -> v @ W for the step's weight products (W: ctx["w_hh"] or, for
      "lstm_dsa", ctx["w_h"] and ctx["w_att"]); default the plain products. Teacher forcing
      passes `loop_gradients.recurrence`'s, which forms these weights' gradients after the
      loop (the weights are then not in ctx).
    Returns the new state (h, c); h is what PDVC feeds (after dropout) to the logit Linear.
    """
    if linear is None:
        def linear(name, v):
            return v @ ctx[name]
    h, c = state
    r = cell.rnn_size
    if cell.kind != "lstm_dsa":
        gates = gates_word + ctx["gates_event"] + linear("w_hh", h)
    else:
        heads, lv, p = cell.num_heads, cell.num_levels, cell.num_points
        lengths = tuple(int(x) for x in level_lengths)[:lv]
        b, e, _ = h.shape
        from_h = linear("w_h", h)
        a = ctx["h2att_bias"].shape[0]
        gates_h = from_h[..., : 4 * r]
        att_h = from_h[..., 4 * r: 4 * r + a] + ctx["h2att_bias"]
        offsets = (from_h[..., 4 * r + a:] + ctx["offsets_event"]).reshape(b, e, heads, lv, p)
        if "is_point" in ctx:  # rows of centre-only and of (centre, length) references
            point = sampling_locations_from_reference(ctx["refs"][..., :1], offsets, lengths, p)
            box = sampling_locations_from_reference(ctx["refs"], offsets, lengths, p)
            locations = jnp.where(ctx["is_point"][:, :, None, None, None], point, box)
        else:
            locations = sampling_locations_from_reference(ctx["refs"], offsets, lengths, p)
        mixes = _border_mix(locations, lengths)  # per level [B, E, H, P, T_l]
        # The sampled keys ctx2att(sample) == sample(ctx2att(values)): [B, E, H, L*P, A].
        projected = jnp.concatenate([
            jnp.einsum("behpt,bhct->behpc", mix, table)
            for mix, table in zip(mixes, ctx["projected"])], axis=3)
        scores = jnp.tanh(projected + att_h[:, :, None, None, :]) @ ctx["alpha_kernel"]
        weights = jax.nn.softmax(scores + ctx["alpha_bias"], axis=-1)  # [B, E, H, L*P]
        weights = weights.reshape(b, e, heads, lv, p)
        # Per level, the weight of every step of the level: [B, E, H, T_l].
        step_weights = [jnp.einsum("behp,behpt->beht", weights[:, :, :, i], mix)
                        for i, mix in enumerate(mixes)]
        if "values_gates" in ctx:  # the values already through the attention input weight
            gates_att = jnp.einsum("beht,bhtg->beg", jnp.concatenate(step_weights, axis=-1),
                                   ctx["values_gates"])
        else:  # the attention-weighted sum of the sampled values, then its gates
            attended = sum(jnp.einsum("beht,bhdt->behd", a, table)
                           for a, table in zip(step_weights, ctx["values"]))
            gates_att = linear("w_att", attended.reshape(b, e, -1))
        gates = gates_word + ctx["gates_event"] + gates_att + gates_h
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return h, c
