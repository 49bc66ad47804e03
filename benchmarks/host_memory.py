"""Page faults and step time of the captioner train step with and without the host memory
setting (`data_prep/infra/host_memory.keep_freed_memory`), each in fresh processes.

    python benchmarks/host_memory.py [--batches 1,8] [--steps 8] [--rounds 2] [--cores 1]
        [--json-out benchmarks/results/host_memory.jsonl]

One child process per (round, batch, setting), the settings alternating ("kept", then
"system" = `DVC_HOST_MALLOC=system`, glibc's and JAX's defaults). A child pins itself to
`--cores` CPUs (0 = all it may use) before JAX starts, builds `captioner_train`'s programs at
ActivityNet size (`benchmarks/captioner_vs_pdvc.project_train`: the forward with its matching
costs, the host Hungarian solver, the update), runs two untimed steps, then `--steps` timed
steps, and reports per step: minor page faults and system CPU ms (`getrusage`), and the median
/ min wall ms.
Prints one line per child and one BENCH_JSON line per batch (medians over the rounds; for
the perf table, "project" is the step with the setting and "original" without it).
The compilation cache is on, so only the first child per batch compiles.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def child(batch_size: int, steps: int, cores: int) -> dict:
    """Runs in the fresh process: the measurement of one (batch, setting)."""
    import resource
    import time

    from benchmarks.harness import pin_to_cores
    from data_prep.infra.host_memory import keep_freed_memory, setting

    keep_freed_memory()
    if cores:
        pin_to_cores(cores)
    import jax
    import numpy as np

    from benchmarks import captioner_vs_pdvc as side
    from data_prep.infra.jax_setup import enable_compilation_cache

    enable_compilation_cache()
    model, params = side.flax_model()
    batch = jax.tree.map(jax.numpy.asarray,
                         side.video_batch(np.random.default_rng(0), batch_size, 13))
    step = side.project_train(model, params, batch_size)
    for _ in range(2):
        step(batch)
    before = resource.getrusage(resource.RUSAGE_SELF)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - t)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"setting": setting(), "batch": batch_size,
            "faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
            "sys_ms_per_step": 1000 * (after.ru_stime - before.ru_stime) / steps,
            "median_ms": 1000 * statistics.median(times), "min_ms": 1000 * min(times)}


def _run_child(batch_size: int, steps: int, cores: int, malloc: str) -> dict:
    env = dict(os.environ, DVC_HOST_MALLOC=malloc, PYTHONPATH=REPO)
    env.setdefault("JAX_PLATFORMS", "cpu")
    out = subprocess.run([sys.executable, __file__, "--child", str(batch_size), str(steps),
                          str(cores)], env=env, cwd=REPO, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(child(*(int(x) for x in sys.argv[2:5]))))
        return
    from benchmarks.harness import emit

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="1,8")
    p.add_argument("--steps", type=int, default=8, help="timed steps per child")
    p.add_argument("--rounds", type=int, default=2, help="children per (batch, setting)")
    p.add_argument("--cores", type=int, default=1, help="CPUs per child (0 = all)")
    p.add_argument("--json-out", default=None)
    args = p.parse_args()
    for b in (int(x) for x in args.batches.split(",")):
        runs = {"kept": [], "system": []}
        for _ in range(args.rounds):
            for malloc in runs:
                r = _run_child(b, args.steps, args.cores, malloc)
                runs[malloc].append(r)
                print(f"batch {b} {malloc:6s}: {r['faults_per_step']:9.0f} page faults/step, "
                      f"system {r['sys_ms_per_step']:6.1f} ms/step, step median "
                      f"{r['median_ms']:7.1f} ms, min {r['min_ms']:7.1f} ms", flush=True)

        medians = {f"{m}_{k}": round(statistics.median(r[k] for r in rs), 1)
                   for m, rs in runs.items()
                   for k in ("faults_per_step", "sys_ms_per_step", "median_ms", "min_ms")}
        # The perf table's fields: "original" = the same step with the defaults.
        project_s, original_s = medians["kept_median_ms"] / 1e3, medians["system_median_ms"] / 1e3
        emit({"bench": "host_memory_captioner_train", "batch": b, "cores": args.cores,
              "rounds": args.rounds, "steps": args.steps, **medians,
              "project_s": round(project_s, 4), "original_s": round(original_s, 4),
              "original": "DVC_HOST_MALLOC=system", "ratio": round(original_s / project_s, 2),
              "machine": {"cpu_count": os.cpu_count(),
                          "cpus_allowed": args.cores or len(os.sched_getaffinity(0))}},
             args.json_out)


if __name__ == "__main__":
    main()
