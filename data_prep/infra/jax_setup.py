"""Process-level JAX settings shared by every entry point."""
from __future__ import annotations

import os

import jax

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
