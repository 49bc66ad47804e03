"""Finding a video file for an id and grabbing a few small frames from it (PyAV).

Only what the visualisations need: thumbnails at given times and the video's length.
Feature extraction decodes videos its own way (sa_tsp_jax); this stays independent of it.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import av
import numpy as np


def video_duration_s(path: str) -> float:
    """Length of the first video stream in seconds (container length if the stream has none).

    Raises ValueError naming the file if it cannot be opened or has no video stream.
    """
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / av.time_base
    except av.FFmpegError as err:
        raise ValueError(f"{path}: cannot read video: {err}") from err
    raise ValueError(f"{path}: video length unknown")


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
        with av.open(path) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
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
    except av.FFmpegError as err:
        raise ValueError(f"{path}: cannot decode video: {err}") from err


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
