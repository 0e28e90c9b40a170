/* The CUDA backend's ops table: initialisation (device check, cuBLASLt handle
 * and workspace, kernel attributes), memory, conversions between the host's
 * fp32 and the device's bf16/fp32 buffers. The kernels live in the other
 * files of this folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_common.cuh"

/* One device per process: the only mutable static state of the backend. */
static cuda_backend backend_state;
static int backend_ready;

void cuda_check(cudaError_t err, const char *what, const char *file, int line) {
    if (err == cudaSuccess) return;
    fprintf(stderr, "cuda: %s:%d: %s: %s\n", file, line, what, cudaGetErrorString(err));
    abort();
}

void cublas_check(cublasStatus_t status, const char *what, const char *file, int line) {
    if (status == CUBLAS_STATUS_SUCCESS) return;
    fprintf(stderr, "cublasLt: %s:%d: %s: %s\n", file, line, what,
            cublasLtGetStatusString(status));
    abort();
}

cuda_backend *cuda_backend_state(void) {
    return &backend_state;
}

void *cuda_scratch(size_t bytes) {
    cuda_backend *state = &backend_state;
    if (bytes <= state->scratch_bytes) return state->scratch;
    /* cudaFree waits for the device, so kernels still reading the old buffer finish first */
    if (state->scratch) CUDA_CHECK(cudaFree(state->scratch));
    size_t grown = state->scratch_bytes * 2 > bytes ? state->scratch_bytes * 2 : bytes;
    grown = (grown + 255) / 256 * 256;
    CUDA_CHECK(cudaMalloc(&state->scratch, grown));
    state->scratch_bytes = grown;
    return state->scratch;
}

/* ---- memory ---- */

static void *cuda_alloc(size_t bytes) {
    void *ptr = NULL;
    if (cudaMalloc(&ptr, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky-free error so later checks do not see it */
        return NULL;
    }
    CUDA_CHECK(cudaMemset(ptr, 0, bytes));
    return ptr;
}

static void cuda_free(void *ptr) {
    if (ptr) CUDA_CHECK(cudaFree(ptr));
}

static void cuda_copy_to_device(void *dst, const void *host_src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, host_src, bytes, cudaMemcpyHostToDevice));
}

static void cuda_copy_to_host(void *host_dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(host_dst, src, bytes, cudaMemcpyDeviceToHost));
}

static void cuda_copy_device(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0));
}

static void cuda_zero(void *ptr, size_t bytes) {
    CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, 0));
}

static void cuda_synchronize(void) {
    CUDA_CHECK(cudaDeviceSynchronize());
}

/* ---- conversions: bf16 rounding on the host, round to nearest even ---- */

