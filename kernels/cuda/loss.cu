/* Cross-entropy over the vocabulary, one block per row: an online max/sum pass
 * gives logsumexp in fp32 without a copy of the logits, and a second pass
 * overwrites the bf16 logits with their weighted gradient. */
#include "kernels/cuda/cuda_common.cuh"

enum { LOSS_THREADS = 512 };

template <int VEC>
__global__ void cross_entropy_kernel(bf16 *logits, float *losses, const int32_t *targets,
                                     const float *weights, int V) {
    __shared__ float reduce_buffer[32];
    int n = blockIdx.x;
    bf16 *row = logits + (size_t)n * V;
    int target = targets[n];
    int valid_target = target >= 0 && target < V;
    /* read before any thread overwrites the row (the reductions below are barriers) */
    float target_logit = valid_target ? __bfloat162float(row[target]) : 0.0f;
    float max_value = -INFINITY, sum = 0.0f;
    for (int c = threadIdx.x * VEC; c < V; c += blockDim.x * VEC) {
        float x[VEC];
        vec_io<VEC>::load(x, row + c);
#pragma unroll
        for (int j = 0; j < VEC; j++) {
            if (x[j] > max_value) {
                sum = sum * expf(max_value - x[j]) + 1.0f;
                max_value = x[j];
            } else {
                sum += expf(x[j] - max_value);
            }
        }
    }
    float block_max_value = block_max(max_value, reduce_buffer);
    sum = max_value == -INFINITY ? 0.0f : sum * expf(max_value - block_max_value);
    float lse = block_max_value + logf(block_sum(sum, reduce_buffer));
    if (threadIdx.x == 0) losses[n] = lse - target_logit;
    if (!weights) return;
    float weight = weights[n];
    for (int c = threadIdx.x * VEC; c < V; c += blockDim.x * VEC) {
        float x[VEC];
        vec_io<VEC>::load(x, row + c);
#pragma unroll
        for (int j = 0; j < VEC; j++)
            x[j] = (expf(x[j] - lse) - (c + j == target ? 1.0f : 0.0f)) * weight;
        vec_io<VEC>::store(row + c, x);
    }
}

void cuda_cross_entropy(void *logits, void *losses, const int32_t *targets, const void *weights,
                        int N, int V) {
    if (N == 0) return;
    if (V % 8 == 0 && cuda_aligned(logits, 16))
        cross_entropy_kernel<8><<<N, LOSS_THREADS>>>((bf16 *)logits, (float *)losses, targets,
                                                     (const float *)weights, V);
    else
        cross_entropy_kernel<1><<<N, LOSS_THREADS>>>((bf16 *)logits, (float *)losses, targets,
                                                     (const float *)weights, V);
    CUDA_CHECK_LAUNCH();
}
