"""The order in which the test session hands its files to pytest-xdist's workers.

`make test` runs two workers with `--dist loadfile`: each file goes whole to one worker, in
collection order, and a worker is handed its next file as soon as its current one has two
tests or fewer left. xdist's default order (most tests first) left the files with one or two
long tests for the end, and whichever worker picked them up ran on alone: in a timestamped
run of 6cf4ef6 (2026-12-03, Zen 3 AVX2, 2 cores) one worker ended 118 s before the other
(943.7 s vs 1061.4 s). Handing out the longest files first (longest-processing-time-first)
leaves only short files to even out the end; replaying that run's per-test times through
xdist's scheduling with this order ends the workers at 1002.2 and 1002.5 s
(`benchmarks/suite_balance.py`, whose replay of xdist's own order gives 943.5 and 1061.2 s).

`SLOWEST_FILES` are the files that took 30 s or more in that run (their tests' summed time,
the other worker running beside them), longest first; the other files keep pytest's
alphabetical order behind them. The Makefile passes `--no-loadscope-reorder` so that xdist
keeps this order instead of sorting by test count.
"""
from __future__ import annotations

from collections.abc import Sequence

SLOWEST_FILES: tuple[str, ...] = (
    "test_multihost.py",  # 328 s
    "test_end_to_end.py",  # 279 s
    "test_pipeline_activitynet.py",  # 244 s
    "test_sa_tsp_train.py",  # 133 s
    "test_captioner_train.py",  # 106 s
    "test_accelerator_check.py",  # 77 s
    "test_captioner_train_split.py",  # 72 s
    "test_scst_train.py",  # 52 s
    "test_captioner_speed_paths.py",  # 52 s
    "test_sa_tsp_remat.py",  # 43 s
    "test_scst_pdvc.py",  # 38 s
    "test_faults_devices.py",  # 38 s
    "test_default_build.py",  # 37 s
    "test_import_pdvc.py",  # 36 s (longer with torch installed: its parity checks run)
    "test_meteor_threads.py",  # 35 s
    "test_api.py",  # 31 s
    "test_captioner_model.py",  # 30 s
)


def slowest_files_first(items: Sequence, slowest: Sequence[str] = SLOWEST_FILES) -> list:
    """`items` (pytest items, anything with a `.path`) with the files named in `slowest` first,
    in that order; every other item keeps its place relative to the rest (a stable sort), so
    the tests within a file keep their order."""
    rank = {name: i for i, name in enumerate(slowest)}
    return sorted(items, key=lambda item: rank.get(item.path.name, len(rank)))