static uint16_t host_float_to_bf16(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu))
        return (uint16_t)((bits >> 16) | 0x0040u); /* quiet NaN stays NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

static float host_bf16_to_float(uint16_t value) {
    uint32_t bits = (uint32_t)value << 16;
    float result;
    memcpy(&result, &bits, sizeof result);
    return result;
}

static void *host_buffer(size_t bytes) {
    void *buffer = malloc(bytes ? bytes : 1);
    if (!buffer) {
        fprintf(stderr, "cuda: out of host memory for a %zu-byte staging buffer\n", bytes);
        abort();
    }
    return buffer;
}

static void cuda_act_to_float(float *host, const void *act, size_t n) {
    uint16_t *staged = (uint16_t *)host_buffer(n * sizeof(uint16_t));
    CUDA_CHECK(cudaMemcpy(staged, act, n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) host[i] = host_bf16_to_float(staged[i]);
    free(staged);
}

static void cuda_float_to_act(void *act, const float *host, size_t n) {
    uint16_t *staged = (uint16_t *)host_buffer(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) staged[i] = host_float_to_bf16(host[i]);
    CUDA_CHECK(cudaMemcpy(act, staged, n * sizeof(uint16_t), cudaMemcpyHostToDevice));
    free(staged);
}

static void cuda_master_to_float(float *host, const void *master, size_t n) {
    CUDA_CHECK(cudaMemcpy(host, master, n * sizeof(float), cudaMemcpyDeviceToHost));
}

static void cuda_float_to_master(void *master, const float *host, size_t n) {
    CUDA_CHECK(cudaMemcpy(master, host, n * sizeof(float), cudaMemcpyHostToDevice));
}

/* designated initializers (C++20): a field added to ops.h cannot shift the others */
static const ops cuda_ops = {
    .name = "cuda",
    .act_bytes = sizeof(bf16),
    .master_bytes = sizeof(float),
    .compute_aliases_master = 0,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .copy_to_device = cuda_copy_to_device,
    .copy_to_host = cuda_copy_to_host,
    .copy_device = cuda_copy_device,
    .zero = cuda_zero,
    .synchronize = cuda_synchronize,
    .master_to_act = cuda_master_to_act,
    .act_to_float = cuda_act_to_float,
    .float_to_act = cuda_float_to_act,
    .master_to_float = cuda_master_to_float,
    .float_to_master = cuda_float_to_master,
    .embedding_forward = cuda_embedding_forward,
    .embedding_backward = cuda_embedding_backward,
    .rmsnorm_forward = cuda_rmsnorm_forward,
    .rmsnorm_backward = cuda_rmsnorm_backward,
    .layernorm_forward = cuda_layernorm_forward,
    .layernorm_backward = cuda_layernorm_backward,
    .matmul_forward = cuda_matmul_forward,
    .matmul_backward = cuda_matmul_backward,
    .qk_norm_forward = cuda_qk_norm_forward,
    .qk_norm_backward = cuda_qk_norm_backward,
    .rope_forward = cuda_rope_forward,
    .rope_backward = cuda_rope_backward,
    .attention_forward = cuda_attention_forward,
    .attention_backward = cuda_attention_backward,
    .swiglu_forward = cuda_swiglu_forward,
    .swiglu_backward = cuda_swiglu_backward,
    .gelu_forward = cuda_gelu_forward,
    .gelu_backward = cuda_gelu_backward,
    .xielu_forward = cuda_xielu_forward,
    .xielu_backward = cuda_xielu_backward,
    .add = cuda_add,
    .accumulate = cuda_accumulate,
    .cross_entropy = cuda_cross_entropy,
    .vocab_parallel_max = cuda_vocab_parallel_max,
    .vocab_parallel_sum_exp = cuda_vocab_parallel_sum_exp,
    .vocab_parallel_loss = cuda_vocab_parallel_loss,
    .gather_rows = cuda_gather_rows,
    .scatter_add_rows = cuda_scatter_add_rows,
    .moe_combine_forward = cuda_moe_combine_forward,
    .moe_combine_backward = cuda_moe_combine_backward,
    .adamw_update = cuda_adamw_update,
    .ademamix_update = cuda_ademamix_update,
    .sum_squares = cuda_sum_squares,
    .scale = cuda_scale,
};

enum { LT_WORKSPACE_BYTES = 32 << 20 };

static int fail(char *why, size_t why_size, const char *what, cudaError_t err) {
    if (why && why_size) snprintf(why, why_size, "%s: %s", what, cudaGetErrorString(err));
    cudaGetLastError();
    return -1;
}

static int backend_init(cuda_backend *state, char *why, size_t why_size) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) return fail(why, why_size, "cudaGetDeviceCount", err);
    if (count == 0) {
        if (why && why_size) snprintf(why, why_size, "cudaGetDeviceCount: no CUDA device");
        return -1;
    }
    if ((err = cudaGetDevice(&state->device)) != cudaSuccess)
        return fail(why, why_size, "cudaGetDevice", err);
    cudaDeviceProp prop;
    if ((err = cudaGetDeviceProperties(&prop, state->device)) != cudaSuccess)
        return fail(why, why_size, "cudaGetDeviceProperties", err);
    if (prop.major < 8) {
        if (why && why_size)
            snprintf(why, why_size, "%s has compute capability %d.%d; bf16 needs 8.0 or newer",
                     prop.name, prop.major, prop.minor);
        return -1;
    }
    state->multiprocessors = prop.multiProcessorCount;
    cublasStatus_t status = cublasLtCreate(&state->lt);
    if (status != CUBLAS_STATUS_SUCCESS) {
        if (why && why_size)
            snprintf(why, why_size, "cublasLtCreate: %s", cublasLtGetStatusString(status));
        return -1;
    }
    state->lt_workspace_bytes = LT_WORKSPACE_BYTES;
    if ((err = cudaMalloc(&state->lt_workspace, state->lt_workspace_bytes)) != cudaSuccess) {
        cublasLtDestroy(state->lt);
        return fail(why, why_size, "cudaMalloc (cuBLASLt workspace)", err);
    }
    /* room for the kernels' static shared memory beside the dynamic part */
    int max_shared = (int)prop.sharedMemPerBlockOptin - 1024;
    if ((err = cuda_attention_init(max_shared)) != cudaSuccess ||
        (err = cuda_norms_init(max_shared)) != cudaSuccess) {
        cudaFree(state->lt_workspace);
        cublasLtDestroy(state->lt);
        return fail(why, why_size, "cudaFuncSetAttribute (shared memory)", err);
    }
    return 0;
}

extern "C" const ops *ops_cuda(char *why, size_t why_size) {
    if (backend_ready) return &cuda_ops;
    if (backend_init(&backend_state, why, why_size) != 0) return NULL;
    backend_ready = 1;
    return &cuda_ops;
}
