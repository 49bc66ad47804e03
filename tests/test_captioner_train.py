"""End-to-end on the synthetic data set: a tiny training run lowers every loss; a run killed
inside an evaluation and then preempted ends exactly as an uninterrupted one (parameters,
best checkpoint, predictions, evaluation record, metrics lines); the predict stage in
GT-proposal mode gives one caption per ground-truth segment, writes the official submission
JSON and runs the official evaluator; a vocabulary other than the trained run's is one clear
error.

Compilation dominates on CPU, so the two training runs (query mode, 2 devices) share their
compiled functions and the model is shrunk (2 levels, 1 encoder layer, the light caption head;
2 decoder layers for the auxiliary losses). The LSTM-DSA head is covered by
test_captioner_model.py."""
import json

import numpy as np
import pytest
from interruptions import straight_and_interrupted

from benchmarks.attribute_features import write_attribute_features
from captioner_jax import build, inference, train
from captioner_jax.scst import train_scst
from configs.captioner import synthetic, synthetic_scst
from data_prep.infra import resume
from data_prep.infra.checkpointing import Checkpointer
from data_prep.infra.metrics import read_metrics
from data_prep.text.caption_vocab import CaptionVocab

STEPS = 16  # 4 steps per epoch (8 training videos, batch 2): evaluations at steps 8 and 16
KILL_IN_EVAL, PREEMPT = 8, 11
TIME_KEYS = {"time", "steps_per_s", "videos_per_s", "predict_seconds", "seconds"}


def _config(root, dim, arg=""):
    c = synthetic.get_config(f"root={root},dim={dim},runlocal,devices=2,batch=2" + arg)
    # Two decoder layers (runlocal has one): the per-layer matching and auxiliary losses run.
    c.model.update(num_levels=2, cap_levels=2, enc_layers=1, dec_layers=2, caption_head="light")
    c.data.num_steps = 16
    c.data.max_caption_len = 16
    c.eval.max_len = 12
    return c


def _train_config(root, dim):
    c = _config(root, dim)
    c.optim.lr = 3e-3
    c.model.dropout = 0.0
    c.model.cap_dropout = 0.0
    c.total_steps = STEPS
    c.eval_every_epochs = 2
    c.log_every_steps = 3  # windows cut by checkpoints (every 2) and by the preemption
    c.checkpoint_every_steps = 2
    return c


@pytest.fixture(scope="module")
def runs(synthetic_dataset, tmp_path_factory):
    """(root, dim, uninterrupted workdir, interrupted workdir, log of the interruptions,
    (compilation-cache log, its mark after the uninterrupted run))."""
    root = synthetic_dataset
    dim = write_attribute_features(str(root / "synthetic_events.json"), str(root / "features"))
    runs = straight_and_interrupted(train.run, _train_config(root, dim), tmp_path_factory,
                                    "captioner", KILL_IN_EVAL, PREEMPT)
    return root, dim, *runs


def _params(directory, step):
    with Checkpointer(str(directory)) as ckpt:
        return ckpt.restore_to_host(step)["params"]


def _lines(workdir):
    return [{k: v for k, v in r.items() if k not in TIME_KEYS}
            for r in read_metrics(str(workdir / "metrics.jsonl"))]


def test_tiny_run_lowers_every_loss(runs):
    _, _, workdir, _, _, _ = runs
    records = [r for r in read_metrics(str(workdir / "metrics.jsonl")) if r["split"] == "train"]
    assert [r["step"] for r in records] == [3, 6, 9, 12, 15, 16]  # every 3 steps and the last
    for key in ("loss", "loss_ce", "loss_giou", "loss_counter", "loss_caption",
                "loss_ce_0", "loss_giou_0", "loss_counter_0", "loss_caption_0"):
        assert records[-2][key] < records[0][key], key  # means over steps 13-15 vs 1-3


