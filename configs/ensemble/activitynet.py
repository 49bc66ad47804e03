"""Stage "ensemble" on ActivityNet Captions val: M=5 captioners (feature combinations x seeds),
GT proposals of val_1 (the report's "METEOR with GT proposals" setting), or a chosen model's
learned proposals (`proposals=model,proposals_model=I`; every member must then have captioned
that model's proposals).

    python launch.py --config configs/ensemble/activitynet.py:root=runs/anet \
        --workdir runs/anet/ensemble

Switches: root=DIR, data=DIR (ActivityNet Captions files), members=a+b+... (member workdir
suffixes), rule=..., proposals=gt|model,
proposals_model=I, predictions=FILE (name of each member's prediction file), version=2018|latest.
"""
from __future__ import annotations

import os

import ml_collections

from configs.common import one_of, parse_arg, run_block

_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                     "activitynet_captions")
_DEFAULT_MEMBERS = "satsp_i3d_vggish_s0+satsp_i3d_vggish_s1+satsp_i3d_s0+tsp_i3d_vggish_s0+satsp_s0"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    sw = parse_arg(arg, root="runs/anet", data=os.path.normpath(_DATA), members=_DEFAULT_MEMBERS,
                   predictions=os.path.join("predictions", "val_1.json"), proposals="gt",
                   proposals_model=0, rule="concepts_then_idf", version="2018")
    root = sw.root
    data = os.path.normpath(sw.data)
    members = sw.members.split("+")
    pred_name = sw.predictions
    config = ml_collections.ConfigDict()
    config.stage = "ensemble"
    config.run = run_block()
    config.predictions = [os.path.join(root, f"captioner_{m}", pred_name) for m in members]
    config.model_names = members
    config.proposals = one_of("proposals", sw.proposals, ("gt", "model"))
    config.proposals_file = os.path.join(data, "val_1.json")
    config.proposals_model = sw.proposals_model
    config.rule = sw.rule
    config.rule_kwargs = (
        ml_collections.ConfigDict(dict(w_concepts=1.0, w_idf=0.1, w_logprob=0.0))
        if config.rule == "weighted_sum" else ml_collections.ConfigDict()
    )
    config.concept_vocab = os.path.join(root, "text", "concepts.json")
    config.idf_table = os.path.join(root, "text", "idf.json")
    # The captioner's entries carry "sentence_score" = sum of word log-probs.
    config.logprob_field = "sentence_score"
    config.logprob_per_word = True
    config.references = [os.path.join(data, "val_1.json"), os.path.join(data, "val_2.json")]
    config.eval_version = one_of("version", sw.version, ("2018", "latest"))
    return config
