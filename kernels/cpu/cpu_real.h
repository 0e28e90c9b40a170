/* Private header of the CPU backend. Every .c file of kernels/cpu/ is compiled
 * twice, with CPU_PRECISION=32 (the fp32 backend, `ops_cpu`) and
 * CPU_PRECISION=64 (the fp64 gradient-check reference, `ops_cpu64`). This
 * header picks `real` and gives every non-static symbol a precision prefix
 * (CPU_FN(x) is cpu32_x or cpu64_x) so the two compilations link side by side.
 *
 * Determinism rule for every file: a reduction is never split across threads
 * in a way that depends on the thread count. Work is divided into fixed-size
 * pieces (rows, column blocks, row chunks, element chunks) whose partial
 * results are combined in a fixed order.
 */
#ifndef CAIRN_CPU_REAL_H
#define CAIRN_CPU_REAL_H

#include <stddef.h>
#include <stdint.h>
#include <math.h>

#include "kernels/ops.h"

#if CPU_PRECISION == 32
typedef float real;
#define CPU_FN(name) cpu32_##name
#define rexp expf
#define rexpm1 expm1f
#define rlog logf
#define rlog1p log1pf
#define rsqrt sqrtf
#define rtanh tanhf
#define rpow powf
#define rcos cosf
#define rsin sinf
#define rfabs fabsf
#elif CPU_PRECISION == 64
typedef double real;
#define CPU_FN(name) cpu64_##name
#define rexp exp
#define rexpm1 expm1
#define rlog log
#define rlog1p log1p
#define rsqrt sqrt
#define rtanh tanh
#define rpow pow
#define rcos cos
#define rsin sin
#define rfabs fabs
#else
#error "CPU_PRECISION must be 32 or 64"
#endif

enum {
    TILE_ROWS = 4,                        /* rows of a micro-kernel tile */
    TILE_COLS = 64 / (int)sizeof(real),   /* columns of a tile: one cache line */
    ROW_CHUNK = 16,                       /* rows per partial of a weight gradient */
    COLUMN_BLOCK = 64,                    /* columns per task of a scatter-add */
    ELEMENT_CHUNK = 4096,                 /* elements per partial of a scalar sum */
    PARALLEL_MIN_ELEMENTS = 1 << 15,      /* below this many elements an op runs serially */
};

static inline size_t round_up(size_t x, size_t multiple) {
    return (x + multiple - 1) / multiple * multiple;
}

/* End of the rows of chunk `chunk` of ROW_CHUNK rows out of N. */
static inline int chunk_end(int chunk, int N) {
    return (chunk + 1) * ROW_CHUNK < N ? (chunk + 1) * ROW_CHUNK : N;
}

/* ---- cpu_memory.c ---- */
void *CPU_FN(alloc)(size_t bytes);
void CPU_FN(free)(void *ptr);
size_t CPU_FN(peak_memory)(void);
double CPU_FN(peak_flops)(void);
void CPU_FN(describe)(char *out, size_t size);
void CPU_FN(copy)(void *dst, const void *src, size_t bytes);
void CPU_FN(zero)(void *ptr, size_t bytes);
void CPU_FN(synchronize)(void);
void CPU_FN(real_to_real)(void *dst, const void *src, size_t n);
void CPU_FN(real_to_float)(float *host, const void *src, size_t n);
void CPU_FN(float_to_real)(void *dst, const float *host, size_t n);
/* Scratch memory of an op (64-byte aligned, zeroed). Ops cannot fail by
 * contract, so running out of memory here aborts with a message. */
real *CPU_FN(scratch)(size_t count);

