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
