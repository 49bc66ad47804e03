"""Loading and validating submissions and reference files.

Submission format (ActivityNet Captions challenge): `{"version": ..., "external_data": ...,
"results": {video_id: [{"sentence": str, "timestamp": [start_s, end_s]}, ...]}}`.
References: `{video_id: {"duration": s, "timestamps": [[s, e], ...], "sentences": [...]}}`.

Bad input raises `SubmissionError` naming the file, the video and the entry. With
`lenient=True` a bad entry (or a video whose value is not a list) is dropped instead and the
drops are counted in one warning. Video ids absent from every reference file are reported
and ignored, as the official script ignores them.

Deliberate differences from the official loader (which only checks the three top-level keys
and otherwise crashes somewhere in the scoring): missing `version` / `external_data` only
warn (the official raises IOError; the numbers do not depend on them), and entries are checked
up front. The official cut to the first `max_proposals` entries is kept (file order,
`Predictions.capped`); in lenient mode it applies to the original positions, so dropped
entries are not replaced by later ones.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

REQUIRED_SUBMISSION_KEYS = ("results", "version", "external_data")


class SubmissionError(ValueError):
    """A submission or reference file that cannot be evaluated."""


@dataclass
class VideoPredictions:
    """Valid predictions of one video in file order.

    sentences: [P] raw strings; timestamps: [P, 2] float64 seconds; positions: [P] original
    index in the submitted list (for the first-`max_proposals` cut).
    """

    sentences: list[str]
    timestamps: np.ndarray
    positions: np.ndarray

    def capped(self, max_proposals: int) -> VideoPredictions:
        keep = self.positions < max_proposals
        if keep.all():
            return self
        return VideoPredictions(
            [s for s, k in zip(self.sentences, keep) if k], self.timestamps[keep],
            self.positions[keep],
        )


@dataclass
class Submission:
    videos: dict[str, VideoPredictions]
    source: str
    dropped_entries: int = 0
    problems: list[str] = field(default_factory=list)


def _load_json(obj, what: str):
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        try:
            with open(path) as f:
                return json.load(f), path
        except FileNotFoundError as e:
            raise SubmissionError(f"{what} file not found: {path}") from e
        except json.JSONDecodeError as e:
            raise SubmissionError(f"{what} file {path} is not valid JSON: {e}") from e
    if isinstance(obj, Mapping):
        return obj, f"<in-memory {what}>"
    raise SubmissionError(f"{what} must be a path or a dict, got {type(obj).__name__}")


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _entry_problem(entry) -> str | None:
    if not isinstance(entry, Mapping):
        return f"is a {type(entry).__name__}, not an object with 'sentence' and 'timestamp'"
    if "sentence" not in entry:
        return "has no 'sentence'"
    if not isinstance(entry["sentence"], str):
        return f"'sentence' is a {type(entry['sentence']).__name__}, not a string"
    ts = entry.get("timestamp")
    if (
        not isinstance(ts, (list, tuple, np.ndarray)) or len(ts) != 2
        or not all(_is_number(t) and math.isfinite(float(t)) for t in ts)
    ):
        return f"'timestamp' {ts!r} is not two finite numbers"
    return None


def load_submission(submission, *, lenient: bool = False) -> Submission:
    """Parses and validates a submission (path or loaded dict)."""
    data, source = _load_json(submission, "submission")
    if not isinstance(data, Mapping) or "results" not in data:
        raise SubmissionError(f"{source}: submission has no 'results' key")
    missing = [k for k in REQUIRED_SUBMISSION_KEYS[1:] if k not in data]
    if missing:
        log.warning("%s: submission lacks %s (the official script would refuse it)",
                    source, missing)
    results = data["results"]
    if not isinstance(results, Mapping):
        raise SubmissionError(f"{source}: 'results' is a {type(results).__name__}, not an object")
    out = Submission(videos={}, source=source)

    def drop(msg: str) -> None:
        """A bad video value or entry: an error, or with `lenient` dropped and counted."""
        if not lenient:
            raise SubmissionError(msg)
        out.problems.append(msg)
        out.dropped_entries += 1

    for vid, entries in results.items():
        if not isinstance(entries, (list, tuple)):
            drop(f"{source}: video {vid!r}: value is a {type(entries).__name__}, not a list")
            continue
        sentences, stamps, positions = [], [], []
        for i, entry in enumerate(entries):
            problem = _entry_problem(entry)
            if problem is not None:
                drop(f"{source}: video {vid!r}, entry {i}: {problem}")
                continue
            sentences.append(entry["sentence"])
            stamps.append((float(entry["timestamp"][0]), float(entry["timestamp"][1])))
            positions.append(i)
        out.videos[vid] = VideoPredictions(
            sentences, np.asarray(stamps, np.float64).reshape(-1, 2),
            np.asarray(positions, np.int64),
        )
    if out.dropped_entries:
        log.warning("%s: dropped %d bad entries (--lenient); first: %s",
                    source, out.dropped_entries, out.problems[0])
    return out


@dataclass
class ReferenceVideo:
    """One reference file's annotation of a video: timestamps [G, 2] s, sentences [G]."""

    timestamps: np.ndarray
    sentences: list[str]


def load_references(references) -> tuple[list[dict[str, ReferenceVideo]], list[str]]:
    """Loads one or more reference files (paths or dicts); returns (per-file dicts, names)."""
    if isinstance(references, (str, os.PathLike, Mapping)):
        references = [references]
    if not isinstance(references, Sequence) or not references:
        raise SubmissionError("at least one reference file is needed")
    files, names = [], []
    for ref in references:
        data, source = _load_json(ref, "reference")
        if not isinstance(data, Mapping):
            raise SubmissionError(f"{source}: reference file is not a JSON object")
        parsed = {}
        for vid, ann in data.items():
            try:
                stamps, sents = ann["timestamps"], ann["sentences"]
            except (TypeError, KeyError) as e:
                raise SubmissionError(
                    f"{source}: video {vid!r} lacks 'timestamps'/'sentences'") from e
            if len(stamps) != len(sents):
                raise SubmissionError(
                    f"{source}: video {vid!r}: {len(stamps)} timestamps vs "
                    f"{len(sents)} sentences")
            bad = [i for i, s in enumerate(sents) if not isinstance(s, str)]
            if bad:
                raise SubmissionError(f"{source}: video {vid!r}, sentence {bad[0]} not a string")
            try:
                ts = np.asarray(stamps, np.float64).reshape(-1, 2)
            except (TypeError, ValueError) as e:
                raise SubmissionError(
                    f"{source}: video {vid!r}: timestamps are not [start, end] pairs") from e
            parsed[vid] = ReferenceVideo(ts, list(sents))
        files.append(parsed)
        names.append(source)
    return files, names


def report_unknown_videos(submission: Submission, reference_ids: set[str]) -> list[str]:
    """Logs (and returns) submitted video ids that no reference file contains."""
    unknown = sorted(set(submission.videos) - reference_ids)
    if unknown:
        log.warning("%s: %d video ids are in no reference file and are ignored, e.g. %s",
                    submission.source, len(unknown), unknown[:5])
    return unknown
