/* How the CUDA backend runs grouped linear layers (matmul_grouped_forward /
 * matmul_grouped_backward: one weight per group of rows, as routed experts
 * are): one cublasGemmGroupedBatchedEx call for all groups, or one cuBLASLt
 * call per group. The results agree to bf16 rounding; the speed depends on
 * the groups' sizes: one call fills the GPU with the tiles of many small
 * groups at once, while per-group cuBLASLt calls take the best algorithm for
 * each large group.
 *
 * ops_cuda sets the path from the environment variable CAIRN_CUDA_GROUPED_GEMM
 * (auto, grouped or loop; unset or empty means auto) and refuses other values.
 * auto: grouped when at least two groups have rows and they average fewer
 * than CUDA_GROUPED_GEMM_AUTO_ROWS rows, loop otherwise. grouped: grouped
 * whenever at least two groups have rows and the buffers are aligned for it.
 * loop: always per group. The weight gradients always take one cuBLASLt call
 * per group: they accumulate in fp32 into bf16 products, which the grouped
 * call does not offer (bf16 A/B takes a bf16 C only).
 *
 * C interface, for the backend and for the GPU tests and benchmarks. */
#ifndef CAIRN_CUDA_GEMM_GROUPED_PATH_H
#define CAIRN_CUDA_GEMM_GROUPED_PATH_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CUDA_GROUPED_GEMM_AUTO,
    CUDA_GROUPED_GEMM_GROUPED,
    CUDA_GROUPED_GEMM_LOOP,
} cuda_grouped_gemm_path;

/* auto's bound on the mean rows of the groups with rows. A first guess (a routed expert of a
 * fine-grained MoE gets a few hundred rows per micro-batch, one of 8 experts thousands), to be
 * set from bench_ops_cuda's grouped-vs-loop rows on a GPU. */
enum { CUDA_GROUPED_GEMM_AUTO_ROWS = 1024 };

/* "auto", "grouped" or "loop" */
const char *cuda_grouped_gemm_path_name(cuda_grouped_gemm_path path);

/* The path of the grouped calls that follow (after ops_cuda succeeded). */
void cuda_grouped_gemm_use(cuda_grouped_gemm_path path);

/* What ran the latest grouped forward or dinp product: CUDA_GROUPED_GEMM_GROUPED or
 * CUDA_GROUPED_GEMM_LOOP; CUDA_GROUPED_GEMM_AUTO before the first. */
cuda_grouped_gemm_path cuda_grouped_gemm_ran(void);

#ifdef __cplusplus
}
#endif

#endif
