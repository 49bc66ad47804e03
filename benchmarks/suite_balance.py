"""How evenly `make test`'s pytest-xdist workers share the suite, from a recorded timeline,
and the same tests replayed through xdist's file scheduling under two file orders.

    DVC_TEST_TIMELINE=/tmp/timeline make test      # tests/suite_timeline.py records it
    python benchmarks/suite_balance.py /tmp/timeline

Prints, for the recorded run: each worker's number of tests, summed test time and the second
its last test ended (from the first test's start), the gap between the workers' ends and the
busy fraction (summed test time / (workers x the last end)). Then the replay: every test's
recorded duration, files handed out as xdist's `--dist loadfile` does (one file per worker,
then the next file to any worker with two tests or fewer left, after each finished test),
once in xdist's default order (most tests first) and once in the project's
(tests/suite_order.py: the slowest files first, then alphabetical). The replay leaves out the
workers' start-up and the moments between tests, so compare its ends with the recorded ones
to see its error. One BENCH_JSON line with all figures. The seconds depend on the machine
and its other tenants; the busy fraction and the replay's gap are what the order decides.
"""
from __future__ import annotations

import argparse
import collections
import os
import pathlib
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this script's checkout
sys.path.insert(0, REPO)
from benchmarks.harness import emit  # noqa: E402
from tests.suite_order import slowest_files_first  # noqa: E402

Timeline = dict[str, list[tuple[str, float, float]]]  # worker -> [(node id, start, end)]


def read_timeline(folder: str) -> Timeline:
    """`<worker>.tsv` files of tests/suite_timeline.py -> each worker's tests in run order."""
    workers: Timeline = {}
    paths = sorted(pathlib.Path(folder).glob("*.tsv"))
    if not paths:
        raise SystemExit(f"{folder}: no <worker>.tsv files (was DVC_TEST_TIMELINE set?)")
    for path in paths:
        started: dict[str, float] = {}
        tests = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            try:
                when, event, nodeid = line.split("\t")
                when = float(when)
            except ValueError as err:
                raise SystemExit(
                    f"{path}:{number}: not `time<TAB>event<TAB>node id`: {line!r}") from err
            if event == "start":
                started[nodeid] = when
            elif event == "end" and nodeid in started:
                tests.append((nodeid, started.pop(nodeid), when))
        workers[path.stem] = tests
    return workers


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def replay(files: dict[str, list[float]], order: list[str], workers: int) -> list[float]:
    """Each worker's end (s) when files (name -> its tests' durations, in run order) are handed
    out in `order` the way xdist's loadfile scheduler does: one file each, then one more to
    each worker with <= 2 tests left; after every finished test, the next file to that
    worker if it has <= 2 tests left. Start-up and gaps between tests count as 0."""
    queue = collections.deque(order)
    pending: list[collections.deque] = [collections.deque() for _ in range(workers)]
    clock = [0.0] * workers

    def hand_out(worker: int) -> None:
        if queue:
            pending[worker].extend(files[queue.popleft()])

    for worker in range(workers):
        hand_out(worker)
    for worker in range(workers):
        if len(pending[worker]) <= 2:
            hand_out(worker)
    while any(pending):
        busy = [w for w in range(workers) if pending[w]]
        worker = min(busy, key=lambda w: clock[w] + pending[w][0])  # the next test to end
        clock[worker] += pending[worker].popleft()
        if len(pending[worker]) <= 2:
            hand_out(worker)
    return clock


class _Item:  # what suite_order needs of a pytest item
    def __init__(self, name: str):
        self.path = pathlib.PurePosixPath(name)


def orders(files: dict[str, list[float]]) -> dict[str, list[str]]:
    """The file orders to replay, from pytest's collection order (sorted paths)."""
    collected = sorted(files)
    by_count = sorted(collected, key=lambda name: -len(files[name]))  # xdist: stable sort
    project = [item.path.as_posix() for item in slowest_files_first([_Item(n) for n in collected])]
    return {"xdist_default": by_count, "suite_order": project}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("timeline", help="folder of tests/suite_timeline.py's <worker>.tsv files")
    args = parser.parse_args(argv)
    timeline = read_timeline(args.timeline)
    recorded = {w: tests for w, tests in timeline.items() if tests}
    if not recorded:
        raise SystemExit(f"{args.timeline}: no finished tests recorded")
    t0 = min(start for tests in recorded.values() for _, start, _ in tests)
    record = {"bench": "suite_balance", "workers": {}}
    ends, summed = [], 0.0
    print(f"{'worker':8} {'tests':>6} {'summed s':>9} {'ends at s':>10}")
    for worker, tests in sorted(recorded.items()):
        worker_summed = sum(end - start for _, start, end in tests)
        worker_end = max(end for _, _, end in tests) - t0
        ends.append(worker_end)
        summed += worker_summed
        record["workers"][worker] = {"tests": len(tests), "summed_s": round(worker_summed, 1),
                                     "end_s": round(worker_end, 1)}
        print(f"{worker:8} {len(tests):6d} {worker_summed:9.1f} {worker_end:10.1f}")
    record["end_gap_s"] = round(max(ends) - min(ends), 1)
    # Undefined when every test took less than the timeline's millisecond.
    record["busy_fraction"] = round(summed / (len(ends) * max(ends)), 3) if max(ends) else None
    print(f"workers' ends differ by {record['end_gap_s']:.1f} s; busy fraction "
          f"{record['busy_fraction']} (summed test time / (workers x last end))")

    files: dict[str, list[float]] = collections.defaultdict(list)
    for tests in recorded.values():
        for nodeid, start, end in tests:
            files[file_of(nodeid)].append(end - start)
    record["replay"] = {}
    for name, order in orders(files).items():
        clock = replay(files, order, workers=len(recorded))
        record["replay"][name] = {"end_s": [round(c, 1) for c in clock],
                                  "end_gap_s": round(max(clock) - min(clock), 1)}
        print(f"replay, {name:13}: workers end at "
              + " / ".join(f"{c:.1f}" for c in clock) + f" s (last {max(clock):.1f} s)")
    emit(record)
    return record


if __name__ == "__main__":
    main()
