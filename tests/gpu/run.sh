#!/usr/bin/env bash
# Runs the GPU tests and benchmarks from an existing build folder (builds nothing):
#   tests/gpu/run.sh [BUILD_DIR]      (default: build-cuda)
# Programs are looked up in BUILD_DIR/tests/ and then BUILD_DIR/ (a flat folder of
# binaries carried to a GPU host works too). Each step's output goes to the
# terminal and to LOG_DIR (default BUILD_DIR/gpu-logs; $OUT when set). Ends with
# one table: step, result (pass / FAIL / skipped), seconds. Exit 1 if a step failed.
set -u
build=${1:-build-cuda}
here=$(cd "$(dirname "$0")" && pwd)
log_dir=${OUT:-$build/gpu-logs}
mkdir -p "$log_dir"

names=()
results=()
seconds=()

find_program() {
    for candidate in "$build/tests/$1" "$build/$1"; do
        if [ -x "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# run_step NAME COMMAND...: exit 0 pass, 77 skipped, anything else FAIL
run_step() {
    local name=$1
    shift
    local start end status result
    echo "==== $name"
    start=$(date +%s%N)
    "$@" 2>&1 | tee "$log_dir/$name.log"
    status=${PIPESTATUS[0]}
    end=$(date +%s%N)
    case $status in
        0) result=pass ;;
        77) result=skipped ;;
        *) result="FAIL ($status)" ;;
    esac
    names+=("$name")
    results+=("$result")
    seconds+=("$(( (end - start) / 1000000000 )).$(( (end - start) / 100000000 % 10 ))")
}

for program in test_ops_cuda bench_ops_cuda; do
    if path=$(find_program "$program"); then
        run_step "$program" "$path"
    else
        names+=("$program")
        results+=("FAIL (not built in $build)")
        seconds+=(0)
    fi
done
# NCCL takes one rank per GPU; as root Open MPI wants the OMPI_ALLOW_RUN_AS_ROOT pair
if path=$(find_program test_comm_nccl); then
    gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
    run_step test_comm_nccl env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        "${MPIRUN:-mpirun}" -np "$(( gpus > 0 ? gpus : 1 ))" "$path"
else
    names+=(test_comm_nccl)
    results+=("FAIL (not built in $build)")
    seconds+=(0)
fi
if path=$(find_program cairn); then
    run_step train_cpu_vs_cuda "$here/train_cpu_vs_cuda.sh" "$path"
else
    names+=(train_cpu_vs_cuda)
    results+=("FAIL (cairn not in $build)")
    seconds+=(0)
fi
python=${PYTHON:-python3}
if "$python" -c "import torch" 2>/dev/null; then
    run_step bench_torch_ops "$python" "$here/bench_torch_ops.py"
fi

echo
printf '%-20s %-32s %8s\n' step result seconds
failed=0
for i in "${!names[@]}"; do
    printf '%-20s %-32s %8s\n' "${names[$i]}" "${results[$i]}" "${seconds[$i]}"
    case ${results[$i]} in FAIL*) failed=1 ;; esac
done
exit $failed
