"""Stage "pipeline": runs the steps of a pipeline config in order; a finished step is skipped.

`config.steps` is a list of dicts `{name, config: "file.py[:arg]", workdir, overrides,
report}`; strings may use `{workdir}` (the pipeline's workdir, absolute, or its URI). A step's
workdir (default: its name) is relative to the pipeline's; several steps may share one (e.g.
training, then prediction from its checkpoints). A step is finished when its workdir holds
`.done-<name>.json` (written atomically after the stage returned: its stage, config spec,
seconds and result). `config.force` ("all" or comma-separated names) reruns steps;
`config.only` restricts the run to the named steps. `config.report` names a report of
`registry.REPORTS` ("" for none), called with the results of every step.

Every step runs holding its workdir's lock and with a resumed step's config checked against
its checkpoint's (`data_prep/infra/workdir_lock.py`), as `launch.py` runs a stage.

Multi-host: every process runs the same steps (the stages are collective). Which steps are
done is decided once, before the first step, and checked to be the same on every process;
only process 0 writes the markers, and the processes meet after each step.
"""
from __future__ import annotations

import logging
import time

from data_prep.infra import distributed, paths
from data_prep.infra.atomic_files import atomic_write_json, read_json
from data_prep.infra.workdir_lock import WorkdirLock, check_resume_config
from data_prep.orchestration import registry
from data_prep.orchestration.config_files import (
    apply_overrides,
    clean_workdir_temporaries,
    load_config_file,
    write_resolved_config,
)

log = logging.getLogger(__name__)


def done_marker(step_dir: str, name: str) -> str:
    """Path of the marker that says step `name` (working in `step_dir`) finished."""
    return paths.join(step_dir, f".done-{name}.json")


def fill_placeholders(value, variables: dict):
    """Fills `{workdir}`-style placeholders in strings (recursively in lists and dicts)."""
    if isinstance(value, str):
        return value.format(**variables)
    if isinstance(value, list | tuple):
        return type(value)(fill_placeholders(v, variables) for v in value)
    if isinstance(value, dict):
        return {k: fill_placeholders(v, variables) for k, v in value.items()}
    return value


def step_workdir(root: str, step: dict) -> str:
    """The workdir of `step` (a step dict of `config.steps`) under the pipeline root."""
    return paths.resolve(root, fill_placeholders(step.get("workdir", step["name"]),
                                                 {"workdir": root}))


def run_pipeline(config, workdir: str) -> dict:
    """Runs the steps (module docstring). Returns {"steps": names of the steps with a result,
    "ran": steps run now, "skipped": steps done before, "seconds": wall time}."""
    root = paths.absolute(workdir)
    variables = {"workdir": root}
    force = {s for s in config.force.split(",") if s}
    only = {s for s in config.only.split(",") if s}
    steps = [dict(step) for step in config.steps]
    names = [step["name"] for step in steps]
    unknown = (force - {"all"} | only) - set(names)
    if unknown:
        raise KeyError(f"pipeline has no step(s) {sorted(unknown)}; steps: {names}")
    report = config.report
    if report and report not in registry.REPORTS:  # fail before hours of work, not after
        raise KeyError(f"config.report {report!r} is not a registered report; known: "
                       f"{sorted(registry.REPORTS)}")

    # The plan: which selected steps are done (their marker exists and no force).
    plan = []
    for step in steps:
        name = step["name"]
        if only and name not in only:
            continue
        marker = done_marker(step_workdir(root, step), name)
        done = paths.is_file(marker) and "all" not in force and name not in force
        plan.append((step, marker, done))
    distributed.check_same_across_processes(
        [(step["name"], done) for step, _, done in plan], "the pipeline's finished steps")

    results, ran, skipped, started = {}, [], [], time.perf_counter()
    for number, (step, marker, done) in enumerate(plan, 1):
        name = step["name"]
        if done:
            results[name] = read_json(marker).get("result")
            skipped.append(name)
            log.info("[%d/%d] %s: done before, skipped (%s)", number, len(plan), name, marker)
            continue
        step_dir = step_workdir(root, step)
        spec = fill_placeholders(step["config"], variables)
        stage_config = load_config_file(spec)
        apply_overrides(stage_config,
                        fill_placeholders(dict(step.get("overrides", {})), variables))
        if "run" in config and "run" in stage_config:
            # The steps run inside this (possibly distributed) process: they share its run
            # block, so each step's config.json says how it really ran.
            stage_config.run = config.run
        log.info("[%d/%d] %s: stage %s, config %s, workdir %s",
                 number, len(plan), name, stage_config.stage, spec, step_dir)
        run_stage = registry.resolve_stage(stage_config.stage)
        # Each step holds its own workdir's lock, as `launch.py` gives a stage (re-entered
        # when the step works in the pipeline's own workdir).
        with WorkdirLock(step_dir):
            if distributed.is_main_process():
                paths.remove(marker)  # a rerun (force) is unfinished until it returns
                clean_workdir_temporaries(step_dir)
            check_resume_config(step_dir, stage_config, stage_config.stage)
            write_resolved_config(stage_config, step_dir)
            t0 = time.perf_counter()
            result = run_stage(stage_config, step_dir)
            seconds = time.perf_counter() - t0
            if isinstance(result, dict) and (result.get("preempted")
                                             or result.get("stopped_early")):
                # Unfinished: no done marker, and no later step runs on its partial outputs;
                # the same command continues this step from its checkpoint.
                log.warning("[%d/%d] %s: stopped at step %s (preempted or step budget); "
                            "rerun the same command to continue", number, len(plan), name,
                            result.get("step", result.get("steps")))
                return {"steps": list(results), "ran": ran + [name], "skipped": skipped,
                        "stopped": name, "seconds": round(time.perf_counter() - started, 1)}
            if distributed.is_main_process():
                atomic_write_json(marker, {"stage": stage_config.stage, "config": spec,
                                           "seconds": round(seconds, 1), "result": result})
        distributed.sync(f"pipeline step {name}")
        results[name] = result
        ran.append(name)
        log.info("[%d/%d] %s: finished in %.1f s (pipeline %.1f s)", number, len(plan),
                 name, seconds, time.perf_counter() - started)
    if report:
        registry.resolve_report(report)(config, root, results)
    return {"steps": list(results), "ran": ran, "skipped": skipped,
            "seconds": round(time.perf_counter() - started, 1)}
