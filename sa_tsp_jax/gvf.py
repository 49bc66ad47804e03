"""Global video features (GVF): one vector per video, the input of TSP's region head.

TSP computes the GVF of a video by max-pooling (or averaging) over time the clip features of
a reference encoder, and stores them in one HDF5 file keyed by video id. We use the same
layout: `/<video_id>` -> float32 [D]. Files may be local or remote (`gs://`): h5py needs a
local file, so reads and writes stage through one (`data_prep.infra.paths.local_copy` /
`local_output`).
"""
from __future__ import annotations

import h5py
import numpy as np

from data_prep.infra import paths

POOLINGS = ("max", "avg")


def pool_features(features: np.ndarray, pooling: str = "max") -> np.ndarray:
    """[N, D] clip features -> [D] float32 ("max" or "avg" over N)."""
    features = np.asarray(features, np.float32)
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"expected [N >= 1, D] features, got shape {features.shape}")
    if pooling == "max":
        return features.max(axis=0)
    if pooling == "avg":
        return features.mean(axis=0)
    raise ValueError(f"unknown GVF pooling {pooling!r}; expected one of {POOLINGS}")


def write_gvf(path: str, gvf: dict[str, np.ndarray]) -> None:
    """Writes {video_id: [D]} to an HDF5 file atomically (a local temporary file that lands at
    `path` complete, or not at all)."""
    with paths.local_output(path) as tmp, h5py.File(tmp, "w") as f:
        for video_id, vec in gvf.items():
            f.create_dataset(video_id, data=np.asarray(vec, np.float32))


class GvfTable:
    """In-memory {video_id: [D]} read from a GVF HDF5 file; `lookup(ids) -> [B, D]`."""

    def __init__(self, path: str):
        self.path = path
        if not paths.is_file(path):
            raise FileNotFoundError(f"GVF file {path} does not exist")
        with paths.local_copy(path) as local, h5py.File(local, "r") as f:
            self.table = {k: np.asarray(f[k], np.float32) for k in f.keys()}
        if not self.table:
            raise ValueError(f"GVF file {path} is empty")
        dims = {v.shape for v in self.table.values()}
        if len(dims) != 1 or len(next(iter(dims))) != 1:
            raise ValueError(f"GVF file {path}: expected one [D] vector per video, got {dims}")
        self.dim = next(iter(dims))[0]

    def lookup(self, video_ids) -> np.ndarray:
        out = np.empty((len(video_ids), self.dim), np.float32)
        for i, vid in enumerate(video_ids):
            vid = str(vid)
            if vid not in self.table:
                raise KeyError(f"GVF file {self.path} has no feature for video {vid!r}")
            out[i] = self.table[vid]
        return out
