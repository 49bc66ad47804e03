"""Encoder throughput: train-step and extraction clips/s, and model FLOP utilisation (MFU).

    python benchmarks/encoder_throughput.py                       # small + R(2+1)D-34
    python benchmarks/encoder_throughput.py --variants small --train-batch 8 --steps 5

For each variant at T x H x W = 16 x 112 x 112 (flags to change), over all local devices
(data-parallel mesh, the trainer's own jitted step):
  train   clips/s of the SA-TSP update step (200 actions, 1000 concepts, GVF, SGD)
  extract clips/s of the eval-mode backbone forward (feature extraction)
  MFU     (XLA cost-analysis FLOPs per step / step time) / (FLOP/s of a large square matmul
          measured in this same run, on the same devices and dtype) — a measured "peak", so the
          figure is comparable across machines without a spec-sheet number.
Prints one table; `--json PATH` also writes the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from data_prep.infra import mesh as mesh_lib  # noqa: E402
from sa_tsp_jax import optim, train  # noqa: E402
from sa_tsp_jax.losses.pretrain_loss import PretrainLossConfig  # noqa: E402
from sa_tsp_jax.models.heads import SATSPModel  # noqa: E402
from sa_tsp_jax.models.r2plus1d import make_backbone  # noqa: E402


def _cost_flops(stage) -> float:
    cost = stage.cost_analysis()
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", float("nan")))


def _flops(lowered, compiled, devices: int) -> float:
    """FLOPs of one call over all devices. The compiled (SPMD-partitioned) program's cost
    analysis counts one device's share of a batch-sharded step, the lowered (global) one the
    whole step; the compiled count times the device count is the fallback."""
    flops = _cost_flops(lowered)
    if flops == flops and flops > 0:  # not NaN
        return flops
    return _cost_flops(compiled) * devices


def _time(fn, args, steps: int) -> float:
    """Seconds per call after one warm-up call (blocking on the result)."""
    out = fn(*args)
    jax.block_until_ready(out)
    t = time.perf_counter()
    for _ in range(steps):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t) / steps


def matmul_peak(n: int, dtype, mesh, steps: int) -> float:
    """Measured FLOP/s of a batch-sharded [D, n, n] @ [D, n, n] (one matmul per device)."""
    d = mesh.devices.size
    sh = mesh_lib.batch_sharding(mesh)
    a = jax.device_put(jnp.ones((d, n, n), dtype), sh)
    f = jax.jit(lambda x: jnp.einsum("bij,bjk->bik", x, x), out_shardings=sh)
    return 2.0 * d * n ** 3 / _time(f, (a,), steps)


def bench_variant(variant, dtype, mesh, clip_shape, train_batch, extract_batch, steps):
    model = SATSPModel(make_backbone(variant, dtype=dtype), num_actions=200, num_concepts=1000,
                       use_gvf=True)
    tx = optim.make_optimizer(optim.OptimConfig(warmup_epochs=0.0), steps_per_epoch=100)
    feat = model.backbone.feature_dim
    init = train.init_state_fn(model, tx, clip_shape, feat)
    state, _, shardings = train.init_state(init, jax.random.key(0, impl="rbg"), mesh)
    step, _ = train.jit_steps(model, tx, PretrainLossConfig(), mesh, shardings)
    rng = np.random.default_rng(0)
    bs = mesh_lib.batch_sharding(mesh)
    batch = mesh_lib.global_batch({
        "clips": rng.normal(size=(train_batch, *clip_shape)).astype(np.float32),
        "action_label": rng.integers(-1, 200, train_batch).astype(np.int32),
        "region_label": rng.integers(0, 2, train_batch).astype(np.int32),
        "concepts": (rng.random((train_batch, 1000)) < 0.01).astype(np.float32),
        "valid": np.ones(train_batch, bool),
        "gvf": rng.normal(size=(train_batch, feat)).astype(np.float32)}, bs)
    t0 = time.perf_counter()
    lowered = step.lower(state, batch)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    train_flops = _flops(lowered, compiled, mesh.devices.size)
    # The step donates the state: thread it through the timing loop.
    holder = {"state": state}

    def run_step():
        holder["state"], metrics = compiled(holder["state"], batch)
        return metrics

    train_s = _time(lambda: run_step(), (), steps)

    backbone = model.backbone
    variables = {"params": holder["state"]["params"]["backbone"],
                 "batch_stats": holder["state"]["batch_stats"]["backbone"]}
    fwd = jax.jit(lambda v, x: backbone.apply(v, x, train=False), out_shardings=bs)
    clips = jax.device_put(
        jnp.asarray(rng.normal(size=(extract_batch, *clip_shape)), jnp.float32), bs)
    fwd_l = fwd.lower(variables, clips)
    fwd_c = fwd_l.compile()
    extract_flops = _flops(fwd_l, fwd_c, mesh.devices.size)
    extract_s = _time(fwd_c, (variables, clips), steps)
    return {
        "variant": variant, "dtype": jnp.dtype(dtype).name, "compile_train_s": compile_s,
        "train_batch": train_batch, "train_clips_per_s": train_batch / train_s,
        "train_flops_per_clip": train_flops / train_batch,
        "train_flops_per_s": train_flops / train_s,
        "extract_batch": extract_batch, "extract_clips_per_s": extract_batch / extract_s,
        "fwd_flops_per_clip": extract_flops / extract_batch,
        "extract_flops_per_s": extract_flops / extract_s,
    }


def main(argv=None) -> None:
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX's backend starts: see data_prep/infra/host_memory.py
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="small,r2plus1d_34")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--train-batch", type=int, default=0, help="global; 0: 4 per device")
    p.add_argument("--extract-batch", type=int, default=0, help="global; 0: 8 per device")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--matmul-n", type=int, default=0, help="0: 8192 on GPU/TPU, 2048 on CPU")
    p.add_argument("--json", default="")
    args = p.parse_args(argv)

    mesh = mesh_lib.make_mesh()
    n_dev = mesh.devices.size
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[args.dtype]
    platform = jax.devices()[0].platform
    n = args.matmul_n or (2048 if platform == "cpu" else 8192)
    peak = matmul_peak(n, dtype, mesh, args.steps)
    clip_shape = (args.frames, args.size, args.size, 3)
    tb = args.train_batch or 4 * n_dev
    eb = args.extract_batch or 8 * n_dev
    print(f"devices: {n_dev} x {jax.devices()[0].device_kind} ({platform}); "
          f"matmul {n}^3 {args.dtype}: {peak / 1e12:.3f} TFLOP/s (measured peak)")
    rows = []
    for variant in args.variants.split(","):
        r = bench_variant(variant.strip(), dtype, mesh, clip_shape, tb, eb, args.steps)
        r["train_mfu"] = r["train_flops_per_s"] / peak
        r["extract_mfu"] = r["extract_flops_per_s"] / peak
        r["matmul_peak_flops_per_s"] = peak
        rows.append(r)
        print(f"{r['variant']:>12} {r['dtype']}: train {r['train_clips_per_s']:8.2f} clips/s "
              f"(batch {tb}, {r['train_flops_per_clip'] / 1e9:.1f} GFLOP/clip, "
              f"MFU {100 * r['train_mfu']:.1f}%, compile {r['compile_train_s']:.0f} s) | "
              f"extract {r['extract_clips_per_s']:8.2f} clips/s (batch {eb}, "
              f"{r['fwd_flops_per_clip'] / 1e9:.1f} GFLOP/clip, "
              f"MFU {100 * r['extract_mfu']:.1f}%)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
