/* The global gradient norm when gradients are spread over ranks.
 *
 * Contract: the norm is sqrt(Σ g²) over every gradient element of the model exactly once.
 * Each rank sums the squares of what it holds (`grad_norm_local`), then `grad_norm_reduce`
 * all-reduces the sums over the groups whose members hold DIFFERENT elements and takes the root:
 *   - plain data parallelism: every dp rank holds the same reduced gradients → reduce over the
 *     model group only (tp × pp; a group of one without model parallelism);
 *   - ZeRO-1: each dp rank holds its shard → the `window` is the shard, reduce over dp, then
 *     over the model group.
 * The hook for model parallelism: a tensor replicated over the tp ranks (norm weights, biases
 * of row-parallel layers, router weights) or over pipeline stages (tied embeddings on the
 * first and last stage) must be counted on one rank only. The caller lists its gradient ranges as
 * `grad_norm_part`s with the axes they are replicated over; a part counts on the rank whose
 * coordinate is 0 on every one of those axes (`grad_norm_counts_here`). */
#ifndef CAIRN_GRAD_NORM_H
#define CAIRN_GRAD_NORM_H

#include <stddef.h>

#include "common/status.h"
#include "kernels/ops.h"
#include "parallel/comm.h"
#include "parallel/topology.h"

enum { REPLICATED_TP = 1 << 0, REPLICATED_PP = 1 << 1 };

typedef struct grad_norm_part {
    size_t offset, count; /* elements of this rank's gradient arena */
    unsigned replicated;  /* REPLICATED_* bits: the axes holding identical copies */
} grad_norm_part;

int grad_norm_counts_here(const parallel_grid *g, unsigned replicated);
/* Σ g² over the parts counted on this rank, restricted to [window_start, window_start +
 * window_count) (the ZeRO shard, or the whole arena). */
double grad_norm_local(const ops *o, const void *grads, const grad_norm_part *parts, int part_count,
                       const parallel_grid *g, size_t window_start, size_t window_count);
/* sqrt of `local` summed over each group in turn (NULL groups are skipped). */
int grad_norm_reduce(double local, comm *const *groups, int group_count, double *norm, status *st);

#endif
