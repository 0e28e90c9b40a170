/* Deterministic building blocks shared by the ops: lane-split sums and dot
 * products, the in-order combination of row-chunk partials of a weight
 * gradient, fixed-chunk scalar sums, and the register-tiled micro-kernel behind
 * attention and the portable GEMM. */
#include "kernels/cpu/cpu_real.h"

#include <string.h>

enum { REDUCTION_LANES = 8 };

static double combine_lanes(const double *lane) {
    double low = (lane[0] + lane[1]) + (lane[2] + lane[3]);
    double high = (lane[4] + lane[5]) + (lane[6] + lane[7]);
    return low + high;
}

double CPU_FN(dot)(const real *a, const real *b, size_t n) {
    double lane[REDUCTION_LANES] = {0};
    size_t i = 0;
    for (; i + REDUCTION_LANES <= n; i += REDUCTION_LANES)
        for (int l = 0; l < REDUCTION_LANES; l++) lane[l] += (double)a[i + l] * (double)b[i + l];
    for (int l = 0; i < n; i++, l++) lane[l] += (double)a[i] * (double)b[i];
    return combine_lanes(lane);
}

double CPU_FN(dot3)(const real *a, const real *b, const real *c, size_t n) {
    double lane[REDUCTION_LANES] = {0};
    size_t i = 0;
    for (; i + REDUCTION_LANES <= n; i += REDUCTION_LANES)
        for (int l = 0; l < REDUCTION_LANES; l++)
            lane[l] += (double)a[i + l] * (double)b[i + l] * (double)c[i + l];
    for (int l = 0; i < n; i++, l++) lane[l] += (double)a[i] * (double)b[i] * (double)c[i];
    return combine_lanes(lane);
}

double CPU_FN(sum)(const real *a, size_t n) {
    double lane[REDUCTION_LANES] = {0};
    size_t i = 0;
    for (; i + REDUCTION_LANES <= n; i += REDUCTION_LANES)
        for (int l = 0; l < REDUCTION_LANES; l++) lane[l] += (double)a[i + l];
    for (int l = 0; i < n; i++, l++) lane[l] += (double)a[i];
    return combine_lanes(lane);
}

real CPU_FN(max)(const real *a, size_t n) {
    /* max is exact and order-independent, so lanes change only the speed */
    real lane[REDUCTION_LANES];
    for (int l = 0; l < REDUCTION_LANES; l++) lane[l] = -INFINITY;
    size_t i = 0;
    for (; i + REDUCTION_LANES <= n; i += REDUCTION_LANES)
        for (int l = 0; l < REDUCTION_LANES; l++) lane[l] = a[i + l] > lane[l] ? a[i + l] : lane[l];
    for (int l = 0; i < n; i++, l++) lane[l] = a[i] > lane[l] ? a[i] : lane[l];
    real result = lane[0];
    for (int l = 1; l < REDUCTION_LANES; l++) result = lane[l] > result ? lane[l] : result;
    return result;
}

