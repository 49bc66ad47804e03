"""Token decoding with `lax.scan` (no Python loop per token), shared by inference and SCST.

Contract (kept stable for `captioner_jax.scst`):

  decode_tokens(step_fn, carry, *, max_len, key=None, temperature=1.0, greedy=True,
                bos_id=0, eos_id=0, batch_size=None)
      -> tokens int32 [N, max_len], logprobs float32 [N, max_len], mask float32 [N, max_len]

  `step_fn(carry, prev_tokens int32 [N]) -> (carry, logits float32 [N, V])`; the first call
  gets BOS. greedy=True: argmax; else a categorical sample of logits / temperature with the
  PRNG key split once per step. `logprobs` is log_softmax(logits) (untempered, as PDVC's
  sampler) at the chosen token. `mask` is 1 up to and including the first EOS; tokens and
  logprobs after it are 0. The loop stops once every row has ended (outputs unchanged).
  N is `batch_size` or the leading dimension of carry's first leaf.
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
  of one decoder layer. `word_gate_table=word_gate_table(model, variables)` (fixed
  parameters, e.g. inference over a split) reads each step's word part of the LSTM gates
  from a precomputed [V, 4R] table instead of a [N, W] x [W, 4R] product per step.
  `teacher_forced(step_fn, carry, tokens)` runs the same cell on given token sequences
  (training): returns log p(tokens[:, t+1] | tokens[:, :t+1]) [N, T-1].
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from captioner_jax import loop_gradients
from captioner_jax.models import caption_heads
from captioner_jax.models.base_encoder import lengths_from_total
from captioner_jax.models.pdvc import PDVC, caption_cell_of, scale_references

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
        logits = logits.astype(jnp.float32)
        if greedy:
            tok, tok_logp = greedy_choice(logits)
        else:
            logp = jax.nn.log_softmax(logits, axis=-1)
            tok = jax.random.categorical(step_key, logits / temperature).astype(jnp.int32)
            tok_logp = jnp.take_along_axis(logp, tok[:, None], axis=-1)[:, 0]
        mask = alive
        tok = jnp.where(alive, tok, 0)
        tok_logp = jnp.where(alive, tok_logp, 0.0)
        alive = alive & (tok != eos_id)
        return (carry, tok, alive), (tok, tok_logp, mask.astype(jnp.float32))

    # A while loop that stops once every row has ended (as PDVC's and the captioning
    # samplers' `if unfinished.sum() == 0: break`): the steps it skips would only write the
    # zeros the buffers start with, so the outputs equal those of all `max_len` steps.
    def running(state):
        t, (_, _, alive), _ = state
        return (t < max_len) & jnp.any(alive)

    def step(state):
        t, loop, outs = state
        loop, new = body(loop, keys[t])
        return t + 1, loop, tuple(o.at[t].set(x) for o, x in zip(outs, new))

    init = (carry, jnp.full((n,), bos_id, jnp.int32), jnp.ones((n,), bool))
    outs = (jnp.zeros((max_len, n), jnp.int32), jnp.zeros((max_len, n), jnp.float32),
            jnp.zeros((max_len, n), jnp.float32))
    _, _, (tokens, logprobs, mask) = jax.lax.while_loop(
        running, step, (jnp.zeros((), jnp.int32), init, outs))
    return tokens.T, logprobs.T, mask.T


def greedy_choice(logits: Array) -> tuple[Array, Array]:
    """logits float32 [N, V] -> (argmax int32 [N], log_softmax(logits) at it [N]).

    The same numbers as `argmax` and `log_softmax` followed by a gather (the first maximal
    index; at it the shifted logit is exactly 0, so its log-probability is -log(sum(exp(
    logits - max)))), from two reductions over V: XLA CPU runs `argmax` (a variadic reduce)
    and a materialised [N, V] log_softmax at about 1 ms per step at PDVC's vocabulary, a
    third of the whole greedy step at batch 1.
    """
    top = jnp.max(logits, axis=-1, keepdims=True)
    index = jax.lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1)
    tok = jnp.min(jnp.where(logits == top, index, logits.shape[-1]), axis=-1)
    tok_logp = -jnp.log(jnp.sum(jnp.exp(logits - top), axis=-1))
    return tok.astype(jnp.int32), tok_logp


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
    hoisted: bool = True,
    word_gate_table: Array | None = None,
    attention_gates: bool = False,
):
    """(step_fn, carry) for the PDVC caption head over B x E events; see module docstring.

    hoisted=True (default) runs `caption_heads.hoisted_step` (the step-invariant work done once
    per call); False runs the per-step definition `PDVC.caption_step` (the reference).
    word_gate_table [V, 4R]: `word_gate_table(model, variables)` of the same variables (hoisted
    only); the word part of the gates is then a row lookup instead of a product per step.
    attention_gates: see `caption_heads.step_context` (hoisted only; for decoding loops)."""
    memory, padding = encoded["memory"], encoded["memory_padding"]
    b, e = event_feats.shape[:2]
    lengths = lengths_from_total(memory.shape[1], model.num_levels)
    refs = scale_references(event_refs, encoded["valid_ratios"])
    if train and dropout_key is None:
        raise ValueError("train=True needs a dropout_key")
    if (word_gate_table is not None or attention_gates) and not hoisted:
        raise ValueError("word_gate_table and attention_gates are read by the hoisted step only")
    zeros = jnp.zeros((b * e, model.rnn_size), jnp.float32)
    carry = ((zeros, zeros), jnp.zeros((), jnp.int32))

    if hoisted:
        cell = caption_cell_of(model)
        p = variables["params"]["caption_cell"]
        ctx = caption_heads.step_context(cell, p, memory, padding, event_feats, refs, lengths,
                                         attention_gates=attention_gates)

        def fast_step_fn(carry, prev_tokens):
            (h, c), t = carry
            state = (h.reshape(b, e, -1), c.reshape(b, e, -1))
            if word_gate_table is not None:
                gates_word = word_gate_table[prev_tokens.reshape(b, e)]
            else:
                words = p["embed"]["embedding"][prev_tokens.reshape(b, e)]
                gates_word = caption_heads.word_gates(ctx, words)
            h, c = caption_heads.hoisted_step(cell, ctx, state, gates_word, lengths)
            out = h
            if train:
                out = model.apply(variables, h, True, method=PDVC.caption_dropout,
                                  rngs={"dropout": jax.random.fold_in(dropout_key, t)})
            # Unnormalised: every consumer (decode_tokens, teacher_forced) applies log_softmax,
            # which is shift-invariant; the reference step returns PDVC's log-probabilities.
            logits = out @ p["logit"]["kernel"] + p["logit"]["bias"]
            return ((h.reshape(b * e, -1), c.reshape(b * e, -1)), t + 1), logits.reshape(b * e, -1)

        return fast_step_fn, carry

    values = model.apply(variables, memory, padding, method=PDVC.caption_values)

    def step_fn(carry, prev_tokens):
        (h, c), t = carry
        state = (h.reshape(b, e, -1), c.reshape(b, e, -1))
        rngs = {"dropout": jax.random.fold_in(dropout_key, t)} if train else {}
        (h, c), logp = model.apply(
            variables, state, prev_tokens.reshape(b, e), event_feats, refs, values, lengths,
            train, method=PDVC.caption_step, rngs=rngs,
        )
        return ((h.reshape(b * e, -1), c.reshape(b * e, -1)), t + 1), logp.reshape(b * e, -1)

    return step_fn, carry


def word_gate_table(model: PDVC, variables) -> Array:
    """The word part of the caption LSTM's input gates for every vocabulary entry [V, 4R].

    Row v is `embedding[v] @ W_ih[:W]`, the product the step computes for a previous word v.
    It depends on the parameters only, so a caller that decodes many batches with the same
    parameters (`inference.predict_split`) builds it once (V x W x 4R multiply-adds, ~70 ms at
    PDVC's ActivityNet size on one core) and each greedy step reads N rows of it: at batch 1
    the step otherwise streams the [W, 4R] weight (4 MiB at W = R = 512) through the cache
    for a 10-row product. Equal to the per-step product up to float summation order.
    """
    cell = caption_cell_of(model)
    p = variables["params"]["caption_cell"]
    return p["embed"]["embedding"] @ p["lstm"]["ih"]["kernel"][:cell.word_dim]


def caption_decoder_from_outputs(model: PDVC, variables, out: dict, layer: int = -1, **kw):
    """`caption_decoder` for every query of decoder layer `layer` of `model.apply`'s output."""
    return caption_decoder(
        model, variables, out, out["hs"][layer], out["caption_refs"][layer], **kw
    )


def caption_token_logprobs(
    model: PDVC,
    variables,
    encoded: dict,
    event_feats,
    event_refs,
    tokens,
    target_mask,
    *,
    train: bool = False,
    dropout_key=None,
    skip_padding: bool = True,
    chunk: int = 64,
):
    """Teacher-forced log p(tokens[..., t+1] | tokens[..., :t+1]) of the captions the loss reads.

    Args:
      model, variables, encoded: as `caption_decoder`.
      event_feats [B, E, D], event_refs [B, E, 1|2], tokens int32 [B, E, T] (BOS first),
        target_mask bool [B, E, T-1] (True where a target token counts: a caption's words and
        EOS; False for unmatched events and padding); or a list of such groups (one per
        decoder layer, the shared caption head): all groups run in one loop, together.
      train, dropout_key: as `caption_decoder` (one key per group; the same dropout masks as
        its step_fn).
      skip_padding: skip the work whose results `target_mask` drops (see below); False
        computes every position (the untrimmed reference; the same values where the mask is
        True). A bool or a traced bool scalar (the same compiled program for both).
      chunk: positions per word-projection block.
    Returns:
      float32 [B, E, T-1] (a list for a list): the log-probabilities where `target_mask`,
      exactly 0 elsewhere.

    The recurrence (`caption_heads.hoisted_step`) is one `lax.scan` over the T-1 steps; a step
    after the batch's longest target is skipped (`lax.cond`: no compute, forward or backward).
    Rows (events) with a target are moved to the front of every video; when no video has more
    than half its G*E rows with a target (PDVC matches ~4 of 10 queries per layer on
    ActivityNet), the loop and the projection run on that half only (a `cond` between the two
    static row counts; the dropout masks are drawn for the original rows, so the values are
    those of the full computation to float rounding).
    The word projection (rnn -> vocabulary, PDVC's logit Linear; the bulk of the FLOPs) runs
    after the scan on the real positions only: they are sorted to the front and projected in
    blocks of `chunk`, blocks without a real position skipped. So the work follows the
    batch's real caption lengths and matched events with fixed shapes (one compiled program),
    and the result equals the untrimmed computation (the skipped positions are masked).
    """
    single = not isinstance(event_feats, (list, tuple))
    if single:
        event_feats, event_refs = [event_feats], [event_refs]
        tokens, target_mask, dropout_key = [tokens], [target_mask], [dropout_key]
    groups = len(event_feats)
    if train and (dropout_key is None or any(k is None for k in dropout_key)):
        raise ValueError("train=True needs a dropout_key (one per group)")
    p = variables["params"]["caption_cell"]
    cell = caption_cell_of(model)
    memory, padding = encoded["memory"], encoded["memory_padding"]
    b, e, t = tokens[0].shape
    steps = t - 1
    lengths = lengths_from_total(memory.shape[1], model.num_levels)
    refs = [scale_references(r, encoded["valid_ratios"]) for r in event_refs]
    is_point = None
    if len({r.shape[-1] for r in refs}) > 1:  # centre-only and (centre, length) groups
        is_point = jnp.concatenate([jnp.full((b, e), r.shape[-1] == 1) for r in refs], 1)
        refs = [jnp.concatenate([r, jnp.zeros_like(r)], -1) if r.shape[-1] == 1 else r
                for r in refs]
    all_tokens = jnp.concatenate(tokens, axis=1)  # [B, G*E, T]
    all_mask = jnp.concatenate(target_mask, axis=1)
    all_feats = jnp.concatenate(event_feats, axis=1)
    all_refs = jnp.concatenate(refs, axis=1)
    rows = groups * e
    step_ids = jnp.arange(steps, dtype=jnp.int32)
    if train:  # PDVC: dropout on the LSTM output before the logit; one mask per group, step.
        # Drawn for every (original) row, so that the masks do not depend on the compaction.
        def drop(h, key):
            return model.apply(variables, h, True, method=PDVC.caption_dropout,
                               rngs={"dropout": key})

        ones = jnp.ones((steps, b, e, model.rnn_size), jnp.float32)
        keep = jnp.concatenate([
            jax.vmap(drop)(ones, jax.vmap(lambda s, k=k: jax.random.fold_in(k, s))(step_ids))
            for k in dropout_key], axis=2)  # [T-1, B, G*E, R]: 0 or 1 / (1 - p)
    # Row compaction: PDVC captions only the matched queries (on ActivityNet ~4 of 10 per
    # layer), so the rows with a target are moved to the front of every video (stable) and,
    # when every video of the batch has at most half its rows real, the loop runs on that half
    # only (a `cond` between two static row counts; the same values, the other rows are 0).
    has_target = all_mask.any(-1)  # [B, G*E]
    row_order = jnp.argsort(~has_target, axis=1, stable=True)
    half = -(-rows // 2)
    fits_half = jnp.logical_and(skip_padding, has_target.sum(1).max() <= half)

    def take_rows(x, k):
        idx = row_order[:, :k].reshape(b, k, *([1] * (x.ndim - 2)))
        return jnp.take_along_axis(x, idx, axis=1)

    def teacher_force(k: int):
        """log-probabilities [B, k, T-1] of the first k rows in `row_order`."""
        tok, msk = take_rows(all_tokens, k), take_rows(all_mask, k)
        ctx = caption_heads.step_context(cell, p, memory, padding, take_rows(all_feats, k),
                                         take_rows(all_refs, k), lengths)
        if is_point is not None:
            ctx["is_point"] = take_rows(is_point, k)
        needed = jnp.where(skip_padding, jnp.max(jnp.where(msk, step_ids + 1, 0)), steps)
        # The word part of the gates [T-1, B, k, 4R], one product per 8 steps up to the
        # longest caption (the loop reads no later step).
        words = p["embed"]["embedding"][jnp.moveaxis(tok[:, :, :-1], 2, 0)]
        gates = loop_gradients.segment_products(words, ctx["w_word"], needed.astype(jnp.int32))
        # The step's large weights (the LSTM's h weight with h2att and the offsets' h part;
        # its attention-input weight) get their gradients after the loop, as products over
        # the steps the captions use (`loop_gradients.recurrence`), not a [R|D, 4R+] add per
        # step.
        weights = {name: ctx.pop(name) for name in ("w_h", "w_att", "w_hh") if name in ctx}

        def step(linear, ctx, state, gates_t):
            new = caption_heads.hoisted_step(cell, ctx, state, gates_t, lengths, linear=linear)
            return new, new[0]

        zeros = jnp.zeros((b, k, model.rnn_size), jnp.float32)
        # The policy saves the matmul outputs, so the backward pass recomputes only the cheap
        # elementwise work (and `checkpoint` keeps the loop-invariant inputs that a `cond`
        # branch reads from becoming per-step residuals).
        saved = jax.checkpoint_policies.dots_with_no_batch_dims_saveable
        hs = loop_gradients.recurrence(step, weights, ctx, (zeros, zeros), gates, needed,
                                       checkpoint_policy=saved)  # [T-1, B, k, R]
        if train:
            hs = hs * jax.vmap(lambda m: take_rows(m, k))(keep)
        # Positions in (video, row, step) order; the real ones first (stable order).
        hs = jnp.moveaxis(hs, 0, 2).reshape(b * k * steps, -1)
        targets = tok[:, :, 1:].reshape(-1)
        mask = msk.reshape(-1)
        total = mask.shape[0]
        blocks = -(-total // chunk)
        order = jnp.argsort(~mask, stable=True)
        order = jnp.concatenate([order, jnp.zeros(blocks * chunk - total, order.dtype)])
        count = jnp.where(skip_padding, mask.sum(), total)
        # log_softmax at the target only (PDVC's log-softmax then gather) per block of real
        # positions, without materialising the [positions, V] log-probabilities; the weight's
        # gradient is summed over the real blocks once (`loop_gradients.target_logprobs`).
        sorted_logp = loop_gradients.target_logprobs(
            hs[order].reshape(blocks, chunk, -1), targets[order].reshape(blocks, chunk),
            count.astype(jnp.int32), p["logit"]["kernel"], p["logit"]["bias"])
        logp = jnp.zeros((total,), jnp.float32).at[order[:total]].set(
            sorted_logp.reshape(-1)[:total], unique_indices=True)
        logp = jnp.where(msk, logp.reshape(b, k, steps), 0.0)
        return jnp.pad(logp, ((0, 0), (0, rows - k), (0, 0)))

    if half < rows:
        sorted_rows = jax.lax.cond(fits_half, lambda: teacher_force(half),
                                   lambda: teacher_force(rows))
    else:
        sorted_rows = teacher_force(rows)
    # Back to the original row order (row_order is a permutation of every video's rows).
    logp = jnp.zeros_like(sorted_rows).at[jnp.arange(b)[:, None], row_order].set(
        sorted_rows, unique_indices=True)
    out = [logp[:, g * e:(g + 1) * e] for g in range(groups)]
    return out[0] if single else out
