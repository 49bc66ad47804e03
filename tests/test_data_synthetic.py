"""Synthetic data set: formats, determinism, and that events are visible in pixels."""
import json
import math

import av
import numpy as np
import pytest

from data_prep.annotations.activitynet_captions import read_captions
from data_prep.annotations.tsp_csv import (
    group_by_video,
    read_label_mapping,
    read_tsp_groundtruth,
    read_tsp_metadata,
)
from data_prep.synthetic import renderer
from data_prep.synthetic.attributes import COLORS, EventSpec, VideoSpec
from data_prep.synthetic.caption_grammar import describe_event
from data_prep.synthetic.generator import DatasetOptions, sample_specs, write_annotations
from data_prep.synthetic.scene_sampler import SceneOptions


def test_layout_and_formats(synthetic_dataset):
    root = synthetic_dataset
    train = read_captions(root / "captions/train.json", clip_to_duration=False)
    val1 = read_captions(root / "captions/val_1.json", clip_to_duration=False)
    val2 = read_captions(root / "captions/val_2.json", clip_to_duration=False)
    assert (len(train), len(val1)) == (8, 4)
    assert list(val1) == list(val2)
    assert not set(train) & set(val1)
    assert any(a.sentences != b.sentences for a, b in zip(val1.values(), val2.values()))
    for vid in val1:
        np.testing.assert_array_equal(val1[vid].timestamps, val2[vid].timestamps)
    for vid, v in {**train, **val1}.items():
        assert vid.startswith("v_") and len(vid) == 13
        assert 8.0 <= v.duration <= 12.0 and 1 <= len(v.sentences) <= 4
        assert all(s.startswith(" ") for s in v.sentences[1:])
        assert not v.sentences[0].startswith(" ") and v.sentences[0].endswith(".")
        assert np.all(v.timestamps[:, 1] > v.timestamps[:, 0])
        assert np.all(v.timestamps[:, 1] <= v.duration + 1e-9)
        assert (root / "videos" / f"{vid}.mp4").is_file()

    actions = read_label_mapping(root / "tsp/action_label_mapping.json")
    assert len(actions) >= 8
    assert read_label_mapping(root / "tsp/temporal_region_label_mapping.json") == [
        "Action", "No action"]
    for split, caps in (("train", train), ("valid", val1)):
        gt = group_by_video(read_tsp_groundtruth(root / f"tsp/{split}_tsp_groundtruth.csv"))
        meta = read_tsp_metadata(root / f"tsp/{split}_metadata.csv")
        assert sorted("v_" + k for k in gt) == sorted(caps) == sorted(meta)
        for name, rows in gt.items():
            vid = "v_" + name
            acts = sorted((r.t_start, r.t_end) for r in rows if r.region_label == "Action")
            assert acts == sorted(map(tuple, caps[vid].timestamps.tolist()))
            assert all(r.action_label in actions for r in rows if r.region_label == "Action")
            # Action rows and background rows together tile [0, duration] without holes.
            covered = np.zeros(int(rows[0].video_duration * 100))
            for r in rows:
                covered[int(round(r.t_start * 100)):int(round(r.t_end * 100))] += 1
            assert covered.min() >= 1
            bg = [r for r in rows if r.region_label == "No action"]
            assert all(r.action_label == "" for r in bg)
            assert rows[0].filename == vid + ".mp4"
            assert meta[vid].video_frames == rows[0].video_frames
            assert math.isclose(meta[vid].video_duration, meta[vid].video_frames / 15.0)


def test_mp4_decodes_with_metadata_frame_count(synthetic_dataset):
    meta = read_tsp_metadata(synthetic_dataset / "tsp/valid_metadata.csv")
    vid, m = next(iter(meta.items()))
    with av.open(str(synthetic_dataset / "videos" / f"{vid}.mp4")) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(stream)]
    assert len(frames) == m.video_frames
    assert frames[0].shape == (64, 64, 3)
    # Compare with a fresh render of the same spec: H.264 at crf 20 stays close.
    events = json.loads((synthetic_dataset / "synthetic_events.json").read_text())
    assert events["videos"][vid]["num_frames"] == m.video_frames
    spec = next(s for s in sample_specs(_tiny_options()) if s.video_id == vid)
    rendered = renderer.render_frames(spec).astype(np.float32)
    assert np.abs(np.stack(frames).astype(np.float32) - rendered).mean() < 6.0


