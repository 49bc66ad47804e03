"""Tiny mp4 videos + hand-built VideoLabels for the shard and pipeline tests.

Each source frame j of video v has a known color: red = (8 * j) % 256 (so the resampled frame
index can be read back), green = 40 * v, blue = a horizontal ramp (so flips and crops are
visible). Written with PyAV (libx264, 30 fps).
"""
from __future__ import annotations

import pathlib

import numpy as np

from data_prep.labels.types import IGNORE_INDEX, REGION_ACTION, REGION_BACKGROUND, VideoLabels

SRC_FPS = 30
HEIGHT, WIDTH = 48, 64


def source_frame(v: int, j: int) -> np.ndarray:
    img = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    img[..., 0] = (8 * j) % 256
    img[..., 1] = (40 * v) % 256
    img[..., 2] = np.linspace(0, 255, WIDTH).astype(np.uint8)[None, :]
    return img


def write_mp4(path: pathlib.Path, v: int, num_frames: int) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=SRC_FPS)
        s.width, s.height, s.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        s.options = {"crf": "10"}
        for j in range(num_frames):
            for p in s.encode(av.VideoFrame.from_ndarray(source_frame(v, j), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def make_labels(video_id: str, duration: float) -> VideoLabels:
    """An action [0, d/2], a background gap [d/2, 0.75 d], an action [0.75 d, d]; 2 events."""
    d = duration
    return VideoLabels(
        video_id=video_id,
        duration=d,
        segments=[[0.0, d / 2], [d / 2, 0.75 * d], [0.75 * d, d]],
        action_labels=[3, IGNORE_INDEX, 5],
        region_labels=[REGION_ACTION, REGION_BACKGROUND, REGION_ACTION],
        event_segments=[[0.0, d / 2], [0.6 * d, d]],
        event_concepts=[[1, 4], [0, 2, 6]],
    )


def make_video_set(root: pathlib.Path, lengths_frames=(60, 75, 90, 66)):
    """Writes videos v_000.. of the given lengths (source frames at 30 fps) + one corrupt
    file. Returns (list of (path, VideoLabels) incl. the corrupt one, corrupt video id)."""
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for v, n in enumerate(lengths_frames):
        path = root / f"v_{v:03d}.mp4"
        write_mp4(path, v, n)
        items.append((str(path), make_labels(f"v_{v:03d}", n / SRC_FPS)))
    bad = root / "v_bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x13" * 2000)
    items.insert(2, (str(bad), make_labels("v_bad", 2.0)))
    return items, "v_bad"


def toy_concepts(t0: float, t1: float, labels: VideoLabels, num_concepts: int, rule) -> np.ndarray:
    """Test stand-in for clip_concept_targets: union of concepts of events overlapping [t0,t1]."""
    out = np.zeros(num_concepts, np.float32)
    for (e0, e1), ids in zip(labels.event_segments, labels.event_concepts):
        if min(e1, t1) > max(e0, t0):
            out[ids] = 1.0
    return out


def labels_from_tsp_csv(csv_path: str, mapping_path: str) -> dict[str, VideoLabels]:
    """Test labels_fn helper: VideoLabels (TSP segments + labels, no events) from a TSP CSV."""
    from data_prep.labels.video_labels import build_video_labels

    return build_video_labels(csv_path, mapping_path, min_segment_s=0.0)
