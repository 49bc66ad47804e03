"""Module CLI of the official dense-captioning evaluator.

    python -m captioner_jax.evaluate --submission PRED.json \
        --references val_1.json val_2.json [--version 2018|latest] [--tious 0.3 0.5 0.7 0.9] \
        [--max-proposals 1000] [--soda] [--para PARA_REF ...] [--json OUT] [--lenient]

Prints one table (per tIoU threshold and the average, x100 as the official script prints);
`--json` also writes every number. Exit status 2 on an invalid submission.
"""
from __future__ import annotations

import argparse
import logging
import sys

from captioner_jax.evaluation import SubmissionError, evaluate_submission
from captioner_jax.evaluation.report import format_table, write_json_atomic


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m captioner_jax.evaluate",
        description="Official ActivityNet dense-captioning evaluation (fast reimplementation).")
    p.add_argument("--submission", "-s", required=True, help="submission JSON")
    p.add_argument("--references", "-r", nargs="+", required=True, help="reference JSON files")
    p.add_argument("--version", choices=["2018", "latest", "2021"], default="2018",
                   help="densevid_eval version: 2018 (deba7d7) or latest (9d4045a)")
    p.add_argument("--tious", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9])
    p.add_argument("--max-proposals", type=int, default=1000,
                   help="first N predictions per video, in file order")
    p.add_argument("--soda", action="store_true", help="also compute SODA_c (PDVC)")
    p.add_argument("--para", nargs="+", default=None,
                   help="paragraph reference files (PDVC paragraph metrics)")
    p.add_argument("--json", default=None, help="write all numbers to this JSON file")
    p.add_argument("--lenient", action="store_true",
                   help="drop bad entries with a warning instead of failing")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    version = "latest" if args.version == "2021" else args.version
    try:
        result = evaluate_submission(
            args.submission, args.references, version=version, tious=tuple(args.tious),
            max_proposals=args.max_proposals, soda=args.soda, para_references=args.para,
            lenient=args.lenient)
    except SubmissionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(result))
    print(f"({result['seconds']:.1f} s)")
    if args.json:
        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
