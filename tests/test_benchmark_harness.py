"""benchmarks.harness: pinning a side-by-side run to N cores really restricts XLA CPU.

Runs in a subprocess (pinning is process-wide and cannot be undone for the test process).
The subprocess starts a thread before pinning and one after, then runs a jitted matmul:
every thread must report the one CPU, and the process must keep at most one core busy
(XLA CPU's dot workers ignore --xla_cpu_multi_thread_eigen=false, which the benchmark used
before; unpinned they kept 1.9 cores of 2 busy on the same matmul).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks.harness import cores_used

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, os, sys, threading
sys.path.insert(0, REPO)
early = {}
gate = threading.Event()
def report(slot):
    gate.wait()
    early[slot] = sorted(os.sched_getaffinity(0))
before = threading.Thread(target=report, args=("before",))
before.start()  # running before the pin: must be pinned as well
from benchmarks.harness import cores_used, pin_to_cores
chosen = pin_to_cores(1)
after = threading.Thread(target=report, args=("after",))
after.start()
gate.set(); before.join(); after.join()
import jax, jax.numpy as jnp
x = jnp.ones((1024, 1024), jnp.float32)
f = jax.jit(lambda a: a @ a @ a)
used = cores_used(lambda: f(x).block_until_ready(), calls=10)
print(json.dumps({"chosen": chosen, "threads": early, "used": used,
                  "main": sorted(os.sched_getaffinity(0))}))
"""


@pytest.fixture(scope="module")
def pinned_run():
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no sched_setaffinity on this platform")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    out = subprocess.run([sys.executable, "-c", CHILD.replace("REPO", repr(REPO))], env=env,
                         capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_thread_pinned_to_the_first_allowed_cpu(pinned_run):
    first = sorted(os.sched_getaffinity(0))[:1]
    assert pinned_run["chosen"] == first
    assert pinned_run["main"] == first
    assert pinned_run["threads"] == {"before": first, "after": first}


def test_pinned_xla_keeps_at_most_one_core_busy(pinned_run):
    # CPU time cannot exceed wall time on one CPU (small slack for clock granularity).
    assert 0.2 < pinned_run["used"] <= 1.05


def test_cores_used_of_a_sleeping_call_is_near_zero():
    import time

    assert cores_used(lambda: time.sleep(0.05), calls=2) < 0.2


def test_pin_to_more_cpus_than_allowed_is_refused():
    from benchmarks.harness import pin_to_cores

    with pytest.raises(ValueError, match="cannot pin to"):
        pin_to_cores(len(os.sched_getaffinity(0)) + 1)


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
stepping\t: 1
cache size\t: 512 KB
flags\t\t: fpu sse sse2 avx fma avx2 {extra}
processor\t: 1
flags\t\t: fpu sse sse2
"""


@pytest.mark.parametrize("extra, isa", [
    ("avx512f avx512bw avx512_bf16", "AVX-512"), ("bmi2", "AVX2"), ("avx512bw", "AVX2")])
def test_vector_isa_is_the_widest_in_the_first_flags_line(extra, isa):
    from benchmarks.harness import vector_isa

    assert vector_isa(CPUINFO.format(extra=extra)) == isa
    assert vector_isa("flags\t: fpu sse avx\n") == "AVX"
    assert vector_isa("flags\t: fpu sse sse2\n") is None
    assert vector_isa("Features\t: fp asimd sve\n") is None  # no x86 flags line (e.g. Arm)


def test_clip_benchmark_command_line(capsys):
    import argparse

    from benchmarks.harness import parse_clip_benchmark_args

    args, clip = parse_clip_benchmark_args(argparse.ArgumentParser(), ["--clip", "8X8x32"])
    assert clip == (8, 8, 32) and (args.repeats, args.threads) == (5, 0)
    for bad in ("8x8", "2x16xbig"):
        with pytest.raises(SystemExit):
            parse_clip_benchmark_args(argparse.ArgumentParser(), ["--clip", bad])
        assert f"--clip: expected BxTxS like 2x16x112, got '{bad}'" in capsys.readouterr().err


def test_cpu_identity_names_the_first_processor_by_family_model_and_cache():
    from benchmarks.harness import cpu_identity

    # The model line is matched exactly ("model", not "model name").
    assert (cpu_identity(CPUINFO.format(extra=""))
            == "AuthenticAMD family 25 model 1 stepping 1, cache 512 KB")
    assert cpu_identity("vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n") == (
        "GenuineIntel family 6 model 85")
    assert cpu_identity("Features\t: fp asimd sve\n") is None
