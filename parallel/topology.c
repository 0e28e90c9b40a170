#include "parallel/topology.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parallel/comm_mpi.h"
#ifdef CAIRN_HAVE_CUDA
#include "parallel/comm_nccl.h"
#endif

const char *parallel_axis_name(parallel_axis axis) {
    static const char *const names[AXIS_COUNT] = {"world", "tp",        "pp",   "dp",
                                                  "ep",    "expert_dp", "model"};
    return axis < AXIS_COUNT ? names[axis] : "?";
}

/* The independent coordinates are tp, pp, ep and expert_dp; dp, model and world follow. */
static void derive(const int *size, int *rank) {
    rank[AXIS_DP] = rank[AXIS_EP] + size[AXIS_EP] * rank[AXIS_EXPERT_DP];
    rank[AXIS_MODEL] = rank[AXIS_TP] + size[AXIS_TP] * rank[AXIS_PP];
    rank[AXIS_WORLD] =
        rank[AXIS_TP] + size[AXIS_TP] * (rank[AXIS_DP] + size[AXIS_DP] * rank[AXIS_PP]);
}

static void set_dp(const int *size, int *rank, int dp_rank) {
    rank[AXIS_EP] = dp_rank % size[AXIS_EP];
    rank[AXIS_EXPERT_DP] = dp_rank / size[AXIS_EP];
}

/* Sets one coordinate, keeping the others. */
static void set_coordinate(const int *size, int *rank, parallel_axis axis, int value) {
    switch (axis) {
    case AXIS_WORLD:
        rank[AXIS_TP] = value % size[AXIS_TP];
        set_dp(size, rank, value / size[AXIS_TP] % size[AXIS_DP]);
        rank[AXIS_PP] = value / (size[AXIS_TP] * size[AXIS_DP]);
        break;
    case AXIS_DP:
        set_dp(size, rank, value);
        break;
    case AXIS_MODEL:
        rank[AXIS_TP] = value % size[AXIS_TP];
        rank[AXIS_PP] = value / size[AXIS_TP];
        break;
    case AXIS_TP:
    case AXIS_PP:
    case AXIS_EP:
    case AXIS_EXPERT_DP:
        rank[axis] = value;
        break;
    case AXIS_COUNT:
        break;
    }
    derive(size, rank);
}

int grid_init(parallel_grid *g, int world_size, int tp, int pp, int ep, status *st) {
    memset(g, 0, sizeof *g);
    if (world_size < 1 || tp < 1 || pp < 1 || ep < 1)
        return status_fail(st, "parallel: sizes must be >= 1 (world=%d, tp=%d, pp=%d, ep=%d)",
                           world_size, tp, pp, ep);
    if (world_size % (tp * pp))
        return status_fail(st, "parallel: tp*pp (=%d*%d) must divide the number of ranks (%d)", tp,
                           pp, world_size);
    int dp = world_size / (tp * pp);
    if (dp % ep)
        return status_fail(st, "parallel: ep (=%d) must divide the data-parallel size (dp=%d)", ep,
                           dp);
    int *size = g->size;
    size[AXIS_WORLD] = world_size;
    size[AXIS_TP] = tp;
    size[AXIS_PP] = pp;
    size[AXIS_DP] = dp;
    size[AXIS_EP] = ep;
    size[AXIS_EXPERT_DP] = dp / ep;
    size[AXIS_MODEL] = tp * pp;
    return 0;
}

void grid_place(parallel_grid *g, int world_rank) {
    set_coordinate(g->size, g->rank, AXIS_WORLD, world_rank);
}

void grid_members(const parallel_grid *g, parallel_axis axis, int *members) {
    for (int i = 0; i < g->size[axis]; i++) {
        int rank[AXIS_COUNT];
        memcpy(rank, g->rank, sizeof rank);
        set_coordinate(g->size, rank, axis, i);
        members[i] = rank[AXIS_WORLD];
    }
}

static int mpi_failed(const char *function, parallel_axis axis, int rc, status *st) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(rc, text, &length);
    return status_fail(st, "parallel: %s for the %s communicator: %s", function,
                       parallel_axis_name(axis), text);
}

/* The group of this rank on `axis`: ranks that share every other coordinate. Its first member's
 * world rank names it (the split color); the coordinate on the axis orders it (the key). */
