"""The captioner's training step with its forward run once against run twice, side by side.

    python benchmarks/captioner_forward_once.py [--batches 1,8] [--repeats 7] [--threads 1]
        [--json-out benchmarks/results/captioner_forward_once.jsonl]

Mode "queries" matches on the host between two programs (`captioner_jax.train`). "once" is
the trainer: `make_training_forward` returns the matching costs with the forward's outputs
and pullback, and the update finishes the step on them. "twice" is the obvious form (the
trainer's before 2026-12-02): a program of the forward returns the costs only and the update
runs the forward again (`captioner_vs_pdvc.project_train(forward_in_step=True)`). Both at
ActivityNet size (`captioner_vs_pdvc`'s PDVC, Flax-initialised, its batch: 4 events with
`--words`-word captions, padded to 30 tokens), each with its own copy of the same state,
interleaved (`harness.alternate`, medians); per batch one line with both times and the ratio
(twice / once) and one BENCH_JSON line ("original" = twice, "project" = once). `--threads N`
pins the process to N CPUs before JAX starts (one core is the least noisy on a shared machine).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> None:
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX's backend starts: see data_prep/infra/host_memory.py
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="1,8")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--words", type=int, default=13, help="words per caption")
    p.add_argument("--threads", type=int, default=0, help="0: all cores; N: pinned to N CPUs")
    p.add_argument("--json-out", default="", help="append the BENCH_JSON lines here")
    args = p.parse_args(argv)
    from benchmarks.harness import alternate, emit, machine_info, pin_to_cores, ratio

    if args.threads:  # before the first JAX computation: XLA sizes its pools from these CPUs
        print("pinned to CPUs", pin_to_cores(args.threads))
    import jax
    import numpy as np

    from benchmarks import captioner_vs_pdvc as side
    from data_prep.infra.jax_setup import enable_compilation_cache

    enable_compilation_cache()
    info = machine_info()
    model, params = side.flax_model()
    rng = np.random.default_rng(0)
    for b in [int(x) for x in args.batches.split(",")]:
        batch = jax.tree.map(jax.numpy.asarray, side.video_batch(rng, b, args.words))
        steps = {"once": side.project_train(model, params, b),
                 "twice": side.project_train(model, params, b, forward_in_step=True)}
        losses = {name: float(step(batch)) for name, step in steps.items()}  # compiles
        # The same first step (the two states then evolve identically to float rounding).
        if not np.isclose(losses["once"], losses["twice"], rtol=1e-5):
            raise AssertionError(f"batch {b}: first-step losses differ: {losses}")
        times = alternate({name: (lambda s=step, x=batch: s(x)) for name, step in steps.items()},
                          repeats=args.repeats, warmup=1)
        print(f"train batch {b}: forward once {times['once']:.3f} s | twice "
              f"{times['twice']:.3f} s | {ratio(times['twice'], times['once']):.2f}x",
              flush=True)
        emit({"bench": "captioner_train_forward_once", "batch": b, "caption_words": args.words,
              "original": "forward twice (costs program + update)", "original_s":
              round(times["twice"], 4), "project_s": round(times["once"], 4),
              "ratio": round(ratio(times["twice"], times["once"]), 3),
              "threads": args.threads or os.cpu_count(), "machine": info},
             args.json_out or None)


if __name__ == "__main__":
    main()
