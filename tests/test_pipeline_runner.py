"""The pipeline runner (data_prep.orchestration.pipeline): ordered steps, skip-if-done,
force/only, overrides, failures, the registered report, a gs:// workdir."""
import json
import os
import sys
import types

import ml_collections
import pytest

from data_prep.infra import paths
from data_prep.orchestration import registry
from data_prep.orchestration.config_files import load_config_file
from data_prep.orchestration.pipeline import run_pipeline

STAGE_CONFIG = '''
import ml_collections

def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.stage = "toy_stage"
    c.value = arg or "none"
    c.source = ""
    c.fail = False
    return c
'''


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    calls = []

    def run(config, workdir):
        if config.fail:
            raise RuntimeError("stage failed")
        calls.append((config.value, config.source, workdir))
        paths.as_path(paths.join(workdir, "out.txt")).write_text(config.value)
        return {"value": config.value}

    module = types.ModuleType("toy_stage_module")
    module.run = run
    monkeypatch.setitem(sys.modules, "toy_stage_module", module)
    monkeypatch.setitem(registry.STAGES, "toy_stage", "toy_stage_module:run")
    (tmp_path / "toy_config.py").write_text(STAGE_CONFIG)
    return calls, str(tmp_path / "toy_config.py")


def _pipeline(config_path, **extra):
    c = ml_collections.ConfigDict()
    c.stage = "pipeline"
    c.steps = [
        {"name": "first", "config": f"{config_path}:a", "workdir": "one"},
        {"name": "second", "config": f"{config_path}:b",
         "overrides": {"source": "{workdir}/one/out.txt"}},
    ]
    c.force = ""
    c.only = ""
    c.report = ""
    c.update(extra)
    return c


def test_steps_run_in_order_then_are_skipped(toy, tmp_path):
    calls, path = toy
    wd = tmp_path / "run"
    summary = run_pipeline(_pipeline(path), str(wd))
    assert [c[0] for c in calls] == ["a", "b"]
    assert summary["ran"] == ["first", "second"] and summary["skipped"] == []
    assert calls[1][1] == f"{wd}/one/out.txt"  # {workdir} placeholder filled
    marker = json.loads((wd / "second" / ".done-second.json").read_text())
    assert marker["stage"] == "toy_stage" and marker["result"] == {"value": "b"}

    summary = run_pipeline(_pipeline(path), str(wd))
    assert len(calls) == 2  # both done: nothing reruns
    assert summary["ran"] == [] and summary["skipped"] == ["first", "second"]
    assert summary["steps"] == ["first", "second"]  # results of skipped steps from markers
    summary = run_pipeline(_pipeline(path, force="second"), str(wd))
    assert [c[0] for c in calls] == ["a", "b", "b"]
    assert summary["ran"] == ["second"] and summary["skipped"] == ["first"]
    summary = run_pipeline(_pipeline(path, force="all", only="first"), str(wd))
    assert [c[0] for c in calls] == ["a", "b", "b", "a"]
    assert summary["ran"] == ["first"] and summary["skipped"] == []


def test_failed_step_leaves_no_marker_and_reruns(toy, tmp_path):
    calls, path = toy
    wd = tmp_path / "run"
    config = _pipeline(path)
    config.steps[1]["overrides"]["fail"] = True
    with pytest.raises(RuntimeError, match="stage failed"):
        run_pipeline(config, str(wd))
    assert (wd / "one" / ".done-first.json").exists()
    assert not (wd / "second" / ".done-second.json").exists()
    run_pipeline(_pipeline(path), str(wd))
    assert [c[0] for c in calls] == ["a", "b"]  # first skipped, second retried


def test_bad_step_names_and_override_keys_are_errors(toy, tmp_path):
    _, path = toy
    with pytest.raises(KeyError, match="no step"):
        run_pipeline(_pipeline(path, force="thrid"), str(tmp_path / "x"))
    config = _pipeline(path)
    config.steps[0]["overrides"] = {"valeu": 1}
    with pytest.raises(KeyError, match="valeu"):
        run_pipeline(config, str(tmp_path / "y"))
    with pytest.raises(FileNotFoundError, match="not found"):
        load_config_file("configs/no_such_config.py")


