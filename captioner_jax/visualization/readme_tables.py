"""README tables from a run's JSON: the README's figures are generated, never typed.

  python -m captioner_jax.visualization.readme_tables --results demo_out/results.json \
      --readme README.md --section demo

replaces the text between `<!-- generated:demo:begin -->` and `<!-- generated:demo:end -->`
in README.md with the markdown of every table in `results.json` (the pipeline report's
`{table title: {row: metrics}}`), preceded by a line naming the source file. Without
`--readme` the tables are printed.
"""
from __future__ import annotations

import argparse
import re
import sys

from captioner_jax.visualization.tables import format_comparison_table
from data_prep.infra import paths
from data_prep.infra.atomic_files import atomic_write_text, read_json

# Columns of the README's demo tables (the rest stay in results.md).
DEFAULT_METRICS = ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "Recall", "Precision", "SODA_c")


def tables_markdown(results: dict, metrics=DEFAULT_METRICS) -> str:
    """Markdown of each `{title: {row: metrics}}` table, columns limited to `metrics`
    (a column only when some row has it: GT-proposal tables have no Recall/Precision)."""
    blocks = []
    for title, rows in results.items():
        keep = [m for m in metrics if any(m in r for r in rows.values())]
        if all(r.get("Recall") == 100.0 for r in rows.values()):  # GT proposals cover all
            keep = [m for m in keep if m not in ("Recall", "Precision")]
        trimmed = {name: {m: r[m] for m in keep if m in r} for name, r in rows.items()}
        blocks.append(format_comparison_table(trimmed, title=title, markdown=True,
                                             present_only=True))
    return "\n\n".join(blocks)


def replace_section(text: str, section: str, body: str) -> str:
    """`text` with the lines between the section's begin/end markers replaced by `body`."""
    begin, end = f"<!-- generated:{section}:begin -->", f"<!-- generated:{section}:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"README has no '{begin}' ... '{end}' markers")
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text, count=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, help="a pipeline's results.json")
    parser.add_argument("--readme", help="README to update in place (else print)")
    parser.add_argument("--section", default="demo", help="marker name in the README")
    args = parser.parse_args(argv)
    body = (f"Generated from `{args.results}` by "
            f"`python -m captioner_jax.visualization.readme_tables`.\n\n"
            + tables_markdown(read_json(args.results)))
    if not args.readme:
        print(body)
        return 0
    atomic_write_text(args.readme, replace_section(paths.read_text(args.readme), args.section,
                                                   body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
