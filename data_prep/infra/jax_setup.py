"""Process-level JAX settings shared by every entry point: compilation cache and multi-host.

Every launchable config has a `run` block (configs/common.py `run_block`):
  run.distributed          call `jax.distributed.initialize` (one process per host)
  run.coordinator_address  "host:port" of process 0 ("" = auto-detect: Cloud TPU, SLURM, ...)
  run.num_processes        0 = auto-detect
  run.process_id           -1 = auto-detect
  run.local_device_ids     "" = all local devices; "0,1" = only these (GPU clusters with one
                           process per GPU)
`setup_jax(config)` applies it once per process, before any other JAX call.
"""
from __future__ import annotations

import logging
import os

import jax

from data_prep.infra.host_memory import keep_freed_memory

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
log = logging.getLogger(__name__)


def enable_compilation_cache(directory: str | None = None, min_compile_time_s: float = 1.0) -> str:
    """Turns on JAX's persistent compilation cache (default: `$JAX_COMPILATION_CACHE_DIR` or
    `<repo>/.jax_cache`). Compiling R(2+1)D or the captioner takes seconds to minutes on a CPU;
    the cache makes reruns and tests start fast. Returns the directory used."""
    directory = directory or os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.join(
        _REPO_ROOT, ".jax_cache"
    )
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time_s)
    return directory


def initialize_distributed(run_cfg) -> bool:
    """`jax.distributed.initialize` as `run_cfg` asks (see the module docstring).

    Returns whether it initialised. Safe to call twice (the second call is a no-op). On CPU
    the cross-process collectives use gloo (XLA CPU has no other multi-process transport).
    """
    if run_cfg is None or not bool(run_cfg.get("distributed", False)):
        return False
    if jax.distributed.is_initialized():
        return True
    kwargs = {}
    if run_cfg.get("coordinator_address"):
        kwargs["coordinator_address"] = str(run_cfg.coordinator_address)
    if int(run_cfg.get("num_processes", 0) or 0) > 0:
        kwargs["num_processes"] = int(run_cfg.num_processes)
    if int(run_cfg.get("process_id", -1)) >= 0:
        kwargs["process_id"] = int(run_cfg.process_id)
    if run_cfg.get("local_device_ids"):
        kwargs["local_device_ids"] = [int(i) for i in str(run_cfg.local_device_ids).split(",")]
    if os.environ.get("JAX_PLATFORMS", "").startswith("cpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)
    log.info("jax.distributed: process %d of %d, %d local / %d global devices",
             jax.process_index(), jax.process_count(), jax.local_device_count(),
             jax.device_count())
    return True


def persistent_cache_is_safe() -> bool:
    """Whether this process may load executables from the persistent compilation cache.

    Not in a multi-process CPU run. There JAX's cache key differs per process (measured: the two
    processes' keys for one program differ) and only process 0 writes, so on a rerun process 0
    loads its executable from the cache while every other process compiles its own; and a loaded
    executable and a freshly compiled one need not issue their gloo collectives in the same
    order. Measured here (JAX 0.10.2, the captioner's train step with its `lax.cond`s over
    sharded rows, 2 processes): with an empty cache both compile and the run ends in 74 s; rerun
    with the cache, process 0 waits in an all-reduce and process 1 in an all-gather inside a
    conditional, for ever. Process 0 gains nothing from the cache in such a run anyway (every
    step waits for the processes that compile), so it compiles too. Accelerator backends keep
    the cache: the hang was seen on CPU (gloo), and no accelerator was at hand to check them.
    """
    return not (jax.process_count() > 1 and jax.default_backend() == "cpu")


def setup_jax(config) -> None:
    """Host allocator (`host_memory.keep_freed_memory`), compilation cache and (when
    `config.run.distributed`) multi-host initialisation; the cache is then turned off where
    `persistent_cache_is_safe` says so (before anything is compiled)."""
    keep_freed_memory()
    enable_compilation_cache()
    initialize_distributed(config.get("run") if hasattr(config, "get") else None)
    if not persistent_cache_is_safe():
        jax.config.update("jax_enable_compilation_cache", False)
        log.info("persistent compilation cache off: %d CPU processes compile their own "
                 "programs (a cached one can order its collectives differently and hang)",
                 jax.process_count())
