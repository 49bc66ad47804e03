"""The reproduce tables (markdown) from `make reproduce`'s results.json; never typed by hand.

    python -m captioner_jax.visualization.reproduce_tables --results reproduce_out/results.json
    python -m captioner_jax.visualization.reproduce_tables --results reproduce_out/results.json \
        --readme README.md --command "make reproduce" --wall-minutes 58.2

`results_markdown(results)` renders results.json (data_prep/orchestration/reproduce_report.py)
as markdown: per table, each row's mean ± standard deviation [Student-t 95% interval] over the
seeds of METEOR, BLEU-4 and CIDEr (the encoders' table: held-out action accuracy, concept mAP,
region accuracy), then for Table 2 the paired per-seed change of each step (the same seeds in
both rows) with its t-interval: a step "helps" only where that interval lies above zero.
With `--readme` the text between `<!-- generated:reproduce:begin -->` and `...:end -->` is
replaced by the command, its measured time and the tables, and the plots are copied next to
the README (`--plots-dir`, default `docs/reproduce`, relative to the README's folder) so that
its image links resolve where the run's workdir is not committed.
"""
from __future__ import annotations

import argparse
import sys

from captioner_jax.visualization.readme_tables import replace_section
from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_bytes, atomic_write_text, read_json
from data_prep.orchestration.statistics import format_cell, summarize

CAPTION_COLUMNS = (("METEOR", "METEOR"), ("Bleu_4", "BLEU-4"), ("CIDEr", "CIDEr"))
ENCODER_COLUMNS = (("val_action_accuracy", "action accuracy"),
                   ("val_concept_map", "concept mAP"),
                   ("val_region_accuracy", "region accuracy"))
PERCENT = {"val_action_accuracy", "val_concept_map", "val_region_accuracy"}


def _scaled(summary: dict, factor: float) -> dict:
    if factor == 1.0:
        return summary
    return summarize([v * factor for v in summary["values"]])


