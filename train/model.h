/* The transformer: parameters, activations, forward and backward of one micro-batch.
 *
 * Contract: `model_create` lays out every parameter of the configured model
 * (llama or gpt2 blocks, dense or MoE MLPs) in one master arena (decayed
 * tensors first, then the rest, so the optimizer updates two contiguous
 * ranges), one gradient arena of the same layout, a compute copy of the
 * weights when the backend computes in another dtype, and every activation
 * buffer sized for `micro_batch` sequences, all through the backend's `alloc`.
 * Parameters are named as in checkpoints (`layers.0.attn.wq`).
 * `model_forward` runs one micro-batch and, given loss weights, leaves
 * dlogits ready; `model_backward` accumulates weight gradients (+=).
 * Model code never branches on the device: everything goes through `ops`.
 *
 * Parallel shards (`model_create_shard`): a model may hold one pipeline stage (a contiguous
 * range of layers; the embedding on the first stage, final norm and head on the last) and one
 * tensor-parallel slice (Megatron's layout: column-parallel q/k/v and up/gate, row-parallel
 * output and down projections, vocabulary-parallel embedding, head and cross-entropy, norms
 * replicated). Tensors keep their global names; `param_tensor` says which slice of the global
 * tensor this rank holds. The tensor-parallel all-reduces go through `tensor_parallel`, so the
 * model knows nothing about communicators. A stage keeps `slots` sets of activations, one per
 * micro-batch in flight (the 1F1B schedule needs stages - stage). Weights are initialised from
 * the global parameter order, so every layout starts from the single-rank model's weights.
 *
 * Activation recomputation (train.recompute full, Megatron's full/uniform/1): each layer keeps
 * only its input per slot; all its other activations live in one set shared by every layer and
 * slot, which the backward pass of a layer refills by running that layer's forward again from
 * its input. Results are bit-identical to keeping everything (same inputs, weights, kernels);
 * the router's losses are counted once, in the forward pass proper. */
#ifndef CAIRN_MODEL_H
#define CAIRN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "kernels/ops.h"
#include "train/config.h"

typedef enum {
    INIT_NORMAL,         /* N(0, init_std) */
    INIT_NORMAL_OUTPUT,  /* N(0, init_std / sqrt(2 * layers)): projections into the residual stream */
    INIT_ONES,
    INIT_ZEROS,
    INIT_XIELU_ALPHA,    /* {log(expm1(0.8)), log(expm1(0.8 - 0.5))} */
} param_init;

typedef struct param_tensor {
    char name[96];
    int ndim;
    int64_t shape[3];         /* this rank's part */
    int64_t global_shape[3];  /* the whole tensor (as in checkpoints) */
    int shard_dim;            /* -1: whole tensor here; else split along this dimension ... */
    int64_t shard_offset;     /* ... and this rank's part starts here along it */
    size_t offset;  /* in elements, into the parameter arenas */
    size_t count;
    int decay;      /* weight decay applies */
    param_init init;
    int tp_partial;     /* each tensor-parallel rank holds a partial gradient: sum over tp */
    int counts_in_norm; /* this rank's copy counts in the global gradient norm (not a replica) */
    int stage_copy;     /* the last stage's copy of tied embeddings: gradients summed with the
                           first stage's */
    int expert;         /* a routed expert's tensor: with expert parallelism only its owner holds
                           it, so data-parallel reductions run over the expert-data-parallel group */
} param_tensor;

/* The tensor-parallel group as the model needs it: all-reduces of backend buffers over its
 * ranks (sum of act or master elements, max of master elements). Unused when size is 1. */
typedef struct tensor_parallel {
    int rank, size;
    void *context;
    void (*sum_act)(void *context, void *buffer, size_t count);
    void (*sum_master)(void *context, void *buffer, size_t count);
    void (*max_master)(void *context, void *buffer, size_t count);
} tensor_parallel;

