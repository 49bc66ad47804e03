"""Initialisers that reproduce PyTorch defaults where PDVC relies on them."""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


def torch_uniform(bound: float):
    """U(-bound, bound)."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def torch_linear(fan_in: int) -> dict:
    """kernel/bias init of PyTorch's default `nn.Linear`: both U(-1/sqrt(fan_in), +)."""
    bound = 1.0 / math.sqrt(fan_in)
    return {"kernel_init": torch_uniform(bound), "bias_init": torch_uniform(bound)}


def xavier_linear(fan_in: int) -> dict:
    """Deformable DETR resets every >1-D transformer weight with Xavier-uniform; biases keep
    PyTorch's default U(-1/sqrt(fan_in), +)."""
    return {
        "kernel_init": nn.initializers.xavier_uniform(),
        "bias_init": torch_uniform(1.0 / math.sqrt(fan_in)),
    }
