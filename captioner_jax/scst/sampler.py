"""Jit-compiled SCST sampling: K multinomial samples + the greedy decode per event, one call.

The captioner's decoding contract (`captioner_jax.decoding.decode_tokens`) runs a caption head
step by step under `lax.scan`:

    decode_tokens(step_fn, carry, *, max_len, key, temperature, greedy, bos_id, eos_id)
        -> tokens int32 [N, L], logprobs float32 [N, L], mask [N, L]
    step_fn(carry, prev_tokens int32 [N]) -> (carry, logits float32 [N, V])

Here a `build_decoder(params, inputs) -> make` turns model parameters and one batch into
`make(num_repeats) -> (step_fn, carry)`: a step function over the batch's N events, each
repeated `num_repeats` times, event-major (rows [e*K, ..., e*K + K - 1] are event e's
copies). The expensive part (e.g. the transformer over the video features) runs once in
`build_decoder`; `make(1)` drives the greedy baseline and `make(K)` the K samples, all in one
compiled program. A decoder whose per-event state lives entirely in the carry can use
`carry_tiling_decoder`. `sequence_logprobs` re-scores given tokens by teacher forcing; the
SCST update differentiates that, not the sampler (sampling is not differentiable and the
tokens are fixed data for the policy gradient).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

StepFn = Callable[[Any, jax.Array], tuple[Any, jax.Array]]
MakeDecoder = Callable[[int], tuple[StepFn, Any]]
BuildDecoder = Callable[[Any, Any], MakeDecoder]


def _default_decode_fn():
    # Imported lazily: the captioner's module may pull in the whole model package.
    from captioner_jax.decoding import decode_tokens

    return decode_tokens


def tile_carry(carry: Any, num_samples: int) -> Any:
    """Repeats every carry leaf K times along its leading (event) axis: [N, ...] -> [N*K, ...]."""
    return jax.tree.map(lambda x: jnp.repeat(x, num_samples, axis=0), carry)


def carry_tiling_decoder(step_fn: StepFn, carry: Any) -> MakeDecoder:
    """`make(k)` for a step function whose per-event state is all in the carry."""
    return lambda k: (step_fn, carry if k == 1 else tile_carry(carry, k))


def mask_through_eos(tokens: jax.Array, eos_id: int = 0) -> jax.Array:
    """float32 [N, L]: 1 up to and including the first EOS, 0 after it.

    The EOS token itself is kept so that the policy gradient also teaches *when* to stop
    (as self-critical.pytorch does: its mask is shifted right by one).
    """
    is_eos = (tokens == eos_id).astype(jnp.int32)
    eos_before = jnp.cumsum(is_eos, axis=1) - is_eos
    return (eos_before == 0).astype(jnp.float32)


def sequence_logprobs(
    step_fn: StepFn, carry: Any, tokens: jax.Array, *, bos_id: int = 0
) -> jax.Array:
    """Teacher-forced log p(tokens[:, t] | tokens[:, :t]) under `step_fn`, float32 [N, L].

    Positions after EOS are scored too (the caller masks them): they see EOS/pad as input,
    which the step function must accept anyway.
    """
    n = tokens.shape[0]
    prev = jnp.concatenate([jnp.full((n, 1), bos_id, tokens.dtype), tokens[:, :-1]], axis=1)

    def body(c, xs):
        prev_t, tok_t = xs
        c, logits = step_fn(c, prev_t)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        return c, jnp.take_along_axis(logp, tok_t[:, None], axis=-1)[:, 0]

    _, lp = jax.lax.scan(body, carry, (prev.T, tokens.T))
    return lp.T


def sample_with_baseline(
    build_decoder: BuildDecoder,
    params: Any,
    inputs: Any,
    key: jax.Array,
    *,
    num_samples: int,
    max_len: int,
    temperature: float = 1.0,
    with_greedy: bool = True,
    bos_id: int = 0,
    eos_id: int = 0,
    decode_fn: Callable | None = None,
) -> dict[str, jax.Array]:
    """K samples per event (+ the greedy decode). Traceable; `make_sampler` jits it.

    Returns:
      "sample_tokens": int32 [N*K, L] (event-major), "sample_mask": float32 [N*K, L]
      (through EOS), "sample_logprobs": float32 [N*K, L] (the model's untempered
      log-probs of the drawn tokens, 0 after EOS), and when `with_greedy`:
      "greedy_tokens" int32 [N, L], "greedy_mask" float32 [N, L].
    """
    decode = decode_fn or _default_decode_fn()
    make = build_decoder(params, inputs)
    out = {}
    if with_greedy:
        step_fn, carry = make(1)
        g_tokens, _, _ = decode(
            step_fn, carry, max_len=max_len, greedy=True, bos_id=bos_id, eos_id=eos_id
        )
        out["greedy_tokens"] = g_tokens.astype(jnp.int32)
        out["greedy_mask"] = mask_through_eos(out["greedy_tokens"], eos_id)
    step_fn, carry = make(num_samples)
    s_tokens, s_logprobs, _ = decode(
        step_fn,
        carry,
        max_len=max_len,
        key=key,
        temperature=temperature,
        greedy=False,
        bos_id=bos_id,
        eos_id=eos_id,
    )
    out["sample_tokens"] = s_tokens.astype(jnp.int32)
    out["sample_mask"] = mask_through_eos(out["sample_tokens"], eos_id)
    out["sample_logprobs"] = s_logprobs
    return out


def make_sampler(
    build_decoder: BuildDecoder,
    *,
    num_samples: int,
    max_len: int,
    temperature: float = 1.0,
    with_greedy: bool = True,
    bos_id: int = 0,
    eos_id: int = 0,
    decode_fn: Callable | None = None,
    out_shardings: Any = None,
) -> Callable[[Any, Any, jax.Array], dict[str, jax.Array]]:
    """`jax.jit`-compiled `sampler(params, inputs, key) -> dict` (see `sample_with_baseline`).

    One device call per batch: the decoder inputs are built once, then the greedy decode and
    the N*K samples run in the same XLA program.
    """
    fn = functools.partial(
        sample_with_baseline,
        build_decoder,
        num_samples=num_samples,
        max_len=max_len,
        temperature=temperature,
        with_greedy=with_greedy,
        bos_id=bos_id,
        eos_id=eos_id,
        decode_fn=decode_fn,
    )
    return jax.jit(fn, out_shardings=out_shardings)
