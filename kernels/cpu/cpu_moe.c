/* Row movement for mixture-of-experts dispatch and combine. scatter_add_rows
 * (also the embedding gradient) gives each task a block of columns and adds
 * the rows in index order, so repeated targets never race and the sums do
 * not depend on the thread count. */
#include "kernels/cpu/cpu_real.h"

#include <string.h>

void CPU_FN(gather_rows)(void *out_, const void *inp_, const int32_t *rows, int n_out, int C) {
    real *out = out_;
    const real *inp = inp_;
#pragma omp parallel for schedule(static) if ((size_t)n_out * C >= PARALLEL_MIN_ELEMENTS)
    for (int i = 0; i < n_out; i++)
        memcpy(out + (size_t)i * C, inp + (size_t)rows[i] * C, (size_t)C * sizeof(real));
}

void CPU_FN(scatter_add_rows)(void *out_, const void *inp_, const int32_t *rows, int n_inp,
                              int C) {
    real *out = out_;
    const real *inp = inp_;
    int blocks = (C + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)n_inp * C >= PARALLEL_MIN_ELEMENTS)
    for (int block = 0; block < blocks; block++) {
        int c0 = block * COLUMN_BLOCK;
        int width = C - c0 < COLUMN_BLOCK ? C - c0 : COLUMN_BLOCK;
        for (int i = 0; i < n_inp; i++) {
            if (rows[i] < 0) continue;
            real *dst = out + (size_t)rows[i] * C + c0;
            const real *src = inp + (size_t)i * C + c0;
            for (int c = 0; c < width; c++) dst[c] += src[c];
        }
    }
}

void CPU_FN(moe_dispatch_backward)(void *dinp_, const void *drows_, const int32_t *slot, int N,
                                   int k, int C) {
    real *dinp = dinp_;
    const real *drows = drows_;
#pragma omp parallel for schedule(static) if ((size_t)N * k * C >= PARALLEL_MIN_ELEMENTS)
    for (int n = 0; n < N; n++) {
        real *d = dinp + (size_t)n * C;
        for (int j = 0; j < k; j++) {
            int s = slot[(size_t)n * k + j];
            if (s < 0) continue;
            const real *g = drows + (size_t)s * C;
            for (int c = 0; c < C; c++)
                d[c] += g[c];
        }
    }
}

void CPU_FN(moe_combine_forward)(void *out_, const void *expert_out_, const void *gates_,
                                 const int32_t *slot, int N, int k, int C) {
    real *out = out_;
    const real *expert_out = expert_out_, *gates = gates_;
#pragma omp parallel for schedule(static) if ((size_t)N * k * C >= PARALLEL_MIN_ELEMENTS)
    for (int n = 0; n < N; n++) {
        real *o = out + (size_t)n * C;
        memset(o, 0, (size_t)C * sizeof(real));
        for (int j = 0; j < k; j++) {
            int s = slot[(size_t)n * k + j];
            if (s < 0) continue;
            real g = gates[(size_t)n * k + j];
            const real *e = expert_out + (size_t)s * C;
            for (int c = 0; c < C; c++) o[c] += g * e[c];
        }
    }
}

void CPU_FN(moe_combine_backward)(void *dexpert_out_, void *dgates_, const void *dout_,
                                  const void *expert_out_, const void *gates_,
                                  const int32_t *slot, int N, int k, int C) {
    real *dexpert_out = dexpert_out_, *dgates = dgates_;
    const real *dout = dout_, *expert_out = expert_out_, *gates = gates_;
#pragma omp parallel for schedule(static) if ((size_t)N * k * C >= PARALLEL_MIN_ELEMENTS)
    for (int n = 0; n < N; n++) {
        const real *d = dout + (size_t)n * C;
        for (int j = 0; j < k; j++) {
            size_t i = (size_t)n * k + j;
            int s = slot[i];
            if (s < 0) {
                dgates[i] = 0;
                continue;
            }
            real g = gates[i];
            real *de = dexpert_out + (size_t)s * C;
            for (int c = 0; c < C; c++) de[c] = g * d[c];
            dgates[i] = (real)CPU_FN(dot)(d, expert_out + (size_t)s * C, (size_t)C);
        }
    }
}
