"""Asymmetric Loss for multi-label classification (Ridnik et al., ICCV 2021).

Exactly docs/reference.md section 3 (the `AsymmetricLoss` of Alibaba-MIIL/ASL with
`disable_torch_grad_focal_loss=True`). With logits x, targets y in {0,1}, p = sigmoid(x):
  p_neg = min(1 - p + clip, 1)                (probability shifting of easy negatives)
  L     = y * log(max(p, eps)) + (1 - y) * log(max(p_neg, eps))
  pt    = p * y + p_neg * (1 - y)
  w     = (1 - pt) ** (gamma_pos * y + gamma_neg * (1 - y))   (no gradient through w)
  loss  = -sum(w * L)                         (sum over batch and classes)
The clamps pass gradients where the bound is met with equality, as `torch.clamp` does.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def asymmetric_loss(
    logits: jnp.ndarray,
    targets: jnp.ndarray,
    gamma_neg: float = 4.0,
    gamma_pos: float = 1.0,
    clip: float = 0.05,
    eps: float = 1e-8,
    weights: jnp.ndarray | None = None,
    stop_gradient_focal_weight: bool = True,
) -> jnp.ndarray:
    """Summed ASL.

    Args:
      logits: [..., C] raw scores.
      targets: [..., C] multi-hot {0, 1} (any float/int dtype).
      gamma_neg, gamma_pos: focusing exponents of negatives / positives.
      clip: probability margin m for negatives (0 disables shifting).
      eps: floor inside the logs.
      weights: optional [...] per-example weights (e.g. 0 for padded examples).
      stop_gradient_focal_weight: True = the reference default (w treated as a constant).

    Returns:
      scalar float32 loss (a sum, not a mean).
    """
    x = logits.astype(jnp.float32)
    y = targets.astype(jnp.float32)
    p = jax.nn.sigmoid(x)
    p_neg = 1.0 - p
    if clip is not None and clip > 0:
        p_neg = p_neg + clip
        p_neg = jnp.where(p_neg > 1.0, 1.0, p_neg)  # torch clamp(max=1)
    log_pos = jnp.log(jnp.where(p < eps, eps, p))  # torch clamp(min=eps)
    log_neg = jnp.log(jnp.where(p_neg < eps, eps, p_neg))
    loss = y * log_pos + (1.0 - y) * log_neg
    if gamma_neg > 0 or gamma_pos > 0:
        pt = p * y + p_neg * (1.0 - y)
        gamma = gamma_pos * y + gamma_neg * (1.0 - y)
        # torch.pow's gradient is 0 where the exponent is 0 (PyTorch masks it); jnp.power's
        # is 0 * 0^-1 = NaN at a saturated positive (p == 1.0 in float32, logit > ~17) with
        # gamma_pos = 0. The base is replaced there so that neither branch yields a NaN.
        base = jnp.where(gamma == 0.0, 1.0, 1.0 - pt)
        w = jnp.where(gamma == 0.0, 1.0, jnp.power(base, gamma))
        if stop_gradient_focal_weight:
            w = jax.lax.stop_gradient(w)
        loss = loss * w
    if weights is not None:
        loss = loss * weights.astype(jnp.float32)[..., None]
    return -jnp.sum(loss)
