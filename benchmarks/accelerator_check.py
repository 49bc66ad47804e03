"""Accelerator check: encoder / captioner throughput, MFU, input pipeline and CPU parity.

    bash benchmarks/accelerator_check.sh [--json PATH]     # installs the JAX wheel, runs this
    python benchmarks/accelerator_check.py --json accelerator_check.json [--tiny]

One command for a machine with a GPU or TPU (under 10 minutes on one accelerator). Parts, in
this order (the captioner, with the most compilations, last; each prints a line; all go into
one JSON file, `--json`; a part that would start after `--budget-s` is skipped, said so):

  encoder_train    the SA-TSP trainer's jitted, donated update step (`sa_tsp_jax.train`) of
                   R(2+1)D-34 at 16x112x112 clips, bf16 compute with f32 parameters
                   (`make_backbone(variant, dtype=bfloat16)`), at the largest per-device batch
                   of `--train-batches` that fits (memory estimated from a probe compile,
                   then tried from the largest down; an out-of-memory error tries the next;
                   `--remat block` recomputes each residual block in the backward pass, so
                   that larger batches fit)
  encoder_extract  the eval-mode bf16 backbone forward (feature extraction), same way
  input_pipeline   the TSP training input pipeline (shard read, JPEG decode, crop, flip) on
                   synthetic shards, in this process: clips per second of host CPU time (a
                   core), and how many host cores keep up with `encoder_train`
  correctness      the same small-variant f32 train step (matmul precision "highest") on the
                   CPU and on the accelerator; loss, metrics and updated parameters must agree
                   within `--rtol` / `--atol`
  captioner_train  the captioner trainer's step at ActivityNet size (D=512, 100 feature steps,
                   10 queries, LSTM-DSA, vocabulary 5,747 + 1): the forward with its matching
                   costs, host Hungarian matching, donated update (`captioner_jax.train`),
                   batch 1 and 8
  captioner_infer  `make_predict_fn` (30 greedy tokens for every query), batch 1 and 8

Throughput figures: clips/s (encoder), videos/s (captioner), achieved TFLOP/s = XLA cost
analysis FLOPs of the compiled program (per device; that of the lowered program / devices
when the compiled one has none) / measured seconds per call, summed over devices, and
MFU = achieved / peak, with the dense bf16 peak of the device kind from
`PEAK_BF16_TFLOPS`; an unknown kind (and the CPU) uses a bf16 matmul measured in this run
instead, and the JSON says which (`peak_source`).

Without an accelerator the accelerator-only parts (the bf16 MFU claims against a device peak,
and the CPU-vs-accelerator comparison) are skipped with a message and the rest runs; `--tiny`
shrinks every shape (small variant, 4x32x32 clips, a tiny captioner) so that the script runs
on a CPU in about a minute of CPU time, mostly compilation (tests/test_accelerator_check.py
runs it without the captioner).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import re
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from sa_tsp_jax.models.r2plus1d import REMAT_POLICIES  # noqa: E402

# Dense (no sparsity) bf16 peak TFLOP/s per chip, from the vendors' data sheets. Matched on
# `jax.Device.device_kind` in this order (the first pattern that matches wins; e.g. TPU v5e
# reports "TPU v5 lite", v5p "TPU v5"). H100/H200 are the SXM figures.
PEAK_BF16_TFLOPS: tuple[tuple[str, str, float], ...] = (
    (r"H100.*PCIe", "H100 PCIe", 756.0),
    (r"H200", "H200 SXM", 989.0),
    (r"H100", "H100 SXM", 989.0),
    (r"A100", "A100", 312.0),
    (r"\bL4\b", "L4", 121.0),
    (r"TPU v4", "TPU v4", 275.0),
    (r"TPU v5 ?(lite|e)\b", "TPU v5e", 197.0),
    (r"TPU v5p?\b", "TPU v5p", 459.0),
    (r"TPU v6 ?(lite|e)\b", "TPU v6e", 918.0),
)

SKIP_NO_ACCELERATOR = "skipped: no accelerator (JAX backend is cpu)"


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every shape of one run (full: the report's; tiny: a CPU smoke test)."""

    variant: str = "r2plus1d_34"
    clip: tuple[int, int, int] = (16, 112, 112)  # T, H, W
    train_batches: tuple[int, ...] = (256, 192, 128, 96, 64, 48, 32, 16, 8, 4, 2, 1)
    extract_batches: tuple[int, ...] = (512, 384, 256, 128, 64, 32, 16, 8)
    num_actions: int = 200
    num_concepts: int = 1000
    steps: int = 10
    # captioner (configs/captioner/base.py is ActivityNet size; `captioner_model` overrides)
    captioner_batches: tuple[int, ...] = (1, 8)
    captioner_model: tuple[tuple[str, int], ...] = ()
    feat_steps: int = 100
    feat_dim: int = 512
    max_events: int = 30
    caption_len: int = 30
    vocab: int = 5748
    captioner_steps: int = 10
    # input pipeline on synthetic shards
    videos: int = 12
    video_s: tuple[float, float] = (8.0, 12.0)
    frame_size: tuple[int, int] = (128, 172)  # synthetic video H, W
    resize: tuple[int, int] = (128, 171)  # TSP's stored frame size
    crop: int = 112
    pipeline_seconds: float = 8.0
    pipeline_batch: int = 8


