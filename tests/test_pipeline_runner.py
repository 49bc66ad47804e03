"""launch.run_pipeline: ordered steps, skip-if-done, force/only, overrides, failures."""
import json
import sys
import types

import ml_collections
import pytest

import launch

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
        with open(f"{workdir}/out.txt", "w") as f:
            f.write(config.value)
        return {"value": config.value}

    module = types.ModuleType("toy_stage_module")
    module.run = run
    monkeypatch.setitem(sys.modules, "toy_stage_module", module)
    monkeypatch.setitem(launch.STAGES, "toy_stage", "toy_stage_module:run")
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
    c.update(extra)
    return c


def test_steps_run_in_order_then_are_skipped(toy, tmp_path):
    calls, path = toy
    wd = tmp_path / "run"
    launch.run_pipeline(_pipeline(path), str(wd))
    assert [c[0] for c in calls] == ["a", "b"]
    assert calls[1][1] == f"{wd}/one/out.txt"  # {workdir} placeholder filled
    marker = json.loads((wd / "second" / ".done-second.json").read_text())
    assert marker["stage"] == "toy_stage" and marker["result"] == {"value": "b"}

    launch.run_pipeline(_pipeline(path), str(wd))
    assert len(calls) == 2  # both done: nothing reruns
    launch.run_pipeline(_pipeline(path, force="second"), str(wd))
    assert [c[0] for c in calls] == ["a", "b", "b"]
    launch.run_pipeline(_pipeline(path, force="all", only="first"), str(wd))
    assert [c[0] for c in calls] == ["a", "b", "b", "a"]


def test_failed_step_leaves_no_marker_and_reruns(toy, tmp_path):
    calls, path = toy
    wd = tmp_path / "run"
    config = _pipeline(path)
    config.steps[1]["overrides"]["fail"] = True
    with pytest.raises(RuntimeError, match="stage failed"):
        launch.run_pipeline(config, str(wd))
    assert (wd / "one" / ".done-first.json").exists()
    assert not (wd / "second" / ".done-second.json").exists()
    launch.run_pipeline(_pipeline(path), str(wd))
    assert [c[0] for c in calls] == ["a", "b"]  # first skipped, second retried


def test_bad_step_names_and_override_keys_are_errors(toy, tmp_path):
    _, path = toy
    with pytest.raises(KeyError, match="no step"):
        launch.run_pipeline(_pipeline(path, force="thrid"), str(tmp_path / "x"))
    config = _pipeline(path)
    config.steps[0]["overrides"] = {"valeu": 1}
    with pytest.raises(KeyError, match="valeu"):
        launch.run_pipeline(config, str(tmp_path / "y"))
    with pytest.raises(FileNotFoundError, match="not found"):
        launch.load_config_file("configs/no_such_config.py")


def test_report_collects_tables_from_step_results(toy, tmp_path, capsys):
    _, path = toy
    config = _pipeline(path, report="launch:pipeline_report")
    config.steps[0]["report"] = {"table": "GT proposals", "row": "model a", "key": ""}
    config.steps[1]["report"] = {"table": "GT proposals", "row": "model b", "key": ""}
    launch.run_pipeline(config, str(tmp_path / "run"))
    out = capsys.readouterr().out
    assert "GT proposals" in out and "model a" in out and "model b" in out
    assert "Artefacts" in out and str(tmp_path / "run" / "one") in out
    tables = json.loads((tmp_path / "run" / "results.json").read_text())
    assert list(tables["GT proposals"]) == ["model a", "model b"]
    assert (tmp_path / "run" / "results.md").read_text().count("| model |") == 1
