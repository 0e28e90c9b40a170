#include "parallel/launch.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A non-negative integer variable, or -1 when unset or not a number. */
static int integer_variable(const char *name) {
    const char *text = getenv(name);
    if (!text || !*text) return -1;
    char *end;
    long value = strtol(text, &end, 10);
    return *end || value < 0 || value > 1 << 30 ? -1 : (int)value;
}

static void describe(launch_env *env, const char *launcher, const char *rank_variable,
                     const char *size_variable, const char *local_variable) {
    snprintf(env->launcher, sizeof env->launcher, "%s", launcher);
    snprintf(env->rank_variable, sizeof env->rank_variable, "%s", rank_variable);
    snprintf(env->size_variable, sizeof env->size_variable, "%s",
             size_variable ? size_variable : "");
    env->rank = integer_variable(rank_variable);
    env->size = size_variable ? integer_variable(size_variable) : -1;
    env->local_rank = local_variable ? integer_variable(local_variable) : -1;
}

void launch_env_read(launch_env *env) {
    memset(env, 0, sizeof *env);
    if (getenv("OMPI_COMM_WORLD_RANK") && getenv("OMPI_COMM_WORLD_SIZE")) {
        describe(env, "mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                 "OMPI_COMM_WORLD_LOCAL_RANK");
    } else if (getenv("SLURM_PROCID") && getenv("SLURM_STEP_ID") &&
               (getenv("SLURM_STEP_NUM_TASKS") || getenv("SLURM_NTASKS"))) {
        describe(env, "srun", "SLURM_PROCID",
                 getenv("SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS",
                 "SLURM_LOCALID");
    } else if (getenv("PMIX_RANK")) {
        describe(env, "pmix", "PMIX_RANK", NULL, NULL);
    } else {
        snprintf(env->launcher, sizeof env->launcher, "none");
        env->rank = env->size = env->local_rank = -1;
    }
}

int launch_env_check(const launch_env *env, int mpi_rank, int mpi_size, status *st) {
    if (env->size > 1 && mpi_size == 1)
        return status_fail(st,
                           "%s=%d but MPI sees a single rank: each task runs alone as rank 0, "
                           "because MPI did not connect to the launcher (with srun, pass "
                           "--mpi=pmix, or the PMI the MPI library was built for)",
                           env->size_variable, env->size);
    if (env->size >= 1 && env->size != mpi_size)
        return status_fail(st, "%s=%d but MPI has %d ranks: the launcher and MPI disagree",
                           env->size_variable, env->size, mpi_size);
    if (env->rank >= 0 && env->rank != mpi_rank)
        return status_fail(st, "%s=%d but this is MPI rank %d: the launcher and MPI disagree",
                           env->rank_variable, env->rank, mpi_rank);
    return 0;
}

static int mpi_failed(const char *function, int rc, status *st) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(rc, text, &length);
    return status_fail(st, "parallel: %s: %s", function, text);
}

/* Ranks sharing memory with this one form a node; local rank 0 of each node counts it. */
static int find_node(parallel_process *p, status *st) {
    MPI_Comm node;
    int rc =
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, p->rank, MPI_INFO_NULL, &node);
    if (rc != MPI_SUCCESS) return mpi_failed("MPI_Comm_split_type", rc, st);
    MPI_Comm_rank(node, &p->local_rank);
    MPI_Comm_size(node, &p->local_size);
    MPI_Comm_free(&node);
    int first = p->local_rank == 0;
    rc = MPI_Allreduce(&first, &p->nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? 0 : mpi_failed("MPI_Allreduce", rc, st);
}

int parallel_init(int *argc, char ***argv, parallel_process *p, status *st) {
    memset(p, 0, sizeof *p);
    launch_env_read(&p->env);
    int initialized = 0, provided = MPI_THREAD_SINGLE;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return mpi_failed("MPI_Init_thread", rc, st);
        p->initialized_mpi = 1;
    } else {
        MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_FUNNELED)
        return status_fail(st,
                           "parallel: the MPI library provides thread level %d, cairn needs "
                           "MPI_THREAD_FUNNELED (%d)",
                           provided, MPI_THREAD_FUNNELED);
    MPI_Comm_rank(MPI_COMM_WORLD, &p->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &p->size);
    if (launch_env_check(&p->env, p->rank, p->size, st) != 0)
        return status_prefix(st, "parallel: launched by %s", p->env.launcher);
    return find_node(p, st);
}

void parallel_finalize(parallel_process *p) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (p->initialized_mpi && !finalized) MPI_Finalize();
    p->initialized_mpi = 0;
}

int parallel_barrier(status *st) {
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? 0 : mpi_failed("MPI_Barrier", rc, st);
}

void parallel_abort(int exit_status) { MPI_Abort(MPI_COMM_WORLD, exit_status); }

int parallel_launched(void) {
    launch_env env;
    launch_env_read(&env);
    return env.size > 1 || (strcmp(env.launcher, "pmix") == 0);
}

void parallel_single(parallel_process *p) {
    memset(p, 0, sizeof *p);
    launch_env_read(&p->env);
    p->size = p->local_size = p->nodes = 1;
}
