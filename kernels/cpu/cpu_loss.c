/* Cross-entropy over the vocabulary with a max-subtracted log-sum-exp; one
 * row per task. With weights, the logits are replaced in place by the
 * gradient, reusing the exponentials of the forward pass. */
#include "kernels/cpu/cpu_real.h"

#include <assert.h>

void CPU_FN(cross_entropy)(void *logits_, void *losses_, const int32_t *targets,
                           const void *weights_, int N, int V) {
    real *logits = logits_, *losses = losses_;
    const real *weights = weights_;
#pragma omp parallel for schedule(static) if ((size_t)N * V >= PARALLEL_MIN_ELEMENTS)
    for (int n = 0; n < N; n++) {
        real *x = logits + (size_t)n * V;
        int target = targets[n];
        assert(target >= 0 && target < V);
        real max = CPU_FN(max)(x, (size_t)V);
        real target_logit = x[target];
        double sum = 0;
        if (weights) {
            for (int v = 0; v < V; v++) {
                x[v] = rexp(x[v] - max);
                sum += x[v];
            }
        } else {
            for (int v = 0; v < V; v++) sum += rexp(x[v] - max);
        }
        real lse = (real)((double)max + log(sum));
        losses[n] = lse - target_logit;
        if (weights) {
            real w = weights[n], factor = (real)(1.0 / sum) * w;
            for (int v = 0; v < V; v++) x[v] *= factor;
            x[target] -= w;
        }
    }
}

void CPU_FN(vocab_parallel_max)(void *row_max_, const void *logits_, int N, int V) {
    real *row_max = row_max_;
    const real *logits = logits_;
    for (int n = 0; n < N; n++) row_max[n] = CPU_FN(max)(logits + (size_t)n * V, (size_t)V);
}

void CPU_FN(vocab_parallel_sum_exp)(void *stats_, const void *logits_, const void *row_max_,
                                    const int32_t *targets, int N, int V) {
    real *stats = stats_;
    const real *logits = logits_, *row_max = row_max_;
#pragma omp parallel for schedule(static) if ((size_t)N * V >= PARALLEL_MIN_ELEMENTS)
    for (int n = 0; n < N; n++) {
        const real *x = logits + (size_t)n * V;
        double sum = 0;
        for (int v = 0; v < V; v++) sum += rexp(x[v] - row_max[n]);
        stats[n] = (real)sum;
        stats[N + n] = targets[n] >= 0 ? x[targets[n]] : 0;
    }
}

void CPU_FN(vocab_parallel_loss)(void *logits_, void *losses_, const void *row_max_,
                                 const void *stats_, const int32_t *targets, const void *weights_,
                                 int N, int V) {
    real *logits = logits_, *losses = losses_;
    const real *row_max = row_max_, *stats = stats_, *weights = weights_;
#pragma omp parallel for schedule(static) if ((size_t)N * V >= PARALLEL_MIN_ELEMENTS)
    for (int n = 0; n < N; n++) {
        losses[n] = row_max[n] + rlog(stats[n]) - stats[N + n];
        if (!weights) continue;
        real *x = logits + (size_t)n * V;
        real factor = weights[n] / stats[n];
        for (int v = 0; v < V; v++) x[v] = rexp(x[v] - row_max[n]) * factor;
        if (targets[n] >= 0) x[targets[n]] -= weights[n];
    }
}
