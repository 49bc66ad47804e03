"""What JAX's persistent compilation cache decided while a block ran, by program name.

The trainers' resume tests run the same stage several times in one process; every run builds
its jitted functions anew, so each program is lowered again and looked up in the persistent
cache. A program whose cache key changes from one run to the next (a constant that depends on
the run, an unordered iteration in its construction) or that carries a host callback (never
written to the cache: XLA would recompile it in every run, as the learned-proposal training
step once did) shows up here as a miss. `watch()` writes every compiled program to the cache
while it is open (minimum compile time 0, so that a program compiled in 0.4 s in one run and
0.6 s in the next cannot make the check flaky).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import re

import jax

_LOGGER = "jax._src.compiler"  # jax==0.10.2's compile_or_get_cached logs each decision here
_HIT = re.compile(r"Persistent compilation cache hit for '([^']+)'")
_MISS = re.compile(r"PERSISTENT COMPILATION CACHE MISS for '([^']+)'")
_CALLBACK = re.compile(r"Not writing persistent cache entry for '([^']+)' because it uses host")


@dataclasses.dataclass
class CacheLog:
    hits: list[str] = dataclasses.field(default_factory=list)
    misses: list[str] = dataclasses.field(default_factory=list)
    host_callbacks: list[str] = dataclasses.field(default_factory=list)

    def since(self, mark: tuple[int, int, int]) -> CacheLog:
        """The decisions recorded after `mark` (a `mark()` taken earlier)."""
        return CacheLog(self.hits[mark[0]:], self.misses[mark[1]:],
                        self.host_callbacks[mark[2]:])

    def mark(self) -> tuple[int, int, int]:
        return len(self.hits), len(self.misses), len(self.host_callbacks)

    def assert_rerun_from_cache(self, mark: tuple[int, int, int], programs: set[str]) -> None:
        """Every program compiled after `mark` came from the cache, `programs` among them,
        and no program of the whole log had a host callback."""
        rerun = self.since(mark)
        assert not self.host_callbacks, self
        assert not rerun.misses, rerun
        assert programs <= set(rerun.hits), rerun


class _Recorder(logging.Handler):
    def __init__(self, log: CacheLog):
        super().__init__(logging.DEBUG)
        self.log = log

    def emit(self, record):
        message = record.getMessage()
        for pattern, names in ((_HIT, self.log.hits), (_MISS, self.log.misses),
                               (_CALLBACK, self.log.host_callbacks)):
            match = pattern.match(message)
            if match:
                names.append(match.group(1))


@contextlib.contextmanager
def watch():
    """Yields a `CacheLog` filled while the block runs (this process's compilations)."""
    log = CacheLog()
    logger = logging.getLogger(_LOGGER)
    handler = _Recorder(log)
    level, min_time = logger.level, jax.config.jax_persistent_cache_min_compile_time_secs
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    try:
        yield log
    finally:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_time)
        logger.setLevel(level)
        logger.removeHandler(handler)
