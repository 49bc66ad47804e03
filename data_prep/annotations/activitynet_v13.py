"""ActivityNet v1.3-style action annotations: `{video: {..., "annotations": [{segment, label}]}}`.

Accepted layouts:
- the official `activity_net.v1-3.min.json`: `{"database": {youtube_id: {"duration",
  "subset", "annotations": [...]}}, "taxonomy": ..., "version": ...}`;
- BSN's `anet_anno_action.json`: `{v_id: {"duration_second", "duration_frame",
  "annotations": [...], "feature_frame"}}`;
- any `{video: {"duration" | "duration_second", "annotations": [...]}}`.
Video ids are kept as in the file (the official file has no `v_` prefix, BSN's has it).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import numpy as np

from data_prep.annotations.errors import AnnotationError, as_float, read_json_file


@dataclasses.dataclass
class ActionVideo:
    """Action instances of one video: segments float64 [N, 2] [s], one label per segment."""

    video_id: str
    duration: float
    subset: str
    segments: np.ndarray
    labels: list[str]


def read_activitynet_v13(path: str | os.PathLike) -> dict[str, ActionVideo]:
    """Reads and validates a v1.3-style file; errors name the file, video and field."""
    path = str(path)
    raw = read_json_file(path)
    if isinstance(raw, Mapping) and "database" in raw:
        raw = raw["database"]
    if not isinstance(raw, Mapping):
        raise AnnotationError(path, None, None, "expected an object {video: {...}}")
    out = {}
    for vid, entry in raw.items():
        if not isinstance(entry, Mapping):
            raise AnnotationError(path, vid, None, "expected an object")
        key = "duration" if "duration" in entry else "duration_second"
        if key not in entry:
            raise AnnotationError(path, vid, "duration", "missing (also no 'duration_second')")
        duration = as_float(entry[key], path, vid, key)
        annotations = entry.get("annotations", [])
        if not isinstance(annotations, list):
            raise AnnotationError(path, vid, "annotations", "expected a list")
        segments, labels = np.zeros((len(annotations), 2)), []
        for i, a in enumerate(annotations):
            field = f"annotations[{i}]"
            if not isinstance(a, Mapping) or "segment" not in a or "label" not in a:
                raise AnnotationError(path, vid, field, "expected {'segment', 'label'}")
            seg = a["segment"]
            if not isinstance(seg, list | tuple) or len(seg) != 2:
                raise AnnotationError(path, vid, field + ".segment",
                                      f"expected [start, end], got {seg!r}")
            start, end = (as_float(x, path, vid, field + ".segment") for x in seg)
            if end < start:
                raise AnnotationError(path, vid, field + ".segment", f"end {end} < start {start}")
            if not isinstance(a["label"], str) or not a["label"]:
                raise AnnotationError(path, vid, field + ".label", f"bad label {a['label']!r}")
            segments[i] = start, end
            labels.append(a["label"])
        out[vid] = ActionVideo(vid, duration, str(entry.get("subset", "")), segments, labels)
    return out
