"""Fast path vs official-structure slow path on a full val_1 + val_2 evaluation.

    python benchmarks/evaluate_speed.py [--submission PRED.json] [--proposals 10] \
        [--references val_1.json val_2.json] [--version 2018|latest] [--skip-slow] \
        [--jvm-options="-XX:+UseG1GC"] [--compare-jars]

Without --submission, a realistic submission is generated over all val_1 videos
(`synthetic_submission.make_submission`, seeded, ~`--proposals` per video). Prints the time of
the fast path cold (including the METEOR jar start) and warm (jar already running, as in a
trainer that evaluates every few epochs), the slow path (pycocoevalcap scorers called as the
official script calls them: per threshold, per scorer tokenization, per video scoring), the
ratio, and the largest difference between the two sets of numbers. `--jvm-options` replaces
`text.JVM_OPTIONS` (the options of every JVM the fast path starts; "" = the JVM's defaults) to
compare collectors; the CPU time of the Java children is printed with the cold time.
The fast path's METEOR is one JVM scoring on one thread per core (`meteor.MeteorProcess(
threads)`, `MeteorThreads`) where a JDK is present; `--compare-jars` times the alternative in
the same run, right after it: one jar process per core (`MeteorPool`, the layout without a
JDK), and checks that both give the same numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.slow_path import slow_score_captions  # noqa: E402
from benchmarks.synthetic_submission import make_submission  # noqa: E402
from captioner_jax.evaluation import text  # noqa: E402
from captioner_jax.evaluation.dense_captioning import score_captions  # noqa: E402
from captioner_jax.evaluation.meteor import (  # noqa: E402
    MAX_JARS,
    MeteorPool,
    MeteorProcess,
    default_num_jars,
    default_threads,
)
from captioner_jax.evaluation.submission import load_references, load_submission  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                    "activitynet_captions")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--submission", default=None)
    p.add_argument("--proposals", type=int, default=10)
    p.add_argument("--references", nargs="+",
                   default=[os.path.join(DATA, "val_1.json"), os.path.join(DATA, "val_2.json")])
    p.add_argument("--version", default="2018")
    p.add_argument("--skip-slow", action="store_true")
    p.add_argument("--compare-jars", action="store_true",
                   help="also time one METEOR jar per core (the layout without a JDK)")
    p.add_argument("--repeats", type=int, default=1,
                   help="fast-path runs per layout (alternating with --compare-jars)")
    p.add_argument("--jvm-options", default=None,
                   help=f"replaces {' '.join(text.JVM_OPTIONS)!r} for the fast path's JVMs")
    args = p.parse_args()
    if args.jvm_options is not None:
        text.JVM_OPTIONS = tuple(args.jvm_options.split())
    files, _ = load_references(args.references)
    if args.submission:
        sub = load_submission(args.submission)
        name = args.submission
    else:
        with open(args.references[0]) as f:
            ref0 = json.load(f)
        sub = load_submission(make_submission(ref0, seed=0,
                                              proposals_per_video=args.proposals))
        name = f"generated, {args.proposals} proposals/video over {len(ref0)} videos"
    n_pred = sum(len(v.sentences) for v in sub.videos.values())
    print(f"submission: {name}; {n_pred} predictions in {len(sub.videos)} videos; "
          f"references: {len(args.references)} files; version {args.version}")

    layouts = ["threads", "jars"] if args.compare_jars else ["default"]
    runs: dict[str, list[dict]] = {layout: [] for layout in layouts}
    for r in range(args.repeats):
        for layout in layouts if r % 2 == 0 else layouts[::-1]:  # alternating order
            fast = time_fast_path(sub, files, args.version, n_pred, layout)
            runs[layout].append(fast)
    if args.compare_jars:
        a, b = runs["threads"], runs["jars"]
        keys = [k for k in a[0] if isinstance(a[0][k], float) and not k.startswith("_")]
        diff = max(abs(x[k] - a[0][k]) for x in a + b for k in keys)
        med = lambda rs, k: float(np.median([x[k] for x in rs]))  # noqa: E731
        print(f"medians of {args.repeats} alternating runs, one threaded JVM vs one jar per "
              f"core: cold {med(a, '_cold'):.1f} vs {med(b, '_cold'):.1f} s "
              f"({med(b, '_cold') / med(a, '_cold'):.2f}x), warm {med(a, '_warm'):.1f} vs "
              f"{med(b, '_warm'):.1f} s, Java CPU {med(a, '_java'):.1f} vs "
              f"{med(b, '_java'):.1f} s; max |difference| of the numbers: {diff:.1e}")
    if args.skip_slow:
        return
    keys = [k for k in fast if isinstance(fast[k], float) and not k.startswith("_")]
    t_cold, t_warm = fast["_cold"], fast["_warm"]
    t0 = time.perf_counter()
    slow = slow_score_captions(sub, files, version=args.version)
    t_slow = time.perf_counter() - t0
    diff = max(abs(fast[k] - slow[k]) for k in keys)
    print(f"slow path (official structure): {t_slow:.1f} s")
    print(f"speed-up: {t_slow / t_cold:.1f}x cold, {t_slow / t_warm:.1f}x warm; "
          f"max |fast - slow| over averaged metrics (x100): {diff:.2e}")


def time_fast_path(sub, files, version: str, n_pred: int, layout: str) -> dict:
    """Cold (METEOR start included) and warm fast-path evaluations; prints and returns the
    numbers plus "_cold", "_warm" seconds and "_java" CPU-seconds of the JVMs.

    layout "default": as `evaluate_submission` runs it (one threaded JVM with a JDK, else
    one jar per core); "threads": one JVM, `default_threads()` threads; "jars": one jar
    process per core (at most MAX_JARS), no reference-token cache in any
    (benchmarks/evaluate_vs_official.py measures that too)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    if layout == "jars" or (layout == "default" and default_num_jars(n_pred) > 1):
        jars = [MeteorProcess() for _ in range(max(1, min(MAX_JARS, os.cpu_count() or 1)))]
    else:
        jars = [MeteorProcess(default_threads())]
    meteor = MeteorPool(jars)
    fast = score_captions(sub, files, version=version, meteor=meteor)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    score_captions(sub, files, version=version, meteor=meteor)
    t_warm = time.perf_counter() - t0
    for jar in jars:
        jar.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    java = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    what = (f"1 METEOR JVM, {jars[0].threads} threads" if len(jars) == 1
            else f"{len(jars)} METEOR jars")
    print(f"fast path ({what}, JVM options {' '.join(text.JVM_OPTIONS)!r}): "
          f"{t_cold:.1f} s cold (incl. METEOR start), {t_warm:.1f} s warm; Java CPU "
          f"{java:.1f} s (cold + warm); {fast['num_pairs']} (video, tIoU) caption pairs")
    keys = [k for k in fast if isinstance(fast[k], float)]
    print("  " + "  ".join(f"{k} {fast[k]:.4f}" for k in keys))
    return {**fast, "_cold": t_cold, "_warm": t_warm, "_java": java}


if __name__ == "__main__":
    main()
