"""Winograd F(2x2, 3x3) against the project's direct (1,3,3) convolution on XLA CPU.

    python benchmarks/conv_winograd.py                        # R(2+1)D-34 shapes at 2x16x112
    python benchmarks/conv_winograd.py --clip 8x8x32 --repeats 7 --json-out out.jsonl

Why it is here: the encoder's forward convolutions already run near the machine's matmul
rate, so "another convolution algorithm" is what could still cut the extraction forward and
the training step. Winograd's minimal filtering F(2x2, 3x3) computes every 2x2 output tile
from a 4x4 input tile with 16 products per (input channel, output channel) instead of 36:
2.25x fewer multiplies for the stride-1 3x3 spatial convolutions (about three quarters of
R(2+1)D-34's FLOPs). Written in JAX: the input transform B^T d B of every tile (adds of 16
strided slices), one batched product [16, P, C] x [16, C, O] over the P tiles, the output
transform A^T m A, the tiles interleaved back; its gradients by autodiff (so the input and
kernel gradients are Winograd-form products too). Compared with the project's convolution as
the model runs it (`sa_tsp_jax.models.r2plus1d.conv2d_for_shape`: XLA's convolution forward
with the kernel gradient as per-tap matmuls; patches + one matmul for small images) in one
process, interleaved (`benchmarks.harness.alternate`): the forward, and the gradient of
sum(y^2) w.r.t. input and kernel (forward included). Shapes: the first (stride-1) spatial
convolution of each of the four stages at clip batch `--clip` BxTxS (R(2+1)D-34's widths and
TSP's mid-planes). The two are checked equal (max relative difference) before timing. Prints
ms and ratios (> 1: Winograd faster) and one BENCH_JSON line per shape. Measured 2026-12-02
(README, encoder paragraph): the gradient slower at every shape, the forward at best 1.2x
faster in the first two stages and slower in the last two, so the encoder keeps the direct
convolution.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.harness import alternate, emit, machine_info, parse_clip_benchmark_args  # noqa: E402
from sa_tsp_jax.models import r2plus1d  # noqa: E402

# F(2x2, 3x3) (Lavin & Gray 2016): y = A^T [(G g G^T) * (B^T d B)] A for a 4x4 tile d.
B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)
PADDING = ((1, 1), (1, 1))


def _combine(coefficients, arrays):
    """sum_i c_i * a_i, skipping zero coefficients and multiplying only where |c| != 1."""
    out = None
    for c, a in zip(coefficients, arrays):
        if c == 0:
            continue
        term = a if c == 1 else (-a if c == -1 else c * a)
        out = term if out is None else out + term
    return out


def winograd_conv3x3(x, kernel):
    """Stride-1, zero-padding-1 3x3 convolution (cross-correlation, as lax.conv) by F(2x2, 3x3).

    x [N, H, W, C], kernel [3, 3, C, O] (HWIO) -> [N, H, W, O]; odd H or W is padded by one
    zero row / column and the extra output cropped.
    """
    n, h, w, c = x.shape
    he, we = h + h % 2, w + w % 2
    xp = jnp.pad(x, ((0, 0), (1, 1 + he - h), (1, 1 + we - w), (0, 0)))
    # d[i][j] [N, He/2, We/2, C]: element (i, j) of every 4x4 tile (tiles at stride 2).
    d = [[xp[:, i:i + he:2, j:j + we:2, :] for j in range(4)] for i in range(4)]
    rows = [[_combine(B_T[k], [d[i][j] for i in range(4)]) for j in range(4)] for k in range(4)]
    v = jnp.stack([_combine(B_T[m], rows[k]) for k in range(4) for m in range(4)])
    u = jnp.einsum("ai,ijco,bj->abco", G, kernel, G).reshape(16, c, -1)
    prod = jnp.einsum("spc,sco->spo", v.reshape(16, -1, c), u)  # [16, P, O]
    o = prod.shape[-1]
    prod = prod.reshape(4, 4, n, he // 2, we // 2, o)
    half = [[_combine(A_T[a], [prod[k, m] for k in range(4)]) for m in range(4)]
            for a in range(2)]
    y = [[_combine(A_T[b], half[a]) for b in range(2)] for a in range(2)]
    # [N, He/2, 2, We/2, 2, O]: tile rows, row in tile, tile columns, column in tile.
    tiles = jnp.stack([jnp.stack(y[a], axis=3) for a in range(2)], axis=2)
    return tiles.reshape(n, he, we, o)[:, :h, :w]


def direct_conv3x3(x, kernel):
    """The project's convolution as the encoder runs it (`r2plus1d.conv2d_for_shape`: XLA's
    convolution with per-tap kernel-gradient matmuls, or patches + one matmul for fewer than 64
    output positions per image)."""
    return r2plus1d.conv2d_for_shape(x, kernel, (1, 1), PADDING)


def shapes(batch: int, frames: int, size: int):
    """(name, x [N, H, W, C], output channels) of the first stride-1 spatial convolution of
    each stage of R(2+1)D-34 (the stem halves the size; stages 2-4 halve time and space)."""
    out = []
    for stage, width in enumerate((64, 128, 256, 512)):
        t = max(frames >> stage, 1)
        s = max(size >> (stage + 1), 1)
        mid = r2plus1d.midplanes(width, width)
        out.append((f"layer{stage + 1} spatial {width}->{mid}", (batch * t, s, s, width), mid))
    return out


def programs():
    """{name: jitted f(x, kernel)}: forward and training gradient of each formulation."""
    def grad_of(conv):
        return jax.grad(lambda x, k: jnp.sum(conv(x, k) ** 2), argnums=(0, 1))

    return {"direct_fwd": jax.jit(direct_conv3x3), "winograd_fwd": jax.jit(winograd_conv3x3),
            "direct_grad": jax.jit(grad_of(direct_conv3x3)),
            "winograd_grad": jax.jit(grad_of(winograd_conv3x3))}


def main(argv=None) -> None:
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX's backend starts: see data_prep/infra/host_memory.py
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json-out", default="", help="append the BENCH_JSON lines here")
    args, (batch, frames, size) = parse_clip_benchmark_args(p, argv)
    info = machine_info()
    print(f"machine: {info}")
    rng = np.random.default_rng(0)
    fns = programs()
    for name, x_shape, out_channels in shapes(batch, frames, size):
        x = jnp.asarray(rng.normal(size=x_shape).astype(np.float32))
        k = jnp.asarray((rng.normal(size=(3, 3, x_shape[-1], out_channels))
                         / np.sqrt(9 * x_shape[-1])).astype(np.float32))
        ref, got = np.asarray(fns["direct_fwd"](x, k)), np.asarray(fns["winograd_fwd"](x, k))
        diff = float(np.abs(got - ref).max() / np.abs(ref).max())
        calls = {f: (lambda fn=fn, x=x, k=k: jax.block_until_ready(fn(x, k)))
                 for f, fn in fns.items()}
        secs = alternate(calls, repeats=args.repeats)
        fwd = secs["direct_fwd"] / secs["winograd_fwd"]
        grad = secs["direct_grad"] / secs["winograd_grad"]
        print(f"{name} {x_shape}: max relative difference {diff:.1e}")
        print(f"  forward  direct {secs['direct_fwd'] * 1e3:8.1f} ms, winograd "
              f"{secs['winograd_fwd'] * 1e3:8.1f} ms: {fwd:.2f}x")
        print(f"  gradient direct {secs['direct_grad'] * 1e3:8.1f} ms, winograd "
              f"{secs['winograd_grad'] * 1e3:8.1f} ms: {grad:.2f}x", flush=True)
        emit({"bench": "conv_winograd", "shape": name, "x_shape": list(x_shape),
              "clip": args.clip, "threads": args.threads or os.cpu_count(),
              **{f"{f}_ms": round(s * 1e3, 4) for f, s in secs.items()},
              "forward_speedup": round(fwd, 3), "gradient_speedup": round(grad, 3),
              "max_rel_diff": diff, "machine": info}, args.json_out or None)


if __name__ == "__main__":
    main()
