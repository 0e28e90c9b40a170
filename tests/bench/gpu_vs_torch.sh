#!/usr/bin/env bash
# cairn's CUDA backend next to the PyTorch peer (shared/bench/torch_ref.py, same shapes, same
# GPU, same run): tokens/s, MFU and peak memory per model.
# Usage: gpu_vs_torch.sh CAIRN TORCH_REF.py [MODEL...]
#   models: gpt2-124m gpt2-350m llama-1b moe-8x-gmm (default: all four)
#   PEERS="compile eager" (default; PEERS= runs cairn alone) chooses the PyTorch variants;
#   STEPS (default 10) the timed steps of each run. Not a test: prints a table for
#   docs/benchmarks.md.
# Rough cost on one H100 (estimated from the 2026-11 runs): cairn 20-40 s a model, torch eager
# about as long, torch.compile 1-2 min a model (compilation): all four models with both peers
# take ~10 min; fewer models or PEERS=compile fit a 15-minute lease beside the checks.
set -u
cairn=$(realpath "$1")
torch_ref=$(realpath "$2")
shift 2
models=${*:-gpt2-124m gpt2-350m llama-1b moe-8x-gmm}
peers=${PEERS-compile eager}
steps=${STEPS:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
# random-token datasets in the Megatron layout (the peer trains on random tokens too)
python3 - <<'PY'
import numpy as np, struct
def write(prefix, vocab, docs=64, length=70000):
    dtype, code = (np.uint16, 8) if vocab < 65500 else (np.int32, 4)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, vocab, size=docs * length, dtype=np.int64).astype(dtype)
    tokens.tofile(prefix + ".bin")
    lengths = np.full(docs, length, np.int32)
    pointers = np.arange(docs, dtype=np.int64) * length * tokens.itemsize
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, code, docs, docs + 1))
        f.write(lengths.tobytes()); f.write(pointers.tobytes()); f.write(np.arange(docs + 1, dtype=np.int64).tobytes())
write("v50304", 50304); write("v128256", 128256)
PY
echo "device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
echo "date: $(date -u +%Y-%m-%d) cairn: $("$cairn" --version | head -1)"
row() { printf "%-12s %-22s %12s %8s %9s\n" "$@"; }
row model peer tok/s MFU mem_GiB
for m in $models; do
    # cairn's shape and batch for the peer's (torch_ref.py's CFGS): B×T per step, micro-batch
    case $m in
        gpt2-124m) shape="arch: gpt2, layers: 12, d_model: 768, heads: 12, kv_heads: 12, ffn: 3072, vocab: 50304, seq_len: 1024"
                   B=64 T=1024 micro=16 data=v50304 ;;
        gpt2-350m) shape="arch: gpt2, layers: 24, d_model: 1024, heads: 16, kv_heads: 16, ffn: 4096, vocab: 50304, seq_len: 1024"
                   B=32 T=1024 micro=16 data=v50304 ;;
        llama-1b) shape="arch: llama, layers: 16, d_model: 2048, heads: 32, kv_heads: 8, ffn: 8192, vocab: 128256, seq_len: 4096, rope_theta: 500000"
                  B=4 T=4096 micro=4 data=v128256 ;;
        moe-8x-gmm) shape="arch: llama, layers: 12, d_model: 1024, heads: 16, kv_heads: 8, ffn: 2816, vocab: 50304, seq_len: 2048, rope_theta: 500000, moe: {experts: 8, top_k: 2, ffn: 2816, aux_loss_coef: 0, z_loss_coef: 0}"
                    B=8 T=2048 micro=8 data=v50304 ;;
        *) row "$m" "unknown model" - - -; continue ;;
    esac
    cat >"$m.yaml" <<YAML
run: {name: $m, out_dir: out-$m, steps: $((steps + 4)), log_every: 1, eval_every: 0}
model: {$shape, document_masking: false, tie_embeddings: true}
train: {micro_batch: $micro, global_batch: $B, precision: bf16, grad_clip: 1.0}
optim: {lr: 0.0003, schedule: {kind: constant, warmup: 0}}
data: {tokenizer: "", sources: [{path: $data}], valid: ""}
checkpoint: {every: 0, at_end: false}
device: cuda
YAML
    if "$cairn" train "$m.yaml" >"$m.log" 2>&1; then
        python3 - "$m" <<'PY'
import json, sys, statistics
m = sys.argv[1]
rows = [json.loads(l) for l in open(f"out-{m}/metrics.jsonl")][4:]
tok = statistics.median(r["tok_per_s"] for r in rows); mfu = statistics.median(r["mfu"] for r in rows)
mem = max(r["peak_memory_bytes"] for r in rows) / 2**30
print(f"{m:<12} {'cairn cuda':<22} {tok:12.0f} {mfu:8.3f} {mem:9.1f}")
PY
    else
        row "$m" "cairn cuda" FAILED "-" "-"
        tail -5 "$m.log"
    fi
    for peer in $peers; do
        compile=0
        [ "$peer" = compile ] && compile=1
        out=$(python3 "$torch_ref" "$m" "$B" "$T" "$steps" "$compile" 2>"torch-$m-$peer.err" | tail -1)
        python3 -c "
import json,sys; r=json.loads(sys.argv[1])
print(f\"{r['model']:<12} {'torch '+('compile' if r['compile'] else 'eager'):<22} {r['tok_s']:12.0f} {r['mfu_989']:8.3f} {r['mem_gb']:9.1f}\")" "$out" 2>/dev/null ||
            { row "$m" "torch $peer" FAILED - -; tail -3 "torch-$m-$peer.err"; }
    done
done