/* The expert-parallel group: the ranks that share out a layer's routed experts (rank r holds
 * experts [r·E/size, (r+1)·E/size)) and exchange token rows with all-to-alls. `exchange_counts`
 * sends `per_peer` ints (host memory) to every rank and receives as many from each;
 * `exchange_rows` sends send_rows[q] rows of row_bytes (backend memory, rows for rank q
 * contiguous and in rank order) and receives recv_rows[q] rows from each rank likewise. */
typedef struct expert_parallel {
    int rank, size;
    void *context;
    void (*exchange_counts)(void *context, const int *send, int *recv, int per_peer);
    void (*exchange_rows)(void *context, const void *send, const int *send_rows, void *recv,
                          const int *recv_rows, size_t row_bytes);
} expert_parallel;

/* This rank's part of the model. */
typedef struct model_shard {
    tensor_parallel tp;
    expert_parallel ep;
    int stage, stages;      /* pipeline stage of this rank, and their number */
    int first_layer, layers;  /* the stage's layers: [first_layer, first_layer + layers) */
    int slots;              /* activation sets for micro-batches in flight */
    size_t param_multiple;  /* the parameter arenas hold total_params rounded up to a multiple
                               of this (ZeRO-1 shards; 0 or 1: no padding); padding stays 0 */
    /* Called during a backward pass with `final_backward` set (the step's last micro-batch on
     * this stage) once per layer as soon as its gradients are final, with the arena ranges of
     * the layer's tensors (layer_offsets.range), so data-parallel reductions can start while
     * the backward pass goes on. NULL: not called. */
    void (*grads_final)(void *context, size_t offset, size_t count);
    void *grads_context;
} model_shard;

/* Offsets (in elements) of one layer's tensors; SIZE_MAX when absent. Gate and
 * up projections (and q, k, v) are adjacent so one GEMM computes them. */
typedef struct layer_offsets {
    size_t attn_norm_w, attn_norm_b, wqkv, bqkv, wo, bo, q_norm, k_norm;
    size_t mlp_norm_w, mlp_norm_b, w_up, b_up, w_down, b_down, xielu_alpha;
    size_t router, experts, shared_up, shared_down;  /* experts: E × [up rows ; down] */
    size_t range[2][2];  /* [decayed, not decayed] × [start, end): where the layer's tensors lie */
} layer_offsets;

/* With m->recompute every entry of m->acts shares one set of these buffers (and the host copy of
 * the expert offsets and the expert-parallel plan), except resid_in, which is its own. */
typedef struct layer_activations {
    void *resid_in;       /* [N][d] input of the layer (the residual stream) */
    void *attn_norm_out;  /* [N][d] */
    void *attn_norm_mean, *attn_norm_rstd;  /* master [N] */
    void *qkv_pre;        /* [N][QKV] projection output (QK-norm only; else it is qkv) */
    void *qkv;            /* [N][QKV] after qk-norm and RoPE */
    void *qk_rstd;        /* master [N][H+KV] (QK-norm only) */
    void *attn_out;       /* [N][H*hd] */
    void *attn_lse;       /* master [B][H][T] */
    void *resid_mid;      /* [N][d] after the attention residual */
    void *mlp_norm_out;   /* [N][d] */
    void *mlp_norm_mean, *mlp_norm_rstd;
    void *mlp_pre;        /* dense: [N][up_rows]; MoE shared experts: [N][shared up_rows] */
    void *mlp_act;        /* [N][F] or [N][shared F] */
    /* MoE only; the routing (moe_route_forward) stays on the device but for the offsets */
    void *router_logits;  /* [N][E] */
    void *expert_in;      /* [N*k][d] rows grouped by expert */
    void *expert_pre;     /* [N*k][expert up_rows] */
    void *expert_act;     /* [N*k][expert F] */
    void *expert_out;     /* [N*k][d] */
    int32_t *choice;      /* [N*k] each token's experts */
    void *gates;          /* master [N*k]; combine skips the dropped slots' */
    int32_t *assigned;    /* [E] assignments before dropping */
    int32_t *slot;        /* [N*k] row of each slot, -1 when dropped */
    int32_t *row_token;   /* [N*k] token of each row */
    int32_t *expert_offset;      /* [E+1] expert e's rows: [offset[e], offset[e+1]) */
    int32_t *host_expert_offset; /* host copy of expert_offset: the experts' GEMM shapes */
    /* expert parallelism: the rows this rank's experts process, from every rank of the group,
     * expert-major; expert_pre/expert_act then hold these rows */
    void *ep_in, *ep_out;  /* [ep·N·k][d] */
    int32_t *ep_order;     /* device [ep·N·k]: expert-major row i came as received row ep_order[i] */
    int *ep_send_rows, *ep_recv_rows;  /* host [ep]: rows sent to / received from each rank */
    int32_t *ep_expert_offset; /* host [local experts + 1]: expert-major row ranges */
} layer_activations;

