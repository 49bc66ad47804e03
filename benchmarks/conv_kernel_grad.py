"""Kernel gradient of a 2-D convolution on XLA CPU: three formulations, same run.

    python benchmarks/conv_kernel_grad.py                  # R(2+1)D-34 shapes at 2x16x112
    python benchmarks/conv_kernel_grad.py --repeats 7

For x [N, H, W, C] and the output gradient dy [N, Ho, Wo, O] of a 3x3 / (3,1) convolution,
the kernel gradient dk[i, j] = sum over positions of tap_ij(x)^T dy ([C, O] per tap), where
tap_ij is the (i, j)-shifted window of the zero-padded input. Formulations:
  xla        jax.vjp of lax.conv_general_dilated w.r.t. the kernel (XLA's own lowering: a
             convolution whose window is the whole image)
  per_tap    einsum("nhwc,nhwo->co", tap, dy) per tap (the project's lowering before
             2026-12: XLA transposes every tap to [C, N*H*W] first)
  dy_t       dy^T [O, N*H*W] formed once, then dy^T @ tap per tap (the project's lowering,
             `sa_tsp_jax.models.r2plus1d._conv2d_bwd`)
Shapes are the spatial (1,3,3) and temporal (3,1,1) convolutions of R(2+1)D-34's first two
stages at a 2 x 16 x 112 x 112 clip batch (the temporal one runs as a (3, 1) 2-D conv over
[B, T, H*W, C]). Prints ms and GFLOP/s per formulation and a BENCH_JSON line per shape; all
three are checked equal (max relative difference) before timing.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from benchmarks.harness import alternate, emit, machine_info  # noqa: E402
from sa_tsp_jax.models import r2plus1d  # noqa: E402

# (name, x shape [N, H, W, C], kernel (kh, kw), output channels O, padding)
SHAPES = (
    ("layer1 spatial 64->144", (32, 56, 56, 64), (3, 3), 144, ((1, 1), (1, 1))),
    ("layer1 temporal 144->64", (2, 16, 3136, 144), (3, 1), 64, ((1, 1), (0, 0))),
    ("layer2 spatial 128->288", (16, 28, 28, 128), (3, 3), 288, ((1, 1), (1, 1))),
    ("layer2 temporal 288->128", (2, 8, 784, 288), (3, 1), 128, ((1, 1), (0, 0))),
)


def formulations(kernel_hw, padding, out_channels):
    """{name: jitted f(x, dy) -> dk [kh, kw, C, O]} for one convolution shape."""
    kh, kw = kernel_hw

    def conv(x, k):
        return lax.conv_general_dilated(x, k, (1, 1), padding,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def xla(x, dy):
        k0 = jnp.zeros((kh, kw, x.shape[-1], out_channels), x.dtype)
        return jax.vjp(lambda k: conv(x, k), k0)[1](dy)[0]

    def per_tap(x, dy):
        taps = r2plus1d._taps(x, kh, kw, (1, 1), padding, dy.shape[1:3])
        return jnp.stack([jnp.einsum("nhwc,nhwo->co", t, dy) for t in taps]).reshape(
            kh, kw, x.shape[-1], out_channels)

    def dy_t(x, dy):
        k0 = jnp.zeros((kh, kw, x.shape[-1], out_channels), x.dtype)
        return r2plus1d._conv2d_bwd((1, 1), padding, (x, k0), dy)[1]

    return {"xla": jax.jit(xla), "per_tap": jax.jit(per_tap), "dy_t": jax.jit(dy_t)}


def main(argv=None) -> None:
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX's backend starts: see data_prep/infra/host_memory.py
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    print(f"machine: {machine_info()}")
    rng = np.random.default_rng(0)
    for name, x_shape, kernel_hw, out_channels, padding in SHAPES:
        x = jnp.asarray(rng.normal(size=x_shape).astype(np.float32))
        dy = jnp.asarray(rng.normal(size=x_shape[:-1] + (out_channels,)).astype(np.float32))
        fns = formulations(kernel_hw, padding, out_channels)
        outs = {k: np.asarray(f(x, dy)) for k, f in fns.items()}
        scale = np.abs(outs["xla"]).max()
        diff = max(float(np.abs(o - outs["xla"]).max() / scale) for o in outs.values())
        calls = {k: (lambda f=f, x=x, dy=dy: jax.block_until_ready(f(x, dy)))
                 for k, f in fns.items()}
        secs = alternate(calls, repeats=args.repeats)
        flops = 2 * int(np.prod(x_shape)) * out_channels * kernel_hw[0] * kernel_hw[1]
        print(f"{name}: max relative difference {diff:.1e}")
        for k, s in secs.items():
            print(f"  {k:8s} {s * 1e3:8.1f} ms  {flops / s / 1e9:6.1f} GFLOP/s")
        print(f"  dy_t vs per_tap: {secs['per_tap'] / secs['dy_t']:.2f}x, "
              f"vs xla: {secs['xla'] / secs['dy_t']:.2f}x")
        emit({"bench": "conv_kernel_grad", "shape": name,
              **{f"{k}_ms": round(s * 1e3, 2) for k, s in secs.items()},
              "max_rel_diff": diff})


if __name__ == "__main__":
    main()
