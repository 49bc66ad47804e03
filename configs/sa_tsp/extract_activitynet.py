"""Feature extraction (stage "sa_tsp_extract") on ActivityNet, as TSP: R(2+1)D-34, stride 16,
the clip geometry of the encoder's export (TSP: 16-frame clips at 15 fps, 128x171 frames,
centre crop 112) -> (N, 512) per video.

    python launch.py --config configs/sa_tsp/extract_activitynet.py:root=data/activitynet \
        --workdir runs/activitynet/features_sa_tsp

Switches: root=DIR, params=DIR (default runs/activitynet/sa_tsp/params, the sa_tsp_train
output; or a `python -m sa_tsp_jax.import_torch` output), shards=GLOB, batch=N (global), bf16.
"""
from __future__ import annotations

import ml_collections

from configs.common import parse_arg, run_block


def get_config(arg: str | None = None):
    sw = parse_arg(arg, root="data/activitynet", params="runs/activitynet/sa_tsp/params",
                   shards="", batch=128, bf16=False)
    root = sw.root
    c = ml_collections.ConfigDict()
    c.stage = "sa_tsp_extract"
    c.run = run_block()
    c.mesh = (("data", -1),)
    c.init_from = sw.params
    c.shards = sw.shards or f"{root}/shards/*.tfrecord"
    c.dtype = "bfloat16" if sw.bf16 else "float32"
    c.data = ml_collections.ConfigDict()
    c.data.batch_size = sw.batch  # global
    c.stride = 16  # frames between clip starts (TSP: non-overlapping 16-frame clips)
    # Clip geometry: empty / 0 = the encoder's, recorded in its export
    # (`{init_from}/backbone_config.json`). A value given here must equal training (checked
    # by sa_tsp_jax/extract_features.py); only exports without a recorded geometry need them.
    c.clip_length = 0
    c.resize = ()
    c.crop = 0
    c.read_threads = 16
    c.videos_per_chunk = 256
    c.gvf_poolings = ("max",)
    c.progress_every_s = 30.0
    c.force = False  # True: delete outputs of other encoder/geometry/shards and extract again
    return c
