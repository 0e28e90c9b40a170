/* Turning each rank's accumulated gradients into the gradients of the global batch, and their
 * global norm, for any layout.
 *
 * Contract: after a step's backward passes, `gradient_sync_reduce`
 *   1. sums the two copies of tied embeddings (first and last pipeline stage),
 *   2. sums the partial gradients of replicated tensors over the tensor-parallel group
 *      (param_tensor.tp_partial),
 *   3. sums over data parallelism: the whole arena over dp (bucketed all-reduce, or with ZeRO-1
 *      the reduce-scatter that leaves this rank's shard summed), except that with expert
 *      parallelism the routed experts' tensors are summed over the expert-data-parallel group
 *      (their owner already holds every rank's tokens' contribution) and the rest over dp.
 * Gradients are SUMMED, not averaged: the trainer's loss weights already divide by the global
 * count of loss tokens. `gradient_sync_norm` then gives sqrt(Σ g²) over the model's gradient
 * exactly once: each rank sums what only it holds (param_tensor.counts_in_norm; with ZeRO-1 its
 * shard), reduced over the model group (tp × pp), plus over ep for the experts and over dp for
 * ZeRO-1 shards. With one rank both are the single-rank computation.
 *
 * Overlap: `gradient_sync_init` registers `gradient_sync_layer_final` as the model's
 * grads_final hook, so during the step's last backward pass each layer's tensors get their
 * tensor-parallel sums and join their data-parallel buckets as soon as the layer is done (the
 * buckets' reductions run while the backward pass goes on); `gradient_sync_reduce` then adds
 * what no layer covers (embeddings, final norm, head) and waits. */
#ifndef CAIRN_GRADIENT_SYNC_H
#define CAIRN_GRADIENT_SYNC_H

#include "common/status.h"
#include "parallel/data_parallel.h"
#include "parallel/topology.h"
#include "parallel/zero.h"
#include "train/model.h"

typedef struct gradient_sync {
    model *model;
    parallel_topology *topology;
    comm_dtype master;
    const zero_layout *zero;  /* NULL: no ZeRO-1 */
    data_parallel dp;         /* used when expert parallelism is off */
    int dp_ready;
    float *host_scratch;      /* tied embeddings: both copies on the host, as float */
    uint8_t *tp_summed;       /* [param_count]: partial gradient already summed this step */
    int layers_reported;      /* this step's layers went to the buckets during backward */
    int buckets, early_buckets; /* last step: buckets, and those started during the backward */
    int status_failed;        /* a reduction started by the hook failed: */
    status hook_status;       /* its message, returned by gradient_sync_reduce */
} gradient_sync;

/* bucket_elements: data-parallel bucket size, 0 for dp_bucket_elements(dp) */
int gradient_sync_init(gradient_sync *g, model *m, parallel_topology *t, const zero_layout *zero,
                       int64_t bucket_elements, status *st);
void gradient_sync_release(gradient_sync *g);
/* The model's grads_final hook (context: the gradient_sync). */
void gradient_sync_layer_final(void *context, size_t offset, size_t count);
int gradient_sync_reduce(gradient_sync *g, status *st);
int gradient_sync_norm(gradient_sync *g, double *norm, status *st);

#endif
