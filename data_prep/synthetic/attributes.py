"""The closed world of the synthetic data set: object attributes, actions, and the event spec.

An event is `count` identical objects (same size, color and shape) performing one action at
one speed during [start, end] seconds. Every attribute is visible in pixels (see
`renderer.py`), so a video encoder can learn the action class (the TSP action label) and the
attributes (the semantic concepts of the captions).
"""
from __future__ import annotations

import dataclasses

COUNTS = (1, 2, 3)
SIZES = ("small", "big")
# Object radius as a fraction of the frame side, per size.
SIZE_RADIUS = {"small": 0.08, "big": 0.15}

# Saturated colors, far from the muted backgrounds (`renderer.background`), RGB uint8.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 40),
    "blue": (40, 70, 240),
    "yellow": (245, 230, 30),
    "purple": (160, 40, 220),
    "orange": (255, 140, 0),
    "white": (250, 250, 250),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
# A rotating circle looks static; these shapes show rotation.
ROTATION_VISIBLE_SHAPES = ("square", "triangle", "diamond", "cross")

# Action classes: index = TSP action label id. The display names follow ActivityNet's
# style ("Capitalized phrase") and form `tsp/action_label_mapping.json`.
ACTIONS = (
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "rotate",
    "grow",
    "shrink",
    "bounce",
    "blink",
    "orbit",
)
ACTION_DISPLAY_NAMES = {
    "move_left": "Moving left",
    "move_right": "Moving right",
    "move_up": "Moving up",
    "move_down": "Moving down",
    "rotate": "Rotating",
    "grow": "Growing",
    "shrink": "Shrinking",
    "bounce": "Bouncing",
    "blink": "Blinking",
    "orbit": "Circling",
}
SPEEDS = ("slow", "quick")
# Multiplier of every action's rate (pixels/s, radians/s, cycles/s) per speed.
SPEED_FACTOR = {"slow": 1.0, "quick": 2.5}


@dataclasses.dataclass(frozen=True)
class EventSpec:
    """One event of a synthetic video.

    Attributes:
      start, end: event interval [s], 0 <= start < end <= video duration.
      count: number of objects (1-3).
      size: "small" or "big".
      color: key of COLORS.
      shape: one of SHAPES.
      action: one of ACTIONS.
      speed: "slow" or "quick".
      positions: `count` initial object centres (x, y) as fractions of the frame side.
      phase: start phase of periodic actions, in cycles [0, 1).
    """

    start: float
    end: float
    count: int
    size: str
    color: str
    shape: str
    action: str
    speed: str
    positions: tuple[tuple[float, float], ...]
    phase: float

    @property
    def action_name(self) -> str:
        return ACTION_DISPLAY_NAMES[self.action]

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["positions"] = [list(p) for p in self.positions]
        return d


@dataclasses.dataclass(frozen=True)
class VideoSpec:
    """A synthetic video: id (with `v_` prefix), frames, background and events.

    Attributes:
      video_id: e.g. `v_Ab3dE_fGh1J` (11 characters after the prefix, as YouTube ids).
      num_frames: number of frames; duration = num_frames / fps [s].
      fps: frame rate [frames/s].
      height, width: frame size [px], even (H.264 with yuv420p needs even sizes).
      background_seed: seed of the background texture and noise.
      events: the events, sorted by start time.
    """

    video_id: str
    num_frames: int
    fps: float
    height: int
    width: int
    background_seed: int
    events: tuple[EventSpec, ...]

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps
