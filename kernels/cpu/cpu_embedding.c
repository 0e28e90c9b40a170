/* Token (+ position) embedding lookup and its gradient, which is a
 * deterministic scatter-add of the output gradient rows. */
#include "kernels/cpu/cpu_real.h"

void CPU_FN(embedding_forward)(void *out_, const int32_t *tokens, const int32_t *positions,
                               const void *wte_, const void *wpe_, int N, int C) {
    real *out = out_;
    const real *wte = wte_, *wpe = wpe_;
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PARALLEL_MIN_ELEMENTS)
    for (int n = 0; n < N; n++) {
        real *o = out + (size_t)n * C;
        const real *p = wpe ? wpe + (size_t)positions[n] * C : NULL;
        if (tokens[n] < 0) {
            for (int c = 0; c < C; c++) o[c] = p ? p[c] : 0;
            continue;
        }
        const real *t = wte + (size_t)tokens[n] * C;
        if (p) {
            for (int c = 0; c < C; c++) o[c] = t[c] + p[c];
        } else {
            for (int c = 0; c < C; c++) o[c] = t[c];
        }
    }
}

void CPU_FN(embedding_backward)(void *dwte, void *dwpe, const void *dout,
                                const int32_t *tokens, const int32_t *positions, int N, int C) {
    CPU_FN(scatter_add_rows)(dwte, dout, tokens, N, C);
    if (dwpe) CPU_FN(scatter_add_rows)(dwpe, dout, positions, N, C);
}
