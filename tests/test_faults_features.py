"""Fault corpus (issue 13, point 5): corrupt feature files (NaN, wrong width, truncated .npy,
missing) are listed in one report per stage, counted, and stop the stage under the strict
flag. Tiny .npy files; the stage wiring is checked on captioner_predict's entry point."""
import json

import ml_collections
import numpy as np
import pytest

from captioner_jax.data.feature_report import (
    REPORT_NAME,
    check_stage_features,
    scan_features,
)
from captioner_jax.data.features import CorruptFeatureError, FeatureLoader, FeatureSource


@pytest.fixture
def feature_dir(tmp_path):
    """v_good0, v_good1: (6, 4) finite; v_nan: a NaN; v_wide: 5 channels; v_cut: a
    truncated .npy; v_missing: no file."""
    folder = tmp_path / "feats"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for vid in ("v_good0", "v_good1", "v_nan", "v_wide", "v_cut"):
        arr = rng.normal(size=(6, 5 if vid == "v_wide" else 4)).astype(np.float32)
        if vid == "v_nan":
            arr[2, 1] = np.nan
        np.save(folder / f"{vid}.npy", arr)
    data = (folder / "v_cut.npy").read_bytes()
    (folder / "v_cut.npy").write_bytes(data[: len(data) - 40])
    return folder


IDS = ["v_good0", "v_nan", "v_wide", "v_cut", "v_missing", "v_good1"]


def _loader(folder):
    return FeatureLoader([FeatureSource(name="f", path=str(folder))], num_steps=8,
                         zero_fill_missing=True)


def test_every_bad_file_is_named_with_its_reason(feature_dir, tmp_path):
    problems = scan_features(_loader(feature_dir), IDS)
    by_video = {p["video_id"]: p for p in problems}
    assert list(by_video) == ["v_nan", "v_wide", "v_cut", "v_missing"]  # in split order
    assert "non-finite" in by_video["v_nan"]["error"]
    assert "5 channels, source 'f' has 4" in by_video["v_wide"]["error"]
    assert "unreadable .npy" in by_video["v_cut"]["error"]
    assert str(feature_dir / "v_cut.npy") in by_video["v_cut"]["error"]  # names the file
    assert by_video["v_missing"]["kind"] == "missing"
    assert "zero-filled" in by_video["v_missing"]["error"]
    assert all(p["file"].startswith(str(feature_dir)) for p in problems)

    data = ml_collections.ConfigDict({"strict_features": False})
    count, corrupt = check_stage_features(_loader(feature_dir), {"val": IDS}, str(tmp_path),
                                          "captioner_predict", data)
    assert corrupt == {"v_nan", "v_wide", "v_cut"}
    report = json.loads((tmp_path / REPORT_NAME).read_text())
    assert count == report["num_problems"] == 4 and report["videos_checked"] == 6
    assert report["stage"] == "captioner_predict"
    assert {p["split"] for p in report["problems"]} == {"val"}

    data.strict_features = True
    with pytest.raises(CorruptFeatureError, match=f"4 videos.*{REPORT_NAME}"):
        check_stage_features(_loader(feature_dir), {"val": IDS}, str(tmp_path),
                             "captioner_predict", data)


def test_clean_features_write_an_empty_report(feature_dir, tmp_path):
    data = ml_collections.ConfigDict({"strict_features": True})
    assert check_stage_features(_loader(feature_dir), {"train": ["v_good0"], "val": ["v_good1"]},
                                str(tmp_path), "captioner_train", data) == (0, set())
    assert json.loads((tmp_path / REPORT_NAME).read_text())["problems"] == []
