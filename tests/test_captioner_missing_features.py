"""A captioner run whose training videos mostly have no features stops before training
(issue 14: a wrong feature path used to train 300,270 steps on zero-filled features)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from captioner_jax import train
from configs.captioner import synthetic


def _config(root, features, arg=""):
    return synthetic.get_config(f"root={root},features={features},dim=8,runlocal,devices=1"
                                + arg)


def _write_features(folder, ids):
    folder.mkdir(parents=True, exist_ok=True)
    for vid in ids:
        np.save(folder / f"{vid}.npy", np.ones((6, 8), np.float32))


def test_mostly_missing_training_features_fail_loudly(synthetic_dataset, tmp_path):
    train_ids = sorted(json.loads((synthetic_dataset / "captions" / "train.json").read_text()))
    assert len(train_ids) == 8
    feats = tmp_path / "feats"
    _write_features(feats, train_ids[:3])  # 5 of 8 missing: more than half
    config = _config(synthetic_dataset, feats)
    assert config.data.zero_fill_missing and config.data.max_missing_fraction == 0.5
    with pytest.raises(ValueError, match=rf"5 of 8 training videos.*{feats}.*"
                                         r"data\.max_missing_fraction"):
        train._load_data(config, str(tmp_path / "run"))

    config.data.max_missing_fraction = 1.0  # the user's explicit choice: zero-fill them
    data = train._load_data(config, str(tmp_path / "run"))
    assert sorted(data.train_ids) == train_ids

    _write_features(feats, train_ids[3:4])  # 4 of 8 missing: not more than half
    data = train._load_data(_config(synthetic_dataset, feats), str(tmp_path / "run2"))
    assert sorted(data.train_ids) == train_ids  # PDVC: the rest zero-filled
