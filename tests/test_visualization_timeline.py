"""Timeline image: lane assignment, event parsing, layout without overlaps, rendered PNG."""
import itertools

import numpy as np
import pytest
from PIL import Image

from captioner_jax.visualization import timeline
from captioner_jax.visualization.events import Event, assign_lanes, parse_events


def _overlaps(a, b, gap=0.0):
    return a[0] < b[1] + gap and b[0] < a[1] + gap


def test_assign_lanes_separates_overlapping_intervals():
    intervals = [(0, 10), (5, 15), (12, 20), (10, 11), (0, 30), (21, 25)]
    lanes = assign_lanes(intervals)
    # Worked by hand: sorted by start -> (0,10)->0, (0,30)->1, (5,15)->2, (10,11)->0,
    # (12,20)->0, (21,25)->0.
    assert lanes == [0, 2, 0, 0, 1, 0]
    for i, j in itertools.combinations(range(len(intervals)), 2):
        if lanes[i] == lanes[j]:
            assert not _overlaps(intervals[i], intervals[j]), (i, j)
    # Minimum: at t=7 three intervals overlap, so three lanes are needed and used.
    assert max(lanes) + 1 == 3


def test_assign_lanes_gap_and_touching():
    assert assign_lanes([(0, 10), (10, 20)]) == [0, 0]  # touching intervals share a lane
    assert assign_lanes([(0, 10), (10, 20)], gap=1.0) == [0, 1]
    assert assign_lanes([(0, 10), (11, 20)], gap=1.0) == [0, 0]
    assert assign_lanes([]) == []
    with pytest.raises(ValueError, match="interval 0"):
        assign_lanes([(5, 1)])


def test_assign_lanes_random_is_valid_and_minimal():
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 100, 60)
    intervals = [(s, s + d) for s, d in zip(starts, rng.uniform(0, 30, 60))]
    lanes = assign_lanes(intervals)
    for i, j in itertools.combinations(range(len(intervals)), 2):
        if lanes[i] == lanes[j]:
            assert not _overlaps(intervals[i], intervals[j])
    # Lower bound: the largest number of intervals covering one point (at some start).
    depth = max(sum(a <= s < b for a, b in intervals) for s, _ in intervals)
    assert max(lanes) + 1 == depth


def test_parse_events_skips_bad_and_swaps_reversed(caplog):
    raw = [
        {"timestamp": [1.0, 2.0], "sentence": " A man talks. "},
        {"timestamp": [61.29, 60.71], "sentence": "reversed"},
        {"timestamp": [1.0], "sentence": "one time"},
        {"timestamp": [0, float("nan")], "sentence": "nan"},
        {"timestamp": [0, 1], "sentence": None},
        "not an object",
    ]
    events = parse_events(raw, "pred.json:v_x")
    assert events == [Event(1.0, 2.0, "A man talks.", 0), Event(60.71, 61.29, "reversed", 1)]
    assert caplog.text.count("pred.json:v_x: event") == 5  # 1 swap + 4 skipped, all named


def test_layout_never_overlaps_captions():
    """Crowded events: in every lane, bar+caption extents are disjoint (with the gap)."""
    rng = np.random.default_rng(1)
    events = []
    for i in range(25):
        s = float(rng.uniform(0, 100))
        events.append(Event(s, s + float(rng.uniform(0, 20)), "word " * int(rng.integers(1, 20)),
                            i))
    measure = lambda text: (7.0 * len(text), 12.0)  # a fixed-pitch font, 7 px per char
    x_of = lambda t: 100 + 10.0 * t  # 0..120 s -> 100..1300 px
    section = timeline.layout_section(events, "Predicted", ("#000",), x_of, 100, 1300, measure,
                                      15.0, 40)
    assert len(section.lane_heights) == max(p.lane for p in section.placed) + 1
    for a, b in itertools.combinations(section.placed, 2):
        if a.lane == b.lane:
            assert not _overlaps(a.extent, b.extent, gap=timeline._TEXT_GAP - 1e-9)
    for p in section.placed:
        assert 100 <= p.text_x0 and p.text_x0 + p.text_w <= 1300 + 1e-9  # inside the axis
        assert all(len(line) <= max(40, int((p.bar_x1 - p.bar_x0) / 7.0)) for line in p.lines)


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float64)


@pytest.fixture(scope="module")
def events():
    pred = [
        {"timestamp": [0.0, 30.5], "sentence": "A man stands in a kitchen and talks."},
        {"timestamp": [10.0, 60.0], "sentence": "He cuts vegetables on a board."},
        {"timestamp": [55.0, 62.0], "sentence": "He adds salt $5 and $6."},
        {"timestamp": [100.0, 130.0], "sentence": "He serves the soup past the end."},
    ]
    refs = {"val_1": [{"timestamp": [0.0, 28.0], "sentence": "A chef introduces the dish."}],
            "val_2": [{"timestamp": [2.0, 120.0], "sentence": "A man cooks soup."}]}
    return pred, refs


def test_render_timeline_png_size_and_content(tmp_path, events):
    pred, refs = events
    out = tmp_path / "sub" / "t.png"
    size = timeline.render_timeline("v_demo", 120.0, pred, refs, str(out), width_px=900)
    assert out.is_file() and size[0] == 900
    img = _pixels(out)
    assert img.shape[:2] == (size[1], size[0])
    assert img.std() > 10  # not blank
    # The predicted-bar colours are there (first event's blue #1f77b4 bar).
    blue = np.all(np.abs(img - np.array([31, 119, 180])) < 40, axis=-1)
    assert blue.sum() > 500
    # More lanes (pred overlaps) -> taller than a single-event timeline.
    small = timeline.render_timeline("v", 120.0, pred[:1], None, str(tmp_path / "s.png"),
                                     width_px=900)
    assert small[1] < size[1]
    assert not list(tmp_path.glob("**/.tmp-*"))  # atomic write left nothing behind


def test_render_timeline_with_thumbnails(tmp_path, events):
    pred, _ = events
    frames = np.zeros((4, 30, 40, 3), np.uint8)
    frames[..., 0] = 255  # pure red thumbnails
    out = tmp_path / "thumbs.png"
    w, h = timeline.render_timeline("v", 120.0, pred, None, str(out), frames=frames,
                                    frame_times=[10, 40, 70, 100], width_px=800)
    _, h_plain = timeline.render_timeline("v", 120.0, pred, None, str(tmp_path / "p.png"),
                                          width_px=800)
    assert h > h_plain  # the strip adds height
    img = _pixels(out)
    red = np.all(np.abs(img - np.array([255, 0, 0])) < 30, axis=-1)
    assert red.sum() > 4 * 0.8 * 64 * 64 * 40 / 30  # four thumbnails, ~64 px tall
    with pytest.raises(ValueError, match="uint8"):
        timeline.render_timeline("v", 10.0, pred, None, str(out), frames=frames.astype(float),
                                 frame_times=[1, 2, 3, 4])


def test_render_timeline_empty_and_unknown_duration(tmp_path):
    w, h = timeline.render_timeline("v_empty", None, [], [], str(tmp_path / "e.png"))
    assert (w, h) == Image.open(tmp_path / "e.png").size
