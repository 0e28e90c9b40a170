#!/usr/bin/env bash
# Runs the whole test suite (after scripts/setup.sh --tests). Extra arguments go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure --timeout 900 "$@"
