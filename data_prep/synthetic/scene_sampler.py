"""Samples `VideoSpec`s: duration, 1-4 events with overlaps and background gaps, attributes.

Everything is drawn from a `numpy.random.Generator` seeded per video as `[seed, index]`, so a
video does not depend on how many others are generated or on the worker that renders it.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from data_prep.synthetic.attributes import (
    ACTIONS,
    COLORS,
    COUNTS,
    ROTATION_VISIBLE_SHAPES,
    SHAPES,
    SIZES,
    SPEEDS,
    EventSpec,
    VideoSpec,
)

_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclasses.dataclass(frozen=True)
class SceneOptions:
    """Ranges for sampling videos.

    Attributes:
      min_duration_s, max_duration_s: video duration range [s].
      fps: frame rate [frames/s].
      height, width: frame size [px]; must be even.
      max_events: events per video are uniform in [1, max_events].
      min_event_s: shortest event [s] (TSP clips are 16 frames at 15 fps = 1.07 s).
      overlap_prob: probability that the next event starts before the previous one ends.
      gap_prob: probability of a background gap (1-4 s) before the next event.
    """

    min_duration_s: float = 8.0
    max_duration_s: float = 40.0
    fps: float = 15.0
    height: int = 64
    width: int = 64
    max_events: int = 4
    min_event_s: float = 2.0
    overlap_prob: float = 0.3
    gap_prob: float = 0.5

    def __post_init__(self):
        if self.height % 2 or self.width % 2:
            raise ValueError(f"frame size must be even for H.264, got {self.height}x{self.width}")
        if not 0 < self.min_duration_s <= self.max_duration_s:
            raise ValueError(
                f"bad duration range [{self.min_duration_s}, {self.max_duration_s}] s"
            )
        if self.min_duration_s < 2 * self.min_event_s:
            raise ValueError("min_duration_s must allow at least one event plus a gap")


def video_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """The generator of video `index`; `stream` separates scene (0) and caption sets (1, 2)."""
    return np.random.default_rng([seed, index, stream])


def sample_video_id(rng: np.random.Generator) -> str:
    """A YouTube-like id with ActivityNet's `v_` prefix."""
    return "v_" + "".join(_ID_ALPHABET[i] for i in rng.integers(0, len(_ID_ALPHABET), 11))


def _sample_positions(rng: np.random.Generator, count: int, action: str) -> tuple:
    """Initial centres, spread along the axis across the motion so objects do not overlap."""
    slots = (np.arange(count) + rng.uniform(0.3, 0.7)) / count  # even spread + jitter
    rng.shuffle(slots)
    along = rng.uniform(0.2, 0.8, count)
    if action in ("move_up", "move_down", "bounce"):
        xs, ys = slots, along  # vertical motion: spread horizontally
    else:
        xs, ys = along, slots
    if action in ("rotate", "grow", "shrink", "blink", "orbit") and count > 1:
        # Static-centre actions: spread along a diagonal-ish line for more room.
        xs = (np.arange(count) + 0.5) / count + rng.uniform(-0.05, 0.05, count)
        ys = rng.uniform(0.3, 0.7, count)
    return tuple((round(float(x), 4), round(float(y), 4)) for x, y in zip(xs, ys))


def _sample_event(rng: np.random.Generator, start: float, end: float) -> EventSpec:
    action = ACTIONS[rng.integers(len(ACTIONS))]
    shapes = ROTATION_VISIBLE_SHAPES if action == "rotate" else SHAPES
    count = int(COUNTS[rng.integers(len(COUNTS))])
    colors = tuple(COLORS)
    return EventSpec(
        start=start,
        end=end,
        count=count,
        size=SIZES[rng.integers(len(SIZES))],
        color=colors[rng.integers(len(colors))],
        shape=shapes[rng.integers(len(shapes))],
        action=action,
        speed=SPEEDS[rng.integers(len(SPEEDS))],
        positions=_sample_positions(rng, count, action),
        phase=round(float(rng.uniform()), 4),
    )


def sample_event_intervals(
    rng: np.random.Generator, duration: float, options: SceneOptions
) -> list[tuple[float, float]]:
    """1..max_events intervals inside [0, duration], with overlaps and gaps.

    Walks a cursor through the video: each event lasts at least `min_event_s`; the next one
    starts after a gap (background), right away, or before the current one ends (overlap).
    """
    num_events = int(rng.integers(1, options.max_events + 1))
    lead_in = rng.uniform(0.0, 3.0) if rng.uniform() < 0.6 else 0.0
    cursor = min(lead_in, duration - options.min_event_s)
    intervals: list[tuple[float, float]] = []
    mean_len = max(options.min_event_s, duration / (num_events + 0.5))
    for _ in range(num_events):
        if duration - cursor < options.min_event_s:
            break
        length = rng.uniform(options.min_event_s, max(options.min_event_s, 1.6 * mean_len))
        # Two decimals as in ActivityNet Captions; the end is rounded down so that it never
        # passes the video duration. Rounding here keeps back-to-back events contiguous.
        cursor = round(cursor, 2)
        end = math.floor(min(cursor + length, duration) * 100 + 1e-6) / 100
        intervals.append((cursor, end))
        u = rng.uniform()
        if u < options.overlap_prob:
            cursor = max(cursor + 0.5 * (end - cursor), end - rng.uniform(0.5, 3.0))
        elif u < options.overlap_prob + options.gap_prob:
            cursor = end + rng.uniform(1.0, 4.0)
        else:
            cursor = end
    return intervals


def sample_video_spec(seed: int, index: int, options: SceneOptions) -> VideoSpec:
    """The spec of video `index` of the data set with seed `seed` (deterministic)."""
    rng = video_rng(seed, index, 0)
    video_id = sample_video_id(rng)
    num_frames = int(round(rng.uniform(options.min_duration_s, options.max_duration_s)
                           * options.fps))
    duration = num_frames / options.fps
    intervals = sample_event_intervals(rng, duration, options)
    events = [_sample_event(rng, s, e) for s, e in intervals]
    events = [e for e in events if e.end > e.start]
    events.sort(key=lambda e: (e.start, e.end))
    return VideoSpec(
        video_id=video_id,
        num_frames=num_frames,
        fps=options.fps,
        height=options.height,
        width=options.width,
        background_seed=int(rng.integers(2**31)),
        events=tuple(events),
    )
