"""Decode a video file with PyAV, resampled to a target frame rate and resized.

Resampling follows TSP (HumamAlwassel/TSP, `_resample_video_idx`): output frame `i` (time
`i / fps`) is the latest source frame whose timestamp is <= `i / fps` ("floor" selection;
for a constant 30 fps source and 15 fps target this is every 2nd frame, exactly as TSP),
and the number of output frames is `floor(source_frames * fps / source_fps)`, computed here
from the stream's end time so variable-frame-rate files work too.

Truncated files: a file cut short (a download that stopped, with the index at the front) still
states its full length, and FFmpeg decodes what is there without an error. The decoded length
(the end of the last decoded frame) is compared with the length the container states: when it
is shorter by more than `TRUNCATION_TOLERANCE_S` or `TRUNCATION_TOLERANCE_FRACTION` of the
stated length (whichever is larger), `truncation_problem` names the file and both lengths;
the shard writer reports it (or skips the video under its `strict` flag).

Frames are streamed: only selected frames are converted and resized (by libswscale,
bilinear), so a long HD video never has to fit in memory at its source resolution.
Deliberate difference to TSP: TSP resizes to 128x171 with torch bilinear interpolation
(no antialiasing) inside its training transform; we resize once at decode time with
swscale's bilinear filter, so pixel values differ slightly (not the geometry).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from data_prep.infra import paths
from data_prep.video.container import declared_duration_s, open_container

# Tolerance [s] when comparing frame timestamps with output sample times: container
# timestamps are rationals rounded to the stream time base.
_TIME_EPS = 1e-4

# A decoded stream shorter than the container's stated length by more than
# max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * stated) is reported as truncated.
# Encoders pad the stated length by a frame or two (B-frame delay, audio longer than video),
# well below these.
TRUNCATION_TOLERANCE_S = 0.5
TRUNCATION_TOLERANCE_FRACTION = 0.02


class StreamEnd(NamedTuple):
    """What `iter_resampled_frames` returns at the end (StopIteration.value).

    duration: decoded length [s] (end of the last decoded frame's display interval);
    source_fps: average source frame rate [frames/s];
    declared_duration: the length [s] the container states, None if it states none.
    """

    duration: float
    source_fps: float
    declared_duration: float | None


def truncation_problem(path: str, decoded_s: float, declared_s: float | None) -> str | None:
    """A message naming the file when the decoded length falls short of the stated one by
    more than the tolerance (module docstring); None otherwise."""
    if declared_s is None or not math.isfinite(declared_s):
        return None
    tolerance = max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * declared_s)
    if decoded_s >= declared_s - tolerance:
        return None
    return (f"{path}: truncated or damaged? frames decode up to {decoded_s:.2f} s but the "
            f"container states {declared_s:.2f} s (tolerance {tolerance:.2f} s)")


class VideoDecodeError(RuntimeError):
    """A video file that cannot be opened or decoded; the message names file and reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot decode video {path!r}: {reason}")
        self.path = path
        self.reason = reason


@dataclasses.dataclass
class DecodedVideo:
    """A decoded, resampled video.

    Attributes:
      frames: uint8 [F, H, W, 3] RGB frames at `fps`; frame i shows time i / fps [s].
      fps: output frame rate [frames/s].
      duration: duration of the source stream [s] (as decoded).
      source_fps: average frame rate of the source stream [frames/s].
      declared_duration: the length the container states [s] (None if none); see
        `truncation_problem`.
    """

    frames: np.ndarray
    fps: float
    duration: float
    source_fps: float
    declared_duration: float | None = None


def output_size(src_hw: tuple[int, int], resize) -> tuple[int, int]:
    """Target (height, width) for a source (height, width).

    `resize`: None (keep), an int S (shorter side becomes S, aspect kept, both sides rounded to
    the nearest integer), or (height, width) (fixed size, as TSP's Resize((128, 171))).
    """
    h, w = src_hw
    if resize is None:
        return h, w
    if isinstance(resize, int | np.integer):
        scale = float(resize) / min(h, w)
        return max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    rh, rw = (int(v) for v in resize)
    if rh <= 0 or rw <= 0:
        raise ValueError(f"resize must be positive, got {resize!r}")
    return rh, rw


def _frame_times(container, stream) -> Iterator[tuple[float, object]]:
    """Yields (time [s], av.VideoFrame) for every decoded frame in presentation order."""
    start = stream.start_time if stream.start_time is not None else 0
    tb = stream.time_base
    last_t = None
    for frame in container.decode(stream):
        if frame.pts is not None:
            t = float((frame.pts - start) * tb)
        elif last_t is not None:  # no timestamp: assume the nominal spacing
            t = last_t + 1.0 / float(stream.average_rate or 30)
        else:
            t = 0.0
        last_t = t
        yield t, frame


def iter_resampled_frames(
    path: str, fps: float, resize=None
) -> Iterator[tuple[int, np.ndarray]]:
    """Streams (output index, uint8 [H, W, 3]) frames of `path` resampled to `fps`.

    `path` may be local or remote (`gs://...`, read through a file object: see
    `data_prep.video.container`). See `decode_video` for the selection rule. The generator's
    return value (via StopIteration.value) is a `StreamEnd` (decoded duration [s], source
    fps, the container's stated duration [s]).
    """
    import av  # lazy: pipelines that only read shards never need PyAV

    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not paths.is_file(path):
        raise VideoDecodeError(path, "file not found")
    stack = contextlib.ExitStack()
    try:
        container = stack.enter_context(open_container(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise VideoDecodeError(path, f"cannot open container ({e})") from e
    with stack:
        if not container.streams.video:
            raise VideoDecodeError(path, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        declared = declared_duration_s(container)
        src_fps = float(stream.average_rate) if stream.average_rate else 0.0
        size = None
        next_i = 0  # next output index to fill
        prev = None  # (time, frame) of the latest decoded frame
        last_t = 0.0

        def convert(frame):
            nonlocal size
            if size is None:
                size = output_size((frame.height, frame.width), resize)
            h, w = size
            return frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="BILINEAR")

        try:
            for t, frame in _frame_times(container, stream):
                # Output samples strictly before this frame's time show the previous frame
                # (floor selection); samples before the first frame show the first frame.
                if prev is not None:
                    if next_i / fps < t - _TIME_EPS:
                        image = convert(prev[1])
                        while next_i / fps < t - _TIME_EPS:
                            yield next_i, image
                            next_i += 1
                elif next_i / fps < t - _TIME_EPS:
                    image = convert(frame)
                    while next_i / fps < t - _TIME_EPS:
                        yield next_i, image
                        next_i += 1
                prev = (t, frame)
                last_t = t
        except av.error.FFmpegError as e:
            raise VideoDecodeError(path, f"decoding failed after {next_i} frames ({e})") from e
        if prev is None:
            raise VideoDecodeError(path, "no decodable frames")
        if src_fps <= 0:
            src_fps = float(stream.guessed_rate or 0) or 30.0
        # End of the last frame's display interval = stream duration (TSP counts frames).
        duration = last_t + 1.0 / src_fps
        num_out = int(math.floor(duration * fps + 1e-6))
        if next_i < num_out:
            image = convert(prev[1])
            while next_i < num_out:
                yield next_i, image
                next_i += 1
        return StreamEnd(duration, src_fps, declared)


def decode_video(path: str, fps: float = 15.0, resize=None, max_frames: int | None = None
                 ) -> DecodedVideo:
    """Decodes `path` to uint8 RGB frames at `fps` (TSP floor resampling) and size `resize`.

    Args:
      path: video file readable by FFmpeg.
      fps: target frame rate [frames/s] (TSP: 15).
      resize: None, shorter side (int) or (height, width); see `output_size`.
      max_frames: stop after this many output frames (None: all).
    Returns:
      DecodedVideo with frames uint8 [F, H, W, 3], F = floor(duration * fps).
    Raises:
      VideoDecodeError: missing, unreadable or corrupt file, no video stream or no frames.
    """
    frames = []
    gen = iter_resampled_frames(path, fps, resize)
    duration, src_fps, declared = 0.0, 0.0, None
    while True:
        try:
            i, image = next(gen)
        except StopIteration as stop:
            duration, src_fps, declared = stop.value
            break
        frames.append(image)
        if max_frames is not None and i + 1 >= max_frames:
            gen.close()
            break
    if not frames:
        raise VideoDecodeError(path, f"no frames at {fps} fps (video shorter than one frame)")
    return DecodedVideo(np.stack(frames), float(fps), float(duration), float(src_fps),
                        declared)
