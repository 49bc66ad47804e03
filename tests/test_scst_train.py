"""The captioner_scst stage on the tiny synthetic data set: runs, logs rewards, checkpoints
with the iterator, resumes on the next step, splits validation videos reproducibly."""
import json

import numpy as np
import pytest

from benchmarks.attribute_features import write_attribute_features
from captioner_jax.scst import train_scst
from captioner_jax.scst.scst_data import split_validation
from configs.captioner import synthetic_scst
from data_prep.infra.metrics import read_metrics


@pytest.fixture(scope="module")
def features_dim(synthetic_dataset):
    return write_attribute_features(str(synthetic_dataset / "synthetic_events.json"),
                                    str(synthetic_dataset / "features"))


def _config(root, dim, steps):
    # The light caption head keeps compile time low; the LSTM-DSA path is covered by
    # tests/test_scst_pdvc.py.
    c = synthetic_scst.get_config(f"root={root},dim={dim},runlocal,head=light,val_frac=0.5,k=2,"
                                     "reward=cider,baseline=greedy")  # CIDEr-D only: no Java here
    c.scst.eval_before = False
    c.scst.eval_every_steps = 0
    c.scst.total_steps = steps
    c.checkpoint_every_steps = 2
    c.data.batch_size = 2
    c.num_devices = 2  # the batch of 2 videos split over 2 of the 8 fake CPU devices
    return c


def test_split_validation_is_seeded_and_disjoint():
    ids = [f"v_{i}" for i in range(10)]
    a, b = split_validation(ids, 0.8, seed=3)
    assert len(a) == 8 and len(b) == 2 and not set(a) & set(b) and set(a) | set(b) == set(ids)
    assert split_validation(list(reversed(ids)), 0.8, seed=3) == (a, b)
    assert split_validation(ids, 0.0, seed=3) == ([], sorted(ids))


def test_scst_stage_runs_and_resumes(synthetic_dataset, features_dim, tmp_path):
    root = str(synthetic_dataset)
    out = train_scst.run(_config(root, features_dim, steps=2), str(tmp_path))
    assert out["steps"] == 2
    rows = [r for r in read_metrics(str(tmp_path / "metrics.jsonl")) if r["split"] == "train"]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert np.isfinite(r["loss"]) and r["events"] > 0
        assert 0.0 <= r["cider_sample"] and 0.0 <= r["cider_greedy"]
    split = json.loads((tmp_path / "scst_split.json").read_text())
    val = json.loads((synthetic_dataset / "captions" / "val_1.json").read_text())
    assert len(split["train_extra_val"]) == len(val) // 2
    assert sorted(split["train_extra_val"] + split["eval"]) == sorted(val)
    # The held-out references hold the evaluation videos only.
    refs = json.loads((tmp_path / "refs" / "0_val_1.json").read_text())
    assert sorted(refs) == split["eval"]
    # Resume: a longer run continues at step 3 from the saved state and iterator.
    train_scst.run(_config(root, features_dim, steps=3), str(tmp_path))
    rows = [r for r in read_metrics(str(tmp_path / "metrics.jsonl")) if r["split"] == "train"]
    assert [r["step"] for r in rows] == [1, 2, 3]
