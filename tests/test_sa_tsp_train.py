"""SA-TSP trainer: losses go down, 1 vs 8 devices, stop/preemption and exact resume,
optimizer schedule."""
import json
import os
import signal

import compile_cache_watch
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.sa_tsp import synthetic
from data_prep.infra import mesh as mesh_lib
from data_prep.infra import resume
from data_prep.infra.metrics import read_metrics
from data_prep.infra.preemption import PreemptionGuard
from sa_tsp_jax import export, optim, train
from sa_tsp_jax.gvf import write_gvf
from tests.sa_tsp_fixtures import write_tiny_shards

STEPS = 16


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sa_tsp_data")
    _, ids = write_tiny_shards(str(root / "shards"), num_videos=6, num_shards=2, prefix="train")
    write_tiny_shards(str(root / "shards"), num_videos=3, num_shards=1, prefix="val", seed=1)
    rng = np.random.default_rng(0)
    write_gvf(str(root / "gvf.h5"), {v: rng.normal(size=8).astype(np.float32)
                                     for v in ids + [f"v_tiny{i:03d}" for i in range(3)]})
    return root


def tiny_config(root, **overrides):
    c = synthetic.get_config(f"root={root},steps={STEPS},fps=15")
    c.gvf_path = str(root / "gvf.h5")
    c.model.use_gvf = True
    c.model.num_actions = 3
    c.data.batch_size = 8
    c.input.update(dict(clip_length=4, resize=(24, 24), crop=16,
                        clips_per_segment=2, num_concepts=6, read_threads=1,
                        prefetch_buffer=1))
    c.optim.update(dict(backbone_lr=2e-3, head_lr=1e-2, warmup_epochs=0.0))
    c.log_every_steps = 4
    c.progress_every_s = 1e9
    c.checkpoint_every_steps = 8
    c.eval_every_steps = STEPS
    c.max_eval_batches = 2
    for key, value in overrides.items():
        c[key] = value
    return c


@pytest.fixture(scope="module")
def full_run(data_dir, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("full"))
    with compile_cache_watch.watch() as cache_log:  # writes every program for the reruns
        result = train.run(tiny_config(data_dir), workdir)
    assert not cache_log.host_callbacks
    return workdir, result


def test_tiny_run_lowers_all_three_losses(full_run):
    workdir, result = full_run
    records = [r for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))
               if r["split"] == "train"]
    first = records[0]
    for term in ("loss_action", "loss_temporal", "loss_semantic"):
        last = np.mean([r[term] for r in records[-2:]])  # steps 9-16
        assert last < 0.6 * first[term], (term, first[term], last)
    assert result["step"] == STEPS
    for key in ("val_action_accuracy", "val_region_accuracy", "val_concept_map",
                "val_concept_f1"):
        assert 0.0 <= result[key] <= 1.0
    assert result["val_region_accuracy"] > 0.6
    variables, cfg = export.load_variables(os.path.join(workdir, "params"))
    assert cfg["widths"] == (8, 16, 32, 64)
    assert variables["params"]["region_head"]["kernel"].shape == (64 + 8, 2)
    # The export records the clips the encoder saw, for extraction to read.
    assert export.load_geometry(os.path.join(workdir, "params")) == export.InputGeometry(
        clip_length=4, fps=15.0, resize=(24, 24), crop=16)


def _metric_lines(workdir):
    """metrics.jsonl without the wall-clock fields (time, rates), which differ run to run."""
    return [{k: v for k, v in r.items() if k != "time" and not k.endswith("_per_s")}
            for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))]


def _assert_same_as_uninterrupted(full_workdir, workdir):
    a, _ = export.load_variables(os.path.join(full_workdir, "params"))
    b, _ = export.load_variables(os.path.join(workdir, "params"))
    jax.tree.map(np.testing.assert_array_equal, a, b)  # params and batch statistics
    assert _metric_lines(workdir) == _metric_lines(full_workdir)


