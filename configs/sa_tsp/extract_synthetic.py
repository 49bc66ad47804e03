"""Feature extraction (stage "sa_tsp_extract") on the synthetic data set.

    python launch.py --config configs/sa_tsp/extract_synthetic.py:root=runs/synthetic \
        --workdir runs/synthetic/features_sa_tsp

Reads the encoder from `{root}/sa_tsp/params` (written at the end of sa_tsp_train; switch
params=DIR for another, e.g. an import_torch output) and every shard `{root}/shards/*.tfrecord`.
Clip settings must match training (synthetic: 8 frames, 64x64 frames, 56 crop); stride 8.
"""
from __future__ import annotations

import ml_collections

from configs.common import parse_arg, run_block


def get_config(arg: str | None = None):
    sw = parse_arg(arg, root="runs/synthetic", params="", shards="", batch=32, stride=8)
    root = sw.root
    c = ml_collections.ConfigDict()
    c.stage = "sa_tsp_extract"
    c.run = run_block()
    c.mesh = (("data", -1),)
    c.params_dir = sw.params or f"{root}/sa_tsp/params"
    c.shards = sw.shards or f"{root}/shards/*.tfrecord"
    c.dtype = "float32"
    c.batch_size = sw.batch
    c.clip_length = 8
    c.stride = sw.stride
    c.resize = (64, 64)
    c.crop = 56
    c.read_threads = 2
    c.videos_per_chunk = 64
    c.gvf_poolings = ("max", "avg")
    c.progress_every_s = 10.0
    return c
