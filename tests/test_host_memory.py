"""host_memory.keep_freed_memory: XLA's large temporaries reuse freed heap pages.

Run in fresh processes (the setting must precede JAX's backend, and the test session's own
process already has it): a jitted function whose [4096, 4096] float32 temporary (64 MiB)
is allocated and freed inside every call. With glibc's and JAX's defaults every call maps it
anew (~16,000 page faults); with the setting the pages are reused (almost none; without
either of its two parts, M_MMAP_MAX 0 or the synchronous CPU dispatch, 16,000-33,000).
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from data_prep.infra import host_memory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = textwrap.dedent("""
    import json, resource, sys
    from data_prep.infra.host_memory import keep_freed_memory, setting
    applied = keep_freed_memory()
    import jax, jax.numpy as jnp
    # exp(a @ b) is a [4096, 4096] temporary (64 MiB, between two dots), allocated and freed
    # inside every execution. (A large output is freed when JAX releases it, which may come
    # after the next call's allocation: its page faults then depend on timing.)
    temporary = jax.jit(lambda a, b: jnp.max(jnp.exp(a @ b) @ b.T, axis=0))
    a, b = jnp.ones((4096, 8), jnp.float32), jnp.ones((8, 4096), jnp.float32)
    for _ in range(3):
        temporary(a, b).block_until_ready()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        temporary(a, b).block_until_ready()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
    print(json.dumps({"applied": applied, "setting": setting(), "faults_per_call": faults,
                      "async_dispatch": jax.config.read("jax_cpu_enable_async_dispatch")}))
""")


def _run(malloc: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "GLIBC_TUNABLES")}
    env.update(JAX_PLATFORMS="cpu", DVC_HOST_MALLOC=malloc, PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(host_memory._libc() is None, reason="C library without mallopt (not glibc)")
def test_freed_temporaries_are_reused_without_page_faults():
    kept, system = _run("kept"), _run("system")
    assert kept["applied"] and kept["setting"] == "kept" and not kept["async_dispatch"]
    assert not system["applied"] and system["setting"] == "system" and system["async_dispatch"]
    # 64 MiB / 4 KiB = 16,384 pages per call under glibc's defaults.
    assert system["faults_per_call"] > 8000, system
    assert kept["faults_per_call"] < 500, kept


def test_opt_out_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setattr(host_memory, "_applied", None)
    monkeypatch.setenv(host_memory.OPT_OUT_VARIABLE, "system")
    assert host_memory.keep_freed_memory() is False
    assert host_memory.setting() == "system"


def test_importing_every_stage_leaves_the_backend_unstarted():
    """`setup_jax` applies the setting when a stage starts: it only works if no stage module
    starts JAX's backend at import (e.g. a module-level jnp array would)."""
    code = textwrap.dedent("""
        import launch
        from data_prep.orchestration import registry
        for name in registry.STAGES:
            registry.resolve_stage(name)
        for name in registry.REPORTS:
            registry.resolve_report(name)
        from data_prep.infra.host_memory import _backend_started
        print("started" if _backend_started() else "not started")
    """)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "not started"
