"""tests/suite_timeline.py (per-test times of a session) and benchmarks/suite_balance.py
(the workers' balance, and the tests replayed through xdist's file scheduling)."""
import os
import subprocess
import sys

import pytest

from benchmarks import suite_balance
from tests.suite_order import SLOWEST_FILES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_replay_hands_out_files_as_xdist_loadfile_does():
    """Worked by hand. Most-tests-first: worker 0 gets a (4 tests); worker 1 gets b and, with
    one test pending, c too; worker 0 gets d when two of a's tests are left: 4 + 5 = 9 s,
    worker 1 10 + 6 = 16 s. Slowest first: b then d on worker 0 (15 s), c then a on 1 (10 s)."""
    files = {"a": [1.0] * 4, "b": [10.0], "c": [6.0], "d": [5.0]}
    assert suite_balance.replay(files, ["a", "b", "c", "d"], workers=2) == [9.0, 16.0]
    assert suite_balance.replay(files, ["b", "c", "d", "a"], workers=2) == [15.0, 10.0]
    assert suite_balance.replay(files, ["a", "b", "c", "d"], workers=1) == [25.0]


def test_orders_are_xdists_default_and_the_projects():
    slow = f"tests/{SLOWEST_FILES[0]}"
    files = {"tests/test_a.py": [1.0] * 3, "tests/test_b.py": [1.0] * 5, slow: [9.0]}
    orders = suite_balance.orders(files)
    assert orders["xdist_default"] == ["tests/test_b.py", "tests/test_a.py", slow]
    assert orders["suite_order"] == [slow, "tests/test_a.py", "tests/test_b.py"]


def test_two_workers_record_their_tests_and_the_report_reads_them(tmp_path):
    """A real 2-worker session with DVC_TEST_TIMELINE set: one file per worker, none from the
    controller, every test's start and end; the report's figures follow from them."""
    folder = tmp_path / "timeline"
    folder.mkdir()
    (folder / "gw0.tsv").write_text("1.0\tstart\ttests/test_old.py::t\n")  # an earlier run's
    tests = ["tests/test_suite_order.py::test_every_listed_file_exists_once",
             "tests/test_eval_scorers.py::test_tiou_edge_cases"]
    env = dict(os.environ, DVC_TEST_TIMELINE=str(folder))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadfile", *tests],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["gw0.tsv", "gw1.tsv"]
    timeline = suite_balance.read_timeline(str(folder))
    recorded = sorted(nodeid for worker in timeline.values() for nodeid, _, _ in worker)
    assert recorded == sorted(tests)
    assert all(end >= start for worker in timeline.values() for _, start, end in worker)

    record = suite_balance.main([str(folder)])
    assert set(record["workers"]) == {"gw0", "gw1"}
    assert all(w["tests"] == 1 for w in record["workers"].values())
    assert record["busy_fraction"] is None or 0 < record["busy_fraction"] <= 1
    ends = [w["end_s"] for w in record["workers"].values()]
    assert record["end_gap_s"] == pytest.approx(max(ends) - min(ends), abs=0.11)
    assert set(record["replay"]) == {"xdist_default", "suite_order"}


def test_a_malformed_line_names_the_file_and_line(tmp_path):
    (tmp_path / "gw0.tsv").write_text("1.0\tstart\ttests/test_x.py::t\nnot a record\n")
    with pytest.raises(SystemExit, match=r"gw0\.tsv:2: not"):
        suite_balance.read_timeline(str(tmp_path))
    with pytest.raises(SystemExit, match="no <worker>.tsv files"):
        suite_balance.read_timeline(str(tmp_path / "empty"))
