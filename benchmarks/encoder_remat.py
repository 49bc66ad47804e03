"""The R(2+1)D backbone's training step under each `remat` policy, same run: FLOPs, the
compiled step's temporary memory, seconds per step.

    python benchmarks/encoder_remat.py                              # R(2+1)D-34, 2 x 16x112x112
    python benchmarks/encoder_remat.py --clip 8x8x32 --repeats 5
    XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false \
        python benchmarks/encoder_remat.py       # XLA CPU's other scheduler

The step is the backbone's forward in train mode (batch statistics) and the gradient of a sum
of squares of its pooled features in its parameters (`jax.value_and_grad`, jitted): the part
of the SA-TSP training step that `R2Plus1D.remat` changes (the heads and the optimizer add
parameter-sized buffers only). Policies (`sa_tsp_jax.models.r2plus1d.REMAT_POLICIES`):
  none          every intermediate kept for the backward pass
  conv_outputs  the convolutions' outputs kept, BatchNorm and ReLU recomputed
  block         only each residual block's input kept, the block recomputed
Prints, per policy, the compile seconds, XLA's cost-analysis GFLOP, the compiled program's
temporary buffers (`memory_analysis().temp_size_in_bytes`: activations kept for the backward
pass and every other intermediate, as XLA's scheduler and buffer assignment place them) and
the median seconds per step (policies interleaved), and one BENCH_JSON line for all. The
memory a policy saves depends on the backend's scheduler: see the README ("GPU / TPU check").
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import alternate, emit, machine_info, pin_to_cores  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="r2plus1d_34")
    p.add_argument("--clip", default="2x16x112", help="BxTxS: clips x frames x side")
    p.add_argument("--policies", default="none,conv_outputs,block")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per policy (median)")
    p.add_argument("--threads", type=int, default=0, help="pin to N cores (0 = all)")
    p.add_argument("--json-out", default=None, help="append the BENCH_JSON line to this file")
    args = p.parse_args(argv)
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # as every entry point does, before JAX's backend starts
    if args.threads:
        pin_to_cores(args.threads)

    import jax
    import jax.numpy as jnp
    import numpy as np

    from sa_tsp_jax.models.r2plus1d import make_backbone

    b, t, s = (int(v) for v in args.clip.split("x"))
    clips = jnp.asarray(np.random.default_rng(0).standard_normal((b, t, s, s, 3)), jnp.float32)
    policies = args.policies.split(",")
    variables = jax.jit(lambda k: make_backbone(args.variant).init(k, clips[:1], train=False))(
        jax.random.key(0))
    rows, steps = {}, {}
    for remat in policies:
        model = make_backbone(args.variant, remat=remat)

        def loss(params, batch_stats, x, model=model):
            y, new = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                 mutable=["batch_stats"])
            return jnp.sum(y**2), new

        start = time.perf_counter()
        compiled = jax.jit(jax.value_and_grad(loss, has_aux=True)).lower(
            variables["params"], variables["batch_stats"], clips).compile()
        compile_s = time.perf_counter() - start
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        steps[remat] = lambda c=compiled: jax.block_until_ready(
            c(variables["params"], variables["batch_stats"], clips))
        rows[remat] = {"compile_s": round(compile_s, 2),
                       "gflop": round(float(cost.get("flops", 0.0)) / 1e9, 2),
                       "temp_mib": round(compiled.memory_analysis().temp_size_in_bytes / 2**20, 1)}
    seconds = alternate(steps, repeats=args.repeats)
    print(f"{args.variant} {args.clip} f32 train-mode backbone step; "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    for remat in policies:
        rows[remat]["step_s"] = round(seconds[remat], 3)
        r = rows[remat]
        print(f"  {remat:13s} compile {r['compile_s']:5.1f} s | {r['gflop']:8.1f} GFLOP | "
              f"temporaries {r['temp_mib']:8.1f} MiB | step {r['step_s']:.3f} s")
    emit({"bench": "encoder_remat", "variant": args.variant, "clip": args.clip,
          "xla_flags": os.environ.get("XLA_FLAGS", ""), "threads": args.threads,
          "repeats": args.repeats, "policies": rows, "machine": machine_info()}, args.json_out)


if __name__ == "__main__":
    main()
