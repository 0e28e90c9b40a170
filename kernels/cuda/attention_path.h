/* Which implementation runs the CUDA backend's attention ops: cuDNN's fused
 * scaled-dot-product attention (kernels/cuda/attention_cudnn.cu) or cairn's
 * flash kernels (kernels/cuda/attention.cu). Both compute the same contract
 * (kernels/ops.h) and the same lse, so a forward of one and a backward of the
 * other combine.
 *
 * ops_cuda sets the path from the environment variable CAIRN_CUDA_ATTENTION
 * (auto, cudnn or flash; unset or empty means auto) and refuses other values.
 * auto: cuDNN for calls without per-document masks whose graph cuDNN builds,
 * the flash kernels otherwise. cudnn: cuDNN for every call whose graph it
 * builds, per-document masks included (its ragged path, which has not run on
 * a GPU yet and so is not auto's choice); a call cuDNN cannot take is noted
 * on stderr (once per reason) before the flash kernels run it. A refused
 * graph is noted in both modes (once per shape and direction). flash: always
 * the flash kernels.
 *
 * C interface, for the backend and for the GPU tests and benchmarks. */
#ifndef CAIRN_CUDA_ATTENTION_PATH_H
#define CAIRN_CUDA_ATTENTION_PATH_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CUDA_ATTENTION_AUTO,
    CUDA_ATTENTION_CUDNN,
    CUDA_ATTENTION_FLASH,
} cuda_attention_path;

/* "auto", "cudnn" or "flash" */
const char *cuda_attention_path_name(cuda_attention_path path);

/* The path of the attention calls that follow (after ops_cuda succeeded). */
void cuda_attention_use(cuda_attention_path path);

/* What ran the latest attention_forward (backward = 0) or attention_backward
 * (backward = 1): CUDA_ATTENTION_CUDNN or CUDA_ATTENTION_FLASH;
 * CUDA_ATTENTION_AUTO before the first such call. */
cuda_attention_path cuda_attention_ran(int backward);

#ifdef __cplusplus
}
#endif

#endif
