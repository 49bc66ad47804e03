"""Accelerator check: encoder / captioner throughput, MFU, input pipeline and CPU parity.

    bash benchmarks/accelerator_check.sh [--json PATH]     # installs the JAX wheel, runs this
    python benchmarks/accelerator_check.py --json accelerator_check.json [--tiny]

One command for a machine with a GPU or TPU (under 10 minutes on one accelerator). Parts (each
a module of `benchmarks/accelerator/`, which also holds the shapes and the measuring), in
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
runs it, at LLVM's cheapest optimisation level).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks.accelerator.captioner_part import captioner_parts  # noqa: E402
from benchmarks.accelerator.correctness_part import correctness_part  # noqa: E402
from benchmarks.accelerator.encoder_part import encoder_parts  # noqa: E402
from benchmarks.accelerator.input_pipeline_part import input_pipeline_part  # noqa: E402
from benchmarks.accelerator.measure import (  # noqa: E402
    Budget,
    device_memory_limit,
    device_peak,
    measured_matmul_peak,
)
from benchmarks.accelerator.sizes import FULL, TINY  # noqa: E402
from sa_tsp_jax.models.r2plus1d import REMAT_POLICIES  # noqa: E402

SKIP_NO_ACCELERATOR = "skipped: no accelerator (JAX backend is cpu)"



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
