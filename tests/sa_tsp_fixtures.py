"""Tiny TFRecord clip shards with a learnable signal, for the SA-TSP trainer/extractor tests.

Each video: 3 s at 15 fps, 24x24 frames; an action segment [0, 1.6) s whose frames are a
solid colour of its class (class = video index % 3) plus noise, then a background segment
[1.6, 3.0) s of grey noise. One captioned event over the action with concepts {class, class+3}.
Written with the data layer's record encoder and TFRecord writer (no index file: the reader
scans the shard).
"""
from __future__ import annotations

import os

import numpy as np

from data_prep.labels.types import IGNORE_INDEX, REGION_ACTION, REGION_BACKGROUND, VideoLabels
from data_prep.shards.records import encode_video_record
from data_prep.shards.tfrecord import TFRecordWriter
from data_prep.video.jpeg import encode_jpeg

COLOURS = np.array([[230, 30, 30], [30, 230, 30], [30, 30, 230]], np.float32)
FPS, NUM_FRAMES, SIZE = 15.0, 45, 24
# A tiny R(2+1)D ("small" variant shapes, narrower) for exports in extraction / probe tests.
TINY_BACKBONE_CFG = dict(stage_sizes=(1, 1, 1, 1), widths=(8, 16, 32, 64), stem_width=6,
                         midplane_rule="tsp")


def make_video(index: int, rng: np.random.Generator):
    cls = index % 3
    vid = f"v_tiny{index:03d}"
    frames = []
    for f in range(NUM_FRAMES):
        t = f / FPS
        base = COLOURS[cls] if t < 1.6 else np.full(3, 128, np.float32)
        img = base + rng.normal(0, 25, size=(SIZE, SIZE, 3))
        frames.append(encode_jpeg(np.clip(img, 0, 255).astype(np.uint8), quality=90))
    labels = VideoLabels(
        video_id=vid, duration=NUM_FRAMES / FPS,
        segments=[[0.0, 1.6], [1.6, NUM_FRAMES / FPS]],
        action_labels=[cls, IGNORE_INDEX], region_labels=[REGION_ACTION, REGION_BACKGROUND],
        event_segments=[[0.0, 1.6]], event_concepts=[[cls, cls + 3]])
    return encode_video_record(vid, FPS, NUM_FRAMES / FPS, frames, SIZE, SIZE, labels), vid


def write_tiny_shards(directory: str, num_videos: int = 6, num_shards: int = 2,
                      prefix: str = "train", seed: int = 0) -> tuple[list[str], list[str]]:
    """Returns (shard paths, video ids)."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    records = [make_video(i, rng) for i in range(num_videos)]
    paths = []
    for k in range(num_shards):
        path = os.path.join(directory, f"{prefix}-{k:05d}-of-{num_shards:05d}.tfrecord")
        with TFRecordWriter(path) as w:
            for data, _ in records[k::num_shards]:
                w.write(data)
        paths.append(path)
    return paths, [v for _, v in records]