FULL = Sizes()
TINY = Sizes(
    variant="small", clip=(4, 32, 32), train_batches=(4, 2), extract_batches=(4,),
    num_actions=6, num_concepts=16, steps=2, captioner_batches=(2,),
    captioner_model=(("hidden_dim", 32), ("ffn_dim", 32), ("num_heads", 2), ("enc_layers", 1),
                     ("dec_layers", 1), ("num_levels", 1), ("enc_points", 2), ("dec_points", 2),
                     ("num_queries", 4), ("max_event_count", 4), ("cap_levels", 1),
                     ("cap_points", 2), ("rnn_size", 32), ("word_dim", 32), ("att_hid", 32)),
    feat_steps=16, feat_dim=32, max_events=4, caption_len=16, vocab=40, captioner_steps=2,
    videos=2, video_s=(4.0, 4.0), frame_size=(48, 64), resize=(40, 54), crop=32,
    pipeline_seconds=1.0, pipeline_batch=4)


# ----------------------------------------------------------------------------- helpers
def device_peak(kind: str) -> tuple[float | None, str]:
    """(dense bf16 peak FLOP/s of one chip, its name) from PEAK_BF16_TFLOPS, or (None, "")."""
    for pattern, name, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, kind, re.I):
            return tflops * 1e12, name
    return None, ""


def is_oom(exc: BaseException) -> bool:
    """Whether an exception is XLA's out-of-memory (at compile or run time)."""
    text = f"{type(exc).__name__}: {exc}"
    return any(s in text for s in ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory",
                                   "OOM", "Resource exhausted"))


def _cost_flops(stage) -> float | None:
    try:
        cost = stage.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return None
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    value = (cost or {}).get("flops")
    return float(value) if value is not None and value > 0 else None


def flops_of(compiled, lowered=None, n_dev: int = 1) -> float | None:
    """FLOPs of one call of a program per device: XLA's cost analysis of the compiled
    (partitioned, per-device) program; when that has none (e.g. convolutions lowered to
    library calls the analysis does not count), that of the lowered global program / n_dev.
    None when neither is available."""
    flops = _cost_flops(compiled)
    if flops is None and lowered is not None:
        flops = _cost_flops(lowered)
        flops = flops / n_dev if flops else None
    return flops


