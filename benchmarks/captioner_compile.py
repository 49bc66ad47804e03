"""Cold first call of the captioner's training programs, piece by piece, and what the
compiled train step is made of.

    python benchmarks/captioner_compile.py                       # the runlocal (tiny) model
    python benchmarks/captioner_compile.py --model '{"num_levels": 1, "cap_levels": 1}'
    XLA_FLAGS=--xla_backend_optimization_level=0 python benchmarks/captioner_compile.py

Builds `configs/captioner/synthetic.py:runlocal`'s PDVC (hidden size 32, one encoder and one
decoder layer; `--model` overrides its fields as JSON) for a batch of 2 videos x 32 feature
steps x 64 dims, 74 words, and times, in this fresh process with the persistent compilation
cache off: the parameter init program, the training forward with its matching costs (first
call: trace, compile, run), lowering the train step (tracing) and XLA compiling it. Then counts
the compiled step's fusions by the first three parts of their `op_name` (`--breakdown N`: the N
largest groups; e.g. the caption loss's `cond` branches, the forward and backward of each
layer). Prints one BENCH_JSON line.
Compile time is mostly XLA's per-kernel LLVM work, so it changes little with model width.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BATCH, STEPS, FEAT_DIM, WORDS = 2, 32, 64, 74


def fusion_groups(hlo_text: str, depth: int = 3) -> collections.Counter:
    """Fusions (and custom calls) of a compiled HLO module, counted by the first `depth`
    parts of their `op_name` after the jit name, digits replaced by '#'."""
    groups = collections.Counter()
    for line in hlo_text.splitlines():
        if " fusion(" not in line and " custom-call(" not in line:
            continue
        m = re.search(r'op_name="([^"]*)"', line)
        parts = m.group(1).split("/")[1:1 + depth] if m else []
        groups[re.sub(r"\d+", "#", "/".join(parts)) or "(no op_name)"] += 1
    return groups


def main(argv=None) -> None:
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX's backend starts: see data_prep/infra/host_memory.py
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="{}", help="JSON overrides of the runlocal model config")
    p.add_argument("--breakdown", type=int, default=12, help="fusion groups to print")
    args = p.parse_args(argv)
    overrides = json.loads(args.model)

    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks.captioner_throughput import random_batch
    from benchmarks.harness import emit
    from captioner_jax import build, train
    from captioner_jax.objective import MatcherCosts
    from configs.captioner import synthetic
    from data_prep.infra import mesh as mesh_lib

    jax.config.update("jax_enable_compilation_cache", False)  # a cold first call
    c = synthetic.get_config("root=unused,features=unused,dim=64,runlocal")
    c.model.update(**overrides)
    model = build.build_model(c.model, WORDS + 1)
    batch = random_batch(np.random.default_rng(0), BATCH, t=STEPS, c=FEAT_DIM, vocab=WORDS)
    times = {}
    t0 = time.perf_counter()
    params = jax.jit(lambda k: model.init(
        {"params": k}, batch["feats"], batch["feat_valid"], batch["duration"],
        method=type(model).init_all)["params"])(jax.random.key(0))
    jax.block_until_ready(params)
    times["init_s"] = time.perf_counter() - t0
    tx, schedule = build.build_optimizer(c.optim, 1000, 3)
    mesh = mesh_lib.make_mesh()
    rep = mesh_lib.replicated(mesh)
    costs = MatcherCosts(**dict(c.matcher))
    update = train.make_train_step(
        model, tx, schedule, mode="queries", costs=costs,
        weights={k: float(v) for k, v in dict(c.loss_weights).items()},
        state_sharding=rep, metric_sharding=rep)
    state = jax.device_put({"params": params, "opt_state": tx.init(params),
                            "step": jnp.zeros((), jnp.int32)}, rep)
    key = jax.random.key(0)
    t0 = time.perf_counter()
    training_forward = train.make_training_forward(model, costs, mesh_lib.batch_sharding(mesh))
    cost, fwd = training_forward(state["params"], batch, key, state["step"])
    cost = np.asarray(cost)
    times["forward_s"] = time.perf_counter() - t0
    assign = jnp.asarray(train.host_assignment(cost, np.asarray(batch["gt_valid"])))
    t0 = time.perf_counter()
    lowered = update.lower(state, batch, key, assign, fwd)
    times["lower_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = lowered.compile()
    times["compile_s"] = time.perf_counter() - t0
    groups = fusion_groups(compiled.as_text())
    total = sum(times.values())
    print(f"model overrides {overrides or 'none'}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print("  " + " | ".join(f"{k[:-2]} {v:.1f} s" for k, v in times.items())
          + f" | first call {total:.1f} s | {sum(groups.values())} fusions")
    for name, n in groups.most_common(args.breakdown):
        print(f"  {n:6d}  {name}")
    emit({"bench": "captioner_compile", "model": overrides,
          "xla_flags": os.environ.get("XLA_FLAGS", ""),
          **{k: round(v, 2) for k, v in times.items()}, "first_call_s": round(total, 2),
          "fusions": sum(groups.values()), "groups": dict(groups.most_common(args.breakdown))})


if __name__ == "__main__":
    main()
