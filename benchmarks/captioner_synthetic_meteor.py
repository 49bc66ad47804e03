"""METEOR with GT proposals on the synthetic data set vs. the most-frequent-caption baseline.

    python benchmarks/captioner_synthetic_meteor.py --workdir runs/synthetic_meteor \
        [--features DIR] [--epochs 30] [--train 240 --val 60]

1. Generates the synthetic data set under WORKDIR/data (unless present).
2. Features: `--features DIR` (per-video `.npy`, e.g. from sa_tsp_extract), else the
   diagnostic attribute features of `benchmarks/attribute_features.py` (an upper-bound
   input computed from the generator's ground truth, NOT an encoder; say so when quoting).
3. Trains the captioner in GT-proposal mode (configs/captioner/synthetic.py:mode=gt).
4. Evaluates (official evaluator, val_1 + val_2, tIoU 0.3/0.5/0.7/0.9) the best checkpoint's
   predictions and a baseline that gives every GT segment the most frequent training
   caption, and prints both.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX's backend starts: see data_prep/infra/host_memory.py
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--features", default="")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train", type=int, default=240)
    parser.add_argument("--val", type=int, default=60)
    parser.add_argument("--arg", default="", help="extra config switches")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("absl", "orbax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from benchmarks.attribute_features import write_attribute_features
    from captioner_jax import train
    from captioner_jax.baseline import baseline_submission, most_frequent_caption
    from captioner_jax.evaluation import evaluate_submission
    from configs.captioner import synthetic
    from data_prep.infra.jax_setup import enable_compilation_cache
    from data_prep.synthetic.generator import DatasetOptions, generate_dataset
    from data_prep.synthetic.scene_sampler import SceneOptions

    enable_compilation_cache()
    root = os.path.join(args.workdir, "data")
    if not os.path.isfile(os.path.join(root, "captions", "val_2.json")):
        t0 = time.perf_counter()
        generate_dataset(root, DatasetOptions(
            num_train=args.train, num_val=args.val, seed=0, workers=2,
            scene=SceneOptions(min_duration_s=8.0, max_duration_s=20.0, height=32, width=32)))
        logging.info("generated the data set in %.0f s", time.perf_counter() - t0)
    features = args.features
    if not features:
        features = os.path.join(root, "attribute_features")
        dim = write_attribute_features(os.path.join(root, "synthetic_events.json"), features)
    else:
        import glob

        import numpy as np

        dim = np.load(sorted(glob.glob(os.path.join(features, "*.npy")))[0]).shape[1]
    arg = f"root={root},features={features},dim={dim},mode=gt,epochs={args.epochs}"
    c = synthetic.get_config(arg + ("," + args.arg if args.arg else ""))
    c.eval.soda = False
    run_dir = os.path.join(args.workdir, "captioner_gt")
    t0 = time.perf_counter()
    result = train.run(c, run_dir)
    train_s = time.perf_counter() - t0
    with open(os.path.join(run_dir, "best_metrics.json")) as f:
        best = json.load(f)

    # Baseline: the most frequent training caption on every GT segment of val_1.
    with open(c.data.train_captions) as f:
        top_caption = most_frequent_caption(json.load(f))
    with open(c.data.val_captions) as f:
        base = evaluate_submission(baseline_submission(top_caption, json.load(f)),
                                   list(c.eval.references))
    keys = ("METEOR", "CIDEr", "Bleu_4")
    print(f"features: {'attribute (diagnostic)' if not args.features else features}, "
          f"{args.train} train / {args.val} val videos, {args.epochs} epochs, "
          f"training {train_s / 60:.1f} min")
    scores = ", ".join(f"{k} {best['metrics'].get(k, float('nan')):.2f}" for k in keys)
    print(f"captioner (GT proposals, best by METEOR, step {best['step']}): {scores}")
    print(f"baseline (most frequent training caption {top_caption!r}): "
          + ", ".join(f"{k} {base[k]:.2f}" for k in keys))
    return result


if __name__ == "__main__":
    main()