def memory_need(compiled) -> int | None:
    """Device bytes one call needs (arguments + outputs + temporaries - donated aliases)."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
               - m.alias_size_in_bytes)


def device_memory_limit(device) -> int | None:
    """Bytes the allocator may use on `device` (None on CPU / unknown)."""
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001
        return None
    return int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None


def seconds_per_call(fn, steps: int) -> float:
    """Seconds per call of `fn()` after one warm-up call (blocks on the results)."""
    jax.block_until_ready(fn())
    t = time.perf_counter()
    out = None
    for _ in range(steps):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - t) / steps


def compare_trees(a, b, rtol: float, atol: float) -> dict:
    """Element-wise |a - b| <= atol + rtol |b| over two pytrees of arrays (same structure).

    Returns {"ok", "max_abs_diff", "worst_leaf", "leaves"}; `worst_leaf` names the leaf with
    the largest violation ratio |a - b| / (atol + rtol |b|).
    """
    flat_a, tree_a = jax.tree_util.tree_flatten_with_path(a)
    flat_b, tree_b = jax.tree_util.tree_flatten_with_path(b)
    if tree_a != tree_b:
        raise ValueError(f"trees differ in structure: {tree_a} vs {tree_b}")
    worst, worst_name, max_abs = 0.0, "", 0.0
    for (path, x), (_, y) in zip(flat_a, flat_b, strict=True):
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        if x.shape != y.shape:
            raise ValueError(f"{jax.tree_util.keystr(path)}: shape {x.shape} vs {y.shape}")
        diff = np.abs(x - y)
        if not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)):
            ratio = math.inf
        else:
            ratio = float(np.max(diff / (atol + rtol * np.abs(y)), initial=0.0))
            max_abs = max(max_abs, float(np.max(diff, initial=0.0)))
        if ratio > worst:
            worst, worst_name = ratio, jax.tree_util.keystr(path)
    return {"ok": worst <= 1.0, "max_abs_diff": max_abs, "worst_leaf": worst_name,
            "worst_ratio": worst, "leaves": len(flat_a)}


class Budget:
    """Wall-clock budget of the whole run: parts after it is spent are skipped (said so)."""

    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def fit_batch(candidates, compile_fn, run_fn, limit, probe: bool,
              fixed_bytes: float | None = None) -> tuple[int, dict, list]:
    """The largest per-device batch of `candidates` whose program fits, and its result.

    compile_fn(b) -> compiled program; run_fn(b, compiled) -> result dict. With a known
    device memory `limit` (bytes) and `probe`, one compile at a probe batch (the smallest
    candidate >= 8, else the smallest) gives the bytes per clip above the batch-free part
    (`fixed_bytes`: parameters, optimizer state, gradients; half the probe's bytes when not
    given, which overestimates a clip) and candidates estimated above 85% of the limit are not
    compiled. Every compiled candidate is checked against the limit by its own memory
    analysis, and an out-of-memory error (compile or run) moves to the next smaller one.
    Returns (batch, result, [notes on the batches passed over]).
    """
    candidates = sorted(set(candidates), reverse=True)
    notes = []
    if limit and probe and len(candidates) > 1:
        b0 = min([b for b in candidates if b >= 8], default=candidates[-1])
        try:
            need0 = memory_need(compile_fn(b0))
        except Exception as e:  # noqa: BLE001
            if not is_oom(e):
                raise
            need0 = None
        if need0:
            fixed = fixed_bytes if fixed_bytes is not None and fixed_bytes < need0 else need0 / 2
            per_clip = (need0 - fixed) / b0
            keep = [b for b in candidates if fixed + per_clip * b <= 0.85 * limit]
            for b in candidates:
                if b not in keep:
                    notes.append(f"batch {b}: estimated {(fixed + per_clip * b) / 2**30:.1f} "
                                 f"GiB > 85% of {limit / 2**30:.1f} GiB, not tried")
            candidates = keep or [candidates[-1]]
    for b in candidates:
        try:
            compiled = compile_fn(b)
            need = memory_need(compiled)
            if limit and need and need > limit:
                notes.append(f"batch {b}: needs {need / 2**30:.1f} GiB > "
                             f"{limit / 2**30:.1f} GiB")
                continue
            return b, run_fn(b, compiled), notes
        except Exception as e:  # noqa: BLE001
            if not is_oom(e):
                raise
            notes.append(f"batch {b}: out of memory ({str(e).splitlines()[0][:120]})")
    raise RuntimeError("no batch fits: " + "; ".join(notes))


def rates(flops_per_device: float | None, seconds: float, n_dev: int, peak: float | None) -> dict:
    """Achieved TFLOP/s (all devices) and MFU against `peak` (FLOP/s of one device)."""
    if not flops_per_device:
        return {"tflops": None, "mfu": None}
    achieved = flops_per_device / seconds  # per device
    return {"tflops": achieved * n_dev / 1e12,
            "mfu": achieved / peak if peak else None}


def measured_matmul_peak(n: int, dtype, steps: int = 5) -> float:
    """FLOP/s of one [n, n] @ [n, n] matmul in `dtype` on the default device (best of `steps`)."""
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    best = math.inf
    for _ in range(steps):
        t = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best


# ----------------------------------------------------------------------------- parts
def encoder_parts(sizes: Sizes, mesh, peak, limit, dtype, conv_impl: str = "",
                  remat: str = "none") -> tuple[dict, dict]:
    """The trainer's train step and the extraction forward. Returns (train, extract) dicts.
    `conv_impl`: the backbone's convolution lowering ("" = the model's default); `remat`: the
    train step's activation rematerialisation (`R2Plus1D.remat`; a larger batch may fit)."""
    from data_prep.infra import mesh as mesh_lib
    from sa_tsp_jax import optim, train
    from sa_tsp_jax.losses.pretrain_loss import PretrainLossConfig
    from sa_tsp_jax.models.heads import SATSPModel
    from sa_tsp_jax.models.r2plus1d import make_backbone

    n_dev = mesh.devices.size
    overrides = {"conv_impl": conv_impl} if conv_impl else {}
    model = SATSPModel(make_backbone(sizes.variant, dtype=dtype, remat=remat, **overrides),
                       num_actions=sizes.num_actions, num_concepts=sizes.num_concepts,
                       use_gvf=True)
    tx = optim.make_optimizer(optim.OptimConfig(warmup_epochs=0.0), steps_per_epoch=100)
    feat = model.backbone.feature_dim
    clip_shape = (*sizes.clip, 3)
    init = train.init_state_fn(model, tx, clip_shape, feat)
    bs = mesh_lib.batch_sharding(mesh)
    rng = np.random.default_rng(0)

    def host_batch(b):
        return {
            "clips": rng.standard_normal((b, *clip_shape), np.float32),
            "action_label": rng.integers(-1, sizes.num_actions, b).astype(np.int32),
            "region_label": rng.integers(0, 2, b).astype(np.int32),
            "concepts": (rng.random((b, sizes.num_concepts)) < 0.05).astype(np.float32),
            "valid": np.ones(b, bool),
            "gvf": rng.standard_normal((b, feat), np.float32)}

    def batch_of(b):
        return mesh_lib.global_batch(host_batch(b), bs)

    def abstract_batch(b):
        """Shapes only: compiling a candidate batch allocates nothing on the device."""
        return {k: jax.ShapeDtypeStruct((b, *v.shape[1:]), v.dtype, sharding=bs)
                for k, v in host_batch(1).items()}

    state, _, shardings = train.init_state(init, jax.random.key(0, impl="rbg"), mesh)
    step, _ = train.jit_steps(model, tx, PretrainLossConfig(), mesh, shardings)
    holder = {"state": state}
    compile_s, lowered = {}, {}

    def compile_train(b):
        t = time.perf_counter()
        lowered[b] = step.lower(holder["state"], abstract_batch(b * n_dev))
        c = lowered[b].compile()
        compile_s[b] = time.perf_counter() - t
        return c

    def run_train(b, compiled):
        batch = batch_of(b * n_dev)

        def call():
            # The step donates the state: thread it through.
            holder["state"], metrics = compiled(holder["state"], batch)
            return metrics

        try:
            s = seconds_per_call(call, sizes.steps)
            loss = float(jax.device_get(call()["loss"]))
        except Exception:
            # An out-of-memory error may come after the state was donated: a fresh one for
            # the next (smaller) candidate.
            holder["state"] = train.init_state(init, jax.random.key(0, impl="rbg"), mesh)[0]
            raise
        return {"seconds_per_step": s, "flops_per_device": flops_of(compiled, lowered[b], n_dev),
                "loss_finite": math.isfinite(loss)}

    # Batch-free bytes per device: the state (parameters, BN statistics, momentum) and about
    # as much again for the gradients and updates.
    state_bytes = sum(x.addressable_shards[0].data.nbytes
                      for x in jax.tree.leaves(holder["state"]))
    b, r, notes = fit_batch(sizes.train_batches, compile_train, run_train, limit, probe=True,
                            fixed_bytes=2 * state_bytes)
    g = b * n_dev
    train_out = {"variant": sizes.variant, "clip": list(clip_shape),
                 "conv_impl": getattr(model.backbone, "conv_impl", None), "remat": remat,
                 "compute_dtype": jnp.dtype(dtype).name, "param_dtype": "float32",
                 "batch_per_device": b, "global_batch": g, "compile_s": compile_s[b],
                 "clips_per_s": g / r["seconds_per_step"],
                 "flops_per_clip": (r["flops_per_device"] * n_dev / g
                                    if r["flops_per_device"] else None),
                 **rates(r["flops_per_device"], r["seconds_per_step"], n_dev, peak),
                 "seconds_per_step": r["seconds_per_step"], "loss_finite": r["loss_finite"],
                 "batches_passed_over": notes}

    backbone = model.backbone
    variables = {"params": holder["state"]["params"]["backbone"],
                 "batch_stats": holder["state"]["batch_stats"]["backbone"]}
    fwd = jax.jit(lambda v, x: backbone.apply(v, x, train=False), out_shardings=bs)
    ecompile_s = {}

    def clips_of(b):
        return mesh_lib.global_batch(
            {"clips": rng.standard_normal((b * n_dev, *clip_shape), np.float32)}, bs)["clips"]

    def compile_extract(b):
        t = time.perf_counter()
        lowered[("extract", b)] = fwd.lower(variables, abstract_batch(b * n_dev)["clips"])
        c = lowered[("extract", b)].compile()
        ecompile_s[b] = time.perf_counter() - t
        return c

    def run_extract(b, compiled):
        clips = clips_of(b)
        return {"seconds": seconds_per_call(lambda: compiled(variables, clips), sizes.steps),
                "flops_per_device": flops_of(compiled, lowered[("extract", b)], n_dev)}

    eb, er, enotes = fit_batch(sizes.extract_batches, compile_extract, run_extract, limit,
                               probe=False)
    eg = eb * n_dev
    extract_out = {"variant": sizes.variant, "clip": list(clip_shape),
                   "compute_dtype": jnp.dtype(dtype).name, "batch_per_device": eb,
                   "global_batch": eg, "compile_s": ecompile_s[eb],
                   "clips_per_s": eg / er["seconds"],
                   "flops_per_clip": (er["flops_per_device"] * n_dev / eg
                                      if er["flops_per_device"] else None),
                   **rates(er["flops_per_device"], er["seconds"], n_dev, peak),
                   "batches_passed_over": enotes}
    return train_out, extract_out


