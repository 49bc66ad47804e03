"""The pipeline report "reproduce_tables" (configs/pipeline/reproduce.py): seeds -> statistics.

Steps with a `report` entry `{table, row, seed, key}` contribute the numeric metrics at `key`
(dotted path into the step's result; '' = the whole result) as seed `seed` of row `row`;
with `per_seed: True` the value at `key` is `{seed: metrics}` (the reproduce_ensemble stage's
"scored"). Every cell records where its numbers come from: the step, and for captioner
predictions the evaluator's metrics file (`{step workdir}/predictions/<split>_metrics.json`).

`{root}/results.json`:
  {"config": {size, seeds, m}, "tables": {table: {row: {"seeds": {seed: metrics},
   "sources": {seed: {"step", "file"}}, "stats": {metric: statistics.summarize(...)}}}},
   "selection": {proposals: M chosen on the select split, the select METEOR per M},
   "splits": {part: videos}, "encoders": {objective: {seed: workdir}}, "seconds": {...}}
`{root}/results.md` (captioner_jax.visualization.reproduce_tables, from results.json) and the
plots (captioner_jax.visualization.reproduce_plots) beside it.
"""
from __future__ import annotations

from data_prep.infra import distributed, paths
from data_prep.infra.atomic_files import atomic_write_json, atomic_write_text, read_json
from data_prep.orchestration import registry
from data_prep.orchestration.pipeline import done_marker, step_workdir
from data_prep.orchestration.statistics import caption_statistics, summarize

# Statistics are computed for these metrics when a row has them (captions; encoders).
STAT_METRICS = ("METEOR", "Bleu_4", "CIDEr", "ROUGE_L",
                "val_action_accuracy", "val_concept_map", "val_region_accuracy")


def _dig(result, dotted: str):
    for key in filter(None, dotted.split(".")):
        result = result[key]
    return result


def _numeric(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def _source(root: str, step: dict) -> dict:
    source = {"step": step["name"]}
    overrides = dict(step.get("overrides", {}))
    captions = overrides.get("predict.captions")
    if captions:  # a captioner_predict step: the evaluator's metrics file
        stem = paths.as_path(captions).stem
        source["file"] = paths.join(step_workdir(root, step), "predictions",
                                    f"{stem}_metrics.json")
    elif step["name"].startswith("ens_"):
        source["file"] = paths.join(step_workdir(root, step), "ensemble_report.json")
    else:
        source["file"] = done_marker(step_workdir(root, step), step["name"])
    return source


def collect(config, root: str, results: dict) -> dict:
    """results.json's content (module docstring) from the steps' results."""
    tables: dict = {}
    selection, encoders, seconds = {}, {}, {}
    for step in map(dict, config.steps):
        name = step["name"]
        marker = done_marker(step_workdir(root, step), name)
        if paths.is_file(marker):
            group = name.split("_")[0]
            seconds[group] = seconds.get(group, 0.0) + float(read_json(marker)["seconds"])
        result = results.get(name)
        if result is None or "report" not in step:
            continue
        if name.startswith("enc_"):
            obj = name[len("enc_"):].rsplit("_s", 1)[0]
            encoders.setdefault(obj, {})[str(step["report"]["seed"])] = step_workdir(root, step)
        if name.startswith("ens_"):
            selection[result["proposals"]] = {
                "selected_m": result["selected_m"],
                "select_mean_meteor": {str(k): v for k, v in
                                       result["select_mean_meteor"].items()},
                "windows": result["windows"]}
        entry = dict(step["report"])
        value = _dig(result, entry.get("key", ""))
        per_seed = value if entry.get("per_seed") else {entry["seed"]: value}
        row = tables.setdefault(entry["table"], {}).setdefault(
            entry["row"], {"seeds": {}, "sources": {}, "caption_stats": {}})
        for seed, metrics in per_seed.items():
            source = _source(root, step)
            row["seeds"][str(seed)] = _numeric(metrics)
            row["sources"][str(seed)] = source
            # Caption length / diversity (not evaluator metrics: kept apart from "seeds").
            if "caption_stats" in metrics:
                row["caption_stats"][str(seed)] = metrics["caption_stats"]
            elif source["file"].endswith("_metrics.json"):
                submission = source["file"][:-len("_metrics.json")] + ".json"
                if paths.is_file(submission):
                    row["caption_stats"][str(seed)] = caption_statistics(read_json(submission))
    for rows in tables.values():
        for row in rows.values():
            words = [c["words_per_caption"] for c in row["caption_stats"].values()]
            row["words_per_caption"] = summarize(words) if words else None
            row["stats"] = {
                metric: summarize([m[metric] for m in row["seeds"].values()])
                for metric in STAT_METRICS
                if row["seeds"] and all(metric in m for m in row["seeds"].values())}
    splits_file = paths.join(root, "splits", "splits.json")
    splits = {}
    if paths.is_file(splits_file):
        recorded = read_json(splits_file)
        splits = {"train": int(recorded["train_videos"]),
                  **{part: len(recorded[part]) for part in ("enlarge", "select", "scored")}}
    seeds = max((len(row["seeds"]) for rows in tables.values() for row in rows.values()),
                default=0)
    m = max((len(w) for sel in selection.values() for w in sel["windows"]), default=0)
    return {"config": {"size": config.get("size", ""), "seeds": seeds, "m": m},
            "tables": tables, "selection": selection, "splits": splits,
            "encoders": encoders,
            "seconds": dict(seconds, total=round(sum(seconds.values()), 1))}


def reproduce_report(config, root: str, results: dict) -> dict:
    """Writes (process 0) results.json, results.md and the plots; prints the markdown."""
    report = collect(config, root, results)
    if distributed.is_main_process():
        report["plots"] = registry.resolve_helper("reproduce_plots")(report, root)
        atomic_write_json(paths.join(root, "results.json"), report)
        markdown = registry.resolve_helper("reproduce_markdown")(report)
        atomic_write_text(paths.join(root, "results.md"), markdown)
        print(markdown, flush=True)
    return report
