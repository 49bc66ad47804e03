"""Loading and validating submissions and reference files.

Submission format (ActivityNet Captions challenge): `{"version": ..., "external_data": ...,
"results": {video_id: [{"sentence": str, "timestamp": [start_s, end_s]}, ...]}}`.
References: `{video_id: {"duration": s, "timestamps": [[s, e], ...], "sentences": [...]}}`.
Files are read through the path layer (`data_prep.infra.paths`: local or `gs://...`).

Three ways to treat entries (`load_submission`):

* strict (default): every entry must be `{"sentence": str, "timestamp": [start, end]}` with
  two finite numbers; anything else raises `SubmissionError` naming the file, the video and
  the entry (and, when the official script would score it anyway, the mode that does).
* `official_inputs=True`: accept exactly what the official script (densevid_eval
  `evaluate.py`, 2018 and latest) scores without raising, and score it as it does:
    - a NaN or infinite bound: kept; its tIoU follows the script's Python min/max
      (`tiou.densevid_tiou_matrix`: a NaN prediction bound gives way to the reference bound,
      so `[nan, 5]` can match; inf gives 0 or NaN, never a match);
    - a timestamp with more than two elements (`[s, e, score]`): the first two are used,
      the rest is ignored (never read);
    - a boolean bound: True = 1, False = 0 (Python arithmetic);
    - entries after the first `max_proposals` of a video and videos that are in no reference
      file are never read by the script, so they are not checked (a bad one is dropped
      and counted instead of failing).
  Entries the script crashes on (no 'sentence', a sentence that is not a string, a timestamp
  that is not a list of at least two numbers, a video value that is not a list) stay
  `SubmissionError`s. SODA_c is only computed for finite two-element timestamps (fujiso/SODA
  unpacks exactly two values and sorts by start time): asking for it otherwise is an error.
* `lenient=True`: bad entries (those the chosen mode rejects) are dropped and counted in one
  warning instead of failing.

Whatever the mode, entries the official script scores but that are likely mistakes are
counted and warned about in `Submission.notes` (the numbers are unaffected): reversed
timestamps (start > end; they never overlap anything), timestamps outside [0, duration] of
the video's reference annotation, empty sentences (scored as empty token lists), an empty
`results`. The evaluator reports the counts.

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

from data_prep.infra import paths

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
    """videos: valid predictions per video id; source: file name (or a description);
    dropped_entries / problems: what `lenient` dropped; notes: per kind of suspicious but
    scored input (see module doc) the number of entries and the first example;
    official_only: entries that only `official_inputs` accepts (non-finite or >2-element
    timestamps)."""

    videos: dict[str, VideoPredictions]
    source: str
    dropped_entries: int = 0
    problems: list[str] = field(default_factory=list)
    notes: dict[str, dict] = field(default_factory=dict)
    official_only: int = 0

    def note(self, kind: str, example: str) -> None:
        entry = self.notes.setdefault(kind, {"count": 0, "first": example})
        entry["count"] += 1


def _load_json(obj, what: str):
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        try:
            text = paths.read_text(path)
        except FileNotFoundError as e:
            raise SubmissionError(f"{what} file not found: {path}") from e
        except (OSError, UnicodeDecodeError, ImportError) as e:
            # ImportError: a gs:// path without the filesystem package (the message says which)
            raise SubmissionError(f"{what} file {path} cannot be read: {e}") from e
        try:
            return json.loads(text), path
        except json.JSONDecodeError as e:
            raise SubmissionError(f"{what} file {path} is not valid JSON: {e}") from e
    if isinstance(obj, Mapping):
        return obj, f"<in-memory {what}>"
    raise SubmissionError(f"{what} must be a path or a dict, got {type(obj).__name__}")


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


_OFFICIAL_HINT = ("; the official script scores it anyway (NaN/inf bounds via its Python "
                  "min/max, extra elements ignored): pass --official-inputs "
                  "(official_inputs=True) to score it exactly as the official script does")


def _official_bound(x) -> bool:
    """A value the official tIoU can compute with: a number or bool within float range."""
    if not (_is_number(x) or isinstance(x, bool)):
        return False
    try:
        float(x)
    except OverflowError:  # a huge integer: the official subtraction overflows too
        return False
    return True


def _entry_problem(entry, official: bool) -> tuple[str | None, bool]:
    """(problem or None, accepted only because of `official`) for one entry."""
    if not isinstance(entry, Mapping):
        return f"is a {type(entry).__name__}, not an object with 'sentence' and 'timestamp'", False
    if "sentence" not in entry:
        return "has no 'sentence'", False
    if not isinstance(entry["sentence"], str):
        return f"'sentence' is a {type(entry['sentence']).__name__}, not a string", False
    ts = entry.get("timestamp")
    official_ok = (isinstance(ts, (list, tuple, np.ndarray)) and len(ts) >= 2
                   and all(_official_bound(t) for t in ts[:2]))
    if official_ok and len(ts) == 2 and all(
            _is_number(t) and math.isfinite(float(t)) for t in ts):
        return None, False
    if official_ok:
        if official:
            return None, True
        return f"'timestamp' {ts!r} is not two finite numbers{_OFFICIAL_HINT}", False
    return f"'timestamp' {ts!r} is not two finite numbers (a [start, end] list)", False


def load_submission(
    submission, *, lenient: bool = False, official_inputs: bool = False,
    reference_ids: set[str] | None = None, max_proposals: int | None = None,
) -> Submission:
    """Parses and validates a submission (path, `gs://` path or loaded dict).

    lenient: drop bad entries (counted) instead of raising. official_inputs: accept what the
    official script scores (module doc); then entries it never reads (videos not in
    `reference_ids`, entries at or after `max_proposals`) are not checked: a bad one there is
    dropped and counted as not read, never an error.
    """
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
    cap = max_proposals if max_proposals is not None else float("inf")

    def drop(msg: str, unread: bool = False) -> None:
        """A bad video value or entry: an error, or dropped and counted (with `lenient`, or
        in official mode where the official script never reads it)."""
        if not (lenient or unread):
            raise SubmissionError(msg)
        out.problems.append(msg)
        out.dropped_entries += 1

    for vid, entries in results.items():
        unread_video = official_inputs and reference_ids is not None and vid not in reference_ids
        if not isinstance(entries, (list, tuple)):
            # The official script slices every value ([:max_proposals]); a string survives
            # that (and is then never read if the video has no reference).
            drop(f"{source}: video {vid!r}: value is a {type(entries).__name__}, not a list",
                 unread=unread_video and isinstance(entries, str))
            continue
        sentences, stamps, positions = [], [], []
        for i, entry in enumerate(entries):
            problem, official_only = _entry_problem(entry, official_inputs)
            if problem is not None:
                drop(f"{source}: video {vid!r}, entry {i}: {problem}",
                     unread=official_inputs and (unread_video or i >= cap))
                continue
            out.official_only += official_only
            ts = entry["timestamp"]
            sentences.append(entry["sentence"])
            stamps.append((float(ts[0]), float(ts[1])))
            positions.append(i)
        out.videos[vid] = VideoPredictions(
            sentences, np.asarray(stamps, np.float64).reshape(-1, 2),
            np.asarray(positions, np.int64),
        )
    if out.dropped_entries:
        log.warning("%s: dropped %d bad entries (%s); first: %s", source, out.dropped_entries,
                    "--lenient" if lenient else "never read by the official script",
                    out.problems[0])
    if out.official_only:
        log.warning("%s: %d entries have non-finite or >2-element timestamps; scored as the "
                    "official script scores them (--official-inputs)", source, out.official_only)
    return out


def note_scored_inputs(sub: Submission, files: Sequence[dict[str, ReferenceVideo]],
                       max_proposals: int) -> dict[str, dict]:
    """Counts (in `sub.notes`, also returned) inputs the official script scores but that
    are likely mistakes, and logs one warning per kind. Only what is scored is looked at:
    videos in some reference file, their first `max_proposals` entries.

    Kinds: "reversed_timestamps" (start > end), "timestamps_outside_video" (start < 0 or
    end > the reference duration, the largest over files), "empty_sentences" (nothing but
    spaces after the non-ASCII -> space step), "empty_results" (no entry for any reference
    video), "videos_with_empty_list".
    """
    durations: dict[str, float] = {}
    for f in files:
        for vid, ann in f.items():
            if ann.duration is not None:
                durations[vid] = max(durations.get(vid, ann.duration), ann.duration)
    scored = 0
    for vid, preds in sub.videos.items():
        if not any(vid in f for f in files):
            continue
        preds = preds.capped(max_proposals)
        if not preds.sentences:
            sub.note("videos_with_empty_list", f"video {vid!r}")
        scored += len(preds.sentences)
        duration = durations.get(vid)
        for i, (sentence, (start, end)) in enumerate(zip(preds.sentences,
                                                         preds.timestamps.tolist())):
            where = f"video {vid!r}, entry {int(preds.positions[i])}"
            if start > end:
                sub.note("reversed_timestamps", f"{where}: [{start}, {end}]")
            if start < 0 or (duration is not None and end > duration):
                sub.note("timestamps_outside_video",
                         f"{where}: [{start}, {end}] outside [0, {duration}]")
            if not "".join(c if ord(c) < 128 else " " for c in sentence).strip():
                sub.note("empty_sentences", f"{where}: {sentence!r}")
    if not scored:
        sub.note("empty_results", "no entry for any reference video")
    for kind, info in sub.notes.items():
        log.warning("%s: %d x %s (scored as the official script scores them); first: %s",
                    sub.source, info["count"], kind.replace("_", " "), info["first"])
    return sub.notes


@dataclass
class ReferenceVideo:
    """One reference file's annotation of a video: timestamps [G, 2] s, sentences [G],
    duration s (None when absent or not a number; the official script never reads it)."""

    timestamps: np.ndarray
    sentences: list[str]
    duration: float | None = None


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
            duration = ann.get("duration") if isinstance(ann, Mapping) else None
            parsed[vid] = ReferenceVideo(
                ts, list(sents), float(duration) if _is_number(duration) else None)
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
