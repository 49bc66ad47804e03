"""Stage "write_shards" on ActivityNet v1.3: videos -> TFRecord clip shards (TSP: 15 fps,
128x171).

    python launch.py --config configs/data/shards_activitynet.py:videos=data/anet/videos,\
concepts=data/anet/text/concepts.json --workdir data/anet/shards

Reads `{data}/activitynet_v1.3/tsp/activitynet_v1-3_{train,valid}_tsp_groundtruth.csv`
(segments and action labels, TSP) and `activitynet_v1-3_action_label_mapping.json` there,
the captioned events of `{data}/activitynet_captions/{train_modified,val_1}.json` and the
concept vocabulary of the text_vocab stage (configs/data/text_activitynet.py), and writes
`{workdir}/{train,val}-SSSSS-of-NNNNN.tfrecord` (+ `.index.json`, `{split}_report.json`
listing the videos without a file or that failed to decode: ActivityNet has many dead links).
See data_prep/shards/README.md.

Switches (comma-separated key=value):
  data=DIR        annotation root laid out as ../shared/data (default: that folder)
  videos=DIR      the videos, named by id (`v_<id>.mp4`, or `<id>.mkv`/...; default
                  data/activitynet/videos; a relative path is relative to the current
                  directory)
  concepts=PATH   concepts.json of the text_vocab stage ("" = events without concepts)
  shards=N        train shards (default 1000, about 1 GB each); val gets N // 2
  workers=N       decode processes (default 8; 0 = in the launching process)
  resize=S | HxW  default 128x171 (TSP); "keep" keeps the native size
  runlocal        1 shard per split, no worker processes, native size
"""
from __future__ import annotations

import os

import ml_collections

from configs.common import parse_arg, run_block
from data_prep.infra import paths

SHARED_DATA = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data"))
TSP = "activitynet_v1.3/tsp"


def _resize(value: str):
    if value in ("", "keep"):
        return ()
    if "x" in value:
        return tuple(int(v) for v in value.split("x"))
    return int(value)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    sw = parse_arg(arg, data=SHARED_DATA, videos="data/activitynet/videos", concepts="",
                   shards=1000, workers=8, resize="128x171", runlocal=False)
    runlocal = sw.runlocal
    c = ml_collections.ConfigDict()
    c.stage = "write_shards"
    c.run = run_block()
    c.data_root = sw.data
    # Absolute here: the stage resolves a relative video_dir against data_root.
    c.video_dir = paths.absolute(sw.videos)
    c.concept_vocab = sw.concepts
    c.action_label_mapping = f"{TSP}/activitynet_v1-3_action_label_mapping.json"
    c.fps = 15.0  # TSP clips: 16 frames at 15 fps
    c.clip_length = 16  # frames; segments shorter than one clip are dropped (TSP)
    c.resize = () if runlocal else _resize(sw.resize)  # () keeps the native size
    c.jpeg_quality = 90
    c.num_workers = 0 if runlocal else sw.workers
    c.max_videos = 0  # 0: all
    train_shards = 1 if runlocal else sw.shards
    c.splits = ml_collections.ConfigDict({
        # PDVC's train_modified.json: train.json with its 2 reversed segments in order.
        "train": {"tsp_groundtruth": f"{TSP}/activitynet_v1-3_train_tsp_groundtruth.csv",
                  "captions": ["activitynet_captions/train_modified.json"],
                  "num_shards": train_shards},
        "val": {"tsp_groundtruth": f"{TSP}/activitynet_v1-3_valid_tsp_groundtruth.csv",
                "captions": ["activitynet_captions/val_1.json"],
                "num_shards": max(1, train_shards // 2)},
    })
    return c
