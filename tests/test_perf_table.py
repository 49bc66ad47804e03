"""benchmarks/perf_table.py: BENCH_JSON lines -> the README's performance table."""
from __future__ import annotations

import json
import pathlib

import pytest

from benchmarks import perf_table
from benchmarks.harness import JSON_PREFIX

MACHINE = {"xla_matmul_gflops": 157.24, "torch_matmul_gflops": 138.4, "cpu_count": 2,
           "backend": "cpu"}
ENCODER = [  # benchmarks/encoder_vs_torch.py's fields; the second run of a row wins
    {"bench": "encoder_train", "variant": "r2plus1d_34", "shape": "2x3x16x112x112", "batch": 2,
     "project_clips_per_s": 0.05, "original_clips_per_s": 0.178, "ratio": 0.281,
     "machine": MACHINE},
    {"bench": "encoder_train", "variant": "r2plus1d_34", "shape": "2x3x16x112x112", "batch": 2,
     "project_clips_per_s": 0.092, "original_clips_per_s": 0.178, "ratio": 0.517,
     "machine": MACHINE},
]
CAPTIONER = [  # benchmarks/captioner_vs_pdvc.py's fields
    {"bench": "captioner_infer", "batch": 1, "caption_len": 30, "project_s": 0.24,
     "project_videos_s": 4.17, "project_first_call_s": 12.0, "original": "pdvc_torch_reference",
     "original_s": 0.91, "original_videos_s": 1.1, "ratio": 3.79, "machine": MACHINE},
    {"bench": "captioner_infer", "batch": 8, "caption_len": 30, "project_s": 1.05,
     "project_videos_s": 7.62, "original": "pdvc_torch_reference", "original_s": None,
     "ratio": None, "videos_s_ratio": 6.93, "machine": dict(MACHINE, cpus_allowed=1)},
    {"bench": "captioner_train", "batch": 1, "caption_len": 30, "project_s": 0.3,
     "original": "pdvc_torch_reference", "original_s": 1.0, "ratio": 3.33,
     "machine": dict(MACHINE, cpus_allowed=1, host_malloc="system", vector_isa="AVX-512")},
]


def _write(tmp_path, name, records, log=False):
    path = tmp_path / name
    lines = [(JSON_PREFIX if log else "") + json.dumps(r) for r in records]
    if log:
        lines.insert(0, "some other output line")
    path.write_text("\n".join(lines) + "\n\n")
    return str(path)


def test_rows_from_any_subset_of_benchmarks(tmp_path):
    files = [_write(tmp_path, "encoder_vs_torch.jsonl", ENCODER),
             _write(tmp_path, "captioner.log", CAPTIONER, log=True),
             _write(tmp_path, "evaluator.jsonl", [
                 {"bench": "evaluator", "workload": "evaluator, all metrics", "project_s": 35.0,
                  "original_s": 190.0, "xla_matmul_gflops": 150.0}]),
             _write(tmp_path, "encoder_remat.jsonl", [  # no side by side: no row
                 {"bench": "encoder_remat", "variant": "r2plus1d_34", "threads": 0,
                  "policies": {"none": {"step_s": 6.6}}, "machine": MACHINE}])]
    rows = perf_table.table_rows(perf_table.read_records(files))
    assert [r["workload"] for r in rows] == [
        "encoder train, r2plus1d_34, 2x3x16x112x112, batch 2",
        "captioner infer, batch 1, 30 tokens (vs pdvc_torch_reference)",
        "captioner infer, batch 8, 30 tokens (vs pdvc_torch_reference)",
        "captioner train, batch 1, 30 tokens (vs pdvc_torch_reference)",
        "evaluator, all metrics"]
    enc, cap1, cap8, train_system, ev = rows
    assert (enc["original"], enc["project"], enc["ratio"]) == (
        "0.178 clips/s", "0.092 clips/s", "0.52x")  # the later run of the row
    assert enc["machine"] == "XLA 157 / torch 138 (2 cores)"
    assert (cap1["original"], cap1["project"], cap1["ratio"]) == (
        "0.91 s (1.1 videos/s)", "0.24 s (4.17 videos/s)", "3.79x")
    assert (cap8["original"], cap8["ratio"]) == ("-", "6.93x (videos_s)")
    assert cap8["machine"] == "XLA 157 / torch 138 (pinned to 1 of 2 cores)"
    assert train_system["machine"] == (
        "XLA 157 / torch 138 (pinned to 1 of 2 cores, AVX-512, glibc malloc defaults)")
    assert (ev["ratio"], ev["machine"]) == ("5.43x", "XLA 150")  # computed from seconds
    # a subset: one file only
    assert len(perf_table.table_rows(perf_table.read_records(files[2:3]))) == 1


def test_bad_lines_name_the_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"bench": "x", "project_s": 1}\n{"bench": "y", \n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a JSON record"):
        perf_table.read_records([str(bad)])
    bad.write_text('{"project_s": 1}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: .*'bench'"):
        perf_table.read_records([str(bad)])


def test_readme_section_rewritten_in_place(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# T\n\nbefore\n<!-- generated:perf:begin -->\nold table\n"
                      "<!-- generated:perf:end -->\nafter\n")
    enc = _write(tmp_path, "encoder_vs_torch.jsonl", ENCODER)
    assert perf_table.main(["--readme", str(readme), enc]) == 0
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# T\n\nbefore\n")
    assert text.endswith("<!-- generated:perf:end -->\nafter\n")
    assert "| workload | original | project | ratio | machine matmul GFLOP/s |" in text
    assert "| encoder train, r2plus1d_34, 2x3x16x112x112, batch 2 | 0.178 clips/s |" in text
    assert perf_table.COMMAND in text
    # idempotent: the same inputs give the same README
    perf_table.main(["--readme", str(readme), enc])
    assert readme.read_text() == text
    # no results yet: a note instead of an empty table
    assert "No benchmark results yet" in perf_table.markdown([], [])
    no_markers = tmp_path / "plain.md"
    no_markers.write_text("# nothing here\n")
    with pytest.raises(ValueError, match="generated:perf:begin"):
        perf_table.main(["--readme", str(no_markers), enc])


def test_readme_has_the_generated_section():
    text = (pathlib.Path(perf_table.REPO) / "README.md").read_text()
    assert "<!-- generated:perf:begin -->" in text and perf_table.COMMAND in text
