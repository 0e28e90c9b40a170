#!/usr/bin/env bash
# cairn under Slurm on a single-node cluster brought up on localhost (slurm_cluster.sh):
#   1. `srun -n 1 --mpi=pmix cairn train`: the reference run;
#   2. `srun -n 4 --mpi=pmix cairn train --set parallel.tp=2` (tp2 x dp2): the first 20 losses
#      equal to the reference's within 1e-5, run.json's world 4 ranks, tp 2, dp 2. (The sums run
#      in another order: 1e-7 apart at first, the gap grows to 1e-5 by step 30 and 1e-3 by step
#      100, as it does between dp2 alone and one rank.);
#   3. examples/slurm/one-node.sbatch as users submit it (4 ranks, tp2 x dp2), with the time-limit
#      signal sent early (`scancel --batch --signal=USR1`, what `--signal=B:USR1@120` does): cairn
#      saves and exits 0, the job requeues itself, the requeued job resumes from that checkpoint;
#      the steps in metrics.jsonl continue without gap or repeat and every loss equals the
#      uninterrupted 4-rank run's (same layout: bit for bit).
# Usage: slurm.sh CAIRN SOURCE_DIR. Exit 77 (skipped) without Slurm and munge, or when not root.
set -euo pipefail
cairn=$(readlink -f "$1")
source_dir=$(readlink -f "$2")
here=$(cd "$(dirname "$0")" && pwd)

# shellcheck source=tests/containers/checks.sh
source "$here/checks.sh"
require "slurm-wlm munge jq" -- munged slurmctld slurmd srun sbatch scontrol scancel squeue sinfo jq
require_root "the test cluster's slurmd runs as root"

work=$(mktemp -d /tmp/cairn-slurm-XXXXXX)
# shellcheck source=tests/containers/slurm_cluster.sh
source "$here/slurm_cluster.sh"
trap 'slurm_cluster_down "$work/cluster"; rm -rf "$work"' EXIT
slurm_cluster_up "$work/cluster" || fail "the Slurm cluster did not start"
cd "$work"
export OMP_NUM_THREADS=1 CAIRN="$cairn"

# ---- data and config: the Debian license texts, the byte tokenizer, a 2-layer llama ----
cat /usr/share/common-licenses/{Apache-2.0,GPL-3,LGPL-2.1,MPL-2.0} >corpus.txt
"$cairn" prepare --tokenizer bytes --output data/train corpus.txt >/dev/null
# Steps enough that the time-limit signal of part 3, sent once step 10 is logged, arrives while
# training runs: 1000 steps of this model take about 2 s, less than the signal's way through
# the poll, slurmctld, the batch script and srun can take on a loaded machine.
steps=4000
cat >tiny.yaml <<EOF
run: {name: slurm, out_dir: out, seed: 11, steps: $steps, log_every: 1, eval_every: 0}
model: {arch: llama, layers: 2, d_model: 32, heads: 4, kv_heads: 2, ffn: 64, seq_len: 32}
train: {micro_batch: 2, global_batch: 8}
optim: {name: adamw, lr: 0.003, min_lr: 0.0003, schedule: {kind: cosine, warmup: 10}}
data: {tokenizer: bytes, sources: [{path: data/train, weight: 1}], valid: ""}
checkpoint: {every: 0, keep: 0}
EOF

steps_of() { jq -r .step "$1/metrics.jsonl" | paste -sd' ' -; }
losses_of() { jq -r '"\(.step) \(.loss)"' "$1/metrics.jsonl"; }
expected_steps=$(seq 1 $steps | paste -sd' ' -)

# ---- 1. one rank ----
srun -n 1 --mpi=pmix "$cairn" train tiny.yaml --set run.out_dir=single >single.log 2>&1 ||
    { tail -n 20 single.log; fail "srun -n 1 --mpi=pmix cairn train failed"; }
[ "$(steps_of single)" = "$expected_steps" ] ||
    fail "single: metrics.jsonl does not hold steps 1..$steps"
echo "ok: srun -n 1 --mpi=pmix cairn train: $steps steps," \
     "final loss $(losses_of single | tail -n 1 | cut -d" " -f2)"

