"""Per-test start and end times of a test session, for `benchmarks/suite_balance.py`.

With `DVC_TEST_TIMELINE=<folder>` set, every pytest process that runs tests appends one line
per event to `<folder>/<worker>.tsv` (`gw0`, `gw1`, ... under pytest-xdist, `main` in a serial
run): `<unix time, s>\t<start|end>\t<test node id>`. The xdist controller writes nothing (it
only relays its workers' reports). Each process starts its own file afresh at its first test;
give each run a new folder, so that no other worker's file of an earlier run is left beside
them. Unset: no file is touched.

    DVC_TEST_TIMELINE=/tmp/timeline make test
    python benchmarks/suite_balance.py /tmp/timeline
"""
from __future__ import annotations

import os
import pathlib
import time

ENV = "DVC_TEST_TIMELINE"
_folder: pathlib.Path | None = None
_worker = "main"
_started_file = False  # the first record of a session replaces an earlier run's file


def configure(config) -> None:
    """Called from conftest's `pytest_configure`: records in workers and serial runs only."""
    global _folder, _worker, _started_file
    folder = os.environ.get(ENV)
    # xdist gives its workers `config.workerinput`; not the PYTEST_XDIST_WORKER variable,
    # which a pytest started from inside a worker (tests/test_suite_balance.py) inherits.
    workerinput = getattr(config, "workerinput", None)
    _worker = workerinput["workerid"] if workerinput is not None else "main"
    is_xdist_controller = workerinput is None and (getattr(config.option, "numprocesses", 0) or 0)
    if not folder or is_xdist_controller:
        _folder = None
        return
    _folder = pathlib.Path(folder)
    _folder.mkdir(parents=True, exist_ok=True)
    _started_file = False


def record(nodeid: str, event: str) -> None:
    """Appends `time, event, nodeid` to this process's file (no-op when not recording); the
    session's first record starts the file afresh (a session that runs no test, such as
    `--collect-only`, leaves no file)."""
    global _started_file
    if _folder is None:
        return
    with open(_folder / f"{_worker}.tsv", "a" if _started_file else "w") as f:
        f.write(f"{time.time():.3f}\t{event}\t{nodeid}\n")
    _started_file = True
