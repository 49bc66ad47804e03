"""benchmarks/import_time.py: per-module import seconds in fresh interpreters, side by side."""
from __future__ import annotations

import json
import sys

import jax
import ml_dtypes
import numpy
import pytest

from benchmarks import import_time


def test_command_times_every_module_under_each_interpreter(tmp_path, capsys):
    out = tmp_path / "import.jsonl"
    # The same interpreter twice stands in for a second venv.
    import_time.main(["--modules", "ml_dtypes,jax", "--repeats", "1",
                      "--python", sys.executable, "--json", str(out)])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["python"] for r in records] == [sys.executable, sys.executable]
    for r in records:
        assert r["bench"] == "import_time" and r["repeats"] == 1
        assert set(r["seconds"]) == {"ml_dtypes", "jax"}
        assert all(s > 0 for s in r["seconds"].values())
        # The child reports the versions it imported (the point of a side-by-side run).
        assert r["versions"] == {"numpy": numpy.__version__, "ml_dtypes": ml_dtypes.__version__,
                                 "jax": jax.__version__}
        assert "cpu_id" in r and "vector_isa" in r
    printed = capsys.readouterr().out
    assert "x the first)" in printed and printed.count("BENCH_JSON ") == 2


def test_a_failed_import_names_the_interpreter_and_module():
    with pytest.raises(RuntimeError, match="importing no_such_module_for_the_test failed"):
        import_time.time_import(sys.executable, "no_such_module_for_the_test")
