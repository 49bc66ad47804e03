"""Training curves from JSON-lines metric files, one subplot per metric.

Reads what `data_prep.infra.metrics.MetricWriter` writes
(`{"step": 10, "split": "train", "time": ..., "loss": 1.2}` per line) and also a plain JSON
object file (an evaluator's metrics dump); nested objects are flattened with "/"
(`{"tiou_0.5": {"METEOR": 0.1}}` -> `tiou_0.5/METEOR`). Each (file, split) pair becomes one
line in every subplot that has its metric, so train and eval curves of a run, or two runs,
sit side by side.
"""
from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from data_prep.infra import paths as paths_lib  # noqa: E402
from data_prep.infra.metrics import read_metrics  # noqa: E402
from data_prep.infra.paths import local_output  # noqa: E402

_NOT_METRICS = {"step", "split", "time", "wall_time", "timestamp", "epoch"}
_SPLIT_STYLES = {"train": "-", "eval": "--", "val": "--", "valid": "--", "test": ":"}


def load_metric_records(path: str) -> list[dict]:
    """Records of one metrics file: JSON lines, or one JSON object / list of objects.

    Unreadable lines (a run killed mid-write) are skipped with a warning naming the line.
    """
    text = paths_lib.read_text(path)
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return [r for r in read_metrics(path) if isinstance(r, Mapping)]
    if isinstance(whole, Mapping):
        return [dict(whole)]
    if isinstance(whole, list):
        return [r for r in whole if isinstance(r, Mapping)]
    raise ValueError(f"{path}: expected JSON lines or a JSON object, got {type(whole).__name__}")


