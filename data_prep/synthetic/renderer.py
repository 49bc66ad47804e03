"""Renders a `VideoSpec` to uint8 frames with numpy (vectorised over frames and pixels).

Coordinates are fractions of the frame side, origin at the top-left, y pointing down. Object
positions wrap around the frame edges (a torus), so moving objects never leave the picture:
an object crossing the right edge re-enters on the left. Outside its event an object is not
drawn, so background gaps show the bare background (what the region label describes).
"""
from __future__ import annotations

import math

import numpy as np

from data_prep.synthetic.attributes import COLORS, SIZE_RADIUS, SPEED_FACTOR, EventSpec, VideoSpec

# Base rates at speed "slow" (multiplied by SPEED_FACTOR): translation [frame sides/s],
# rotation [turns/s], growth/bounce/blink/orbit [cycles/s]. Every slow action changes the
# picture visibly within one encoder clip (8 frames at 7.5 fps = 1.07 s, at the encoder's
# 32x32): a slow move covers 0.21 frame sides (7 px), a slow grow/shrink changes the size
# by half the range. At the former 0.1 / 0.2 a slow grow changed the radius by under a pixel
# per clip, and an action-only encoder reached 34% instead of 48% held-out accuracy (400 steps).
_MOVE_RATE = 0.2
_TURN_RATE = 0.25
_SCALE_RATE = 0.5
_BOUNCE_RATE = 0.5
_BLINK_RATE = 0.75
_ORBIT_RATE = 0.3
_ORBIT_RADIUS = 0.12
_BOUNCE_HEIGHT = 0.25
_MIN_SCALE, _MAX_SCALE = 0.5, 1.4
_FRAME_NOISE = 3  # per-frame uniform noise amplitude [grey levels]


