"""Stage "write_shards" on the synthetic data set: videos -> TFRecord clip shards.

    python launch.py --config configs/data/shards_synthetic.py:root=data/synthetic \
        --workdir data/synthetic/shards

Reads `{root}/videos/*.mp4`, `{root}/tsp/{train,valid}_tsp_groundtruth.csv`,
`{root}/captions/{train,val_1}.json` and the concept vocabulary of the text_vocab stage
(`{root}/text/concepts.json`), and writes `{workdir}/{train,val}-SSSSS-of-NNNNN.tfrecord`
with `.index.json` files and `{split}_report.json` (skipped videos). Frames are stored at
15 fps; the synthetic videos keep their native size (64x64; SA-TSP synthetic configs crop
56) unless `resize=` is given.

Switches (comma-separated key=value):
  root=DIR        data set root (default data/synthetic)
  shards=N        shards per split (default 4)
  workers=N       decode processes (default 2; 0 = in the launching process)
  resize=S | HxW  shorter side S or fixed HxW (default: keep); e.g. resize=128x171 (TSP)
  concepts=PATH   concept vocabulary JSON (default {root}/text/concepts.json)
  runlocal        4 videos per split, 1 shard, no worker processes
"""
from __future__ import annotations

import ml_collections

from configs.common import parse_arg, run_block


def _resize(value: str):
    if not value:
        return ()
    if "x" in value:
        return tuple(int(v) for v in value.split("x"))
    return int(value)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    sw = parse_arg(arg, root="data/synthetic", shards=4, workers=2, resize="",
                   concepts="text/concepts.json", runlocal=False)
    runlocal = sw.runlocal
    root = sw.root
    shards = 1 if runlocal else sw.shards
    c = ml_collections.ConfigDict()
    c.stage = "write_shards"
    c.run = run_block()
    c.data_root = root
    c.video_dir = "videos"
    c.concept_vocab = sw.concepts
    c.action_label_mapping = "tsp/action_label_mapping.json"
    c.fps = 15.0  # TSP clips: 16 frames at 15 fps
    c.clip_length = 16  # frames; segments shorter than one clip are dropped (TSP)
    c.resize = _resize(sw.resize)  # () keeps the native size
    c.jpeg_quality = 90
    # True: skip truncated videos and videos shorter than one clip (default: keep, report).
    c.strict = False
    c.num_workers = 0 if runlocal else sw.workers
    c.max_videos = 4 if runlocal else 0  # 0: all
    c.splits = ml_collections.ConfigDict({
        "train": {"tsp_groundtruth": "tsp/train_tsp_groundtruth.csv",
                  "captions": ["captions/train.json"], "num_shards": shards},
        "val": {"tsp_groundtruth": "tsp/valid_tsp_groundtruth.csv",
                "captions": ["captions/val_1.json"], "num_shards": shards},
    })
    return c
