# shellcheck shell=bash
# Sourced by the sbatch scripts beside it. `cairn_job_train ARGS...` runs `cairn train ARGS` as
# one srun step, one task per GPU, and carries the run across time limits:
#   - `#SBATCH --signal=B:USR1@120` sends USR1 to this batch shell 120 s before the limit; the
#     shell passes it to srun, and srun to every task: each rank finishes its step, the ranks save
#     one checkpoint together and exit 0;
#   - the shell then requeues the job (`#SBATCH --requeue`); the requeued job runs the same
#     command, which resumes from the newest complete checkpoint (checkpoint.resume=auto).
# `srun -K` ends the whole step as soon as one rank fails, instead of leaving the others waiting
# in a collective until the time limit. PMIx is the launcher interface Open MPI is built for.
#
# Environment:
#   CAIRN_CONTAINER   none (default: $CAIRN or `cairn` on the PATH of the node), apptainer,
#                     pyxis (enroot through pyxis) or edf (CSCS Container Engine)
#   CAIRN_IMAGE       apptainer: the .sif; pyxis: a .sqsh or a registry reference
#                     (nvcr.io#org/cairn:tag); edf: the EDF's name (in EDF_PATH) or path
#   CAIRN_MOUNTS      more host paths to mount (comma-separated; the submit folder always is)
#   CAIRN_MAX_REQUEUES  stop requeueing after this many restarts (default 20)

cairn_job_log() { echo "cairn-job $(date -u +%H:%M:%S): $*"; }

# The srun command line for the chosen container, into the array cairn_job_command.
cairn_job_command_line() {
    cairn_job_command=(srun --kill-on-bad-exit=1 --mpi=pmix)
    case "${CAIRN_CONTAINER:-none}" in
        none)
            cairn_job_command+=("${CAIRN:-cairn}") ;;
        apptainer)
            cairn_job_command+=(apptainer exec --nv --bind "$PWD${CAIRN_MOUNTS:+,$CAIRN_MOUNTS}"
                                --pwd "$PWD" "${CAIRN_IMAGE:?CAIRN_IMAGE: the .sif}" cairn) ;;
        pyxis)
            cairn_job_command+=(--container-image="${CAIRN_IMAGE:?CAIRN_IMAGE: .sqsh or reference}"
                                --container-mounts="$PWD${CAIRN_MOUNTS:+,$CAIRN_MOUNTS}"
                                --container-workdir="$PWD" --no-container-mount-home cairn) ;;
        edf)
            cairn_job_command+=(--environment="${CAIRN_IMAGE:?CAIRN_IMAGE: the EDF}" cairn) ;;
        *)
            echo "cairn-job: CAIRN_CONTAINER=$CAIRN_CONTAINER:" \
                 "expected none, apptainer, pyxis or edf" >&2
            return 2 ;;
    esac
    if [ "${CAIRN_CONTAINER:-none}" != none ]; then
        # the node's munge socket is not inside the container: let PMIx authenticate natively
        export PMIX_MCA_psec="${PMIX_MCA_psec:-^munge}"
    fi
}

cairn_job_train() {
    local srun_pid status stop_requested=0
    cairn_job_command_line || return
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"
    cairn_job_log "job $SLURM_JOB_ID, restart ${SLURM_RESTART_COUNT:-0}," \
        "${SLURM_NTASKS:-1} tasks on ${SLURM_JOB_NUM_NODES:-1} node(s):" \
        "${cairn_job_command[*]} train $*"
    trap 'stop_requested=1; cairn_job_log "USR1: the time limit is near, asking cairn to save";
          kill -USR1 "$srun_pid" 2>/dev/null' USR1
    "${cairn_job_command[@]}" train "$@" --set checkpoint.resume=auto &
    srun_pid=$!
    # a trapped signal interrupts `wait` (status > 128) while srun runs on: wait again
    wait "$srun_pid"
    status=$?
    while [ "$status" -gt 128 ] && kill -0 "$srun_pid" 2>/dev/null; do
        wait "$srun_pid"
        status=$?
    done
    trap - USR1
    if [ "$status" != 0 ]; then
        cairn_job_log "cairn train failed (status $status); not requeueing"
        return "$status"
    fi
    if [ "$stop_requested" = 1 ]; then
        if [ "${SLURM_RESTART_COUNT:-0}" -ge "${CAIRN_MAX_REQUEUES:-20}" ]; then
            cairn_job_log "stopped with a checkpoint; $SLURM_RESTART_COUNT restarts: not requeueing"
            return 0
        fi
        cairn_job_log "stopped with a checkpoint; requeueing job $SLURM_JOB_ID to resume"
        scontrol requeue "$SLURM_JOB_ID"
        return
    fi
    cairn_job_log "training finished"
}
