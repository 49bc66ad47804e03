"""Shared helpers of the side-by-side benchmarks: alternating timing, matmul peak, JSON lines.

Every side-by-side script (project vs. the PyTorch original or the official evaluator) uses:

  alternate({"project": f, "original": g}, repeats=5, warmup=1)
      -> {"project": median_s, "original": median_s}; the candidates run interleaved
         (f, g, f, g, ...) so that a load change on a shared machine hits both alike.
  machine_info()  -> measured matmul GFLOP/s of XLA (and of torch when importable), thread
                     counts, CPU model: printed with every result so readers can compare
                     machines by their measured peak, not by seconds.
  pin_to_cores(n) -> the CPUs this process (every thread, present and future) is now
                     restricted to: how a side-by-side run gives both sides the same cores.
  cores_used(fn)  -> process CPU seconds per wall second over a few calls of fn: the cores a
                     timed candidate actually kept busy (printed with the figures).
  emit(record, json_out)  -> prints one line `BENCH_JSON {...}` and appends it to `json_out`
                     (a .jsonl file) when given. `benchmarks/perf_table.py` turns these lines
                     into the README's performance table.

Ratios are original_time / project_time (> 1: the project is faster).
"""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable

from data_prep.infra import host_memory

JSON_PREFIX = "BENCH_JSON "


def alternate(candidates: dict[str, Callable[[], object]], repeats: int = 5,
              warmup: int = 1) -> dict[str, float]:
    """Median wall seconds per call of each candidate, run interleaved.

    Args:
      candidates: name -> zero-argument callable that blocks until its work is done
        (call `jax.block_until_ready` inside for JAX work).
      repeats: timed calls per candidate (the median is reported).
      warmup: untimed calls per candidate first (compilation, caches, jar start).
    Returns:
      name -> median seconds of one call.
    """
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def pin_to_cores(n: int) -> list[int]:
    """Restricts every thread of this process, and the threads it starts later, to the first
    `n` CPUs it may run on; returns them.

    This is the way to run XLA CPU on n cores: it sizes its thread pools (the YNNPACK and
    thunk-executor workers, which run the dots) from the CPUs the process may use when the
    backend starts, and flags such as `--xla_cpu_multi_thread_eigen=false` do not stop those
    threads (a 1024^3 matmul under that flag still kept 1.9 cores busy on a 2-core machine).
    Call it before the first JAX computation, so that the pools are sized for n (pinned
    later, the extra workers share the n CPUs); torch needs `torch.set_num_threads(n)` too.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if not 1 <= n <= len(allowed):
        raise ValueError(f"cannot pin to {n} CPUs: this process may use {len(allowed)} "
                         f"({allowed})")
    chosen = allowed[:n]
    # sched_setaffinity(0) sets the calling thread only; the threads already running
    # (torch's or XLA's pools, if started) are pinned one by one.
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), chosen)
        except ProcessLookupError:  # the thread ended meanwhile
            pass
    return chosen


def cores_used(fn: Callable[[], object], calls: int = 3) -> float:
    """Process CPU seconds (all threads, user + system) per wall second over `calls` calls of
    `fn` (after one untimed call): about 1.0 for a single-threaded candidate, up to the
    number of CPUs for one that keeps them all busy. Spinning idle workers count too."""
    fn()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def _time_best(fn: Callable[[], object], repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def xla_matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """GFLOP/s of an f32 [n, n] @ [n, n] matmul under XLA on the default device (best of N)."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    return 2.0 * n ** 3 / _time_best(lambda: f(a).block_until_ready(), repeats) / 1e9


def torch_matmul_gflops(n: int = 1024, repeats: int = 5) -> float | None:
    """GFLOP/s of the same matmul in torch (CPU), or None when torch is not importable."""
    try:
        import torch
    except ImportError:
        return None
    a = torch.ones((n, n), dtype=torch.float32)
    return 2.0 * n ** 3 / _time_best(lambda: a @ a, repeats) / 1e9


