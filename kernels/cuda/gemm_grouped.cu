/* Grouped linear layers (routed experts): group g owns a range of rows and
 * its own weight. The forward product and the input gradient run as one
 * cublasGemmGroupedBatchedEx call over all groups with rows, or as one
 * cuBLASLt call per group (gemm_grouped_path.h says which and when); the
 * weight gradients always run per group through cuda_matmul_backward, as
 * they accumulate in fp32.
 *
 * The grouped call reads its operand pointers from device arrays. They are
 * made from the host's row offsets, passed to a one-block kernel as its
 * arguments: arguments are captured at launch, so no host buffer has to
 * outlive the call and nothing waits, and the arrays are rewritten only after
 * the stream's previous grouped call has read them. */
#include <stdio.h>
#include <string.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/gemm_grouped_path.h"

/* Problems per grouped call: their pointers (3 × 8 bytes each) travel as kernel arguments,
 * which must stay within 4 KB. */
enum { GROUPED_CHUNK = 64 };

typedef struct grouped_operands {
    const void *a[GROUPED_CHUNK];
    const void *b[GROUPED_CHUNK];
    void *c[GROUPED_CHUNK];
} grouped_operands;

/* pointers [3][GROUPED_CHUNK]: the A, B and C arrays of the grouped call */
__global__ void store_pointers_kernel(void **pointers, grouped_operands operands, int count) {
    int i = threadIdx.x;
    if (i >= count) return;
    pointers[i] = (void *)operands.a[i];
    pointers[GROUPED_CHUNK + i] = (void *)operands.b[i];
    pointers[2 * GROUPED_CHUNK + i] = operands.c[i];
}

/* One product of every group, column-major as cuBLAS sees the row-major buffers (see gemm.cu):
 * out_gᵀ [m][rows_g] = op(W_g) · in_gᵀ [k][rows_g], W_g the group's weight, a row-major
 * [OC][C] (column-major [C][OC], so its leading dimension is C: k when transposed, else m);
 * in_g and out_g the group's rows, of k and m elements. */
typedef struct grouped_product {
    cublasOperation_t transa;
    int m, k;
    const bf16 *weights;
    size_t weight_stride; /* elements from one group's weight to the next */
    const bf16 *in;
    bf16 *out;
} grouped_product;

static int weight_ld(const grouped_product *p) {
    return p->transa == CUBLAS_OP_T ? p->k : p->m;
}

/* by cuda_grouped_gemm_path */
static const char *const PATH_NAMES[] = {"auto", "grouped", "loop"};

const char *cuda_grouped_gemm_path_name(cuda_grouped_gemm_path path) {
    return (unsigned)path < sizeof PATH_NAMES / sizeof *PATH_NAMES ? PATH_NAMES[path] : "?";
}

void cuda_grouped_gemm_use(cuda_grouped_gemm_path path) {
    cuda_backend_state()->grouped_gemm_path = path;
}

cuda_grouped_gemm_path cuda_grouped_gemm_ran(void) {
    return (cuda_grouped_gemm_path)cuda_backend_state()->grouped_gemm_ran;
}

int cuda_grouped_gemm_read_environment(cuda_backend *state, char *why, size_t why_size) {
    return cuda_environment_choice("CAIRN_CUDA_GROUPED_GEMM", PATH_NAMES,
                                   (int)(sizeof PATH_NAMES / sizeof *PATH_NAMES),
                                   &state->grouped_gemm_path, why, why_size);
}

