"""What a browser can play, a playable copy of what it cannot, and a frame strip (PyAV).

Browsers play H.264 (8-bit 4:2:0), VP8/VP9/AV1 and Theora in MP4/QuickTime, WebM or Ogg;
they do not play AVI (MJPEG, MPEG-4 Part 2, ...), Matroska files named .mkv (Firefox refuses
them whatever the codec) or HEVC (only some browsers with hardware support).
`browser_playable` decides from the container and codec; `transcode_for_browser` writes an
H.264 MP4 copy with the source's frame timestamps (so an event's start is the same instant
in the copy: seek targets stay right); `write_frame_strip` writes a PNG of thumbnails with
their times, for when no copy is made (transcode switched off for a huge file).

Videos are read through `data_prep.video.container.open_container` (local or `gs://`);
outputs are written through `data_prep.infra.paths.local_output` (atomic, local or remote).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from fractions import Fraction

import av
import numpy as np

from captioner_jax.visualization.video_frames import sample_thumbnails
from data_prep.infra import paths
from data_prep.video.container import open_container

# Container (FFmpeg demuxer name), video codec (FFmpeg decoder name) pairs browsers play.
_MP4 = "mov,mp4,m4a,3gp,3g2,mj2"
_PLAYABLE_CODECS = {
    _MP4: {"h264", "vp9", "av1"},
    "matroska,webm": {"vp8", "vp9", "av1"},  # only as .webm (below)
    "ogg": {"theora", "vp8"},
}
# 10-bit or 4:4:4 H.264 (High 10 / High 4:4:4 profiles) does not play in browsers.
_H264_PIXEL_FORMATS = {"yuv420p", "yuvj420p"}


def browser_playable(path: str) -> tuple[bool, str]:
    """(whether browsers play `path`'s first video stream, a description like
    "avi/mjpeg"). Raises ValueError naming the file when it cannot be opened."""
    try:
        with open_container(path) as container:
            if not container.streams.video:
                raise ValueError(f"{os.fspath(path)}: no video stream")
            stream = container.streams.video[0]
            fmt = container.format.name
            codec = stream.codec_context.name
            pix_fmt = stream.codec_context.format.name if stream.codec_context.format else ""
    except (av.FFmpegError, OSError) as err:
        raise ValueError(f"{os.fspath(path)}: cannot open video: {err}") from err
    ext = paths.as_path(path).suffix.lower()
    kind = f"{ext.lstrip('.') or fmt}/{codec}"
    ok = codec in _PLAYABLE_CODECS.get(fmt, ())
    if fmt == "matroska,webm" and ext != ".webm":
        ok = False
    if codec == "h264" and pix_fmt not in _H264_PIXEL_FORMATS:
        ok, kind = False, f"{kind} ({pix_fmt})"
    return ok, kind


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def transcode_for_browser(src: str, dst: str, max_height: int = 480, crf: int = 23,
                          preset: str = "veryfast") -> dict:
    """Writes an H.264 (yuv420p) MP4 copy of `src`'s first video stream to `dst`, without
    sound, at most `max_height` pixels high (aspect kept, even sizes; never upscaled).

    Every frame keeps its presentation timestamp (the copy uses the source stream's time
    base), so a time in the copy is the same instant as in the original. Frames without a
    timestamp or not after the previous one (broken files) are dropped, and counted.

    Returns `{"frames", "dropped", "width", "height"}`. Raises ValueError naming `src` when
    it cannot be decoded (nothing is written at `dst`).
    """
    try:
        with open_container(src) as inp, paths.local_output(dst) as tmp, \
                av.open(tmp, mode="w", format="mp4") as out:
            if not inp.streams.video:
                raise ValueError(f"{os.fspath(src)}: no video stream")
            ist = inp.streams.video[0]
            ist.thread_type = "AUTO"
            time_base = ist.time_base or Fraction(1, 90000)
            rate = ist.average_rate or ist.guessed_rate or Fraction(25)
            # The display aspect (sample aspect ratio applied) decides the copy's shape.
            sar = ist.sample_aspect_ratio or Fraction(1)
            display_w = ist.width * float(sar)
            height = _even(min(max_height, ist.height))
            width = _even(display_w * height / max(ist.height, 1))
            ost = out.add_stream("libx264", rate=rate,
                                 options={"crf": str(crf), "preset": preset})
            ost.width, ost.height, ost.pix_fmt = width, height, "yuv420p"
            ost.codec_context.time_base = time_base
            ost.time_base = time_base
            frames = dropped = 0
            last_pts = None
            for frame in inp.decode(ist):
                if frame.pts is None or (last_pts is not None and frame.pts <= last_pts):
                    dropped += 1
                    continue
                last_pts = frame.pts
                copy = frame.reformat(width=width, height=height, format="yuv420p")
                copy.pts, copy.time_base = frame.pts, time_base
                for packet in ost.encode(copy):
                    out.mux(packet)
                frames += 1
            for packet in ost.encode():
                out.mux(packet)
            if not frames:
                raise ValueError(f"{os.fspath(src)}: no decodable frame to transcode")
    except (av.FFmpegError, OSError) as err:
        raise ValueError(f"{os.fspath(src)}: cannot transcode: {err}") from err
    if dropped:
        logging.warning("%s: %d frames without increasing timestamps dropped from the copy",
                        os.fspath(src), dropped)
    return {"frames": frames, "dropped": dropped, "width": width, "height": height}


def strip_times(events: Sequence[tuple[float, float]], duration_s: float,
                max_frames: int = 12) -> list[float]:
    """Ascending times [s] for a frame strip: the midpoints of the first `max_frames` events
    (file order: a submission ranks its events), one per distinct time, or `max_frames`
    evenly spaced bin centres when there are no events."""
    if events:
        mids = {round(0.5 * (float(s) + float(e)), 6) for s, e in list(events)[:max_frames]}
        if duration_s > 0:
            mids = {min(max(t, 0.0), duration_s) for t in mids}
        return sorted(mids)
    if duration_s <= 0:
        return []
    return [(i + 0.5) * duration_s / max_frames for i in range(max_frames)]


def write_frame_strip(video_path: str, times_s: Sequence[float], out_png: str,
                      height: int = 96, columns: int = 6) -> str:
    """A PNG grid of the frames at `times_s` (`columns` per row, ascending), each captioned
    with its time ("12.3 s"). Returns `out_png`. Raises ValueError naming the video
    when it cannot be decoded."""
    from PIL import Image, ImageDraw

    times = sorted(float(t) for t in times_s)
    if not times:
        raise ValueError(f"{os.fspath(video_path)}: no times for a frame strip")
    frames = sample_thumbnails(video_path, times, height)  # [K, height, width, 3]
    k, h, w, _ = frames.shape
    cols = min(columns, k)
    rows = -(-k // cols)
    pad, label_h = 4, 16
    sheet = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + label_h + pad) + pad),
                      (244, 246, 248))
    draw = ImageDraw.Draw(sheet)
    decimals = 2 if times[-1] < 60 else 1  # short clips: tenths would repeat
    for i, (frame, t) in enumerate(zip(frames, times)):
        x = pad + (i % cols) * (w + pad)
        y = pad + (i // cols) * (h + label_h + pad)
        sheet.paste(Image.fromarray(np.asarray(frame, np.uint8)), (x, y))
        draw.text((x + 2, y + h + 2), f"{t:.{decimals}f} s", fill=(27, 31, 35))
    with paths.local_output(out_png) as tmp:
        sheet.save(tmp, format="PNG")
    return out_png
