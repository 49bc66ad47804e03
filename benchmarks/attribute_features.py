"""Diagnostic features for the synthetic data set, computed from its ground-truth attributes.

Not a video encoder: every feature step (`step_s` seconds) holds the sum, over the events
active at that time, of one-hot codes of the event's attributes (count, size, colour, shape,
action, speed), plus Gaussian noise. They let tests and quick experiments check that the
captioner *can* learn to localise and describe events without first training an encoder
(an upper-bound input; real runs use `sa_tsp_extract` features). Written as PDVC-style
`.npy` files, one [N, D] float32 array per video.
"""
from __future__ import annotations

import json
import os

import numpy as np

from data_prep.infra.atomic_files import atomic_write_bytes

ATTRIBUTES = ("count", "size", "color", "shape", "action", "speed")


def _vocabularies(videos: dict) -> dict[str, list]:
    values = {a: set() for a in ATTRIBUTES}
    for video in videos.values():
        for event in video["events"]:
            for a in ATTRIBUTES:
                values[a].add(str(event[a]))
    return {a: sorted(v) for a, v in values.items()}


def write_attribute_features(events_json: str, out_dir: str, *, step_s: float = 0.5,
                             noise: float = 0.1, seed: int = 0) -> int:
    """Writes `<out_dir>/<video_id>.npy` for every video of `synthetic_events.json`.

    Returns the feature dimension."""
    with open(events_json, encoding="utf-8") as f:
        videos = json.load(f)["videos"]
    vocab = _vocabularies(videos)
    offsets, dim = {}, 0
    for a in ATTRIBUTES:
        offsets[a] = dim
        dim += len(vocab[a])
    os.makedirs(out_dir, exist_ok=True)
    for i, (vid, video) in enumerate(sorted(videos.items())):
        duration = video["num_frames"] / video["fps"]
        steps = max(int(np.ceil(duration / step_s)), 1)
        t = (np.arange(steps) + 0.5) * step_s
        feats = np.zeros((steps, dim), np.float32)
        for event in video["events"]:
            active = (t >= event["start"]) & (t < event["end"])
            for a in ATTRIBUTES:
                feats[active, offsets[a] + vocab[a].index(str(event[a]))] += 1.0
        rng = np.random.default_rng([seed, i])
        feats += noise * rng.standard_normal(feats.shape).astype(np.float32)
        import io

        buf = io.BytesIO()
        np.save(buf, feats)
        atomic_write_bytes(os.path.join(out_dir, f"{vid}.npy"), buf.getvalue())
    return dim