def test_stop_and_resume_matches_uninterrupted(full_run, data_dir, tmp_path):
    workdir = str(tmp_path / "resumed")
    # Step 6 is inside the log window 5-8: its open steps travel with the checkpoint.
    with compile_cache_watch.watch() as cache_log:
        first = train.run(tiny_config(data_dir, max_steps_this_run=6), workdir)
    # This run rebuilt every jitted function of the uninterrupted run: all its programs come
    # from the persistent cache (a miss: a cache key that changes between runs, or a host
    # callback, which is never written).
    cache_log.assert_rerun_from_cache((0, 0, 0), {"jit_init", "jit_step"})
    assert first["stopped_early"] and first["step"] == 6
    assert not os.path.exists(os.path.join(workdir, "params"))  # no export of a partial run
    # Lines a killed run wrote past its last checkpoint are dropped on resume.
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"step": 8, "split": "train", "time": 0.0, "loss": 99.0}) + "\n")
    second = train.run(tiny_config(data_dir), workdir)
    assert second["step"] == STEPS and "stopped_early" not in second
    _assert_same_as_uninterrupted(full_run[0], workdir)


def test_sigterm_checkpoints_that_step_and_resumes_exactly(full_run, data_dir, tmp_path,
                                                           monkeypatch):
    stop_step = 11  # neither a log (4) nor a checkpoint (8) step

    class SigtermAt(PreemptionGuard):
        def should_stop(self, step):
            if step == stop_step:  # what a preempted VM's scheduler does
                os.kill(os.getpid(), signal.SIGTERM)
            return super().should_stop(step)

    workdir = str(tmp_path / "preempted")
    monkeypatch.setattr(resume, "PreemptionGuard", SigtermAt)  # what enter_resources builds
    handler = signal.getsignal(signal.SIGTERM)
    first = train.run(tiny_config(data_dir), workdir)
    monkeypatch.undo()
    assert first["preempted"] and first["step"] == stop_step
    assert signal.getsignal(signal.SIGTERM) is handler  # the guard restored it
    steps = sorted(int(p) for p in os.listdir(os.path.join(workdir, "checkpoints"))
                   if p.isdigit())
    assert steps == [8, stop_step]
    second = train.run(tiny_config(data_dir), workdir)
    assert second["step"] == STEPS and "preempted" not in second
    _assert_same_as_uninterrupted(full_run[0], workdir)


def test_a_kill_inside_the_evaluation_is_redone_on_resume(full_run, data_dir, tmp_path,
                                                         monkeypatch):
    """kill -9 inside the step-16 evaluation (after that step's metrics line, before its
    checkpoint): the rerun resumes from step 8, redoes steps 9-16 and the evaluation, and
    ends with the uninterrupted run's parameters and metrics lines (validation included)."""

    class Killed(Exception):
        pass

    def killed_evaluate(*args, **kwargs):
        raise Killed

    workdir = str(tmp_path / "killed_in_eval")
    monkeypatch.setattr(train, "evaluate", killed_evaluate)
    with pytest.raises(Killed):
        train.run(tiny_config(data_dir), workdir)
    monkeypatch.undo()
    steps = sorted(int(p) for p in os.listdir(os.path.join(workdir, "checkpoints"))
                   if p.isdigit())
    assert steps == [8]
    assert not any(r["split"] == "val" for r in read_metrics(
        os.path.join(workdir, "metrics.jsonl")))
    result = train.run(tiny_config(data_dir), workdir)
    assert result["step"] == STEPS and "val_action_accuracy" in result
    _assert_same_as_uninterrupted(full_run[0], workdir)


