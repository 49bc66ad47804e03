"""Names -> "module:function" import strings, resolved lazily (see the package docstring).

Every launchable stage is `run(config, workdir) -> dict | None`; a pipeline report is
`report(config, root, results) -> dict` (`config.report` of a pipeline config names one of
REPORTS); HELPERS are the functions of the model packages that the orchestration calls.
Imports are lazy so a stage pulls in only what it needs (the evaluator never imports JAX
models, data generation never imports Orbax) and `data_prep` never imports a model package.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

STAGES: dict[str, str] = {
    "evaluate": "captioner_jax.evaluation.stage:run",
    "synthetic_data": "data_prep.synthetic.stage:run",
    "activitynet_subset": "data_prep.synthetic.activitynet_subset:run",
    "text_vocab": "data_prep.text.stage:run",
    "write_shards": "data_prep.shards.stage:run",
    "sa_tsp_train": "sa_tsp_jax.train:run",
    "sa_tsp_extract": "sa_tsp_jax.extract_features:run",
    "captioner_train": "captioner_jax.train:run",
    "captioner_predict": "captioner_jax.inference:run",
    "captioner_scst": "captioner_jax.scst.train_scst:run",
    "ensemble": "captioner_jax.ensemble.stage:run",
    "caption_baseline": "captioner_jax.baseline:run",
    "pipeline": "data_prep.orchestration.pipeline:run_pipeline",
    "caption_video": "data_prep.orchestration.caption_video:caption_video",
    "reproduce_splits": "data_prep.orchestration.reproduce_splits:run",
    "reproduce_ensemble": "data_prep.orchestration.reproduce_ensemble:run",
}

REPORTS: dict[str, str] = {
    # Metric tables of the steps' results (the `report` entries of the steps).
    "metric_tables": "data_prep.orchestration.report:pipeline_report",
    # The reproduce tables (seeds -> mean, std, t-interval) and their plots.
    "reproduce_tables": "data_prep.orchestration.reproduce_report:reproduce_report",
}

HELPERS: dict[str, str] = {
    # (extraction config, encoder export dir) -> the clip geometry the encoder expects
    "encoder_geometry": "sa_tsp_jax.extract_features:resolve_geometry",
    "format_comparison_table": "captioner_jax.visualization.tables:format_comparison_table",
    "format_evaluation_table": "captioner_jax.visualization.tables:format_evaluation_table",
    "render_video_result": "captioner_jax.visualization.gallery:render_video_result",
    "write_video_index": "captioner_jax.visualization.gallery:write_index",
    "reproduce_markdown": "captioner_jax.visualization.reproduce_tables:results_markdown",
    "reproduce_plots": "captioner_jax.visualization.reproduce_plots:write_plots",
}


def import_function(target: str) -> Callable:
    """`"package.module:function"` -> the function (imports the module)."""
    module_name, sep, func_name = target.partition(":")
    if not sep or not module_name or not func_name:
        raise ValueError(f"{target!r} is not a 'module:function' import string")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, func_name)
    except AttributeError:
        raise AttributeError(f"{target!r}: module {module_name} has no {func_name!r}") from None


def _resolve(table: Mapping[str, str], kind: str, name: str) -> Callable:
    if name not in table:
        raise KeyError(f"unknown {kind} {name!r}; known {kind}s: {sorted(table)}")
    return import_function(table[name])


def resolve_stage(name: str) -> Callable:
    """The `run(config, workdir)` callable registered for stage `name`."""
    return _resolve(STAGES, "stage", name)


def resolve_report(name: str) -> Callable:
    """The `report(config, root, results)` callable registered as pipeline report `name`."""
    return _resolve(REPORTS, "report", name)


def resolve_helper(name: str) -> Callable:
    """A function of another package the orchestration calls (HELPERS)."""
    return _resolve(HELPERS, "helper", name)
