"""benchmarks/conv_kernel_grad.py: its kernel-gradient formulations agree (it times
them against each other, so a wrong one would make its figures meaningless)."""
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import conv_kernel_grad


@pytest.mark.parametrize("x_shape,kernel_hw,padding", [
    ((2, 6, 5, 3), (3, 3), ((1, 1), (1, 1))),  # spatial (1,3,3)
    ((2, 4, 7, 3), (3, 1), ((1, 1), (0, 0))),  # temporal (3,1,1) over [B, T, H*W, C]
])
def test_formulations_agree(x_shape, kernel_hw, padding):
    rng = np.random.default_rng(0)
    out_channels = 4
    x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
    dy = jnp.asarray(rng.normal(size=x_shape[:-1] + (out_channels,)), jnp.float32)
    outs = {k: np.asarray(f(x, dy)) for k, f in
            conv_kernel_grad.formulations(kernel_hw, padding, out_channels, k_block=4).items()}
    assert set(outs) == {"xla", "per_tap", "dy_t", "dy_t_copy", "patches", "k_blocks"}
    assert outs["xla"].shape == kernel_hw + (x_shape[-1], out_channels)
    for name in ("per_tap", "dy_t", "dy_t_copy", "patches", "k_blocks"):
        np.testing.assert_allclose(outs[name], outs["xla"], rtol=1e-5, atol=1e-5)
