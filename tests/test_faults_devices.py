"""Fault corpus (issue 13, point 11): the device count changes SA-TSP results only within the
tolerance the README states ("Several hosts, GPUs and Cloud TPU", "Device counts").

1 process with 1 device and 1 process with 2 devices sum each step's gradients in another
order (one batch sum vs two partial sums and an all-reduce): the first step's loss agrees
to float rounding (the same bits under XLA's default build, 1e-7 apart under the tests'
unoptimised kernels, see conftest.py), later ones drift apart by float rounding that
training amplifies. Measured on this config (tiny synthetic encoder, 8 videos, batch 4):
relative loss difference 1e-7 at step 2, 1e-6 at step 3, 5e-5 at step 4 (9e-4 at step 8).
(N processes x 1 device equals 1 process x N devices bitwise: tests/test_multihost.py.)
"""
import json
import os

import numpy as np
import pytest
from multiprocess import launch
from sa_tsp_fixtures import write_tiny_shards

pytestmark = pytest.mark.slow

# The README's stated tolerance for 4 steps of this config (relative, on the training loss).
RTOL_4_STEPS = 1e-3


def _losses(workdir) -> list[float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r["loss"] for r in rows if r.get("split") == "train" and "loss" in r]


def test_one_device_vs_two_devices_within_the_stated_tolerance(tmp_path):
    write_tiny_shards(str(tmp_path / "shards"), num_videos=8, num_shards=2, prefix="train")
    write_tiny_shards(str(tmp_path / "shards"), num_videos=4, num_shards=1, prefix="val", seed=1)
    # beta=1 and the former shapes: the loss the stated tolerance was measured on.
    overrides = {"total_steps": 4, "log_every_steps": 1, "checkpoint_every_steps": 4,
                 "eval_every_steps": 4, "max_eval_batches": 1, "loss.beta": 1.0}
    config = f"configs/sa_tsp/synthetic.py:root={tmp_path},runlocal,fps=15,res=64,lr=0.001"
    launch(config, str(tmp_path / "d1"), overrides, processes=1, devices=1)
    launch(config, str(tmp_path / "d2"), overrides, processes=1, devices=2)
    one, two = _losses(tmp_path / "d1"), _losses(tmp_path / "d2")
    assert len(one) == len(two) == 4
    # Same parameters, same examples: the forward pass agrees to float rounding (the mean
    # over two devices sums in another order).
    np.testing.assert_allclose(one[0], two[0], rtol=1e-6, atol=0)
    np.testing.assert_allclose(one, two, rtol=RTOL_4_STEPS, atol=0)
