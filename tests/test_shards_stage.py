"""Launch stage "write_shards" on the synthetic data set fixture."""
from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest
import shard_fixtures as fx

from configs.data.shards_synthetic import get_config
from data_prep.pipelines import ClipShardSource
from data_prep.shards import stage


def _labels_fn(config, split_cfg):
    root = config.data_root
    labels = fx.labels_from_tsp_csv(os.path.join(root, split_cfg.tsp_groundtruth),
                                    os.path.join(root, config.action_label_mapping))
    if "train" in split_cfg.tsp_groundtruth:  # a video whose file does not exist
        labels["v_missing"] = fx.make_labels("v_missing", 3.0)
    return labels


def test_stage_writes_split_shards_and_resumes(synthetic_dataset, tmp_path):
    config = get_config(f"root={synthetic_dataset},shards=2,workers=0")
    summary = stage.run(config, str(tmp_path), labels_fn=_labels_fn)
    assert summary["train"] == {"num_videos": 9, "num_written": 8, "num_skipped": 1,
                                "num_warnings": 0, "shards": 2}
    assert summary["val"]["num_written"] == 4 and summary["val"]["num_skipped"] == 0
    train = sorted(glob.glob(str(tmp_path / "train-*.tfrecord")))  # the SA-TSP configs' glob
    assert [os.path.basename(p) for p in train] == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    report = json.loads((tmp_path / "train_report.json").read_text())
    assert [s["video_id"] for s in report["skipped"]] == ["v_missing"]
    assert "file not found" in report["skipped"][0]["error"]

    src = ClipShardSource(train)
    expected = _labels_fn(config, config.splits.train)
    assert len(src) == 8
    for i, vid in enumerate(src.video_ids):
        lab = expected[vid]
        assert abs(src.num_frames[i] - lab.duration * config.fps) <= 1  # 7.5 fps, native 64x64
        assert src.entry(i)["height"] == 64 and src.entry(i)["width"] == 64
        np.testing.assert_array_equal(src.labels(i).segments, lab.segments)
        np.testing.assert_array_equal(src.labels(i).action_labels, lab.action_labels)
    assert src[0].num_frames == src.num_frames[0]

    again = stage.run(config, str(tmp_path), labels_fn=_labels_fn)
    assert again == summary
    report = json.loads((tmp_path / "val_report.json").read_text())
    assert report["written_shards"] == [] and len(report["resumed_shards"]) == 2


def test_stage_builds_labels_with_concepts_from_the_text_stage(synthetic_dataset, tmp_path):
    """Default label builder: TSP CSV + captions + the text_vocab stage's concept vocabulary."""
    from configs.data.text_synthetic import get_config as text_config
    from data_prep.text import stage as text_stage
    from data_prep.text.concepts import ConceptVocab

    text_dir = tmp_path / "text"
    text_stage.run(text_config(f"data_dir={synthetic_dataset}"), str(text_dir))
    config = get_config(
        f"root={synthetic_dataset},shards=1,workers=0,concepts={text_dir / 'concepts.json'}"
    )
    summary = stage.run(config, str(tmp_path / "shards"))
    assert summary["train"]["num_written"] == 8 and summary["train"]["num_skipped"] == 0
    src = ClipShardSource(sorted(glob.glob(str(tmp_path / "shards" / "train-*.tfrecord"))))
    vocab = ConceptVocab.load(text_dir / "concepts.json")
    events = [c for i in range(len(src)) for c in src.labels(i).event_concepts]
    assert events and all(len(c) > 0 for c in events)  # every caption names some concept
    assert max(int(c.max()) for c in events) < vocab.size

    missing = get_config(f"root={synthetic_dataset},concepts={tmp_path / 'nope.json'}")
    with pytest.raises(FileNotFoundError, match="text_vocab stage"):
        stage.run(missing, str(tmp_path / "shards2"))
