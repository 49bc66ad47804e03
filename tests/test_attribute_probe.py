"""benchmarks/attribute_features.py's linear probes of encoder features (the README's table of
which event attributes each pretraining objective's features carry), run as the README runs
them: `python benchmarks/attribute_features.py --shards DIR --events JSON name=PARAMS`."""
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.attribute_features import PROBED, linear_probe_accuracy
from sa_tsp_jax import export
from sa_tsp_jax.models.r2plus1d import make_backbone
from tests.sa_tsp_fixtures import FPS, TINY_BACKBONE_CFG, write_tiny_shards

REPO = pathlib.Path(__file__).resolve().parents[1]
BACKBONE_CFG = TINY_BACKBONE_CFG
COLOURS = ("red", "green", "blue")  # the tiny shards' class colours, in class order


def test_linear_probe_separates_what_the_features_carry():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    centres = rng.normal(0, 4, (3, 8))
    x = centres[labels] + rng.normal(0, 1, (300, 8))
    assert linear_probe_accuracy(x[:200], labels[:200], x[200:], labels[200:], 3) > 0.95
    # Labels the features do not carry: near chance (1/3).
    noise = rng.normal(0, 1, (300, 8))
    assert linear_probe_accuracy(noise[:200], labels[:200], noise[200:], labels[200:], 3) < 0.5


def test_command_probes_an_exported_encoder(tmp_path):
    shards = tmp_path / "shards"
    _, ids = write_tiny_shards(str(shards), num_videos=6, num_shards=1, prefix="train")
    write_tiny_shards(str(shards), num_videos=6, num_shards=1, prefix="val", seed=1)
    # One event per video over its action segment; its colour is the class the frames show.
    events = {"videos": {vid: {"events": [{
        "start": 0.0, "end": 1.6, "action": i % 3, "count": 1, "size": "small",
        "color": COLOURS[i % 3], "shape": "disc", "speed": "slow"}]} for i, vid in enumerate(ids)}}
    (tmp_path / "events.json").write_text(json.dumps(events))
    model = make_backbone("small", **BACKBONE_CFG)
    variables = jax.tree.map(np.asarray, jax.jit(model.init)(
        jax.random.key(0, impl="rbg"), jnp.zeros((1, 4, 16, 16, 3))))
    params = str(tmp_path / "params")
    export.save_variables(params, {"params": {"backbone": variables["params"]},
                                   "batch_stats": {"backbone": variables["batch_stats"]}},
                          BACKBONE_CFG, export.InputGeometry(4, FPS, (24, 24), 16))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as a user runs it
    proc = subprocess.run(
        [sys.executable, "benchmarks/attribute_features.py", "--shards", str(shards),
         "--events", str(tmp_path / "events.json"), f"random_init={params}"],
        cwd=REPO, env=dict(env, JAX_PLATFORMS="cpu"), capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert set(result) == {"random_init", "chance", "clips"}
    assert set(result["random_init"]) == set(PROBED)
    # 6 videos x 2 clips of their action segment on each side.
    assert result["clips"] == {"train": 12, "held_out": 12}
    # Solid class colours: even a random encoder's features carry them; one-valued
    # attributes are trivially right.
    assert result["random_init"]["color"] == 1.0 and result["random_init"]["action"] == 1.0
    assert result["chance"]["color"] == result["chance"]["action"] == round(4 / 12, 3)
    assert result["random_init"]["shape"] == result["chance"]["shape"] == 1.0
