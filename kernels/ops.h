/* The backend interface: every forward and backward op the model needs, as one
 * table of function pointers per backend (cpu, cpu64, cuda).
 *
 * Contract:
 * - All buffer pointers are device pointers of the backend (host memory for
 *   the CPU backends), allocated with `alloc`.
 * - Three element types: `act` (activations, activation gradients and the
 *   compute copy of the weights: fp32 on cpu, fp64 on cpu64, bf16 on cuda),
 *   `master` (master weights, weight gradients, optimizer state, per-token
 *   statistics such as rstd/lse/losses: fp32 on cpu and cuda, fp64 on cpu64),
 *   and `int32_t` (tokens, positions, indices). Arguments are typed `void *`
 *   and the comment says which of act/master they hold.
 * - Weight-gradient outputs (`dweight`, `dbias`, `dwte`, ...) are ACCUMULATED
 *   (+=) so gradient accumulation over micro-batches needs no extra pass.
 *   Activation-gradient outputs are overwritten, except where a comment says
 *   `+=` (norm backward adds into the residual-stream gradient).
 * - Linear layers follow PyTorch: weight[OC][C], out = inp · weightᵀ + bias.
 * - N is the number of token rows (micro_batch × seq_len).
 * - The cpu backend is deterministic: same inputs give bit-identical outputs
 *   whatever the thread count.
 * - Ops never fail: shapes are validated by the caller (config validation);
 *   `alloc` returns NULL when memory runs out.
 * - `peak_memory` counts every byte the backend holds at once (buffers from `alloc`, its own
 *   scratch and workspaces), so it is the number to compare with a peer's allocator peak
 *   (torch.cuda.max_memory_allocated), not what the process or the driver holds besides.
 */
#ifndef CAIRN_OPS_H
#define CAIRN_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/attention_documents.h"

/* A mixture-of-experts router's fixed settings (model.moe in the config). */
typedef struct moe_router {
    int experts, top_k;
    int sigmoid;             /* 0: softmax router, 1: sigmoid router */
    double aux_coef, z_coef; /* Switch load-balancing loss, router z-loss */
    double capacity_factor;  /* > 0: at most moe_capacity rows per expert; <= 0: dropless */
} moe_router;

/* Rows an expert keeps of a micro-batch of N tokens: ceil(N·k/E·capacity_factor), or N·k (every
 * assignment) without a capacity. One definition, so every backend drops alike. */
static inline int moe_capacity(const moe_router *router, int N) {
    if (router->capacity_factor <= 0) return N * router->top_k;
    double rows = (double)N * router->top_k / router->experts * router->capacity_factor;
    int capacity = (int)rows;
    return capacity < rows ? capacity + 1 : capacity;
}

