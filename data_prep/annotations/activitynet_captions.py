"""ActivityNet Captions JSON: `{video_id: {"duration", "timestamps", "sentences"}}`.

Reader with validation and the quirks of the real files (../shared/data/README.md):
- reversed segments (start > end, 2 in train.json): swapped, as PDVC's train_modified.json;
- segments ending after `duration` (29 in train, 5 in val_1): end clipped to the duration when
  `clip_to_duration` (the default; the official evaluator uses the raw values, so pass False
  when reading references for evaluation);
- zero-length segments (start == end): kept (they carry a sentence);
- sentences with leading spaces and non-ASCII characters: kept verbatim (text processing in
  `data_prep.text` normalises them; the evaluator tokenises the raw text).
A malformed video raises `AnnotationError` naming file, video and field, or, with
`on_error="skip"`, is left out and its message appended to `problems`.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping

import numpy as np

from data_prep.annotations.errors import AnnotationError, as_float, read_json_file
from data_prep.infra.atomic_files import atomic_write_json

log = logging.getLogger(__name__)


@dataclasses.dataclass
class VideoCaptions:
    """The captioned events of one video.

    Attributes:
      video_id: id with the `v_` prefix.
      duration: video duration [s].
      timestamps: float64 [E, 2] (start, end) [s].
      sentences: E raw sentences.
    """

    video_id: str
    duration: float
    timestamps: np.ndarray
    sentences: list[str]

    def to_json(self) -> dict:
        return {
            "duration": self.duration,
            "timestamps": [[float(s), float(e)] for s, e in self.timestamps],
            "sentences": list(self.sentences),
        }


def parse_video_captions(
    video_id: str, entry, path: str, fix_reversed: bool = True, clip_to_duration: bool = True
) -> tuple[VideoCaptions, list[str]]:
    """Validates one entry; returns it and notes on quirks that were fixed."""
    notes: list[str] = []
    if not isinstance(entry, Mapping):
        raise AnnotationError(path, video_id, None,
                              f"expected an object, got {type(entry).__name__}")
    for key in ("duration", "timestamps", "sentences"):
        if key not in entry:
            raise AnnotationError(path, video_id, key, "missing")
    duration = as_float(entry["duration"], path, video_id, "duration")
    if duration <= 0:
        raise AnnotationError(path, video_id, "duration", f"must be > 0, got {duration}")
    stamps, sentences = entry["timestamps"], entry["sentences"]
    if not isinstance(stamps, list):
        raise AnnotationError(path, video_id, "timestamps", "expected a list")
    if not isinstance(sentences, list):
        raise AnnotationError(path, video_id, "sentences", "expected a list")
    if len(stamps) != len(sentences):
        raise AnnotationError(
            path, video_id, "timestamps",
            f"{len(stamps)} timestamps but {len(sentences)} sentences",
        )
    segments = np.zeros((len(stamps), 2), np.float64)
    for i, (pair, sentence) in enumerate(zip(stamps, sentences)):
        field = f"timestamps[{i}]"
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise AnnotationError(path, video_id, field, f"expected [start, end], got {pair!r}")
        start, end = (as_float(v, path, video_id, field) for v in pair)
        if start > end:
            if not fix_reversed:
                raise AnnotationError(path, video_id, field, f"start {start} > end {end}")
            notes.append(f"{video_id} {field}: reversed [{start}, {end}] swapped")
            start, end = end, start
        if start < 0:
            raise AnnotationError(path, video_id, field, f"negative start {start}")
        if clip_to_duration and end > duration:
            notes.append(f"{video_id} {field}: end {end} clipped to duration {duration}")
            end = duration
            start = min(start, duration)
        segments[i] = start, end
        if not isinstance(sentence, str):
            raise AnnotationError(path, video_id, f"sentences[{i}]", f"expected a string, got "
                                  f"{type(sentence).__name__}")
    return VideoCaptions(video_id, duration, segments, list(sentences)), notes


def read_captions(
    path: str | os.PathLike,
    *,
    fix_reversed: bool = True,
    clip_to_duration: bool = True,
    on_error: str = "raise",
    problems: list[str] | None = None,
) -> dict[str, VideoCaptions]:
    """Reads and validates an ActivityNet Captions JSON file (order of the file kept).

    Args:
      path: the JSON file.
      fix_reversed: swap start > end segments (else an error).
      clip_to_duration: clip segment ends to the video duration.
      on_error: "raise" or "skip" (skip bad videos, append their messages to `problems`).
      problems: optional list collecting skipped-video messages.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    path = str(path)
    raw = read_json_file(path)
    if not isinstance(raw, Mapping):
        raise AnnotationError(path, None, None, "expected an object {video_id: {...}}")
    out: dict[str, VideoCaptions] = {}
    fixed = 0
    for video_id, entry in raw.items():
        try:
            item, notes = parse_video_captions(video_id, entry, path, fix_reversed,
                                               clip_to_duration)
        except AnnotationError as e:
            if on_error == "raise":
                raise
            log.warning("skipping: %s", e)
            if problems is not None:
                problems.append(str(e))
            continue
        fixed += len(notes)
        out[video_id] = item
    if fixed:
        log.info("%s: fixed %d segment quirks (reversed / past the duration)", path, fixed)
    return out


def write_captions(path: str | os.PathLike, videos: Mapping[str, VideoCaptions]) -> None:
    """Writes the ActivityNet Captions JSON atomically (same layout as the real files)."""
    atomic_write_json(path, {vid: v.to_json() for vid, v in videos.items()})