int cuda_grouped_gemm_start(cuda_backend *state, char *why, size_t why_size) {
    cublasStatus_t status = cublasCreate(&state->blas);
    if (status != CUBLAS_STATUS_SUCCESS) {
        if (why && why_size)
            snprintf(why, why_size, "cublasCreate: %s", cublasGetStatusString(status));
        return -1;
    }
    status = cublasSetWorkspace(state->blas, state->lt_workspace, state->lt_workspace_bytes);
    if (status != CUBLAS_STATUS_SUCCESS) {
        cublasDestroy(state->blas);
        if (why && why_size)
            snprintf(why, why_size, "cublasSetWorkspace: %s", cublasGetStatusString(status));
        return -1;
    }
    state->grouped_pointers = (void **)cuda_device_malloc(3 * GROUPED_CHUNK * sizeof(void *));
    if (!state->grouped_pointers) {
        cublasDestroy(state->blas);
        if (why && why_size) snprintf(why, why_size, "cudaMalloc (grouped GEMM pointers): no room");
        return -1;
    }
    return 0;
}

static int aligned16(const void *p, size_t stride_bytes) {
    return cuda_aligned(p, 16) && stride_bytes % 16 == 0;
}

/* 1 when this call takes the grouped path */
static int take_grouped(const cuda_backend *state, const grouped_product *p,
                        const int32_t *offsets, int groups) {
    if (state->grouped_gemm_path == CUDA_GROUPED_GEMM_LOOP || state->grouped_gemm_refused)
        return 0;
    int busy = 0;
    for (int g = 0; g < groups; g++) busy += offsets[g + 1] > offsets[g];
    if (busy < 2) return 0;
    /* 16-byte operands for every group (cuBLAS's rule for bf16 pointers in the arrays) */
    if (!aligned16(p->weights, p->weight_stride * sizeof(bf16)) ||
        !aligned16(p->in, (size_t)p->k * sizeof(bf16)) ||
        !aligned16(p->out, (size_t)p->m * sizeof(bf16)))
        return 0;
    long rows = (long)offsets[groups] - offsets[0];
    if (state->grouped_gemm_path == CUDA_GROUPED_GEMM_AUTO &&
        rows >= (long)busy * CUDA_GROUPED_GEMM_AUTO_ROWS)
        return 0;
    return 1;
}

/* The product for the groups with rows, GROUPED_CHUNK at a time. A status other than success is
 * cuBLAS's first refusal; the products of earlier chunks are then already written. */
