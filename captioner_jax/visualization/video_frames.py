"""Grabbing a few small frames from a video for the timeline's thumbnail strip (PyAV).

Videos are opened through `data_prep.video.container.open_container`, so a `gs://` video
works too (read through a file object; a seek reads only what it needs). Its length comes
from `data_prep.video.container.video_duration_s`.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import av
import numpy as np

from data_prep.video.container import open_container


def sample_thumbnails(path: str, times_s: Sequence[float], height: int = 96) -> np.ndarray:
    """Frames nearest at-or-after each time, scaled to `height` pixels (aspect kept).

    Args:
      path: video file.
      times_s: K times in seconds, ascending.
      height: thumbnail height in pixels; width follows the display aspect (rounded to even).
    Returns:
      uint8 `[K, height, width, 3]` RGB. A time past the last frame gets the last frame.
    Raises:
      ValueError naming the file when it cannot be decoded.
    """
    try:
        with open_container(path) as container:
            if not container.streams.video:
                raise ValueError(f"{os.fspath(path)}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            width = max(2, int(round(stream.width * height / max(stream.height, 1) / 2)) * 2)
            out = []
            for t in times_s:
                # Seek to the keyframe before t, then decode forward to the first frame >= t.
                container.seek(int(max(t, 0.0) / stream.time_base), stream=stream,
                               backward=True, any_frame=False)
                chosen = None
                for frame in container.decode(stream):
                    chosen = frame
                    if frame.time is not None and frame.time >= t:
                        break
                if chosen is None:
                    if not out:
                        raise ValueError(f"{path}: no decodable frame at or after {t:.2f}s")
                    out.append(out[-1])
                    continue
                out.append(chosen.to_ndarray(format="rgb24", width=width, height=height))
            return np.stack(out).astype(np.uint8) if out else np.zeros((0, height, width, 3),
                                                                       np.uint8)
    except (av.FFmpegError, OSError) as err:
        raise ValueError(f"{os.fspath(path)}: cannot decode video: {err}") from err


def try_thumbnails(path: str | None, duration_s: float, count: int,
                   height: int = 96) -> tuple[np.ndarray | None, list[float] | None]:
    """`count` thumbnails evenly spread over the video (bin centres), or (None, None) when
    there is no file, count is 0, or decoding fails (logged: a picture without thumbnails
    is still useful)."""
    if not path or count <= 0 or duration_s <= 0:
        return None, None
    times = [(i + 0.5) * duration_s / count for i in range(count)]
    try:
        return sample_thumbnails(path, times, height), times
    except ValueError as err:
        logging.warning("thumbnails skipped: %s", err)
        return None, None
