"""Feature extraction (stage "sa_tsp_extract") on the synthetic data set.

    python launch.py --config configs/sa_tsp/extract_synthetic.py:root=runs/synthetic \
        --workdir runs/synthetic/features_sa_tsp

Reads the encoder from `{root}/sa_tsp/params` (written at the end of sa_tsp_train; switch
params=DIR for another, e.g. an import_torch output) and every shard `{root}/shards/*.tfrecord`.
Clip length, frame size and crop are the encoder's (its export records them); stride 8.
Switches: root=DIR, params=DIR, shards=GLOB, batch=N (global), stride=N.
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
    c.init_from = sw.params or f"{root}/sa_tsp/params"
    c.shards = sw.shards or f"{root}/shards/*.tfrecord"
    c.dtype = "float32"
    c.data = ml_collections.ConfigDict()
    c.data.batch_size = sw.batch  # global
    c.stride = sw.stride  # frames between clip starts
    # Clip geometry: empty / 0 = the encoder's, recorded in its export
    # (`{init_from}/backbone_config.json`). A value given here must equal training (checked
    # by sa_tsp_jax/extract_features.py); only exports without a recorded geometry need them.
    c.clip_length = 0
    c.resize = ()
    c.crop = 0
    c.read_threads = 2
    c.videos_per_chunk = 64
    c.gvf_poolings = ("max", "avg")
    c.progress_every_s = 10.0
    c.force = False  # True: delete outputs of other encoder/geometry/shards and extract again
    return c
