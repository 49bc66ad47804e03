"""Start-up cost of a process that runs a stage: seconds to import `ml_dtypes`, JAX (with its
CPU backend started) and the stage modules, each in a fresh interpreter, median of N runs;
under further interpreters side by side when given (e.g. a venv with another ml_dtypes).

    python benchmarks/import_time.py
    python benchmarks/import_time.py --python /tmp/md070/bin/python --modules ml_dtypes,jax

Every process the project starts pays this once: each `launch.py` run, every process of a
multi-process run, each subprocess of the test suite. The timer starts after `import numpy`
(which every module here imports first), so `ml_dtypes` is its own cost: registering its
dtypes and their NumPy ufunc loops (requirements.txt pins the version for this reason).
The interpreters run interleaved (a, b, a, b, ...), so a load change on a shared machine
hits both alike. Prints a table and one BENCH_JSON line per interpreter; the figures vary
with the CPU and the file cache (the first run after an install reads the files from disk).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this script's checkout
sys.path.insert(0, REPO)
DEFAULT_MODULES = ("ml_dtypes", "jax", "data_prep.orchestration.pipeline", "sa_tsp_jax.train",
                   "captioner_jax.train")
VERSIONED = ("numpy", "ml_dtypes", "jax")

# Run with `python -c CHILD MODULE`; prints one JSON object.
CHILD = r"""
import importlib, importlib.metadata, json, sys, time
import numpy
module = sys.argv[1]
t0 = time.perf_counter()
importlib.import_module(module)
if module == "jax":
    import jax
    jax.devices()  # the backend starts on first use: part of every stage's start
seconds = time.perf_counter() - t0
versions = {}
for name in VERSIONS:
    try:
        versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        versions[name] = None
print(json.dumps({"seconds": seconds, "versions": versions}))
""".replace("VERSIONS", repr(VERSIONED))


def time_import(python: str, module: str) -> dict:
    """{"seconds": float, "versions": {package: version}} of one fresh `python` importing
    `module` (run in the repository, JAX on the CPU unless JAX_PLATFORMS says otherwise)."""
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    proc = subprocess.run([python, "-c", CHILD, module], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{python}: importing {module} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(pythons: list[str], modules: list[str], repeats: int) -> list[dict]:
    """One record per interpreter: median seconds per module over `repeats` fresh processes,
    the interpreters interleaved within each repeat."""
    runs = {(py, m): [] for py in pythons for m in modules}
    versions = {}
    for _ in range(repeats):
        for m in modules:
            for py in pythons:
                out = time_import(py, m)
                runs[py, m].append(out["seconds"])
                versions[py] = out["versions"]
    return [{"python": py, "versions": versions[py], "repeats": repeats,
             "seconds": {m: round(statistics.median(runs[py, m]), 4) for m in modules}}
            for py in pythons]


def main(argv=None) -> None:
    from benchmarks.harness import cpu_identity, emit, vector_isa

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python", action="append", default=[],
                   help="a further interpreter to time beside this one (repeatable)")
    p.add_argument("--modules", default=",".join(DEFAULT_MODULES),
                   help="comma-separated modules to import")
    p.add_argument("--repeats", type=int, default=5, help="fresh processes per module")
    p.add_argument("--json", default=None, help="append the BENCH_JSON lines to this file")
    args = p.parse_args(argv)
    modules = [m for m in args.modules.split(",") if m]
    pythons = [sys.executable] + args.python
    records = measure(pythons, modules, args.repeats)
    try:
        with open("/proc/cpuinfo") as f:
            cpuinfo = f.read()
    except OSError:
        cpuinfo = ""
    first = records[0]["seconds"]
    width = max(len(m) for m in modules)
    for rec in records:
        v = rec["versions"]
        print(f"{rec['python']}: numpy {v['numpy']}, ml_dtypes {v['ml_dtypes']}, jax {v['jax']}"
              f" (median of {rec['repeats']} fresh processes)")
        for m in modules:
            s = rec["seconds"][m]
            rel = "" if rec is records[0] else f"  ({s / first[m]:.2f}x the first)"
            print(f"  {m:<{width}}  {s:7.3f} s{rel}")
        emit({"bench": "import_time", **rec, "cpu_id": cpu_identity(cpuinfo),
              "vector_isa": vector_isa(cpuinfo)}, args.json)


if __name__ == "__main__":
    main()
