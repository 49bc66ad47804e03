"""The jitted SCST update step and the trainable-subset optimizer.

The update re-scores the (fixed) sampled tokens by teacher forcing under the current
parameters and descends the SCST loss (captioner_jax.scst.loss). Only the parameters whose
path matches one of `trainable` regexes are updated (optax.multi_transform with
`optax.set_to_zero` for the rest): by default the caption head, as the PDVC-based SCST recipe
does (docs/reference.md §4); the frozen rest still runs in the forward pass.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from captioner_jax.scst.loss import scst_loss
from captioner_jax.scst.sampler import BuildDecoder, sequence_logprobs
from data_prep.infra.tree_names import key_path_name


def trainable_labels(params: Any, trainable: Sequence[str]) -> Any:
    """Pytree of 'train' / 'freeze' labels: 'train' where any regex in `trainable` searches
    the leaf's path (an empty list or ".*" trains everything)."""
    patterns = [re.compile(p) for p in trainable]
    params = flax.core.unfreeze(params) if isinstance(params, flax.core.FrozenDict) else params

    def label(path, _):
        p = key_path_name(path)
        return "train" if not patterns or any(r.search(p) for r in patterns) else "freeze"

    labels = jax.tree_util.tree_map_with_path(label, params)
    if not any(v == "train" for v in jax.tree.leaves(labels)):
        raise ValueError(f"no parameter path matches the trainable patterns {list(trainable)}")
    return labels


def make_optimizer(
    params: Any,
    *,
    learning_rate: float | optax.Schedule,
    trainable: Sequence[str] = ("caption",),
    weight_decay: float = 0.0,
    grad_clip: float = 0.0,
) -> optax.GradientTransformation:
    """AdamW (recipe: 5e-5) on the trainable subset, zero updates elsewhere."""
    inner = [optax.clip_by_global_norm(grad_clip)] if grad_clip > 0 else []
    inner.append(optax.adamw(learning_rate, weight_decay=weight_decay))
    return optax.multi_transform(
        {"train": optax.chain(*inner), "freeze": optax.set_to_zero()},
        trainable_labels(params, trainable),
    )


def scst_loss_fn(
    build_decoder: BuildDecoder,
    params: Any,
    inputs: Any,
    sample_tokens: jax.Array,
    sample_mask: jax.Array,
    advantage: jax.Array,
    *,
    num_samples: int,
    bos_id: int = 0,
    normalize: str = "samples",
) -> jax.Array:
    """SCST loss of fixed samples [N*K, L] (event-major) under `params`.

    `sample_mask` must already be zero for samples of padding events.
    """
    step_fn, carry = build_decoder(params, inputs)(num_samples)
    token_lp = sequence_logprobs(step_fn, carry, sample_tokens, bos_id=bos_id)
    return scst_loss(token_lp, sample_mask, advantage, normalize=normalize)


def make_update_step(
    build_decoder: BuildDecoder,
    optimizer: optax.GradientTransformation,
    *,
    num_samples: int,
    bos_id: int = 0,
    normalize: str = "samples",
    state_sharding: Any = None,
) -> Callable:
    """Returns jitted `update(state, inputs, sample_tokens, sample_mask, advantage) -> (state,
    metrics)`; `state = {"params", "opt_state", "step"}` is donated."""

    def update(state, inputs, sample_tokens, sample_mask, advantage):
        def loss(p):
            return scst_loss_fn(
                build_decoder, p, inputs, sample_tokens, sample_mask, advantage,
                num_samples=num_samples, bos_id=bos_id, normalize=normalize,
            )

        value, grads = jax.value_and_grad(loss)(state["params"])
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = {
            "loss": value,
            "grad_norm": optax.global_norm(grads),
            "update_norm": optax.global_norm(updates),
        }
        new_state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
        return new_state, metrics

    out_shardings = None
    if state_sharding is not None:
        # Metrics replicated: every host can read them (the trainer's metric window).
        mesh = jax.tree.leaves(state_sharding)[0].mesh
        replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        out_shardings = (state_sharding, replicated)
    return jax.jit(update, donate_argnums=(0,), out_shardings=out_shardings)


def init_state(params: Any, optimizer: optax.GradientTransformation) -> dict:
    return {"params": params, "opt_state": optimizer.init(params), "step": jnp.zeros((), jnp.int32)}
