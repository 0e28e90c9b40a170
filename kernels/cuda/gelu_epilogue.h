/* Whether the CUDA backend's matmul_gelu_forward and matmul_gelu_backward apply
 * GELU in cuBLASLt's GEMM epilogues or run the plain GEMM and the GELU kernels
 * (kernels/cuda/gemm.cu says when the epilogues cannot run). Both give the
 * ops' contract (kernels/ops.h) up to bf16 rounding. Training uses the
 * epilogues where they run unless the environment variable
 * CAIRN_CUDA_GELU_EPILOGUE is `off` (`on`, unset or empty: use them; ops_cuda
 * refuses other values): llm.c found the fused GELU slower than a separate
 * kernel on some GPUs (an RTX 4090), so a user can compare. The GPU tests and
 * benchmarks switch them off and on to compare the two.
 *
 * C interface, for the backend and for the GPU tests and benchmarks. */
#ifndef CAIRN_CUDA_GELU_EPILOGUE_H
#define CAIRN_CUDA_GELU_EPILOGUE_H

#ifdef __cplusplus
extern "C" {
#endif

/* 1 (the default): the epilogues wherever they run; 0: never (after ops_cuda succeeded) */
void cuda_gelu_epilogue_allow(int allow);

/* 1 when the latest matmul_gelu_forward (backward = 0) or matmul_gelu_backward (backward = 1)
 * ran its GELU in the epilogue; 0 when it ran the GELU kernel, or before the first such call */
int cuda_gelu_epilogue_ran(int backward);

#ifdef __cplusplus
}
#endif

#endif
