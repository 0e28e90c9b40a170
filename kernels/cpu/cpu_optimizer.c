/* Optimizer updates on master buffers (AdamW, AdEMAMix) in the working
 * precision, and the squared norm used for gradient clipping (fixed-chunk
 * double sums, independent of the thread count). */
#include "kernels/cpu/cpu_real.h"

void CPU_FN(adamw_update)(void *param_, const void *grad_, void *m_, void *v_, size_t n,
                          float lr, float beta1, float beta2, float eps, float weight_decay,
                          float bias_correction1, float bias_correction2) {
    real *param = param_, *m = m_, *v = v_;
    const real *grad = grad_;
    const real b1 = beta1, b2 = beta2, rate = lr, epsilon = eps, decay = weight_decay;
    const real bc1 = bias_correction1, bc2 = bias_correction2;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (size_t i = 0; i < n; i++) {
        real g = grad[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        real m_hat = m[i] / bc1, v_hat = v[i] / bc2;
        param[i] -= rate * (m_hat / (rsqrt(v_hat) + epsilon) + decay * param[i]);
    }
}

void CPU_FN(ademamix_update)(void *param_, const void *grad_, void *m1_, void *m2_, void *v_,
                             size_t n, float lr, float beta1, float beta2, float beta3,
                             float alpha, float eps, float weight_decay, float bias_correction1,
                             float bias_correction2) {
    real *param = param_, *m1 = m1_, *m2 = m2_, *v = v_;
    const real *grad = grad_;
    const real b1 = beta1, b2 = beta2, b3 = beta3, a = alpha, rate = lr, epsilon = eps;
    const real decay = weight_decay, bc1 = bias_correction1;
    const real sqrt_bc2 = rsqrt((real)bias_correction2);
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (size_t i = 0; i < n; i++) {
        real g = grad[i];
        m1[i] = b1 * m1[i] + (1 - b1) * g;
        m2[i] = b3 * m2[i] + (1 - b3) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        real update = (m1[i] / bc1 + a * m2[i]) / (rsqrt(v[i]) / sqrt_bc2 + epsilon);
        param[i] -= rate * (update + decay * param[i]);
    }
}

static void squares_chunk(const void *x_, size_t begin, size_t end, double *sums) {
    const real *x = x_;
    sums[0] = CPU_FN(dot)(x + begin, x + begin, end - begin);
}

double CPU_FN(sum_squares)(const void *x, size_t n) {
    double total;
    CPU_FN(chunked_sums)(n, 1, squares_chunk, x, &total);
    return total;
}
