"""The reproduce plots (PNG, beside results.md), from results.json and the encoders' metrics.

  table1.png       Table 1: METEOR / BLEU-4 / CIDEr per pretraining objective, mean over
                   seeds with the standard deviation as error bars (the seeds as dots)
  table2.png       Table 2: METEOR along the steps (combination -> enlarged -> SCST ->
                   ensemble), GT and learned proposals, mean ± std over seeds
  pretraining.png  the three objectives' pretraining curves (mean over encoder seeds): training
                   action loss and accuracy (logged windows), held-out action accuracy and
                   concept mAP (the evaluations), from `{encoder workdir}/metrics.jsonl`
`write_plots(results, root) -> {name: file name}` (matplotlib, Agg backend).
"""
from __future__ import annotations

import json

import numpy as np

from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_bytes

COLORS = {"action": "tab:gray", "tsp": "tab:blue", "sa_tsp": "tab:red",
          "gt": "tab:green", "learned": "tab:purple"}


def _save(fig, path: str) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def _table(results: dict, prefix: str) -> tuple[str, dict] | None:
    for title, rows in results["tables"].items():
        if title.startswith(prefix):
            return title, rows
    return None


def _row_values(row: dict, metric: str) -> list[float]:
    return [m[metric] for m in row["seeds"].values() if metric in m]


def plot_table1(results: dict, path: str) -> bool:
    import matplotlib.pyplot as plt

    found = _table(results, "Table 1")
    if not found:
        return False
    title, rows = found
    metrics = (("METEOR", "METEOR"), ("Bleu_4", "BLEU-4"), ("CIDEr", "CIDEr"))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4))
    names = list(rows)
    for ax, (metric, label) in zip(axes, metrics):
        for i, name in enumerate(names):
            values = _row_values(rows[name], metric)
            mean = float(np.mean(values)) if values else np.nan
            std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            ax.bar(i, mean, yerr=std, capsize=4, color="tab:blue", alpha=0.6)
            ax.scatter([i] * len(values), values, color="k", s=10, zorder=3)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([n.split(" (")[0] for n in names], rotation=15)
        ax.set_title(label)
    fig.suptitle(f"{title}: mean ± std over seeds (dots: seeds)", fontsize=10)
    _save(fig, path)
    plt.close(fig)
    return True


def plot_table2(results: dict, path: str) -> bool:
    import matplotlib.pyplot as plt

    tables = [(t, rows) for t, rows in results["tables"].items() if t.startswith("Table 2")]
    if not tables:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("METEOR", "CIDEr")):
        for title, rows in tables:
            kind = "learned" if "learned" in title else "gt"
            names = list(rows)
            means = [np.mean(_row_values(rows[n], metric)) for n in names]
            stds = [np.std(_row_values(rows[n], metric), ddof=1)
                    if len(_row_values(rows[n], metric)) > 1 else 0.0 for n in names]
            ax.errorbar(range(len(names)), means, yerr=stds, marker="o", capsize=4,
                        color=COLORS[kind], label=f"{kind} proposals")
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels([n.replace("feature combination", "combination")
                                for n in names], rotation=15, fontsize=8)
        ax.set_title(f"{metric} (scored split)")
        ax.legend(fontsize=8)
    fig.suptitle("Table 2: mean ± std over seeds", fontsize=10)
    _save(fig, path)
    plt.close(fig)
    return True


def _curves(workdir: str) -> tuple[dict, dict]:
    """({metric: {step: value}} of the training windows, the same of the evaluations)."""
    train, val = {}, {}
    file = paths.join(workdir, "metrics.jsonl")
    if not paths.is_file(file):
        return train, val
    for line in paths.read_text(file).splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        target = val if record.get("split") == "val" else train
        for key, value in record.items():
            if isinstance(value, int | float) and key not in ("step", "time"):
                target.setdefault(key, {})[int(record["step"])] = float(value)
    return train, val


def plot_pretraining(results: dict, path: str) -> bool:
    import matplotlib.pyplot as plt

    encoders = results.get("encoders") or {}
    if not encoders:
        return False
    panels = (("train", "loss_action", "training action loss"),
              ("train", "action_accuracy", "training action accuracy"),
              ("val", "action_accuracy", "held-out action accuracy"),
              ("val", "concept_map", "held-out concept mAP"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for obj, seeds in encoders.items():
        per_seed = [_curves(w) for w in seeds.values()]
        for ax, (split, metric, label) in zip(axes, panels):
            series = [(c[0] if split == "train" else c[1]).get(metric, {}) for c in per_seed]
            steps = sorted(set.intersection(*[set(s) for s in series])) if series else []
            if not steps:
                continue
            mean = [np.mean([s[t] for s in series]) for t in steps]
            ax.plot(steps, mean, marker="o" if split == "val" else None,
                    color=COLORS.get(obj), label=obj)
            ax.set_title(label, fontsize=9)
            ax.set_xlabel("step")
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle("Pretraining of the three objectives (mean over encoder seeds)", fontsize=10)
    _save(fig, path)
    plt.close(fig)
    return True


def write_plots(results: dict, root: str) -> dict:
    """Writes the plots that results.json has data for; -> {name: file name beside it}."""
    import matplotlib

    matplotlib.use("Agg")
    written = {}
    for name, fn in (("table1", plot_table1), ("table2", plot_table2),
                     ("pretraining", plot_pretraining)):
        if fn(results, paths.join(root, f"{name}.png")):
            written[name] = f"{name}.png"
    return written
