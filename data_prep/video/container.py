"""Opening a video with PyAV on the path layer, local or remote (`gs://...`).

FFmpeg opens local files itself. A remote video is handed to PyAV as a Python file object
(`data_prep.infra.paths.open_file(path, "rb")`: epath/fsspec file objects can `read` and
`seek`, which is all FFmpeg's I/O callbacks need), so nothing is copied to local disk and a
thumbnail seek reads only the bytes it needs. PyAV does not close a file object it was given,
so `open_container` closes both.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from data_prep.infra import paths


@contextlib.contextmanager
def open_container(path: paths.PathLike) -> Iterator:
    """`with open_container(path) as container:` an `av.container.InputContainer` of `path`.

    Errors of `av.open` (FFmpeg's, OSError for a missing file) propagate unchanged; callers
    turn them into their own messages naming the file.
    """
    import av  # lazy: pipelines that only read shards never need PyAV

    if paths.is_local(path):
        with av.open(os.fspath(path)) as container:
            yield container
        return
    with paths.open_file(path, "rb") as f, av.open(f) as container:
        yield container


def declared_duration_s(container) -> float | None:
    """Length [s] the container states for its first video stream (the container's own
    duration if the stream states none); None when neither is known."""
    import av

    stream = container.streams.video[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def video_duration_s(path: paths.PathLike) -> float:
    """Length [s] of the first video stream of `path` (the container's if the stream has none).

    Raises ValueError naming the file if it cannot be opened or has no video stream.
    """
    import av

    try:
        with open_container(path) as container:
            if not container.streams.video:
                raise ValueError(f"{os.fspath(path)}: no video stream")
            declared = declared_duration_s(container)
            if declared is not None:
                return declared
    except (av.FFmpegError, OSError) as err:
        raise ValueError(f"{os.fspath(path)}: cannot read video: {err}") from err
    raise ValueError(f"{os.fspath(path)}: video length unknown")
