"""Backward passes of the teacher-forced caption loops that form the gradients of their
loop-invariant weights once, after the loop, instead of accumulating them per iteration.

Under `jax.grad`, a `lax.scan` (or `lax.map`) that reads a weight W at every iteration adds
that iteration's [K, N] contribution to W's gradient inside the reversed loop: one [K, N]
outer product, one [K, N] add and, for iterations a `lax.cond` skips, one [K, N] zero
broadcast per iteration. At PDVC's ActivityNet size that is 5-12 MB of memory traffic per
caption step for the LSTM's h-weight [512, 2576], its attention-input weight [512, 2048] and
the word projection [512, 5748] (a single-core `jax.profiler` trace of the batch-1 train
step: ~40 ms of its ~360 ms). Here the loops record the per-iteration inputs of those
products and the cotangents of their outputs, and each weight gradient is one product over
all iterations (or, for the projection, over the blocks that hold real positions only).

  target_logprobs(h_blocks, targets, count, w, b) -> logp [NB, C]
      log_softmax(h @ w + b)[target] for blocks of C positions; blocks at or after `count`
      real positions are skipped (0). The gradient is PDVC's log_softmax + gather gradient,
      written out: d logits = g * (onehot(target) - softmax(logits)).
  recurrence(step, weights, consts, carry, xs, needed) -> per-step outputs
      a `lax.scan` of `step(linear, consts, carry, x) -> (carry, y)` whose loop-invariant
      weights are read only through `linear(name, v)` (= v @ weights[name], each name at
      most once per step); steps at or after `needed` are skipped (carry unchanged, y = 0).
      The weights' gradients are sum_t v_t^T dy_t over the steps before `needed`, formed
      from per-step "taps" (zeros added to each product, whose cotangents are the
      products' output cotangents) in segments of `SEGMENT` steps.

  segment_products(x, w, needed) -> [T, ..., N]
      x[t] @ w for the steps of the `SEGMENT`-step segments that start before `needed` (the
      rest 0), forward and backward (teacher forcing's word part of the LSTM gates: one
      product per segment the captions use instead of one over all T steps).

All equal plain autodiff of the same forward up to float summation order (tests:
`tests/test_loop_gradients.py`, and the caption loss against the per-step cell).
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array

SEGMENT = 8  # caption steps per weight-gradient product (`_weight_gradient`)


# ------------------------------------------------------------------ the word projection
@jax.custom_vjp
def target_logprobs(h_blocks: Array, targets: Array, count: Array, w: Array, b: Array) -> Array:
    """h_blocks [NB, C, R], targets int32 [NB, C], count int32 scalar (positions sorted real
    first; blocks with index * C >= count are skipped), w [R, V], b [V] -> [NB, C]."""
    return _project_forward(h_blocks, targets, count, w, b)[0]


def _project_forward(h_blocks, targets, count, w, b):
    chunk = h_blocks.shape[1]

    def block(xs):
        i, h, tgt = xs

        def run(h):
            logits = h @ w + b
            lse = jax.nn.logsumexp(logits, axis=-1)
            picked = jnp.take_along_axis(logits, tgt[:, None], axis=-1)[:, 0]
            return picked - lse, logits - lse[:, None]

        return jax.lax.cond(i * chunk < count, run, lambda h: (
            jnp.zeros(h.shape[:1], jnp.float32), jnp.zeros((h.shape[0], w.shape[1]), w.dtype)),
            h)

    ids = jnp.arange(h_blocks.shape[0], dtype=jnp.int32)
    return jax.lax.map(block, (ids, h_blocks, targets))


def _project_fwd(h_blocks, targets, count, w, b):
    logp, log_probs = _project_forward(h_blocks, targets, count, w, b)
    # Residuals: the blocks' log-probabilities [NB, C, V] (recomputing them in the backward
    # pass would cost another projection) and h laid out [NB, R, C] for the weight gradient.
    return logp, (jnp.swapaxes(h_blocks, 1, 2), targets, count, w, log_probs)


def _project_bwd(res, g):
    h_t_blocks, targets, count, w, log_probs = res
    num_blocks, _, chunk = h_t_blocks.shape
    real_blocks = jnp.minimum((count + chunk - 1) // chunk, num_blocks)
    vocab = jnp.arange(w.shape[1], dtype=jnp.int32)

    def block(i):
        """-> d logits [C, V], d h [C, R], this block's part of d w [R, V]."""
        live = i * chunk < count  # a skipped block's output is the constant 0
        dlogits = jnp.where(live, g[i], 0.0)[:, None] * (
            (vocab == targets[i][:, None]) - jnp.exp(log_probs[i]))
        return dlogits, dlogits @ w.T, h_t_blocks[i] @ dlogits

    # Block 0 outside the loop: its d w starts the sum (no [R, V] zeros to fill).
    dlogits, dh0, dw = block(0)
    dh = jnp.zeros((num_blocks, chunk, w.shape[0]), w.dtype).at[0].set(dh0)

    def body(i, acc):
        dh, dw, db = acc
        dlogits, dh_i, dw_i = block(i)
        return dh.at[i].set(dh_i), dw + dw_i, db + dlogits.sum(0)

    dh, dw, db = jax.lax.fori_loop(1, real_blocks, body, (dh, dw, dlogits.sum(0)))
    return dh, None, None, dw, db