def _flatten(record: Mapping, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of `record` as {"a/b": value}; booleans and strings are not metrics."""
    out: dict[str, float] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if not prefix and key in _NOT_METRICS:
            continue
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def _file_labels(paths: Sequence[str]) -> list[str]:
    """Short unique names: file stems, or `parent/stem` when stems collide."""
    files = [paths_lib.as_path(paths_lib.absolute(p)) for p in paths]
    stems = [f.stem for f in files]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{f.parent.name}/{s}" for f, s in zip(files, stems)]


def collect_series(metrics_jsonl_paths: Sequence[str]) -> dict[str, dict[str, list]]:
    """`{metric: {series_name: [(step, value), ...]}}`, steps ascending.

    A series is one (file, split). A record without "step" is placed at its position in the
    file. When a step repeats (a run resumed from an earlier checkpoint appends to the same
    file) the value written last wins, which is the curve the resumed run actually followed.
    """
    labels = _file_labels(metrics_jsonl_paths)
    several = len(metrics_jsonl_paths) > 1
    series: dict[str, dict[str, dict[float, float]]] = {}
    for path, label in zip(metrics_jsonl_paths, labels):
        for position, record in enumerate(load_metric_records(path)):
            step = record.get("step", position)
            try:
                step = float(step)
            except (TypeError, ValueError):
                logging.warning("%s: record %d has a non-numeric step %r; skipped", path,
                                position, step)
                continue
            split = str(record.get("split", ""))
            name = ":".join(x for x in ((label if several else ""), split) if x) or label
            for metric, value in _flatten(record).items():
                series.setdefault(metric, {}).setdefault(name, {})[step] = value
    return {m: {s: sorted(points.items()) for s, points in by_series.items()}
            for m, by_series in series.items()}


def _select(available: Sequence[str], keys: Sequence[str] | None) -> list[str]:
    if keys is None:
        return list(available)
    chosen: list[str] = []
    for pattern in keys:
        matches = [k for k in available if fnmatch.fnmatchcase(k, pattern)]
        if not matches:
            logging.warning("metric %r not found in the metrics files", pattern)
        chosen += [k for k in matches if k not in chosen]
    return chosen


def plot_training_curves(metrics_jsonl_paths: Sequence[str], out_png: str,
                         keys: Sequence[str] | None = None, ncols: int = 3,
                         panel_size_in: tuple[float, float] = (4.4, 3.0),
                         dpi: int = 100) -> list[str]:
    """Plots every metric (or `keys`, exact names or globs like "loss*") against step.

    Args:
      metrics_jsonl_paths: metric files (see module docstring); each (file, split) is a line.
      out_png: output image, written atomically.
      keys: metrics to plot, in this order; None = all numeric fields in first-seen order.
      ncols: subplots per row.
      panel_size_in: size of one subplot in inches (width, height) at `dpi`.
    Returns:
      The metric names plotted, in subplot order (empty if the files held none; the image
      then says so).
    """
    if isinstance(metrics_jsonl_paths, (str, os.PathLike)):
        metrics_jsonl_paths = [os.fspath(metrics_jsonl_paths)]
    for path in metrics_jsonl_paths:
        if not paths_lib.is_file(path):
            raise FileNotFoundError(f"metrics file not found: {path}")
    series = collect_series(list(metrics_jsonl_paths))
    names = _select(list(series), keys)
    ncols = max(1, min(ncols, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    fig = Figure(figsize=(panel_size_in[0] * ncols, panel_size_in[1] * nrows), dpi=dpi)
    FigureCanvasAgg(fig)
    if not names:
        logging.warning("no numeric metrics in %s", ", ".join(metrics_jsonl_paths))
        fig.text(0.5, 0.5, "no numeric metrics in\n" + "\n".join(metrics_jsonl_paths),
                 ha="center", va="center", fontsize=9)
    all_series = sorted({s for name in names for s in series[name]})
    colours = {s: f"C{i % 10}" for i, s in enumerate(all_series)}
    for i, name in enumerate(names):
        _draw_panel(fig.add_subplot(nrows, ncols, i + 1), name, series[name], colours)
    fig.tight_layout()
    with local_output(out_png) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", facecolor="white")
    return names


def _draw_panel(ax, title: str, by_series: Mapping[str, list], colours: Mapping[str, str]):
    """One metric: a line per (file, split) series, log axis for wide-ranging positives."""
    values_all = []
    for sname, points in by_series.items():
        steps = [p[0] for p in points]
        values = [p[1] for p in points]
        values_all += [v for v in values if math.isfinite(v)]
        split = sname.rsplit(":", 1)[-1]
        ax.plot(steps, values, _SPLIT_STYLES.get(split, "-"), color=colours.get(sname, "C0"),
                marker="o" if len(points) <= 30 else None, markersize=3, lw=1.3,
                label=sname or "value")
    # Losses spanning orders of magnitude read better on a log axis.
    if values_all and min(values_all) > 0 and max(values_all) / min(values_all) >= 100:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(True, alpha=0.3)
    if len(by_series) > 1 or any(by_series):
        ax.legend(fontsize=7, loc="best")


# The panels worth a first look, in this order: losses, learning rate, validation metrics.
OVERVIEW_KEYS = ("loss", "loss_*", "*_loss", "lr", "learning_rate", "*/lr", "METEOR", "CIDEr",
                 "Bleu_4", "SODA_c", "Recall", "Precision", "*accuracy*", "*_acc")


def plot_overview(metrics_paths: Sequence[str], out_png: str,
                  keys: Sequence[str] = OVERVIEW_KEYS, ncols: int = 4,
                  panel_size_in: tuple[float, float] = (4.2, 2.9), dpi: int = 100) -> dict:
    """`curves.png`: per metrics file (one model each: encoder, captioner, ...) a block of
    rows with only the metrics matching `keys` (globs) in that order, titled
    "<file>: <metric>", so two models' metrics never share a panel.
    Returns {file label: [metric names plotted]}."""
    if isinstance(metrics_paths, (str, os.PathLike)):
        metrics_paths = [os.fspath(metrics_paths)]
    for path in metrics_paths:
        if not paths_lib.is_file(path):
            raise FileNotFoundError(f"metrics file not found: {path}")
    labels = _file_labels(list(metrics_paths))
    blocks = []
    for path, label in zip(metrics_paths, labels):
        series = collect_series([path])
        names = [n for n in _select_quiet(list(series), keys)]
        blocks.append((label, names, series))
    ncols = max(1, min(ncols, max((len(n) for _, n, _ in blocks), default=1)))
    rows = [max(1, math.ceil(len(n) / ncols)) for _, n, _ in blocks]
    fig = Figure(figsize=(panel_size_in[0] * ncols, panel_size_in[1] * max(1, sum(rows))),
                 dpi=dpi)
    FigureCanvasAgg(fig)
    row = 0
    for (label, names, series), nrow in zip(blocks, rows):
        if not names:
            ax = fig.add_subplot(sum(rows), ncols, row * ncols + 1)
            ax.axis("off")
            ax.text(0, 0.5, f"{label}: no loss / lr / validation metrics", fontsize=9)
        for i, name in enumerate(names):
            ax = fig.add_subplot(sum(rows), ncols, row * ncols + i + 1)
            colours = {s: f"C{j % 10}" for j, s in enumerate(sorted(series[name]))}
            _draw_panel(ax, f"{label}: {name}", series[name], colours)
        row += nrow
    fig.tight_layout()
    with local_output(out_png) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", facecolor="white")
    return {label: names for label, names, _ in blocks}


def _select_quiet(available: Sequence[str], keys: Sequence[str]) -> list[str]:
    """`_select` without warnings for patterns a model does not log (an encoder has no
    METEOR)."""
    chosen: list[str] = []
    for pattern in keys:
        chosen += [k for k in available if fnmatch.fnmatchcase(k, pattern) and k not in chosen]
    return chosen
