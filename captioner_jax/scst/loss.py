"""The self-critical policy-gradient loss (Rennie et al. 2017) and its baselines.

For sample k of event e with reward r_ek and baseline b_ek, the loss is
    -(r_ek - b_ek) * sum_t mask_ekt * log p(w_ekt | w_ek<t),
the mask running through the first EOS. Its gradient is the REINFORCE estimate with a
baseline: a sample rewarded above its baseline has its log-probability pushed up.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

BASELINES = ("greedy", "mean_others")


def advantages(
    sample_rewards: np.ndarray, greedy_rewards: np.ndarray | None, baseline: str = "greedy"
) -> np.ndarray:
    """r - b, float32 [E, K], on the host.

    Args:
      sample_rewards: [E, K] rewards of the K samples of each event.
      greedy_rewards: [E] rewards of the greedy decodes (needed for baseline="greedy").
      baseline: "greedy" (Rennie et al.: b = reward of the test-time greedy decode) or
        "mean_others" (b_k = mean reward of the other K-1 samples of the same event, the
        "new self-critical" variant; needs K >= 2).
    """
    r = np.asarray(sample_rewards, np.float64)
    if r.ndim != 2:
        raise ValueError(f"sample_rewards must be [events, samples], got shape {r.shape}")
    if baseline == "greedy":
        if greedy_rewards is None:
            raise ValueError("baseline='greedy' needs greedy_rewards")
        b = np.asarray(greedy_rewards, np.float64).reshape(-1, 1)
    elif baseline == "mean_others":
        k = r.shape[1]
        if k < 2:
            raise ValueError("baseline='mean_others' needs at least 2 samples per event")
        b = (r.sum(axis=1, keepdims=True) - r) / (k - 1)
    else:
        raise ValueError(f"unknown baseline {baseline!r}; known: {BASELINES}")
    return (r - b).astype(np.float32)


def scst_loss(
    token_logprobs: jax.Array,
    mask: jax.Array,
    advantage: jax.Array,
    *,
    normalize: str = "samples",
) -> jax.Array:
    """Scalar SCST loss.

    Args:
      token_logprobs: float32 [M, L], log p of each sampled token (differentiable).
      mask: float32 [M, L], 1 through EOS for valid samples, all 0 for padding samples.
      advantage: float32 [M], r - b (treated as a constant).
      normalize: "samples" = mean over valid samples of the per-sequence loss (the
        issue's -(r - b) * sum_t log p); "tokens" = divide by the number of valid tokens
        instead (self-critical.pytorch's RewardCriterion).
    """
    adv = jax.lax.stop_gradient(advantage.astype(jnp.float32))
    seq_logprob = jnp.sum(token_logprobs * mask, axis=1)
    total = -jnp.sum(adv * seq_logprob)
    if normalize == "samples":
        denom = jnp.sum(jnp.any(mask > 0, axis=1))
    elif normalize == "tokens":
        denom = jnp.sum(mask)
    else:
        raise ValueError(f"unknown normalize {normalize!r}; use 'samples' or 'tokens'")
    return total / jnp.maximum(denom, 1.0)
