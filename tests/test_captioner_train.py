"""End-to-end on the synthetic data set: a tiny training run lowers every loss and resumes;
the predict stage in GT-proposal mode gives one caption per ground-truth segment, writes the
official submission JSON and runs the official evaluator.

Compilation dominates on CPU, so one training run (query mode, 2 devices) is shared by the
tests and the model is shrunk (2 levels, 1 encoder layer, the light caption head; 2 decoder
layers for the auxiliary losses). The LSTM-DSA head is covered by test_captioner_model.py."""
import json

import numpy as np
import pytest

from benchmarks.attribute_features import write_attribute_features
from captioner_jax import inference, train
from configs.captioner import synthetic
from data_prep.infra.metrics import read_metrics

STEPS = 16


def _config(root, dim, arg=""):
    c = synthetic.get_config(f"root={root},dim={dim},runlocal,devices=2,batch=2" + arg)
    c.model.update(num_levels=2, cap_levels=2, enc_layers=1, caption_head="light")
    c.data.num_steps = 16
    c.data.max_caption_len = 16
    c.eval.max_len = 12
    c.log_every_steps = 1
    c.checkpoint_every_steps = 1000
    return c


@pytest.fixture(scope="module")
def trained(synthetic_dataset, tmp_path_factory):
    root = synthetic_dataset
    dim = write_attribute_features(str(root / "synthetic_events.json"), str(root / "features"))
    workdir = tmp_path_factory.mktemp("captioner_run")
    c = _config(root, dim)
    c.data.val_captions = ""  # evaluation is exercised by the predict-stage test
    c.optim.lr = 3e-3
    c.model.dropout = 0.0
    c.model.cap_dropout = 0.0
    c.total_steps = STEPS
    train.run(c, str(workdir))
    first = [r for r in read_metrics(str(workdir / "metrics.jsonl")) if r["split"] == "train"]
    c.total_steps = STEPS + 2  # resume: continues from the checkpoint of step STEPS
    train.run(c, str(workdir))
    return root, dim, workdir, first


def test_tiny_run_lowers_every_loss(trained):
    *_, records = trained
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    for key in ("loss", "loss_ce", "loss_giou", "loss_counter", "loss_caption",
                "loss_ce_0", "loss_giou_0", "loss_counter_0", "loss_caption_0"):
        first = np.mean([r[key] for r in records[:4]])
        last = np.mean([r[key] for r in records[-4:]])
        assert last < first, (key, first, last)


def test_resume_continues_from_checkpoint(trained):
    _, _, workdir, _ = trained
    steps = [r["step"] for r in read_metrics(str(workdir / "metrics.jsonl"))
             if r["split"] == "train"]
    assert steps == list(range(1, STEPS + 3))


def test_gt_proposal_predict_one_caption_per_segment(trained):
    root, dim, workdir, _ = trained
    c = _config(root, dim, ",mode=gt,predict")
    c.eval.soda = False
    metrics = inference.run(c, str(workdir))
    assert metrics["checkpoint"] == "checkpoints" and metrics["checkpoint_step"] == STEPS + 2
    assert "METEOR" in metrics and "CIDEr" in metrics  # the official evaluator ran
    sub = json.loads((workdir / "predictions" / "val_1.json").read_text())
    assert set(sub) >= {"version", "results", "external_data"}
    refs = json.loads((root / "captions" / "val_1.json").read_text())
    assert set(sub["results"]) == set(refs)
    for vid, entries in sub["results"].items():
        want = sorted(refs[vid]["timestamps"])[: c.data.max_events]
        got = [e["timestamp"] for e in entries]
        assert len(got) == len(want)
        np.testing.assert_allclose(got, want, atol=1e-3)
        assert all(isinstance(e["sentence"], str) for e in entries)
    assert (workdir / "predictions" / "val_1_metrics.json").is_file()
