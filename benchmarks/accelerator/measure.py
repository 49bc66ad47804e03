"""Measuring one program on one device kind: seconds per call, FLOPs from XLA's cost
analysis, achieved TFLOP/s and MFU against the device's data-sheet peak, device memory, the
largest batch that fits, and a leaf-by-leaf comparison of two results."""
from __future__ import annotations

import math
import re
import time

import jax
import jax.numpy as jnp
import numpy as np

# Dense (no sparsity) bf16 peak TFLOP/s per chip, from the vendors' data sheets. Matched on
# `jax.Device.device_kind` in this order (the first pattern that matches wins; e.g. TPU v5e
# reports "TPU v5 lite", v5p "TPU v5"). H100/H200 are the SXM figures.
PEAK_BF16_TFLOPS: tuple[tuple[str, str, float], ...] = (
    (r"H100.*PCIe", "H100 PCIe", 756.0),
    (r"H200", "H200 SXM", 989.0),
    (r"H100", "H100 SXM", 989.0),
    (r"A100", "A100", 312.0),
    (r"\bL4\b", "L4", 121.0),
    (r"TPU v4", "TPU v4", 275.0),
    (r"TPU v5 ?(lite|e)\b", "TPU v5e", 197.0),
    (r"TPU v5p?\b", "TPU v5p", 459.0),
    (r"TPU v6 ?(lite|e)\b", "TPU v6e", 918.0),
)


def device_peak(kind: str) -> tuple[float | None, str]:
    """(dense bf16 peak FLOP/s of one chip, its name) from PEAK_BF16_TFLOPS, or (None, "")."""
    for pattern, name, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, kind, re.I):
            return tflops * 1e12, name
    return None, ""


def is_oom(exc: BaseException) -> bool:
    """Whether an exception is XLA's out-of-memory (at compile or run time)."""
    text = f"{type(exc).__name__}: {exc}"
    return any(s in text for s in ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory",
                                   "OOM", "Resource exhausted"))


def _cost_flops(stage) -> float | None:
    try:
        cost = stage.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return None
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    value = (cost or {}).get("flops")
    return float(value) if value is not None and value > 0 else None


def flops_of(compiled, lowered=None, n_dev: int = 1) -> float | None:
    """FLOPs of one call of a program per device: XLA's cost analysis of the compiled
    (partitioned, per-device) program; when that has none (e.g. convolutions lowered to
    library calls the analysis does not count), that of the lowered global program / n_dev.
    None when neither is available."""
    flops = _cost_flops(compiled)
    if flops is None and lowered is not None:
        flops = _cost_flops(lowered)
        flops = flops / n_dev if flops else None
    return flops


