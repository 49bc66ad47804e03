"""Throughput of the PDVC captioner at ActivityNet size (D=512, T=100 steps, 10 queries,
LSTM-DSA, vocabulary 5,747 + 1, 2 + 2 layers): training steps/s and inference videos/s at
batch 1 and batch 8, on random TSP-sized (512-d) features with 4 events per video.

    python benchmarks/captioner_throughput.py [--batches 1,8] [--steps 100] [--mode queries]

Prints one line per (batch, phase) with the first call (compile, or a persistent-cache load)
and the steady-state rate (the first call excluded). Training runs captioner_train's programs
(`benchmarks/captioner_vs_pdvc.project_train`: the forward with its matching costs, the host
Hungarian solver on every decoder layer, the update on the forward's outputs); inference
greedy-decodes 30 tokens for all queries. Side by side with PDVC in PyTorch:
benchmarks/captioner_vs_pdvc.py.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.captioner_vs_pdvc import project_train  # noqa: E402
from captioner_jax import build  # noqa: E402
from captioner_jax.inference import make_predict_fn, make_word_gate_fn  # noqa: E402
from configs.captioner import base  # noqa: E402
from data_prep.infra.jax_setup import enable_compilation_cache  # noqa: E402


def random_batch(rng, b, t=100, c=512, e=30, n_events=4, length=30, vocab=5748):
    boxes = np.zeros((b, e, 2), np.float32)
    boxes[:, :n_events, 0] = rng.uniform(0.2, 0.8, (b, n_events))
    boxes[:, :n_events, 1] = rng.uniform(0.05, 0.4, (b, n_events))
    valid = np.zeros((b, e), bool)
    valid[:, :n_events] = True
    caps = np.zeros((b, e, length), np.int32)
    caps[:, :n_events, 1:14] = rng.integers(1, vocab, (b, n_events, 13))
    mask = np.zeros((b, e, length), bool)
    mask[:, :n_events, :15] = True
    return {
        "feats": jnp.asarray(rng.normal(size=(b, t, c)), jnp.float32),
        "feat_valid": jnp.ones((b, t), bool),
        "duration": jnp.asarray(rng.uniform(30, 200, b), jnp.float32),
        "gt_boxes": jnp.asarray(boxes), "gt_valid": jnp.asarray(valid),
        "captions": jnp.asarray(caps), "caption_mask": jnp.asarray(mask),
    }


def main():
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX's backend starts: see data_prep/infra/host_memory.py
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--steps", type=int, default=20, help="timed calls per measurement")
    parser.add_argument("--mode", default="queries", choices=["queries", "gt_proposals"])
    args = parser.parse_args()
    enable_compilation_cache()
    cfg = base.get_config()
    model = build.build_model(cfg.model, 5748)
    rng = np.random.default_rng(0)
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, mode {args.mode}")
    for b in [int(x) for x in args.batches.split(",")]:
        batch = random_batch(rng, b)
        params = jax.jit(lambda k, batch=batch: model.init(
            {"params": k}, batch["feats"], batch["feat_valid"], batch["duration"],
            method=type(model).init_all)["params"])(jax.random.PRNGKey(0))
        if b == int(args.batches.split(",")[0]):
            n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
            print(f"parameters: {n:,}")
        step = project_train(model, params, b, mode=args.mode)
        t0 = time.perf_counter()
        loss = step(batch)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.steps):
            loss = step(batch)
        rate = args.steps / (time.perf_counter() - t0)
        print(f"train   batch {b}: first call {compile_s:6.1f} s | {rate:7.2f} steps/s | "
              f"{rate * b:7.2f} videos/s | loss {float(loss):.3f}")

        predict = make_predict_fn(model, args.mode, 30)
        word_gates = make_word_gate_fn(model)(params)  # once per params, as predict_split
        t0 = time.perf_counter()
        jax.block_until_ready(predict(params, batch, word_gates))
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.steps):
            out = predict(params, batch, word_gates)
        jax.block_until_ready(out)
        rate = args.steps / (time.perf_counter() - t0)
        print(f"predict batch {b}: first call {compile_s:6.1f} s | {rate * b:7.2f} videos/s")


if __name__ == "__main__":
    main()