def captioner_parts(sizes: Sizes, mesh, peak, budget=None) -> tuple[list, list]:
    """The captioner trainer's step (matching + update) and inference, per batch size."""
    from benchmarks.captioner_throughput import random_batch
    from captioner_jax import build, inference
    from captioner_jax import train as ctrain
    from captioner_jax.objective import MatcherCosts
    from configs.captioner import base
    from data_prep.infra import mesh as mesh_lib

    n_dev = mesh.devices.size
    cfg = base.get_config()
    for key, value in sizes.captioner_model:
        cfg.model[key] = value
    model = build.build_model(cfg.model, sizes.vocab)
    tx, schedule = build.build_optimizer(cfg.optim, 1000, 30)
    bs = mesh_lib.batch_sharding(mesh)
    replicated = mesh_lib.replicated(mesh)
    rng = np.random.default_rng(0)
    t = sizes.feat_steps
    dummy = (jnp.zeros((1, t, sizes.feat_dim)), jnp.ones((1, t), bool), jnp.ones((1,)))

    def init_state(key):
        params = model.init({"params": key}, *dummy, method=type(model).init_all)["params"]
        return {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}

    key = jax.random.key(0)
    abstract = jax.eval_shape(init_state, key)
    shardings = mesh_lib.param_shardings(abstract, mesh)
    costs = MatcherCosts(**dict(cfg.matcher))
    weights = {k: float(v) for k, v in dict(cfg.loss_weights).items()}
    train_step = ctrain.make_train_step(model, tx, schedule, mode="queries", costs=costs,
                                        weights=weights, state_sharding=shardings,
                                        metric_sharding=replicated)
    training_forward = ctrain.make_training_forward(model, costs, bs)
    predict = inference.make_predict_fn(model, "queries", sizes.caption_len)
    word_gate_fn = inference.make_word_gate_fn(model)
    step_key = jax.jit(lambda k: jax.random.fold_in(k, 1), out_shardings=replicated)(key)
    train_rows, infer_rows = [], []
    for b in sizes.captioner_batches:
        if train_rows and budget is not None and budget.left() < 60:
            print(f"[captioner] batch {b * n_dev}: skipped, time budget spent")
            break
        g = b * n_dev
        host = {k: np.asarray(v) for k, v in random_batch(
            rng, g, t=t, c=sizes.feat_dim, e=sizes.max_events, length=sizes.caption_len,
            vocab=sizes.vocab).items()}
        batch = mesh_lib.global_batch(host, bs)
        holder = {"state": jax.jit(init_state, out_shardings=shardings)(key)}
        # Compiled once, ahead of time (the FLOPs come from these very programs).
        t0 = time.perf_counter()
        state0 = holder["state"]
        costs_l = training_forward.lower(state0["params"], batch, step_key, state0["step"])
        costs_c = costs_l.compile()
        assign, fwd = ctrain._match(costs_c, state0, batch, host, step_key, mesh)
        step_l = train_step.lower(state0, batch, step_key, assign, fwd)
        del fwd
        step_c = step_l.compile()
        compile_s = time.perf_counter() - t0
        f1, f2 = flops_of(costs_c, costs_l, n_dev), flops_of(step_c, step_l, n_dev)
        flops = f1 + f2 if f1 and f2 else None

        def call(batch=batch, host=host, holder=holder, costs_c=costs_c, step_c=step_c):
            # The trainer's step: the forward with its matching costs, host Hungarian,
            # donated update on the forward's outputs.
            assign, fwd = ctrain._match(costs_c, holder["state"], batch, host, step_key, mesh)
            holder["state"], metrics = step_c(holder["state"], batch, step_key, assign, fwd)
            return metrics

        s = seconds_per_call(call, sizes.captioner_steps)
        train_rows.append({"batch_per_device": b, "global_batch": g, "compile_s": compile_s,
                           "seconds_per_step": s, "videos_per_s": g / s,
                           **rates(flops, s, n_dev, peak)})

        params = holder["state"]["params"]
        word_gates = jax.block_until_ready(word_gate_fn(params))  # once per params (predict_split)
        t0 = time.perf_counter()
        predict_l = predict.lower(params, batch, word_gates)
        compiled = predict_l.compile()
        pcompile = time.perf_counter() - t0
        ps = seconds_per_call(lambda c=compiled, p=params, x=batch, w=word_gates: c(p, x, w),
                              sizes.captioner_steps)
        infer_rows.append({"batch_per_device": b, "global_batch": g, "compile_s": pcompile,
                           "seconds_per_batch": ps, "videos_per_s": g / ps,
                           "caption_tokens": sizes.caption_len,
                           **rates(flops_of(compiled, predict_l, n_dev), ps, n_dev, peak)})
    return train_rows, infer_rows


