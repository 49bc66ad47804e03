"""Fault corpus (issue 13, points 3 and 10): two runs in one workdir, a killed run's stale lock,
a resume with another config, errors a person can read, temporaries of a killed run.

Each case: the bad situation, then the expected outcome. No model is compiled: the launched
stages are tiny test stages registered by a driver (as tests/test_launch.py does).

The issue-13 fault corpus, by file:
  test_faults_workdir.py   2nd run into a busy workdir, kill -9 then rerun (stale lock), lock
                           of a live process / another host, half-written lock, busy pipeline
                           step, resume with another config, expected errors (missing file,
                           disk full, bad annotation, bug), config typos and bad switches,
                           temporaries of a killed run
  test_faults_data.py      changed video file / new concept vocabulary (shards rewritten),
                           truncated and tiny videos (reported; skipped under strict),
                           fingerprint mismatch + force, caption_video rerun after the video
                           or the encoder changed
  test_faults_features.py  NaN, wrong width, truncated .npy, missing features: one report,
                           counted, strict fails (stage level: test_captioner_train.py)
  test_faults_devices.py   1 vs 2 devices within the README's tolerance (slow)
Kills inside evaluations and preemptions: test_captioner_train.py, test_scst_train.py,
test_multihost.py; evaluator inputs: test_eval_submission.py.
"""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import ml_collections
import pytest

from data_prep.infra.workdir_lock import (
    LOCK_NAME,
    ResumeConfigError,
    WorkdirLock,
    WorkdirLockedError,
    check_resume_config,
)
from data_prep.orchestration.config_files import apply_overrides, load_config_file
from data_prep.orchestration.errors import format_error

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG = textwrap.dedent(
    '''
    import ml_collections

    def get_config(arg=None):
        c = ml_collections.ConfigDict()
        c.stage = "fault_test"
        c.action = arg or "ok"
        c.optim = ml_collections.ConfigDict({"lr": 0.1, "wd": 0.0})
        return c
    '''
)

# A driver registering stage "fault_test": `action` says what the stage does.
DRIVER = textwrap.dedent(
    f'''
    import errno, os, sys, time
    sys.path.insert(0, {REPO!r})
    import launch
    from absl import app
    from data_prep.annotations.errors import AnnotationError
    from data_prep.orchestration import registry

    def stage(config, workdir):
        action = config.action
        if action == "wait":  # hold the workdir until the file `release` appears
            open(os.path.join(workdir, "started"), "w").close()
            while not os.path.exists(os.path.join(workdir, "release")):
                time.sleep(0.05)
        elif action == "missing":
            open("/no/such/dir/annotations.json")
        elif action == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device",
                          os.path.join(workdir, "features.h5"))
        elif action == "annotation":
            raise AnnotationError("val.json", "v_x", "timestamps", "must be [start, end]")
        elif action == "bug":
            raise TypeError("a programming error keeps its traceback")
        print("STAGE DONE", flush=True)

    sys.modules["fault_stage"] = type(sys)("fault_stage")
    sys.modules["fault_stage"].run = stage
    registry.STAGES["fault_test"] = "fault_stage:run"
    registry.STAGES["sa_tsp_train"] = "fault_stage:run"  # a resumable stage's name
    app.run(launch.main, flags_parser=launch.parse_flags)
    '''
)


def _start(tmp_path, action, workdir="wd", env=None, flags=()):
    (tmp_path / "cfg.py").write_text(CONFIG)
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, "--config", f"cfg.py:{action}", "--workdir", workdir,
         *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env=dict(os.environ, JAX_PLATFORMS="cpu", **(env or {})))


def _run(tmp_path, action, workdir="wd", env=None, flags=()):
    proc = _start(tmp_path, action, workdir, env, flags)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _wait_for(path, proc, timeout=60.0):
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.05)


# ----------------------------------------------------------------------------- point 3: lock
def test_second_run_into_a_busy_workdir_stops_and_a_killed_runs_lock_is_taken_over(tmp_path):
    """Run A holds wd; run B into wd stops (exit 1) naming A's pid; A is killed with -9 (its
    lock stays); run C takes the stale lock over, runs, and removes it."""
    first = _start(tmp_path, "wait")
    try:
        _wait_for(tmp_path / "wd" / "started", first)
        holder = json.loads((tmp_path / "wd" / LOCK_NAME).read_text())
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
        rc, out, err = _run(tmp_path, "ok")
        assert rc == 1, err
        assert "STAGE DONE" not in out
        assert f"pid {first.pid}" in err and "in use by another run" in err
        assert "Traceback" not in err
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    assert (tmp_path / "wd" / LOCK_NAME).exists()  # kill -9 leaves the lock behind
    rc, out, err = _run(tmp_path, "ok")
    assert rc == 0, err
    assert "STAGE DONE" in out and "stale lock" in err
    assert not (tmp_path / "wd" / LOCK_NAME).exists()


