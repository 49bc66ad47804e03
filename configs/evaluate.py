"""Official dense-captioning evaluation of a submission (stage "evaluate").

    python launch.py --config configs/evaluate.py --workdir /tmp/eval \
        --config.submission=PRED.json
    python launch.py --config configs/evaluate.py:version=latest,soda,para --workdir /tmp/eval \
        --config.submission=PRED.json

Switches in `arg` (comma-separated): `version=2018|latest`, `soda` (SODA_c), `para`
(paragraph metrics against ae-val), `lenient`, `runlocal` (only tIoU 0.5, fast).
Fields mirror `python -m captioner_jax.evaluate`.
"""
from __future__ import annotations

import os

import ml_collections

_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                     "shared", "data", "activitynet_captions")


def _parse(arg: str | None) -> dict[str, str]:
    out = {}
    for item in (arg or "").split(","):
        item = item.strip()
        if item:
            key, _, value = item.partition("=")
            out[key] = value or "1"
    return out


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    switches = _parse(arg)
    unknown = set(switches) - {"version", "soda", "para", "lenient", "runlocal"}
    if unknown:
        raise ValueError(f"unknown switches {sorted(unknown)} in {arg!r}")
    c = ml_collections.ConfigDict()
    c.stage = "evaluate"
    c.submission = ""
    c.references = [os.path.normpath(os.path.join(_DATA, f"val_{i}.json")) for i in (1, 2)]
    c.version = switches.get("version", "2018")
    c.tious = [0.5] if "runlocal" in switches else [0.3, 0.5, 0.7, 0.9]
    c.max_proposals = 1000
    c.soda = "soda" in switches
    c.para_references = (
        [os.path.normpath(os.path.join(_DATA, "para", f"anet_entities_val_{i}_para.json"))
         for i in (1, 2)] if "para" in switches else [])
    c.lenient = "lenient" in switches
    c.output_name = "eval_results.json"
    return c
