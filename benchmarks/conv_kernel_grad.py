"""Kernel gradient of a 2-D convolution on XLA CPU: three formulations, same run.

    python benchmarks/conv_kernel_grad.py                  # R(2+1)D-34 shapes at 2x16x112
    python benchmarks/conv_kernel_grad.py --clip 8x8x32 --threads 1 --repeats 7

For x [N, H, W, C] and the output gradient dy [N, Ho, Wo, O] of a 3x3 / (3,1) convolution,
the kernel gradient dk[i, j] = sum over positions of tap_ij(x)^T dy ([C, O] per tap), where
tap_ij is the (i, j)-shifted window of the zero-padded input. Formulations:
  xla        jax.vjp of lax.conv_general_dilated w.r.t. the kernel (XLA's own lowering: a
             convolution whose window is the whole image)
  per_tap    einsum("nhwc,nhwo->co", tap, dy) per tap (the project's lowering before
             2026-12: XLA transposes every tap to [C, N*H*W] first)
  dy_t       dy^T [O, N*H*W] formed once, then dy^T @ tap per tap (the project's lowering,
             `sa_tsp_jax.models.r2plus1d._conv2d_bwd`; XLA folds both transposes into the
             dot, which then runs as Eigen's contraction with a transposed operand)
  dy_t_copy  the same with dy^T materialised (an optimization barrier keeps the copy), so
             that every per-tap dot has canonical operands [O, K] @ [K, C]
  patches    the kh*kw taps concatenated on channels, then one [kh*kw*C, K] @ [K, O] product
  k_blocks   per tap, K split into blocks of 2048 rows: a batched product, then a sum
All four alternatives compute the same sums (a long contraction K = N*Ho*Wo into a small
[C, O] result); the last three are the obvious ways to hand that shape to a GEMM differently.
Shapes are the spatial (1,3,3) and temporal (3,1,1) convolutions of R(2+1)D-34's first two
stages at the clip batch `--clip` BxTxS (default 2 x 16 x 112 x 112; the temporal one runs as
a (3, 1) 2-D conv over [B, T, H*W, C]). Prints ms and GFLOP/s per formulation and a BENCH_JSON
line per shape; all are checked equal (max relative difference) before timing.
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

from benchmarks.harness import alternate, emit, machine_info, parse_clip_benchmark_args  # noqa: E402
from sa_tsp_jax.models import r2plus1d  # noqa: E402


def shapes(batch: int, frames: int, size: int):
    """(name, x shape [N, H, W, C], kernel (kh, kw), output channels O, padding) of the first
    block's convolutions in stages 1 and 2 of R(2+1)D-34 for clips [batch, frames, size, size].
    The stem halves the spatial size; stage 2 halves time and space again."""
    s1, s2, t2 = size // 2, size // 4, frames // 2
    return (
        ("layer1 spatial 64->144", (batch * frames, s1, s1, 64), (3, 3), 144, ((1, 1), (1, 1))),
        ("layer1 temporal 144->64", (batch, frames, s1 * s1, 144), (3, 1), 64, ((1, 1), (0, 0))),
        ("layer2 spatial 128->288", (batch * t2, s2, s2, 128), (3, 3), 288, ((1, 1), (1, 1))),
        ("layer2 temporal 288->128", (batch, t2, s2 * s2, 288), (3, 1), 128, ((1, 1), (0, 0))),
    )


def formulations(kernel_hw, padding, out_channels, k_block: int = 2048):
    """{name: jitted f(x, dy) -> dk [kh, kw, C, O]} for one convolution shape (`k_block`: rows
    per block of `k_blocks`; one block when it does not divide K)."""
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

    def dy_t_copy(x, dy):
        taps = r2plus1d._taps(x, kh, kw, (1, 1), padding, dy.shape[1:3])
        d = lax.optimization_barrier(dy.reshape(-1, out_channels).T)
        return jnp.stack([(d @ t.reshape(-1, x.shape[-1])).T for t in taps]).reshape(
            kh, kw, x.shape[-1], out_channels)

    def patches(x, dy):
        taps = r2plus1d._taps(x, kh, kw, (1, 1), padding, dy.shape[1:3])
        p = jnp.concatenate([t.reshape(-1, x.shape[-1]) for t in taps], axis=1)
        return (p.T @ dy.reshape(-1, out_channels)).reshape(kh, kw, x.shape[-1], out_channels)

    def k_blocks(x, dy):
        block = k_block
        taps = r2plus1d._taps(x, kh, kw, (1, 1), padding, dy.shape[1:3])
        k = dy.shape[0] * dy.shape[1] * dy.shape[2]
        n = k // block if k % block == 0 else 1
        d = dy.reshape(n, -1, out_channels)
        return jnp.stack([jnp.einsum("bkc,bko->co", t.reshape(n, -1, x.shape[-1]), d)
                          for t in taps]).reshape(kh, kw, x.shape[-1], out_channels)

    fns = {"xla": xla, "per_tap": per_tap, "dy_t": dy_t, "dy_t_copy": dy_t_copy,
           "patches": patches, "k_blocks": k_blocks}
    return {k: jax.jit(f) for k, f in fns.items()}


def main(argv=None) -> None:
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX's backend starts: see data_prep/infra/host_memory.py
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args, (batch, frames, size) = parse_clip_benchmark_args(p, argv)
    print(f"machine: {machine_info()}")
    rng = np.random.default_rng(0)
    for name, x_shape, kernel_hw, out_channels, padding in shapes(batch, frames, size):
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
        emit({"bench": "conv_kernel_grad", "shape": name, "clip": args.clip,
              "threads": args.threads or os.cpu_count(),
              **{f"{k}_ms": round(s * 1e3, 2) for k, s in secs.items()},
              "max_rel_diff": diff})


if __name__ == "__main__":
    main()