def test_lock_of_a_live_process_and_of_another_host_is_respected(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for host in (socket.gethostname(), "another-host"):
            (tmp_path / LOCK_NAME).write_text(json.dumps(
                {"pid": sleeper.pid, "host": host, "started": "t0", "command": "x"}))
            with pytest.raises(WorkdirLockedError, match=f"pid {sleeper.pid} on host {host}"):
                with WorkdirLock(str(tmp_path), main=True):
                    pass
    finally:
        sleeper.kill()
        sleeper.wait()
    # The same process re-enters its own lock (a pipeline step in the pipeline's workdir) and
    # only the outer holder removes it.
    (tmp_path / LOCK_NAME).unlink()
    with WorkdirLock(str(tmp_path), main=True):
        with WorkdirLock(str(tmp_path), main=True):
            pass
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_half_written_lock_is_stale(tmp_path):
    (tmp_path / LOCK_NAME).write_text('{"pid": 12')  # killed while creating it
    with WorkdirLock(str(tmp_path), main=True):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


# ----------------------------------------------------------------------------- resume config
def _train_config(**changes):
    c = ml_collections.ConfigDict({
        "stage": "sa_tsp_train", "seed": 0, "max_steps_this_run": 0, "progress_every_s": 30.0,
        "optim": {"lr": 0.1, "wd": 0.0},
        "run": {"distributed": False, "num_processes": 1}})
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = c
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


def test_resume_with_another_config_stops_naming_the_keys(tmp_path):
    wd = str(tmp_path)
    (tmp_path / "config.json").write_text(_train_config().to_json(sort_keys=True))
    check_resume_config(wd, _train_config(seed=1), "sa_tsp_train")  # no checkpoint: fresh run
    (tmp_path / "checkpoints" / "4").mkdir(parents=True)
    with pytest.raises(ResumeConfigError) as err:
        check_resume_config(wd, _train_config(seed=1, **{"optim.lr": 0.2}), "sa_tsp_train")
    assert "seed: 0 -> 1" in str(err.value) and "optim.lr: 0.1 -> 0.2" in str(err.value)
    assert "optim.wd" not in str(err.value)
    # Resume-safe: how the run is spread and how long this invocation goes on.
    check_resume_config(wd, _train_config(
        max_steps_this_run=4, progress_every_s=1.0, **{"run.num_processes": 2}), "sa_tsp_train")
    # Another stage sharing the workdir (prediction after training) is not a resume.
    check_resume_config(wd, _train_config(seed=5), "captioner_predict")


def test_launch_refuses_to_resume_a_checkpoint_with_another_config(tmp_path):
    stage = "--config.stage=sa_tsp_train"
    rc, _, err = _run(tmp_path, "ok", flags=(stage,))
    assert rc == 0, err
    (tmp_path / "wd" / "checkpoints" / "2").mkdir(parents=True)  # as a killed run leaves it
    rc, out, err = _run(tmp_path, "ok", flags=(stage, "--config.optim.lr=0.2"))
    assert rc == 1 and "STAGE DONE" not in out
    assert "optim.lr: 0.1 -> 0.2" in err and "Traceback" not in err
    assert json.loads((tmp_path / "wd" / "config.json").read_text())["optim"]["lr"] == 0.1
    rc, out, err = _run(tmp_path, "ok", flags=(stage,))  # the recorded config resumes
    assert rc == 0 and "STAGE DONE" in out, err


# ----------------------------------------------------------------------------- point 10
@pytest.mark.parametrize("action,kind,words", [
    ("missing", "FileNotFoundError", ["/no/such/dir/annotations.json", "check the path"]),
    ("enospc", "disk full", ["features.h5", "free space"]),
    ("annotation", "AnnotationError", ["field 'timestamps'", "fix the annotation file"]),
])
def test_expected_errors_print_two_lines_and_exit_1(tmp_path, action, kind, words):
    rc, out, err = _run(tmp_path, action)
    assert rc == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(("error", "  ->"))]
    assert len(lines) == 2 and kind in lines[0], err
    for word in words:
        assert word in err
    assert not (tmp_path / "wd" / LOCK_NAME).exists()  # released on the way out


