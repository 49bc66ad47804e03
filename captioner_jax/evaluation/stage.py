"""Launch stage "evaluate": `python launch.py --config configs/evaluate.py --workdir DIR`.

Evaluates `config.submission` against `config.references` and writes
`DIR/<config.output_name>` (all numbers, atomically); returns the averaged metrics.
"""
from __future__ import annotations

import logging
import os

from captioner_jax.evaluation.api import evaluate_submission
from captioner_jax.evaluation.report import format_table, write_json_atomic

log = logging.getLogger(__name__)


def run(config, workdir: str) -> dict:
    if not config.submission:
        raise ValueError("config.submission is empty: set --config.submission=PRED.json")
    para = list(config.para_references) if config.para_references else None
    result = evaluate_submission(
        config.submission, list(config.references), version=config.version,
        tious=tuple(config.tious), max_proposals=config.max_proposals, soda=config.soda,
        para_references=para, lenient=config.lenient)
    log.info("\n%s", format_table(result))
    path = os.path.join(workdir, config.output_name)
    write_json_atomic(path, result)
    log.info("wrote %s", path)
    return {k: v for k, v in result.items() if isinstance(v, float)}
