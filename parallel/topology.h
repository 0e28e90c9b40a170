/* The process grid: world ranks → (tp, dp, pp) coordinates, ep inside dp, one communicator per
 * axis.
 *
 * Contract: the grid follows Megatron's default order tp-cp-ep-dp-pp (cp = 1 here): tp varies
 * fastest, then dp, then pp, so
 *     world = tp_rank + tp · (dp_rank + dp · pp_rank),   dp = world / (tp · pp),
 * and a tensor-parallel group is tp consecutive ranks (one node, the fastest links), a pipeline
 * group is the slowest axis (least traffic: activations between neighbours). Expert parallelism
 * splits each data-parallel group: dp_rank = ep_rank + ep · expert_dp_rank (ep consecutive dp
 * ranks exchange tokens; expert_dp = dp / ep replicas of each expert shard average their
 * gradients). The model-parallel group (tp × pp ranks of one dp replica, model_rank = tp_rank +
 * tp · pp_rank) reduces gradient norms. A rank's coordinate on an axis is its rank in that axis'
 * communicator. `topology_create` needs `parallel_init` first and a config that passed
 * config_resolve (which names the YAML key of a size that does not divide); it builds MPI
 * communicators for every axis, with parallel.timeout_s as their timeout. Without MPI (a process
 * started on its own, which cli_train does not initialise MPI for) it is the grid of one rank
 * whose communicators have size 1 and no backend: callers skip collectives on groups of one.
 *
 * Two sets of communicators: `comms` carry host memory (MPI: agreements, loss sums, norms,
 * checkpoints); `device` carries the compute backend's buffers (activations, gradients, weights)
 * on the axes where those travel (tp, pp, dp, ep, expert_dp; world and model carry host values
 * only and point at `comms`). `topology_attach_device` sets them up once the backend is known:
 * the host comms themselves when the backend computes in host memory, else NCCL communicators
 * (one rank per GPU) or the MPI ones staged through host buffers (parallel/comm_staged.h). Until
 * then `device` points at `comms`. */
#ifndef CAIRN_TOPOLOGY_H
#define CAIRN_TOPOLOGY_H

#include "common/status.h"
#include "parallel/comm.h"
#include "parallel/comm_staged.h"
#include "train/config.h"

typedef enum {
    AXIS_WORLD,
    AXIS_TP,
    AXIS_PP,
    AXIS_DP,
    AXIS_EP,
    AXIS_EXPERT_DP,
    AXIS_MODEL,
    AXIS_COUNT
} parallel_axis;

typedef struct parallel_grid {
    int size[AXIS_COUNT]; /* world = tp·dp·pp, dp = ep·expert_dp, model = tp·pp */
    int rank[AXIS_COUNT]; /* this rank's coordinate on each axis */
} parallel_grid;

typedef struct parallel_topology {
    parallel_grid grid;
    comm comms[AXIS_COUNT];      /* host memory */
    comm *device[AXIS_COUNT];    /* the backend's memory: &comms[axis] or &device_comms[axis] */
    comm device_comms[AXIS_COUNT];
    comm_device_memory memory;   /* the backend's copies, for staged comms */
    char device_kind[24];        /* "mpi", "mpi (host-staged)" or "nccl" */
} parallel_topology;

const char *parallel_axis_name(parallel_axis axis);

/* Sizes of the grid of world_size ranks; coordinates of world rank 0. */
int grid_init(parallel_grid *g, int world_size, int tp, int pp, int ep, status *st);
/* Moves the grid's coordinates to those of world_rank. */
void grid_place(parallel_grid *g, int world_rank);
/* World ranks of the members of this rank's group on `axis`, in communicator-rank order
 * (size[axis] entries). */
void grid_members(const parallel_grid *g, parallel_axis axis, int *members);

int topology_create(parallel_topology *t, const parallel_config *cfg, status *st);
/* Communicators for the backend's buffers: memory NULL (host memory): the host comms, and kind
 * must be COMM_MPI; else COMM_MPI stages through host buffers with `memory`'s copies and
 * COMM_NCCL creates NCCL communicators on the current GPU (builds with CUDA only; every rank
 * must call this at the same time). Axes of one rank get staged comms (nobody talks there, and
 * NCCL state would be wasted). On failure the comms made so far stay for topology_destroy. */
int topology_attach_device(parallel_topology *t, comm_kind kind, const comm_device_memory *memory,
                           status *st);
void topology_destroy(parallel_topology *t);

#endif