def parse_clip_benchmark_args(parser, argv=None):
    """The convolution benchmarks' shared command line: adds --repeats, --clip BxTxS (clips x
    frames x side) and --threads to `parser` (which may hold others), parses `argv`, pins the
    process when --threads is given (before the first JAX computation: XLA CPU sizes its
    thread pools from the allowed CPUs) and returns (args, (batch, frames, size))."""
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clip", default="2x16x112", help="clip batch BxTxS (default 2x16x112)")
    parser.add_argument("--threads", type=int, default=0,
                        help="pin the process to N CPUs (0: all; see harness.pin_to_cores)")
    args = parser.parse_args(argv)
    try:
        batch, frames, size = (int(v) for v in args.clip.lower().split("x"))
    except ValueError:
        parser.error(f"--clip: expected BxTxS like 2x16x112, got {args.clip!r}")
    if args.threads:
        print("pinned to CPUs", pin_to_cores(args.threads))
    return args, (batch, frames, size)


def machine_info() -> dict:
    """What a reader needs to compare figures across machines (measured, not spec-sheet)."""
    import jax

    info = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        # The CPUs this process may run on (fewer than cpu_count when pinned).
        "cpus_allowed": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "xla_matmul_gflops": round(xla_matmul_gflops(), 1),
        # "kept": glibc keeps freed memory for reuse (data_prep/infra/host_memory.py), for
        # every side of the process (torch's allocations too); "system": glibc's defaults.
        "host_malloc": host_memory.setting(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_matmul_gflops"] = round(torch_matmul_gflops(), 1)
    except ImportError:
        info["torch"] = None
    try:
        with open("/proc/cpuinfo") as f:
            cpuinfo = f.read()
    except OSError:
        cpuinfo = ""
    model_name = _cpuinfo_field(cpuinfo, "model name")
    if model_name:
        info["cpu"] = model_name
    info["vector_isa"] = vector_isa(cpuinfo)
    info["cpu_id"] = cpu_identity(cpuinfo)
    return info


def _cpuinfo_field(cpuinfo: str, name: str) -> str | None:
    """The value of the first `name : value` line of /proc/cpuinfo text (the exact name:
    "model" does not match "model name"); None without one."""
    m = re.search(rf"^{name}\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return m.group(1).strip() if m else None


def cpu_identity(cpuinfo: str) -> str | None:
    """The first processor's vendor, family, model, stepping and cache size from /proc/cpuinfo,
    e.g. "AuthenticAMD family 25 model 1 stepping 1, cache 512 KB" (an AMD Zen 3); None without
    the first three. VMs hide the marketing name ("AMD EPYC" for Zen 2, 3 and 4 alike), and two
    CPUs with the same vector width can still give different float results (the demo's metrics
    differ between two AVX2 VMs, see the README), so a record has to say which CPU it is."""
    first = cpuinfo.split("\n\n", 1)[0]
    vendor, family, model, stepping, cache = (
        _cpuinfo_field(first, name)
        for name in ("vendor_id", "cpu family", "model", "stepping", "cache size"))
    if vendor is None or family is None or model is None:
        return None
    return (f"{vendor} family {family} model {model}"
            + (f" stepping {stepping}" if stepping is not None else "")
            + (f", cache {cache}" if cache is not None else ""))


def vector_isa(cpuinfo: str) -> str | None:
    """The widest x86 vector instruction set in /proc/cpuinfo's first `flags` line:
    "AVX-512" (avx512f), "AVX2" or "AVX"; None when there is no such line (another
    architecture, no /proc). Both XLA CPU and torch's oneDNN pick their kernels by it, so two
    machines with the same model name ("AMD EPYC" in a VM) can differ by 2x in matmul
    GFLOP/s and in the side-by-side ratios."""
    flags = re.search(r"^flags\s*:(.*)$", cpuinfo, re.MULTILINE)
    if not flags:
        return None
    names = set(flags.group(1).split())
    for flag, isa in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX")):
        if flag in names:
            return isa
    return None


def emit(record: dict, json_out: str | None = None) -> None:
    """Prints `BENCH_JSON {...}` and appends the same JSON line to `json_out` if given."""
    line = json.dumps(record, sort_keys=True)
    print(JSON_PREFIX + line, flush=True)
    if json_out:
        folder = os.path.dirname(os.path.abspath(json_out))
        os.makedirs(folder, exist_ok=True)
        with open(json_out, "a") as f:
            f.write(line + "\n")


def ratio(original_s: float | None, project_s: float) -> float | None:
    """original / project seconds (> 1 means the project is faster), None without original."""
    if original_s is None:
        return None
    return original_s / project_s
