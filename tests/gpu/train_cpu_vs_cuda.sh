#!/usr/bin/env bash
# A full training run of tiny llama, gpt2 and MoE configs on the CUDA backend
# against the same run on the CPU backend: same data, seed and config; the
# per-step losses must agree within bf16 tolerance and training must progress.
# llama-ragged is llama again with CAIRN_CUDA_ATTENTION=cudnn: its per-document
# masks (model.document_masking, on by default) run on cuDNN's ragged path.
# Usage: train_cpu_vs_cuda.sh CAIRN   (exit 77 when there is no usable GPU)
set -u
cairn=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
if ! "$cairn" --version | grep -q cuda; then echo "skipped: cairn built without CUDA"; exit 77; fi
if ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo "skipped: no GPU (nvidia-smi lists none)"
    exit 77
fi
python3 -c "
import random; random.seed(1)
w=[''.join(random.choice('abcdefghijklmnop') for _ in range(random.randint(2,8))) for _ in range(300)]
open('c.txt','w').write('\n\n'.join(' '.join(random.choice(w[:40+i%200]) for _ in range(80)) for i in range(600)))"
"$cairn" prepare --tokenizer bytes --output data c.txt 2>/dev/null || exit 1
failed=0
for arch in llama gpt2 moe llama-ragged; do
  attention=auto reference=cpu-$arch
  case $arch in
    llama) model="arch: llama, qk_norm: true, activation: swiglu" ;;
    llama-ragged) model="arch: llama, qk_norm: true, activation: swiglu"; attention=cudnn
                  reference=cpu-llama ;;  # the same run on the CPU
    gpt2) model="arch: gpt2" ;;
    moe) model="arch: llama, moe: {experts: 4, top_k: 2, ffn: 128, shared_experts: 1}" ;;
  esac
  cat >$arch.yaml <<YAML
run: {name: $arch, steps: 40, log_every: 1, eval_every: 0, seed: 3}
model: {$model, layers: 2, d_model: 128, heads: 4, kv_heads: $([ $arch = gpt2 ] && echo 4 || echo 2), ffn: 256, seq_len: 128}
train: {micro_batch: 4, global_batch: 8}
optim: {lr: 0.002, schedule: {kind: constant, warmup: 5}}
data: {tokenizer: bytes, sources: [{path: data}], valid: ""}
YAML
  if [ ! -d $reference ]; then
    "$cairn" train $arch.yaml --set device=cpu --set run.out_dir=$reference >/dev/null || { echo "$arch: cpu run failed"; failed=1; continue; }
  fi
  if ! CAIRN_CUDA_ATTENTION=$attention "$cairn" train $arch.yaml --set device=cuda --set train.precision=bf16 --set run.out_dir=cuda-$arch >cuda-$arch.log 2>&1; then
    cat cuda-$arch.log; echo "$arch: cuda run failed"; failed=1; continue
  fi
  # cuDNN says on stderr when a call it was asked for ran on the flash kernels instead
  if [ $attention = cudnn ] && grep -E "cuDNN attention (unavailable|was asked for)" cuda-$arch.log; then
    echo "$arch: FAIL: cuDNN did not run every attention call"; failed=1
  fi
  python3 - "$arch" "$reference" <<'PY' || failed=1
import json, sys
arch, reference = sys.argv[1:3]
cpu = [json.loads(l) for l in open(f"{reference}/metrics.jsonl")]
gpu = [json.loads(l) for l in open(f"cuda-{arch}/metrics.jsonl")]
worst = max(abs(a["loss"] - b["loss"]) / a["loss"] for a, b in zip(cpu, gpu))
first = abs(cpu[0]["loss"] - gpu[0]["loss"]) / cpu[0]["loss"]
ok = len(cpu) == len(gpu) == 40 and first < 0.01 and worst < 0.05 and gpu[-1]["loss"] < gpu[0]["loss"] - 1.0
print(f"{arch}: cpu {cpu[0]['loss']:.4f}->{cpu[-1]['loss']:.4f} cuda {gpu[0]['loss']:.4f}->{gpu[-1]['loss']:.4f} "
      f"step-1 rel diff {first:.2e}, worst step rel diff {worst:.2e}, cuda tok/s {gpu[-1]['tok_per_s']:.0f} "
      f"mfu {gpu[-1]['mfu']} -> {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
done
exit $failed
