/* LayerNorm over rows. Mean and variance are two-pass sums in double; the
 * weight and bias gradients use per-chunk partials added in chunk order
 * (add_partials), independent of the thread count. */
#include "kernels/cpu/cpu_real.h"

#include <stdlib.h>

void CPU_FN(layernorm_forward)(void *out_, void *mean_, void *rstd_, const void *inp_,
                               const void *weight_, const void *bias_, int N, int C, float eps) {
    real *out = out_, *mean = mean_, *rstd = rstd_;
    const real *inp = inp_, *weight = weight_, *bias = bias_;
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PARALLEL_MIN_ELEMENTS)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C;
        real *o = out + (size_t)n * C;
        double m = CPU_FN(sum)(x, (size_t)C) / C;
        double variance = 0;
        for (int c = 0; c < C; c++) variance += ((double)x[c] - m) * ((double)x[c] - m);
        variance /= C;
        real mu = (real)m, r = (real)(1.0 / sqrt(variance + (double)eps));
        for (int c = 0; c < C; c++) o[c] = (x[c] - mu) * r * weight[c] + bias[c];
        mean[n] = mu;
        rstd[n] = r;
    }
}

void CPU_FN(layernorm_backward)(void *dinp_, void *dweight, void *dbias, const void *dout_,
                                const void *inp_, const void *weight_, const void *mean_,
                                const void *rstd_, int N, int C) {
    real *dinp = dinp_;
    const real *dout = dout_, *inp = inp_, *weight = weight_, *mean = mean_, *rstd = rstd_;
    int chunks = (N + ROW_CHUNK - 1) / ROW_CHUNK;
    /* weight partials for all chunks, then bias partials */
    real *partials = CPU_FN(scratch)((size_t)2 * chunks * C);
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PARALLEL_MIN_ELEMENTS)
    for (int chunk = 0; chunk < chunks; chunk++) {
        real *dweight_partial = partials + (size_t)chunk * C;
        real *dbias_partial = partials + (size_t)(chunks + chunk) * C;
        for (int n = chunk * ROW_CHUNK; n < chunk_end(chunk, N); n++) {
            const real *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            real *dx = dinp + (size_t)n * C;
            real mu = mean[n], r = rstd[n];
            double sum_g = 0, sum_gx = 0;
            for (int c = 0; c < C; c++) {
                double g = (double)d[c] * weight[c];
                sum_g += g;
                sum_gx += g * ((x[c] - mu) * r);
            }
            real mean_g = (real)(sum_g / C), mean_gx = (real)(sum_gx / C);
            for (int c = 0; c < C; c++) {
                real xhat = (x[c] - mu) * r;
                dx[c] += r * (d[c] * weight[c] - mean_g - xhat * mean_gx);
                dweight_partial[c] += d[c] * xhat;
                dbias_partial[c] += d[c];
            }
        }
    }
    CPU_FN(add_partials)(dweight, partials, chunks, C);
    CPU_FN(add_partials)(dbias, partials + (size_t)chunks * C, chunks, C);
    CPU_FN(free)(partials);
}
