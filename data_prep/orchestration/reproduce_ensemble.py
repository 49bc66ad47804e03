"""Stage "reproduce_ensemble": Table 2's "+ model ensemble" row, its size M chosen on the
select split (never on the scored one), for GT or learned proposals.

Config:
  members        workdirs of the pool of trained captioners (the "+ SCST" runs of seeds 0..P-1)
  windows        one list of member indices per repetition (seed r: members r, r+1, ...); the
                 ensemble of size m of repetition r is the first m members of its window
  sizes          the candidate sizes M (e.g. [1, 2, 3]; 1 = the single model)
  proposals      "gt": every member captions the split's GT segments; "learned": the first
                 member of the window proposes segments (PDVC queries mode, reranked), written
                 as a captions file, and every member captions those (the report's protocol:
                 one model's proposals fed to every model)
  predict_config captioner predict config spec (configs/captioner/synthetic.py:...,predict)
  member_features  per member, its `data.features` (its feature sources)
  select_files, scored_files  captions files of the two splits: the first gives the videos
                 and GT segments, all are the references
  concept_vocab, idf_table, rule, eval_version: as configs/ensemble/*.py
The members' captions come from the captioner_predict stage (run here into
`{workdir}/{split}/{proposals}/member{i}`; finished ones are reused on rerun), the selection
from captioner_jax.ensemble (the report's rule: most unique concepts, then max IDF), every
score from the official evaluator (`captioner_jax.evaluation.evaluate_submission`).
M = the size with the best mean METEOR over the repetitions on the select split (ties: the
smaller). Returns {"selected_m", "select": {m: {rep: metrics}}, "scored": {rep: metrics of the
size-M ensemble on the scored split}, "windows", "proposals"}; writes `ensemble_report.json`.
"""
from __future__ import annotations

import logging

from data_prep.infra import distributed, paths
from data_prep.infra.atomic_files import atomic_write_json, read_json
from data_prep.orchestration import registry
from data_prep.orchestration.config_files import apply_overrides, load_config_file
from data_prep.orchestration.statistics import caption_statistics

log = logging.getLogger(__name__)


def _numeric(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def _predict(config, member: int, captions: str, mode: str, workdir: str) -> str:
    """Predictions of captioner `member` (an index of config.members) on the segments of `captions`
    (mode "gt_proposals") or its own proposals ("queries"), no scoring; -> submission path."""
    out = paths.join(workdir, "predictions", f"{paths.as_path(captions).stem}.json")
    if paths.is_file(out):  # finished before (the predict stage writes it atomically)
        return out
    cfg = load_config_file(config.predict_config)
    apply_overrides(cfg, {"data.features": [dict(f) for f in config.member_features[member]]})
    with cfg.unlocked():
        cfg.init_from = config.members[member]
        cfg.mode = mode
        cfg.eval.rerank = mode == "queries"  # PDVC: reranking in queries mode only
        cfg.eval.references = []  # members are not scored here; the ensembles are
        cfg.eval.soda = False
        cfg.predict.captions = captions
        if "run" in config:
            cfg.run = config.run
    registry.resolve_stage("captioner_predict")(cfg, workdir)
    distributed.sync(f"reproduce_ensemble predict {workdir}")
    return out


def proposals_file(submission: dict, captions: dict, out: str) -> str:
    """A captions file (ActivityNet format) whose segments are a model's predicted ones, so
    GT-proposal mode captions them; durations from `captions` (the split's GT file)."""
    entries = {}
    for vid, preds in submission["results"].items():
        if vid not in captions or not preds:
            continue
        entries[vid] = {"duration": captions[vid]["duration"],
                        "timestamps": [[float(p["timestamp"][0]), float(p["timestamp"][1])]
                                       for p in preds],
                        "sentences": [str(p["sentence"]) for p in preds]}
    if distributed.is_main_process():
        atomic_write_json(out, entries)
    distributed.sync(f"reproduce_ensemble proposals {out}")
    return out


def run(config, workdir: str) -> dict:
    """Stage entry point (module docstring)."""
    from captioner_jax.ensemble.combine import ensemble_predictions, proposals_from_captions
    from captioner_jax.ensemble.selection import make_rule
    from captioner_jax.ensemble.stage import load_caption_statistics
    from captioner_jax.evaluation import evaluate_submission

    members = list(config.members)
    windows = [list(w) for w in config.windows]
    sizes = sorted(int(m) for m in config.sizes)
    if config.proposals not in ("gt", "learned"):
        raise ValueError(f"reproduce_ensemble: proposals must be gt or learned, got "
                         f"{config.proposals!r}")
    if len(config.member_features) != len(members):
        raise ValueError(f"reproduce_ensemble: {len(config.member_features)} member_features "
                         f"for {len(members)} members")
    for w in windows:
        if len(w) < max(sizes) or any(not 0 <= i < len(members) for i in w):
            raise ValueError(f"reproduce_ensemble: window {w} needs {max(sizes)} members among "
                             f"the {len(members)} of config.members")
    stats = load_caption_statistics(config.concept_vocab, config.idf_table)
    rule = make_rule(config.rule)

    def ensemble_metrics(split: str, rep: int, window: list[int], m: int) -> dict:
        files = list({"select": config.select_files, "scored": config.scored_files}[split])
        captions = read_json(files[0])
        if config.proposals == "gt":
            source, segments_file = "gt", files[0]
        else:  # the window's first member proposes, every member captions its segments
            source = f"proposals_of_member{window[0]}"
            own = _predict(config, window[0], files[0], "queries",
                           paths.join(workdir, split, "learned", f"member{window[0]}"))
            segments_file = proposals_file(read_json(own), captions,
                                           paths.join(workdir, split, source, f"{split}.json"))
        subs = [read_json(_predict(config, i, segments_file, "gt_proposals",
                                   paths.join(workdir, split, source, f"member{i}")))
                for i in window[:m]]
        result = ensemble_predictions(proposals_from_captions(read_json(segments_file)), subs,
                                      [f"member{i}" for i in window[:m]], rule, stats,
                                      logprob_field="sentence_score", logprob_per_word=True)
        metrics = _numeric(evaluate_submission(result.submission, files,
                                               version=str(config.eval_version)))
        metrics["wins"] = {k: int(v) for k, v in result.wins.items()}
        metrics["caption_stats"] = caption_statistics(result.submission)
        log.info("ensemble %s rep %d M=%d (%s proposals): METEOR %.3f CIDEr %.3f", split, rep,
                 m, config.proposals, metrics["METEOR"], metrics["CIDEr"])
        return metrics

    select = {m: {r: ensemble_metrics("select", r, w, m) for r, w in enumerate(windows)}
              for m in sizes}
    mean_meteor = {m: sum(v["METEOR"] for v in reps.values()) / len(reps)
                   for m, reps in select.items()}
    best_m = max(sizes, key=lambda m: (mean_meteor[m], -m))  # ties: the smaller ensemble
    scored = {r: ensemble_metrics("scored", r, w, best_m) for r, w in enumerate(windows)}
    report = {"selected_m": best_m, "select_mean_meteor": mean_meteor,
              "select": {str(m): {str(r): v for r, v in reps.items()}
                         for m, reps in select.items()},
              "scored": {str(r): v for r, v in scored.items()}, "windows": windows,
              "proposals": config.proposals, "members": members}
    if distributed.is_main_process():
        atomic_write_json(paths.join(workdir, "ensemble_report.json"), report)
    log.info("reproduce_ensemble (%s proposals): M=%d chosen on the select split (mean METEOR "
             "per size %s)", config.proposals, best_m, mean_meteor)
    return report
