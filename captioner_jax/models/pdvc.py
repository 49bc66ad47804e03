"""The PDVC dense captioner in Flax linen: base encoder -> deformable transformer ->
event queries with iterative box refinement -> per-layer class / counter / box heads, plus a
caption cell shared by all decoder layers (PDVC `share_caption_head=1`).

Modes (PDVC `transformer_input_type`):
  * learned queries ("queries"): `num_queries` embeddings (split into query_pos and tgt);
    initial reference = sigmoid(Linear(query_pos)); after decoder layer l the box head's
    prediction becomes the (gradient-stopped) reference of layer l + 1.
  * given proposals ("gt_proposals", also used to caption any given segments): queries from
    the proposals' sine embedding -> Linear(D, 2D) -> LayerNorm; references fixed to the
    proposals, whose boxes are also the output boxes.

Deliberate differences from PDVC: the per-layer heads are never tied (PDVC shares one
class / counter / box head across layers when `with_box_refine=0`; `box_refine=False` here
keeps the references fixed, and an imported checkpoint fills every layer with the same
head); batches of several videos are supported (PDVC's LSTM-DSA asserts batch 1).

Usage:
  model = PDVC(vocab_size=V, ...)
  variables = model.init(rngs, feats, valid, duration, method=PDVC.init_all)
  out = model.apply(variables, feats, valid, duration, train=..., rngs=...)
  # out: dict(hs [Ld,B,N,D], logits [Ld,B,N], counts [Ld,B,C+1], boxes [Ld,B,N,2],
  #           caption_refs: tuple of Ld [B,N,L,1|2], memory, memory_padding, valid_ratios)
Captions are produced step by step with `PDVC.caption_values` / `PDVC.caption_step`, looped
by `captioner_jax.decoding` (teacher forcing and greedy/sampled decoding).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from captioner_jax.box_ops import inverse_sigmoid
from captioner_jax.models.base_encoder import (
    BaseEncoder,
    flatten_levels,
    lengths_from_total,
    level_lengths,
)
from captioner_jax.models.caption_heads import CaptionCell
from captioner_jax.models.embeddings import proposal_sine_embedding
from captioner_jax.models.init import torch_linear, xavier_linear
from captioner_jax.models.transformer import DecoderLayer, EncoderLayer, encoder_reference_points

Array = jax.Array


class BoxMLP(nn.Module):
    """3-layer MLP D-D-D-2 (ReLU); last layer zero-initialised (+ `length_bias` on dim 1)."""

    hidden: int = 512
    length_bias: float = 0.0

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.hidden, **torch_linear(x.shape[-1]))(x))
        x = nn.relu(nn.Dense(self.hidden, **torch_linear(self.hidden))(x))
        bias = jnp.asarray([0.0, self.length_bias], jnp.float32)
        return nn.Dense(
            2, kernel_init=nn.initializers.zeros, bias_init=lambda *_: bias
        )(x)


def scale_references(refs: Array, valid_ratios: Array) -> Array:
    """refs [B, N, 1|2] -> per-level refs [B, N, L, 1|2] (both coordinates scaled by the
    level's valid ratio, PDVC decoder and caption head)."""
    return refs[:, :, None, :] * valid_ratios[:, None, :, None]


def max_over_queries(x: Array) -> Array:
    """x [B, N, D] -> its maximum over the queries [B, D], differentiated as PyTorch's
    `x.max(1)`: the whole gradient goes to the (first) maximal query of each channel.

    Why not `x.max(axis=1)`: JAX differentiates a max by comparing the operand with the result
    and dividing by the number of equal elements. XLA may compute the operand once for the
    forward max and again (in another fusion, rounded differently) for that comparison; then
    no element equals the max, the count is 0 and the gradient is 0/0 = NaN. Seen on CPU at
    `--xla_backend_optimization_level=0` (the counter loss's gradient NaN at the second step
    of the tiny captioner); a fused GPU/TPU program can do the same. Selecting with `argmax`
    has no division: the same forward values, a finite gradient.
    """
    index = jnp.argmax(x, axis=1)[:, None]  # [B, 1, D]
    return jnp.take_along_axis(x, index, axis=1)[:, 0]


def caption_cell_of(model: PDVC) -> CaptionCell:
    """The (unbound) caption cell of `model`: its fields define the hoisted caption step
    (`caption_heads.step_context` / `hoisted_step`) on `params["caption_cell"]`."""
    return CaptionCell(
        model.caption_head, model.vocab_size, model.hidden_dim, model.rnn_size, model.word_dim,
        model.att_hid, model.cap_levels, model.cap_heads, model.cap_points, model.cap_dropout,
    )


class PDVC(nn.Module):
    vocab_size: int
    feature_dim: int | None = None  # informative only; inferred from the input
    hidden_dim: int = 512
    num_heads: int = 8
    ffn_dim: int = 512
    dropout: float = 0.1
    enc_layers: int = 2
    dec_layers: int = 2
    num_levels: int = 4
    enc_points: int = 4
    dec_points: int = 4
    num_queries: int = 10
    max_event_count: int = 10
    caption_head: str = "lstm_dsa"
    cap_heads: int = 1
    cap_levels: int = 4
    cap_points: int = 4
    rnn_size: int = 512
    word_dim: int = 512
    att_hid: int = 512
    cap_dropout: float = 0.5
    # Query mode: each layer's box becomes the next layer's reference (PDVC with_box_refine=1,
    # every ActivityNet config); False keeps the initial references on every layer.
    box_refine: bool = True

    def setup(self):
        d = self.hidden_dim
        self.base_encoder = BaseEncoder(d, self.num_levels)
        self.level_embed = self.param(
            "level_embed", nn.initializers.normal(1.0), (self.num_levels, d)
        )
        self.encoder = [
            EncoderLayer(d, self.ffn_dim, self.dropout, self.num_levels, self.num_heads,
                         self.enc_points)
            for _ in range(self.enc_layers)
        ]
        self.decoder = [
            DecoderLayer(d, self.ffn_dim, self.dropout, self.num_levels, self.num_heads,
                         self.dec_points)
            for _ in range(self.dec_layers)
        ]
        self.query_embed = self.param(
            "query_embed", nn.initializers.normal(1.0), (self.num_queries, 2 * d)
        )
        self.reference_points = nn.Dense(
            1, kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.zeros
        )
        self.pos_trans = nn.Dense(2 * d, **xavier_linear(d))
        self.pos_trans_norm = nn.LayerNorm(epsilon=1e-5)
        prior = -math.log((1 - 0.01) / 0.01)  # PDVC: focal prior 0.01
        self.class_heads = [
            nn.Dense(1, kernel_init=torch_linear(d)["kernel_init"],
                     bias_init=nn.initializers.constant(prior))
            for _ in range(self.dec_layers)
        ]
        self.count_heads = [
            nn.Dense(self.max_event_count + 1, **torch_linear(d)) for _ in range(self.dec_layers)
        ]
        # PDVC initialises only the first layer's length bias to -2 (the clones are made first).
        self.bbox_heads = [
            BoxMLP(d, -2.0 if i == 0 else 0.0) for i in range(self.dec_layers)
        ]
        self.caption_cell = caption_cell_of(self)

    # ----------------------------------------------------------------------------- encoder
    def encode(self, feats: Array, valid: Array, duration_s: Array, train: bool = False):
        """feats [B, T, C], valid [B, T] bool, duration_s [B] -> dict(memory [B, S, D],
        memory_padding [B, S], valid_ratios [B, L]). Level lengths: `self.lengths(T)`."""
        lengths = level_lengths(feats.shape[1], self.num_levels)
        srcs, valids, poses = self.base_encoder(feats, valid, duration_s)
        memory, mem_valid, pos, ratios = flatten_levels(srcs, valids, poses, self.level_embed)
        padding = ~mem_valid
        refs = encoder_reference_points(lengths, ratios)
        for layer in self.encoder:
            memory = layer(memory, pos, refs, lengths, padding, train)
        return {"memory": memory, "memory_padding": padding, "valid_ratios": ratios}

    def lengths(self, num_steps: int) -> tuple[int, ...]:
        return level_lengths(num_steps, self.num_levels)

    # ----------------------------------------------------------------------------- decoder
    def decode(self, enc: dict, proposals: Array | None = None,
               proposal_valid: Array | None = None, train: bool = False) -> dict:
        memory, padding, ratios = enc["memory"], enc["memory_padding"], enc["valid_ratios"]
        b = memory.shape[0]
        lengths = lengths_from_total(memory.shape[1], self.num_levels)
        if proposals is None:
            query_pos, tgt = jnp.split(self.query_embed, 2, axis=-1)
            query_pos = jnp.broadcast_to(query_pos[None], (b, *query_pos.shape))
            tgt = jnp.broadcast_to(tgt[None], (b, *tgt.shape))
            ref = jax.nn.sigmoid(self.reference_points(query_pos))  # [B, N, 1]
            query_valid = jnp.ones(query_pos.shape[:2], bool)
            predict_boxes = True
        else:
            emb = self.pos_trans_norm(self.pos_trans(proposal_sine_embedding(proposals)))
            query_pos, tgt = jnp.split(emb, 2, axis=-1)
            ref = proposals
            query_valid = proposal_valid if proposal_valid is not None else jnp.ones(
                proposals.shape[:2], bool)
            predict_boxes = False
        hs, logits, counts, boxes, caption_refs = [], [], [], [], []
        for lid, layer in enumerate(self.decoder):
            caption_refs.append(ref)
            tgt = layer(tgt, query_pos, scale_references(ref, ratios), memory, lengths,
                        padding, query_valid, train)
            hs.append(tgt)
            logits.append(self.class_heads[lid](tgt)[..., 0])
            counts.append(self.count_heads[lid](max_over_queries(tgt)))
            delta = self.bbox_heads[lid](tgt)
            if predict_boxes:
                if ref.shape[-1] == 2:
                    box = jax.nn.sigmoid(delta + inverse_sigmoid(ref))
                else:
                    box = jax.nn.sigmoid(jnp.concatenate(
                        [delta[..., :1] + inverse_sigmoid(ref), delta[..., 1:]], axis=-1))
                if self.box_refine:
                    ref = jax.lax.stop_gradient(box)
            else:
                box = ref
            boxes.append(box)
        return {
            "hs": jnp.stack(hs), "logits": jnp.stack(logits), "counts": jnp.stack(counts),
            "boxes": jnp.stack(boxes), "caption_refs": tuple(caption_refs),
            "query_valid": query_valid,
        }

    def __call__(self, feats, valid, duration_s, proposals=None, proposal_valid=None,
                 train: bool = False) -> dict:
        enc = self.encode(feats, valid, duration_s, train)
        out = self.decode(enc, proposals, proposal_valid, train)
        out.update(enc)
        return out

    # ----------------------------------------------------------------------------- captions
    def caption_values(self, memory: Array, memory_padding: Array):
        return self.caption_cell.values(memory, memory_padding)

    def caption_initial_state(self, batch_shape):
        return self.caption_cell.initial_state(batch_shape)

    def caption_dropout(self, h: Array, train: bool = False) -> Array:
        """The caption head's dropout on its LSTM output (the same module, so the same mask as
        inside `caption_step` for the same `dropout` rng)."""
        return self.caption_cell.drop(h, deterministic=not train)

    def caption_step(self, state, tokens, event_feats, event_refs, values, level_lengths_,
                     train: bool = False):
        """One word for every event: see `CaptionCell.__call__`."""
        return self.caption_cell(state, tokens, event_feats, event_refs, values,
                                 level_lengths_, train)

    def init_all(self, feats, valid, duration_s):
        """Touches every parameter (query mode, GT-proposal mode and the caption cell)."""
        out = self(feats, valid, duration_s)
        b = feats.shape[0]
        gt = jnp.tile(jnp.asarray([[0.5, 0.5]], jnp.float32)[None], (b, 1, 1))
        self.decode(out, gt, None)
        values = self.caption_values(out["memory"], out["memory_padding"])
        refs = scale_references(out["caption_refs"][-1], out["valid_ratios"])
        state = self.caption_initial_state(out["hs"].shape[1:3])
        tokens = jnp.zeros(out["hs"].shape[1:3], jnp.int32)
        return self.caption_step(state, tokens, out["hs"][-1], refs, values,
                                 self.lengths(feats.shape[1]))
