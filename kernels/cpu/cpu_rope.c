/* Rotary position embedding on the q and k heads of qkv rows, interleaved
 * pairs (2i, 2i+1). Frequencies and angles are computed as PyTorch does in
 * the working precision: freq_i = 1 / theta^(2i/hd), angle = position·freq_i.
 * cos/sin are tabulated once per call, per distinct position when positions
 * repeat (several sequences per micro-batch), else per row. */
#include "kernels/cpu/cpu_real.h"

#include <stdlib.h>

/* direction +1 rotates by +angle (forward), -1 by -angle (backward: the
 * transpose of a rotation is its inverse) */
static void rope_rotate(real *qkv, const int32_t *positions, int N, int H, int KV, int hd,
                        float theta, real direction) {
    if (N <= 0) return;
    int half = hd / 2, heads = H + KV;
    size_t row = (size_t)(H + 2 * KV) * hd;
    int32_t min_position = positions[0], max_position = positions[0];
    for (int n = 1; n < N; n++) {
        if (positions[n] < min_position) min_position = positions[n];
        if (positions[n] > max_position) max_position = positions[n];
    }
    int64_t range = (int64_t)max_position - min_position + 1;
    int by_position = range <= N;
    int entries = by_position ? (int)range : N;
    real *freq = CPU_FN(scratch)((size_t)half);
    for (int i = 0; i < half; i++) freq[i] = (real)1 / rpow((real)theta, (real)(2 * i) / (real)hd);
    real *cos_sin = CPU_FN(scratch)((size_t)entries * hd); /* [entry][i] = {cos, sin} */
#pragma omp parallel for schedule(static) if ((size_t)entries * half >= 4096)
    for (int e = 0; e < entries; e++) {
        real position = (real)(by_position ? min_position + e : positions[e]);
        real *cs = cos_sin + (size_t)e * hd;
        for (int i = 0; i < half; i++) {
            real angle = position * freq[i];
            cs[2 * i] = rcos(angle);
            cs[2 * i + 1] = direction * rsin(angle);
        }
    }
#pragma omp parallel for schedule(static) if ((size_t)N * heads * hd >= PARALLEL_MIN_ELEMENTS)
    for (int n = 0; n < N; n++) {
        real *x = qkv + (size_t)n * row;
        const real *cs = cos_sin + (size_t)(by_position ? positions[n] - min_position : n) * hd;
        for (int h = 0; h < heads; h++) {
            real *head = x + (size_t)h * hd;
            for (int i = 0; i < half; i++) {
                real x0 = head[2 * i], x1 = head[2 * i + 1], c = cs[2 * i], s = cs[2 * i + 1];
                head[2 * i] = x0 * c - x1 * s;
                head[2 * i + 1] = x0 * s + x1 * c;
            }
        }
    }
    CPU_FN(free)(freq);
    CPU_FN(free)(cos_sin);
}

void CPU_FN(rope_forward)(void *qkv, const int32_t *positions, int N, int H, int KV, int hd,
                          float theta) {
    rope_rotate(qkv, positions, N, H, KV, hd, theta, 1);
}

void CPU_FN(rope_backward)(void *dqkv, const int32_t *positions, int N, int H, int KV, int hd,
                           float theta) {
    rope_rotate(dqkv, positions, N, H, KV, hd, theta, -1);
}
