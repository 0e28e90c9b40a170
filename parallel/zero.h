/* ZeRO-1: the optimizer state sharded over the data-parallel ranks.
 *
 * Contract: the flat parameter arena (the model's order: decayed tensors in [0, decayed), the rest
 * after) is padded to `padded` elements, a multiple of dp · align, and cut into dp equal
 * contiguous shards: rank r owns [r · shard, (r + 1) · shard). The model's master and gradient
 * arenas must hold `padded` elements whose padding is zero when allocated (it is never written
 * with anything but sums of zeros, and never updated). One step:
 *   1. reduce-scatter the gradients (summed, not averaged) so that this rank's shard holds the
 *      sums: data_parallel does it bucket by bucket during the backward pass, or
 *      `zero_reduce_scatter` at once;
 *   2. the global norm from the shards' sums of squares (grad_norm.h, over dp and model);
 *   3. `zero_step`: clip and update this rank's shard of the fp32 master weights with the
 *      optimizer of train/optimizer.c, whose moments hold only this shard (1/dp of the memory);
 *      the shard may straddle the decay boundary: the optimizer's two ranges handle it;
 *   4. `zero_all_gather`: every rank gets the whole updated master arena.
 * The result equals the unsharded optimizer on the summed gradients up to the order of the
 * floating-point summation across ranks. Checkpoints hold global moments:
 * `zero_gather_moments` assembles them, `zero_load_moments` takes this rank's shard back. */
#ifndef CAIRN_ZERO_H
#define CAIRN_ZERO_H

#include <stddef.h>

#include "common/status.h"
#include "kernels/ops.h"
#include "parallel/comm.h"
#include "train/optimizer.h"

/* Shard boundaries in elements: 64 fp32 = 256 bytes, the alignment of vector loads and of the
 * allocator on every backend. */
#define ZERO_ALIGN 64

typedef struct zero_layout {
    size_t total, decayed; /* the model's parameters; weight decay on [0, decayed) */
    size_t padded;         /* total rounded up to a multiple of dp · align */
    size_t shard;          /* padded / dp */
    int dp, dp_rank;
    size_t start;        /* this rank's shard: [start, start + shard) */
    size_t real;         /* its elements below total: the optimizer updates [start, start + real) */
    size_t real_decayed; /* its elements below decayed */
} zero_layout;

void zero_layout_init(zero_layout *z, size_t total, size_t decayed, int dp, int dp_rank,
                      size_t align);
/* Elements of rank r's shard below `limit` (total or decayed). */
size_t zero_shard_below(const zero_layout *z, int rank, size_t limit);

typedef struct zero_optimizer {
    zero_layout layout;
    comm *dp;
    comm_dtype dtype; /* the master type of the backend */
    optimizer opt;    /* over this rank's [start, start + real) */
} zero_optimizer;

int zero_create(zero_optimizer *z, comm *dp, const ops *o, const optim_config *cfg, size_t total,
                size_t decayed, size_t align, status *st);
void zero_destroy(zero_optimizer *z);

/* Step 1 without buckets: the whole padded gradient arena in one reduce-scatter, in place. */
int zero_reduce_scatter(zero_optimizer *z, void *grads, status *st);
/* Σ g² over this rank's shard of the reduced gradients (grad_norm_reduce sums it over dp). */
double zero_shard_sum_squares(const zero_optimizer *z, const void *grads);
/* Step 3; returns the clip factor (1 when not clipped). */
double zero_step(zero_optimizer *z, void *master, void *grads, double lr, double grad_norm,
                 double grad_clip);
/* Step 4, in place over the padded master arena. */
int zero_all_gather(zero_optimizer *z, void *master, status *st);
int zero_all_gather_start(zero_optimizer *z, void *master, comm_request *request, status *st);

/* Every rank: the global moments of all shards into `full`, an optimizer over `total` elements
 * (same kind); its step counter is set too. */
int zero_gather_moments(zero_optimizer *z, optimizer *full, status *st);
/* This rank's shard of the global moments in `full` (and its step counter). */
void zero_load_moments(zero_optimizer *z, const optimizer *full);

#endif