typedef struct model {
    const ops *ops;
    model_config cfg;   /* the whole model */
    model_shard shard;
    int micro_batch, seq_len, N;  /* N = micro_batch * seq_len */
    /* this rank's tensor-parallel slice: heads, kv heads, MLP widths, vocabulary rows */
    int heads, kv_heads, ffn, expert_ffn, vocab;
    int64_t vocab_start;
    int local_experts, first_expert;  /* expert parallelism: this rank's routed experts */
    int head_dim, qkv_dim, up_rows, expert_up_rows, shared_ffn, shared_up_rows;
    int is_moe;
    int first_stage, last_stage;  /* holds the embedding / the final norm, head and loss */
    int final_backward;           /* set by the caller: the next backward pass ends the step */
    int recompute;                /* train.recompute full: layers keep only their inputs */

    int param_count;
    param_tensor *params;
    size_t total_params, decayed_params;  /* decayed tensors occupy [0, decayed_params) */
    size_t padded_params;                 /* elements of the master and gradient arenas */
    size_t whole_params;                  /* of the whole model, every rank's tensors */
    double flops_per_token;               /* of the whole model (model_flops_per_token) */
    size_t embed_tokens, embed_positions, final_norm_w, final_norm_b, lm_head;
    layer_offsets *layers;  /* [shard.layers] */

    void *device_arena;   /* the one allocation every device buffer below is carved from */
    size_t device_bytes;
    void *master;    /* master weights [total_params] */
    void *grads;     /* gradients [total_params] (master type) */
    void *compute;   /* compute-dtype weights (== master when the backend aliases) */

    /* activations (act unless noted); per slot: tokens, positions, doc_start, acts, stage_out */
    int32_t *tokens, *targets, *positions, *doc_start;  /* device [slots][N] */
    int32_t *doc_starts;  /* device [slots][N + 1]: each document's first token (attention) */
    int *doc_counts;      /* host [slots]: documents per slot's micro-batch */
    void *loss_weights;  /* master [N] */
    void *losses;        /* master [N] */
    void *row_max, *loss_stats;  /* master [N], [2N]: vocabulary-parallel cross-entropy */
    layer_activations *acts;  /* [slots][shard.layers] (recompute: sharing all but resid_in) */
    void *stage_out;     /* [slots][N][d] output of the stage's last layer */
    void *resid_out;     /* [N][d] output of the last layer (slot 0's stage_out) */
    void *final_norm_out, *final_norm_mean, *final_norm_rstd;
    void *logits;        /* [N][V], becomes dlogits */
    void *scratch_d;     /* [N][d] projection outputs / gradient scratch */
    void *dresid;        /* [N][d] gradient of the residual stream */
    void *dnorm;         /* [N][d] */
    void *dqkv, *dattn, *dmlp_pre, *dmlp_act;  /* dmlp_act NULL with GELU (fused backward) */
    void *dexpert_in, *dexpert_pre, *dexpert_act, *dexpert_out;
    void *ep_rows, *ep_dout, *ep_din;  /* [ep·N·k][d] expert-parallel staging and gradients */
    int *host_ep_counts;               /* [2][ep][local experts] */
    int32_t *host_ep_order;            /* [ep·N·k] */
    void *dgates;          /* master [N*k] */
    void *drouter_logits;  /* [N][E] */
    moe_router router;     /* model.moe as the routing ops take it */
    void *router_losses;   /* master [2]: {aux, z} summed since model_take_router_losses */
    double moe_scale;      /* set by model_forward, used by model_backward */

    /* host staging for one micro-batch */
    int32_t *host_positions, *host_doc_start, *host_doc_starts; /* [N], [N], [N + 1] */
    float *host_losses;
    int32_t *host_inputs, *host_targets;  /* targets: index in this rank's vocabulary slice or -1 */
    int eod_id;
} model;