def memory_need(compiled) -> int | None:
    """Device bytes one call needs (arguments + outputs + temporaries - donated aliases)."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
               - m.alias_size_in_bytes)


def device_memory_limit(device) -> int | None:
    """Bytes the allocator may use on `device` (None on CPU / unknown)."""
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001
        return None
    return int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None


def seconds_per_call(fn, steps: int) -> float:
    """Seconds per call of `fn()` after one warm-up call (blocks on the results)."""
    jax.block_until_ready(fn())
    t = time.perf_counter()
    out = None
    for _ in range(steps):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - t) / steps


def compare_trees(a, b, rtol: float, atol: float) -> dict:
    """Element-wise |a - b| <= atol + rtol |b| over two pytrees of arrays (same structure).

    Returns {"ok", "max_abs_diff", "worst_leaf", "leaves"}; `worst_leaf` names the leaf with
    the largest violation ratio |a - b| / (atol + rtol |b|).
    """
    flat_a, tree_a = jax.tree_util.tree_flatten_with_path(a)
    flat_b, tree_b = jax.tree_util.tree_flatten_with_path(b)
    if tree_a != tree_b:
        raise ValueError(f"trees differ in structure: {tree_a} vs {tree_b}")
    worst, worst_name, max_abs = 0.0, "", 0.0
    for (path, x), (_, y) in zip(flat_a, flat_b, strict=True):
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        if x.shape != y.shape:
            raise ValueError(f"{jax.tree_util.keystr(path)}: shape {x.shape} vs {y.shape}")
        diff = np.abs(x - y)
        if not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)):
            ratio = math.inf
        else:
            ratio = float(np.max(diff / (atol + rtol * np.abs(y)), initial=0.0))
            max_abs = max(max_abs, float(np.max(diff, initial=0.0)))
        if ratio > worst:
            worst, worst_name = ratio, jax.tree_util.keystr(path)
    return {"ok": worst <= 1.0, "max_abs_diff": max_abs, "worst_leaf": worst_name,
            "worst_ratio": worst, "leaves": len(flat_a)}


class Budget:
    """Wall-clock budget of the whole run: parts after it is spent are skipped (said so)."""

    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def fit_batch(candidates, compile_fn, run_fn, limit, probe: bool,
              fixed_bytes: float | None = None) -> tuple[int, dict, list]:
    """The largest per-device batch of `candidates` whose program fits, and its result.

    compile_fn(b) -> compiled program; run_fn(b, compiled) -> result dict. With a known
    device memory `limit` (bytes) and `probe`, one compile at a probe batch (the smallest
    candidate >= 8, else the smallest) gives the bytes per clip above the batch-free part
    (`fixed_bytes`: parameters, optimizer state, gradients; half the probe's bytes when not
    given, which overestimates a clip) and candidates estimated above 85% of the limit are not
    compiled. Every compiled candidate is checked against the limit by its own memory
    analysis, and an out-of-memory error (compile or run) moves to the next smaller one.
    Returns (batch, result, [notes on the batches passed over]).
    """
    candidates = sorted(set(candidates), reverse=True)
    notes = []
    if limit and probe and len(candidates) > 1:
        b0 = min([b for b in candidates if b >= 8], default=candidates[-1])
        try:
            need0 = memory_need(compile_fn(b0))
        except Exception as e:  # noqa: BLE001
            if not is_oom(e):
                raise
            need0 = None
        if need0:
            fixed = fixed_bytes if fixed_bytes is not None and fixed_bytes < need0 else need0 / 2
            per_clip = (need0 - fixed) / b0
            keep = [b for b in candidates if fixed + per_clip * b <= 0.85 * limit]
            for b in candidates:
                if b not in keep:
                    notes.append(f"batch {b}: estimated {(fixed + per_clip * b) / 2**30:.1f} "
                                 f"GiB > 85% of {limit / 2**30:.1f} GiB, not tried")
            candidates = keep or [candidates[-1]]
    for b in candidates:
        try:
            compiled = compile_fn(b)
            need = memory_need(compiled)
            if limit and need and need > limit:
                notes.append(f"batch {b}: needs {need / 2**30:.1f} GiB > "
                             f"{limit / 2**30:.1f} GiB")
                continue
            return b, run_fn(b, compiled), notes
        except Exception as e:  # noqa: BLE001
            if not is_oom(e):
                raise
            notes.append(f"batch {b}: out of memory ({str(e).splitlines()[0][:120]})")
    raise RuntimeError("no batch fits: " + "; ".join(notes))


def rates(flops_per_device: float | None, seconds: float, n_dev: int, peak: float | None) -> dict:
    """Achieved TFLOP/s (all devices) and MFU against `peak` (FLOP/s of one device)."""
    if not flops_per_device:
        return {"tflops": None, "mfu": None}
    achieved = flops_per_device / seconds  # per device
    return {"tflops": achieved * n_dev / 1e12,
            "mfu": achieved / peak if peak else None}


def measured_matmul_peak(n: int, dtype, steps: int = 5) -> float:
    """FLOP/s of one [n, n] @ [n, n] matmul in `dtype` on the default device (best of `steps`)."""
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    best = math.inf
    for _ in range(steps):
        t = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best
