#!/usr/bin/env bash
# Accelerator check in one command (GPU VM or Cloud TPU VM, under 10 minutes):
#
#   bash benchmarks/accelerator_check.sh [--dry-run] [--no-install] [--platform auto|gpu|tpu]
#        [--cuda 12|13] [accelerator_check.py flags, e.g. --json out.json]
#
# 1. creates .venv (`make venv`) when it does not exist;
# 2. detects the accelerator: `nvidia-smi -L` lists a GPU -> "jax[cuda12]" (or "jax[cuda13]"
#    when the driver reports CUDA >= 13); /dev/accel* or a Google TPU PCI device (vendor 1ae0)
#    or TPU_NAME / TPU_ACCELERATOR_TYPE in the environment -> "jax[tpu]";
# 3. installs that extra at the version pinned in requirements.txt, unless JAX already sees
#    the accelerator (`jax.default_backend()` is gpu / tpu) or --no-install is given;
# 4. runs benchmarks/accelerator_check.py with the remaining flags (default JSON:
#    accelerator_check.json), JAX_PLATFORMS unset (the Makefile's "cpu" would hide the
#    accelerator) and XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 unless set.
#
# --dry-run prints every command it would run (the install included) and runs none of them.
# Environment: PYTHON (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dry=0
install=1
platform=auto
cuda=auto
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --no-install) install=0 ;;
    --platform) platform="$2"; shift ;;
    --cuda) cuda="$2"; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) args+=("$1") ;;
  esac
  shift
done
case "$platform" in auto|gpu|tpu|cpu) ;; *) echo "--platform: auto, gpu, tpu or cpu, not '$platform'" >&2; exit 2 ;; esac
case "$cuda" in auto|12|13) ;; *) echo "--cuda: auto, 12 or 13, not '$cuda'" >&2; exit 2 ;; esac

run() {
  echo "+ $*"
  if [[ $dry == 0 ]]; then "$@"; fi
}

py="${PYTHON:-.venv/bin/python}"
if [[ ! -x "$py" ]] && ! command -v "$py" >/dev/null 2>&1; then
  run make venv
  py=.venv/bin/python
fi
jax_version="$(sed -n 's/^jax==\([^ #]*\).*/\1/p' requirements.txt)"
if [[ -z "$jax_version" ]]; then
  echo "requirements.txt pins no jax version (jax==X.Y.Z)" >&2
  exit 2
fi
unset JAX_PLATFORMS
# GPU: let XLA's allocator take 90% of the device memory (default 75%), so the largest batch
# that fits is found against most of the memory.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"

# --------------------------------------------------------------------------- detection
if [[ $platform == auto ]]; then
  platform=cpu
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    platform=gpu
  elif compgen -G "/dev/accel*" >/dev/null || [[ -n "${TPU_NAME:-}${TPU_ACCELERATOR_TYPE:-}" ]] \
      || { command -v lspci >/dev/null 2>&1 && [[ -n "$(lspci -d 1ae0: 2>/dev/null)" ]]; }; then
    platform=tpu
  fi
fi
extra=""
case "$platform" in
  gpu)
    if [[ $cuda == auto ]]; then
      cuda=12
      driver_cuda="$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9]*\).*/\1/p' | head -n1 || true)"
      if [[ -n "$driver_cuda" && "$driver_cuda" -ge 13 ]]; then cuda=13; fi
    fi
    extra="cuda$cuda" ;;
  tpu) extra="tpu" ;;
esac
echo "accelerator: $platform${extra:+ (JAX extra: jax[$extra]==$jax_version)}"

# --------------------------------------------------------------------------- install
if [[ -z "$extra" ]]; then
  echo "no GPU or TPU found: nothing to install; the accelerator-only parts will be skipped"
elif [[ $install == 0 ]]; then
  echo "--no-install: using the installed JAX as it is"
else
  backend=none
  if [[ -x "$py" ]] || command -v "$py" >/dev/null 2>&1; then
    backend="$("$py" -c 'import jax; print(jax.default_backend())' 2>/dev/null || echo none)"
  fi
  if [[ "$backend" == "$platform" ]]; then
    echo "JAX already sees the $platform: no install"
  else
    echo "JAX backend is '$backend', not '$platform': installing jax[$extra]==$jax_version"
    run "$py" -m pip install --quiet "jax[$extra]==$jax_version"
  fi
fi

# --------------------------------------------------------------------------- run
json_given=0
for a in "${args[@]+"${args[@]}"}"; do
  if [[ "$a" == --json || "$a" == --json=* ]]; then json_given=1; fi
done
if [[ $json_given == 0 ]]; then args+=(--json accelerator_check.json); fi
run "$py" benchmarks/accelerator_check.py "${args[@]}"
