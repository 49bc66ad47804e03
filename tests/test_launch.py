"""launch.py and the stage registry: config files with args, overrides, unknown keys, stage
dispatch."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from configs.common import run_block
from data_prep.orchestration import registry
from data_prep.orchestration.config_files import load_config_file
from data_prep.orchestration.pipeline import run_pipeline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG = textwrap.dedent(
    '''
    import ml_collections

    def get_config(arg=None):
        c = ml_collections.ConfigDict()
        c.stage = "echo_test"
        c.seed = 0
        c.size = arg or "default"
        return c
    '''
)


def _launch(tmp_path, *flags):
    (tmp_path / "cfg.py").write_text(CONFIG)
    # A tiny driver that registers a test stage, then runs launch.main as the CLI would.
    driver = textwrap.dedent(
        f'''
        import json, sys
        sys.path.insert(0, {REPO!r})
        import launch
        from absl import app
        from data_prep.orchestration import registry
        def echo(config, workdir):
            print("RESULT", json.dumps({{"seed": config.seed, "size": config.size,
                                         "workdir": workdir}}))
        sys.modules["echo_stage"] = type(sys)("echo_stage")
        sys.modules["echo_stage"].run = echo
        registry.STAGES["echo_test"] = "echo_stage:run"
        app.run(launch.main)
        '''
    )
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-c", driver, *flags],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )


def test_config_arg_and_override_reach_the_stage(tmp_path):
    out = _launch(tmp_path, "--config", "cfg.py:tiny", "--config.seed=3", "--workdir", "wd")
    assert out.returncode == 0, out.stderr
    assert 'RESULT {"seed": 3, "size": "tiny", "workdir": "wd"}' in out.stdout
    # The resolved config (arg and override applied) lands in the workdir before the stage runs.
    written = json.loads((tmp_path / "wd" / "config.json").read_text())
    assert written == {"stage": "echo_test", "seed": 3, "size": "tiny"}


def test_pipeline_writes_each_steps_resolved_config(tmp_path, monkeypatch):
    import ml_collections

    (tmp_path / "cfg.py").write_text(CONFIG)
    monkeypatch.setitem(sys.modules, "echo_stage_mod", type(sys)("echo_stage_mod"))
    sys.modules["echo_stage_mod"].run = lambda config, workdir: {"seed": config.seed}
    monkeypatch.setitem(registry.STAGES, "echo_test", "echo_stage_mod:run")
    c = ml_collections.ConfigDict()
    c.stage = "pipeline"
    c.force = c.only = c.report = ""
    c.steps = [{"name": "a", "config": f"{tmp_path}/cfg.py:small", "workdir": "a"},
               {"name": "b", "config": f"{tmp_path}/cfg.py", "overrides": {"seed": 7}}]
    run_pipeline(c, str(tmp_path / "run"))
    a = json.loads((tmp_path / "run" / "a" / "config.json").read_text())
    b = json.loads((tmp_path / "run" / "b" / "config.json").read_text())
    assert a == {"stage": "echo_test", "seed": 0, "size": "small"}
    assert b == {"stage": "echo_test", "seed": 7, "size": "default"}


def test_unknown_override_key_is_an_error(tmp_path):
    out = _launch(tmp_path, "--config", "cfg.py", "--config.sede=3", "--workdir", "wd")
    assert out.returncode != 0
    assert "sede" in out.stderr


@pytest.mark.parametrize("flag", ["--config.run.distribted=True", "--config.tiou=0.5"])
def test_misspelled_override_of_a_real_config_fails_before_the_stage(tmp_path, flag):
    """A nested or top-level typo on a real stage config stops launch.py with the key's name;
    nothing runs and no workdir appears."""
    out = subprocess.run(
        [sys.executable, os.path.join(REPO, "launch.py"), "--config",
         os.path.join(REPO, "configs", "evaluate.py"), flag, "--workdir", str(tmp_path / "wd")],
        capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, JAX_PLATFORMS="cpu"),
        timeout=120)
    assert out.returncode != 0
    assert flag.split("=")[0].rpartition(".")[2] in out.stderr
    assert not (tmp_path / "wd").exists()


def test_missing_workdir_is_a_usage_error(tmp_path):
    out = _launch(tmp_path, "--config", "cfg.py")
    assert out.returncode != 0
    assert "--workdir" in out.stderr


def test_every_registry_entry_imports_and_none_points_into_launch():
    for table, resolve in ((registry.STAGES, registry.resolve_stage),
                           (registry.REPORTS, registry.resolve_report),
                           (registry.HELPERS, registry.resolve_helper)):
        for name, target in table.items():
            assert target.partition(":")[0].split(".")[0] != "launch", name
            assert callable(resolve(name)), name
    with pytest.raises(KeyError, match="unknown stage"):
        registry.resolve_stage("no_such_stage")
    with pytest.raises(KeyError, match="unknown report.*metric_tables"):
        registry.resolve_report("launch:pipeline_report")


def test_launch_only_dispatches():
    """launch.py defines flags, logging and main(), and re-exports nothing of the registry or
    the pipeline (their home is data_prep.orchestration)."""
    import launch

    for name in ("STAGES", "run_pipeline", "pipeline_report", "done_marker",
                 "load_config_file", "apply_overrides", "caption_video"):
        assert not hasattr(launch, name), name


HELPER_CONFIGS = {"__init__.py", "common.py", "base.py", "text_common.py", "scst_common.py"}


def test_every_config_file_loads_and_names_a_registered_stage():
    import glob

    files = [p for p in glob.glob(os.path.join(REPO, "configs", "**", "*.py"), recursive=True)
             if os.path.basename(p) not in HELPER_CONFIGS]
    assert len(files) >= 15
    for path in files:
        config = load_config_file(os.path.relpath(path, REPO))
        assert config.stage in registry.STAGES, path
        # jax_setup.setup_jax reads `config.run` (multi-host): every stage has the same block.
        assert set(config.run) == set(run_block()), path