def table_markdown(title: str, rows: dict, columns, words: bool = False) -> str:
    """One markdown table: a row per entry of `rows`, a column per (metric, label); with
    `words`, the mean words per caption (over seeds) last."""
    labels = [label for _, label in columns] + (["words/caption"] if words else [])
    lines = [f"**{title}**", "",
             "| row | seeds | " + " | ".join(labels) + " |",
             "|:--|--:|" + "--:|" * len(labels)]
    for name, row in rows.items():
        cells = []
        for metric, _ in columns:
            stat = row["stats"].get(metric)
            cells.append("-" if stat is None else
                         format_cell(_scaled(stat, 100.0 if metric in PERCENT else 1.0)))
        if words:
            stat = row.get("words_per_caption")
            cells.append("-" if stat is None else f"{stat['mean']:.1f}")
        lines.append(f"| {name} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_steps(rows: dict, metric: str = "METEOR") -> list[tuple[str, dict | None]]:
    """[(step name, summary of the per-seed change of `metric` from the previous row)]; None
    where the two rows share fewer than one seed."""
    names = list(rows)
    out = []
    for before, after in zip(names, names[1:]):
        common = sorted(set(rows[before]["seeds"]) & set(rows[after]["seeds"]))
        deltas = [rows[after]["seeds"][s][metric] - rows[before]["seeds"][s][metric]
                  for s in common if metric in rows[after]["seeds"][s]
                  and metric in rows[before]["seeds"][s]]
        out.append((after, summarize(deltas) if deltas else None))
    return out


def verdict(summary: dict | None) -> str:
    if summary is None:
        return "no common seeds"
    if summary["ci95"] is None:
        return "one seed: no interval"
    low, high = summary["ci95"]
    return "helps" if low > 0 else "hurts" if high < 0 else "no significant change"


def results_markdown(results: dict, plot_links: dict | None = None) -> str:
    """Markdown of every table of results.json (module docstring); `plot_links` maps a
    plot's name to the link to use (default: its file name beside results.md)."""
    cfg = results.get("config", {})
    blocks = [f"Size `{cfg.get('size')}`, {cfg.get('seeds')} seed(s) per row (encoder seed and "
              f"captioner seed), mean ± standard deviation [95% Student-t interval over the "
              f"seeds]; every caption metric is the official evaluator's on the scored split."]
    splits = results.get("splits") or {}
    if splits:
        blocks.append("Validation split (data_prep/orchestration/reproduce_splits.py): "
                      + ", ".join(f"{k} {v} videos" for k, v in splits.items())
                      + "; training uses train (+ enlarge), choices use select only.")
    for title, rows in results["tables"].items():
        columns = ENCODER_COLUMNS if title.startswith("Encoders") else CAPTION_COLUMNS
        block = table_markdown(title, rows, columns, words=not title.startswith("Encoders"))
        if title.startswith("Encoders"):
            block += ("\n\n(percent, held-out validation clips at the last step; a head whose "
                      "loss is not in the objective, the region head of action only, is "
                      "untrained and shown for completeness)")
        if title.startswith("Table 2") or title.startswith("Table 1"):
            what = "step" if title.startswith("Table 2") else "objective"
            lines = ["", "", f"Per-{what} change of METEOR from the row above, paired over seeds "
                     "(mean ± std [95%]; words per caption before -> after):", ""]
            for (name, summary), before in zip(paired_steps(rows), list(rows)):
                cell = "-" if summary is None else format_cell(summary)
                words = [rows[n].get("words_per_caption") for n in (before, name)]
                length = (f"; {words[0]['mean']:.1f} -> {words[1]['mean']:.1f} words"
                          if all(words) else "")
                lines.append(f"- {name}: {cell} ({verdict(summary)}{length})")
            block += "\n".join(lines)
        blocks.append(block)
    for proposals, sel in (results.get("selection") or {}).items():
        means = ", ".join(f"M={m}: {v:.2f}" for m, v in sel["select_mean_meteor"].items())
        blocks.append(f"Ensemble size ({proposals} proposals), chosen on the select split: "
                      f"M = {sel['selected_m']} (mean select METEOR {means}).")
    seconds = results.get("seconds") or {}
    if seconds:
        blocks.append("Compute time of the steps (s): " + ", ".join(
            f"{k} {v:.0f}" for k, v in seconds.items()))
    plots = results.get("plots") or {}
    for name, file in plots.items():
        blocks.append(f"![{name}]({(plot_links or {}).get(name, file)})")
    return "\n\n".join(blocks) + "\n"


def _folder(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else "."


def copy_plots(results_path: str, results: dict, readme: str, plots_dir: str) -> dict:
    """Copies the run's plots (beside results.json) to `plots_dir` next to the README ->
    {plot name: link relative to the README}."""
    links = {}
    for name, file in (results.get("plots") or {}).items():
        data = paths.read_bytes(paths.join(_folder(results_path), file))
        atomic_write_bytes(paths.join(_folder(readme), plots_dir, file), data)
        links[name] = f"{plots_dir}/{file}"
    return links


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, help="reproduce results.json")
    parser.add_argument("--readme", help="README to update in place (else print)")
    parser.add_argument("--section", default="reproduce")
    parser.add_argument("--command", default="make reproduce", help="the command that ran")
    parser.add_argument("--wall-minutes", type=float, help="its measured wall time")
    parser.add_argument("--plots-dir", default="docs/reproduce",
                        help="with --readme: where the plots are copied, relative to the README")
    args = parser.parse_args(argv)
    results = read_json(args.results)
    head = f"Generated from `{args.results}` by " \
           "`python -m captioner_jax.visualization.reproduce_tables`. Command: " \
           f"`{args.command}`"
    if args.wall_minutes is not None:
        head += f", measured wall time {args.wall_minutes:.1f} min on this machine"
    if not args.readme:
        print(head + ".\n\n" + results_markdown(results))
        return 0
    links = copy_plots(args.results, results, args.readme, args.plots_dir)
    body = head + ".\n\n" + results_markdown(results, links)
    atomic_write_text(args.readme, replace_section(paths.read_text(args.readme), args.section,
                                                   body.rstrip("\n")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
