/* Optimizer updates on the fp32 master weights and state, the gradient-norm
 * reduction (two passes in double with a grid that depends only on n, so the
 * result is the same on every run and device) and gradient scaling. */
#include "kernels/cuda/cuda_common.cuh"

enum { OPTIM_THREADS = 256, SUM_SQUARES_BLOCKS = 1024 };

__global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, size_t n,
                             float lr, float beta1, float beta2, float eps, float weight_decay,
                             float bias_correction1, float bias_correction2) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = grad[i];
    float mi = beta1 * m[i] + (1.0f - beta1) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float p = param[i];
    float update = (mi / bias_correction1) / (sqrtf(vi / bias_correction2) + eps);
    param[i] = p - lr * (update + weight_decay * p);
}

void cuda_adamw_update(void *param, const void *grad, void *m, void *v, size_t n, float lr,
                       float beta1, float beta2, float eps, float weight_decay,
                       float bias_correction1, float bias_correction2) {
    if (n == 0) return;
    adamw_kernel<<<cuda_blocks(n, OPTIM_THREADS), OPTIM_THREADS>>>(
        (float *)param, (const float *)grad, (float *)m, (float *)v, n, lr, beta1, beta2, eps,
        weight_decay, bias_correction1, bias_correction2);
    CUDA_CHECK_LAUNCH();
}

__global__ void ademamix_kernel(float *param, const float *grad, float *m1, float *m2, float *v,
                                size_t n, float lr, float beta1, float beta2, float beta3,
                                float alpha, float eps, float weight_decay,
                                float bias_correction1, float bias_correction2) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = grad[i];
    float m1i = beta1 * m1[i] + (1.0f - beta1) * g;
    float m2i = beta3 * m2[i] + (1.0f - beta3) * g;
    float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m1[i] = m1i;
    m2[i] = m2i;
    v[i] = vi;
    float p = param[i];
    float update = (m1i / bias_correction1 + alpha * m2i) /
                   (sqrtf(vi) / sqrtf(bias_correction2) + eps);
    param[i] = p - lr * (update + weight_decay * p);
}

void cuda_ademamix_update(void *param, const void *grad, void *m1, void *m2, void *v, size_t n,
                          float lr, float beta1, float beta2, float beta3, float alpha, float eps,
                          float weight_decay, float bias_correction1, float bias_correction2) {
    if (n == 0) return;
    ademamix_kernel<<<cuda_blocks(n, OPTIM_THREADS), OPTIM_THREADS>>>(
        (float *)param, (const float *)grad, (float *)m1, (float *)m2, (float *)v, n, lr, beta1,
        beta2, beta3, alpha, eps, weight_decay, bias_correction1, bias_correction2);
    CUDA_CHECK_LAUNCH();
}

/* Fixed-order tree sum of the block's values (blockDim.x == OPTIM_THREADS). */
__device__ double block_sum_double(double v, double *shared) {
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int width = OPTIM_THREADS / 2; width > 0; width /= 2) {
        if ((int)threadIdx.x < width) shared[threadIdx.x] += shared[threadIdx.x + width];
        __syncthreads();
    }
    return shared[0];
}

__global__ void sum_squares_kernel(double *partials, const float *x, size_t n) {
    __shared__ double shared[OPTIM_THREADS];
    double sum = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        sum += (double)x[i] * (double)x[i];
    sum = block_sum_double(sum, shared);
    if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

__global__ void sum_partials_kernel(double *result, const double *partials, int count) {
    __shared__ double shared[OPTIM_THREADS];
    double sum = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
    sum = block_sum_double(sum, shared);
    if (threadIdx.x == 0) *result = sum;
}

double cuda_sum_squares(const void *x, size_t n) {
    if (n == 0) return 0.0;
    unsigned int blocks = cuda_blocks(n, OPTIM_THREADS);
    if (blocks > SUM_SQUARES_BLOCKS) blocks = SUM_SQUARES_BLOCKS;
    double *partials = (double *)cuda_scratch((blocks + 1) * sizeof(double));
    sum_squares_kernel<<<blocks, OPTIM_THREADS>>>(partials + 1, (const float *)x, n);
    CUDA_CHECK_LAUNCH();
    sum_partials_kernel<<<1, OPTIM_THREADS>>>(partials, partials + 1, (int)blocks);
    CUDA_CHECK_LAUNCH();
    double result = 0.0;
    CUDA_CHECK(cudaMemcpy(&result, partials, sizeof result, cudaMemcpyDeviceToHost));
    return result;
}

__global__ void scale_kernel(float *x, size_t n, float s) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}

void cuda_scale(void *x, size_t n, float s) {
    if (n == 0) return;
    scale_kernel<<<cuda_blocks(n, OPTIM_THREADS), OPTIM_THREADS>>>((float *)x, n, s);
    CUDA_CHECK_LAUNCH();
}
