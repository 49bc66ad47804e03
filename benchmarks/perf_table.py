"""The README's performance table, generated from the side-by-side benchmarks' JSON lines.

    python benchmarks/perf_table.py --readme README.md          # rewrite the README section
    python benchmarks/perf_table.py [FILES...]                   # print the table

Reads `BENCH_JSON` records (`benchmarks/harness.py` `emit()`: one JSON object per line of a
.jsonl file, or lines `BENCH_JSON {...}` of a captured log) from FILES, default
`benchmarks/results/*.jsonl` (encoder_vs_torch.jsonl, captioner_vs_pdvc.jsonl,
evaluator.jsonl, ...: any subset), and writes one markdown table

  | workload | original | project | ratio | machine matmul GFLOP/s |

between `<!-- generated:perf:begin -->` and `<!-- generated:perf:end -->` in the README.

Record fields read (all but `bench` optional, unknown fields ignored):
  bench                  workload name, e.g. "encoder_train", "captioner_infer", "evaluator"
  workload / label       a ready-made row label (else bench + variant, shape, batch,
                         caption_len, threads)
  original               the original's name when a string (e.g. "pdvc_torch_reference")
  {project,original}_s   seconds per call (lower is better); also `_seconds`
  {project,original}_<unit>_per_s or _<unit>_s, unit in clips / videos / steps / tokens /
                         frames / samples / captions / items: a rate (higher is better)
  ratio                  original / project time (> 1: the project is faster); computed from
                         the seconds or the rates when absent, else the first other
                         numeric `<what>_ratio` field (shown as "2.10x (<what>)")
  machine                `harness.machine_info()`: xla_matmul_gflops, torch_matmul_gflops,
                         cpu_count, cpus_allowed (< cpu_count: shown as pinned),
                         vector_isa (e.g. AVX-512) (also read at the top level)
A file may hold several runs of a workload (emit appends): the last record of each row wins.
A record with no project or original figure and no ratio is not a side-by-side result (e.g.
`encoder_remat.jsonl`, which compares remat policies): it has no row.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import JSON_PREFIX  # noqa: E402
from captioner_jax.visualization.readme_tables import replace_section  # noqa: E402
from data_prep.infra import paths  # noqa: E402
from data_prep.infra.atomic_files import atomic_write_text  # noqa: E402

SECTION = "perf"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_GLOB = os.path.join("benchmarks", "results", "*.jsonl")  # under the repository
COMMAND = "python benchmarks/perf_table.py --readme README.md"
RATE_UNITS = ("clips", "videos", "steps", "tokens", "frames", "samples", "captions", "items")
_RATE = re.compile(rf"({'|'.join(RATE_UNITS)})_(?:per_)?s")
# Qualifiers appended to `bench` in the row label, in this order: key -> format.
QUALIFIERS = (("variant", "{}"), ("shape", "{}"), ("batch", "batch {}"),
              ("caption_len", "{} tokens"), ("threads", "{} threads"))


def read_records(files) -> list[tuple[str, dict]]:
    """(file, record) of every BENCH_JSON line of `files`, in order. A line that is not JSON
    (or a record without `bench`) is an error naming the file and line."""
    out = []
    for path in files:
        for n, line in enumerate(paths.read_text(path).splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            if JSON_PREFIX.strip() in line:
                line = line.split(JSON_PREFIX.strip(), 1)[1].strip()
            elif not line.startswith("{"):
                continue  # other lines of a captured log
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not a JSON record ({e.msg})") from None
            if not isinstance(record, dict) or not record.get("bench"):
                raise ValueError(f"{path}:{n}: a benchmark record needs a 'bench' field")
            out.append((str(path), record))
    return out


def _number(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def measurement(record: dict, who: str) -> dict:
    """{"seconds": s or None, "rate": r or None, "unit": "clips/s" ...} of "project" or
    "original" in `record`."""
    seconds = rate = unit = None
    for key, value in record.items():
        if not key.startswith(who + "_") or _number(value) is None:
            continue
        suffix = key[len(who) + 1:]
        if suffix in ("s", "seconds"):
            seconds = _number(value)
        elif _RATE.fullmatch(suffix) and rate is None:
            rate, unit = _number(value), _RATE.fullmatch(suffix).group(1) + "/s"
    return {"seconds": seconds, "rate": rate, "unit": unit}


def row_ratio(record: dict, project: dict, original: dict) -> float | None:
    """original / project time: the record's `ratio`, else from seconds, else from rates."""
    r = _number(record.get("ratio"))
    if r is not None:
        return r
    if project["seconds"] and original["seconds"]:
        return original["seconds"] / project["seconds"]
    if project["rate"] and original["rate"] and project["unit"] == original["unit"]:
        return project["rate"] / original["rate"]
    return None