def test_same_step_on_one_and_eight_devices(data_dir):
    # Built exactly as train.run builds them (same jit settings, so the 8-device programs come
    # from the compilation cache of the full run); only the 1-device step compiles anew.
    cfg = tiny_config(data_dir)
    model = train.build_model(cfg)
    tx = optim.make_optimizer(optim.OptimConfig.from_mapping(cfg.optim), steps_per_epoch=3)
    init = train.init_state_fn(model, tx, (4, 16, 16, 3), 8)
    mesh8 = mesh_lib.make_mesh((("data", -1),))
    state8, _, _ = train.init_state(init, jax.random.key(0, impl="rbg"), mesh8)
    host_state = jax.device_get(state8)
    rng = np.random.default_rng(0)
    batch = {"clips": rng.normal(size=(8, 4, 16, 16, 3)).astype(np.float32),
             "action_label": np.array([0, 1, 2, -1, 0, -1, 1, 2], np.int32),
             "region_label": np.array([0, 0, 0, 1, 0, 1, 0, 0], np.int32),
             "concepts": rng.integers(0, 2, size=(8, 6)).astype(np.float32),
             "valid": np.ones(8, bool),
             "gvf": rng.normal(size=(8, 8)).astype(np.float32)}
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = mesh_lib.make_mesh((("data", -1),), devices=devices)
        shardings = mesh_lib.param_shardings(host_state, mesh)
        step, _ = train.jit_steps(model, tx, train.loss_config(cfg), mesh, shardings)
        state, metrics = step(jax.device_put(host_state, shardings),
                              mesh_lib.global_batch(batch, mesh_lib.batch_sharding(mesh)))
        results.append((jax.device_get(metrics), jax.device_get(state["batch_stats"])))
    (m1, s1), (m8, s8) = results
    assert len(jax.devices()) == 8
    for key in ("loss", "loss_action", "loss_temporal", "loss_semantic", "grad_norm"):
        np.testing.assert_allclose(m1[key], m8[key], rtol=1e-5)
    # Global batch statistics: BN running stats agree too.
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6), s1, s8)


def test_tsp_schedule_and_frozen_stem():
    cfg = optim.OptimConfig()  # TSP defaults
    spe = 10
    # Warmup from 1e-5 over 2 epochs, x0.01 at epochs 4 and 6 (iterations 40, 60).
    assert optim.lr_factor_reference(0, spe, cfg) == pytest.approx(1e-5)
    assert optim.lr_factor_reference(10, spe, cfg) == pytest.approx(1e-5 * 0.5 + 0.5)
    assert optim.lr_factor_reference(20, spe, cfg) == 1.0
    assert optim.lr_factor_reference(39, spe, cfg) == 1.0
    assert optim.lr_factor_reference(40, spe, cfg) == pytest.approx(0.01)
    assert optim.lr_factor_reference(60, spe, cfg) == pytest.approx(1e-4)
    factor = optim.lr_factor_fn(spe, cfg)
    for s in (0, 7, 10, 25, 40, 59, 60, 79):
        assert float(factor(s)) == pytest.approx(optim.lr_factor_reference(s, spe, cfg),
                                                 rel=1e-5)
    # One SGD step by hand: p - lr * (g + wd * p) for backbone/head, stem untouched.
    params = {"backbone": {"stem_spatial": {"kernel": jnp.ones(3)},
                           "layer1_0": {"kernel": jnp.ones(3)}},
              "action_head": {"kernel": jnp.ones(3)}}
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    cfg = optim.OptimConfig(warmup_epochs=0.0, backbone_lr=0.1, head_lr=1.0)
    tx = optim.make_optimizer(cfg, spe)
    state = tx.init(params)
    upd, state = tx.update(grads, state, params)
    np.testing.assert_allclose(upd["backbone"]["stem_spatial"]["kernel"], 0.0)
    np.testing.assert_allclose(upd["backbone"]["layer1_0"]["kernel"], -0.1 * (0.5 + 0.005))
    np.testing.assert_allclose(upd["action_head"]["kernel"], -1.0 * (0.5 + 0.005), rtol=1e-6)
    # Second step: momentum buffer 0.9 * b + g (same grads and params).
    upd, _ = tx.update(grads, state, params)
    np.testing.assert_allclose(upd["action_head"]["kernel"], -(1.9 * 0.505), rtol=1e-6)


def test_metrics_file_is_json_lines(full_run):
    workdir, _ = full_run
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        splits = {json.loads(line)["split"] for line in f}
    assert splits == {"train", "val"}
