"""Fast path vs official-structure slow path on a full val_1 + val_2 evaluation.

    python benchmarks/evaluate_speed.py [--submission PRED.json] [--proposals 10] \
        [--references val_1.json val_2.json] [--version 2018|latest] [--skip-slow] \
        [--jvm-options="-XX:+UseG1GC"]

Without --submission, a realistic submission is generated over all val_1 videos
(`synthetic_submission.make_submission`, seeded, ~`--proposals` per video). Prints the time of
the fast path cold (including the METEOR jar start) and warm (jar already running, as in a
trainer that evaluates every few epochs), the slow path (pycocoevalcap scorers called as the
official script calls them: per threshold, per scorer tokenization, per video scoring), the
ratio, and the largest difference between the two sets of numbers. `--jvm-options` replaces
`text.JVM_OPTIONS` (the options of every JVM the fast path starts; "" = the JVM's defaults) to
compare collectors; the CPU time of the Java children is printed with the cold time.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.slow_path import slow_score_captions  # noqa: E402
from benchmarks.synthetic_submission import make_submission  # noqa: E402
from captioner_jax.evaluation import text  # noqa: E402
from captioner_jax.evaluation.dense_captioning import score_captions  # noqa: E402
from captioner_jax.evaluation.meteor import (  # noqa: E402
    MeteorPool,
    MeteorProcess,
    default_num_jars,
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

    t0 = time.perf_counter()
    # As `evaluate_submission` runs it: one jar per core for a big submission; no
    # reference-token cache here (benchmarks/evaluate_vs_official.py measures that too).
    jars = [MeteorProcess() for _ in range(default_num_jars(n_pred))]
    meteor = MeteorPool(jars)
    fast = score_captions(sub, files, version=args.version, meteor=meteor)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    score_captions(sub, files, version=args.version, meteor=meteor)
    t_warm = time.perf_counter() - t0
    for jar in jars:
        jar.close()
    java = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"fast path ({len(jars)} METEOR jar(s), JVM options {' '.join(text.JVM_OPTIONS)!r}): "
          f"{t_cold:.1f} s cold (incl. METEOR start), {t_warm:.1f} s warm; Java CPU "
          f"{java.ru_utime + java.ru_stime:.1f} s (cold + warm); {fast['num_pairs']} (video, tIoU) "
          "caption pairs")
    keys = [k for k in fast if isinstance(fast[k], float)]
    print("  " + "  ".join(f"{k} {fast[k]:.4f}" for k in keys))
    if args.skip_slow:
        return
    t0 = time.perf_counter()
    slow = slow_score_captions(sub, files, version=args.version)
    t_slow = time.perf_counter() - t0
    diff = max(abs(fast[k] - slow[k]) for k in keys)
    print(f"slow path (official structure): {t_slow:.1f} s")
    print(f"speed-up: {t_slow / t_cold:.1f}x cold, {t_slow / t_warm:.1f}x warm; "
          f"max |fast - slow| over averaged metrics (x100): {diff:.2e}")


if __name__ == "__main__":
    main()
