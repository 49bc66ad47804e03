"""The pipeline report "metric_tables": the metrics of the steps' results as tables.

Steps with a `report` entry `{table, row, key}` (or a list of them) contribute the metrics
found at `key` (dotted path into the step's result, '' = the whole result) as row `row` of
table `table`; with `per_tiou: True` the row also gets its own per-tIoU table. The tables are
printed and written to `{root}/results.md` and `{root}/results.json` (`{table: {row:
{metric: value}}}`, what `captioner_jax.visualization.readme_tables` turns into the README's
tables). The table text comes from the captioner's formatters (registry.HELPERS).
"""
from __future__ import annotations

from data_prep.infra import distributed, paths
from data_prep.infra.atomic_files import atomic_write_json, atomic_write_text
from data_prep.orchestration import registry
from data_prep.orchestration.pipeline import step_workdir


def _dig(result, dotted: str):
    for key in filter(None, dotted.split(".")):
        result = result[key]
    return result


def collect_tables(config, results: dict) -> tuple[dict[str, dict[str, dict]], list]:
    """({table: {row: numeric metrics}}, [(title, metrics with per_tiou)]) of the steps."""
    tables: dict[str, dict[str, dict]] = {}
    per_tiou_tables = []
    for step in map(dict, config.steps):
        result = results.get(step["name"])
        if result is None or "report" not in step:
            continue
        reports = step["report"] if isinstance(step["report"], list | tuple) else [step["report"]]
        for report in map(dict, reports):
            metrics = _dig(result, report.get("key", ""))
            tables.setdefault(report["table"], {})[report["row"]] = {
                k: v for k, v in metrics.items() if isinstance(v, int | float)}
            if report.get("per_tiou") and "per_tiou" in metrics:
                per_tiou_tables.append((f"{report['row']}, {report['table']}", metrics))
    return tables, per_tiou_tables


def pipeline_report(config, root: str, results: dict) -> dict:
    """Prints and saves (process 0) the metric tables of a pipeline run; returns the tables."""
    format_comparison_table = registry.resolve_helper("format_comparison_table")
    format_evaluation_table = registry.resolve_helper("format_evaluation_table")
    tables, per_tiou_tables = collect_tables(config, results)
    text, markdown = [], []
    for title, rows in tables.items():
        text.append(format_comparison_table(rows, title=title))
        markdown.append(format_comparison_table(rows, title=title, markdown=True))
    for title, metrics in per_tiou_tables:
        text.append(format_evaluation_table(metrics, title=f"{title}, per tIoU"))
        markdown.append(format_evaluation_table(metrics, title=f"{title}, per tIoU",
                                                markdown=True))
    artefacts = ["Artefacts (step: workdir):"]
    for step in map(dict, config.steps):
        artefacts.append(f"  {step['name']:<20} {step_workdir(root, step)}")
    if distributed.is_main_process():
        print("\n\n".join(text + ["\n".join(artefacts)]), flush=True)
        atomic_write_text(paths.join(root, "results.md"), "\n\n".join(markdown) + "\n")
        atomic_write_json(paths.join(root, "results.json"), tables)
    return tables