int model_create(model *m, const ops *o, const config *c, int eod_id, status *st);
/* The parameter table model_create would lay out for `c` (names, shapes, offsets), without
 * allocating the model: *params is malloc'd, free it. */
int model_param_layout(const config *c, param_tensor **params, int *count, status *st);
/* The part of the model that `shard` describes (model_create: the whole model, one slot). */
int model_create_shard(model *m, const ops *o, const config *c, int eod_id,
                       const model_shard *shard, status *st);
/* Layers of pipeline stage `stage` of `stages`: contiguous and as even as possible, earlier
 * stages taking the extra layers. */
void model_stage_layers(int layers, int stage, int stages, int *first, int *count);
void model_destroy(model *m);
/* Initializes the master weights from seed (host RNG, identical on every backend). */
void model_init_weights(model *m, uint64_t seed);
/* Refreshes the compute copy of the weights after the master weights changed. */
void model_sync_compute_weights(model *m);
const param_tensor *model_find_param(const model *m, const char *name);
/* Copies this rank's part of the whole tensor `global` (row-major, p->global_shape) to dst. */
void param_tensor_slice(const param_tensor *p, const float *global, float *dst);

/* One micro-batch: tokens [micro_batch][seq_len+1] on the host; loss_weights
 * [micro_batch][seq_len] on the host (NULL: forward only, no dlogits).
 * Returns Σ_t losses[t]·(mask) through *loss_sum when mask is given, and the
 * per-token losses in m->host_losses. moe_scale multiplies the router auxiliary
 * losses' gradients (1 / number of micro-batches in the global batch). */
void model_forward(model *m, const int32_t *tokens, const float *loss_weights, double moe_scale);
void model_backward(model *m);
/* The same for one pipeline stage and activation slot. A stage other than the first reads its
 * input from model_stage_input(m, slot), which the caller fills before the forward pass; a stage
 * other than the last leaves its output in model_stage_output(m, slot). Backward: a stage other
 * than the last expects d(output) in model_stage_grad(m); a stage other than the first leaves
 * d(input) there. Buffers hold N × d_model act elements. */
void model_stage_forward(model *m, int slot, const int32_t *tokens, const float *loss_weights,
                         double moe_scale);
void model_stage_backward(model *m, int slot);
void *model_stage_input(model *m, int slot);
void *model_stage_output(model *m, int slot);
void *model_stage_grad(model *m);
/* Zeroes what a step accumulates: the weight gradients and the router-loss sums. */
void model_zero_grads(model *m);
/* The router losses (Switch aux, z) of this stage's MoE layers, summed over the forward passes
 * since the last call or model_zero_grads (train.recompute's second passes do not count); one
 * small copy from the device, after which the sums restart from 0. Dense models: 0. */
void model_take_router_losses(model *m, double *aux, double *z);

/* Model FLOPs per token of a training step (6 · active matmul params + attention) of the whole
 * model, whatever shard this rank holds: the same formula as the PyTorch peer
 * (shared/bench/torch_ref.py). */
double model_flops_per_token(const model *m);

#endif
