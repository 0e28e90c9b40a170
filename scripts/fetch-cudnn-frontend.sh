#!/usr/bin/env bash
# Fetches the cudnn-frontend C++ headers (header-only; cuDNN attention in kernels/cuda/) into
# DEST/include:   scripts/fetch-cudnn-frontend.sh [DEST]     (default build/deps/cudnn-frontend)
# They come from NVIDIA's PyPI wheel nvidia-cudnn-frontend, which ships them under include/: one
# pinned wheel, checked against its SHA-256, whatever this machine's Python or architecture (the
# headers are the same in every wheel). Needs python3 with pip; nothing is installed. Does nothing
# when DEST already holds this version.
set -euo pipefail
cd "$(dirname "$0")/.."

version=1.32.0
wheel=nvidia_cudnn_frontend-${version}-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
sha256=c6006556017a4d1c914c52a556c71b1267f2d6a0500f742e7b4edef539878df0
dest=${1:-build/deps/cudnn-frontend}

if [ "$(cat "$dest/version" 2>/dev/null)" = "$version" ] && [ -f "$dest/include/cudnn_frontend.h" ]; then
    exit 0
fi
mkdir -p "$dest"
download=$(mktemp -d "$dest/download.XXXXXX")
trap 'rm -rf "$download"' EXIT
if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
        --dest "$download" "nvidia-cudnn-frontend==$version" >"$download/pip.log" 2>&1; then
    cat "$download/pip.log" >&2
    echo "fetch-cudnn-frontend: pip download of nvidia-cudnn-frontend==$version failed" >&2
    exit 1
fi
if ! echo "$sha256  $download/$wheel" | sha256sum --check --status; then
    echo "fetch-cudnn-frontend: $wheel does not have the pinned SHA-256" >&2
    exit 1
fi
# only include/ of the wheel (zipfile: no unzip on a plain Debian); swapped in whole
python3 - "$download/$wheel" "$download/unpacked" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    wheel.extractall(sys.argv[2], [n for n in wheel.namelist() if n.startswith("include/")])
EOF
rm -rf "$dest/include"
mv "$download/unpacked/include" "$dest/include"
echo "$version" >"$dest/version"
echo "fetch-cudnn-frontend: cudnn-frontend $version headers in $dest/include"
