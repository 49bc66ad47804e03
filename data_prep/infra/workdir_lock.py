"""One run per workdir: a lock file, and a check that a resumed run kept its config.

`WorkdirLock(workdir)` (a context manager) is held by every stage `launch.py` starts and by
every step of a pipeline. Process 0 alone holds it; the other processes learn its outcome
(the same error on every process, not a hang). The lock is the file `workdir/.lock`, JSON
with the holder's pid, host name, start time (UTC) and command line:

- local folders: created with O_CREAT|O_EXCL, so of two runs started together exactly one
  gets it. A lock whose host is this host and whose pid is no longer running (the run was
  killed with `kill -9`, or the machine rebooted) is stale: it is taken over with a warning.
  A lock of a live process, or of another host (whose processes cannot be checked from
  here), stops the run with `WorkdirLockedError` naming the holder and the file to delete if
  that run is really gone.
- object stores (`gs://`): best effort. Objects have no exclusive create through the path
  layer, so the lock is "check, then write, then read back": two runs started within the
  same second may both proceed. Stale locks cannot be detected across hosts; delete the
  object by hand (`gsutil rm gs://.../.lock`) after a crash.

A lock that this very process already holds (a pipeline step working in the pipeline's own
workdir) is re-entered, and left for the outer holder to release.

`check_resume_config(workdir, config, stage)`: a checkpointing stage (`RESUMABLE_STAGES`)
whose workdir already holds a checkpoint resumes from it. If the `config.json` the earlier
run wrote (`data_prep.orchestration.config_files.write_resolved_config`) differs from the new
config in anything but `RESUME_SAFE_KEYS`, the run stops with `ResumeConfigError` naming the
differing keys: a resumed run with another seed or learning rate would silently produce a
hybrid of two configs.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import sys

from data_prep.infra import paths

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"

# Stages that resume from `workdir/checkpoints` (their config must not change under a resume).
RESUMABLE_STAGES = ("sa_tsp_train", "captioner_train", "captioner_scst")

# Config keys that may differ between a run and its resumption: how it runs (hosts, devices
# of `run.*`), how long this invocation goes on, how often it reports progress in the log
# (not metrics.jsonl), and `force`. Dotted prefixes: "run" covers every `run.*` key.
RESUME_SAFE_KEYS = ("run", "max_steps_this_run", "progress_every_s", "force")


class WorkdirLockedError(RuntimeError):
    """Another run holds the workdir's lock."""


