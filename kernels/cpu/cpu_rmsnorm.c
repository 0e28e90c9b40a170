/* RMSNorm over whole rows (rmsnorm_*) and over each q and k head of a qkv row
 * (qk_norm_*). Row statistics are summed in double. Weight gradients are
 * summed per chunk of ROW_CHUNK rows into a partial, and the partials are
 * added in chunk order (add_partials), so they do not depend on the thread
 * count. */
#include "kernels/cpu/cpu_real.h"

#include <stdlib.h>
#include <string.h>

/* out = x * r * w over n elements; returns r = 1/sqrt(mean(x²) + eps) */
static real rms_row_forward(real *out, const real *x, const real *w, int n, float eps) {
    double mean_square = CPU_FN(dot)(x, x, (size_t)n) / n;
    real r = (real)(1.0 / sqrt(mean_square + (double)eps));
    for (int c = 0; c < n; c++) out[c] = x[c] * r * w[c];
    return r;
}

/* dinp (+)= r (g - x̂ mean(g x̂)) with g = dout·w, x̂ = x·r; dweight_partial += dout·x̂ */
static void rms_row_backward(real *dinp, real *dweight_partial, const real *dout, const real *x,
                             const real *w, real r, int n, int accumulate) {
    real mean_gx = (real)(CPU_FN(dot3)(dout, w, x, (size_t)n) * (double)r / n);
    for (int c = 0; c < n; c++) {
        real xhat = x[c] * r;
        real d = r * (dout[c] * w[c] - xhat * mean_gx);
        dinp[c] = accumulate ? dinp[c] + d : d;
        dweight_partial[c] += dout[c] * xhat;
    }
}

void CPU_FN(rmsnorm_forward)(void *out_, void *rstd_, const void *inp_, const void *weight_,
                             int N, int C, float eps) {
    real *out = out_, *rstd = rstd_;
    const real *inp = inp_, *weight = weight_;
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PARALLEL_MIN_ELEMENTS)
    for (int n = 0; n < N; n++)
        rstd[n] = rms_row_forward(out + (size_t)n * C, inp + (size_t)n * C, weight, C, eps);
}

void CPU_FN(rmsnorm_backward)(void *dinp_, void *dweight, const void *dout_, const void *inp_,
                              const void *weight_, const void *rstd_, int N, int C) {
    real *dinp = dinp_;
    const real *dout = dout_, *inp = inp_, *weight = weight_, *rstd = rstd_;
    int chunks = (N + ROW_CHUNK - 1) / ROW_CHUNK;
    real *partials = CPU_FN(scratch)((size_t)chunks * C);
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PARALLEL_MIN_ELEMENTS)
    for (int chunk = 0; chunk < chunks; chunk++) {
        for (int n = chunk * ROW_CHUNK; n < chunk_end(chunk, N); n++) {
            size_t at = (size_t)n * C;
            rms_row_backward(dinp + at, partials + (size_t)chunk * C, dout + at, inp + at,
                             weight, rstd[n], C, 1);
        }
    }
    CPU_FN(add_partials)(dweight, partials, chunks, C);
    CPU_FN(free)(partials);
}

void CPU_FN(qk_norm_forward)(void *out_qkv_, void *rstd_, const void *inp_qkv_,
                             const void *q_weight_, const void *k_weight_, int N, int H, int KV,
                             int hd, float eps) {
    real *out_qkv = out_qkv_, *rstd = rstd_;
    const real *inp_qkv = inp_qkv_, *q_weight = q_weight_, *k_weight = k_weight_;
    size_t row = (size_t)(H + 2 * KV) * hd, normed = (size_t)(H + KV) * hd;
#pragma omp parallel for schedule(static) if ((size_t)N * row >= PARALLEL_MIN_ELEMENTS)
    for (int n = 0; n < N; n++) {
        const real *x = inp_qkv + (size_t)n * row;
        real *out = out_qkv + (size_t)n * row;
        for (int h = 0; h < H + KV; h++)
            rstd[(size_t)n * (H + KV) + h] =
                rms_row_forward(out + (size_t)h * hd, x + (size_t)h * hd,
                                h < H ? q_weight : k_weight, hd, eps);
        memcpy(out + normed, x + normed, (row - normed) * sizeof(real));
    }
}

void CPU_FN(qk_norm_backward)(void *dinp_qkv_, void *dq_weight, void *dk_weight,
                              const void *dout_qkv_, const void *inp_qkv_, const void *q_weight_,
                              const void *k_weight_, const void *rstd_, int N, int H, int KV,
                              int hd) {
    real *dinp_qkv = dinp_qkv_;
    const real *dout_qkv = dout_qkv_, *inp_qkv = inp_qkv_, *rstd = rstd_;
    const real *q_weight = q_weight_, *k_weight = k_weight_;
    size_t row = (size_t)(H + 2 * KV) * hd, normed = (size_t)(H + KV) * hd;
    int chunks = (N + ROW_CHUNK - 1) / ROW_CHUNK;
    /* partials of the q weight for all chunks, then those of the k weight */
    real *partials = CPU_FN(scratch)((size_t)2 * chunks * hd);
#pragma omp parallel for schedule(static) if ((size_t)N * row >= PARALLEL_MIN_ELEMENTS)
    for (int chunk = 0; chunk < chunks; chunk++) {
        for (int n = chunk * ROW_CHUNK; n < chunk_end(chunk, N); n++) {
            size_t at = (size_t)n * row;
            for (int h = 0; h < H + KV; h++) {
                int is_q = h < H;
                size_t head = at + (size_t)h * hd;
                real *partial = partials + ((size_t)(is_q ? 0 : chunks) + chunk) * hd;
                rms_row_backward(dinp_qkv + head, partial, dout_qkv + head, inp_qkv + head,
                                 is_q ? q_weight : k_weight, rstd[(size_t)n * (H + KV) + h], hd,
                                 0);
            }
            memcpy(dinp_qkv + at + normed, dout_qkv + at + normed, (row - normed) * sizeof(real));
        }
    }
    CPU_FN(add_partials)(dq_weight, partials, chunks, hd);
    CPU_FN(add_partials)(dk_weight, partials + (size_t)chunks * hd, chunks, hd);
    CPU_FN(free)(partials);
}
