"""Feature extraction (stage "sa_tsp_extract") on the synthetic data set.

    python launch.py --config configs/sa_tsp/extract_synthetic.py:root=runs/synthetic \
        --workdir runs/synthetic/features_sa_tsp

Reads the encoder from `{root}/sa_tsp/params` (written at the end of sa_tsp_train; switch
params=DIR for another, e.g. an import_torch output) and every shard `{root}/shards/*.tfrecord`.
Clip settings must match training (synthetic: 8 frames, 64x64 frames, 56 crop); stride 8.
"""
from __future__ import annotations

import ml_collections

from configs.sa_tsp.base import parse_arg


def get_config(arg: str | None = None):
    sw = parse_arg(arg)
    root = sw.get("root", "runs/synthetic")
    c = ml_collections.ConfigDict()
    c.stage = "sa_tsp_extract"
    c.mesh = (("data", -1),)
    c.params_dir = sw.get("params", f"{root}/sa_tsp/params")
    c.shards = sw.get("shards", f"{root}/shards/*.tfrecord")
    c.dtype = "float32"
    c.batch_size = int(sw.get("batch", 32))
    c.clip_length = 8
    c.stride = int(sw.get("stride", 8))
    c.resize = (64, 64)
    c.crop = 56
    c.read_threads = 2
    c.videos_per_chunk = 64
    c.gvf_poolings = ("max", "avg")
    c.progress_every_s = 10.0
    return c