/* ---- cpu_reduce.c ---- */
/* Σ a[i]·b[i] in double, in a fixed lane order (vectorizable, deterministic). */
double CPU_FN(dot)(const real *a, const real *b, size_t n);
double CPU_FN(dot3)(const real *a, const real *b, const real *c, size_t n); /* Σ a·b·c */
double CPU_FN(sum)(const real *a, size_t n);
real CPU_FN(max)(const real *a, size_t n); /* -INFINITY when n = 0 */
/* dst[c] += Σ_k partials[k*C + c] over k = 0..chunks-1, summed in order in double. */
void CPU_FN(add_partials)(real *dst, const real *partials, int chunks, int C);
/* Scalar sums over n elements in fixed chunks of ELEMENT_CHUNK: fn(context,
 * begin, end, sums) writes `count` (≤ CHUNKED_SUMS_MAX) sums of one chunk (and
 * may write per-element outputs of its range); chunks run in parallel and
 * totals[i] adds them in chunk order, so the result ignores the thread count. */
enum { CHUNKED_SUMS_MAX = 2 };
typedef void (*chunk_sum_fn)(const void *context, size_t begin, size_t end, double *sums);
void CPU_FN(chunked_sums)(size_t n, int count, chunk_sum_fn fn, const void *context,
                          double *totals);
/* c[r][j] (+)= Σ_k a[r][k] · b[k][j] for r < TILE_ROWS, j < ncols (a multiple
 * of TILE_COLS); accumulate = 0 overwrites c. */
void CPU_FN(tile_multiply)(real *c, size_t ldc, const real *a, size_t lda, const real *b,
                           size_t ldb, int K, int ncols, int accumulate);

/* ---- cpu_gemm.c ---- */
/* C[M][N] = op(A)[M][K] · op(B)[K][N] (+ C when accumulate); row-major, op
 * transposes when the flag is set. Call from outside parallel regions. */
void CPU_FN(gemm)(int transpose_a, int transpose_b, int M, int N, int K, const real *A,
                  int lda, const real *B, int ldb, int accumulate, real *C, int ldc);
/* The portable cache-blocked kernel behind gemm when there is no CBLAS. */
void CPU_FN(gemm_blocked)(int transpose_a, int transpose_b, int M, int N, int K, const real *A,
                          int lda, const real *B, int ldb, int accumulate, real *C, int ldc);

/* ---- op implementations, one group per file ---- */
void CPU_FN(embedding_forward)(void *out, const int32_t *tokens, const int32_t *positions,
                               const void *wte, const void *wpe, int N, int C);
void CPU_FN(embedding_backward)(void *dwte, void *dwpe, const void *dout, const int32_t *tokens,
                                const int32_t *positions, int N, int C);

void CPU_FN(rmsnorm_forward)(void *out, void *rstd, const void *inp, const void *weight, int N,
                             int C, float eps);
void CPU_FN(rmsnorm_backward)(void *dinp, void *dweight, const void *dout, const void *inp,
                              const void *weight, const void *rstd, int N, int C);
void CPU_FN(layernorm_forward)(void *out, void *mean, void *rstd, const void *inp,
                               const void *weight, const void *bias, int N, int C, float eps);
void CPU_FN(layernorm_backward)(void *dinp, void *dweight, void *dbias, const void *dout,
                                const void *inp, const void *weight, const void *mean,
                                const void *rstd, int N, int C);

void CPU_FN(matmul_forward)(void *out, const void *inp, const void *weight, const void *bias,
                            int N, int C, int OC);
void CPU_FN(matmul_backward)(void *dinp, void *dweight, void *dbias, const void *dout,
                             const void *inp, const void *weight, int N, int C, int OC);
void CPU_FN(matmul_grouped_forward)(void *out, const void *inp, const void *weights,
                                    size_t weight_stride, const int32_t *offsets, int groups,
                                    int C, int OC);
void CPU_FN(matmul_grouped_backward)(void *dinp, void *dweights, const void *dout,
                                     const void *inp, const void *weights, size_t weight_stride,
                                     const int32_t *offsets, int groups, int C, int OC);
void CPU_FN(matmul_gelu_forward)(void *out, void *pre, const void *inp, const void *weight,
                                 const void *bias, int N, int C, int OC);
void CPU_FN(matmul_gelu_backward)(void *dinp_pre, void *dweight, void *dbias, const void *dout,
                                  const void *inp, const void *weight, const void *pre, int N,
                                  int C, int OC);

void CPU_FN(qk_norm_forward)(void *out_qkv, void *rstd, const void *inp_qkv, const void *q_weight,
                             const void *k_weight, int N, int H, int KV, int hd, float eps);