# ---- 2. four ranks, tp2 x dp2 ----
srun -n 4 --mpi=pmix "$cairn" train tiny.yaml --set run.out_dir=tp2 --set parallel.tp=2 \
    >tp2.log 2>&1 || { tail -n 20 tp2.log; fail "srun -n 4 --mpi=pmix cairn train (tp2) failed"; }
[ "$(steps_of tp2)" = "$expected_steps" ] || fail "tp2: metrics.jsonl does not hold steps 1..$steps"
world=$(jq -c '.world | [.ranks, .dp, .tp, .pp]' tp2/run.json)
[ "$world" = "[4,2,2,1]" ] || fail "tp2: run.json world [ranks,dp,tp,pp] is $world, not [4,2,2,1]"
first_losses() { paste <(losses_of single | head -n 20) <(losses_of tp2 | head -n 20); }
worst=$(first_losses |
        awk '{ d = $2 - $4; if (d < 0) d = -d; if (d >= worst) { worst = d; at = $1 } }
             END { printf "%.3g (step %d)", worst, at }')
first_losses | awk '{ d = $2 - $4; if (d < 0) d = -d; if (d > 1e-5) exit 1 }' ||
    fail "tp2 x dp2 losses differ from the single rank's by $worst (tolerance 1e-5)"
echo "ok: srun -n 4 --mpi=pmix cairn train, tp2 x dp2: first 20 losses within $worst of one rank's"

# ---- 3. time-limit signal, checkpoint, requeue, resume: 4 ranks, as users submit it ----
job=$(sbatch --parsable --ntasks-per-node=4 --gpus-per-node=0 --cpus-per-task=1 --time=10 \
      --output="$work/job.out" "$source_dir/examples/slurm/one-node.sbatch" tiny.yaml \
      --set run.out_dir=requeued --set parallel.tp=2)
for _ in $(seq 300); do
    if [ -s requeued/metrics.jsonl ] &&
       [ "$(jq -s 'map(.step) | max' requeued/metrics.jsonl 2>/dev/null || echo 0)" -ge 10 ]; then
        break
    fi
    sleep 0.1
done
scancel --batch --signal=USR1 "$job"
state=
for _ in $(seq 600); do
    state=$(scontrol show job "$job" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    restarts=$(scontrol show job "$job" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
    [ "$state" = COMPLETED ] && [ "$restarts" = 1 ] && break
    case "$state" in FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
    sleep 0.2
done
fail_job() {
    grep -v "^step " job.out >&2
    fail "$@"
}
if [ "$state" != COMPLETED ] || [ "$restarts" != 1 ]; then
    fail_job "job $job: state $state after $restarts restarts, not COMPLETED after 1"
fi
stopped=$(sed -n 's/^cairn: stopped by SIGUSR1 after step \([0-9]*\) of '"$steps"'.*/\1/p' job.out)
[ -n "$stopped" ] || fail_job "job.out: no 'stopped by SIGUSR1 after step K of $steps' line"
grep -q "requeueing job $job to resume" job.out ||
    fail_job "job.out: the job did not requeue itself"
grep -q "job $job, restart 1" job.out ||
    fail_job "job.out: no second run with SLURM_RESTART_COUNT=1"
checkpoint="requeued/checkpoints/step-$(printf %08d "$stopped").h5"
grep -q "^cairn: resuming from $checkpoint at step $stopped" job.out ||
    fail_job "job.out: the requeued run did not resume from step $stopped's checkpoint"
[ -f "$checkpoint" ] ||
    fail_job "no checkpoint of step $stopped"
[ "$(steps_of requeued)" = "$expected_steps" ] ||
    fail_job "requeued: metrics.jsonl steps are not 1..$steps once each (stopped at $stopped)"
cmp -s <(losses_of requeued) <(losses_of tp2) ||
    fail_job "requeued: losses differ from the uninterrupted tp2 x dp2 run's"
echo "ok: one-node.sbatch, 4 ranks: USR1 at step $stopped, checkpoint, requeue, resume;" \
     "$steps steps, every loss equal to the uninterrupted run's"
