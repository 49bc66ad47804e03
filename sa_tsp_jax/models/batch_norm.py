"""BatchNorm with PyTorch/TSP semantics for channels-last video tensors.

Differs from `flax.linen.BatchNorm` in one documented way that matters for checkpoint parity
with TSP: the running variance is updated with the *unbiased* batch variance (PyTorch's
`BatchNorm3d` does `running_var = (1 - m) * running_var + m * var * n / (n - 1)`), while the
normalisation itself uses the biased variance. Statistics are computed in float32 even when
the activations are bfloat16.

Under `jax.jit` over a data-parallel `Mesh` the batch mean is a global mean (XLA inserts the
all-reduce), i.e. this behaves like PyTorch SyncBatchNorm. TSP trained with per-GPU
statistics (DDP without SyncBN); we deliberately use global statistics so the result does not
depend on the number of devices.
"""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import linen as nn

# TSP: BN eps 1e-3 and PyTorch momentum 0.9 (running = 0.1 * old + 0.9 * batch).
TSP_BN_EPS = 1e-3
TSP_BN_TORCH_MOMENTUM = 0.9


class TorchBatchNorm(nn.Module):
    """BatchNorm over all axes but the last (channels).

    Attributes:
      torch_momentum: PyTorch convention, weight of the *new* batch statistic.
      epsilon: added to the variance.
      dtype: output dtype (statistics are float32).

    Variables: params `scale`, `bias` [C]; batch_stats `mean`, `var` [C] (Flax names, so
    Flax-style tooling keeps working).
    """

    torch_momentum: float = TSP_BN_TORCH_MOMENTUM
    epsilon: float = TSP_BN_EPS
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
        channels = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (channels,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (channels,), jnp.float32)
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (channels,), jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, (channels,), jnp.float32)
        axes = tuple(range(x.ndim - 1))
        if train:
            xf = x.astype(jnp.float32)
            mean = jnp.mean(xf, axis=axes)
            var = jnp.mean(jnp.square(xf - mean), axis=axes)
            if not self.is_initializing():
                n = 1
                for a in axes:
                    n *= x.shape[a]
                unbiased = var * (n / max(n - 1, 1))
                m = self.torch_momentum
                ra_mean.value = (1.0 - m) * ra_mean.value + m * mean
                ra_var.value = (1.0 - m) * ra_var.value + m * unbiased
        else:
            mean, var = ra_mean.value, ra_var.value
        mul = scale * jnp.reciprocal(jnp.sqrt(var + self.epsilon))
        add = bias - mean * mul
        # Fold into one multiply-add in the compute dtype.
        return x.astype(self.dtype) * mul.astype(self.dtype) + add.astype(self.dtype)
