"""One video-id rule for every stage (data_prep.infra.videos): ids that start with `v_v_`,
ids without the prefix, ids with `-` and `_`, from the generator's files to the shards."""
from __future__ import annotations

import dataclasses

import pytest

from data_prep.annotations.tsp_csv import caption_video_id, tsp_video_name
from data_prep.infra.videos import activitynet_id, candidate_names, find_video_file, youtube_id
from data_prep.labels.video_labels import build_video_labels
from data_prep.shards.stage import write_split_shards
from data_prep.synthetic.generator import (
    DatasetOptions,
    _render_and_encode,
    sample_specs,
    write_annotations,
)
from data_prep.synthetic.scene_sampler import SceneOptions


@pytest.mark.parametrize("video_id,youtube,names", [
    # YouTube id `v_28qqbBvu6`: one `v_` off, never both.
    ("v_v_28qqbBvu6", "v_28qqbBvu6", ["v_v_28qqbBvu6", "v_28qqbBvu6"]),
    ("v_QOlSCBRmfWY", "QOlSCBRmfWY", ["v_QOlSCBRmfWY", "QOlSCBRmfWY"]),
    # No prefix: a YouTube id; its ActivityNet file name is tried second.
    ("28qqbBvu6xy", "28qqbBvu6xy", ["28qqbBvu6xy", "v_28qqbBvu6xy"]),
    # `-` and `_` inside an id are id characters, not separators.
    ("v_0bosp4-pyTM", "0bosp4-pyTM", ["v_0bosp4-pyTM", "0bosp4-pyTM"]),
    ("v_-_v_x-y_", "-_v_x-y_", ["v_-_v_x-y_", "-_v_x-y_"]),
    ("a_b-c", "a_b-c", ["a_b-c", "v_a_b-c"]),
])
def test_id_rule(video_id, youtube, names):
    assert youtube_id(video_id) == youtube == tsp_video_name(video_id)
    assert candidate_names(video_id) == names
    if video_id.startswith("v_"):
        # TSP's `video-name` is the YouTube id; the caption id gets `v_` back, always.
        assert caption_video_id(youtube) == activitynet_id(youtube) == video_id


def test_find_video_file_by_either_name(tmp_path):
    for name in ("v_v_28qqbBvu6.mp4", "v_28qqbBvu6.mp4", "v_abc-d_e.mkv", "plain_1.mp4"):
        (tmp_path / name).write_bytes(b"")
    # The exact name wins; `v_v_x` never falls through to `x`.
    assert find_video_file(str(tmp_path), "v_v_28qqbBvu6").endswith("/v_v_28qqbBvu6.mp4")
    (tmp_path / "v_v_28qqbBvu6.mp4").unlink()
    assert find_video_file(str(tmp_path), "v_v_28qqbBvu6").endswith("/v_28qqbBvu6.mp4")
    assert find_video_file(str(tmp_path), "v_28qqbBvu6").endswith("/v_28qqbBvu6.mp4")
    # Without the prefix: the YouTube id `28qqbBvu6`, whose ActivityNet file is v_28qqbBvu6.
    assert find_video_file(str(tmp_path), "28qqbBvu6").endswith("/v_28qqbBvu6.mp4")
    assert find_video_file(str(tmp_path), "qqbBvu6") is None
    assert find_video_file(str(tmp_path), "abc-d_e").endswith("/v_abc-d_e.mkv")
    assert find_video_file(str(tmp_path), "v_plain_1").endswith("/plain_1.mp4")
    assert find_video_file(str(tmp_path), "v_v_plain_1") is None


def test_v_v_ids_go_from_generated_files_to_shards(tmp_path):
    """The demo's `v_v_28qqbBvu6` case: the generator names its files and TSP rows, the
    labels join the captions and find the file, and write_shards writes every video."""
    options = DatasetOptions(
        num_train=3, num_val=1, seed=0, workers=1,
        scene=SceneOptions(min_duration_s=3.0, max_duration_s=3.5, height=32, width=32,
                           max_events=1, min_event_s=1.2))
    ids = ["v_v_28qqbBvu6", "v_0bosp4-pyTM", "v_-_x_y-z_", "v_valvideo01"]
    specs = [dataclasses.replace(s, video_id=v) for s, v in zip(sample_specs(options), ids)]
    write_annotations(tmp_path, specs, options)
    rows = (tmp_path / "tsp" / "train_tsp_groundtruth.csv").read_text().splitlines()
    assert any(r.startswith("v_28qqbBvu6,") and ",v_v_28qqbBvu6.mp4," in r for r in rows)
    videos = tmp_path / "videos"
    for spec in specs[:3]:
        _render_and_encode((spec, str(videos / f"{spec.video_id}.mp4"), 30, "ultrafast"))

    labels = build_video_labels(tmp_path / "tsp" / "train_tsp_groundtruth.csv",
                                tmp_path / "tsp" / "action_label_mapping.json",
                                tmp_path / "captions" / "train.json",
                                metadata=tmp_path / "tsp" / "train_metadata.csv",
                                min_segment_s=0.5)
    assert sorted(labels) == sorted(ids[:3])
    assert all(len(lab.event_segments) == 1 for lab in labels.values())  # captions joined
    report = write_split_shards(labels, str(videos), str(tmp_path / "shards"), "train", 1,
                                fps=15.0, resize=None)
    assert report["num_skipped"] == 0, report["skipped"]
    assert report["num_written"] == 3