def input_pipeline_part(sizes: Sizes, workdir: str) -> dict:
    """Clips per second of host CPU time of the TSP train pipeline, single process."""
    from absl import flags

    from data_prep.labels.video_labels import build_video_labels
    from data_prep.pipelines import ClipShardSource, TspInputConfig, tsp_train_dataset
    from data_prep.shards import write_shards
    from data_prep.synthetic.generator import DatasetOptions, generate_dataset
    from data_prep.synthetic.scene_sampler import SceneOptions

    if not flags.FLAGS.is_parsed():
        flags.FLAGS(sys.argv[:1])  # Grain reads absl flags; use the defaults
    root = os.path.join(workdir, "synthetic")
    h, w = sizes.frame_size
    generate_dataset(root, DatasetOptions(
        num_train=sizes.videos, num_val=1, seed=0,
        scene=SceneOptions(min_duration_s=sizes.video_s[0], max_duration_s=sizes.video_s[1],
                           height=h, width=w, min_event_s=min(2.0, sizes.video_s[0] / 2))))
    labels = build_video_labels(os.path.join(root, "tsp", "train_tsp_groundtruth.csv"),
                                os.path.join(root, "tsp", "action_label_mapping.json"),
                                min_segment_s=0.0)
    videos = [(os.path.join(root, "videos", f"{v}.mp4"), lab) for v, lab in sorted(labels.items())]
    report = write_shards(videos, os.path.join(workdir, "shards"), num_shards=2, fps=15.0,
                          resize=sizes.resize, num_workers=0, show_progress=False)
    source = ClipShardSource(report["shards"])
    cfg = TspInputConfig(batch_size=sizes.pipeline_batch, clip_length=sizes.clip[0], fps=15.0,
                         resize=sizes.resize, crop=sizes.crop, read_threads=1,
                         prefetch_buffer=2)
    ds = tsp_train_dataset(source, cfg, seed=0, train=True, process_index=0, process_count=1)
    it = iter(ds)
    next(it)  # warm-up: first reads
    wall0, cpu0, n = time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - wall0 < sizes.pipeline_seconds or n == 0:
        n += len(next(it)["clips"])
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if hasattr(it, "close"):
        it.close()
    return {"clip": [sizes.clip[0], sizes.crop, sizes.crop, 3], "stored_frames": list(sizes.resize),
            "clips": n, "wall_s": wall, "cpu_s": cpu, "clips_per_s": n / wall,
            "clips_per_core_s": n / max(cpu, 1e-9), "host_cores": os.cpu_count()}


