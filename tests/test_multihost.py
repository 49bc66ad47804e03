"""Multi-host is the normal case: 2 local processes (jax.distributed, coordinator on
127.0.0.1, 1 CPU device each) give the same results as 1 process with 2 devices.

Each run goes through `launch.py` exactly as on a pod (`--config.run.distributed=True` plus the
coordinator settings a non-TPU cluster needs). Compared: the final parameters, the metrics
log (minus wall-clock fields) and the submission JSON.
"""
import json
import os

import numpy as np
import orbax.checkpoint as ocp
import pytest
from multiprocess import launch, launch_and_preempt
from sa_tsp_fixtures import write_tiny_shards

pytestmark = pytest.mark.slow

# Wall-clock fields differ between any two runs.
CLOCK_KEYS = {"time", "steps_per_s", "clips_per_s", "videos_per_s", "seconds"}


def _metrics(workdir) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in CLOCK_KEYS}
                for line in f if line.strip()]


def _latest_state(workdir) -> dict:
    ckpt_dir = os.path.join(workdir, "checkpoints")
    import jax

    step = max(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())
    path = os.path.join(ckpt_dir, str(step), "state")
    checkpointer = ocp.PyTreeCheckpointer()
    meta = checkpointer.metadata(path)
    tree = getattr(meta, "item_metadata", meta)
    tree = getattr(tree, "tree", tree)
    # As numpy: the test process has other devices than the runs that saved it.
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    return checkpointer.restore(path, restore_args=restore_args)


def _assert_trees_equal(a, b, rtol=0.0, atol=0.0):
    import jax

    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def encoder_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mh_encoder")
    write_tiny_shards(str(root / "shards"), num_videos=8, num_shards=2, prefix="train")
    write_tiny_shards(str(root / "shards"), num_videos=4, num_shards=1, prefix="val", seed=1)
    # The former synthetic encoder config (beta=1, 64x64 crop 56, lr 1e-3) these checks were
    # written for.
    overrides = {"total_steps": 4, "log_every_steps": 1, "checkpoint_every_steps": 2,
                 "eval_every_steps": 4, "max_eval_batches": 1, "loss.beta": 1.0}
    config = f"configs/sa_tsp/synthetic.py:root={root},runlocal,fps=15,res=64,lr=0.001"
    one, two = str(root / "one"), str(root / "two")
    launch(config, one, overrides, processes=1, devices=2)
    launch(config, two, overrides, processes=2)
    # A preempted run (SIGTERM after its first step), then the same command again.
    resumed = str(root / "preempted")
    log = launch_and_preempt(config, resumed, overrides, after_line="sa_tsp_train step 1/4")
    preempted_steps = sorted(int(d) for d in os.listdir(os.path.join(resumed, "checkpoints")))
    launch(config, resumed, overrides, processes=1, devices=2)
    return {"one": one, "two": two, "resumed": resumed, "preempted_log": log,
            "preempted_steps": preempted_steps}


def test_encoder_training_two_processes_equals_one(encoder_runs):
    one, two = encoder_runs["one"], encoder_runs["two"]
    # The two devices hold the same examples in both set-ups and a sum of two values is
    # exact in any order, so the results are bitwise equal.
    _assert_trees_equal(_latest_state(one), _latest_state(two))
    assert _metrics(one) == _metrics(two)
    assert os.path.isdir(os.path.join(two, "params"))


def test_sigterm_checkpoints_and_the_rerun_continues_exactly(encoder_runs):
    """What a preempted Cloud TPU VM gets: SIGTERM. The run saves the step it reached and
    exits 0; the same command resumes and ends bitwise equal to an uninterrupted run."""
    assert "preempt" in encoder_runs["preempted_log"].lower()
    assert max(encoder_runs["preempted_steps"]) < 4  # stopped before the end
    _assert_trees_equal(_latest_state(encoder_runs["one"]),
                        _latest_state(encoder_runs["resumed"]))
    assert _metrics(encoder_runs["one"]) == _metrics(encoder_runs["resumed"])


@pytest.fixture(scope="module")
def captioner_runs(tmp_path_factory, synthetic_dataset):
    root = tmp_path_factory.mktemp("mh_captioner")
    features = root / "features"
    features.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "val_1"):
        with open(synthetic_dataset / "captions" / f"{split}.json") as f:
            for vid in json.load(f):
                np.save(features / f"{vid}.npy", rng.normal(size=(20, 16)).astype(np.float32))
    config = (f"configs/captioner/synthetic.py:root={synthetic_dataset},features={features},"
              "dim=16,runlocal")
    overrides = {"total_steps": 4, "data.batch_size": 2, "eval.batch_size": 2,
                 "log_every_steps": 1, "checkpoint_every_steps": 2}
    runs, logs = {}, {}
    for name, processes in (("one", 1), ("two", 2)):
        workdir = str(root / name)
        logs[name] = launch(config, workdir, overrides, processes=processes, devices=2)
        logs[name] += launch(config.replace(",runlocal", ",runlocal,predict"), workdir,
                             {"eval.batch_size": 2}, processes=processes, devices=2)
        runs[name] = workdir
    return runs["one"], runs["two"], logs


def test_captioner_training_and_prediction_two_processes_equal_one(captioner_runs):
    one, two, _ = captioner_runs
    _assert_trees_equal(_latest_state(one)["params"], _latest_state(two)["params"])
    assert _metrics(one) == _metrics(two)
    with open(os.path.join(one, "predictions", "val_1.json")) as f:
        sub_one = json.load(f)
    with open(os.path.join(two, "predictions", "val_1.json")) as f:
        sub_two = json.load(f)
    assert sub_one["results"] == sub_two["results"]
    assert len(sub_one["results"]) == 4


def test_multi_process_cpu_runs_compile_instead_of_loading_from_the_cache(captioner_runs):
    """The rerun of this 2-process training with a warm cache hung (process 0 loaded its
    train step from the cache, process 1 compiled, and the two ordered their collectives
    differently): every process of a multi-process CPU run now compiles
    (`jax_setup.persistent_cache_is_safe`); a 1-process run keeps the cache."""
    _, _, logs = captioner_runs
    off = "persistent compilation cache off: 2 CPU processes"
    assert len(logs["two"]) == 4 and all(off in log for log in logs["two"])
    assert not any("persistent compilation cache off" in log for log in logs["one"])


def test_processes_started_with_different_configs_fail_fast(tmp_path):
    """A host started with other overrides stops with a message on every process (no hang in
    a collective, no training on mismatched batches)."""
    write_tiny_shards(str(tmp_path / "shards"), num_videos=8, num_shards=2, prefix="train")
    write_tiny_shards(str(tmp_path / "shards"), num_videos=4, num_shards=1, prefix="val", seed=1)
    logs = launch(f"configs/sa_tsp/synthetic.py:root={tmp_path},runlocal,fps=15,res=64,lr=0.001",
                  str(tmp_path / "run"), {"total_steps": 2}, processes=2,
                  per_process=[{}, {"seed": 1}], expect_failure=True, timeout_s=300)
    for log in logs:
        assert "differs between processes" in log