void CPU_FN(qk_norm_backward)(void *dinp_qkv, void *dq_weight, void *dk_weight,
                              const void *dout_qkv, const void *inp_qkv, const void *q_weight,
                              const void *k_weight, const void *rstd, int N, int H, int KV,
                              int hd);
void CPU_FN(rope_forward)(void *qkv, const int32_t *positions, int N, int H, int KV, int hd,
                          float theta);
void CPU_FN(rope_backward)(void *dqkv, const int32_t *positions, int N, int H, int KV, int hd,
                           float theta);
void CPU_FN(attention_forward)(void *out, void *lse, const void *qkv,
                               const attention_documents *documents, int B, int T, int H, int KV,
                               int hd);
void CPU_FN(attention_backward)(void *dqkv, const void *dout, const void *qkv, const void *out,
                                const void *lse, const attention_documents *documents, int B,
                                int T, int H, int KV, int hd);

void CPU_FN(swiglu_forward)(void *out, const void *inp, int N, int F);
void CPU_FN(swiglu_backward)(void *dinp, const void *dout, const void *inp, int N, int F);
void CPU_FN(gelu_forward)(void *out, const void *inp, size_t n);
void CPU_FN(gelu_backward)(void *dinp, const void *dout, const void *inp, size_t n);
void CPU_FN(xielu_forward)(void *out, const void *inp, const void *alpha, size_t n);
void CPU_FN(xielu_backward)(void *dinp, void *dalpha, const void *dout, const void *inp,
                            const void *alpha, size_t n);

void CPU_FN(add)(void *out, const void *a, const void *b, size_t n);
void CPU_FN(accumulate)(void *dst, const void *src, size_t n);
void CPU_FN(scale)(void *x, size_t n, float s);
double CPU_FN(sum_squares)(const void *x, size_t n);

void CPU_FN(cross_entropy)(void *logits, void *losses, const int32_t *targets,
                           const void *weights, int N, int V);
void CPU_FN(vocab_parallel_max)(void *row_max, const void *logits, int N, int V);
void CPU_FN(vocab_parallel_sum_exp)(void *stats, const void *logits, const void *row_max,
                                    const int32_t *targets, int N, int V);
void CPU_FN(vocab_parallel_loss)(void *logits, void *losses, const void *row_max,
                                 const void *stats, const int32_t *targets, const void *weights,
                                 int N, int V);

void CPU_FN(gather_rows)(void *out, const void *inp, const int32_t *rows, int n_out, int C);
void CPU_FN(scatter_add_rows)(void *out, const void *inp, const int32_t *rows, int n_inp, int C);
void CPU_FN(moe_dispatch_backward)(void *dinp, const void *drows, const int32_t *slot, int N, int k,
                                   int C);
void CPU_FN(moe_combine_forward)(void *out, const void *expert_out, const void *gates,
                                 const int32_t *slot, int N, int k, int C);
void CPU_FN(moe_combine_backward)(void *dexpert_out, void *dgates, const void *dout,
                                  const void *expert_out, const void *gates, const int32_t *slot,
                                  int N, int k, int C);

void CPU_FN(moe_route_forward)(int32_t *choice, void *gates, int32_t *assigned, int32_t *slot,
                               int32_t *row_token, int32_t *expert_offset, void *losses,
                               const void *logits, const moe_router *router, int N);
void CPU_FN(moe_route_backward)(void *dlogits, const void *dgates, const void *logits,
                                const int32_t *choice, const int32_t *assigned,
                                const moe_router *router, int N, double aux_scale);

void CPU_FN(adamw_update)(void *param, const void *grad, void *m, void *v, size_t n, float lr,
                          float beta1, float beta2, float eps, float weight_decay,
                          float bias_correction1, float bias_correction2);
void CPU_FN(ademamix_update)(void *param, const void *grad, void *m1, void *m2, void *v, size_t n,
                             float lr, float beta1, float beta2, float beta3, float alpha,
                             float eps, float weight_decay, float bias_correction1,
                             float bias_correction2);

#endif