def label(record: dict) -> str:
    if record.get("workload") or record.get("label"):
        return str(record.get("workload") or record.get("label"))
    parts = [f.format(record[k]) for k, f in QUALIFIERS if record.get(k) not in (None, "")]
    text = str(record["bench"]).replace("_", " ")
    if parts:
        text += ", " + ", ".join(parts)
    if isinstance(record.get("original"), str):
        text += f" (vs {record['original']})"
    return text


def _fmt_value(m: dict) -> str:
    def num(x):
        return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"

    cells = []
    if m["seconds"] is not None:
        cells.append(f"{num(m['seconds'])} s")
    if m["rate"] is not None:
        cells.append(f"{num(m['rate'])} {m['unit']}")
    if not cells:
        return "-"
    return cells[0] + (f" ({cells[1]})" if len(cells) > 1 else "")


def machine_cell(record: dict) -> str:
    m = record.get("machine") if isinstance(record.get("machine"), dict) else {}

    def get(key):
        return _number(m.get(key, record.get(key)))

    parts = []
    for key, name in (("xla_matmul_gflops", "XLA"), ("torch_matmul_gflops", "torch")):
        if get(key) is not None:
            parts.append(f"{name} {get(key):.0f}")
    text = " / ".join(parts) or "-"
    cores = get("cpu_count")
    backend = m.get("backend", record.get("backend"))
    allowed = get("cpus_allowed")
    extra = []
    if cores and allowed and allowed < cores:
        extra.append(f"pinned to {allowed:.0f} of {cores:.0f} cores")
    elif cores:
        extra.append(f"{cores:.0f} cores")
    if backend and backend != "cpu":
        extra.append(str(backend))
    isa = m.get("vector_isa", record.get("vector_isa"))
    if isa:  # harness.vector_isa (records before 2026-12-02 lack it)
        extra.append(str(isa))
    if m.get("host_malloc") == "system":  # DVC_HOST_MALLOC=system (data_prep/infra/host_memory)
        extra.append("glibc malloc defaults")
    return text + (f" ({', '.join(extra)})" if extra else "")


def table_rows(records: list[tuple[str, dict]]) -> list[dict]:
    """One row per (file, label), the last record winning, in order of first appearance."""
    rows: dict[tuple[str, str], dict] = {}
    for path, record in records:
        project, original = measurement(record, "project"), measurement(record, "original")
        r = row_ratio(record, project, original)
        ratio_text = "-" if r is None else f"{r:.2f}x"
        other = [(k, _number(v)) for k, v in record.items()
                 if k.endswith("_ratio") and _number(v) is not None]
        if r is None and other:  # e.g. captioner batch 8 against the original's batch-1 videos/s
            ratio_text = f"{other[0][1]:.2f}x ({other[0][0][:-len('_ratio')]})"
        if r is None and not other and not any(
                m["seconds"] or m["rate"] for m in (project, original)):
            continue  # not a side-by-side record (e.g. encoder_remat.jsonl's policy figures)
        rows[(path, label(record))] = {
            "workload": label(record), "original": _fmt_value(original),
            "project": _fmt_value(project), "ratio": ratio_text,
            "machine": machine_cell(record), "file": path}
    return list(rows.values())


def _shown(path: str) -> str:
    """A file name as the README shows it: relative to the repository when inside it."""
    path = str(path)
    if os.path.isabs(path) and path.startswith(REPO + os.sep):
        return os.path.relpath(path, REPO)
    return path


def markdown(files, records: list[tuple[str, dict]]) -> str:
    """The README section body: a provenance line and the table (or a note that none ran)."""
    rows = table_rows(records)
    names = ", ".join(f"`{_shown(f)}`" for f in files)
    head = (f"Generated by `{COMMAND}` from {names or 'no result files'}. Ratio = original "
            "time / project time (> 1: the project is faster); the last column is the machine's "
            "measured f32 matmul GFLOP/s (XLA / torch), to compare machines by what they "
            "measured, not by seconds.")
    if not rows:
        return (head + "\n\nNo benchmark results yet: run the side-by-side benchmarks with "
                "their JSON-lines option (`benchmarks/results/<name>.jsonl`), then the command "
                "above.")
    lines = ["| workload | original | project | ratio | machine matmul GFLOP/s |",
             "|:--|--:|--:|--:|:--|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['original']} | {r['project']} | {r['ratio']} | "
                     f"{r['machine']} |")
    return head + "\n\n" + "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help=f".jsonl files or logs (default {DEFAULT_GLOB})")
    parser.add_argument("--readme", help="README to update in place (else print)")
    args = parser.parse_args(argv)
    files = args.files or paths.glob(os.path.join(REPO, DEFAULT_GLOB))
    body = markdown(files, read_records(files))
    if not args.readme:
        print(body)
        return 0
    atomic_write_text(args.readme, replace_section(paths.read_text(args.readme), SECTION, body))
    print(f"updated the {SECTION} table in {args.readme} ({len(files)} result files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
