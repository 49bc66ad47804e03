"""The one entry point: `python launch.py --config configs/<file>.py[:arg] --workdir DIR`.

The config names its stage (`config.stage`); this file only parses flags, sets up JAX
(compilation cache, optional multi-host init) and dispatches. Overrides work as
`--config.seed=3`; an unknown key is an error (ml_collections' locked ConfigDict).
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import sys
import time

import numpy as np
from absl import app, flags
from ml_collections import config_flags

# Stage name -> "module:function". Each function has the signature `run(config, workdir)`
# and returns an optional dict of results. Imports are lazy so a stage pulls in only
# what it needs (the evaluator never imports JAX models, data generation never imports Orbax).
STAGES: dict[str, str] = {
    "evaluate": "captioner_jax.evaluation.stage:run",
    "synthetic_data": "data_prep.synthetic.stage:run",
    "text_vocab": "data_prep.text.stage:run",
    "write_shards": "data_prep.shards.stage:run",
    "sa_tsp_train": "sa_tsp_jax.train:run",
    "sa_tsp_extract": "sa_tsp_jax.extract_features:run",
    "captioner_train": "captioner_jax.train:run",
    "captioner_predict": "captioner_jax.inference:run",
    "captioner_scst": "captioner_jax.scst.train_scst:run",
    "ensemble": "captioner_jax.ensemble.stage:run",
    "caption_baseline": "captioner_jax.baseline:run",
    "pipeline": "launch:run_pipeline",
    "caption_video": "launch:caption_video",
}

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Python config file, optionally with ':arg'.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for this stage's outputs.")


def resolve_stage(name: str):
    """Returns the `run(config, workdir)` callable registered for stage `name`."""
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; known stages: {sorted(STAGES)}")
    return _import_function(STAGES[name])


REPO_ROOT = os.path.dirname(os.path.abspath(__file__))


def load_config_file(spec: str):
    """`path/to/config.py[:arg]` -> the ConfigDict of its `get_config(arg)` (locked).

    Relative paths are resolved against the repository root, as on the command line.
    """
    path, _, arg = spec.partition(":")
    full = path if os.path.isabs(path) else os.path.join(REPO_ROOT, path)
    if not os.path.isfile(full):
        raise FileNotFoundError(f"config file {full} (from {spec!r}) not found")
    module_spec = importlib.util.spec_from_file_location(f"_config_{abs(hash(full))}", full)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
    config.lock()
    return config


def apply_overrides(config, overrides: dict) -> None:
    """Sets dotted keys (`"optim.lr": 0.1`) on a locked config: unknown keys raise."""
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for key in parents:
            node = node[key]
        if leaf not in node:
            raise KeyError(f"override {dotted!r}: the config has no key {leaf!r}")
        node[leaf] = value


def _format(value, variables: dict):
    """Fills `{workdir}`-style placeholders in strings (recursively in lists and dicts)."""
    if isinstance(value, str):
        return value.format(**variables)
    if isinstance(value, list | tuple):
        return type(value)(_format(v, variables) for v in value)
    if isinstance(value, dict):
        return {k: _format(v, variables) for k, v in value.items()}
    return value


def _write_json_atomic(path: str, payload) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, default=str)
    os.replace(tmp, path)


def run_pipeline(config, workdir: str) -> dict:
    """Runs the steps of a pipeline config in order; a finished step is skipped on rerun.

    `config.steps` is a list of dicts `{name, config: "file.py[:arg]", workdir, overrides}`;
    strings may use `{workdir}` (the pipeline's workdir, absolute). A step is finished when
    its workdir holds `.done-<name>.json` (written atomically after the stage returned), so
    several steps may share a workdir (e.g. training, then prediction from its checkpoints).
    `config.force` ("all" or comma-separated names) reruns steps; `config.only` restricts the
    run to the named steps. Returns {step name: stage result}.
    """
    root = os.path.abspath(workdir)
    variables = {"workdir": root}
    force = {s for s in config.force.split(",") if s}
    only = {s for s in config.only.split(",") if s}
    steps = [dict(step) for step in config.steps]
    names = [step["name"] for step in steps]
    unknown = (force - {"all"} | only) - set(names)
    if unknown:
        raise KeyError(f"pipeline has no step(s) {sorted(unknown)}; steps: {names}")
    results, started = {}, time.perf_counter()
    for number, step in enumerate(steps, 1):
        name = step["name"]
        step_dir = _format(os.path.join(root, step.get("workdir", name)), variables)
        marker = done_marker(step_dir, name)
        if only and name not in only:
            continue
        if os.path.isfile(marker) and "all" not in force and name not in force:
            with open(marker, encoding="utf-8") as f:
                results[name] = json.load(f).get("result")
            logging.info("[%d/%d] %s: done before, skipped (%s)", number, len(steps), name, marker)
            continue
        spec = _format(step["config"], variables)
        stage_config = load_config_file(spec)
        apply_overrides(stage_config, _format(dict(step.get("overrides", {})), variables))
        logging.info("[%d/%d] %s: stage %s, config %s, workdir %s",
                     number, len(steps), name, stage_config.stage, spec, step_dir)
        if os.path.exists(marker):
            os.remove(marker)
        write_resolved_config(stage_config, step_dir)
        t0 = time.perf_counter()
        result = resolve_stage(stage_config.stage)(stage_config, step_dir)
        seconds = time.perf_counter() - t0
        _write_json_atomic(marker, {"stage": stage_config.stage, "config": spec,
                                    "seconds": round(seconds, 1), "result": result})
        results[name] = result
        logging.info("[%d/%d] %s: finished in %.1f s (pipeline %.1f s)", number, len(steps),
                     name, seconds, time.perf_counter() - started)
    report = config.get("report")  # optional: a pipeline without a results table
    if report:
        report_fn = resolve_stage(report) if report in STAGES else _import_function(report)
        report_fn(config, root, results)
    return {"steps": list(results), "seconds": round(time.perf_counter() - started, 1)}


def done_marker(step_dir: str, name: str) -> str:
    return os.path.join(step_dir, f".done-{name}.json")


def _dig(result, dotted: str):
    for key in filter(None, dotted.split(".")):
        result = result[key]
    return result


def pipeline_report(config, root: str, results: dict) -> dict:
    """Prints and saves (`results.md`, `results.json`) the metric tables of a pipeline.

    Steps with a `report` entry `{table, row, key}` (or a list of them) contribute the
    metrics found at `key` (dotted path, '' = the whole result) of their result as row `row`
    of table `table`; with `per_tiou: True` the row also gets its own per-tIoU table.
    """
    from captioner_jax.visualization.tables import (
        format_comparison_table,
        format_evaluation_table,
    )

    tables: dict[str, dict[str, dict]] = {}
    per_tiou_tables = []
    for step in config.steps:
        step = dict(step)
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
        step_dir = os.path.join(root, step.get("workdir", step["name"]))
        artefacts.append(f"  {step['name']:<20} {step_dir}")
    print("\n\n".join(text + ["\n".join(artefacts)]), flush=True)
    with open(os.path.join(root, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(markdown) + "\n")
    _write_json_atomic(os.path.join(root, "results.json"), tables)
    return tables


def _import_function(target: str):
    module_name, func_name = target.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def caption_video(config, workdir: str) -> dict:
    """Stage "caption_video": dense captions (+ timeline PNG and HTML page) for your videos.

    Decodes the videos into a clip shard (data_prep), extracts features with a trained
    encoder (stage sa_tsp_extract), captions them with a trained captioner and its learned
    proposals (stage captioner_predict, reading the checkpoint of `config.captioner.init_from`),
    and renders the results (captioner_jax.visualization). An unreadable file is skipped and
    listed in `report.json`; the others go on. Outputs under `workdir`:
    `captions.json` (official submission format), `html/<id>.html`, `html/<id>_timeline.png`,
    `report.json`.
    """
    from captioner_jax.visualization.gallery import render_video_result
    from captioner_jax.visualization.video_frames import video_duration_s
    from data_prep.infra.videos import collect_videos
    from data_prep.labels.types import VideoLabels
    from data_prep.shards.writer import write_shards

    root = os.path.abspath(workdir)
    skipped, items = [], []
    for path in collect_videos(config.video):
        video_id = os.path.splitext(os.path.basename(path))[0]
        try:
            duration = video_duration_s(path)
        except ValueError as err:
            skipped.append({"video": path, "error": str(err)})
            logging.warning("skipping %s: %s", path, err)
            continue
        empty = np.zeros((0, 2), np.float32)
        items.append((path, VideoLabels(video_id, duration, empty, [], [], empty, [])))

    # 1. Frames into a shard, at the encoder's frame rate and size.
    from sa_tsp_jax.extract_features import resolve_geometry

    extract_cfg = load_config_file(config.encoder.config)
    geometry = resolve_geometry(extract_cfg, config.encoder.init_from)  # the encoder's export
    if not geometry.fps:
        raise ValueError(f"the encoder export {config.encoder.init_from} records no frame "
                         "rate: export it with its input geometry (sa_tsp_jax/import_torch.py)")
    shard_dir = os.path.join(root, "shards")
    shard_report = write_shards(items, shard_dir, num_shards=1, fps=geometry.fps,
                                resize=tuple(geometry.resize))
    skipped += [{"video": s["video_path"], "error": s["error"]}
                for s in shard_report.get("skipped", [])]
    bad = {s["video_id"] for s in shard_report.get("skipped", [])}
    items = [(p, lab) for p, lab in items if lab.video_id not in bad]
    if not items:
        raise RuntimeError(f"no readable video among {config.video!r}: {skipped}")

    # 2. Features with the trained encoder.
    apply_overrides(extract_cfg, {"init_from": config.encoder.init_from,
                                  "shards": os.path.join(shard_dir, "*.tfrecord")})
    encoder_dir = os.path.join(root, "encoder")
    resolve_stage(extract_cfg.stage)(extract_cfg, encoder_dir)

    # 3. Captions with learned proposals (no references: nothing to score unless given).
    split = {lab.video_id: {"duration": lab.duration, "timestamps": [], "sentences": []}
             for _, lab in items}
    split_path = os.path.join(root, "videos.json")
    _write_json_atomic(split_path, split)
    cap_cfg = load_config_file(config.captioner.config)
    features = [dict(f) for f in cap_cfg.data.features]
    features[0]["path"] = os.path.join(encoder_dir, "features")
    apply_overrides(cap_cfg, {
        "stage": "captioner_predict", "data.features": features,
        "predict.captions": split_path, "init_from": config.captioner.init_from,
        "eval.references": list(config.references)})
    resolve_stage("captioner_predict")(cap_cfg, os.path.join(root, "captioner"))
    with open(os.path.join(root, "captioner", "predictions", "videos.json"), encoding="utf-8") as f:
        submission = json.load(f)
    _write_json_atomic(os.path.join(root, "captions.json"), submission)

    # 4. What a person looks at: a timeline image and a page that plays the video.
    references = {}
    for ref_path in config.references:
        with open(ref_path, encoding="utf-8") as f:
            references.update(json.load(f))
    pages = []
    for path, lab in items:
        ref = references.get(lab.video_id)
        ref_events = None if ref is None else [
            {"timestamp": t, "sentence": s} for t, s in zip(ref["timestamps"], ref["sentences"])]
        pages.append(render_video_result(
            os.path.join(root, "html"), lab.video_id,
            submission["results"].get(lab.video_id, []), duration_s=lab.duration,
            references=ref_events, video_path=os.path.abspath(path)))
    report = {"captioned": [lab.video_id for _, lab in items], "skipped": skipped,
              "pages": pages}
    _write_json_atomic(os.path.join(root, "report.json"), report)
    for page in pages:
        logging.info("%s: %d events -> %s", page["video_id"], page["num_predicted"], page["html"])
    return {"captioned": len(items), "skipped": len(skipped)}


def write_resolved_config(config, workdir: str) -> None:
    """Creates `workdir` and writes `workdir/config.json`, the config the stage runs with
    (after the arg and overrides), atomically, on process 0 only. Steps that share a workdir
    (training, then prediction) leave the last one; the pipeline's done markers name each
    step's config spec."""
    from data_prep.infra import paths
    from data_prep.infra.atomic_files import atomic_write_text
    from data_prep.infra.distributed import is_main_process

    paths.make_dirs(workdir)
    if is_main_process():
        atomic_write_text(paths.join(workdir, "config.json"),
                          config.to_json_best_effort(indent=1, sort_keys=True) + "\n")


class _QuietLibraries(logging.Filter):
    """Drops INFO records of chatty libraries (Orbax logs every checkpoint phase)."""

    NOISY = (f"{os.sep}orbax{os.sep}", f"{os.sep}etils{os.sep}")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not any(
            part in record.pathname for part in self.NOISY)


def main(argv) -> None:
    del argv
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietLibraries())
    config = _CONFIG.value
    workdir = _WORKDIR.value
    if config is None or workdir is None:
        raise app.UsageError("--config and --workdir are required")
    stage = config.get("stage")
    if not stage:
        raise app.UsageError(f"config {flags.FLAGS['config'].value!r} names no `stage`")
    run = resolve_stage(stage)
    from data_prep.infra.jax_setup import setup_jax

    setup_jax(config)
    write_resolved_config(config, workdir)
    result = run(config, workdir)
    if result is not None:
        logging.info("stage %s finished: %s", stage, result)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    # Stages registered as "launch:..." must resolve to this module, not a second copy that
    # would define the flags again.
    sys.modules.setdefault("launch", sys.modules[__name__])
    app.run(main)