def test_traceback_on_request_and_for_bugs(tmp_path):
    rc, _, err = _run(tmp_path, "missing", env={"DVC_TRACEBACK": "1"})
    assert rc == 1 and "Traceback" in err
    rc, _, err = _run(tmp_path, "bug")
    assert rc == 1 and "Traceback" in err and "TypeError" in err


def test_config_typo_names_the_keys_at_that_level(tmp_path):
    (tmp_path / "cfg.py").write_text(CONFIG)
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "launch.py"), "--config", "cfg.py",
         "--config.optim.lrr=5", "--workdir", "wd"],
        capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, JAX_PLATFORMS="cpu"),
        timeout=120)
    assert proc.returncode == 2
    assert "no key 'lrr' at optim; keys there: lr, wd" in proc.stderr
    assert "'optim.lr'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "wd").exists()


def test_pipeline_override_typo_names_the_keys(tmp_path):
    (tmp_path / "cfg.py").write_text(CONFIG)
    config = load_config_file(f"{tmp_path}/cfg.py")
    with pytest.raises(KeyError, match="no key 'lrr' at optim; keys there: lr, wd"):
        apply_overrides(config, {"optim.lrr": 5})
    with pytest.raises(KeyError, match="keys there: action, optim, stage"):
        apply_overrides(config, {"optimm.lr": 5})


def test_disk_full_message_names_the_file():
    text = format_error(OSError(errno.ENOSPC, "No space left on device", "/wd/x.h5"))
    assert text.startswith("error (disk full): ") and "/wd/x.h5" in text


def test_temporaries_of_a_killed_run_are_removed_on_the_next_run(tmp_path):
    wd = tmp_path / "wd"
    (wd / "predictions").mkdir(parents=True)
    stale = [wd / "train-00000-of-00001.tfrecord.tmp-4242", wd / ".features.h5.tmp-abc.h5",
             wd / ".summary.json.x1y2.tmp", wd / "predictions" / ".val.json.tmp-zz.json"]
    for path in stale:
        path.write_bytes(b"half")
    (wd / "keep.json").write_text("{}")
    rc, _, err = _run(tmp_path, "ok")
    assert rc == 0, err
    assert not any(p.exists() for p in stale)
    assert (wd / "keep.json").exists()


@pytest.mark.parametrize("spec,words", [
    ("configs/data/shards_synthetic.py:shardz=3",
     ["unknown config switch 'shardz'", "known switches: concepts"]),
    ("configs/no_such_config.py", ["cannot load the config file", "No such file"]),
])
def test_bad_config_file_or_switch_is_one_message(tmp_path, spec, words):
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "launch.py"), "--config", spec, "--workdir", "wd"],
        capture_output=True, text=True, cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu"),
        timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 2
    for word in words:
        assert word in proc.stderr


def test_pipeline_step_into_a_busy_workdir_stops_before_running(tmp_path, monkeypatch):
    """Each pipeline step takes its own workdir's lock: a step whose folder another live run
    holds stops the pipeline (the step does not run, no done marker)."""
    from data_prep.orchestration import registry
    from data_prep.orchestration.pipeline import run_pipeline

    (tmp_path / "cfg.py").write_text(CONFIG)
    ran = []
    monkeypatch.setitem(sys.modules, "fault_pipe_stage", type(sys)("fault_pipe_stage"))
    sys.modules["fault_pipe_stage"].run = lambda config, workdir: ran.append(workdir)
    monkeypatch.setitem(registry.STAGES, "fault_test", "fault_pipe_stage:run")
    c = ml_collections.ConfigDict()
    c.stage = "pipeline"
    c.force = c.only = c.report = ""
    c.steps = [{"name": "a", "config": f"{tmp_path}/cfg.py"},
               {"name": "b", "config": f"{tmp_path}/cfg.py"}]
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "run" / "b").mkdir(parents=True)
        (tmp_path / "run" / "b" / LOCK_NAME).write_text(json.dumps(
            {"pid": sleeper.pid, "host": socket.gethostname(), "started": "t0"}))
        with pytest.raises(WorkdirLockedError, match=str(tmp_path / "run" / "b")):
            run_pipeline(c, str(tmp_path / "run"))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert ran == [str(tmp_path / "run" / "a")]
    assert not (tmp_path / "run" / "b" / ".done-b.json").exists()
    assert not (tmp_path / "run" / "a" / LOCK_NAME).exists()
