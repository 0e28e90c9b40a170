/* Dense matrix multiply for the CPU backend. C is cut into fixed tiles of
 * TILE_M × TILE_N that OpenMP threads compute independently, each over the
 * whole K. A tile is one single-threaded CBLAS call (OpenBLAS) when the build
 * found it, else the packed micro-kernel below. Tiles depend on the shape
 * only, so results are bit-identical for any thread count; OpenBLAS's own
 * threading is not (its split points change the rounding), which is why it is
 * pinned to one thread here and the parallelism is ours. */
#include "kernels/cpu/cpu_real.h"

#include <stdlib.h>
#include <string.h>

#ifdef CAIRN_HAVE_CBLAS
#include <cblas.h>
#if CPU_PRECISION == 32
#define cblas_gemm cblas_sgemm
#else
#define cblas_gemm cblas_dgemm
#endif
#endif

enum {
    TILE_M = 128,  /* rows of C per task */
    TILE_N = 256,  /* columns of C per task */
    PANEL_K = 256, /* depth of one packed panel of the portable kernel */
};

typedef struct gemm_args {
    int transpose_a, transpose_b, M, N, K;
    const real *A, *B;
    int lda, ldb, accumulate;
    real *C;
    int ldc;
} gemm_args;

/* Per-thread buffers of the portable kernel. */
typedef struct pack_buffers {
    real *a, *b, *c;
} pack_buffers;

/* Packs op(A)[i0.., k0..] as rows × depth (row-major, rows padded with zeros to
 * a multiple of TILE_ROWS) and op(B)[k0.., j0..] as depth × width_padded. */
static void pack_a(real *dst, const gemm_args *g, int i0, int rows, int rows_padded, int k0,
                   int depth) {
    for (int i = 0; i < rows; i++)
        for (int k = 0; k < depth; k++)
            dst[(size_t)i * depth + k] = g->transpose_a
                                             ? g->A[(size_t)(k0 + k) * g->lda + i0 + i]
                                             : g->A[(size_t)(i0 + i) * g->lda + k0 + k];
    memset(dst + (size_t)rows * depth, 0, (size_t)(rows_padded - rows) * depth * sizeof(real));
}

static void pack_b(real *dst, const gemm_args *g, int k0, int depth, int j0, int width,
                   int width_padded) {
    for (int k = 0; k < depth; k++) {
        real *row = dst + (size_t)k * width_padded;
        if (g->transpose_b) {
            for (int j = 0; j < width; j++) row[j] = g->B[(size_t)(j0 + j) * g->ldb + k0 + k];
        } else {
            memcpy(row, g->B + (size_t)(k0 + k) * g->ldb + j0, (size_t)width * sizeof(real));
        }
        memset(row + width, 0, (size_t)(width_padded - width) * sizeof(real));
    }
}

/* One tile with the portable kernel: panels of PANEL_K summed in k order. */
static void packed_tile(const gemm_args *g, int i0, int rows, int j0, int width,
                        pack_buffers *buffers) {
    int rows_padded = (int)round_up((size_t)rows, TILE_ROWS);
    int width_padded = (int)round_up((size_t)width, TILE_COLS);
    memset(buffers->c, 0, (size_t)TILE_M * TILE_N * sizeof(real));
    for (int k0 = 0; k0 < g->K; k0 += PANEL_K) {
        int depth = g->K - k0 < PANEL_K ? g->K - k0 : PANEL_K;
        pack_a(buffers->a, g, i0, rows, rows_padded, k0, depth);
        pack_b(buffers->b, g, k0, depth, j0, width, width_padded);
        for (int i = 0; i < rows_padded; i += TILE_ROWS)
            CPU_FN(tile_multiply)(buffers->c + (size_t)i * width_padded, width_padded,
                                  buffers->a + (size_t)i * depth, depth, buffers->b, width_padded,
                                  depth, width_padded, k0 > 0);
    }
    for (int i = 0; i < rows; i++) {
        real *dst = g->C + (size_t)(i0 + i) * g->ldc + j0;
        const real *src = buffers->c + (size_t)i * width_padded;
        if (g->accumulate) {
            for (int j = 0; j < width; j++) dst[j] += src[j];
        } else {
            memcpy(dst, src, (size_t)width * sizeof(real));
        }
    }
}

#ifdef CAIRN_HAVE_CBLAS
static void blas_tile(const gemm_args *g, int i0, int rows, int j0, int width) {
    const real *A = g->transpose_a ? g->A + i0 : g->A + (size_t)i0 * g->lda;
    const real *B = g->transpose_b ? g->B + (size_t)j0 * g->ldb : g->B + j0;
    cblas_gemm(CblasRowMajor, g->transpose_a ? CblasTrans : CblasNoTrans,
               g->transpose_b ? CblasTrans : CblasNoTrans, rows, width, g->K, (real)1, A, g->lda,
               B, g->ldb, g->accumulate ? (real)1 : (real)0, g->C + (size_t)i0 * g->ldc + j0,
               g->ldc);
}
#endif

static void gemm_tiles(const gemm_args *g, int use_blas) {
    if (g->M <= 0 || g->N <= 0) return;
    if (g->K <= 0) {
        for (int i = 0; i < g->M && !g->accumulate; i++)
            memset(g->C + (size_t)i * g->ldc, 0, (size_t)g->N * sizeof(real));
        return;
    }
    int tiles_m = (g->M + TILE_M - 1) / TILE_M, tiles_n = (g->N + TILE_N - 1) / TILE_N;
#pragma omp parallel if (tiles_m * tiles_n > 1)
    {
        pack_buffers buffers = {NULL, NULL, NULL};
        if (!use_blas) {
            buffers.a = CPU_FN(scratch)((size_t)TILE_M * PANEL_K);
            buffers.b = CPU_FN(scratch)((size_t)PANEL_K * TILE_N);
            buffers.c = CPU_FN(scratch)((size_t)TILE_M * TILE_N);
        }
#pragma omp for schedule(static) collapse(2)
        for (int tm = 0; tm < tiles_m; tm++) {
            for (int tn = 0; tn < tiles_n; tn++) {
                int i0 = tm * TILE_M, j0 = tn * TILE_N;
                int rows = g->M - i0 < TILE_M ? g->M - i0 : TILE_M;
                int width = g->N - j0 < TILE_N ? g->N - j0 : TILE_N;
#ifdef CAIRN_HAVE_CBLAS
                if (use_blas) {
                    blas_tile(g, i0, rows, j0, width);
                    continue;
                }
#endif
                packed_tile(g, i0, rows, j0, width, &buffers);
            }
        }
        CPU_FN(free)(buffers.a);
        CPU_FN(free)(buffers.b);
        CPU_FN(free)(buffers.c);
    }
}

void CPU_FN(gemm)(int transpose_a, int transpose_b, int M, int N, int K, const real *A,
                  int lda, const real *B, int ldb, int accumulate, real *C, int ldc) {
    gemm_args g = {transpose_a, transpose_b, M, N, K, A, B, lda, ldb, accumulate, C, ldc};
#ifdef CAIRN_HAVE_CBLAS
#ifdef OPENBLAS_VERSION
    openblas_set_num_threads(1);
#endif
    gemm_tiles(&g, 1);
#else
    gemm_tiles(&g, 0);
#endif
}

void CPU_FN(gemm_blocked)(int transpose_a, int transpose_b, int M, int N, int K, const real *A,
                          int lda, const real *B, int ldb, int accumulate, real *C, int ldc) {
    gemm_args g = {transpose_a, transpose_b, M, N, K, A, B, lda, ldb, accumulate, C, ldc};
    gemm_tiles(&g, 0);
}