def background(spec: VideoSpec) -> np.ndarray:
    """The static background: a muted two-colour gradient plus low-frequency texture.

    Returns:
      float32 [H, W, 3] in [0, 255].
    """
    rng = np.random.default_rng(spec.background_seed)
    h, w = spec.height, spec.width
    c0, c1 = rng.uniform(20, 120, (2, 3))
    angle = rng.uniform(0, 2 * math.pi)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (x / w - 0.5) * math.cos(angle) + (y / h - 0.5) * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    img = c0 + (c1 - c0) * ramp[..., None]
    # Low-frequency texture: a coarse random grid, upsampled by nearest-neighbour + box blur.
    coarse = rng.uniform(-15, 15, (5, 5, 3)).astype(np.float32)
    yi = np.minimum((y / h * 5).astype(int), 4)
    xi = np.minimum((x / w * 5).astype(int), 4)
    texture = coarse[yi, xi]
    k = max(1, min(h, w) // 8)
    texture = _box_blur(texture, k)
    return np.clip(img + texture, 0, 255).astype(np.float32)


def _box_blur(img: np.ndarray, k: int) -> np.ndarray:
    """Separable box blur of width 2k+1 with edge padding, [H, W, C] -> [H, W, C]."""
    for axis in (0, 1):
        pad = [(0, 0)] * img.ndim
        pad[axis] = (k, k)
        padded = np.pad(img, pad, mode="edge")
        c = np.cumsum(padded, axis=axis, dtype=np.float64)
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
        n = img.shape[axis]
        hi = np.take(c, np.arange(2 * k + 1, 2 * k + 1 + n), axis=axis)
        lo = np.take(c, np.arange(0, n), axis=axis)
        img = ((hi - lo) / (2 * k + 1)).astype(np.float32)
    return img


def object_states(event: EventSpec, tau: np.ndarray) -> dict[str, np.ndarray]:
    """Pose of the event's objects at times `tau` [s] since the event start.

    Returns:
      dict with `cx`, `cy` float [n, T] (centres, fractions of the frame side), `scale` [T],
      `angle` [T] (radians), `visible` bool [T]; n = event.count.
    """
    k = SPEED_FACTOR[event.speed]
    pos = np.asarray(event.positions, np.float64)  # [n, 2]
    n, t = len(pos), len(tau)
    cx = np.repeat(pos[:, :1], t, axis=1)
    cy = np.repeat(pos[:, 1:], t, axis=1)
    scale = np.ones(t)
    # Upright unless rotating: a square at 45 degrees would look like a diamond.
    angle = np.zeros(t)
    visible = np.ones(t, bool)
    cycles = lambda rate: event.phase + rate * k * tau  # noqa: E731
    a = event.action
    if a == "move_left":
        cx = cx - _MOVE_RATE * k * tau
    elif a == "move_right":
        cx = cx + _MOVE_RATE * k * tau
    elif a == "move_up":
        cy = cy - _MOVE_RATE * k * tau
    elif a == "move_down":
        cy = cy + _MOVE_RATE * k * tau
    elif a == "rotate":
        angle = 2 * math.pi * cycles(_TURN_RATE)
    elif a == "grow":
        scale = _MIN_SCALE + (_MAX_SCALE - _MIN_SCALE) * np.mod(cycles(_SCALE_RATE), 1.0)
    elif a == "shrink":
        scale = _MAX_SCALE - (_MAX_SCALE - _MIN_SCALE) * np.mod(cycles(_SCALE_RATE), 1.0)
    elif a == "bounce":
        cy = cy - _BOUNCE_HEIGHT * np.abs(np.sin(math.pi * cycles(_BOUNCE_RATE)))
    elif a == "blink":
        visible = np.mod(cycles(_BLINK_RATE), 1.0) < 0.5
    elif a == "orbit":
        phi = 2 * math.pi * cycles(_ORBIT_RATE)
        cx = cx + _ORBIT_RADIUS * np.cos(phi)
        cy = cy + _ORBIT_RADIUS * np.sin(phi)
    else:
        raise ValueError(f"unknown action {a!r}")
    assert cx.shape == (n, t)
    return {"cx": np.mod(cx, 1.0), "cy": np.mod(cy, 1.0), "scale": scale, "angle": angle,
            "visible": visible}


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Inside-test of a shape of radius `r` centred at 0, in its own rotated frame (u, v)."""
    au, av = np.abs(u), np.abs(v)
    if shape == "circle":
        return u * u + v * v <= r * r
    if shape == "square":
        return np.maximum(au, av) <= 0.85 * r
    if shape == "diamond":
        return au + av <= 1.2 * r
    if shape == "triangle":  # apex up (v < 0), base at v = r/2
        return (v <= 0.5 * r) & (v >= -r + math.sqrt(3.0) * au)
    if shape == "cross":
        arm = 0.33 * r
        return ((au <= arm) & (av <= r)) | ((av <= arm) & (au <= r))
    raise ValueError(f"unknown shape {shape!r}")


def event_frame_range(event: EventSpec, fps: float, num_frames: int) -> tuple[int, int]:
    """Frames f with time f/fps in [start, end): the frames that show the event."""
    f0 = max(0, math.ceil(event.start * fps - 1e-9))
    f1 = min(num_frames, math.ceil(event.end * fps - 1e-9))
    return f0, max(f0, f1)


def paint_event(frames: np.ndarray, event: EventSpec, fps: float) -> None:
    """Draws the event's objects into `frames` (uint8 [T, H, W, 3]) in place."""
    num_frames, h, w, _ = frames.shape
    f0, f1 = event_frame_range(event, fps, num_frames)
    if f1 <= f0:
        return
    tau = np.arange(f0, f1) / fps - event.start
    st = object_states(event, tau)
    ys = (np.arange(h) + 0.5) / h
    xs = (np.arange(w) + 0.5) / w
    radius = SIZE_RADIUS[event.size] * st["scale"][:, None, None]  # [T, 1, 1]
    cos = np.cos(st["angle"])[:, None, None]
    sin = np.sin(st["angle"])[:, None, None]
    mask = np.zeros((f1 - f0, h, w), bool)
    for i in range(event.count):
        # Offsets on the torus, in units of the shorter frame side.
        dx = (np.mod(xs[None, None, :] - st["cx"][i][:, None, None] + 0.5, 1.0) - 0.5)
        dy = (np.mod(ys[None, :, None] - st["cy"][i][:, None, None] + 0.5, 1.0) - 0.5)
        dx, dy = dx * (w / min(h, w)), dy * (h / min(h, w))
        u = cos * dx + sin * dy
        v = -sin * dx + cos * dy
        mask |= shape_mask(event.shape, u, v, radius)
    mask &= st["visible"][:, None, None]
    frames[f0:f1][mask] = np.asarray(COLORS[event.color], np.uint8)


def render_frames(spec: VideoSpec) -> np.ndarray:
    """All frames of the video.

    Returns:
      uint8 [num_frames, height, width, 3] (RGB).
    """
    bg = background(spec)
    rng = np.random.default_rng([spec.background_seed, 1])
    noise = rng.integers(-_FRAME_NOISE, _FRAME_NOISE + 1,
                         (spec.num_frames, spec.height, spec.width, 1), dtype=np.int16)
    frames = np.clip(np.rint(bg)[None].astype(np.int16) + noise, 0, 255).astype(np.uint8)
    for event in spec.events:
        paint_event(frames, event, spec.fps)
    return frames
