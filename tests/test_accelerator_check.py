"""benchmarks/accelerator_check.{py,sh}: the GPU/TPU check, tested on the CPU.

The .py runs once with --tiny (small R(2+1)D variant, 4x32x32 clips, a tiny captioner) in a
subprocess: the encoder train step and extraction, the input pipeline, the correctness
comparison (CPU against CPU via --cpu-self-check, the accelerator being absent) and the
captioner's train step and inference must produce the JSON fields and the skip messages; a
second run with every part skipped checks --skip. The .sh is checked with `bash -n` and its
--dry-run install decisions (a fake nvidia-smi on PATH).
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import accelerator_check as ac
from benchmarks.accelerator import measure

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT_PY = REPO / "benchmarks" / "accelerator_check.py"
SCRIPT_SH = REPO / "benchmarks" / "accelerator_check.sh"


# ----------------------------------------------------------------------------- helpers
@pytest.mark.parametrize("kind,name,tflops", [
    ("NVIDIA H200", "H200 SXM", 989), ("NVIDIA H100 80GB HBM3", "H100 SXM", 989),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756), ("NVIDIA A100-SXM4-80GB", "A100", 312),
    ("NVIDIA L4", "L4", 121), ("TPU v4", "TPU v4", 275), ("TPU v5 lite", "TPU v5e", 197),
    ("TPU v5e", "TPU v5e", 197), ("TPU v5", "TPU v5p", 459), ("TPU v5p", "TPU v5p", 459),
    ("TPU v6 lite", "TPU v6e", 918), ("NVIDIA L40S", "", None), ("cpu", "", None)])
def test_device_peak_table(kind, name, tflops):
    peak, got = measure.device_peak(kind)
    assert got == name
    assert peak == (tflops * 1e12 if tflops else None)


def test_compare_trees():
    a = {"w": np.array([1.0, 2.0]), "b": {"c": np.float32(3.0)}}
    ok = measure.compare_trees(a, {"w": np.array([1.0, 2.001]), "b": {"c": np.float32(3.0)}},
                          rtol=1e-3, atol=0.0)
    assert ok["ok"] and ok["leaves"] == 2 and ok["max_abs_diff"] == pytest.approx(1e-3)
    bad = measure.compare_trees(a, {"w": np.array([1.0, 2.0]), "b": {"c": np.float32(3.1)}},
                           rtol=1e-3, atol=1e-6)
    assert not bad["ok"] and bad["worst_leaf"] == "['b']['c']"
    nan = measure.compare_trees(a, {"w": np.array([1.0, np.nan]), "b": {"c": np.float32(3.0)}},
                           rtol=1.0, atol=1.0)
    assert not nan["ok"] and nan["worst_leaf"] == "['w']"
    with pytest.raises(ValueError, match="structure"):
        measure.compare_trees(a, {"w": np.zeros(2)}, rtol=1e-3, atol=0.0)


class _FakeCompiled:
    def __init__(self, need):
        self.need = need

    def memory_analysis(self):
        if self.need is None:  # as on backends without a memory analysis
            return None

        class M:  # CompiledMemoryStats' fields used by memory_need
            argument_size_in_bytes = self.need
            output_size_in_bytes = 0
            temp_size_in_bytes = 0
            alias_size_in_bytes = 0
        return M()


def test_fit_batch_descends_past_out_of_memory():
    compiled = []

    def compile_fn(b):
        compiled.append(b)
        if b >= 8:
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate")
        return _FakeCompiled(None)

    b, result, notes = measure.fit_batch((2, 16, 4, 8), compile_fn, lambda b, c: {"b": b},
                                    limit=None, probe=True)
    assert (b, result) == (4, {"b": 4}) and compiled == [16, 8, 4]
    assert len(notes) == 2 and "out of memory" in notes[0]

    def broken(b):
        raise ValueError("a bug, not memory")

    with pytest.raises(ValueError, match="a bug"):
        measure.fit_batch((4, 2), broken, lambda b, c: {}, limit=None, probe=False)


def test_fit_batch_memory_probe_skips_batches_that_cannot_fit():
    # 1 GiB batch-free + 1 GiB per clip; limit 10 GiB; the probe compiles batch 8 (9 GiB).
    gib = 2 ** 30
    compiled = []

    def compile_fn(b):
        compiled.append(b)
        return _FakeCompiled((1 + b) * gib)

    b, _, notes = measure.fit_batch((1, 2, 4, 8, 16), compile_fn, lambda b, c: {},
                               limit=10 * gib, probe=True, fixed_bytes=gib)
    # Estimate 1 GiB + 1 GiB x b <= 8.5 GiB keeps 1, 2, 4: batch 16 is never compiled.
    assert b == 4 and compiled == [8, 4]
    assert sum("not tried" in n for n in notes) == 2
    # A compiled candidate over the limit by its own memory analysis is not run.
    ran = []
    b, _, notes = measure.fit_batch((4, 16), compile_fn, lambda b, c: ran.append(b) or {},
                               limit=10 * gib, probe=False)
    assert b == 4 and ran == [4] and "needs 17.0 GiB" in notes[0]


# ----------------------------------------------------------------------------- the .py
def _run_tiny(out: pathlib.Path, *flags: str) -> tuple[dict, str]:
    """Runs the .py with --tiny and `flags`; -> (its JSON, its stdout)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    # One CPU device, as a user's machine has (conftest gives this process 8), and, this being
    # a plumbing test, LLVM's cheapest optimisation level (its compile time is what counts).
    kept = [f for f in env.get("XLA_FLAGS", "").split()
            if not f.startswith(("--xla_force_host_platform_device_count",
                                 "--xla_backend_optimization_level"))]
    env["XLA_FLAGS"] = " ".join(kept + ["--xla_backend_optimization_level=0",
                                        "--xla_llvm_disable_expensive_passes=true"])
    proc = subprocess.run(
        [sys.executable, str(SCRIPT_PY), "--tiny", *flags, "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("accel") / "check.json"
    return _run_tiny(out, "--dtype", "float32", "--cpu-self-check")


def test_tiny_run_json_fields(tiny_run):
    r, _ = tiny_run
    assert r["tiny"] and r["backend"] == "cpu" and not r["accelerator"]
    assert r["peak_source"].startswith("measured") and r["peak_flops_per_device"] > 0
    assert r["matmul_bf16_flops_per_device"] == r["peak_flops_per_device"]
    assert r["machine"]["xla_matmul_gflops"] > 0
    tr = r["encoder_train"]
    assert tr["status"] == "ok" and tr["variant"] == "small" and tr["clip"] == [4, 32, 32, 3]
    assert tr["global_batch"] == 4  # the largest of the tiny candidates (4, 2)
    assert tr["compute_dtype"] == "float32" and tr["param_dtype"] == "float32"
    assert isinstance(tr["conv_impl"], str)  # the model's default lowering
    assert tr["remat"] == "none"  # the default: every activation kept
    assert tr["loss_finite"] and tr["clips_per_s"] > 0
    assert tr["tflops"] > 0 and 0 < tr["mfu"] and tr["flops_per_clip"] > 0
    ex = r["encoder_extract"]
    assert ex["status"] == "ok" and ex["clips_per_s"] > 0 and ex["flops_per_clip"] > 0
    # training costs about 3x the forward FLOPs of a clip
    assert 2 < tr["flops_per_clip"] / ex["flops_per_clip"] < 5
    ip = r["input_pipeline"]
    assert ip["status"] == "ok" and ip["clips"] > 0 and ip["clips_per_core_s"] > 0
    assert ip["cores_to_keep_up_with_train"] == pytest.approx(
        tr["clips_per_s"] / ip["clips_per_core_s"])
    cr = r["correctness"]
    assert cr["status"] == "ok" and cr["self_check"] and cr["leaves"] > 10
    assert cr["max_abs_diff"] == 0.0  # the same device twice


def test_tiny_run_captioner_fields(tiny_run):
    r, stdout = tiny_run
    (tr,) = r["captioner_train"]["batches"]  # TINY: one batch size (2)
    (inf,) = r["captioner_infer"]["batches"]
    assert r["captioner_train"]["status"] == "ok" and r["captioner_infer"]["status"] == "ok"
    for row in (tr, inf):
        assert row["global_batch"] == 2 and row["videos_per_s"] > 0 and row["compile_s"] > 0
        assert row["tflops"] > 0 and 0 < row["mfu"]
    assert tr["seconds_per_step"] == pytest.approx(2 / tr["videos_per_s"])
    assert inf["caption_tokens"] == 16  # TINY.caption_len
    # a train step (forward with matching costs, backward, update) costs more than greedy
    # decoding of the same batch
    assert tr["tflops"] * tr["seconds_per_step"] > inf["tflops"] * inf["seconds_per_batch"]
    assert "[captioner] batch 2: train " in stdout and "| inference " in stdout


def test_skip_runs_no_part(tmp_path):
    parts = ("encoder", "captioner", "input_pipeline", "correctness")
    r, stdout = _run_tiny(tmp_path / "skip.json", "--skip", ",".join(parts))
    assert all(r["skipped"][p] == "skipped: --skip" for p in parts)
    assert not {"encoder_train", "encoder_extract", "captioner_train", "captioner_infer",
                "input_pipeline", "correctness"} & set(r)
    assert "running" not in stdout


def test_tiny_run_skip_messages(tiny_run):
    r, stdout = tiny_run
    assert "captioner" not in r["skipped"]
    for key in ("correctness", "mfu_vs_device_peak"):
        assert r["skipped"][key].startswith(ac.SKIP_NO_ACCELERATOR)
    assert f"[correctness] {ac.SKIP_NO_ACCELERATOR}" in stdout
    assert "[encoder_train] small 4x32x32 float32 (conv " in stdout
    assert "host cores" in stdout


# ----------------------------------------------------------------------------- the .sh
def _sh(args, tmp_path, nvidia_smi_cuda=None, backend="cpu"):
    """Runs the .sh with --dry-run; `python` is a stand-in whose only real call in a dry run
    (`-c 'import jax; print(jax.default_backend())'`) answers `backend`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TPU_")}
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    if nvidia_smi_cuda:
        smi = fake / "nvidia-smi"
        smi.write_text("#!/bin/sh\n"
                       'if [ "$1" = "-L" ]; then echo "GPU 0: NVIDIA H200 (UUID: GPU-0)"; '
                       "exit 0; fi\n"
                       f'echo "| NVIDIA-SMI 580.1  Driver Version: 580.1  CUDA Version: '
                       f'{nvidia_smi_cuda} |"\n')
        smi.chmod(0o755)
        env["PATH"] = f"{fake}:{env['PATH']}"
    python = fake / "python"
    python.write_text(f"#!/bin/sh\necho {backend}\n")
    python.chmod(0o755)
    env["PYTHON"] = str(python)
    proc = subprocess.run(["bash", str(SCRIPT_SH), "--dry-run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.replace(str(python), "PY")


def test_shell_script_syntax():
    subprocess.run(["bash", "-n", str(SCRIPT_SH)], check=True, timeout=30)


def test_shell_script_dry_run_installs(tmp_path):
    pinned = next(line.split("==")[1].strip() for line in
                  (REPO / "requirements.txt").read_text().splitlines()
                  if line.startswith("jax=="))
    out = _sh(["--tiny"], tmp_path, nvidia_smi_cuda="12.8")
    assert f"+ PY -m pip install --quiet jax[cuda12]=={pinned}" in out
    assert "+ PY benchmarks/accelerator_check.py --tiny --json accelerator_check.json" in out
    out = _sh(["--json", "x.json"], tmp_path, nvidia_smi_cuda="13.0")
    assert f"jax[cuda13]=={pinned}" in out and out.count("--json") == 1
    out = _sh([], tmp_path, nvidia_smi_cuda="12.8", backend="gpu")
    assert "JAX already sees the gpu: no install" in out and "pip install" not in out
    out = _sh(["--platform", "tpu", "--no-install"], tmp_path)
    assert "--no-install" in out and "pip install" not in out
    out = _sh(["--platform", "tpu"], tmp_path)
    assert f"+ PY -m pip install --quiet jax[tpu]=={pinned}" in out
    out = _sh(["--platform", "cpu"], tmp_path)
    assert "nothing to install" in out and "pip install" not in out
    assert "+ PY benchmarks/accelerator_check.py --json accelerator_check.json" in out
