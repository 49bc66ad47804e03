"""Clicking an event seeks to its exact start (issue 14 point 6): the page's time attributes
read back as the same doubles (they were rounded to 3 decimals, so the seek landed before
the start and no caption showed), and a frame-snapped seek still counts as the target."""
from __future__ import annotations

import re

from captioner_jax.visualization.html_page import write_caption_page


def test_event_times_survive_the_page_exactly(tmp_path):
    start, end = 12.3456789012, 15.0004999
    out = tmp_path / "p.html"
    write_caption_page(str(out), "v.mp4", "v_x", 20.0,
                       [{"timestamp": [start, end], "sentence": "a dog runs."}])
    text = out.read_text(encoding="utf-8")
    starts = {float(s) for s in re.findall(r'data-start="([^"]+)"', text)}
    ends = {float(s) for s in re.findall(r'data-end="([^"]+)"', text)}
    assert starts == {start} and ends == {end}  # list item and timeline block
    # The seek handler keeps the target when the browser snaps to an earlier frame.
    assert "seekTargetS = t;" in text and "update(videoTime())" in text


def test_curves_overview_keeps_models_apart_and_shows_what_matters(tmp_path):
    import json as _json

    from captioner_jax.visualization.curves import plot_overview

    enc, cap = tmp_path / "sa_tsp" / "metrics.jsonl", tmp_path / "captioner" / "metrics.jsonl"
    for path, rows in ((enc, [{"step": s, "split": "train", "loss": 2.0 / s, "lr": 0.1,
                               "grad_norm": 1.0, "zz_internal": 3} for s in (1, 2, 3)]),
                       (cap, [{"step": 5, "split": "train", "loss": 9.0, "loss_caption": 4.0,
                               "lr": 1e-4, "grad_norm": 2.0},
                              {"step": 5, "split": "val", "METEOR": 1.5, "SODA_c": 0.7,
                               "CIDEr": 3.0, "tiou_0.3": {"METEOR": 1.0}}])):
        path.parent.mkdir()
        path.write_text("\n".join(_json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "curves.png"
    plotted = plot_overview([str(enc), str(cap)], str(out))
    assert plotted == {"sa_tsp/metrics": ["loss", "lr"],
                       "captioner/metrics": ["loss", "loss_caption", "lr", "METEOR", "CIDEr",
                                             "SODA_c"]}
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_plays_after_its_folder_moved(tmp_path):
    import shutil
    import urllib.parse

    from captioner_jax.visualization.gallery import render_video_result
    from tests.shard_fixtures import write_mp4

    video = tmp_path / "videos" / "my clip.mp4"
    video.parent.mkdir()
    write_mp4(video, 0, 20)
    render_video_result(str(tmp_path / "out" / "html"), "my clip",
                        [{"timestamp": [0.1, 0.5], "sentence": "a thing."}], duration_s=0.66,
                        video_path=str(video), num_thumbnails=0)
    shutil.move(tmp_path / "out", tmp_path / "elsewhere")
    text = (tmp_path / "elsewhere" / "html" / "my_clip.html").read_text(encoding="utf-8")
    sources = re.findall(r'<source src="([^"]+)">', text)
    assert sources[0] == "../../videos/my%20clip.mp4"  # relative: moves with its videos
    assert sources[1].startswith("file://")  # absolute: survives moving the output alone
    assert urllib.parse.unquote(urllib.parse.urlparse(sources[1]).path) == str(video.resolve())


def test_unplayable_video_message_is_on_the_page(tmp_path):
    out = tmp_path / "p.html"
    write_caption_page(str(out), "clip.avi", "v_avi", 5.0,
                       [{"timestamp": [0, 1], "sentence": "x."}])
    text = out.read_text(encoding="utf-8")
    box = re.search(r'<div id="dvc-video-error" class="novideo" hidden>(.*?)</div>', text)
    assert box and "clip.avi" in box.group(1) and "libx264" in box.group(1)
    assert 'addEventListener("error", showError)' in text
