"""The captioner_scst stage on the tiny synthetic data set: runs, logs rewards, evaluates
before and during SCST, splits validation videos reproducibly, and a run killed inside an
evaluation and preempted at the next evaluation step ends exactly as an uninterrupted one
(parameters, best checkpoint, scst_summary.json, metrics lines)."""
import json

import jax
import numpy as np
import pytest
from interruptions import straight_and_interrupted

from benchmarks.attribute_features import write_attribute_features
from captioner_jax.scst import train_scst
from captioner_jax.scst.scst_data import split_validation
from configs.captioner import synthetic_scst
from data_prep.infra.checkpointing import Checkpointer
from data_prep.infra.metrics import read_metrics

STEPS, KILL_IN_EVAL, PREEMPT = 4, 2, 4  # evaluations at 0 (before SCST), 2 and 4
TIME_KEYS = {"time", "steps_per_s", "videos_per_s", "predict_seconds", "seconds"}


def _config(root, dim):
    # The light caption head keeps compile time low; the LSTM-DSA path is covered by
    # tests/test_scst_pdvc.py. CIDEr-D reward only (no Java in the reward).
    c = synthetic_scst.get_config(f"root={root},dim={dim},runlocal,head=light,val_frac=0.5,k=2,"
                                  "reward=cider,baseline=greedy")
    c.scst.eval_before = True
    c.scst.eval_every_steps = 2
    c.scst.total_steps = STEPS
    c.scst.overlap = True  # step 3 is overlapped (steps 2 and 4 checkpoint and evaluate)
    c.checkpoint_every_steps = 2
    c.log_every_steps = 3
    c.data.batch_size = 2
    c.num_devices = 2  # the batch of 2 videos split over 2 of the 8 fake CPU devices
    c.eval.soda = False
    return c


@pytest.fixture(scope="module")
def runs(synthetic_dataset, tmp_path_factory):
    """(uninterrupted workdir, interrupted workdir, events of the interrupted run,
    (compilation-cache log, its mark after the uninterrupted run))."""
    root = synthetic_dataset
    dim = write_attribute_features(str(root / "synthetic_events.json"), str(root / "features"))
    return straight_and_interrupted(train_scst.run, _config(root, dim), tmp_path_factory,
                                    "scst", KILL_IN_EVAL, PREEMPT)


def test_split_validation_is_seeded_and_disjoint():
    ids = [f"v_{i}" for i in range(10)]
    a, b = split_validation(ids, 0.8, seed=3)
    assert len(a) == 8 and len(b) == 2 and not set(a) & set(b) and set(a) | set(b) == set(ids)
    assert split_validation(list(reversed(ids)), 0.8, seed=3) == (a, b)
    assert split_validation(ids, 0.0, seed=3) == ([], sorted(ids))


def test_scst_stage_logs_rewards_and_evaluates(runs, synthetic_dataset):
    straight, _, _, _ = runs
    rows = [r for r in read_metrics(str(straight / "metrics.jsonl")) if r["split"] == "train"]
    assert [r["step"] for r in rows] == [3, 4]
    for r in rows:
        assert np.isfinite(r["loss"]) and r["events"] > 0
        assert 0.0 <= r["cider_sample"] and 0.0 <= r["cider_greedy"]
    summary = json.loads((straight / "scst_summary.json").read_text())
    assert [e["step"] for e in summary["evals"]] == [0, 2, 4]
    assert summary["final"] == summary["evals"][-1] and summary["xe"]["METEOR"] >= 0.0
    split = json.loads((straight / "scst_split.json").read_text())
    val = json.loads((synthetic_dataset / "captions" / "val_1.json").read_text())
    assert len(split["train_extra_val"]) == len(val) // 2
    assert sorted(split["train_extra_val"] + split["eval"]) == sorted(val)
    # The held-out references hold the evaluation videos only.
    refs = json.loads((straight / "refs" / "0_val_1.json").read_text())
    assert sorted(refs) == split["eval"]


def _params(directory, step):
    with Checkpointer(str(directory)) as ckpt:
        return ckpt.restore_to_host(step)["params"]


def _drop_time(record):
    return {k: v for k, v in record.items() if k not in TIME_KEYS}


def test_killed_in_evaluation_and_preempted_run_equals_uninterrupted(runs):
    straight, interrupted, events, _ = runs
    assert events[:2] == ["killed", {"steps": PREEMPT, "preempted": True}]
    for x, y in zip(jax.tree.leaves(_params(straight / "checkpoints", STEPS)),
                    jax.tree.leaves(_params(interrupted / "checkpoints", STEPS)), strict=True):
        np.testing.assert_array_equal(x, y)
    summaries = [json.loads((w / "scst_summary.json").read_text())
                 for w in (straight, interrupted)]
    assert [e["step"] for e in summaries[1]["evals"]] == [0, 2, 4]
    assert events[2]["final"]["step"] == STEPS
    for key in ("xe", "final"):
        assert _drop_time(summaries[1][key]) == _drop_time(summaries[0][key])
    assert ([_drop_time(e) for e in summaries[1]["evals"]]
            == [_drop_time(e) for e in summaries[0]["evals"]])
    best = [sorted(p.name for p in (w / "best").iterdir() if p.name.isdigit())
            for w in (straight, interrupted)]
    assert best[0] == best[1]
    lines = [[_drop_time(r) for r in read_metrics(str(w / "metrics.jsonl"))]
             for w in (straight, interrupted)]
    assert lines[1] == lines[0]


def test_every_program_of_a_rerun_comes_from_the_persistent_cache(runs):
    # As in tests/test_captioner_train.py: the reruns rebuild their jitted functions, and
    # every program must be found where the first run wrote it.
    cache_log, mark = runs[-1]
    cache_log.assert_rerun_from_cache(mark, {"jit_sample_with_baseline", "jit_update"})