void CPU_FN(add_partials)(real *dst, const real *partials, int chunks, int C) {
    int blocks = (C + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
#pragma omp parallel for schedule(static) if (blocks > 1 && (size_t)chunks * C > 4096)
    for (int block = 0; block < blocks; block++) {
        int c0 = block * COLUMN_BLOCK;
        int width = C - c0 < COLUMN_BLOCK ? C - c0 : COLUMN_BLOCK;
        double sum[COLUMN_BLOCK] = {0};
        for (int k = 0; k < chunks; k++) {
            const real *row = partials + (size_t)k * C + c0;
            for (int c = 0; c < width; c++) sum[c] += row[c];
        }
        for (int c = 0; c < width; c++) dst[c0 + c] += (real)sum[c];
    }
}

void CPU_FN(chunked_sums)(size_t n, int count, chunk_sum_fn fn, const void *context,
                         double *totals) {
    enum { BATCH = 256 };
    double partial[BATCH][CHUNKED_SUMS_MAX];
    for (int c = 0; c < count; c++) totals[c] = 0;
    size_t chunks = (n + ELEMENT_CHUNK - 1) / ELEMENT_CHUNK;
    for (size_t first = 0; first < chunks; first += BATCH) {
        int batch = chunks - first < BATCH ? (int)(chunks - first) : BATCH;
#pragma omp parallel for schedule(static) if (batch > 1)
        for (int i = 0; i < batch; i++) {
            size_t begin = (first + i) * ELEMENT_CHUNK;
            size_t end = n - begin < ELEMENT_CHUNK ? n : begin + ELEMENT_CHUNK;
            fn(context, begin, end, partial[i]);
        }
        for (int i = 0; i < batch; i++)
            for (int c = 0; c < count; c++) totals[c] += partial[i][c];
    }
}

/* The micro-kernel keeps 4 rows × 2 vectors of accumulators in registers and
 * is instantiated for two vector widths: 32-byte vectors for AVX2 machines and
 * 16-byte vectors (SSE, NEON) elsewhere, picked per call. The sums are the same
 * in both: each c element adds its products in k order, and ISO C mode
 * compiles with -ffp-contract=off. GCC vectors are used because the
 * auto-vectorizer spills these accumulators to the stack. */
#define DEFINE_TILE_KERNEL(name, vector_bytes)                                                  \
    typedef real name##_vector __attribute__((vector_size(vector_bytes)));                     \
    static void name(real *c, size_t ldc, const real *a, size_t lda, const real *b, size_t ldb, \
                     int K, int ncols, int accumulate) {                                        \
        enum { LANES = vector_bytes / (int)sizeof(real) };                                      \
        const real *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda;                \
        for (int j0 = 0; j0 < ncols; j0 += 2 * LANES) {                                         \
            name##_vector acc[TILE_ROWS][2] = {{{0}}};                                          \
            for (int k = 0; k < K; k++) {                                                       \
                name##_vector b0, b1;                                                           \
                memcpy(&b0, b + (size_t)k * ldb + j0, sizeof b0);                               \
                memcpy(&b1, b + (size_t)k * ldb + j0 + LANES, sizeof b1);                       \
                acc[0][0] += a0[k] * b0;                                                        \
                acc[0][1] += a0[k] * b1;                                                        \
                acc[1][0] += a1[k] * b0;                                                        \
                acc[1][1] += a1[k] * b1;                                                        \
                acc[2][0] += a2[k] * b0;                                                        \
                acc[2][1] += a2[k] * b1;                                                        \
                acc[3][0] += a3[k] * b0;                                                        \
                acc[3][1] += a3[k] * b1;                                                        \
            }                                                                                   \
            for (int r = 0; r < TILE_ROWS; r++) {                                               \
                real *row = c + (size_t)r * ldc + j0;                                           \
                for (int h = 0; h < 2; h++) {                                                   \
                    if (accumulate) {                                                           \
                        name##_vector old;                                                      \
                        memcpy(&old, row + h * LANES, sizeof old);                              \
                        acc[r][h] += old;                                                       \
                    }                                                                           \
                    memcpy(row + h * LANES, &acc[r][h], sizeof acc[r][h]);                      \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    }

DEFINE_TILE_KERNEL(tile_multiply_narrow, 16)

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx2")
DEFINE_TILE_KERNEL(tile_multiply_avx2, 32)
#pragma GCC pop_options
#endif

void CPU_FN(tile_multiply)(real *c, size_t ldc, const real *a, size_t lda, const real *b,
                           size_t ldb, int K, int ncols, int accumulate) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    if (__builtin_cpu_supports("avx2")) {
        tile_multiply_avx2(c, ldc, a, lda, b, ldb, K, ncols, accumulate);
        return;
    }
#endif
    tile_multiply_narrow(c, ldc, a, lda, b, ldb, K, ncols, accumulate);
}
