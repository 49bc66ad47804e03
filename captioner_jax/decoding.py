"""Token decoding with `lax.scan` (no Python loop per token), shared by inference and SCST.

Contract (kept stable for `captioner_jax.scst`):

  decode_tokens(step_fn, carry, *, max_len, key=None, temperature=1.0, greedy=True,
                bos_id=0, eos_id=0, batch_size=None)
      -> tokens int32 [N, max_len], logprobs float32 [N, max_len], mask float32 [N, max_len]

  `step_fn(carry, prev_tokens int32 [N]) -> (carry, logits float32 [N, V])`; the first call
  gets BOS. greedy=True: argmax; else a categorical sample of logits / temperature with the
  PRNG key split once per step. `logprobs` is log_softmax(logits) (untempered, as PDVC's
  sampler) at the chosen token. `mask` is 1 up to and including the first EOS; tokens and
  logprobs after it are 0. N is `batch_size` or the leading dimension of carry's first leaf.
  Word-only scores (PDVC's caption score) are `(logprobs * (tokens != eos_id)).sum(-1)`.

Building `step_fn` for the PDVC caption head:

  step_fn, carry = caption_decoder(model, variables, encoded, event_feats, event_refs)
      model: `PDVC`; variables: its variables; encoded: dict with "memory" [B, S, D],
      "memory_padding" [B, S], "valid_ratios" [B, L] (e.g. the output of `model.apply`);
      event_feats [B, E, D] (decoder states of the events, e.g. `out["hs"][-1]`);
      event_refs [B, E, 1|2] (the references of the caption layer, e.g.
      `out["caption_refs"][-1]`). N = B * E, events flattened video-major.
      train=True with `dropout_key` applies the head's dropout (different mask per step).

  `caption_decoder_from_outputs(model, variables, out, layer=-1)` does this for all queries
  of one decoder layer. `teacher_forced(step_fn, carry, tokens)` runs the same cell on given
  token sequences (training): returns log p(tokens[:, t+1] | tokens[:, :t+1]) [N, T-1].
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from captioner_jax.models.base_encoder import lengths_from_total
from captioner_jax.models.pdvc import PDVC, scale_references

Array = jax.Array


def decode_tokens(
    step_fn,
    carry,
    *,
    max_len: int,
    key: Array | None = None,
    temperature: float = 1.0,
    greedy: bool = True,
    bos_id: int = 0,
    eos_id: int = 0,
    batch_size: int | None = None,
):
    """Greedy or sampled decoding of `max_len` tokens; see the module docstring."""
    n = batch_size if batch_size is not None else jax.tree.leaves(carry)[0].shape[0]
    if not greedy and key is None:
        raise ValueError("sampling (greedy=False) needs a PRNG key")
    keys = jax.random.split(key if key is not None else jax.random.PRNGKey(0), max_len)

    def body(loop, step_key):
        carry, prev, alive = loop
        carry, logits = step_fn(carry, prev)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        if greedy:
            tok = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        else:
            tok = jax.random.categorical(step_key, logits.astype(jnp.float32) / temperature)
            tok = tok.astype(jnp.int32)
        tok_logp = jnp.take_along_axis(logp, tok[:, None], axis=-1)[:, 0]
        mask = alive
        tok = jnp.where(alive, tok, 0)
        tok_logp = jnp.where(alive, tok_logp, 0.0)
        alive = alive & (tok != eos_id)
        return (carry, tok, alive), (tok, tok_logp, mask.astype(jnp.float32))

    init = (carry, jnp.full((n,), bos_id, jnp.int32), jnp.ones((n,), bool))
    _, (tokens, logprobs, mask) = jax.lax.scan(body, init, keys)
    return tokens.T, logprobs.T, mask.T


def teacher_forced(step_fn, carry, tokens: Array, return_logprobs: bool = False):
    """tokens int32 [N, T] (BOS first) -> log-prob of each next token [N, T-1]
    (and, when `return_logprobs`, the full log-distributions [N, T-1, V])."""

    def body(carry, xs):
        prev, target = xs
        carry, logits = step_fn(carry, prev)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        tok_logp = jnp.take_along_axis(logp, target[:, None], axis=-1)[:, 0]
        return carry, (tok_logp, logp) if return_logprobs else (tok_logp,)

    _, outs = jax.lax.scan(body, carry, (tokens[:, :-1].T, tokens[:, 1:].T))
    if return_logprobs:
        return outs[0].T, jnp.transpose(outs[1], (1, 0, 2))
    return outs[0].T


def caption_decoder(
    model: PDVC,
    variables,
    encoded: dict,
    event_feats: Array,
    event_refs: Array,
    *,
    train: bool = False,
    dropout_key: Array | None = None,
):
    """(step_fn, carry) for the PDVC caption head over B x E events; see module docstring."""
    memory, padding = encoded["memory"], encoded["memory_padding"]
    b, e = event_feats.shape[:2]
    lengths = lengths_from_total(memory.shape[1], model.num_levels)
    values = model.apply(variables, memory, padding, method=PDVC.caption_values)
    refs = scale_references(event_refs, encoded["valid_ratios"])
    if train and dropout_key is None:
        raise ValueError("train=True needs a dropout_key")

    def step_fn(carry, prev_tokens):
        (h, c), t = carry
        state = (h.reshape(b, e, -1), c.reshape(b, e, -1))
        rngs = {"dropout": jax.random.fold_in(dropout_key, t)} if train else {}
        (h, c), logp = model.apply(
            variables, state, prev_tokens.reshape(b, e), event_feats, refs, values, lengths,
            train, method=PDVC.caption_step, rngs=rngs,
        )
        return ((h.reshape(b * e, -1), c.reshape(b * e, -1)), t + 1), logp.reshape(b * e, -1)

    zeros = jnp.zeros((b * e, model.rnn_size), jnp.float32)
    return step_fn, ((zeros, zeros), jnp.zeros((), jnp.int32))


def caption_decoder_from_outputs(model: PDVC, variables, out: dict, layer: int = -1, **kw):
    """`caption_decoder` for every query of decoder layer `layer` of `model.apply`'s output."""
    return caption_decoder(
        model, variables, out, out["hs"][layer], out["caption_refs"][layer], **kw
    )
