#!/usr/bin/env bash
# The Goldfish memorization example (README.md beside this script): builds the document sets,
# trains examples/goldfish/goldfish.yaml without Goldfish and with each Goldfish setting below,
# measures verbatim recall and held-out loss, and writes results.json, results.md (the table)
# and goldfish.svg (the plot) into the work folder.
#
# usage: examples/goldfish/run.sh [WORK_DIR]      (default: runs/goldfish)
# environment: CAIRN (default: build/cairn of this checkout), PYTHON (default: python3),
#              JOBS (trainings at once, one OpenMP thread each; default: 2)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cairn="$(realpath "${CAIRN:-$here/../../build/cairn}")"
python="${PYTHON:-python3}"
jobs="${JOBS:-2}"
work="${1:-runs/goldfish}"
mkdir -p "$work/logs" "$work/eval"
cd "$work"

# name and the --set assignments of each run
runs=(
    "baseline="
    "goldfish-k4-h13=train.goldfish.enabled=true train.goldfish.k=4 train.goldfish.h=13"
    "goldfish-k50-h13=train.goldfish.enabled=true train.goldfish.k=50 train.goldfish.h=13"
    "goldfish-k50-h50=train.goldfish.enabled=true train.goldfish.k=50 train.goldfish.h=50"
)

"$python" "$here/make_documents.py" --output data
for set in memorize valid general; do
    "$cairn" prepare --tokenizer bytes --output "data/$set" "data/$set.jsonl"
done

train() {
    local name="$1" assignments=() word
    for word in $2; do assignments+=(--set "$word"); done
    echo "training $name (log: $work/logs/$name.log)"
    OMP_NUM_THREADS=1 "$cairn" train "$here/goldfish.yaml" --set "run.out_dir=runs/$name" \
        "${assignments[@]}" > "logs/$name.log" 2>&1 || { tail -n 5 "logs/$name.log"; return 1; }
}

pids=()
for run in "${runs[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    train "${run%%=*}" "${run#*=}" &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

for run in "${runs[@]}"; do
    name="${run%%=*}"
    checkpoint="$(ls "runs/$name/checkpoints/"step-*.h5 | tail -n 1)"
    "$cairn" eval "$checkpoint" --memorization --data data/memorize > "eval/$name.memorized.json"
    "$cairn" eval "$checkpoint" --memorization --data data/valid --documents 32 \
        > "eval/$name.held_out.json"
    "$cairn" eval "$checkpoint" --data data/valid > "eval/$name.valid_loss.json"
    "$cairn" eval "$checkpoint" --data data/memorize > "eval/$name.memorized_loss.json"
done

"$python" "$here/report.py" . "${runs[@]%%=*}" > results.md
"$python" "$here/plot.py" results.json goldfish.svg
cat results.md
echo "results: $work/results.json, $work/results.md, $work/goldfish.svg"
