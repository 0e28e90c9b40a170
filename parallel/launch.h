/* Process launch: MPI initialisation and the launcher's view of this process.
 *
 * Contract: `parallel_init` initialises MPI with MPI_THREAD_FUNNELED (only the main thread calls
 * MPI: the OpenMP compute threads and the data prefetch thread never do, and the comm layer polls
 * its requests from the main thread) unless the caller already did, finds this rank's node-local
 * rank with MPI_Comm_split_type(MPI_COMM_TYPE_SHARED), and cross-checks MPI's rank and size
 * against the launcher's environment. A mismatch is a one-line error: the usual cause is `srun`
 * without `--mpi=pmix`, which starts N singletons that each believe they are rank 0 of 1.
 * `parallel_finalize` ends MPI when `parallel_init` started it.
 *
 * Which variables count, first match wins: OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK} (mpirun; a
 * mpirun inside an allocation also inherits SLURM_* from the allocation, which then describe the
 * allocation, not this rank); SLURM_PROCID with SLURM_STEP_NUM_TASKS or SLURM_NTASKS and
 * SLURM_LOCALID, when SLURM_STEP_ID says this is a task of an srun step; PMIX_RANK (rank only). */
#ifndef CAIRN_LAUNCH_H
#define CAIRN_LAUNCH_H

#include "common/status.h"

typedef struct launch_env {
    char launcher[16];          /* "mpirun", "srun", "pmix" or "none" */
    int rank, size, local_rank; /* -1 when the environment does not say */
    char rank_variable[32], size_variable[32];
} launch_env;

typedef struct parallel_process {
    int rank, size;             /* in MPI_COMM_WORLD */
    int local_rank, local_size; /* among the ranks on this node */
    int nodes;
    launch_env env;
    int initialized_mpi; /* parallel_init called MPI_Init_thread */
} parallel_process;

void launch_env_read(launch_env *env);
int launch_env_check(const launch_env *env, int mpi_rank, int mpi_size, status *st);

int parallel_init(int *argc, char ***argv, parallel_process *p, status *st);
/* Whether a launcher started this process as one of several (its variables say a size above
 * 1): only then is MPI worth initialising; a process on its own runs without it. */
int parallel_launched(void);
/* This process on its own, as parallel_init would describe it, without MPI. */
void parallel_single(parallel_process *p);
void parallel_finalize(parallel_process *p);
/* Every rank of the world waits here (before the topology's communicators exist). */
int parallel_barrier(status *st);
/* Ends every rank of the job with this exit status (a rank that failed alone would leave the
 * others waiting in a collective). */
void parallel_abort(int exit_status);

#endif