def test_killed_in_evaluation_and_preempted_run_equals_uninterrupted(runs):
    _, _, straight, interrupted, events, _ = runs
    assert events[:2] == ["killed", {"steps": PREEMPT, "preempted": True}]
    assert events[2]["steps"] == STEPS
    # Parameters after the last step, bitwise.
    a, b = _params(straight / "checkpoints", STEPS), _params(interrupted / "checkpoints", STEPS)
    for x, y in zip(jax_leaves(a), jax_leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    # The evaluation the kill cut was redone: same record, predictions and best checkpoint.
    evals = [json.loads((w / "evaluations.json").read_text())["evals"]
             for w in (straight, interrupted)]
    assert [e["step"] for e in evals[1]] == [KILL_IN_EVAL, STEPS]
    assert [{k: v for k, v in e.items() if k not in TIME_KEYS} for e in evals[1]] == [
        {k: v for k, v in e.items() if k not in TIME_KEYS} for e in evals[0]]
    for step in (KILL_IN_EVAL, STEPS):
        name = f"predictions/val_step{step}.json"
        assert (straight / name).read_text() == (interrupted / name).read_text()
    best = [sorted(int(p.name) for p in (w / "best").iterdir() if p.name.isdigit())
            for w in (straight, interrupted)]
    assert best[0] == best[1] and len(best[0]) == 1
    for x, y in zip(jax_leaves(_params(straight / "best", best[0][0])),
                    jax_leaves(_params(interrupted / "best", best[0][0])), strict=True):
        np.testing.assert_array_equal(x, y)
    # Metrics lines (train windows and validation) equal up to time and rate keys.
    assert _lines(interrupted) == _lines(straight)


def test_every_program_of_a_rerun_comes_from_the_persistent_cache(runs):
    # The reruns (killed, preempted, finished) build their jitted functions anew: each program
    # is looked up in the persistent cache, where the first run wrote it. A miss is a program
    # whose cache key changes between runs, or one with a host callback, never written.
    cache_log, mark = runs[-1]
    cache_log.assert_rerun_from_cache(mark, {"jit_training_forward", "jit_train_step"})


def jax_leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def test_gt_proposal_predict_one_caption_per_segment(runs):
    root, dim, workdir, _, _, _ = runs
    c = _config(root, dim, ",mode=gt,predict")
    c.eval.soda = False
    metrics = inference.run(c, str(workdir))
    assert metrics["checkpoint"] == "best"
    assert "METEOR" in metrics and "CIDEr" in metrics  # the official evaluator ran
    sub = json.loads((workdir / "predictions" / "val_1.json").read_text())
    assert set(sub) >= {"version", "results", "external_data"}
    refs = json.loads((root / "captions" / "val_1.json").read_text())
    assert list(sub["results"]) == list(refs)  # every video, in the split's order
    for vid, entries in sub["results"].items():
        want = sorted(refs[vid]["timestamps"])[: c.data.max_events]
        got = [e["timestamp"] for e in entries]
        assert len(got) == len(want)
        np.testing.assert_allclose(got, want, atol=1e-3)
        assert all(isinstance(e["sentence"], str) for e in entries)
    assert (workdir / "predictions" / "val_1_metrics.json").is_file()
    assert metrics["feature_problems"] == 0


def test_corrupt_feature_files_are_reported_counted_and_strict_fails(runs, tmp_path):
    """Issue 13 point 5: a NaN and a truncated .npy among the val features are named in the
    stage's feature_problems.json and counted in its result; strict_features stops it."""
    import shutil

    from captioner_jax.data.features import CorruptFeatureError

    root, dim, workdir, _, _, _ = runs
    feats = tmp_path / "features"
    shutil.copytree(root / "features", feats)
    val_ids = list(json.loads((root / "captions" / "val_1.json").read_text()))
    arr = np.load(feats / f"{val_ids[1]}.npy")
    arr[0, 0] = np.nan
    np.save(feats / f"{val_ids[1]}.npy", arr)
    data = (feats / f"{val_ids[2]}.npy").read_bytes()
    (feats / f"{val_ids[2]}.npy").write_bytes(data[: len(data) // 2])
    c = _config(root, dim, ",mode=gt,predict")
    c.eval.soda = False
    c.data.features = [dict(c.data.features[0], path=str(feats))]
    c.init_from = str(workdir)
    metrics = inference.run(c, str(tmp_path / "predict"))
    assert metrics["feature_problems"] == 2
    report = json.loads((tmp_path / "predict" / "feature_problems.json").read_text())
    assert [(p["video_id"], p["kind"]) for p in report["problems"]] == [
        (val_ids[1], "corrupt"), (val_ids[2], "corrupt")]
    assert "non-finite" in report["problems"][0]["error"]
    assert str(feats / f"{val_ids[2]}.npy") in report["problems"][1]["error"]
    sub = json.loads((tmp_path / "predict" / "predictions" / "val_1.json").read_text())
    assert set(sub["results"]) == set(val_ids) - {val_ids[1], val_ids[2]}
    c.data.strict_features = True
    with pytest.raises(CorruptFeatureError, match="feature_problems.json"):
        inference.run(c, str(tmp_path / "predict_strict"))


def test_a_vocabulary_other_than_the_trained_runs_is_one_clear_error(runs, tmp_path):
    root, dim, workdir, _, _, _ = runs
    info = json.loads((workdir / "model_info.json").read_text())
    trained = CaptionVocab.load(workdir / "vocab.json")
    assert info["vocab"] == {"file": "vocab.json", "size": trained.size,
                             "sha256": build.vocab_digest(trained)}
    assert info["feature_dim"] == dim
    shuffled = CaptionVocab(list(reversed(trained.words[:-1])) + [trained.words[-1]])
    shuffled.save(tmp_path / "shuffled.json")
    CaptionVocab(trained.words[:-2] + [trained.words[-1]]).save(tmp_path / "smaller.json")
    for name in ("shuffled.json", "smaller.json"):
        c = _config(root, dim, ",mode=gt,predict")
        c.data.vocab_path = str(tmp_path / name)
        c.init_from = str(workdir)  # predict the trained run into another workdir
        with pytest.raises(build.VocabularyMismatchError, match="vocabulary mismatch") as err:
            inference.run(c, str(tmp_path / "predict"))
        assert name in str(err.value) and str(workdir) in str(err.value)
    # SCST reads the vocabulary of the XE run it starts from, with the same check.
    c = synthetic_scst.get_config(f"root={root},dim={dim},runlocal,head=light,reward=cider,"
                                  f"init={workdir}")
    c.data.vocab_path = str(tmp_path / "shuffled.json")
    with pytest.raises(build.VocabularyMismatchError, match="vocabulary mismatch"):
        train_scst.run(c, str(tmp_path / "scst"))
    # A vocabulary.json that no longer matches the run's record is caught too.
    shuffled.save(workdir / "vocab.json")
    try:
        with pytest.raises(build.VocabularyMismatchError, match="model_info.json"):
            build.load_trained_run(str(workdir))
    finally:
        trained.save(workdir / "vocab.json")


def test_metric_window_survives_a_restart_bitwise(tmp_path):
    """The open window saved beside a checkpoint comes back with its dtypes, so the mean
    logged after a resume is bitwise the uninterrupted one."""
    steps = [{"loss": np.float32(v), "reward": float(v) / 3} for v in (0.1, 0.7, 1.3)]
    straight = resume.ResumableWindow(str(tmp_path / "w"))
    for m in steps:
        straight.add(m)
    cut = resume.ResumableWindow(str(tmp_path / "w"))
    for m in steps[:2]:
        cut.add(m)
    cut.save(2)
    resumed = resume.ResumableWindow(str(tmp_path / "w"))
    resumed.restore(2)
    resumed.add(steps[2])
    assert resumed.flush(3) == straight.flush(3)
    resumed.prune([4])
    assert not (tmp_path / "w" / "2.json").exists()


def test_evaluation_record_restores_a_lost_metrics_line(tmp_path):
    """A kill between recording an evaluation and writing its metrics line: the resumed run
    writes the line from the record (and never twice)."""
    from data_prep.infra.metrics import MetricWriter

    evals = resume.EvaluationLog(str(tmp_path / "evaluations.json"))
    evals.record(4, {"METEOR": 1.5, "predict_seconds": 2.0})
    assert resume.EvaluationLog(str(tmp_path / "evaluations.json")).done(4)
    with MetricWriter(str(tmp_path)) as writer:
        writer.write(4, {"loss": 1.0})
        resume.restore_eval_line(writer, evals, 4)
        resume.restore_eval_line(writer, evals, 4)
    lines = read_metrics(str(tmp_path / "metrics.jsonl"))
    assert [(r["step"], r["split"]) for r in lines] == [(4, "train"), (4, "val")]
    assert lines[1]["METEOR"] == 1.5 and "predict_seconds" not in lines[1]


def test_a_workdir_trained_with_another_vocabulary_is_refused(tmp_path):
    """Resuming into a workdir whose checkpoints index another vocabulary's ids."""
    first = CaptionVocab(["a", "b", "UNK"])
    second = CaptionVocab(["b", "a", "UNK"])
    c = synthetic.get_config("root=x")
    build.write_model_info(str(tmp_path), build.model_info(c, first, 8), first)
    build.write_model_info(str(tmp_path), build.model_info(c, first, 8), first)  # same: ok
    with pytest.raises(build.VocabularyMismatchError, match="another vocabulary"):
        build.write_model_info(str(tmp_path), build.model_info(c, second, 8), second)
    assert build.load_trained_run(str(tmp_path)).vocab.words == first.words