static cublasStatus_t run_grouped(cuda_backend *state, const grouped_product *p,
                                  const int32_t *offsets, int groups) {
    cublasOperation_t transa[GROUPED_CHUNK], transb[GROUPED_CHUNK];
    int m[GROUPED_CHUNK], n[GROUPED_CHUNK], k[GROUPED_CHUNK], lda[GROUPED_CHUNK],
        ldb[GROUPED_CHUNK], ldc[GROUPED_CHUNK], group_size[GROUPED_CHUNK];
    float alpha[GROUPED_CHUNK], beta[GROUPED_CHUNK];
    grouped_operands operands;
    memset(&operands, 0, sizeof operands); /* the unused slots travel too */
    void **pointers = state->grouped_pointers;
    int g = 0;
    while (g < groups) {
        int count = 0;
        for (; g < groups && count < GROUPED_CHUNK; g++) {
            int first = offsets[g], rows = offsets[g + 1] - first;
            if (rows == 0) continue;
            transa[count] = p->transa;
            transb[count] = CUBLAS_OP_N;
            m[count] = p->m;
            n[count] = rows;
            k[count] = p->k;
            lda[count] = weight_ld(p);
            ldb[count] = p->k;
            ldc[count] = p->m;
            group_size[count] = 1;
            alpha[count] = 1.0f;
            beta[count] = 0.0f;
            operands.a[count] = p->weights + (size_t)g * p->weight_stride;
            operands.b[count] = p->in + (size_t)first * p->k;
            operands.c[count] = p->out + (size_t)first * p->m;
            count++;
        }
        if (count == 0) break;
        store_pointers_kernel<<<1, GROUPED_CHUNK>>>(pointers, operands, count);
        CUDA_CHECK_LAUNCH();
        cublasStatus_t status = cublasGemmGroupedBatchedEx(
            state->blas, transa, transb, m, n, k, alpha, (const void *const *)pointers,
            CUDA_R_16BF, lda, (const void *const *)(pointers + GROUPED_CHUNK), CUDA_R_16BF, ldb,
            beta, pointers + 2 * GROUPED_CHUNK, CUDA_R_16BF, ldc, count, group_size,
            CUBLAS_COMPUTE_32F);
        if (status != CUBLAS_STATUS_SUCCESS) return status;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* The product on the grouped path; 0 when the caller must run it per group. A cuBLAS that does
 * not offer the grouped call (or not for this GPU) is noted once and not asked again; any other
 * failure is a programmer error. */
static int try_grouped(const grouped_product *p, const int32_t *offsets, int groups) {
    cuda_backend *state = cuda_backend_state();
    if (!take_grouped(state, p, offsets, groups)) {
        state->grouped_gemm_ran = CUDA_GROUPED_GEMM_LOOP;
        return 0;
    }
    cublasStatus_t status = run_grouped(state, p, offsets, groups);
    if (status == CUBLAS_STATUS_NOT_SUPPORTED || status == CUBLAS_STATUS_ARCH_MISMATCH) {
        cudaGetLastError(); /* nothing of a refusal may reach the next launch check */
        fprintf(stderr, "cuda: cublasGemmGroupedBatchedEx refused bf16 (%s); expert GEMMs run "
                        "one cuBLASLt call per expert\n",
                cublasGetStatusString(status));
        state->grouped_gemm_refused = 1;
        state->grouped_gemm_ran = CUDA_GROUPED_GEMM_LOOP;
        return 0;
    }
    cublas_check(status, "cublasGemmGroupedBatchedEx", __FILE__, __LINE__);
    state->grouped_gemm_ran = CUDA_GROUPED_GEMM_GROUPED;
    return 1;
}

void cuda_matmul_grouped_forward(void *out, const void *inp, const void *weights,
                                 size_t weight_stride, const int32_t *offsets, int groups, int C,
                                 int OC) {
    /* out_gᵀ [OC][rows] = W_g' [C][OC]ᵀ · inp_gᵀ [C][rows] */
    grouped_product p = {CUBLAS_OP_T, OC, C, (const bf16 *)weights, weight_stride,
                         (const bf16 *)inp, (bf16 *)out};
    if (try_grouped(&p, offsets, groups)) return;
    for (int g = 0; g < groups; g++) {
        int first = offsets[g], rows = offsets[g + 1] - first;
        if (rows == 0) continue;
        cuda_matmul_forward((bf16 *)out + (size_t)first * OC, (const bf16 *)inp + (size_t)first * C,
                            (const bf16 *)weights + (size_t)g * weight_stride, NULL, rows, C, OC);
    }
}

void cuda_matmul_grouped_backward(void *dinp, void *dweights, const void *dout, const void *inp,
                                  const void *weights, size_t weight_stride,
                                  const int32_t *offsets, int groups, int C, int OC) {
    /* dinp_gᵀ [C][rows] = W_g' [C][OC] · dout_gᵀ [OC][rows] */
    grouped_product p = {CUBLAS_OP_N, C, OC, (const bf16 *)weights, weight_stride,
                         (const bf16 *)dout, (bf16 *)dinp};
    int dinp_done = dinp && try_grouped(&p, offsets, groups);
    for (int g = 0; g < groups; g++) {
        int first = offsets[g], rows = offsets[g + 1] - first;
        if (rows == 0) continue;
        cuda_matmul_backward(dinp && !dinp_done ? (bf16 *)dinp + (size_t)first * C : NULL,
                             (float *)dweights + (size_t)g * weight_stride, NULL,
                             (const bf16 *)dout + (size_t)first * OC,
                             (const bf16 *)inp + (size_t)first * C,
                             (const bf16 *)weights + (size_t)g * weight_stride, rows, C, OC);
    }
}
