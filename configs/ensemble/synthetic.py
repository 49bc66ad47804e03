"""Stage "ensemble" on the synthetic data set: 3 captioners, GT proposals of val_1.

    python launch.py --config configs/ensemble/synthetic.py:root=runs/synthetic \
        --workdir runs/synthetic/ensemble

Expects, under `root` (switch `root=DIR`, default runs/synthetic):
  data/captions/{val_1,val_2}.json            the synthetic data set (stage synthetic_data)
  data/text/{concepts,idf}.json               concept vocabulary + IDF (stage text_vocab)
  captioner_<m>/predictions/val_1.json        each member's captions of the GT proposals
                                              (stage captioner_predict with GT proposals)
Switches: root=DIR, members=a+b+c (member workdir suffixes, default seed0+seed1+seed2),
rule=concepts_then_idf|weighted_sum|mean_logprob, proposals=gt|model, version=2018|latest.
"""
from __future__ import annotations

import os

import ml_collections

from configs.common import one_of, parse_arg, run_block


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    sw = parse_arg(arg, root="runs/synthetic", members="seed0+seed1+seed2", proposals="gt",
                   rule="concepts_then_idf", version="2018")
    root = sw.root
    members = sw.members.split("+")
    config = ml_collections.ConfigDict()
    config.stage = "ensemble"
    config.run = run_block()
    config.predictions = [
        os.path.join(root, f"captioner_{m}", "predictions", "val_1.json") for m in members
    ]
    config.model_names = members
    config.proposals = one_of("proposals", sw.proposals, ("gt", "model"))
    config.proposals_file = os.path.join(root, "data", "captions", "val_1.json")
    config.proposals_model = 0  # used when proposals == "model"
    config.rule = sw.rule
    # Only read by "weighted_sum" (ignored by the other rules' factories: keep it empty then).
    config.rule_kwargs = (
        ml_collections.ConfigDict(dict(w_concepts=1.0, w_idf=0.1, w_logprob=0.0))
        if config.rule == "weighted_sum" else ml_collections.ConfigDict()
    )
    config.concept_vocab = os.path.join(root, "data", "text", "concepts.json")
    config.idf_table = os.path.join(root, "data", "text", "idf.json")
    # The captioner's entries carry "sentence_score" = sum of word log-probs.
    config.logprob_field = "sentence_score"
    config.logprob_per_word = True
    config.references = [
        os.path.join(root, "data", "captions", "val_1.json"),
        os.path.join(root, "data", "captions", "val_2.json"),
    ]
    config.eval_version = one_of("version", sw.version, ("2018", "latest"))
    return config