def correctness_part(accel, rtol: float, atol: float, sizes: Sizes = TINY) -> dict:
    """One f32 train step of the `sizes` (tiny) model on the CPU and on `accel`, the same
    initial state and batch; loss, metrics, updated parameters and BN statistics compared
    leaf by leaf. On a CPU-only machine `accel` may be the CPU itself (--cpu-self-check:
    exercises this code; it proves nothing about an accelerator)."""
    from data_prep.infra import mesh as mesh_lib
    from sa_tsp_jax import optim, train
    from sa_tsp_jax.losses.pretrain_loss import PretrainLossConfig
    from sa_tsp_jax.models.heads import SATSPModel
    from sa_tsp_jax.models.r2plus1d import make_backbone

    cpu = jax.devices("cpu")[0]
    # The very program `encoder_parts` compiles for --tiny --dtype float32 (so a CPU run
    # finds it in the compilation cache).
    model = SATSPModel(make_backbone(sizes.variant, dtype=jnp.float32),
                       num_actions=sizes.num_actions, num_concepts=sizes.num_concepts,
                       use_gvf=True)
    tx = optim.make_optimizer(optim.OptimConfig(warmup_epochs=0.0), steps_per_epoch=100)
    feat = model.backbone.feature_dim
    clip_shape = (*sizes.clip, 3)
    b = sizes.train_batches[0]
    rng = np.random.default_rng(1)
    batch = {"clips": rng.normal(size=(b, *clip_shape)).astype(np.float32),
             "action_label": rng.integers(-1, sizes.num_actions, b).astype(np.int32),
             "region_label": rng.integers(0, 2, b).astype(np.int32),
             "concepts": (rng.random((b, sizes.num_concepts)) < 0.2).astype(np.float32),
             "valid": np.ones(b, bool), "gvf": rng.normal(size=(b, feat)).astype(np.float32)}
    init = train.init_state_fn(model, tx, clip_shape, feat)
    # One initial state, made on the CPU (the RBG generator is not the same on every backend).
    cpu_mesh = mesh_lib.make_mesh(devices=[cpu])
    state, abstract, _ = train.init_state(init, jax.random.key(0, impl="rbg"), cpu_mesh)
    host_state = jax.device_get(state)
    out = {}
    for name, dev in (("cpu", cpu), ("accelerator", accel)):
        mesh = mesh_lib.make_mesh(devices=[dev])
        shardings = mesh_lib.param_shardings(abstract, mesh)
        # "highest" on the accelerator: f32 matmuls / convolutions without TF32 or bf16
        # passes, so that the comparison tests the program, not the precision default (XLA
        # CPU computes f32 in full either way).
        precision = (contextlib.nullcontext() if dev.platform == "cpu"
                     else jax.default_matmul_precision("highest"))
        with precision:
            step, _ = train.jit_steps(model, tx, PretrainLossConfig(), mesh, shardings)
            new_state, metrics = step(jax.device_put(host_state, shardings),
                                      mesh_lib.global_batch(batch,
                                                            mesh_lib.batch_sharding(mesh)))
            # Accuracies are argmaxes: a near-tie may flip on float rounding alone, so they
            # are not compared (the losses and the parameters are).
            out[name] = jax.device_get({"params": new_state["params"],
                                        "batch_stats": new_state["batch_stats"],
                                        "metrics": {k: v for k, v in metrics.items()
                                                    if "accuracy" not in k}})
    cmp = compare_trees(out["accelerator"], out["cpu"], rtol, atol)
    return {"status": "ok" if cmp["ok"] else "MISMATCH", "device": accel.device_kind,
            "platform": accel.platform, "rtol": rtol, "atol": atol,
            "loss_cpu": float(out["cpu"]["metrics"]["loss"]),
            "loss_accelerator": float(out["accelerator"]["metrics"]["loss"]), **cmp}


# ----------------------------------------------------------------------------- main
def _fmt(x, spec=".1f", scale=1.0, suffix=""):
    return "n/a" if x is None else f"{x * scale:{spec}}{suffix}"


