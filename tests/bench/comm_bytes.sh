#!/bin/bash
# Bytes per rank per step of the data-parallel gradient reduction of the default tiny model:
# plain all-reduce (dp) versus ZeRO-1 (reduce-scatter + all-gather), 2/4/8 ranks. Three numbers
# per row: cairn's accounting (the comm counters: bandwidth-optimal volume of each call), the
# theoretical minimum 2(n-1)/n · 4 · params, and what Open MPI really sent (its pml monitoring,
# setup traffic subtracted), which depends on the algorithms its tuned collectives pick.
# Usage: tests/bench/comm_bytes.sh [BUILD_DIR] [STEPS]   (run as root: exports the OMPI_ALLOW pair)
set -eu
build=${1:-build}
steps=${2:-20}
bench=$build/tests/bench_comm_bytes
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run RANKS MODE BUCKET → the RESULT line in $work/result, all ranks' bytes sent in $work/sent
run() {
    rm -f "$work"/prof.*
    mpirun --oversubscribe --mca btl self,vader --mca pml_monitoring_enable 1 \
        --mca pml_monitoring_enable_output 3 --mca pml_monitoring_filename "$work/prof" \
        -np "$1" "$bench" "$2" "$steps" "$3" | grep '^RESULT' >"$work/result"
    # lines "E <from> <to> <N> bytes <M> msgs sent ...": everything each rank sent
    awk -F'\t' '$1 == "E" { split($4, b, " "); sum += b[1] } END { printf "%.0f\n", sum }' \
        "$work"/prof.*.prof >"$work/sent"
}

printf '%-5s %-5s %9s %9s %7s %14s %14s %14s %8s %9s\n' ranks mode params padded buckets \
    accounted minimum openmpi_sent ratio ms/step
for ranks in 2 4 8; do
    run "$ranks" none 33554432
    baseline=$(cat "$work/sent")
    for mode in dp zero; do
        for bucket in 33554432 65536; do
            run "$ranks" $mode $bucket
            read -r _ m n params padded buckets accounted minimum ms <"$work/result"
            sent=$(awk -v s="$(cat "$work/sent")" -v b="$baseline" -v n="$n" -v k="$steps" \
                'BEGIN { printf "%.0f", (s - b) / n / k }')
            printf '%-5s %-5s %9s %9s %7s %14s %14s %14s %8.4f %9s\n' "$n" "$m" "$params" \
                "$padded" "$buckets" "$accounted" "$minimum" "$sent" \
                "$(awk -v a="$accounted" -v b="$minimum" 'BEGIN { print a / b }')" "$ms"
        done
    done
done
