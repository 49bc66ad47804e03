"""Module CLI of the official dense-captioning evaluator.

    python -m captioner_jax.evaluate --submission PRED.json \
        --references val_1.json val_2.json [--version 2018|latest] [--tious 0.3 0.5 0.7 0.9] \
        [--max-proposals 1000] [--soda] [--para PARA_REF ...] [--json OUT] \
        [--official-inputs] [--lenient] [--hash-seed N | --video-order IDS.json] \
        [--cache-dir DIR | --no-cache] [--meteor-jars N] [--python2-split]

Prints one table (per tIoU threshold and the average, x100 as the official script prints,
the evaluator version in its header); `--json` also writes every number (atomically; an
unwritable path fails before anything is computed). Every path may be local or `gs://`.
Exit status 2 on an invalid submission or reference file, 1 when the output cannot be
written.
"""
from __future__ import annotations

import argparse
import logging
import sys

from captioner_jax.evaluation import SubmissionError, evaluate_submission
from captioner_jax.evaluation.report import check_writable, format_table, write_json_atomic
from data_prep.infra.atomic_files import read_json

VERSION_HELP = (
    "which official script to equal. '2018' (default): densevid_eval deba7d7 = PDVC's "
    "evaluate2018.py; it is what PDVC reports as METEOR and what most papers compare, so "
    "it is the default even though it is not the official repository's latest code. "
    "'latest' (alias '2021'): densevid_eval 9d4045a (HEAD) = PDVC's evaluate2021.py "
    "('METEOR2021'). They differ only in the reference an unmatched proposal is scored "
    "against, which changes only METEOR (latest is higher when proposals miss)")
OFFICIAL_INPUTS_HELP = (
    "score every entry the official script scores, exactly as it does, instead of "
    "rejecting it: NaN/inf timestamp bounds (its Python min/max tIoU: a NaN prediction bound "
    "gives way to the reference bound), timestamps with more than two elements "
    "([start, end, score]: the first two are used), boolean bounds, and bad entries it never "
    "reads (unknown videos, entries after --max-proposals). Entries it crashes on stay errors")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m captioner_jax.evaluate",
        description="Official ActivityNet dense-captioning evaluation (fast reimplementation).")
    p.add_argument("--submission", "-s", required=True, help="submission JSON")
    p.add_argument("--references", "-r", nargs="+", required=True, help="reference JSON files")
    p.add_argument("--version", choices=["2018", "latest", "2021"], default="2018",
                   help=VERSION_HELP)
    p.add_argument("--tious", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.9])
    p.add_argument("--max-proposals", type=int, default=1000,
                   help="first N predictions per video, in file order")
    p.add_argument("--soda", action="store_true", help="also compute SODA_c (PDVC)")
    p.add_argument("--para", nargs="+", default=None,
                   help="paragraph reference files (PDVC paragraph metrics)")
    p.add_argument("--json", default=None, help="write all numbers to this JSON file")
    p.add_argument("--official-inputs", action="store_true", help=OFFICIAL_INPUTS_HELP)
    p.add_argument("--lenient", action="store_true",
                   help="drop bad entries with a warning instead of failing (numbers then "
                        "differ from the official script's, which scores or crashes on them)")
    p.add_argument("--hash-seed", type=int, default=None,
                   help="visit videos in the order of an official run with this "
                        "PYTHONHASHSEED (the tokenizer looks ahead across videos); default: "
                        "sorted video ids")
    p.add_argument("--video-order", default=None,
                   help="JSON list of every reference video id: visit the videos in this "
                        "order (e.g. the order a Python 2 run of the official evaluate.py "
                        "visits them in) instead of --hash-seed's")
    p.add_argument("--cache-dir", default=None,
                   help="remember the PTB tokens of reference lines across evaluations "
                        "in DIR (same numbers; off by default: on full val_1 + val_2 the "
                        "cache file's reading and rewriting measured slower than the "
                        "tokenizer work it saves)")
    p.add_argument("--meteor-jars", type=int, default=None,
                   help="METEOR jars sharing the pairs (same numbers); default: one "
                        "process scoring on a thread per core where a JDK (javac) is "
                        "present, else one jar per core (at most 4) from 20k predictions on")
    p.add_argument("--python2-split", action="store_true",
                   help="BLEU/CIDEr-D split tokens as the original Python 2 densevid_eval "
                        "does (a PTB token holding a no-break space, e.g. '925 606 0946', "
                        "stays one token); default: as the Python 3 ports (PDVC "
                        "evaluate2018.py, pycocoevalcap 1.2) split it")
    p.add_argument("--no-cache", action="store_true",
                   help="ignore --cache-dir (no reference-token cache; the default)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    version = "latest" if args.version == "2021" else args.version
    if args.json:
        try:
            check_writable(args.json)
        except (OSError, ImportError) as e:  # ImportError: gs:// without its package
            print(f"error: --json: {e}", file=sys.stderr)
            return 1
    video_order = None
    if args.video_order:
        try:
            video_order = read_json(args.video_order)
        except (OSError, ValueError) as e:
            print(f"error: --video-order: {e}", file=sys.stderr)
            return 2
        if not isinstance(video_order, list) or not all(isinstance(v, str) for v in video_order):
            print(f"error: --video-order {args.video_order}: not a JSON list of video ids",
                  file=sys.stderr)
            return 2
    try:
        result = evaluate_submission(
            args.submission, args.references, version=version, tious=tuple(args.tious),
            max_proposals=args.max_proposals, soda=args.soda, para_references=args.para,
            lenient=args.lenient, official_inputs=args.official_inputs,
            hash_seed=args.hash_seed, video_order=video_order,
            reference_cache=False, cache_dir=None if args.no_cache else args.cache_dir,
            meteor_jars=args.meteor_jars, python2_split=args.python2_split)
    except (SubmissionError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(result))
    print(f"({result['seconds']:.1f} s)")
    if args.json:
        try:
            write_json_atomic(args.json, result)
        except (OSError, ImportError) as e:
            print(f"error: writing --json {args.json}: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
