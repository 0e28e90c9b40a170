#!/usr/bin/env bash
# Training on the CUDA backend beyond one uninterrupted rank:
#  - resume: 20 steps straight against a run that starts from the straight run's step-10
#    checkpoint (same layout): the resumed steps must repeat the straight run's losses within
#    bf16 nondeterminism;
#  - parallel layouts with several ranks on one GPU (parallel.comm auto takes MPI through host
#    buffers, since NCCL refuses two ranks on one GPU): dp2, tp2, pp2, tp2×pp2 on llama and ep2,
#    tp2×ep2 on MoE, each against the single-rank CUDA run of the same config.
# Usage: train_layouts.sh CAIRN   (exit 77 when cairn has no CUDA; MPIRUN overrides mpirun;
# DEVICE=cpu runs the same checks on the CPU backend, which is how the script itself is tested)
set -u
cairn=$(realpath "$1")
mpirun=${MPIRUN:-mpirun}
device=${DEVICE:-cuda}
expected_comm="mpi (host-staged)"
[ "$device" = cpu ] && expected_comm=mpi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
if [ "$device" = cuda ] && ! "$cairn" --version | grep -q cuda; then
    echo "skipped: cairn built without CUDA"
    exit 77
fi
if [ "$device" = cuda ] && ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo "skipped: no GPU (nvidia-smi lists none)"
    exit 77
fi
python3 -c "
import random; random.seed(2)
w=[''.join(random.choice('abcdefghijklmnop') for _ in range(random.randint(2,8))) for _ in range(300)]
open('c.txt','w').write('\n\n'.join(' '.join(random.choice(w[:40+i%200]) for _ in range(80)) for i in range(600)))"
"$cairn" prepare --tokenizer bytes --output data c.txt >/dev/null 2>&1 || { echo "prepare failed"; exit 1; }

model_of() {
    case $1 in
        llama) echo "arch: llama, layers: 4, d_model: 128, heads: 4, kv_heads: 2, ffn: 256, seq_len: 128" ;;
        moe) echo "arch: llama, layers: 2, d_model: 128, heads: 4, kv_heads: 2, ffn: 256, seq_len: 128, moe: {experts: 4, top_k: 2, ffn: 128}" ;;
    esac
}
for arch in llama moe; do
    cat >$arch.yaml <<YAML
run: {name: $arch, steps: 20, log_every: 1, eval_every: 0, seed: 5}
model: {$(model_of $arch)}
train: {micro_batch: 2, global_batch: 8, precision: bf16}
optim: {lr: 0.002, schedule: {kind: cosine, warmup: 4}}
data: {tokenizer: bytes, sources: [{path: data}], valid: ""}
checkpoint: {every: 10, keep: 0}
device: $device
YAML
done

# compare REFERENCE_DIR OTHER_DIR FIRST_STEP TOLERANCE LABEL: losses of steps >= FIRST_STEP
compare() {
    python3 - "$@" <<'PY'
import json, sys
ref_dir, other_dir, first, tolerance, label = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
ref = {m["step"]: m for m in map(json.loads, open(f"{ref_dir}/metrics.jsonl"))}
other = {m["step"]: m for m in map(json.loads, open(f"{other_dir}/metrics.jsonl"))}
steps = [s for s in sorted(ref) if s >= first]
missing = [s for s in steps if s not in other]
worst = max((abs(ref[s]["loss"] - other[s]["loss"]) / ref[s]["loss"] for s in steps if s in other), default=float("inf"))
ok = not missing and worst <= tolerance
print(f"{label}: steps {steps[0]}-{steps[-1]}, worst relative loss difference {worst:.2e} "
      f"(bound {tolerance:g}){', missing steps %s' % missing if missing else ''} -> {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
}

failed=0
for arch in llama moe; do
    "$cairn" train $arch.yaml --set run.out_dir=one-$arch >one-$arch.log 2>&1 ||
        { tail -5 one-$arch.log; echo "$arch: single-rank run failed"; failed=1; continue; }
    # resume: a fresh run from the straight run's step-10 checkpoint
    "$cairn" train $arch.yaml --set run.out_dir=resume-$arch \
        --set checkpoint.resume=one-$arch/checkpoints/step-00000010.h5 >resume-$arch.log 2>&1 ||
        { tail -5 resume-$arch.log; echo "$arch: resumed run failed"; failed=1; }
    if grep -q "resuming from" resume-$arch.log; then
        compare one-$arch resume-$arch 11 0.005 "$arch resume at step 10" || failed=1
    else
        echo "$arch resume: the second run did not resume -> FAIL"; failed=1
    fi
done

# layouts: NAME RANKS ARCH SETTINGS...
layout() {
    local name=$1 ranks=$2 arch=$3
    shift 3
    local sets=()
    for s in "$@"; do sets+=(--set "$s"); done
    if ! "$mpirun" --oversubscribe -np "$ranks" "$cairn" train $arch.yaml --set run.out_dir=$name \
        --set checkpoint.at_end=false --set checkpoint.every=0 "${sets[@]}" >$name.log 2>&1; then
        tail -5 $name.log; echo "$name: failed"; failed=1; return
    fi
    grep -q "\"comm\": \"$expected_comm\"" $name/run.json ||
        { echo "$name: run.json does not record the communicator \"$expected_comm\" -> FAIL"; failed=1; }
    compare one-$arch $name 1 0.02 "$name ($ranks ranks on one GPU)" || failed=1
}
layout llama-dp2 2 llama
layout llama-tp2 2 llama parallel.tp=2
layout llama-pp2 2 llama parallel.pp=2
layout llama-tp2-pp2 4 llama parallel.tp=2 parallel.pp=2
layout llama-dp2-zero1 2 llama parallel.zero=1
layout moe-ep2 2 moe parallel.ep=2
layout moe-tp2-ep2 4 moe parallel.tp=2 parallel.ep=2
exit $failed