static int create_axis(parallel_topology *t, parallel_axis axis, double timeout_s, status *st) {
    const parallel_grid *g = &t->grid;
    MPI_Comm mpi;
    int rc;
    if (axis == AXIS_WORLD) {
        rc = MPI_Comm_dup(MPI_COMM_WORLD, &mpi);
    } else {
        int *members = malloc((size_t)g->size[axis] * sizeof *members);
        if (!members) return status_fail(st, "parallel: out of memory");
        grid_members(g, axis, members);
        rc = MPI_Comm_split(MPI_COMM_WORLD, members[0], g->rank[axis], &mpi);
        free(members);
    }
    if (rc != MPI_SUCCESS)
        return mpi_failed(axis == AXIS_WORLD ? "MPI_Comm_dup" : "MPI_Comm_split", axis, rc, st);
    comm *c = &t->comms[axis];
    if (comm_mpi_create(c, mpi, parallel_axis_name(axis), timeout_s, st) != 0) return -1;
    if (c->rank != g->rank[axis] || c->size != g->size[axis])
        return status_fail(st,
                           "parallel: the %s communicator has this rank at %d of %d, the grid "
                           "says %d of %d",
                           c->name, c->rank, c->size, g->rank[axis], g->size[axis]);
    return 0;
}

static void device_are_host(parallel_topology *t) {
    for (int axis = 0; axis < AXIS_COUNT; axis++) t->device[axis] = &t->comms[axis];
    snprintf(t->device_kind, sizeof t->device_kind, "mpi");
}

int topology_create(parallel_topology *t, const parallel_config *cfg, status *st) {
    memset(t, 0, sizeof *t);
    device_are_host(t);
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        /* one process, no MPI: every axis a group of one, whose collectives nobody calls */
        if (grid_init(&t->grid, 1, cfg->tp, cfg->pp, cfg->ep, st) != 0) return -1;
        for (int axis = 0; axis < AXIS_COUNT; axis++) {
            comm *c = &t->comms[axis];
            snprintf(c->name, sizeof c->name, "%s", parallel_axis_name((parallel_axis)axis));
            c->size = 1;
            c->timeout_s = cfg->timeout_s;
        }
        snprintf(t->device_kind, sizeof t->device_kind, "none");
        return 0;
    }
    int world_rank, world_size;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    if (grid_init(&t->grid, world_size, cfg->tp, cfg->pp, cfg->ep, st) != 0) return -1;
    grid_place(&t->grid, world_rank);
    for (int axis = 0; axis < AXIS_COUNT; axis++)
        if (create_axis(t, (parallel_axis)axis, cfg->timeout_s, st) != 0) {
            topology_destroy(t);
            return -1;
        }
    return 0;
}

/* The axes on which the backend's buffers travel; world and model carry host values only. */
static int carries_device_buffers(parallel_axis axis) {
    return axis != AXIS_WORLD && axis != AXIS_MODEL;
}

int topology_attach_device(parallel_topology *t, comm_kind kind, const comm_device_memory *memory,
                           status *st) {
    if (!memory) {
        if (kind == COMM_NCCL)
            return status_fail(st, "parallel.comm: nccl needs a backend with device memory");
        return 0;
    }
    t->memory = *memory;
    snprintf(t->device_kind, sizeof t->device_kind,
             kind == COMM_NCCL ? "nccl" : "mpi (host-staged)");
    /* every rank walks the axes in the same order, so each NCCL initialisation finds its peers */
    for (int axis = 0; axis < AXIS_COUNT; axis++) {
        comm *host = &t->comms[axis];
        if (!carries_device_buffers((parallel_axis)axis) || !host->ops) continue;
        comm *device = &t->device_comms[axis];
        int rc;
#ifdef CAIRN_HAVE_CUDA
        if (kind == COMM_NCCL && host->size > 1)
            rc = comm_nccl_create(device, host, st);
        else
#endif
            rc = comm_staged_create(device, host, &t->memory, st);
        if (rc != 0) return -1;
        t->device[axis] = device;
    }
    return 0;
}

void topology_destroy(parallel_topology *t) {
    for (int axis = 0; axis < AXIS_COUNT; axis++) {
        if (t->device[axis] == &t->device_comms[axis]) comm_destroy(&t->device_comms[axis]);
        if (t->comms[axis].ops) comm_destroy(&t->comms[axis]);
    }
    device_are_host(t);
}
