"""Stage "activitynet_subset": the real ActivityNet annotation files restricted to a few video
ids, plus a tiny generated video per id (data_prep/synthetic/activitynet_subset.py); the data of
`configs/pipeline/activitynet.py:runlocal`.

    python launch.py --config configs/data/activitynet_subset.py:train=4,val=2 \
        --workdir /tmp/anet_subset

Switches (comma-separated key=value):
  source=DIR      the real data root, laid out as ../shared/data (default: that folder)
  train=N, val=N  how many ids per split (default 4 and 2): the first in sorted order that are
                  in every file of the split, last min_s..max_s seconds (default 10..20) and
                  have >= 2 captioned events
  ids=a+b+...     explicit ids instead (`v_...`; each goes to the split whose files hold it)
  size=N          frame size of the generated videos (default 64; even)
  seed=N          scene seed of the generated videos (default 0)
"""
from __future__ import annotations

import os

import ml_collections

from configs.common import parse_arg, run_block

SHARED_DATA = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data"))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    sw = parse_arg(arg, source=SHARED_DATA, train=4, val=2, min_s=10.0, max_s=20.0, ids="",
                   size=64, seed=0)
    c = ml_collections.ConfigDict()
    c.stage = "activitynet_subset"
    c.run = run_block()
    c.source = sw.source
    c.num_train = sw.train
    c.num_val = sw.val
    c.video_ids = [v for v in sw.ids.split("+") if v]  # [] = choose (num_train, num_val)
    c.min_duration_s = sw.min_s
    c.max_duration_s = sw.max_s
    c.min_events = 2
    c.fps = 15.0  # the frame rate the shards store (TSP: 15 fps)
    c.height = c.width = sw.size
    c.seed = sw.seed
    return c
