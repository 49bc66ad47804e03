"""The test session's file order (tests/suite_order.py) and the Makefile flag that keeps it."""
import pathlib
import re
import subprocess
import sys
from types import SimpleNamespace

from suite_order import SLOWEST_FILES, slowest_files_first

TESTS = pathlib.Path(__file__).resolve().parent


def _item(path: str, name: str) -> SimpleNamespace:
    return SimpleNamespace(path=pathlib.Path(path), name=name)


def test_every_listed_file_exists_once():
    """A renamed or deleted file would silently lose its place at the front."""
    assert len(set(SLOWEST_FILES)) == len(SLOWEST_FILES)
    missing = [name for name in SLOWEST_FILES if not (TESTS / name).is_file()]
    assert not missing, f"tests/suite_order.py names files that are not in tests/: {missing}"


def test_listed_files_first_in_their_order_and_the_rest_kept_in_place():
    items = [
        _item("tests/test_a.py", "a1"),
        _item("tests/test_slow_two.py", "s2_first"),
        _item("tests/test_a.py", "a2"),
        _item("tests/test_b.py", "b1"),
        _item("tests/test_slow_one.py", "s1"),
        _item("tests/test_slow_two.py", "s2_second"),
    ]
    ordered = slowest_files_first(items, slowest=("test_slow_one.py", "test_slow_two.py"))
    assert [i.name for i in ordered] == ["s1", "s2_first", "s2_second", "a1", "a2", "b1"]


def test_collection_puts_a_listed_file_before_an_unlisted_one():
    """conftest.py applies the order: pytest's own collection (a subprocess, so that this
    session's selection does not matter) lists a slow file given second before the other."""
    assert "test_scst_pdvc.py" in SLOWEST_FILES and "test_eval_scorers.py" not in SLOWEST_FILES
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/test_eval_scorers.py", "tests/test_scst_pdvc.py"],
        cwd=TESTS.parent, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    files = [line.split("::")[0] for line in out.stdout.splitlines() if "::" in line]
    assert list(dict.fromkeys(files)) == ["tests/test_scst_pdvc.py", "tests/test_eval_scorers.py"]


def test_makefile_keeps_the_collection_order():
    """Without `--no-loadscope-reorder`, xdist sorts the files by test count instead."""
    makefile = (TESTS.parent / "Makefile").read_text()
    xdist_args = re.search(r"^XDIST_ARGS := (.*)$", makefile, re.M)
    assert xdist_args and "--dist loadfile" in xdist_args.group(1)
    assert "--no-loadscope-reorder" in xdist_args.group(1)
    assert "$(XDIST_ARGS)" in makefile
