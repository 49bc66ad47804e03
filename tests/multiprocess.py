"""Runs launch.py as 1 process with N CPU devices or as N processes (jax.distributed on
127.0.0.1) with 1 device each: the local simulation of a multi-host pod."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict:
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if "xla_force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _command(config: str, workdir: str, overrides: dict) -> list[str]:
    cmd = [sys.executable, os.path.join(REPO, "launch.py"), f"--config={config}",
           f"--workdir={workdir}"]
    cmd += [f"--config.{k}={v}" for k, v in overrides.items()]
    return cmd


def launch(config: str, workdir: str, overrides: dict | None = None, *, processes: int = 1,
           devices: int = 2, timeout_s: float = 600.0, per_process: list[dict] | None = None,
           expect_failure: bool = False) -> list[str]:
    """Runs the stage; returns each process's log. Raises AssertionError with the logs when
    any process fails (with `expect_failure`: when any process succeeds or hangs).
    `processes=1` uses `devices` CPU devices in one process; otherwise `processes` processes
    with one device each (`devices` ignored); `per_process[i]` adds overrides for process i."""
    overrides = dict(overrides or {})
    if processes == 1:
        procs = [subprocess.Popen(_command(config, workdir, overrides), cwd=REPO,
                                  env=_env(devices), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)]
    else:
        port = free_port()
        procs = []
        for pid in range(processes):
            extra = per_process[pid] if per_process else {}
            o = dict(overrides, **extra, **{"run.distributed": True,
                                   "run.coordinator_address": f"127.0.0.1:{port}",
                                   "run.num_processes": processes, "run.process_id": pid})
            procs.append(subprocess.Popen(_command(config, workdir, o), cwd=REPO, env=_env(1),
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True))
    logs, failed, hung = [], False, False
    for p in procs:
        try:
            out, _ = p.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            out, _ = p.communicate()
            hung = True
        logs.append(out)
        failed |= p.returncode != 0
    if expect_failure:
        if hung or not all(p.returncode != 0 for p in procs):
            raise AssertionError(f"{config}: expected every process to fail fast; hung={hung}, "
                                 f"exit codes {[p.returncode for p in procs]}")
        return logs
    if failed or hung:
        tails = "\n\n".join(f"--- process {i} ---\n{log[-6000:]}" for i, log in enumerate(logs))
        raise AssertionError(f"{config} failed ({processes} processes):\n{tails}")
    return logs


def launch_and_preempt(config: str, workdir: str, overrides: dict, after_line: str, *,
                       devices: int = 2, timeout_s: float = 600.0) -> str:
    """Runs one process, sends it SIGTERM once a log line contains `after_line`, and waits
    for it to exit. Returns its log; raises AssertionError if it did not exit cleanly."""
    import signal
    import time

    proc = subprocess.Popen(_command(config, workdir, overrides), cwd=REPO, env=_env(devices),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, deadline, sent = [], time.monotonic() + timeout_s, False
    for line in proc.stdout:
        lines.append(line)
        if not sent and after_line in line:
            proc.send_signal(signal.SIGTERM)
            sent = True
        if time.monotonic() > deadline:
            proc.kill()
            break
    proc.wait()
    log = "".join(lines)
    if proc.returncode != 0 or not sent:
        raise AssertionError(f"preempted run: exit {proc.returncode}, signal sent {sent}:\n"
                             f"{log[-6000:]}")
    return log
