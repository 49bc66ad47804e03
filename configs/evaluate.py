"""Official dense-captioning evaluation of a submission (stage "evaluate").

    python launch.py --config configs/evaluate.py --workdir /tmp/eval \
        --config.submission=PRED.json
    python launch.py --config configs/evaluate.py:version=latest,soda,para --workdir /tmp/eval \
        --config.submission=PRED.json

Switches in `arg` (comma-separated): `version=2018|latest`, `soda` (SODA_c), `para`
(paragraph metrics against ae-val), `lenient`, `official_inputs` (score NaN/inf and
[s, e, score] timestamps exactly as the official script does), `runlocal` (only tIoU 0.5, fast).
Fields mirror `python -m captioner_jax.evaluate`.
"""
from __future__ import annotations

import os

import ml_collections

from configs.common import one_of, parse_arg, run_block

_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                     "shared", "data", "activitynet_captions")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    switches = parse_arg(arg, version="2018", soda=False, para=False, lenient=False,
                         official_inputs=False, runlocal=False)
    c = ml_collections.ConfigDict()
    c.stage = "evaluate"
    c.run = run_block()
    c.submission = ""
    c.references = [os.path.normpath(os.path.join(_DATA, f"val_{i}.json")) for i in (1, 2)]
    c.version = one_of("version", switches.version, ("2018", "latest"))
    c.tious = [0.5] if switches.runlocal else [0.3, 0.5, 0.7, 0.9]
    c.max_proposals = 1000
    c.soda = switches.soda
    c.para_references = (
        [os.path.normpath(os.path.join(_DATA, "para", f"anet_entities_val_{i}_para.json"))
         for i in (1, 2)] if switches.para else [])
    c.lenient = switches.lenient
    # Visit videos in the order of an official run with PYTHONHASHSEED=hash_seed (None: sorted).
    c.hash_seed = ml_collections.config_dict.placeholder(int)
    c.official_inputs = switches.official_inputs
    c.output_name = "eval_results.json"
    return c
