/* Linear layers (PyTorch layout, weight [OC][C]) on top of the backend GEMM.
 * The bias gradient is a column sum over the N rows (add_partials: one task
 * per column block, rows added in order, independent of the thread count).
 * The GELU variants are the plain ops followed by the GELU ones, so a model
 * gives the same bits whichever it calls. */
#include "kernels/cpu/cpu_real.h"

#include <string.h>

void CPU_FN(matmul_forward)(void *out_, const void *inp_, const void *weight_, const void *bias_,
                            int N, int C, int OC) {
    real *out = out_;
    const real *bias = bias_;
    if (bias) {
#pragma omp parallel for schedule(static) if ((size_t)N * OC >= PARALLEL_MIN_ELEMENTS)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(real));
    }
    CPU_FN(gemm)(0, 1, N, OC, C, inp_, C, weight_, C, bias != NULL, out, OC);
}

void CPU_FN(matmul_backward)(void *dinp, void *dweight, void *dbias, const void *dout,
                             const void *inp, const void *weight, int N, int C, int OC) {
    if (dinp) CPU_FN(gemm)(0, 0, N, C, OC, dout, OC, weight, C, 0, dinp, C);
    if (dweight) CPU_FN(gemm)(1, 0, OC, C, N, dout, OC, inp, C, 1, dweight, C);
    if (dbias) CPU_FN(add_partials)(dbias, dout, N, OC);
}

/* Groups one after another through the ungrouped ops: a group's result does not depend on the
 * others, so the grouped ops give the bits of a loop over matmul_forward / matmul_backward. */
void CPU_FN(matmul_grouped_forward)(void *out, const void *inp, const void *weights,
                                    size_t weight_stride, const int32_t *offsets, int groups,
                                    int C, int OC) {
    for (int g = 0; g < groups; g++) {
        int first = offsets[g], rows = offsets[g + 1] - first;
        if (rows == 0) continue;
        CPU_FN(matmul_forward)((real *)out + (size_t)first * OC,
                               (const real *)inp + (size_t)first * C,
                               (const real *)weights + (size_t)g * weight_stride, NULL, rows, C,
                               OC);
    }
}

void CPU_FN(matmul_grouped_backward)(void *dinp, void *dweights, const void *dout,
                                     const void *inp, const void *weights, size_t weight_stride,
                                     const int32_t *offsets, int groups, int C, int OC) {
    for (int g = 0; g < groups; g++) {
        int first = offsets[g], rows = offsets[g + 1] - first;
        if (rows == 0) continue;
        CPU_FN(matmul_backward)(dinp ? (real *)dinp + (size_t)first * C : NULL,
                                (real *)dweights + (size_t)g * weight_stride, NULL,
                                (const real *)dout + (size_t)first * OC,
                                (const real *)inp + (size_t)first * C,
                                (const real *)weights + (size_t)g * weight_stride, rows, C, OC);
    }
}

void CPU_FN(matmul_gelu_forward)(void *out, void *pre, const void *inp, const void *weight,
                                 const void *bias, int N, int C, int OC) {
    CPU_FN(matmul_forward)(pre, inp, weight, bias, N, C, OC);
    CPU_FN(gelu_forward)(out, pre, (size_t)N * OC);
}

void CPU_FN(matmul_gelu_backward)(void *dinp_pre, void *dweight, void *dbias, const void *dout,
                                  const void *inp, const void *weight, const void *pre, int N,
                                  int C, int OC) {
    CPU_FN(matmul_backward)(dinp_pre, dweight, dbias, dout, inp, weight, N, C, OC);
    /* in place: gelu_backward reads each element's gradient before it writes it */
    CPU_FN(gelu_backward)(dinp_pre, dinp_pre, pre, (size_t)N * C);
}
