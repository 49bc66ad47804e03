"""Clip decoding and the TSP clip transforms (numpy, per clip, uint8 in -> float32 out).

TSP (train/train.py) applies: uint8 -> float/255 -> Resize((128, 171)) -> (train)
RandomHorizontalFlip -> Normalize(mean, std) -> RandomCrop(112) / CenterCrop(112).
Flip, crop and the per-channel normalisation commute, so we crop and flip the uint8 frames
first and normalise only the 112x112 result (same numbers, ~2.3x less arithmetic). The resize
happens when the shards are written (or, if the stored size differs, on JPEG decode).
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from data_prep.video.jpeg import decode_jpeg

# TSP's Normalize constants (Kinetics statistics), RGB order.
TSP_MEAN = (0.43216, 0.394666, 0.37645)
TSP_STD = (0.22803, 0.22145, 0.216989)


def decode_clip(jpeg_frames, start: int, length: int, size_hw=None) -> np.ndarray:
    """Decodes frames [start, start + length) -> uint8 [length, H, W, 3].

    Indices past the last frame repeat the last frame (only videos shorter than one clip).
    """
    last = len(jpeg_frames) - 1
    if last < 0:
        raise ValueError("video has no frames")
    images = [decode_jpeg(jpeg_frames[min(i, last)], size_hw) for i in range(start, start + length)]
    return np.stack(images)


def center_crop_offsets(h: int, w: int, crop: int) -> tuple[int, int]:
    """TSP/torchvision center crop: top = round((h - crop) / 2), left likewise (Python round)."""
    if crop > h or crop > w:
        raise ValueError(f"crop {crop} larger than frames {h}x{w}")
    return int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))


def crop_and_flip(frames: np.ndarray, crop: int, train: bool, rng: np.random.Generator | None,
                  hflip: bool = True) -> np.ndarray:
    """uint8 [T, H, W, 3] -> uint8 [T, crop, crop, 3].

    train: flip with probability 0.5 (only if `hflip`), then a uniformly random crop position
    (TSP order); eval: center crop, no flip. `hflip=False` is for label sets where left and
    right differ (the synthetic "Moving left" / "Moving right": a mirrored clip shows the other
    class under the same label); the coin is still drawn, so the crops are the same either way.
    """
    t, h, w, _ = frames.shape
    if train:
        if rng is None:
            raise ValueError("train transform needs an rng")
        if crop > h or crop > w:
            raise ValueError(f"crop {crop} larger than frames {h}x{w}")
        flip = (rng.random() < 0.5) and hflip
        top = int(rng.integers(0, h - crop + 1))
        left = int(rng.integers(0, w - crop + 1))
        out = frames[:, top:top + crop, left:left + crop]
        return out[:, :, ::-1] if flip else out
    top, left = center_crop_offsets(h, w, crop)
    return frames[:, top:top + crop, left:left + crop]


def normalize(frames: np.ndarray, mean=TSP_MEAN, std=TSP_STD) -> np.ndarray:
    """uint8 [..., 3] -> float32 (x / 255 - mean) / std."""
    scale = np.float32(1.0 / 255.0) / np.asarray(std, np.float32)
    shift = np.asarray(mean, np.float32) / np.asarray(std, np.float32)
    # One fused uint8 -> float32 multiply, then an in-place subtract (2x faster than astype).
    out = np.multiply(frames, scale, dtype=np.float32)
    out -= shift
    return out


class RecordCache:
    """A small thread-safe LRU of parsed records: consecutive clips of one video (sliding
    windows) read and parse the record once. One per process (not shared across workers)."""

    def __init__(self, source, capacity: int = 4):
        self.source = source
        self.capacity = capacity
        self._items: OrderedDict[int, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, i: int):
        with self._lock:
            if i in self._items:
                self._items.move_to_end(i)
                return self._items[i]
        record = self.source[i]
        with self._lock:
            self._items[i] = record
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return record

    def __getstate__(self):
        return {"source": self.source, "capacity": self.capacity}

    def __setstate__(self, state):
        self.__init__(state["source"], state["capacity"])
