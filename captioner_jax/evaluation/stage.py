"""Launch stage "evaluate": `python launch.py --config configs/evaluate.py --workdir DIR`.

Evaluates `config.submission` against `config.references` and writes
`DIR/<config.output_name>` (all numbers, atomically, through the path layer: DIR may be
`gs://...`); returns the averaged metrics. The output location is checked for writing before
anything is computed. Optional fields (defaults when a config lacks them):
`official_inputs` (False), `hash_seed` (None).
"""
from __future__ import annotations

import logging

from captioner_jax.evaluation.api import evaluate_submission
from captioner_jax.evaluation.report import check_writable, format_table, write_json_atomic
from data_prep.infra import paths

log = logging.getLogger(__name__)


def run(config, workdir: str) -> dict:
    if not config.submission:
        raise ValueError("config.submission is empty: set --config.submission=PRED.json")
    para = list(config.para_references) if config.para_references else None
    path = paths.join(workdir, config.output_name)
    check_writable(path)
    result = evaluate_submission(
        config.submission, list(config.references), version=config.version,
        tious=tuple(config.tious), max_proposals=config.max_proposals, soda=config.soda,
        para_references=para, lenient=config.lenient,
        official_inputs=bool(config.get("official_inputs", False)),
        hash_seed=config.get("hash_seed", None))
    log.info("\n%s", format_table(result))
    write_json_atomic(path, result)
    log.info("wrote %s", path)
    return {k: v for k, v in result.items() if isinstance(v, float)}
