"""Fault corpus (issue 13, points 2 and 4) for the data side: stale shards after an input
changed, truncated and tiny videos. Tiny generated mp4s, no model.

Each case: the bad input, then the expected outcome.
"""
import json
import os

import numpy as np
import pytest

from data_prep.infra.fingerprint import (
    FingerprintMismatchError,
    describe_changes,
    file_signatures,
    reconcile,
)
from data_prep.labels.types import VideoLabels
from data_prep.shards.index import read_index
from data_prep.shards.writer import write_shards
from data_prep.video import decode_video, truncation_problem
from tests.shard_fixtures import HEIGHT, SRC_FPS, WIDTH, make_labels, source_frame, write_mp4


def _write_faststart_mp4(path, v, num_frames):
    """An mp4 with its index (moov) at the front: cutting it keeps the stated duration."""
    import av

    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=SRC_FPS)
        s.width, s.height, s.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for j in range(num_frames):
            for p in s.encode(av.VideoFrame.from_ndarray(source_frame(v, j), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """v_full (3 s), v_cut (the same cut in half: states 3 s), v_short (0.33 s: 5 frames at
    15 fps), v_one (1 source frame)."""
    root = tmp_path_factory.mktemp("fault_videos")
    _write_faststart_mp4(root / "v_full.mp4", 1, 90)
    data = (root / "v_full.mp4").read_bytes()
    (root / "v_cut.mp4").write_bytes(data[: len(data) // 2])
    write_mp4(root / "v_short.mp4", 2, 10)
    write_mp4(root / "v_one.mp4", 3, 1)
    return root


def _items(root, names, concepts=None):
    items = []
    for name in names:
        lab = make_labels(name, 3.0)
        if concepts is not None:
            lab = VideoLabels(lab.video_id, lab.duration, lab.segments, lab.action_labels,
                              lab.region_labels, lab.event_segments,
                              [np.asarray(c, np.int32) for c in concepts])
        items.append((str(root / f"{name}.mp4"), lab))
    return items


# ----------------------------------------------------------------------------- point 4
def test_truncated_video_is_detected_against_the_stated_duration(videos):
    full = decode_video(str(videos / "v_full.mp4"), fps=15)
    cut = decode_video(str(videos / "v_cut.mp4"), fps=15)
    assert full.declared_duration == pytest.approx(3.0) and full.frames.shape[0] == 45
    assert cut.declared_duration == pytest.approx(3.0) and cut.duration < 2.0
    assert truncation_problem("x", full.duration, full.declared_duration) is None
    problem = truncation_problem("v_cut.mp4", cut.duration, cut.declared_duration)
    assert "v_cut.mp4" in problem and "states 3.00 s" in problem
    # The stated tolerance: max(0.5 s, 2 %).
    assert truncation_problem("x", 2.55, 3.0) is None
    assert truncation_problem("x", 2.45, 3.0) is not None
    assert truncation_problem("x", 98.1, 100.0) is None and truncation_problem("x", 97.9, 100.0)


def test_truncated_and_tiny_videos_are_reported_or_skipped_under_strict(videos, tmp_path):
    items = _items(videos, ["v_full", "v_cut", "v_short", "v_one"])
    report = write_shards(items, str(tmp_path / "lenient"), 1, fps=15.0, resize=None,
                          min_frames=16, show_progress=False)
    assert report["num_written"] == 3
    # One source frame at 30 fps gives no frame at 15 fps: skipped, with the reason.
    assert [(s["video_id"], "no frames at 15.0 fps" in s["error"])
            for s in report["skipped"]] == [("v_one", True)]
    warned = {}
    for w in report["warnings"]:
        warned.setdefault(w["video_id"], []).append(w["warning"])
    assert set(warned) == {"v_cut", "v_short"} and report["num_warnings"] == 3
    assert "truncated" in warned["v_cut"][0] and "shorter than one clip" in warned["v_cut"][1]
    assert warned["v_short"] == [f"{videos / 'v_short.mp4'}: shorter than one clip (5 frames "
                                 "at 15 fps < 16; 0.33 s)"]
    saved = json.loads((tmp_path / "lenient" / "report.json").read_text())
    assert saved["warnings"] == report["warnings"]

    strict = write_shards(items, str(tmp_path / "strict"), 1, fps=15.0, resize=None,
                          min_frames=16, strict=True, show_progress=False)
    assert strict["num_written"] == 1 and strict["num_warnings"] == 0
    assert strict["skipped"][0]["video_id"] == "v_cut"
    assert {s["video_id"] for s in strict["skipped"]} == {"v_cut", "v_short", "v_one"}
    assert all(s["error"].endswith("(strict)") for s in strict["skipped"][:2])


# ----------------------------------------------------------------------------- point 2
def test_changed_video_file_or_new_concepts_rewrite_the_shard(videos, tmp_path, caplog):
    """Resume keeps a shard only while its video files and labels are the ones it holds."""
    root = tmp_path / "videos"
    root.mkdir()
    write_mp4(root / "v_a.mp4", 1, 30)
    write_mp4(root / "v_b.mp4", 2, 30)
    out = str(tmp_path / "shards")

    def run(concepts=None):
        return write_shards(_items(root, ["v_a", "v_b"], concepts), out, 2, fps=15.0,
                            resize=None, show_progress=False)

    first = run([[1], [2]])
    assert len(first["written_shards"]) == 2
    assert len(run([[1], [2]])["resumed_shards"]) == 2  # nothing changed: resumed

    # The video file of v_b is replaced by a longer one (same path): its shard is redone.
    write_mp4(root / "v_b.mp4", 2, 60)
    os.utime(root / "v_b.mp4", (1e9, 1e9))  # a different mtime even on coarse clocks
    again = run([[1], [2]])
    assert again["written_shards"] == [first["shards"][1]]
    assert read_index(first["shards"][1])["records"][0]["num_frames"] == 30
    assert "video file(s) changed" in caplog.text

    # A new concept vocabulary: same files, other concept ids -> both shards rewritten with
    # the new labels (never the old ones kept).
    new = run([[7, 8], [9]])
    assert len(new["written_shards"]) == 2
    for shard in new["shards"]:
        labels = read_index(shard)["records"][0]["labels"]
        assert labels["event_concepts"] == [[7, 8], [9]]
    assert "labels changed" in caplog.text


def test_fingerprint_mismatch_says_what_changed_and_force_redoes(tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"1")
    b.write_bytes(b"22")
    old = {"videos": file_signatures([str(a)]), "encoder": {"sha": "x" * 64}, "fps": 15.0}
    removed = []
    reconcile(str(tmp_path), old, force=False, has_outputs=False,
              remove_outputs=lambda: removed.append(1), what="captions")
    reconcile(str(tmp_path), old, force=False, has_outputs=True,
              remove_outputs=lambda: removed.append(1), what="captions")  # same: resume
    a.write_bytes(b"111")
    new = {"videos": file_signatures([str(a), str(b)]), "encoder": {"sha": "y" * 64},
           "fps": 16.0}
    changes = describe_changes(old, new)
    assert any(c.startswith("videos: changed") and str(a) in c for c in changes)
    assert f"videos: new: {b}" in changes and "encoder.sha differs" in changes
    assert "fps: 15.0 -> 16.0" in changes
    with pytest.raises(FingerprintMismatchError, match=r"captions made from other inputs.*"
                       r"fps: 15.0 -> 16.0.*--config.force=True"):
        reconcile(str(tmp_path), new, force=False, has_outputs=True,
                  remove_outputs=lambda: removed.append(1), what="captions")
    assert not removed
    reconcile(str(tmp_path), new, force=True, has_outputs=True,
              remove_outputs=lambda: removed.append(1), what="captions")
    assert removed == [1]
    assert json.loads((tmp_path / "fingerprint.json").read_text()) == json.loads(
        json.dumps(new))


# ----------------------------------------------------------------------------- caption_video
ENCODER_CONFIG = '''
import ml_collections
def get_config():
    return ml_collections.ConfigDict({"stage": "fault_extract", "init_from": "", "shards": ""})
'''
CAPTIONER_CONFIG = '''
import ml_collections
def get_config():
    return ml_collections.ConfigDict({
        "stage": "captioner_predict", "init_from": "",
        "data": {"features": [{"name": "sa_tsp", "path": "", "format": "npy"}]},
        "predict": {"captions": ""}, "eval": {"references": []}})
'''


@pytest.fixture
def fake_caption_stages(tmp_path, monkeypatch):
    """caption_video's model stages replaced by fakes (no compilation): extraction records
    the frame counts of the shard it is given, prediction writes one event per video."""
    import glob
    import sys
    import types

    from data_prep.orchestration import registry

    seen = []

    def extract(config, workdir):
        for shard in sorted(glob.glob(config.shards)):
            seen.append({r["video_id"]: r["num_frames"] for r in read_index(shard)["records"]})

    def predict(config, workdir):
        split = json.loads(open(config.predict.captions).read())
        os.makedirs(os.path.join(workdir, "predictions"), exist_ok=True)
        with open(os.path.join(workdir, "predictions", "videos.json"), "w") as f:
            json.dump({"results": {v: [{"timestamp": [0.0, 1.0], "sentence": "a"}]
                                   for v in split}}, f)

    def geometry(config, init_from):
        return types.SimpleNamespace(fps=15.0, resize=(HEIGHT, WIDTH), clip_length=16)

    def render(folder, video_id, events, **kwargs):
        return {"video_id": video_id, "num_predicted": len(events), "html": folder}

    module = types.ModuleType("fault_caption_fakes")
    module.extract, module.predict, module.geometry, module.render = (
        extract, predict, geometry, render)
    monkeypatch.setitem(sys.modules, "fault_caption_fakes", module)
    monkeypatch.setitem(registry.STAGES, "fault_extract", "fault_caption_fakes:extract")
    monkeypatch.setitem(registry.STAGES, "captioner_predict", "fault_caption_fakes:predict")
    monkeypatch.setitem(registry.HELPERS, "encoder_geometry", "fault_caption_fakes:geometry")
    monkeypatch.setitem(registry.HELPERS, "render_video_result", "fault_caption_fakes:render")
    (tmp_path / "enc.py").write_text(ENCODER_CONFIG)
    (tmp_path / "cap.py").write_text(CAPTIONER_CONFIG)
    for name, file in (("encoder", "params.msgpack"), ("captioner", "vocab.json")):
        (tmp_path / name).mkdir()
        (tmp_path / name / file).write_text("v1")
    return seen


def _caption_config(tmp_path, video, force=False):
    import ml_collections

    return ml_collections.ConfigDict({
        "stage": "caption_video", "video": str(video), "references": [], "force": force,
        "strict": False,
        "encoder": {"config": str(tmp_path / "enc.py"), "init_from": str(tmp_path / "encoder")},
        "captioner": {"config": str(tmp_path / "cap.py"),
                      "init_from": str(tmp_path / "captioner"), "feature_source": "sa_tsp"}})


def test_caption_video_rerun_after_the_video_or_encoder_changed(tmp_path, fake_caption_stages):
    from data_prep.orchestration.caption_video import caption_video

    seen, out = fake_caption_stages, str(tmp_path / "out")
    video = tmp_path / "clip.mp4"
    write_mp4(video, 1, 60)  # 2 s: 30 frames at 15 fps
    assert caption_video(_caption_config(tmp_path, video), out) == {"captioned": 1, "skipped": 0}
    assert caption_video(_caption_config(tmp_path, video), out)["captioned"] == 1  # resumed
    assert seen == [{"clip": 30}, {"clip": 30}]
    assert json.loads((tmp_path / "out" / "shards" / "report.json").read_text())[
        "resumed_shards"]

    write_mp4(video, 1, 90)  # the user replaced the video: 3 s
    os.utime(video, (1e9, 1e9))
    (tmp_path / "encoder" / "params.msgpack").write_text("v2 retrained")
    with pytest.raises(FingerprintMismatchError) as err:
        caption_video(_caption_config(tmp_path, video), out)
    message = str(err.value)
    assert "videos: changed (size, mtime" in message and str(video) in message
    assert "encoder.files: changed" in message and "--config.force=True" in message
    assert len(seen) == 2  # nothing ran on the stale outputs

    caption_video(_caption_config(tmp_path, video, force=True), out)
    assert seen[-1] == {"clip": 45}  # the new video's frames, not the old features
    caption_video(_caption_config(tmp_path, video), out)  # and now it resumes again
