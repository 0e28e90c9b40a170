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

/* ---- vocabulary-parallel cross-entropy: the three passes of ops.h, one block per row ---- */

__global__ void vocab_parallel_max_kernel(float *row_max, const bf16 *logits, int V) {
    __shared__ float reduce_buffer[32];
    const bf16 *row = logits + (size_t)blockIdx.x * V;
    float value = -INFINITY;
    for (int c = threadIdx.x; c < V; c += blockDim.x) value = fmaxf(value, __bfloat162float(row[c]));
    value = block_max(value, reduce_buffer);
    if (threadIdx.x == 0) row_max[blockIdx.x] = value;
}

__global__ void vocab_parallel_sum_exp_kernel(float *stats, const bf16 *logits,
                                              const float *row_max, const int32_t *targets, int N,
                                              int V) {
    __shared__ float reduce_buffer[32];
    int n = blockIdx.x;
    const bf16 *row = logits + (size_t)n * V;
    float max_value = row_max[n], sum = 0.0f;
    for (int c = threadIdx.x; c < V; c += blockDim.x) sum += expf(__bfloat162float(row[c]) - max_value);
    sum = block_sum(sum, reduce_buffer);
    if (threadIdx.x == 0) {
        stats[n] = sum;
        stats[N + n] = targets[n] >= 0 ? __bfloat162float(row[targets[n]]) : 0.0f;
    }
}

__global__ void vocab_parallel_loss_kernel(bf16 *logits, float *losses, const float *row_max,
                                           const float *stats, const int32_t *targets,
                                           const float *weights, int N, int V) {
    int n = blockIdx.x;
    float max_value = row_max[n], sum = stats[n];
    if (threadIdx.x == 0) losses[n] = max_value + logf(sum) - stats[N + n];
    if (!weights) return;
    bf16 *row = logits + (size_t)n * V;
    float factor = weights[n] / sum;
    int target = targets[n];
    for (int c = threadIdx.x; c < V; c += blockDim.x) {
        float g = expf(__bfloat162float(row[c]) - max_value) * factor;
        if (c == target) g -= weights[n];
        row[c] = __float2bfloat16(g);
    }
}

void cuda_vocab_parallel_max(void *row_max, const void *logits, int N, int V) {
    if (N == 0) return;
    vocab_parallel_max_kernel<<<N, LOSS_THREADS>>>((float *)row_max, (const bf16 *)logits, V);
    CUDA_CHECK_LAUNCH();
}

void cuda_vocab_parallel_sum_exp(void *stats, const void *logits, const void *row_max,
                                 const int32_t *targets, int N, int V) {
    if (N == 0) return;
    vocab_parallel_sum_exp_kernel<<<N, LOSS_THREADS>>>((float *)stats, (const bf16 *)logits,
                                                       (const float *)row_max, targets, N, V);
    CUDA_CHECK_LAUNCH();
}

void cuda_vocab_parallel_loss(void *logits, void *losses, const void *row_max, const void *stats,
                              const int32_t *targets, const void *weights, int N, int V) {
    if (N == 0) return;
    vocab_parallel_loss_kernel<<<N, LOSS_THREADS>>>((bf16 *)logits, (float *)losses,
                                                    (const float *)row_max, (const float *)stats,
                                                    targets, (const float *)weights, N, V);
    CUDA_CHECK_LAUNCH();
}