class ResumeConfigError(ValueError):
    """A resumed run's config differs from the one its checkpoint was made with."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _this_holder() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.UTC).isoformat(
                timespec="seconds"),
            "command": " ".join(sys.argv)[:500]}


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid')} on host {holder.get('host')} since "
            f"{holder.get('started')} ({holder.get('command', '')!r})")


def _read_holder(path: str) -> dict | None:
    try:
        return json.loads(paths.read_text(path))
    except FileNotFoundError:
        return None
    except (ValueError, OSError):  # half-written by a run killed while creating it
        return {}


class WorkdirLock:
    """`with WorkdirLock(workdir):` the run's exclusive hold on `workdir` (module docstring).

    Args:
      workdir: the run's output folder (local or remote; created if missing).
      main: whether this process takes the lock (default: JAX process 0); the others only
        share the outcome, so every process raises the same error.
    """

    def __init__(self, workdir: str, main: bool | None = None):
        self.workdir = workdir
        self.path = paths.join(workdir, LOCK_NAME)
        self._main = main
        self._owned = False

    def __enter__(self) -> WorkdirLock:
        from data_prep.infra import distributed  # imports JAX: only when used

        main = distributed.is_main_process() if self._main is None else self._main
        error = None
        if main:
            try:
                self._acquire()
            except WorkdirLockedError as err:
                error = str(err)
        errors = distributed.allgather_objects(error) if self._main is None else [error]
        if errors[0] is not None:
            raise WorkdirLockedError(errors[0])
        return self

    def __exit__(self, *exc) -> None:
        if self._owned:
            holder = _read_holder(self.path)
            if holder and holder.get("pid") == os.getpid() and (
                    holder.get("host") == socket.gethostname()):
                paths.remove(self.path)
            self._owned = False

    def _acquire(self) -> None:
        paths.make_dirs(self.workdir)
        me = _this_holder()
        for _ in range(3):  # a stale lock removed, then one more try; a race: once more
            if self._create(me):
                self._owned = True
                return
            holder = _read_holder(self.path)
            if holder is None:  # released between our create and our read
                continue
            if holder.get("pid") == me["pid"] and holder.get("host") == me["host"]:
                return  # held by this process already (nested): re-entered, not released
            if (holder.get("host") == me["host"] and isinstance(holder.get("pid"), int)
                    and not _pid_alive(holder["pid"])) or holder == {}:
                log.warning("taking over the stale lock %s of a run that is gone (%s)",
                            self.path, _describe(holder) if holder else "unreadable")
                paths.remove(self.path)
                continue
            raise WorkdirLockedError(
                f"workdir {self.workdir} is in use by another run: {_describe(holder)}. "
                f"Wait for it to finish or use another --workdir; if that run is gone "
                f"(e.g. its machine was lost), delete {self.path} and start again.")
        raise WorkdirLockedError(f"could not take the lock {self.path} (it keeps changing)")

    def _create(self, me: dict) -> bool:
        data = json.dumps(me, indent=1).encode()
        if paths.is_local(self.path):
            try:
                fd = os.open(os.fspath(self.path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return True
        # Object store: best effort (module docstring).
        if paths.exists(self.path):
            return False
        paths.as_path(self.path).write_bytes(data)
        holder = _read_holder(self.path)
        return bool(holder) and holder.get("pid") == me["pid"] and holder.get("host") == me[
            "host"] and holder.get("started") == me["started"]


# ----------------------------------------------------------------------------- resume config
def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: value}


def _resume_safe(key: str) -> bool:
    return any(key == safe or key.startswith(safe + ".") for safe in RESUME_SAFE_KEYS)


def config_differences(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ between two config dicts (JSON form), resume-safe keys
    left out; each as "key: old -> new" (or "(missing)")."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    missing = "(missing)"
    diffs = []
    for key in sorted(set(flat_old) | set(flat_new)):
        a, b = flat_old.get(key, missing), flat_new.get(key, missing)
        if _resume_safe(key) or a == b:
            continue
        diffs.append(f"{key}: {a!r} -> {b!r}")
    return diffs


def has_checkpoint(workdir: str) -> bool:
    """Whether `workdir/checkpoints` holds a step (what the trainers resume from)."""
    ckpt = paths.join(workdir, "checkpoints")
    return paths.is_dir(ckpt) and any(n.isdigit() for n in paths.list_dir(ckpt))


def check_resume_config(workdir: str, config, stage: str) -> None:
    """Raises ResumeConfigError when a resumable stage would resume a checkpoint in `workdir`
    made with another config (module docstring). Call before the new config.json is written.
    """
    if stage not in RESUMABLE_STAGES or not has_checkpoint(workdir):
        return
    recorded_path = paths.join(workdir, "config.json")
    if not paths.is_file(recorded_path):
        return
    try:
        recorded = json.loads(paths.read_text(recorded_path))
    except ValueError:
        return  # unreadable record: nothing to compare (the trainer checks what it restores)
    if recorded.get("stage") != stage:  # another stage sharing the workdir wrote it last
        return
    new = json.loads(config.to_json_best_effort(sort_keys=True))
    diffs = config_differences(recorded, new)
    if diffs:
        shown = "; ".join(diffs[:10]) + (f"; ... ({len(diffs)} in all)" if len(diffs) > 10
                                         else "")
        raise ResumeConfigError(
            f"{workdir} holds a checkpoint of a {stage} run with another config ({shown}). "
            f"Resuming would mix two configs. Use the recorded config ({recorded_path}), "
            "or another --workdir for the new one. Keys that may change on resume: "
            f"{', '.join(RESUME_SAFE_KEYS)}.")
