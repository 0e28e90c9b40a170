#!/usr/bin/env bash
# Sets up a fresh Debian 12 / Ubuntu 24.04 machine for cairn and builds it.
#   scripts/setup.sh           system packages for building and training (with a CUDA toolkit also
#                              the cudnn-frontend headers, into build/deps/), then build/
#   scripts/setup.sh --tests   also what the test suite needs (PyTorch CPU, h5py, numpy)
# Safe to run again: installed packages are skipped and the build is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
for arg in "$@"; do
  case "$arg" in
    --tests) want_tests=1 ;;
    *) echo "usage: scripts/setup.sh [--tests]" >&2; exit 2 ;;
  esac
done

packages=(build-essential cmake pkg-config git libopenmpi-dev openmpi-bin libhdf5-dev libyaml-dev
          libopenblas-dev zlib1g-dev libpcre2-dev)
# CUDA: built when the toolkit is there (nvcc on PATH or in /usr/local/cuda). Its cuDNN attention
# needs the cudnn-frontend headers, fetched from PyPI with pip (scripts/fetch-cudnn-frontend.sh).
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
have_nvcc=0
if command -v nvcc >/dev/null 2>&1; then
  have_nvcc=1
  packages+=(python3 python3-pip)
fi
# The default corpus: Debian's fortune files in many languages (some are missing on some releases).
fortunes=(fortunes fortunes-de fortunes-es fortunes-it fortunes-ru fortunes-zh fortunes-pl
          fortunes-cs fortunes-br fortunes-bg fortunes-eo fortunes-ga fortunes-min)
test_packages=(python3 python3-venv python3-pip python3-numpy python3-torch python3-h5py
               debootstrap skopeo umoci jq squashfs-tools slurm-wlm munge shellcheck)

missing=()
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
if [ "$want_tests" = 1 ]; then
  for p in "${test_packages[@]}"; do installed "$p" || missing+=("$p"); done
fi
optional=()
for p in "${fortunes[@]}"; do installed "$p" || optional+=("$p"); done

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
if [ ${#missing[@]} -gt 0 ] || [ ${#optional[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  for p in "${optional[@]}"; do
    if apt-cache show "$p" >/dev/null 2>&1; then
      $sudo apt-get install -y -qq --no-install-recommends "$p" >/dev/null || echo "setup: $p not installed"
    fi
  done
fi

# Test-only Python libraries from PyPI (reference tokenizers, transformers, megatron-core) in .venv,
# on top of Debian's PyTorch, numpy and h5py.
if [ "$want_tests" = 1 ]; then
  mkdir -p build
  if [ ! -x .venv/bin/python ]; then /usr/bin/python3 -m venv --system-site-packages .venv; fi
  if ! .venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt \
       >build/venv.log 2>&1 || ! .venv/bin/pip install -q --disable-pip-version-check --no-deps \
       megatron-core==0.16.1 >>build/venv.log 2>&1; then
    tail -n 20 build/venv.log >&2
    echo "setup: installing the test Python packages failed (log: build/venv.log)" >&2
    exit 1
  fi
fi

mkdir -p build
if [ "$have_nvcc" = 1 ] && ! scripts/fetch-cudnn-frontend.sh; then
  echo "setup: no cudnn-frontend headers: the CUDA backend is built without cuDNN attention" >&2
fi
if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"$(nproc)"; } >build/build.log 2>&1; then
  tail -n 40 build/build.log >&2
  echo "setup: build failed (full log: build/build.log)" >&2
  exit 1
fi
grep -E "warning:" build/build.log || true
echo "setup: built $(build/cairn --version | head -1)"
