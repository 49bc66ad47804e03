"""TSP-style video labels and per-clip concept / action / region targets."""
import csv

import numpy as np
import pytest

from data_prep.annotations.activitynet_captions import VideoCaptions
from data_prep.annotations.tsp_csv import TspSegment
from data_prep.labels.clip_targets import (
    clip_action_region,
    clip_concept_targets,
    clip_concept_targets_batch,
)
from data_prep.labels.types import IGNORE_INDEX, REGION_ACTION, REGION_BACKGROUND, VideoLabels
from data_prep.labels.video_labels import TSP_CLIP_SECONDS, build_video_labels


def _row(start, end, label, duration=20.0):
    return TspSegment("abc", start, end, label, duration, "v_abc.mp4", 15.0, 300,
                      "Action" if label else "No action")


def test_segments_clipped_short_dropped_labels_mapped():
    rows = [_row(0.0, 0.5, ""), _row(0.5, 8.0, "Jump"), _row(8.0, 12.0, ""),
            _row(11.0, 22.0, "Run")]
    captions = {"v_abc": VideoCaptions("v_abc", 20.0, np.array([[1.0, 8.0], [11.0, 25.0]]),
                                       ["a", "b"])}
    labels = build_video_labels(rows, ["Run", "Jump"], captions,
                                sentence_concepts={"v_abc": [[1, 3], [2]]})["v_abc"]
    # the 0.5 s gap is shorter than one clip (16 / 15 s) and dropped; [11, 22] -> [11, 20]
    np.testing.assert_allclose(labels.segments, [[0.5, 8.0], [8.0, 12.0], [11.0, 20.0]])
    np.testing.assert_array_equal(labels.action_labels, [1, IGNORE_INDEX, 0])
    np.testing.assert_array_equal(labels.region_labels,
                                  [REGION_ACTION, REGION_BACKGROUND, REGION_ACTION])
    np.testing.assert_allclose(labels.event_segments, [[1.0, 8.0], [11.0, 20.0]])
    assert [c.tolist() for c in labels.event_concepts] == [[1, 3], [2]]
    with pytest.raises(ValueError, match="Walk"):
        build_video_labels([_row(0, 5, "Walk")], ["Run"])


def _labels():
    return VideoLabels("v_x", 30.0, [[0, 10], [10, 20]], [0, IGNORE_INDEX],
                       [REGION_ACTION, REGION_BACKGROUND],
                       event_segments=[[2.0, 6.0], [5.0, 12.0]],
                       event_concepts=[[0, 2], [3]])


@pytest.mark.parametrize("rule,clip,expected", [
    ("any_overlap", (0.0, 1.0), []),
    ("any_overlap", (1.5, 2.5), [0, 2]),
    ("any_overlap", (5.5, 6.5), [0, 2, 3]),
    ("any_overlap", (6.0, 7.0), [3]),  # touching the end is no overlap
    ("center_inside", (1.5, 2.5), [0, 2]),
    ("center_inside", (1.0, 2.0), []),  # centre 1.5 before the event
    ("center_inside", (11.0, 13.0), [3]),  # centre 12.0 on the end counts
    ("min_overlap_frac=0.5", (1.5, 2.5), [0, 2]),  # exactly half inside
    ("min_overlap_frac=0.5", (1.4, 2.4), []),  # 0.4 inside
    ("min_overlap_frac=1", (5.5, 6.0), [0, 2, 3]),
])
def test_clip_concept_rules_by_hand(rule, clip, expected):
    target = clip_concept_targets(*clip, _labels(), 5, rule)
    assert target.dtype == np.float32 and target.shape == (5,)
    assert np.flatnonzero(target).tolist() == expected
    assert set(np.unique(target)) <= {0.0, 1.0}


def test_batch_equals_single_and_bad_inputs():
    starts = np.linspace(0, 28, 15)
    batch = clip_concept_targets_batch(starts, starts + 16 / 15, _labels(), 5, "any_overlap")
    for i, s in enumerate(starts):
        np.testing.assert_array_equal(batch[i], clip_concept_targets(s, s + 16 / 15, _labels(), 5))
    with pytest.raises(ValueError, match="overlap rule"):
        clip_concept_targets(0, 1, _labels(), 5, "min_overlap_frac=2")
    with pytest.raises(ValueError, match="v_x"):
        clip_concept_targets(0, 1, _labels(), 3)


def test_clip_action_region():
    assert clip_action_region(3.0, 4.0, _labels()) == (0, REGION_ACTION)
    assert clip_action_region(14.0, 15.0, _labels()) == (IGNORE_INDEX, REGION_BACKGROUND)
    assert clip_action_region(25.0, 26.0, _labels()) == (IGNORE_INDEX, REGION_BACKGROUND)


def test_synthetic_labels(synthetic_dataset):
    root = synthetic_dataset
    labels = build_video_labels(root / "tsp/train_tsp_groundtruth.csv",
                                root / "tsp/action_label_mapping.json",
                                root / "captions/train.json",
                                metadata=root / "tsp/train_metadata.csv")
    assert len(labels) == 8
    for lab in labels.values():
        assert len(lab.event_segments) == len(lab.event_concepts) >= 1
        assert np.all(lab.segments[:, 1] - lab.segments[:, 0] >= TSP_CLIP_SECONDS - 1e-6)
        assert np.all((lab.action_labels >= 0) == (lab.region_labels == REGION_ACTION))


def test_real_valid_segment_count(shared_data):
    d = shared_data / "activitynet_v1.3/tsp"
    gt = d / "activitynet_v1-3_valid_tsp_groundtruth.csv"
    labels = build_video_labels(gt, d / "activitynet_v1-3_action_label_mapping.json")
    # Independent count with the csv module: rows at least one clip long inside the video.
    with open(gt, newline="") as f:
        expected = sum(
            min(float(r["t-end"]), float(r["video-duration"])) - max(float(r["t-start"]), 0.0)
            >= 16 / 15 for r in csv.DictReader(f))
    assert sum(len(v.segments) for v in labels.values()) == expected
    assert len(labels) == 4926 and all(k.startswith("v_") for k in labels)