typedef struct ops {
    const char *name;            /* "cpu", "cpu64", "cuda" */
    size_t act_bytes;            /* bytes per act element */
    size_t master_bytes;         /* bytes per master element */
    int compute_aliases_master;  /* 1: forward ops may read master weights directly */
    int host_memory;             /* 1: buffers are host memory (MPI can use them as they are) */

    /* ---- the device ---- */
    /* its name for run.json and the progress output, e.g. "NVIDIA H100 80GB HBM3 (GPU 0 of 4)" */
    void (*describe)(char *out, size_t size);
    /* its dense bf16 peak in FLOP/s, the denominator of MFU; 0 when unknown (CPUs) */
    double (*peak_flops)(void);
    /* the most bytes of backend memory held at once so far (see the contract above) */
    size_t (*peak_memory)(void);
    /* 16 bytes that name the device among this machine's, the same in every process that
     * computes on it and different for every other device of the machine, as NCCL tells GPUs
     * apart (CUDA: the PCI domain, bus and device numbers, so MIG slices of one GPU are one
     * device); 0, or -1 when the driver does not say. NULL for backends on host memory. */
    int (*device_identity)(unsigned char identity[16]);

    /* ---- memory ---- */
    void *(*alloc)(size_t bytes); /* zero-filled; NULL on failure */
    void (*free)(void *ptr);
    void (*copy_to_device)(void *dst, const void *host_src, size_t bytes);
    void (*copy_to_host)(void *host_dst, const void *src, size_t bytes);
    void (*copy_device)(void *dst, const void *src, size_t bytes);
    void (*zero)(void *ptr, size_t bytes);
    void (*synchronize)(void); /* waits for the ops queued so far (not for communication) */

    /* ---- conversions (n elements) ---- */
    void (*master_to_act)(void *act, const void *master, size_t n);
    void (*act_to_float)(float *host, const void *act, size_t n);
    void (*float_to_act)(void *act, const float *host, size_t n);
    void (*master_to_float)(float *host, const void *master, size_t n);
    void (*float_to_master)(void *master, const float *host, size_t n);

    /* ---- embedding ---- */
    /* out[n] = wte[tokens[n]] + (wpe ? wpe[positions[n]] : 0); wte [V][C], wpe [P][C] (act).
     * tokens[n] < 0 (a token of another tensor-parallel rank's vocabulary slice) adds nothing. */
    void (*embedding_forward)(void *out, const int32_t *tokens, const int32_t *positions,
                              const void *wte, const void *wpe, int N, int C);
    /* dwte[tokens[n]] += dout[n] (tokens[n] >= 0); dwpe[positions[n]] += dout[n] (master; dwpe
     * may be NULL) */
    void (*embedding_backward)(void *dwte, void *dwpe, const void *dout, const int32_t *tokens,
                               const int32_t *positions, int N, int C);

    /* ---- normalization ---- */
    /* out = inp / sqrt(mean(inp²) + eps) * weight; rstd [N] (master) */
    void (*rmsnorm_forward)(void *out, void *rstd, const void *inp, const void *weight, int N,
                            int C, float eps);
    /* dinp += ...; dweight += ... */
    void (*rmsnorm_backward)(void *dinp, void *dweight, const void *dout, const void *inp,
                             const void *weight, const void *rstd, int N, int C);
    /* out = (inp - mean) * rstd * weight + bias; mean, rstd [N] (master) */
    void (*layernorm_forward)(void *out, void *mean, void *rstd, const void *inp,
                              const void *weight, const void *bias, int N, int C, float eps);
    /* dinp += ...; dweight += ...; dbias += ... */
    void (*layernorm_backward)(void *dinp, void *dweight, void *dbias, const void *dout,
                               const void *inp, const void *weight, const void *mean,
                               const void *rstd, int N, int C);

    /* ---- linear ---- */
    /* out[N][OC] = inp[N][C] · weight[OC][C]ᵀ + bias[OC] (bias may be NULL) */
    void (*matmul_forward)(void *out, const void *inp, const void *weight, const void *bias,
                           int N, int C, int OC);
    /* dinp = dout · weight (overwrite; skipped when NULL); dweight += doutᵀ · inp;
     * dbias += Σ_n dout (skipped when NULL) */
    void (*matmul_backward)(void *dinp, void *dweight, void *dbias, const void *dout,
                            const void *inp, const void *weight, int N, int C, int OC);
    /* Grouped linear layers (routed experts), no bias: group g owns rows
     * [offsets[g], offsets[g+1]) of inp/out and the weight [OC][C] at weights + g·weight_stride
     * elements; offsets [groups+1] is host memory, offsets[0] = 0. Per group, the contract of
     * matmul_forward / matmul_backward (dweights: the gradients at the same element offsets).
     * Rows past offsets[groups] are untouched. */
    void (*matmul_grouped_forward)(void *out, const void *inp, const void *weights,
                                   size_t weight_stride, const int32_t *offsets, int groups, int C,
                                   int OC);
    void (*matmul_grouped_backward)(void *dinp, void *dweights, const void *dout, const void *inp,
                                    const void *weights, size_t weight_stride,
                                    const int32_t *offsets, int groups, int C, int OC);
    /* A linear layer and the GELU after it: pre[N][OC] = inp · weightᵀ + bias (bias may be
     * NULL), out = gelu(pre) (tanh approximation, as gelu_forward), both overwritten; pre is
     * what the backward reads. The cpu backends run exactly matmul_forward then gelu_forward;
     * cuda applies the GELU in the GEMM's epilogue where cuBLASLt can (docs/cuda.md), to the
     * fp32 product before it is rounded to bf16. */
    void (*matmul_gelu_forward)(void *out, void *pre, const void *inp, const void *weight,
                                const void *bias, int N, int C, int OC);
    /* The backward of a linear layer whose input is inp = gelu(pre), through that GELU:
     * dinp_pre[N][C] = (dout · weight) ⊙ gelu'(pre) (overwrite; pre [N][C]), dweight += doutᵀ ·
     * inp, dbias += Σ_n dout (skipped when NULL). The cpu backends run exactly matmul_backward
     * then gelu_backward; cuda fuses the GELU into the dinp GEMM where cuBLASLt can. */
    void (*matmul_gelu_backward)(void *dinp_pre, void *dweight, void *dbias, const void *dout,
                                 const void *inp, const void *weight, const void *pre, int N,
                                 int C, int OC);

    /* ---- attention block pieces; qkv rows are [q heads (H) | k heads (KV) | v heads (KV)] × hd ---- */
    /* RMSNorm over hd of each q head (q_weight [hd]) and each k head (k_weight [hd]);
     * v copied. rstd [N][H+KV] (master) */
    void (*qk_norm_forward)(void *out_qkv, void *rstd, const void *inp_qkv, const void *q_weight,
                            const void *k_weight, int N, int H, int KV, int hd, float eps);
    /* dinp_qkv overwritten (v part copied from dout); dq_weight, dk_weight += */
    void (*qk_norm_backward)(void *dinp_qkv, void *dq_weight, void *dk_weight,
                             const void *dout_qkv, const void *inp_qkv, const void *q_weight,
                             const void *k_weight, const void *rstd, int N, int H, int KV,
                             int hd);
    /* Rotary embedding in place on the q and k heads, interleaved pairs (2i, 2i+1):
     * angle = positions[n] · theta^(-2i/hd). backward applies the inverse rotation. */
    void (*rope_forward)(void *qkv, const int32_t *positions, int N, int H, int KV, int hd,
                         float theta);
    void (*rope_backward)(void *dqkv, const int32_t *positions, int N, int H, int KV, int hd,
                          float theta);
    /* Causal attention, scale 1/sqrt(hd), query head h reads kv head h / (H/KV).
     * documents (may be NULL; kernels/attention_documents.h): position t of sequence b attends
     * only to keys j with documents->doc_start[b*T+t] <= j <= t (block-diagonal per document).
     * out [N][H*hd] (act), lse [B][H][T] (master) */
    void (*attention_forward)(void *out, void *lse, const void *qkv,
                              const attention_documents *documents, int B, int T, int H, int KV,
                              int hd);
    /* dqkv overwritten */
    void (*attention_backward)(void *dqkv, const void *dout, const void *qkv, const void *out,
                               const void *lse, const attention_documents *documents, int B,
                               int T, int H, int KV, int hd);

    /* ---- activations ---- */
    /* inp [N][2F] = [gate | up]; out [N][F] = silu(gate) * up */
    void (*swiglu_forward)(void *out, const void *inp, int N, int F);
    void (*swiglu_backward)(void *dinp, const void *dout, const void *inp, int N, int F);
    /* GELU, tanh approximation, n elements */
    void (*gelu_forward)(void *out, const void *inp, size_t n);
    void (*gelu_backward)(void *dinp, const void *dout, const void *inp, size_t n);
    /* xIELU (Apertus): alpha [2] (act) = {alpha_p_raw, alpha_n_raw};
     * alpha_p = softplus(alpha_p_raw), alpha_n = 0.5 + softplus(alpha_n_raw), beta = 0.5:
     * x > 0: alpha_p x² + beta x; x <= 0: alpha_n expm1(min(x, -1e-6)) - alpha_n x + beta x */
    void (*xielu_forward)(void *out, const void *inp, const void *alpha, size_t n);
    /* dalpha [2] (master) += */
    void (*xielu_backward)(void *dinp, void *dalpha, const void *dout, const void *inp,
                           const void *alpha, size_t n);

    /* ---- elementwise (act) ---- */
    void (*add)(void *out, const void *a, const void *b, size_t n); /* out = a + b */
    void (*accumulate)(void *dst, const void *src, size_t n);       /* dst += src */

    /* ---- loss ---- */
    /* losses[n] = logsumexp(logits[n]) - logits[n][targets[n]] (master [N]).
     * When weights (master [N]) is not NULL, logits is overwritten in place by
     * dlogits = (softmax(logits) - onehot(target)) * weights[n]. */
    void (*cross_entropy)(void *logits, void *losses, const int32_t *targets, const void *weights,
                          int N, int V);
    /* The same, vocabulary-parallel (Megatron): this rank holds logits [N][V] for a slice of the
     * vocabulary and targets[n] is the target's index in the slice, or -1 when another rank holds
     * it. Three passes, with all-reduces over the tensor-parallel ranks between them:
     *   vocab_parallel_max:     row_max [N] = max of the slice                  → all-reduce max
     *   vocab_parallel_sum_exp: stats [2N] = {Σ exp(logit - row_max) of the slice,
     *                                         target logit or 0}              → all-reduce sum
     *   vocab_parallel_loss:    losses = row_max + log(stats[n]) - stats[N+n]; with weights the
     *                           logits become dlogits as in cross_entropy.
     * row_max, stats, losses and weights are master buffers. */
    void (*vocab_parallel_max)(void *row_max, const void *logits, int N, int V);
    void (*vocab_parallel_sum_exp)(void *stats, const void *logits, const void *row_max,
                                   const int32_t *targets, int N, int V);
    void (*vocab_parallel_loss)(void *logits, void *losses, const void *row_max, const void *stats,
                                const int32_t *targets, const void *weights, int N, int V);

    /* ---- mixture of experts ---- */
    /* Routing of N tokens from the router logits [N][E] (act), E = router->experts, k = top_k:
     * - choice [N*k]: each token's k experts, best first. Experts rank by logit (for a
     *   sigmoid router too: the sigmoid keeps the order, and rounding it would tie large
     *   logits; NaN lowest), ties to the lower expert index.
     * - gates [N*k] (master): softmax router: softmax over the k chosen logits (Mixtral's
     *   renormalised top-k); sigmoid router: the chosen sigmoid scores, divided by their sum
     *   (+1e-20) when k > 1. Gates of dropped slots are kept (combine skips them).
     * - assigned [E]: assignments per expert before dropping.
     * - capacity (router->capacity_factor > 0): an expert assigned more than moe_capacity
     *   slots keeps those with the highest gates, ties to the earlier token; the rest drop.
     * - rows: the kept (token, expert) pairs grouped by expert, tokens in order inside each
     *   expert; expert e owns rows [expert_offset[e], expert_offset[e+1]) (expert_offset
     *   [E+1]); row_token [N*k] gives each row's token (the first expert_offset[E] entries are
     *   written) and slot [N*k] each slot's row, -1 when dropped.
     * - losses (master [2], skipped when NULL) += {aux, z}: the Switch load-balancing loss
     *   aux_coef·E/(N²·k)·Σ_e (Σ_t p_te)·assigned_e, p_t the softmax of the token's E logits
     *   (sigmoid router: its E sigmoid scores divided by their sum), and the z-loss
     *   z_coef/N·Σ_t logsumexp(logits_t)². They stay on the device; the caller reads them
     *   when it needs them.
     * All int32 outputs are device buffers; the integers are exact on every backend. */
    void (*moe_route_forward)(int32_t *choice, void *gates, int32_t *assigned, int32_t *slot,
                              int32_t *row_token, int32_t *expert_offset, void *losses,
                              const void *logits, const moe_router *router, int N);
    /* dlogits [N][E] (act, overwritten) from dgates [N*k] (master: the gradient of the gates
     * as combine applies them, 0 for dropped slots) through the gates, plus aux_scale times the
     * gradients of the aux and z losses; logits, choice and assigned as moe_route_forward left
     * them. */
    void (*moe_route_backward)(void *dlogits, const void *dgates, const void *logits,
                               const int32_t *choice, const int32_t *assigned,
                               const moe_router *router, int N, double aux_scale);

    /* out[i] = inp[rows[i]] for i < n_out (act, C columns) */
    void (*gather_rows)(void *out, const void *inp, const int32_t *rows, int n_out, int C);
    /* out[rows[i]] += inp[i] for i < n_inp and rows[i] >= 0 */
    void (*scatter_add_rows)(void *out, const void *inp, const int32_t *rows, int n_inp, int C);
    /* dinp[n] += Σ_j drows[slot[n*k+j]] over slots != -1 (act, C columns): the backward of
     * dispatching tokens to their rows (gather_rows by row_token). Each token's sum runs over
     * j in order and is rounded once, with no atomics: the same bits every run. */
    void (*moe_dispatch_backward)(void *dinp, const void *drows, const int32_t *slot, int N, int k,
                                  int C);
    /* out[n] = Σ_j gates[n*k+j] * expert_out[slot[n*k+j]] over slots != -1 (overwrite).
     * gates (master [N*k]) */
    void (*moe_combine_forward)(void *out, const void *expert_out, const void *gates,
                                const int32_t *slot, int N, int k, int C);
    /* dexpert_out[slot] = gate * dout[n] (overwrite, rows of dropped slots untouched);
     * dgates[n*k+j] = dout[n] · expert_out[slot] (overwrite, 0 for dropped) */
    void (*moe_combine_backward)(void *dexpert_out, void *dgates, const void *dout,
                                 const void *expert_out, const void *gates, const int32_t *slot,
                                 int N, int k, int C);

    /* ---- optimizer (master buffers, n elements) ---- */
    /* AdamW with decoupled decay: p -= lr * (m̂ / (sqrt(v̂) + eps) + wd * p),
     * m̂ = m / bias_correction1, v̂ = v / bias_correction2 */
    void (*adamw_update)(void *param, const void *grad, void *m, void *v, size_t n, float lr,
                         float beta1, float beta2, float eps, float weight_decay,
                         float bias_correction1, float bias_correction2);
    /* AdEMAMix (Apertus): m1 = β1 m1 + (1-β1) g; m2 = β3 m2 + (1-β3) g; v = β2 v + (1-β2) g²;
     * p -= lr * ((m1/bc1 + alpha m2) / (sqrt(v)/sqrt(bc2) + eps) + wd p) */
    void (*ademamix_update)(void *param, const void *grad, void *m1, void *m2, void *v, size_t n,
                            float lr, float beta1, float beta2, float beta3, float alpha, float eps,
                            float weight_decay, float bias_correction1, float bias_correction2);
    /* Σ x² in double, returned to the host (synchronizes) */
    double (*sum_squares)(const void *x, size_t n);
    /* x *= s (master) */
    void (*scale)(void *x, size_t n, float s);
} ops;

/* The backends compiled into this binary. */
const ops *ops_cpu(void);
const ops *ops_cpu64(void); /* fp64 everywhere: the finite-difference reference */
#ifdef CAIRN_HAVE_CUDA
/* The GPU `local_rank % visible GPUs` (one rank per GPU: local_rank is the rank's place among
 * the ranks of its node; 0 for a process on its own). NULL with a message in `why` (at least 256
 * bytes) when no usable GPU is present. The first successful call fixes the device for the
 * process. */
const ops *ops_cuda(int local_rank, char *why, size_t why_size);
#endif

#endif
