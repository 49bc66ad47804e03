"""Stage "write_shards" on the synthetic data set: videos -> TFRecord clip shards.

    python launch.py --config configs/data/shards_synthetic.py:root=data/synthetic \
        --workdir data/synthetic/shards

Reads `{root}/videos/*.mp4`, `{root}/tsp/{train,valid}_tsp_groundtruth.csv`,
`{root}/captions/{train,val_1}.json` and the concept vocabulary of the text_vocab stage
(`{root}/text/concepts.json`), and writes `{workdir}/{train,val}-SSSSS-of-NNNNN.tfrecord`
with `.index.json` files and `{split}_report.json` (skipped videos). Frames are stored at
7.5 fps (the videos are 15 fps): the synthetic encoder's 8-frame clips then span 1.07 s, as
TSP's 16 frames at 15 fps, which the slow motions need (see configs/sa_tsp/synthetic.py).
The synthetic videos keep their native size (64x64; the SA-TSP synthetic config resizes on
decode) unless `resize=` is given.

Switches (comma-separated key=value):
  root=DIR        data set root (default data/synthetic)
  shards=N        shards per split (default 4)
  workers=N       decode processes (default 2; 0 = in the launching process)
  resize=S | HxW  shorter side S or fixed HxW (default: keep); e.g. resize=128x171 (TSP)
  fps=X           stored frame rate (default 7.5; must equal the encoder config's input.fps)
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
    sw = parse_arg(arg, root="data/synthetic", shards=4, workers=2, resize="", fps=7.5,
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
    c.fps = sw.fps
    # Frames; segments shorter than one clip are dropped (TSP). 8 frames at 7.5 fps = 1.07 s,
    # the segment length TSP's 16 frames at 15 fps keep.
    c.clip_length = 8
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
