#!/usr/bin/env bash
# Runs every GPU check and benchmark from an existing build folder (builds nothing):
#   tests/gpu/run.sh [BUILD_DIR] [checks|bench|all]      (defaults: build-gpu, all)
#   tests/gpu/run.sh --stage BUILD DEST                  (here, before a GPU lease)
# --stage copies what the run needs from a build (cairn, the GPU test programs) and the
# libyaml the GPU host may lack into DEST, a flat folder small enough to carry (~25 MB).
# Programs are looked up in BUILD_DIR/tests/ and then BUILD_DIR/; BUILD_DIR is put on
# LD_LIBRARY_PATH, and so are the folders of libraries the loader misses that find_libraries.sh
# finds (cuDNN or NCCL that only a Python environment's nvidia wheels hold). Each step's output
# goes to the terminal and to LOG_DIR (default BUILD_DIR/gpu-logs; $OUT when set).
#   checks: test_ops_cuda (every op against the CPU backend), test_comm_nccl (one rank per GPU),
#           train_cpu_vs_cuda (llama, gpt2, MoE training against the CPU), train_layouts
#           (resume on the GPU; dp/tp/pp/ZeRO/ep layouts with several ranks on one GPU)
#   bench:  bench_ops_cuda and bench_torch_ops (op timings), gpu_vs_torch (end to end against
#           shared/bench/torch_ref.py; BENCH_MODELS, PEERS and STEPS pass through)
# Each step is stopped after STEP_TIMEOUT seconds (default 300), so one hang cannot spend a
# whole lease; with BUDGET_S set, no step runs past that many seconds from the start (steps
# that would start with under 20 s left are skipped), so the table prints before the lease's
# command limit.
# Ends with one table: step, result (pass / FAIL / skipped), seconds. Exit 1 if a step failed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = --stage ]; then
    build=$2 dest=$3
    mkdir -p "$dest"
    for program in cairn tests/test_ops_cuda tests/bench_ops_cuda tests/test_comm_nccl; do
        cp "$build/$program" "$dest/" || exit 1
    done
    cp -L "$(ldconfig -p | awk '/libyaml-0.so.2 / {print $NF; exit}')" "$dest/libyaml-0.so.2" || exit 1
    echo "staged $(du -sh "$dest" | cut -f1) in $dest"
    exit 0
fi
for setting in STEP_TIMEOUT BUDGET_S; do
    case ${!setting:-0} in
        *[!0-9]*) echo "tests/gpu/run.sh: $setting=${!setting}: expected whole seconds" >&2; exit 2 ;;
    esac
done
build=${1:-build-gpu}
what=${2:-all}
log_dir=${OUT:-$build/gpu-logs}
mkdir -p "$log_dir"
build_path=$(cd "$build" && pwd)
export LD_LIBRARY_PATH="$build_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# cuDNN, NCCL or cuBLAS may be on the GPU host only inside a Python environment's nvidia wheels
programs=()
for program in "$build"/cairn "$build"/test_* "$build"/bench_* "$build"/tests/test_* \
    "$build"/tests/bench_*; do
    [ -f "$program" ] && [ -x "$program" ] && programs+=("$program")
done
if [ ${#programs[@]} -gt 0 ]; then
    library_dirs=$("$here/find_libraries.sh" "${programs[@]}" | paste -sd:)
    [ -n "$library_dirs" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$library_dirs"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null |
    sed 's/^/device: /'

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

missing() {
    names+=("$1")
    results+=("FAIL (not in $build)")
    seconds+=(0)
}

began=$(date +%s)

# run_step NAME COMMAND...: exit 0 pass, 77 skipped, anything else FAIL
run_step() {
    local name=$1
    shift
    local start end status result limit=${STEP_TIMEOUT:-300}
    if [ -n "${BUDGET_S:-}" ]; then
        local left=$((BUDGET_S - ($(date +%s) - began)))
        if [ "$left" -lt 20 ]; then
            names+=("$name")
            results+=("skipped (budget spent)")
            seconds+=(0)
            return
        fi
        [ "$left" -lt "$limit" ] && limit=$left
    fi
    echo "==== $name"
    start=$(date +%s%N)
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$log_dir/$name.log"
    status=${PIPESTATUS[0]}
    end=$(date +%s%N)
    case $status in
        0) result=pass ;;
        77) result=skipped ;;
        124 | 137) result="FAIL (over $limit s)" ;;
        *) result="FAIL ($status)" ;;
    esac
    names+=("$name")
    results+=("$result")
    seconds+=("$(((end - start) / 1000000000)).$(((end - start) / 100000000 % 10))")
}

if [ "$what" = checks ] || [ "$what" = all ]; then
    if path=$(find_program test_ops_cuda); then run_step test_ops_cuda "$path"; else missing test_ops_cuda; fi
    # NCCL takes one rank per GPU
    if path=$(find_program test_comm_nccl); then
        gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
        run_step test_comm_nccl "${MPIRUN:-mpirun}" -np "$((gpus > 0 ? gpus : 1))" "$path"
    else
        missing test_comm_nccl
    fi
    if path=$(find_program cairn); then
        run_step train_cpu_vs_cuda "$here/train_cpu_vs_cuda.sh" "$path"
        run_step train_layouts "$here/train_layouts.sh" "$path"
    else
        missing cairn
    fi
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
    if path=$(find_program bench_ops_cuda); then run_step bench_ops_cuda "$path"; else missing bench_ops_cuda; fi
    python=${PYTHON:-python3}
    if "$python" -c "import torch" 2>/dev/null; then
        run_step bench_torch_ops "$python" "$here/bench_torch_ops.py"
        torch_ref=$here/../../shared/bench/torch_ref.py
        [ -f "$torch_ref" ] || torch_ref=$here/../../../shared/bench/torch_ref.py
        if path=$(find_program cairn); then
            # shellcheck disable=SC2086 # BENCH_MODELS is a list of words
            run_step gpu_vs_torch "$here/../bench/gpu_vs_torch.sh" "$path" "$torch_ref" ${BENCH_MODELS:-}
        fi
    else
        names+=(bench_torch_ops)
        results+=("skipped (no torch)")
        seconds+=(0)
    fi
fi

echo
printf '%-20s %-32s %8s\n' step result seconds
failed=0
for i in "${!names[@]}"; do
    printf '%-20s %-32s %8s\n' "${names[$i]}" "${results[$i]}" "${seconds[$i]}"
    case ${results[$i]} in FAIL*) failed=1 ;; esac
done
exit $failed
