"""Captioned events as the visualisations see them, and the lane assignment that keeps
overlapping events (and their captions) apart.

Input events use the ActivityNet submission / reference layout:
`{"timestamp": [start_s, end_s], "sentence": str}` (predictions) or the reference file's
parallel `timestamps` / `sentences` lists, converted by `reference_events`.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping, Sequence


@dataclasses.dataclass(frozen=True)
class Event:
    """One captioned event. Times in seconds; `start <= end` always holds.

    `index` is the event's position in the input list (kept so that pages and images can
    number events the way the file lists them).
    """

    start: float
    end: float
    sentence: str
    index: int

    def to_json(self) -> dict:
        return {"start": self.start, "end": self.end, "sentence": self.sentence,
                "index": self.index}


def parse_events(raw: Iterable[Mapping] | None, where: str = "events") -> list[Event]:
    """Validates submission-style events; malformed ones are skipped with a warning.

    Args:
      raw: `[{"timestamp": [start_s, end_s], "sentence": str}, ...]` (None -> []).
      where: names the source (file and video) in warnings, e.g. "pred.json:v_abc".
    Returns:
      Events in input order. A reversed interval ([61.29, 60.71] occurs in ActivityNet's
      train.json) is swapped, as PDVC's `train_modified.json` does; non-finite times, a missing
      field or a non-string sentence make the event unusable and it is skipped.
    """
    events: list[Event] = []
    for i, item in enumerate(raw or []):
        try:
            if not isinstance(item, Mapping):
                raise ValueError(f"expected an object, got {type(item).__name__}")
            stamp = item.get("timestamp")
            if not isinstance(stamp, Sequence) or isinstance(stamp, str) or len(stamp) != 2:
                raise ValueError(f"'timestamp' must be [start, end], got {stamp!r}")
            start, end = float(stamp[0]), float(stamp[1])
            if not (math.isfinite(start) and math.isfinite(end)):
                raise ValueError(f"'timestamp' is not finite: {stamp!r}")
            sentence = item.get("sentence")
            if not isinstance(sentence, str):
                raise ValueError(f"'sentence' must be a string, got {type(sentence).__name__}")
        except (TypeError, ValueError) as err:
            logging.warning("%s: event %d skipped: %s", where, i, err)
            continue
        if start > end:
            logging.warning("%s: event %d has start > end (%s); swapped", where, i, stamp)
            start, end = end, start
        events.append(Event(start=start, end=end, sentence=sentence.strip(), index=i))
    return events


def reference_events(entry: Mapping, where: str = "references") -> list[Event]:
    """Events of one video of a reference file `{"timestamps": [...], "sentences": [...]}`."""
    stamps = entry.get("timestamps") or []
    sentences = entry.get("sentences") or []
    if len(stamps) != len(sentences):
        logging.warning("%s: %d timestamps but %d sentences; extra ones ignored", where,
                        len(stamps), len(sentences))
    raw = [{"timestamp": t, "sentence": s} for t, s in zip(stamps, sentences)]
    return parse_events(raw, where)


def assign_lanes(intervals: Sequence[tuple[float, float]], gap: float = 0.0) -> list[int]:
    """Assigns each interval a lane (row) so that intervals sharing a lane do not overlap.

    Greedy interval partitioning: intervals are visited by (start, end, input position) and
    each goes to the lowest-numbered lane whose last interval ended at least `gap` before it
    starts. This uses the minimum number of lanes (when a new lane opens, every open lane is
    busy at that instant, so that many intervals overlap there), and lower lanes fill first,
    so the picture stays compact at the top.

    Args:
      intervals: `[(start, end), ...]` in any unit (seconds, pixels); `start <= end`.
      gap: minimum free space between neighbours in one lane (same unit). With gap 0,
        intervals that only touch (end == next start) share a lane.
    Returns:
      `lanes[i]` = lane of `intervals[i]` (0 = first lane).
    """
    order = sorted(range(len(intervals)), key=lambda i: (intervals[i][0], intervals[i][1], i))
    lane_ends: list[float] = []
    lanes = [0] * len(intervals)
    for i in order:
        start, end = intervals[i]
        if end < start:
            raise ValueError(f"interval {i} has end < start: {intervals[i]}")
        for lane, last_end in enumerate(lane_ends):
            if last_end + gap <= start:
                lanes[i] = lane
                lane_ends[lane] = end
                break
        else:
            lanes[i] = len(lane_ends)
            lane_ends.append(end)
    return lanes


def span_of(events: Iterable[Event]) -> float:
    """Latest end time among `events` (0 if none), used when a duration is unknown."""
    return max((e.end for e in events), default=0.0)


def format_time(seconds: float) -> str:
    """`75.25` -> `"1:15.2"`; below a minute -> `"12.3s"`. For labels, not for parsing."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}:{rest:04.1f}"
