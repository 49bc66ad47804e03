"""Stage "synthetic_data": the embedded synthetic dense-captioning data set.

    python launch.py --config configs/data/synthetic.py:size=demo --workdir data/synthetic

Switches in the arg (comma-separated key=value):
  size=tiny   12 videos (8 train / 4 val), 8-12 s, 64x64: the test fixture's size.
  size=demo   300 videos (240 / 60), 8-20 s, 64x64 (default; well under a minute on 2 cores).
  size=large  2500 videos (2000 / 500), 8-40 s, 128x172 (TSP resizes to 128x171; H.264 needs
              even sizes), for GPU runs.
  seed=N      data set seed (default 0).
  workers=N   rendering processes (default 0 = all CPU cores).
"""
from __future__ import annotations

import ml_collections

from configs.common import one_of, parse_arg, run_block

_SIZES = {
    "tiny": dict(num_train=8, num_val=4, min_duration_s=8.0, max_duration_s=12.0,
                 height=64, width=64),
    "demo": dict(num_train=240, num_val=60, min_duration_s=8.0, max_duration_s=20.0,
                 height=64, width=64),
    "large": dict(num_train=2000, num_val=500, min_duration_s=8.0, max_duration_s=40.0,
                  height=128, width=172),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    switches = parse_arg(arg, size="demo", seed=0, workers=0)
    size = one_of("size", switches.size, sorted(_SIZES))
    config = ml_collections.ConfigDict()
    config.stage = "synthetic_data"
    config.run = run_block()
    config.size = size
    config.seed = switches.seed
    config.workers = switches.workers
    config.fps = 15.0
    config.max_events = 4
    config.crf = 20
    config.preset = "ultrafast"
    config.skip_existing_videos = False
    config.update(_SIZES[size])
    return config
