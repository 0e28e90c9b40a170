/* Elementwise arithmetic on act and master buffers. */
#include "kernels/cpu/cpu_real.h"

void CPU_FN(add)(void *out_, const void *a_, const void *b_, size_t n) {
    real *out = out_;
    const real *a = a_, *b = b_;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void CPU_FN(accumulate)(void *dst_, const void *src_, size_t n) {
    real *dst = dst_;
    const real *src = src_;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

void CPU_FN(scale)(void *x_, size_t n, float s) {
    real *x = x_, factor = (real)s;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (size_t i = 0; i < n; i++) x[i] *= factor;
}
