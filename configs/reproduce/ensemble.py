"""Stage "reproduce_ensemble" (data_prep/orchestration/reproduce_ensemble.py): the ensemble row
of the reproduce Table 2, its size chosen on the select split. The pipeline
(configs/pipeline/reproduce.py) fills the lists by overrides.

Switches: proposals=gt|learned, sizes=1+2+3 (candidate ensemble sizes), root=DIR (the data
root: text/concepts.json, text/idf.json).
"""
from __future__ import annotations

import os

import ml_collections

from configs.common import one_of, parse_arg, run_block


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    sw = parse_arg(arg, proposals="gt", sizes="1+2+3", root="runs/synthetic")
    c = ml_collections.ConfigDict()
    c.stage = "reproduce_ensemble"
    c.run = run_block()
    c.proposals = one_of("proposals", sw.proposals, ("gt", "learned"))
    c.sizes = [int(m) for m in sw.sizes.split("+")]
    c.members = [""]  # workdirs of the trained captioners (set by the pipeline)
    c.windows = [[0]]  # member indices per repetition
    c.predict_config = ""
    c.member_features = [[]]  # per member: its data.features
    c.select_files = [""]
    c.scored_files = [""]
    c.concept_vocab = os.path.join(sw.root, "text", "concepts.json")
    c.idf_table = os.path.join(sw.root, "text", "idf.json")
    c.rule = "concepts_then_idf"
    c.eval_version = "2018"
    return c
