/* The model's tensor- and expert-parallel exchanges (model.h's tensor_parallel and
 * expert_parallel hooks) carried out on the topology's communicators.
 *
 * Contract: `shard_comm_bind` fills shard->tp and shard->ep from the tp and ep communicators of
 * `t` for buffers of the backend `o` (act and master element types must be ones the
 * communicator carries: bf16, fp32 or fp64; the error names the backend otherwise). Rows and sums
 * travel on the topology's device communicators, expert counts on its host ones. The hooks cannot
 * return errors (the model's passes do not fail): a failed collective prints its one-line
 * message and aborts the job, as a timed-out one does. `sc` must outlive the model. */
#ifndef CAIRN_SHARD_COMM_H
#define CAIRN_SHARD_COMM_H

#include <stdint.h>

#include "common/status.h"
#include "kernels/ops.h"
#include "parallel/topology.h"
#include "train/model.h"

typedef struct shard_comm_context {
    comm *comm;            /* the backend's buffers */
    comm *host;            /* host memory: the expert-parallel counts */
    comm_dtype act, master;
    int64_t *counts;       /* [2 × size × per_peer]: counts as the communicator carries them */
    size_t *row_counts;    /* [4 × size]: element counts and offsets of an exchange */
    int capacity;          /* per_peer the counts buffer holds */
} shard_comm_context;

typedef struct shard_comm {
    shard_comm_context tp, ep;
} shard_comm;

int shard_comm_bind(shard_comm *sc, model_shard *shard, parallel_topology *t, const ops *o,
                    status *st);
void shard_comm_release(shard_comm *sc);

#endif
