"""The error raised for bad annotation files, naming the file, the video and the field."""
from __future__ import annotations

import json
import os

from data_prep.infra import paths


class AnnotationError(ValueError):
    """A malformed annotation: `path`, `video` and `field` say where, the message says what."""

    def __init__(self, path: str | os.PathLike, video: str | None, field: str | None, what: str):
        self.path = str(path)
        self.video = video
        self.field = field
        where = self.path
        if video is not None:
            where += f": video {video!r}"
        if field is not None:
            where += f": field {field!r}"
        super().__init__(f"{where}: {what}")


def as_float(value, path, video, field) -> float:
    """`value` as a finite float, or AnnotationError."""
    if isinstance(value, bool):
        raise AnnotationError(path, video, field, f"expected a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(path, video, field, f"expected a number, got {value!r}") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise AnnotationError(path, video, field, f"expected a finite number, got {value!r}")
    return out


def read_json_file(path: str | os.PathLike):
    """The parsed content of a JSON file; invalid JSON is an AnnotationError naming the file."""
    try:
        return json.loads(paths.read_text(path))
    except json.JSONDecodeError as e:
        raise AnnotationError(path, None, None, f"not valid JSON: {e}") from None
