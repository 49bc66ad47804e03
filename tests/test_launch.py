"""launch.py: config files with args, overrides, unknown keys, stage dispatch."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import launch
from configs.common import run_block

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
        def echo(config, workdir):
            print("RESULT", json.dumps({{"seed": config.seed, "size": config.size,
                                         "workdir": workdir}}))
        sys.modules["echo_stage"] = type(sys)("echo_stage")
        sys.modules["echo_stage"].run = echo
        launch.STAGES["echo_test"] = "echo_stage:run"
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
    monkeypatch.setitem(launch.STAGES, "echo_test", "echo_stage_mod:run")
    c = ml_collections.ConfigDict()
    c.stage = "pipeline"
    c.force = c.only = ""
    c.steps = [{"name": "a", "config": f"{tmp_path}/cfg.py:small", "workdir": "a"},
               {"name": "b", "config": f"{tmp_path}/cfg.py", "overrides": {"seed": 7}}]
    launch.run_pipeline(c, str(tmp_path / "run"))
    a = json.loads((tmp_path / "run" / "a" / "config.json").read_text())
    b = json.loads((tmp_path / "run" / "b" / "config.json").read_text())
    assert a == {"stage": "echo_test", "seed": 0, "size": "small"}
    assert b == {"stage": "echo_test", "seed": 7, "size": "default"}


def test_unknown_override_key_is_an_error(tmp_path):
    out = _launch(tmp_path, "--config", "cfg.py", "--config.sede=3", "--workdir", "wd")
    assert out.returncode != 0
    assert "sede" in out.stderr


def test_missing_workdir_is_a_usage_error(tmp_path):
    out = _launch(tmp_path, "--config", "cfg.py")
    assert out.returncode != 0
    assert "--workdir" in out.stderr


def test_every_registered_stage_names_a_module_and_function():
    for name, target in launch.STAGES.items():
        module, _, func = target.partition(":")
        assert module and func, name
    with pytest.raises(KeyError, match="unknown stage"):
        launch.resolve_stage("no_such_stage")


HELPER_CONFIGS = {"__init__.py", "common.py", "base.py", "text_common.py", "scst_common.py"}


def test_every_config_file_loads_and_names_a_registered_stage():
    import glob

    files = [p for p in glob.glob(os.path.join(REPO, "configs", "**", "*.py"), recursive=True)
             if os.path.basename(p) not in HELPER_CONFIGS]
    assert len(files) >= 15
    for path in files:
        config = launch.load_config_file(os.path.relpath(path, REPO))
        assert config.stage in launch.STAGES, path
        # jax_setup.setup_jax reads `config.run` (multi-host): every stage has the same block.
        assert set(config.run) == set(run_block()), path