def _tiny_options(seed=0, num_train=8, num_val=4):
    return DatasetOptions(num_train=num_train, num_val=num_val, seed=seed,
                          scene=SceneOptions(min_duration_s=8.0, max_duration_s=12.0))


def test_same_seed_same_bytes(tmp_path):
    files = ("captions/train.json", "captions/val_1.json", "captions/val_2.json",
             "tsp/train_tsp_groundtruth.csv", "tsp/valid_metadata.csv", "synthetic_events.json")
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        opts = _tiny_options(seed)
        write_annotations(tmp_path / name, sample_specs(opts), opts)
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert (tmp_path / "a/captions/train.json").read_bytes() != (
        tmp_path / "c/captions/train.json").read_bytes()
    # A video depends only on (seed, index), not on the size of the data set.
    small = sample_specs(_tiny_options(3, num_train=2, num_val=1))
    assert small == sample_specs(_tiny_options(3))[:3]


def _event(action, **kw):
    base = dict(start=1.0, end=5.0, count=1, size="big", color="red", shape="square",
                action=action, speed="slow", positions=((0.5, 0.5),), phase=0.0)
    base.update(kw)
    return EventSpec(**base)


def _masks(event, num_frames=90):
    spec = VideoSpec("v_test", num_frames, 15.0, 64, 64, 7, (event,))
    frames = renderer.render_frames(spec)
    color = np.array(COLORS[event.color])
    return np.all(np.abs(frames.astype(int) - color) <= 3, axis=-1)  # [T, H, W]


def test_objects_only_during_event():
    mask = _masks(_event("move_right"))
    area = mask.sum((1, 2))
    assert area[:15].max() == 0 and area[75:].max() == 0  # before 1 s, from 5 s on
    assert area[15:75].min() > 50  # big square: (0.15 * 0.85 * 2 * 64)^2 ~ 267 px


@pytest.mark.parametrize("action,check", [
    ("move_right", lambda m: _centroid(m[20])[1] < _centroid(m[40])[1]),
    ("move_left", lambda m: _centroid(m[20])[1] > _centroid(m[40])[1]),
    ("move_down", lambda m: _centroid(m[20])[0] < _centroid(m[40])[0]),
    ("move_up", lambda m: _centroid(m[20])[0] > _centroid(m[40])[0]),
    ("grow", lambda m: m[16].sum() < m[30].sum()),
    ("shrink", lambda m: m[16].sum() > m[30].sum()),
    ("blink", lambda m: m[15:75].sum((1, 2)).min() == 0 < m[15:75].sum((1, 2)).max()),
    ("rotate", lambda m: (m[15] != m[17]).sum() > 20
     and np.allclose(_centroid(m[15]), _centroid(m[17]), atol=1.0)),
])
def test_action_visible_in_pixels(action, check):
    assert check(_masks(_event(action)))


def _centroid(mask):
    ys, xs = np.nonzero(mask)
    return np.array([ys.mean(), xs.mean()])


def test_quick_is_faster_than_slow():
    slow = _masks(_event("move_right", speed="slow"))
    quick = _masks(_event("move_right", speed="quick"))
    shift = lambda m: _centroid(m[25])[1] - _centroid(m[20])[1]  # noqa: E731
    assert shift(quick) > 2 * shift(slow) > 0


def test_count_and_size_visible():
    one = _masks(_event("rotate", count=1, size="small", shape="cross"))
    three = _masks(_event("rotate", count=3, size="small", shape="cross",
                          positions=((0.2, 0.5), (0.5, 0.5), (0.8, 0.5))))
    big = _masks(_event("rotate", count=1, size="big", shape="cross"))
    assert 2.5 < three[30].sum() / one[30].sum() < 3.5
    assert big[30].sum() > 2.5 * one[30].sum()


def test_caption_names_every_attribute():
    rng = np.random.default_rng(0)
    for shape, count in (("cross", 2), ("triangle", 1), ("circle", 3)):
        ev = _event("blink", count=count, shape=shape, color="purple", speed="quick")
        for _ in range(20):
            s = describe_event(ev, rng).lower()
            assert "purple" in s and shape[:-1] in s and s.endswith(".")
            assert any(w in s for w in ("big", "large", "huge"))
            assert any(w in s for w in ("quickly", "rapidly", "swiftly", "fast"))
            assert any(w in s for w in ("blink", "flash", "flicker"))
            assert (shape + ("es" if shape == "cross" else "s") in s) == (count > 1)
