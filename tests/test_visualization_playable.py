"""Videos browsers cannot play (issue 14 point 6): an AVI/MJPEG video gets an H.264 copy with
the same frame timestamps and size cap, and a frame strip; its page plays the copy and shows
the strip; with transcode=False the page shows the strip and the message at once. A
browser-playable mp4 gets neither."""
from __future__ import annotations

import re

import av
import numpy as np
import pytest

from captioner_jax.visualization.gallery import render_video_result
from captioner_jax.visualization.playable import browser_playable, strip_times

FPS, NUM_FRAMES, HEIGHT, WIDTH = 20, 30, 96, 128
EVENTS = [{"timestamp": [0.35, 0.9], "sentence": "a square moves."},
          {"timestamp": [0.1, 0.3], "sentence": "it starts."}]


def _write_mjpeg_avi(path) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=FPS)
        s.width, s.height, s.pix_fmt = WIDTH, HEIGHT, "yuvj420p"
        for j in range(NUM_FRAMES):
            img = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
            img[..., 0] = 8 * j
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _frame_times(path) -> tuple[list[float], tuple[int, int]]:
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        return [f.time for f in frames], (frames[0].height, frames[0].width)


@pytest.fixture(scope="module")
def avi(tmp_path_factory):
    path = tmp_path_factory.mktemp("videos") / "clip.avi"
    _write_mjpeg_avi(path)
    return path


def test_mjpeg_avi_gets_a_timed_copy_and_a_frame_strip(avi, tmp_path):
    from PIL import Image

    out = tmp_path / "html"
    info = render_video_result(str(out), "clip", EVENTS, video_path=str(avi),
                               num_thumbnails=0, max_height=48)
    assert (info["playable"], info["video_kind"]) == (False, "avi/mjpeg")
    copy = out / "clip_browser.mp4"
    assert info["browser_copy"] == str(copy) and browser_playable(str(copy)) == (True, "mp4/h264")
    # Same instants: every frame keeps its timestamp, so a seek target means the same frame.
    original_times, _ = _frame_times(avi)
    copy_times, size = _frame_times(copy)
    assert copy_times == original_times and len(copy_times) == NUM_FRAMES
    assert size == (48, 64)  # capped at max_height, aspect kept
    with av.open(str(copy)) as c:
        s = c.streams.video[0]
        assert float(s.duration * s.time_base) == pytest.approx(NUM_FRAMES / FPS)
    strip = Image.open(out / "clip_frames.png")
    assert strip.width > 2 * strip.height  # two events: two frames side by side
    text = (out / "clip.html").read_text(encoding="utf-8")
    assert re.findall(r'<source src="([^"]+)"', text) == ["clip_browser.mp4"]
    assert 'id="dvc-copy-note"' in text and "avi/mjpeg" in text
    assert re.search(r'<img id="dvc-strip" class="strip" [^>]*src="data:image/png;base64,', text)
    assert re.search(r'<div id="dvc-video-error" class="novideo" hidden>', text)


def test_no_transcode_shows_the_strip_and_the_message(avi, tmp_path):
    out = tmp_path / "html"
    info = render_video_result(str(out), "clip", EVENTS, video_path=str(avi),
                               num_thumbnails=0, transcode=False)
    assert info["browser_copy"] is None and not (out / "clip_browser.mp4").exists()
    assert (out / "clip_frames.png").is_file()
    text = (out / "clip.html").read_text(encoding="utf-8")
    assert re.findall(r'<source src="([^"]+)"', text)[0].endswith("clip.avi")
    box = re.search(r'<div id="dvc-video-error" class="novideo">(.*?)</div>', text)  # shown
    assert box and "avi/mjpeg" in box.group(1) and "frame strip" in box.group(1)
    assert 'id="dvc-strip"' in text


def test_playable_mp4_gets_no_copy(tmp_path):
    from tests.shard_fixtures import write_mp4

    video = tmp_path / "clip.mp4"
    write_mp4(video, 0, 10)
    info = render_video_result(str(tmp_path / "html"), "clip", EVENTS, video_path=str(video),
                               num_thumbnails=0)
    assert (info["playable"], info["browser_copy"], info["frame_strip"]) == (True, None, None)
    assert sorted(p.name for p in (tmp_path / "html").iterdir()) == ["clip.html",
                                                                     "clip_timeline.png"]


def test_strip_times():
    assert strip_times([(0.35, 0.9), (0.1, 0.3), (0.1, 0.3)], 1.5) == [0.2, 0.625]
    assert strip_times([(2.0, 9.0)], 4.0) == [4.0]  # clipped to the video
    assert strip_times([], 4.0, max_frames=4) == [0.5, 1.5, 2.5, 3.5]
    assert strip_times([(i, i + 1.0) for i in range(20)], 30.0, max_frames=3) == [0.5, 1.5, 2.5]
