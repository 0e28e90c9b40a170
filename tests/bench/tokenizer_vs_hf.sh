#!/usr/bin/env bash
# Single-core encoding throughput of cairn's tokenizer.json support next to Hugging Face
# tokenizers and tiktoken, on the same text and tokenizer.json files, in one table.
# Usage: tests/bench/tokenizer_vs_hf.sh [build/tests/tokenize_text] [TOKENIZER_JSON...]
# Without tokenizer files it trains GPT-2- and Llama-3-style tokenizers (50k, 128k tokens) on the
# fortune corpus (tokenizer_vs_hf.py says how). Not a test: prints numbers for docs/benchmarks.md.
set -euo pipefail
here=$(dirname "$(realpath "$0")")
root=$(realpath "$here/../..")
tool=$(realpath "${1:-$root/build/tests/tokenize_text}")
shift || true
python=$root/.venv/bin/python
[ -x "$python" ] || python=/usr/bin/python3
RAYON_NUM_THREADS=1 exec "$python" "$here/tokenizer_vs_hf.py" "$tool" "$@"
