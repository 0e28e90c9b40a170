#!/bin/bash
# A rank that hangs or dies in the middle of a collective must not hang the job.
# Usage: dead_rank.sh MPIEXEC parallel_test_dead_rank
# With Open MPI's default policy mpirun itself tears the job down when a rank dies (signal or
# non-zero exit without MPI_Finalize); a rank that HANGS is only caught by cairn's timeout. With
# `--mca orte_abort_on_non_zero_status 0` (like srun without -K: survivors keep running) a dead
# rank is also only caught by the timeout: that is checked too.
set -u
mpiexec=$1
binary=$2
timeout_s=3
ranks=4
failures=0
output=$(mktemp)
trap 'rm -f "$output"' EXIT

fail() {
    echo "FAIL: $*"
    sed 's/^/    | /' "$output"
    failures=$((failures + 1))
}

# run NAME EXPECT(zero|nonzero) MIN_S MAX_S [mpirun options...] -- MODE
run() {
    local name=$1 expect=$2 min_s=$3 max_s=$4
    shift 4
    local options=()
    while [ "$1" != "--" ]; do options+=("$1"); shift; done
    local mode=$2
    local start end status elapsed
    start=$(date +%s.%N)
    timeout 60 "$mpiexec" --oversubscribe --mca btl self,vader "${options[@]}" -np $ranks \
        "$binary" "$mode" $timeout_s >"$output" 2>&1
    status=$?
    end=$(date +%s.%N)
    elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
    echo "$name: exit status $status after ${elapsed} s"
    if [ "$expect" = zero ] && [ $status -ne 0 ]; then fail "$name: exit status $status"; fi
    if [ "$expect" = nonzero ] && { [ $status -eq 0 ] || [ $status -eq 124 ]; }; then
        fail "$name: exit status $status (expected a failure before the 60 s guard)"
    fi
    if awk -v e="$elapsed" -v lo="$min_s" -v hi="$max_s" 'BEGIN { exit !(e < lo || e > hi) }'; then
        fail "$name: took ${elapsed} s, expected between $min_s and $max_s s"
    fi
}

# the message every survivor prints (at least one gets to print before the job goes down)
expect_timeout_message() {
    local name=$1
    local line="^cairn: all_reduce on communicator dp \(rank [0-2] of $ranks, host [^,]+, pid [0-9]+\)"
    line="$line did not complete within the $timeout_s s timeout \(parallel.timeout_s\):"
    line="$line a peer died or hangs; aborting the job$"
    if ! grep -Eq "$line" "$output"; then
        fail "$name: no timeout message"
    else
        grep -m1 '^cairn: all_reduce' "$output"
    fi
}

# the second all-reduce sums the first one's result (4) over 4 ranks
run "all ranks alive" zero 0 20 -- ok
[ "$(grep -c 'completed (sum 16)' "$output")" -eq $ranks ] || fail "ok: not every rank completed"

run "one rank hangs" nonzero $timeout_s $((timeout_s + 15)) -- hang
expect_timeout_message "hang"

run "one rank is killed, survivors left running" nonzero $timeout_s $((timeout_s + 15)) \
    --mca orte_abort_on_non_zero_status 0 -- kill
expect_timeout_message "kill"

# Open MPI's own policy reacts (usually before the timeout; the bound allows for a loaded machine,
# where starting the job alone can take seconds)
run "one rank is killed, default mpirun" nonzero 0 $((timeout_s + 15)) -- kill
grep -q "exited on signal 9" "$output" || fail "kill: mpirun did not report the signal"

run "one rank exits without MPI_Finalize, default mpirun" nonzero 0 $((timeout_s + 15)) -- exit
grep -q "exited with non-zero status\|returned a non-zero exit code" "$output" ||
    fail "exit: mpirun did not report the exit"

[ $failures -eq 0 ] && echo "dead_rank: all cases passed" && exit 0
echo "dead_rank: $failures failures"
exit 1
