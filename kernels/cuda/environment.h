/* The CUDA backend's switches from the environment (CAIRN_CUDA_ATTENTION,
 * CAIRN_CUDA_GROUPED_GEMM, CAIRN_CUDA_GELU_EPILOGUE): one reader, so each is
 * refused alike when the backend starts.
 *
 * C interface (ops_cuda.cu), for the backend and its tests. */
#ifndef CAIRN_CUDA_ENVIRONMENT_H
#define CAIRN_CUDA_ENVIRONMENT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The environment variable `variable` as an index into its `count` accepted values `names`
 * (unset or empty: 0, the default); another value: -1 with `why` = "VARIABLE=value: expected
 * a, b or c" (truncated to why_size). */
int cuda_environment_choice(const char *variable, const char *const *names, int count,
                            int *choice, char *why, size_t why_size);

#ifdef __cplusplus
}
#endif

#endif