target_logprobs.defvjp(_project_fwd, _project_bwd)


# ------------------------------------------------------------------ per-step inputs
@jax.custom_vjp
def segment_products(x: Array, w: Array, needed: Array) -> Array:
    """x [T, ..., K], w [K, N], needed int32 scalar -> [T, ..., N]: x[t] @ w where the
    `SEGMENT`-step segment of t starts before `needed` (the first segment always), else 0.

    The recurrence reads its per-step inputs only at steps before `needed`, so the products
    of later segments (and, backward, their dx and their part of dw) are not computed: at
    batch 8 the word gates of 29 steps were 0.16 s of a 1.9 s train step, with 14 used."""
    return _segments(x, w, needed)


def _segments(x, w, needed, segment: int = SEGMENT):
    steps = x.shape[0]

    def product(part):
        return part @ w

    def zeros(part):
        return jnp.zeros(part.shape[:-1] + (w.shape[-1],), jnp.result_type(part, w))

    parts = [product(x[:segment])]
    for start in range(segment, steps, segment):
        parts.append(jax.lax.cond(start < needed, product, zeros, x[start:start + segment]))
    return jnp.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


def _segment_products_fwd(x, w, needed):
    return _segments(x, w, needed), (x, w, needed)


def _segment_products_bwd(res, g):
    x, w, needed = res
    # The skipped segments' outputs are constants: their rows of g do not reach x or w.
    return _segments(g, w.T, needed), _weight_gradient(x, g, needed), None


segment_products.defvjp(_segment_products_fwd, _segment_products_bwd)


# ------------------------------------------------------------------ the recurrence
@jax.custom_vjp
def _fixed_matmul(x: Array, w: Array, w_t: Array) -> Array:
    """x @ w whose backward computes only dx, as g @ w_t (w_t = w.T laid out once, so the
    per-step product reads its weight row-major instead of transposing it every step)."""
    return x @ w


def _fixed_matmul_fwd(x, w, w_t):
    return x @ w, w_t


def _fixed_matmul_bwd(w_t, g):
    return g @ w_t, None, None


_fixed_matmul.defvjp(_fixed_matmul_fwd, _fixed_matmul_bwd)


def recurrence(step: Callable, weights: dict, consts, carry, xs, needed: Array,
               checkpoint_policy=None):
    """`lax.scan` of `step` over the leading axis of xs, steps >= `needed` skipped.

    Args:
      step: (linear, consts, carry, x) -> (carry, y); `linear(name, v)` is v @
        weights[name] (v [..., K] -> [..., N]), the only way the step may read a weight.
      weights: name -> [K, N] loop-invariant weights (differentiable).
      consts: a pytree of other loop-invariant inputs (differentiable, their gradients
        accumulated by the scan as usual: keep the large weights in `weights`).
      carry: the initial carry; xs: a pytree of per-step inputs, leading axis T.
      needed: int32 scalar; steps t >= needed return the carry unchanged and y = 0.
      checkpoint_policy: `jax.checkpoint` policy of the step (None: no checkpoint).
    Returns:
      y stacked over the T steps.
    """
    return _recurrence(step, checkpoint_policy, weights, consts, carry, xs, needed)


