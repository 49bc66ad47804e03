"""Annotation readers: ActivityNet Captions quirks, TSP CSVs, v1.3 JSON; clear errors."""
import csv
import json

import numpy as np
import pytest

from data_prep.annotations.activitynet_captions import read_captions
from data_prep.annotations.activitynet_v13 import read_activitynet_v13
from data_prep.annotations.errors import AnnotationError
from data_prep.annotations.tsp_csv import (
    group_by_video,
    read_label_mapping,
    read_tsp_groundtruth,
    read_tsp_metadata,
    write_tsp_groundtruth,
    write_tsp_metadata,
)


def test_real_train_quirks(shared_data):
    d = shared_data / "activitynet_captions"
    train = read_captions(d / "train.json", clip_to_duration=False)
    modified = read_captions(d / "train_modified.json", clip_to_duration=False, fix_reversed=False)
    assert len(train) == 10009 and sum(len(v.sentences) for v in train.values()) == 37421
    # Swapping the reversed segments reproduces PDVC's train_modified.json.
    for vid in train:
        np.testing.assert_array_equal(train[vid].timestamps, modified[vid].timestamps)
    np.testing.assert_array_equal(train["v_0bosp4-pyTM"].timestamps[
        np.argmin(np.abs(train["v_0bosp4-pyTM"].timestamps[:, 0] - 60.71))], [60.71, 61.29])
    with pytest.raises(AnnotationError, match="v_0bosp4-pyTM.*timestamps"):
        read_captions(d / "train.json", fix_reversed=False)
    clipped = read_captions(d / "train.json")
    raw = json.loads((d / "train.json").read_text())
    past = sum(max(t) > v["duration"] for v in raw.values() for t in v["timestamps"])
    assert past > 0
    assert sum(int((v.timestamps[:, 1] > v.duration).sum()) for v in train.values()) == past
    assert all((v.timestamps[:, 1] <= v.duration).all() for v in clipped.values())
    assert train["v_QOlSCBRmfWY"].sentences[1].startswith(" ")  # raw text kept


def test_caption_errors_name_file_video_field(tmp_path):
    path = tmp_path / "bad.json"
    good = {"duration": 10.0, "timestamps": [[1, 2]], "sentences": ["x."]}
    cases = {
        "v_a": ({"duration": 10.0, "timestamps": [[1, 2]], "sentences": []}, "timestamps"),
        "v_b": ({"duration": "ten", "timestamps": [], "sentences": []}, "duration"),
        "v_c": ({"duration": 10.0, "timestamps": [[1]], "sentences": ["x"]}, r"timestamps\[0\]"),
        "v_d": ({"timestamps": [], "sentences": []}, "duration"),
        "v_e": ({"duration": 10.0, "timestamps": [[1, 2]], "sentences": [3]}, r"sentences\[0\]"),
    }
    for vid, (entry, field) in cases.items():
        path.write_text(json.dumps({"v_ok": good, vid: entry}))
        with pytest.raises(AnnotationError, match=rf"bad\.json.*{vid}.*{field}"):
            read_captions(path)
        problems = []
        assert list(read_captions(path, on_error="skip", problems=problems)) == ["v_ok"]
        assert len(problems) == 1 and vid in problems[0]
    path.write_text("{not json")
    with pytest.raises(AnnotationError, match="bad.json.*not valid JSON"):
        read_captions(path)


def test_real_tsp_csvs(shared_data):
    d = shared_data / "activitynet_v1.3/tsp"
    rows = read_tsp_groundtruth(d / "activitynet_v1-3_valid_tsp_groundtruth.csv")
    assert len(rows) == 15401
    assert sum(r.region_label == "Action" for r in rows) == 7654
    assert all(r.action_label == "" for r in rows if r.region_label == "No action")
    assert len(group_by_video(rows)) == 4926
    labels = read_label_mapping(d / "activitynet_v1-3_action_label_mapping.json")
    assert len(labels) == 200 and {r.action_label for r in rows} - {""} <= set(labels)
    meta = read_tsp_metadata(d / "activitynet_v1-3_valid_metadata.csv")
    assert len(meta) == 4926 and all(k.startswith("v_") for k in meta)
    assert all("v_" + r.video_name in meta for r in rows[:100])


def test_tsp_roundtrip_and_errors(shared_data, tmp_path):
    d = shared_data / "activitynet_v1.3/tsp"
    rows = read_tsp_groundtruth(d / "activitynet_v1-3_valid_tsp_groundtruth.csv")[:50]
    write_tsp_groundtruth(tmp_path / "gt.csv", rows)
    assert read_tsp_groundtruth(tmp_path / "gt.csv") == rows
    meta = list(read_tsp_metadata(d / "activitynet_v1-3_valid_metadata.csv").values())[:20]
    write_tsp_metadata(tmp_path / "m.csv", meta)
    assert list(read_tsp_metadata(tmp_path / "m.csv").values()) == meta

    text = (tmp_path / "gt.csv").read_text().splitlines()
    fields = next(csv.reader([text[3]]))
    fields[1] = "abc"
    bad = "\n".join(text[:3] + [",".join(fields)] + text[4:])
    (tmp_path / "bad.csv").write_text(bad)
    with pytest.raises(AnnotationError, match=rf"bad\.csv.*{fields[0]}.*t-start"):
        read_tsp_groundtruth(tmp_path / "bad.csv")
    (tmp_path / "nocol.csv").write_text("video-name,t-start\nx,1\n")
    with pytest.raises(AnnotationError, match="nocol.csv.*missing column"):
        read_tsp_groundtruth(tmp_path / "nocol.csv")


def test_v13_layouts(shared_data, tmp_path):
    bsn = read_activitynet_v13(shared_data / "activitynet_v1.3/bsn/anet_anno_action.json")
    assert len(bsn) == 19228 and sum(len(v.labels) for v in bsn.values()) == 22152
    assert len({label for v in bsn.values() for label in v.labels}) == 200
    official = {"version": "VERSION 1.3", "taxonomy": [], "database": {
        "abc": {"duration": 20.5, "subset": "training", "annotations": [
            {"segment": [1.0, 5.5], "label": "Archery"}]}}}
    (tmp_path / "off.json").write_text(json.dumps(official))
    v = read_activitynet_v13(tmp_path / "off.json")["abc"]
    assert (v.duration, v.subset, v.labels) == (20.5, "training", ["Archery"])
    np.testing.assert_array_equal(v.segments, [[1.0, 5.5]])
    official["database"]["abc"]["annotations"][0]["segment"] = [5, 1]
    (tmp_path / "off.json").write_text(json.dumps(official))
    with pytest.raises(AnnotationError, match=r"off\.json.*abc.*annotations\[0\]\.segment"):
        read_activitynet_v13(tmp_path / "off.json")
