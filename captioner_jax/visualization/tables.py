"""Per-tIoU metric tables: fixed-width text for logs and terminals, markdown for the README.

Rows are the tIoU thresholds (ascending) and "average"; columns BLEU1-4, METEOR, ROUGE-L,
CIDEr, Recall, Precision and, when any row has it, SODA_c. Metric names are matched loosely
(`Bleu_4`, `BLEU4`, `bleu-4` are the same column) so the official evaluator's keys
(`Bleu_1`..`Bleu_4`, `METEOR`, `ROUGE_L`, `CIDEr`, `Recall`, `Precision`) and PDVC's `SODA_c`
all land in the right place. A metric a row lacks is shown as "-".

Values are shown as given (`scale=1`): `captioner_jax.evaluation.evaluate_submission`
already returns them x100, as the official densevid_eval prints them; pass `scale=100` for
raw scorer fractions (0-1).
`format_evaluation_table` takes `evaluate_submission`'s result dict directly.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping

# (column title, normalised key) in display order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("BLEU1", "bleu1"), ("BLEU2", "bleu2"), ("BLEU3", "bleu3"), ("BLEU4", "bleu4"),
    ("METEOR", "meteor"), ("ROUGE-L", "rougel"), ("CIDEr", "cider"), ("Recall", "recall"),
    ("Precision", "precision"), ("SODA_c", "sodac"),
)
_OPTIONAL = {"sodac"}  # shown only when some row has it


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(key).lower())


def _lookup(row: Mapping[str, float] | None) -> dict[str, float]:
    return {_norm(k): v for k, v in (row or {}).items()}


def _rows(per_tiou: Mapping[float, Mapping[str, float]], average: Mapping[str, float] | None):
    """[(row label, normalised metrics)], thresholds sorted ascending, then "average"."""
    rows = []
    for tiou in sorted(per_tiou, key=float):
        rows.append((f"{float(tiou):.2f}", _lookup(per_tiou[tiou])))
    if average is not None:
        rows.append(("average", _lookup(average)))
    return rows


def _columns(rows, present_only: bool = False) -> list[tuple[str, str]]:
    """Display columns: all of COLUMNS (optional ones when present), or with `present_only`
    just those some row has."""
    present = {k for _, metrics in rows for k in metrics}
    return [(title, key) for title, key in COLUMNS
            if key in present or not (present_only or key in _OPTIONAL)]


def _cell(value, scale: float, digits: int) -> str:
    if value is None:
        return "-"
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "?"
    return "nan" if not math.isfinite(value) else f"{value * scale:.{digits}f}"


def _render_text(rows, first_header: str, title: str | None, scale: float, digits: int,
                 rule_before: str | None = "average") -> str:
    columns = _columns(rows)
    header = [first_header] + [t for t, _ in columns]
    body = [[label] + [_cell(m.get(k), scale, digits) for _, k in columns] for label, m in rows]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join([first] + rest)

    rule = "-" * len(line(header))
    out = []
    if title:
        out.append(title)
    out += [rule, line(header), rule]
    for label_row in body:
        if label_row[0] == rule_before:
            out.append(rule)
        out.append(line(label_row))
    out.append(rule)
    return "\n".join(out)


def _render_markdown(rows, first_header: str, title: str | None, scale: float, digits: int,
                     bold_row: str | None = "average", present_only: bool = False) -> str:
    columns = _columns(rows, present_only)
    out = []
    if title:
        out += [f"**{title}**", ""]
    out.append(f"| {first_header} | " + " | ".join(t for t, _ in columns) + " |")
    out.append("|:--|" + "".join("--:|" for _ in columns))
    for label, metrics in rows:
        cells = [_cell(metrics.get(k), scale, digits) for _, k in columns]
        if label == bold_row:
            label, cells = f"**{label}**", [c if c == "-" else f"**{c}**" for c in cells]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def format_metrics_table(per_tiou: Mapping[float, Mapping[str, float]],
                         average: Mapping[str, float] | None, title: str | None = None,
                         scale: float = 1.0, digits: int = 2) -> str:
    """A fixed-width text table, one row per tIoU threshold plus "average".

    Args:
      per_tiou: `{0.3: {"Bleu_1": 0.151, "METEOR": 0.082, ...}, 0.5: {...}, ...}`.
      average: the mean over thresholds (as the evaluator reports it), or None.
      title: printed above the table.
      scale: display multiplier (1 for the evaluator's x100 values, 100 for fractions).
      digits: decimals shown.
    Returns:
      The table as one string (no trailing newline).
    """
    return _render_text(_rows(per_tiou, average), "tIoU", title, scale, digits)


def format_metrics_markdown(per_tiou: Mapping[float, Mapping[str, float]],
                            average: Mapping[str, float] | None, title: str | None = None,
                            scale: float = 1.0, digits: int = 2) -> str:
    """The same table as GitHub-flavoured markdown (numbers right-aligned, average in bold)."""
    return _render_markdown(_rows(per_tiou, average), "tIoU", title, scale, digits)


def format_comparison_table(named_metrics: Mapping[str, Mapping[str, float]],
                            title: str | None = None, markdown: bool = False,
                            first_header: str = "model", digits: int = 2,
                            present_only: bool = False) -> str:
    """One row per named result (e.g. per model), columns as in the per-tIoU tables.

    `named_metrics` maps a row label to an evaluator result (averaged metrics, x100); rows
    keep the mapping's order. `present_only` (markdown): only the columns some row has.
    """
    rows = [(name, _lookup(metrics)) for name, metrics in named_metrics.items()]
    if markdown:
        return _render_markdown(rows, first_header, title, 1.0, digits, bold_row=None,
                                present_only=present_only)
    return _render_text(rows, first_header, title, 1.0, digits, rule_before=None)


def format_evaluation_table(result: Mapping, title: str | None = None, markdown: bool = False,
                            digits: int = 2) -> str:
    """Table of an `evaluate_submission` result: rows from `result["per_tiou"]`, the average
    row from its top-level metrics ("Bleu_1", ..., "Precision", "SODA_c"); bookkeeping keys
    (counts, seconds, "SODA_c_precision", paragraph scores) match no column and are ignored.
    JSON round trips turn the tIoU keys into strings; they are converted back.
    """
    if "per_tiou" not in result:
        raise ValueError("expected an evaluate_submission result with a 'per_tiou' entry, got "
                         f"keys {sorted(result)[:8]}")
    per_tiou = {float(t): row for t, row in result["per_tiou"].items()}
    average = {k: v for k, v in result.items() if k != "per_tiou"}
    fmt = format_metrics_markdown if markdown else format_metrics_table
    return fmt(per_tiou, average, title, scale=1.0, digits=digits)
