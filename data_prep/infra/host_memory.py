"""Host memory settings: keep the memory XLA CPU frees for its next step.

XLA CPU allocates each execution's temporary buffers as one block (190 MB for the batch-1
captioner train step at ActivityNet size) with the C library's `malloc` and frees it when the
step ends. With glibc's defaults a block that large is always a fresh `mmap` and is unmapped
when freed (glibc maps every allocation above 32 MiB), so the kernel maps and zero-fills all
of it again at every step: one page fault per 4 KiB, 45,000 per batch-1 step, 80 ms of
system time of a 340 ms step on one core (`python benchmarks/host_memory.py`; `strace` shows
one 190 MB `mmap` per step).

`keep_freed_memory()` makes the block come from the heap and stay there once freed (the next
step reuses the same pages: 0 page faults, the step 253 ms):

  mallopt M_MMAP_MAX 0        no allocation is served by its own `mmap`;
  mallopt M_TRIM_THRESHOLD -1 freed memory at the top of the heap is never returned to the
                              kernel (a positive threshold is an int, at most 2 GiB);
  jax_cpu_enable_async_dispatch False
                              a single-device CPU computation runs on the calling thread
                              (JAX releases the GIL while it runs), so its temporaries come
                              from that thread's arena: for the main thread, the main heap,
                              which grows with `brk`. Dispatched to XLA's own threads (the
                              default), they come from a thread arena, and glibc maps any
                              block over a thread arena's 64 MiB heap on its own, whatever
                              M_MMAP_MAX says. Multi-device computations stay asynchronous.

Not `M_ARENA_MAX 1` (every thread in the main arena), which also removes the faults: the
threads then share one arena lock, and XLA's parallel compilation slowed from 24-29 s to
39 s for the captioner's train step on two cores.

The cost: the process keeps its peak host memory (as jemalloc and tcmalloc do), and a CPU
computation no longer overlaps the Python code that follows its call (on a CPU the
computation already uses every core). Call it before JAX starts its backend (the first
computation): the dispatch setting is read when the CPU client is made. It does nothing on
a C library without `mallopt` (macOS, musl: then only the dispatch is left alone too) or when
the environment has `DVC_HOST_MALLOC=system` (glibc's and JAX's defaults; e.g. to compare).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

# glibc's mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
NEVER_TRIM = -1  # mallopt(3): "Setting M_TRIM_THRESHOLD to -1 disables trimming completely"
OPT_OUT_VARIABLE = "DVC_HOST_MALLOC"

_applied: bool | None = None


def _libc():
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None


def _backend_started() -> bool:
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())


def setting() -> str:
    """'kept' when `keep_freed_memory` is in effect in this process, else 'system'."""
    return "kept" if _applied else "system"


def keep_freed_memory() -> bool:
    """Applies the settings of the module docstring once per process; returns whether they
    are in effect (False: opted out, or a C library without `mallopt`)."""
    global _applied
    if _applied is not None:
        return _applied
    if os.environ.get(OPT_OUT_VARIABLE, "").strip().lower() == "system":
        _applied = False
        return _applied
    libc = _libc()
    if libc is None:
        log.debug("host allocator: no mallopt in this C library; left as it is")
        _applied = False
        return _applied
    if _backend_started():
        log.warning("host allocator: set after JAX started its CPU backend, whose computations "
                    "stay asynchronous (call keep_freed_memory before the first computation)")
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    ok = all(libc.mallopt(param, value) == 1 for param, value in (
        (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, NEVER_TRIM)))
    if ok:
        import jax

        jax.config.update("jax_cpu_enable_async_dispatch", False)
    else:
        log.warning("host allocator: mallopt refused a setting; glibc's and JAX's defaults kept")
    _applied = ok
    return _applied