def test_report_must_be_a_registered_name(toy, tmp_path):
    calls, path = toy
    # An import string is no longer accepted; the check comes before any step runs.
    with pytest.raises(KeyError, match="not a registered report.*metric_tables"):
        run_pipeline(_pipeline(path, report="os:system"), str(tmp_path / "run"))
    assert calls == []


def test_report_collects_tables_from_step_results(toy, tmp_path, capsys):
    _, path = toy
    config = _pipeline(path, report="metric_tables")
    config.steps[0]["report"] = {"table": "GT proposals", "row": "model a", "key": ""}
    config.steps[1]["report"] = {"table": "GT proposals", "row": "model b", "key": ""}
    run_pipeline(config, str(tmp_path / "run"))
    out = capsys.readouterr().out
    assert "GT proposals" in out and "model a" in out and "model b" in out
    assert "Artefacts" in out and str(tmp_path / "run" / "one") in out
    tables = json.loads((tmp_path / "run" / "results.json").read_text())
    assert list(tables["GT proposals"]) == ["model a", "model b"]
    assert (tmp_path / "run" / "results.md").read_text().count("| model |") == 1


def test_pipeline_in_a_bucket(toy, tmp_path, monkeypatch):
    """A gs:// pipeline workdir: placeholders, step workdirs, markers and the report land in
    the bucket (tests/fake_bucket.py), nothing in the working directory."""
    from fake_bucket import install_fake_gcs

    calls, path = toy
    install_fake_gcs(str(tmp_path / "bucket"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    config = _pipeline(path, report="metric_tables")
    config.steps[0]["report"] = {"table": "T", "row": "a", "key": ""}
    run_pipeline(config, "gs://b/run")
    assert calls[1] == ("b", "gs://b/run/one/out.txt", "gs://b/run/second")
    local = tmp_path / "bucket" / "b" / "run"
    assert json.loads((local / "one" / ".done-first.json").read_text())["result"] == {
        "value": "a"}
    assert json.loads((local / "results.json").read_text()) == {"T": {"a": {}}}
    assert run_pipeline(config, "gs://b/run")["skipped"] == ["first", "second"]
    assert os.listdir(tmp_path / "cwd") == []


def test_data_prep_imports_no_model_package():
    """The import direction (data_prep <- sa_tsp_jax, data_prep <- captioner_jax): importing
    every data_prep module, the orchestration included, loads neither model package; the
    orchestration reaches them only through registry strings when a stage runs."""
    import subprocess

    code = (
        "import importlib, pkgutil, sys, data_prep\n"
        "for m in pkgutil.walk_packages(data_prep.__path__, 'data_prep.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sa_tsp_jax', 'captioner_jax', 'launch'))\n"
        "assert not bad, bad\n"
        "assert 'data_prep.orchestration.caption_video' in sys.modules\n")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True,
                         text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def test_a_preempted_step_is_not_marked_done_and_later_steps_wait(toy, tmp_path, monkeypatch):
    calls, config_path = toy
    module = sys.modules["toy_stage_module"]
    finished = module.run
    preempt = {"a"}

    def run(config, workdir):
        if config.value in preempt:
            calls.append(("preempted", config.value))
            return {"step": 3, "preempted": True}
        return finished(config, workdir)

    monkeypatch.setattr(module, "run", run)
    summary = run_pipeline(_pipeline(config_path), str(tmp_path / "run"))
    assert summary["stopped"] == "first" and summary["ran"] == ["first"]
    assert not (tmp_path / "run" / "one" / ".done-first.json").exists()
    assert calls == [("preempted", "a")]  # the second step did not run on partial outputs
    preempt.clear()  # the rerun continues the step, then the rest
    summary = run_pipeline(_pipeline(config_path), str(tmp_path / "run"))
    assert summary["ran"] == ["first", "second"] and "stopped" not in summary
