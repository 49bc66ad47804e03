"""First checkpoint save of the synthetic SA-TSP train state on N devices: replica 0 writes
every array (what the project's `Checkpointer` does on CPU) vs. Orbax's replica-parallel
saving (its default, which the project keeps on accelerators).

    python benchmarks/checkpoint_save.py [--devices 8] [--repeats 3] [--json-out FILE]
        [--config configs/sa_tsp/synthetic.py] [--platform cpu|tpu|cuda]

`--platform` other than cpu uses that JAX backend's devices as they are (`--devices` is then
ignored): the script to measure whether the replica slices cost as much on a TPU VM.

The state has the shapes of `sa_tsp_jax.train`'s {params, batch_stats, opt_state, step} for
the config (from `jax.eval_shape`, filled with seeded random values, replicated over the
devices as the trainer places them). Each measurement is a fresh process (the cost is a
per-process one: Orbax's replica-parallel path slices every replicated array per device with
an eager `lax.slice`, one XLA compilation each); the two layouts alternate. Prints the
medians, the compilations counted during the save, and one `BENCH_JSON` line (a row of the
README's performance table). Asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

_CHILD = "--child"


def _save_once(layout: str, config_path: str, workdir: str) -> dict:
    """In a fresh process: build the state, time `Checkpointer.save` of it (seconds)."""
    import time

    import jax
    import numpy as np
    from jax import monitoring
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from data_prep.infra import checkpointing, mesh
    from data_prep.orchestration.config_files import load_config_file
    from sa_tsp_jax import optim
    from sa_tsp_jax.train import build_model, init_state_fn

    config = load_config_file(config_path)
    model = build_model(config)
    tx = optim.make_optimizer(optim.OptimConfig.from_mapping(config.optim), 10)
    clip = (int(config.input.clip_length), int(config.input.crop), int(config.input.crop), 3)
    abstract = jax.eval_shape(init_state_fn(model, tx, clip, 0), jax.random.key(0))
    replicated = NamedSharding(mesh.make_mesh((("data", -1),)), P())
    rng = np.random.default_rng(0)
    state = jax.tree.map(lambda a: jax.device_put(
        rng.normal(size=a.shape).astype(a.dtype), replicated), abstract)
    state = jax.block_until_ready(state)
    leaves = jax.tree.leaves(state)

    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "ckpt"))
    # Both layouts explicitly (the Checkpointer's own choice depends on the backend).
    checkpointing.register_array_handler(replica_parallel=layout == "replica_parallel")
    compiles = []
    monitoring.register_event_duration_secs_listener(
        lambda event, duration, **_: compiles.append(duration)
        if event == "/jax/core/compile/backend_compile_duration" else None)
    t = time.perf_counter()
    ckpt.save(1, state)
    ckpt.wait()
    seconds = time.perf_counter() - t
    ckpt.close()
    return {"seconds": seconds, "compilations": len(compiles), "arrays": len(leaves),
            "mib": sum(x.nbytes for x in leaves) / 2**20, "devices": len(jax.devices()),
            "backend": jax.default_backend()}


def _run_child(layout: str, config: str, devices: int, platform: str) -> dict:
    env = dict(os.environ, JAX_PLATFORMS=platform)
    if platform == "cpu":
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    with tempfile.TemporaryDirectory() as workdir:
        out = subprocess.run([sys.executable, __file__, _CHILD, layout, config, workdir],
                             env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == _CHILD:
        print(json.dumps(_save_once(*sys.argv[2:5])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", default="configs/sa_tsp/synthetic.py")
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--platform", default="cpu", help="JAX backend (cpu, tpu, cuda)")
    args = parser.parse_args()
    from benchmarks.harness import emit, machine_info

    runs: dict[str, list[dict]] = {"replica0": [], "replica_parallel": []}
    for _ in range(args.repeats):
        for layout in runs:
            runs[layout].append(_run_child(layout, args.config, args.devices, args.platform))
            r = runs[layout][-1]
            print(f"{layout:16s} first save {r['seconds']:6.2f} s, {r['compilations']} "
                  f"compilations ({r['arrays']} arrays, {r['mib']:.1f} MiB)", flush=True)
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    devices, backend = runs["replica0"][0]["devices"], runs["replica0"][0]["backend"]
    print(f"median first save on {devices} {backend} devices: replica 0 writes "
          f"{med['replica0']:.2f} s, Orbax replica-parallel {med['replica_parallel']:.2f} s "
          f"({med['replica_parallel'] / med['replica0']:.1f}x)")
    emit({"bench": "checkpoint_first_save",
          "variant": f"{devices} {backend.upper() if backend != 'cpu' else 'CPU'} devices",
          "original": "Orbax replica-parallel", "config": args.config,
          "devices": devices, "repeats": args.repeats,
          # The project's Checkpointer: replica 0 on CPU, Orbax's default elsewhere.
          "project_s": med["replica0" if backend == "cpu" else "replica_parallel"],
          "original_s": med["replica_parallel"], "replica0_s": med["replica0"],
          "compilations": {k: [r["compilations"] for r in v] for k, v in runs.items()},
          "arrays": runs["replica0"][0]["arrays"], "mib": runs["replica0"][0]["mib"],
          "machine": machine_info()},
         args.json_out)


if __name__ == "__main__":
    main()
