"""Stage "caption_baseline": the most frequent training caption on every GT segment of val_1.

    python launch.py --config configs/caption_baseline.py:root=data/synthetic --workdir DIR

Switches: root=DIR (a synthetic_data workdir, or any folder with captions/train.json,
val_1.json, val_2.json), version=2018|latest.
"""
from __future__ import annotations

import os

import ml_collections

from configs.common import one_of, parse_arg, run_block


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    sw = parse_arg(arg, root="data/synthetic", version="2018")
    captions = os.path.join(sw.root, "captions")
    c = ml_collections.ConfigDict()
    c.stage = "caption_baseline"
    c.run = run_block()
    c.train_captions = os.path.join(captions, "train.json")
    c.split_captions = os.path.join(captions, "val_1.json")
    c.references = [os.path.join(captions, "val_1.json"), os.path.join(captions, "val_2.json")]
    c.version = one_of("version", sw.version, ("2018", "latest"))
    return c