def _recurrence_impl(step, policy, weights, consts, carry, xs, needed, taps):
    """The scan. taps None: plain products (the primal); else name -> [T, ..., N] zeros
    added to the products, whose dx runs through `_fixed_matmul`. Returns (ys, the inputs
    v of every `linear` call stacked over the steps, 0 for skipped steps)."""
    steps = jax.tree.leaves(xs)[0].shape[0]
    plain = taps is None
    w_t = None if plain else {n: w.T for n, w in weights.items()}

    def body(carry, inputs):
        t, x, tap = inputs

        def run(carry):
            seen = {}

            def linear(name, v):
                if name in seen:
                    raise ValueError(f"recurrence: weight {name!r} read twice in one step")
                seen[name] = v
                if plain:
                    return v @ weights[name]
                return _fixed_matmul(v, weights[name], w_t[name]) + tap[name]

            carry, y = step(linear, consts, carry, x)
            return carry, (y, seen)

        shapes = jax.eval_shape(run, carry)[1]

        def skip(carry):
            return carry, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        return jax.lax.cond(t < needed, run, skip, carry)

    if policy is not None:
        body = jax.checkpoint(body, policy=policy)
    ids = jnp.arange(steps, dtype=jnp.int32)
    _, (ys, seen) = jax.lax.scan(body, carry, (ids, xs, taps))
    return ys, seen


def _recurrence_plain(step, policy, weights, consts, carry, xs, needed):
    return _recurrence_impl(step, policy, weights, consts, carry, xs, needed, None)[0]


_recurrence = jax.custom_vjp(_recurrence_plain, nondiff_argnums=(0, 1))


def _recurrence_fwd(step, policy, weights, consts, carry, xs, needed):
    # The taps: zeros added to every product's output at every step, whose cotangents are the
    # products' output cotangents, one per step (no accumulation). Their shapes from one step.
    steps = jax.tree.leaves(xs)[0].shape[0]
    inputs = jax.eval_shape(lambda: _product_inputs(
        step, weights, consts, carry, jax.tree.map(lambda a: a[0], xs)))
    taps = {n: jnp.zeros((steps,) + v.shape[:-1] + (weights[n].shape[1],), weights[n].dtype)
            for n, v in inputs.items()}
    ys, vjp_fn, seen = jax.vjp(
        lambda *a: _recurrence_impl(step, policy, weights, *a[:3], needed, a[3]),
        consts, carry, xs, taps, has_aux=True)
    return ys, (vjp_fn, seen, needed)


def _product_inputs(step, weights, consts, carry, x) -> dict:
    """name -> the input v of `linear(name, v)` in one call of `step`."""
    seen = {}

    def linear(name, v):
        seen[name] = v
        return v @ weights[name]

    step(linear, consts, carry, x)
    return seen


def _recurrence_bwd(step, policy, res, g):
    vjp_fn, seen, needed = res
    d_consts, d_carry, d_xs, d_taps = vjp_fn(g)
    d_weights = {}
    for name, v in seen.items():
        d_weights[name] = _weight_gradient(v, d_taps[name], needed)
    return d_weights, d_consts, d_carry, d_xs, None


def _weight_gradient(inputs: Array, d_outputs: Array, needed: Array,
                     segment: int = SEGMENT) -> Array:
    """sum over steps t < needed of inputs[t]^T d_outputs[t]: inputs [T, ..., K],
    d_outputs [T, ..., N] -> [K, N]. The steps run in segments of `segment`; a segment at
    or after `needed` is skipped (its rows are zeros: the skipped steps' inputs and
    cotangents), so short captions cost products over their own steps only."""
    steps, k, n = inputs.shape[0], inputs.shape[-1], d_outputs.shape[-1]

    def product(start):
        stop = min(start + segment, steps)
        return inputs[start:stop].reshape(-1, k).T @ d_outputs[start:stop].reshape(-1, n)

    total = product(0)
    for start in range(segment, steps, segment):
        total = jax.lax.cond(start < needed, lambda t, s=start: t + product(s),
                             lambda t: t, total)
    return total


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)
