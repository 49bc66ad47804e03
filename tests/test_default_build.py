"""The tests' unoptimised kernels (conftest.py: XLA's LLVM level 0) and XLA's default build
compute the same numbers through the project's custom paths, to float rounding: the rest of
the suite checks behaviour on the former, users run the latter."""
import os
import subprocess
import sys

import numpy as np
import pytest
from default_build_probe import probe

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_build_probe.py")


def test_default_build_equals_the_tests_build(tmp_path):
    if "--xla_backend_optimization_level=0" not in os.environ.get("XLA_FLAGS", ""):
        pytest.skip("this session's XLA_FLAGS name their own optimisation level")
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(f for f in env["XLA_FLAGS"].split()
                                if not f.startswith("--xla_backend_optimization_level"))
    out = tmp_path / "default.npz"
    proc = subprocess.run([sys.executable, PROBE, str(out)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    default = dict(np.load(out))
    here = probe()
    assert sorted(default) == sorted(here) and len(here) > 30
    assert float(here["caption_loss"]) > 0 and float(here["encoder_loss"]) != 0
    # atol relative to the largest entry of the whole gradient: some leaves are zero in exact
    # arithmetic (a bias under a softmax) and hold rounding noise of either sign.
    group = {name: name.split("[")[0] for name in here}
    scale = {g: max(float(np.abs(default[n]).max()) for n in here if group[n] == g)
             for g in set(group.values())}
    for name, value in here.items():
        np.testing.assert_allclose(value, default[name], rtol=1e-4,
                                   atol=1e-5 * scale[group[name]], err_msg=name)
