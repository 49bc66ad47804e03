"""Stage "reproduce_splits" (data_prep/orchestration/reproduce_splits.py): train + enlarge /
select / scored parts of the validation videos, for `make reproduce`.

    python launch.py --config configs/reproduce/splits.py:root=demo_out/data --workdir DIR

Switches: root=DIR (the synthetic_data stage's output: captions/{train,val_1,val_2}.json),
enlarge=F (default 0.4), select=F (default 0.2; the rest, 0.4, is scored), seed=N (default 0).
"""
from __future__ import annotations

import os

import ml_collections

from configs.common import parse_arg, run_block


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    sw = parse_arg(arg, root="runs/synthetic", enlarge=0.4, select=0.2, seed=0)
    c = ml_collections.ConfigDict()
    c.stage = "reproduce_splits"
    c.run = run_block()
    captions = os.path.join(sw.root, "captions")
    c.train_captions = os.path.join(captions, "train.json")
    c.val_captions = [os.path.join(captions, "val_1.json"), os.path.join(captions, "val_2.json")]
    c.fractions = (sw.enlarge, sw.select)
    c.seed = sw.seed
    return c