def run_part(name: str, result: dict, budget: Budget, min_left: float, fn):
    """Runs one part unless the budget is spent; an error is recorded, not fatal."""
    if budget.left() < min_left:
        result[name] = {"status": f"skipped: time budget spent ({budget.left():.0f} s left)"}
        print(f"[{name}] {result[name]['status']}")
        return None
    print(f"[{name}] running ({budget.left():.0f} s of the budget left)", flush=True)
    t, cpu = time.perf_counter(), time.process_time()
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001 - the other parts still run; the error is reported
        traceback.print_exc()
        result[name] = {"status": "error", "error": f"{type(e).__name__}: {e}"[:2000]}
        print(f"[{name}] ERROR {type(e).__name__}: {str(e).splitlines()[0][:200]}")
        return None
    if isinstance(out, dict):
        out.setdefault("status", "ok")
        out["part_s"] = time.perf_counter() - t
        out["part_cpu_s"] = time.process_time() - cpu  # all threads (compiles, decoding)
    result[name] = out
    return out


def main(argv=None) -> int:
    from data_prep.infra.host_memory import keep_freed_memory

    keep_freed_memory()  # before JAX's backend starts: see data_prep/infra/host_memory.py
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", default="accelerator_check.json", help="output JSON path")
    p.add_argument("--tiny", action="store_true", help="tiny shapes (CPU smoke test)")
    p.add_argument("--train-batches", default="",
                   help="per-device encoder train batches to try, e.g. 128,64 (largest first)")
    p.add_argument("--extract-batches", default="", help="per-device extraction batches")
    p.add_argument("--skip", default="", help="comma list of parts to skip: encoder, "
                   "captioner, input_pipeline, correctness")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"],
                   help="encoder compute dtype (parameters are float32 either way)")
    p.add_argument("--conv-impl", default="",
                   help="R(2+1)D convolution lowering (sa_tsp_jax.models.r2plus1d.CONV_IMPLS; "
                   "default: the model's)")
    p.add_argument("--remat", default="none", choices=REMAT_POLICIES,
                   help="encoder train step: what the backward pass recomputes "
                   "(R2Plus1D.remat; block: larger batches fit)")
    p.add_argument("--budget-s", type=float, default=540.0,
                   help="wall-clock budget; parts that would start after it are skipped")
    p.add_argument("--cpu-self-check", action="store_true",
                   help="without an accelerator, run the correctness part CPU against CPU "
                   "(exercises its code; tests use it)")
    p.add_argument("--rtol", type=float, default=2e-3)
    p.add_argument("--atol", type=float, default=2e-5)
    p.add_argument("--workdir", default="", help="synthetic data for the input pipeline "
                   "(default: a temporary folder)")
    args = p.parse_args(argv)
    budget = Budget(args.budget_s)
    sizes = TINY if args.tiny else FULL
    if args.train_batches:
        sizes = dataclasses.replace(
            sizes, train_batches=tuple(int(x) for x in args.train_batches.split(",")))
    if args.extract_batches:
        sizes = dataclasses.replace(
            sizes, extract_batches=tuple(int(x) for x in args.extract_batches.split(",")))
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    from benchmarks.harness import machine_info
    from data_prep.infra import mesh as mesh_lib
    from data_prep.infra.atomic_files import atomic_write_json
    from data_prep.infra.jax_setup import enable_compilation_cache

    enable_compilation_cache()
    devices = jax.devices()
    dev = devices[0]
    accelerator = dev.platform != "cpu"
    mesh = mesh_lib.make_mesh()
    n_dev = mesh.devices.size
    limit = device_memory_limit(dev)
    peak, peak_name = device_peak(dev.device_kind) if accelerator else (None, "")
    # A bf16 matmul measured here: the peak when the data sheet's is unknown, and on an
    # accelerator a check of the data-sheet figure (a throttled or shared device shows here).
    n = 8192 if accelerator else (512 if args.tiny else 2048)
    matmul = measured_matmul_peak(n, jnp.bfloat16)
    if peak:
        peak_source = (f"data sheet: {peak_name} dense bf16 {peak / 1e12:.0f} TFLOP/s "
                       f"(a bf16 {n}^3 matmul measured {matmul / 1e12:.0f} here)")
    else:
        peak = matmul
        why = ("unknown device kind" if accelerator else "no accelerator")
        peak_source = (f"measured: bf16 {n}^3 matmul in this run, {peak / 1e12:.3f} TFLOP/s "
                       f"({why}: MFU relative to that)")
    result = {
        "tool": "benchmarks/accelerator_check.py", "tiny": bool(args.tiny),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "backend": dev.platform, "device_kind": dev.device_kind, "num_devices": n_dev,
        "accelerator": accelerator, "device_memory_bytes": limit,
        "peak_flops_per_device": peak, "peak_source": peak_source,
        "matmul_bf16_flops_per_device": matmul,
        "machine": machine_info(), "skipped": {},
    }
    print(f"devices: {n_dev} x {dev.device_kind} ({dev.platform})"
          + (f", {limit / 2**30:.0f} GiB for XLA" if limit else "") + f"; peak {peak_source}")
    if not accelerator:
        msg = (f"{SKIP_NO_ACCELERATOR}: everything runs on the CPU at "
               f"{'tiny' if args.tiny else 'full'} shapes; MFU is against a measured CPU matmul, "
               "not a device peak")
        result["skipped"]["mfu_vs_device_peak"] = msg
        print(msg)

    def encoder():
        tr, ex = encoder_parts(sizes, mesh, peak, limit, jnp.dtype(args.dtype), args.conv_impl,
                               args.remat)
        result["encoder_extract"] = dict(ex, status="ok")
        return tr

    if "encoder" in skip:
        result["skipped"]["encoder"] = "skipped: --skip"
    else:
        tr = run_part("encoder_train", result, budget, 60, encoder)
        if tr:
            print(f"[encoder_train] {sizes.variant} {'x'.join(map(str, sizes.clip))} "
                  f"{tr['compute_dtype']} (conv {tr['conv_impl']}, remat {tr['remat']}): "
                  f"{tr['clips_per_s']:.2f} clips/s (batch {tr['global_batch']}), "
                  f"{_fmt(tr['tflops'], '.3f')} TFLOP/s, MFU {_fmt(tr['mfu'], '.1f', 100, '%')}"
                  f", compile {tr['compile_s']:.0f} s"
                  + (f"; passed over: {'; '.join(tr['batches_passed_over'])}"
                     if tr["batches_passed_over"] else ""))
            ex = result["encoder_extract"]
            print(f"[encoder_extract] {ex['clips_per_s']:.2f} clips/s "
                  f"(batch {ex['global_batch']}), {_fmt(ex['tflops'], '.3f')} TFLOP/s, "
                  f"MFU {_fmt(ex['mfu'], '.1f', 100, '%')}")

    if "input_pipeline" in skip:
        result["skipped"]["input_pipeline"] = "skipped: --skip"
    else:
        def pipeline():
            if args.workdir:
                return input_pipeline_part(sizes, args.workdir)
            with tempfile.TemporaryDirectory(prefix="accel_check_") as tmp:
                return input_pipeline_part(sizes, tmp)

        ip = run_part("input_pipeline", result, budget, 30, pipeline)
        if ip:
            line = (f"[input_pipeline] {ip['clips_per_s']:.1f} clips/s in one process, "
                    f"{ip['clips_per_core_s']:.1f} clips per CPU-second (host core)")
            tr = result.get("encoder_train", {})
            if tr.get("status") == "ok":
                cores = tr["clips_per_s"] / ip["clips_per_core_s"]
                ip["cores_to_keep_up_with_train"] = cores
                ex = result.get("encoder_extract", {})
                if ex.get("status") == "ok":
                    ip["cores_to_keep_up_with_extract"] = ex["clips_per_s"] / ip["clips_per_core_s"]
                line += (f"; encoder training at {tr['clips_per_s']:.1f} clips/s needs "
                         f"{math.ceil(cores)} host cores (this host has {os.cpu_count()})")
            print(line)

    if "correctness" in skip:
        result["skipped"]["correctness"] = "skipped: --skip"
    else:
        target = dev
        if not accelerator:
            msg = (f"{SKIP_NO_ACCELERATOR}: the CPU-vs-accelerator train-step comparison "
                   "needs one")
            result["skipped"]["correctness"] = msg
            print(f"[correctness] {msg}")
            target = dev if args.cpu_self_check else None
            if target is None:
                result["correctness"] = {"status": msg}
            else:
                print("[correctness] --cpu-self-check: CPU against CPU instead (exercises the "
                      "code only)")
        if target is not None:
            cr = run_part("correctness", result, budget, 20,
                          lambda: correctness_part(target, args.rtol, args.atol))
            if cr:
                cr["self_check"] = not accelerator
                print(f"[correctness] {cr['status']} ({cr['platform']} vs cpu): loss "
                      f"{cr['loss_accelerator']:.6f} vs {cr['loss_cpu']:.6f}; max |diff| "
                      f"{cr['max_abs_diff']:.2e}, worst {cr['worst_leaf']} at "
                      f"{cr['worst_ratio']:.2f} x tolerance, {cr['leaves']} leaves")

    if "captioner" in skip:
        result["skipped"]["captioner"] = "skipped: --skip"
    else:
        def captioner():
            rows_t, rows_i = captioner_parts(sizes, mesh, peak, budget)
            result["captioner_infer"] = {"status": "ok", "batches": rows_i}
            return {"batches": rows_t}

        ct = run_part("captioner_train", result, budget, 60, captioner)
        if ct:
            for rt, ri in zip(ct["batches"], result["captioner_infer"]["batches"], strict=True):
                print(f"[captioner] batch {rt['global_batch']}: train {rt['videos_per_s']:.2f} "
                      f"videos/s ({_fmt(rt['tflops'], '.3f')} TFLOP/s, MFU "
                      f"{_fmt(rt['mfu'], '.2f', 100, '%')}, compile {rt['compile_s']:.0f}"
                      f" s) | inference {ri['videos_per_s']:.2f} videos/s "
                      f"({ri['caption_tokens']} tokens, MFU {_fmt(ri['mfu'], '.2f', 100, '%')})")

    result["total_s"] = args.budget_s - budget.left()
    atomic_write_json(args.json, result)
    print(f"wrote {args.json} ({result['total_s']:.0f} s)")
    failed = [k for k, v in result.items() if isinstance(v, dict)
              and v.get("status") in ("error", "MISMATCH")]
    if failed:
        print(f"FAILED parts: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
