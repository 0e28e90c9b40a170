#!/usr/bin/env bash
# Step time of a small llama on cairn's CPU backend next to the PyTorch CPU peer
# with the same shapes, in one run. Usage: tests/bench/cpu_vs_torch.sh [build/cairn]
# Not a test: prints numbers for docs/benchmarks.md.
set -euo pipefail
cairn=$(realpath "${1:-build/cairn}")
here=$(dirname "$(realpath "$0")")
L=4 D=256 H=8 KV=4 FFN=704 B=8 T=256 STEPS=15
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
python3 -c "
import random; random.seed(0)
w=[''.join(random.choice('abcdefghij klmnop') for _ in range(random.randint(3,9))) for _ in range(500)]
open('c.txt','w').write('\n\n'.join(' '.join(random.choice(w) for _ in range(200)) for _ in range(300)))"
"$cairn" prepare --tokenizer bytes --output data c.txt 2>/dev/null
cat >bench.yaml <<YAML
run: {name: bench, out_dir: out, steps: $((STEPS + 3)), log_every: 1}
model: {arch: llama, layers: $L, d_model: $D, heads: $H, kv_heads: $KV, ffn: $FFN, seq_len: $T, document_masking: false}
train: {micro_batch: $B, global_batch: $B, grad_clip: 1.0}
optim: {schedule: {kind: constant, warmup: 0}}
data: {tokenizer: bytes, sources: [{path: data}], valid: ""}
YAML
"$cairn" train bench.yaml >/dev/null
cairn_ms=$(python3 -c "
import json; m=[json.loads(l) for l in open('out/metrics.jsonl')][3:]
print(sum($B*$T/x['tok_per_s'] for x in m)/len(m)*1e3)")
peer=$(/usr/bin/python3 "$here/torch_cpu_peer.py" $L $D $H $KV $FFN 258 $B $T $STEPS)
python3 - "$cairn_ms" "$peer" <<PY
import json, sys
cairn_ms = float(sys.argv[1]); peer = json.loads(sys.argv[2])
print(f"shape: llama L$L d$D H$H KV$KV ffn$FFN V258 B$B T$T (fp32, AdamW, clip)")
print(f"cairn cpu : {cairn_ms:8.1f} ms/step  {$B*$T/cairn_ms*1e3:8.0f} tok/s")
print(f"pytorch {peer['version']} ({peer['threads']} threads): {peer['step_ms']:8.1f} ms/step  {peer['tok_s']:8.0f} tok/s")
print(f"ratio (pytorch time / cairn time): {peer['step_ms']/cairn_ms:.2f}")
PY
