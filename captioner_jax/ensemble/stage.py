"""Launch stage "ensemble": combine M captioners' captions of one fixed proposal set.

Config fields (see configs/ensemble/*.py):
  predictions: list of M submission JSON paths, each the output of one model's
    `captioner_predict` on the same proposals.
  model_names: M names (default: the file names).
  proposals: "gt" (segments of `proposals_file`, an ActivityNet Captions JSON) or "model"
    (the segments of model `proposals_model`'s predictions).
  rule, rule_kwargs: selection rule name and its parameters (captioner_jax.ensemble.selection).
  concept_vocab, idf_table: paths of the data layer's concept vocabulary and IDF table
    (stage "text_vocab").
  logprob_field: name of the per-caption log-probability field in the predictions ("" if
    none); logprob_per_word: the field is a sum over words (the captioner's
    "sentence_score"), divided here by the caption's word count.
  references: reference caption files to evaluate the ensemble and every member on ([] = none);
  eval_version: "2018" or "latest".

Writes to the workdir: `ensemble_submission.json` (official format), `ensemble_choices.json`
(per proposal: the winning model and every candidate's score) and `ensemble_summary.json`
(wins per model, missing captions, and the metrics of the ensemble and its members).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

from captioner_jax.ensemble.combine import (
    ensemble_predictions,
    proposals_from_captions,
    proposals_from_submission,
)
from captioner_jax.ensemble.selection import (
    CachedCaptionStatistics,
    CaptionStatistics,
    make_rule,
)
from data_prep.infra import distributed, paths
from data_prep.infra.atomic_files import atomic_write_json, read_json


def _load_json(path: str, what: str):
    try:
        return read_json(path)
    except (FileNotFoundError, ValueError) as err:
        raise type(err)(f"ensemble: {what} file: {err}") from err


def load_caption_statistics(concept_vocab: str, idf_table: str) -> CaptionStatistics:
    """The data layer's concept vocabulary + IDF table (stage "text_vocab") as a
    `CaptionStatistics` (batched concept extraction, cached per sentence)."""
    from data_prep.text.concepts import ConceptVocab
    from data_prep.text.idf import IdfTable

    for path, what in ((concept_vocab, "concept vocabulary"), (idf_table, "IDF table")):
        if not paths.is_file(path):
            raise FileNotFoundError(f"ensemble: {what} not found: {path} (run stage text_vocab)")
    concepts = ConceptVocab.load(concept_vocab)
    idf = IdfTable.load(idf_table)
    return CachedCaptionStatistics(concepts.concept_ids, idf.max_idf)


def _evaluate(submission, references, version) -> dict[str, float]:
    from captioner_jax.evaluation import evaluate_submission

    scores = evaluate_submission(submission, list(references), version=version)
    return {k: float(v) for k, v in scores.items() if isinstance(v, int | float)}


def run_ensemble(
    predictions: list[Mapping],
    model_names: list[str],
    proposals: Mapping,
    stats: CaptionStatistics,
    *,
    rule: str = "concepts_then_idf",
    rule_kwargs: Mapping | None = None,
    logprob_field: str | None = None,
    logprob_per_word: bool = False,
    references: list[str] | None = None,
    eval_version: str = "2018",
    workdir: str | None = None,
) -> dict:
    """Library entry (used by `run` and by tests): select, optionally evaluate, write."""
    result = ensemble_predictions(
        proposals,
        predictions,
        model_names,
        make_rule(rule, **dict(rule_kwargs or {})),
        stats,
        logprob_field=logprob_field or None,
        logprob_per_word=logprob_per_word,
    )
    summary: dict = {
        "rule": rule,
        "wins": result.wins,
        "missing_captions": result.missing,
        "dropped_proposals": result.dropped,
        "num_proposals": sum(len(v) for v in result.submission["results"].values()),
    }
    if references:
        summary["metrics"] = {"ensemble": _evaluate(result.submission, references, eval_version)}
        for name, sub in zip(model_names, predictions):
            summary["metrics"][name] = _evaluate(sub, references, eval_version)
        for name, m in summary["metrics"].items():
            logging.info(
                "ensemble: %-20s METEOR %.4f CIDEr %.4f", name, m.get("METEOR", float("nan")),
                m.get("CIDEr", float("nan")),
            )
    logging.info("ensemble: wins per model %s", result.wins)
    if workdir and distributed.is_main_process():
        for name, obj in (("ensemble_submission.json", result.submission),
                          ("ensemble_choices.json", result.choices),
                          ("ensemble_summary.json", summary)):
            atomic_write_json(paths.join(workdir, name), obj, indent=None)
    return {"submission": result.submission, "choices": result.choices, "summary": summary}


def run(config, workdir: str) -> dict:
    """Stage entry point. Host-only work: every process of a multi-host launch computes the
    same ensemble (cheap), process 0 writes it."""
    files = list(config.predictions)
    if len(files) < 1:
        raise ValueError("ensemble: config.predictions lists no prediction files")
    names = list(config.get("model_names") or []) or [paths.as_path(p).stem for p in files]
    if len(names) != len(files):
        raise ValueError(f"ensemble: {len(files)} prediction files but {len(names)} model_names")
    predictions = [_load_json(p, f"predictions of {n}") for p, n in zip(files, names)]
    if config.proposals == "gt":
        proposals = proposals_from_captions(_load_json(config.proposals_file, "proposals"))
    elif config.proposals == "model":
        proposals = proposals_from_submission(predictions[int(config.proposals_model)])
    else:
        raise ValueError(f"ensemble: proposals must be 'gt' or 'model', got {config.proposals!r}")
    stats = load_caption_statistics(config.concept_vocab, config.idf_table)
    out = run_ensemble(
        predictions,
        names,
        proposals,
        stats,
        rule=config.rule,
        rule_kwargs=config.get("rule_kwargs") or {},
        logprob_field=config.get("logprob_field") or None,
        logprob_per_word=bool(config.get("logprob_per_word", False)),
        references=list(config.get("references") or []),
        eval_version=config.get("eval_version", "2018"),
        workdir=workdir,
    )
    return out["summary"]
