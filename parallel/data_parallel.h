/* Data-parallel gradient reduction in buckets, overlapped with the backward pass.
 *
 * Contract: the gradients live in one flat arena (the model's). It is cut into fixed-size
 * buckets of `bucket_elements`. During the backward pass of the LAST micro-batch of a step (the
 * earlier ones only accumulate), the caller reports every range whose gradient is final with
 * `dp_grad_ready(offset, count)`; when all elements of a bucket are reported, its reduction
 * starts at once (non-blocking) while the backward pass goes on. `dp_finish` starts the buckets
 * not yet started (so calling only `dp_finish` is a correct, non-overlapped reduction), waits for
 * all of them, and readies the object for the next step. Every rank of the communicator must make
 * the same sequence of calls (buckets then start in the same order everywhere, as MPI and NCCL
 * require). A range must be reported once per step and only when nothing more will be added to
 * it: with tied embeddings the embedding gradient is final only after the embedding's backward.
 *
 * The reduction SUMS over ranks, it does not average: the trainer's loss weights are
 * 1 / (counted tokens of the global batch), counted over all ranks, so the sum of the ranks'
 * gradients is the gradient of the global-mean loss (averaging would divide by dp twice).
 *
 * Modes: all-reduce (every rank gets the whole summed arena), or with a ZeRO-1 layout
 * (zero.h) a reduce-scatter per bucket, in place, that leaves each rank's shard of the bucket
 * summed (the arena is then the padded one; elements outside this rank's shard are undefined
 * afterwards). Progress: the MPI backend advances non-blocking collectives only inside MPI calls,
 * so dp_grad_ready also polls the buckets in flight (`dp_poll` does only that). */
#ifndef CAIRN_DATA_PARALLEL_H
#define CAIRN_DATA_PARALLEL_H

#include <stddef.h>

#include "common/status.h"
#include "parallel/comm.h"
#include "parallel/zero.h"

/* The smallest bucket: 2^25 elements (128 MiB of fp32), near Megatron's 40M, keeps each
 * collective at full bandwidth while the last bucket, which cannot overlap, stays short. */
#define DP_BUCKET_ELEMENTS ((size_t)1 << 25)

/* Bucket size for `dp` ranks: max(DP_BUCKET_ELEMENTS, 2^20 · dp), Megatron's max(40M, 1M · dp)
 * in powers of two: growing with dp bounds the latency a ring pays per bucket (2 (dp - 1)
 * steps), which would otherwise dominate at hundreds of ranks. */
size_t dp_bucket_elements(int dp);

typedef struct dp_bucket {
    size_t start, count; /* elements of the arena */
    size_t ready;        /* elements reported this step */
    int started;
    size_t *shard_counts; /* reduce-scatter: the bucket's part in each rank's shard */
    comm_request request;
} dp_bucket;

typedef struct data_parallel {
    comm *comm;
    void *grads;
    size_t count; /* elements reduced (the padded count with ZeRO) */
    comm_dtype dtype;
    size_t element_bytes;
    size_t bucket_elements;
    int bucket_count;
    dp_bucket *buckets;
    const zero_layout *zero; /* NULL: all-reduce */
} data_parallel;

/* zero: NULL for all-reduce, else the ZeRO-1 layout (count must be zero->padded). */
int dp_create(data_parallel *d, comm *c, void *grads, size_t count, comm_dtype dtype,
              size_t bucket_elements, const zero_layout *zero, status *st);
void dp_destroy(data_parallel *d);
int dp_grad_ready(data_parallel *d, size_t offset, size_t count, status *st);
int dp_poll(data_parallel *d, status *st);
int dp_finish(data_parallel *d, status *st);
/* Buckets whose reduction has started this step. */
int dp_started_buckets(const data_parallel *d);

#endif
