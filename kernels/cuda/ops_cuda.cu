/* The CUDA backend's ops table: initialisation (device check, the environment
 * switches, cuBLASLt handle and workspace, kernel attributes, cuBLAS for the
 * grouped GEMMs, cuDNN's attention state), memory, conversions between the
 * host's fp32 and the device's bf16/fp32 buffers. The kernels live in the
 * other files of this folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"
#include "kernels/cuda/cuda_common.cuh"

/* One device per process: the only mutable static state of the backend. */
static cuda_backend backend_state;
static int backend_ready;

/* ---- memory accounting (peak_memory): the sizes of live allocations, since cudaFree does not
 * say how much it released. Few buffers live at once (arenas, optimizer state, test buffers),
 * so a list searched from its end (the newest first) is enough. ---- */

typedef struct allocation {
    void *ptr;
    size_t bytes;
} allocation;

static void count_allocation(cuda_backend *state, void *ptr, size_t bytes) {
    if (state->allocations == state->allocation_capacity) {
        int grown = state->allocation_capacity ? 2 * state->allocation_capacity : 64;
        allocation *list =
            (allocation *)realloc(state->allocation_list, (size_t)grown * sizeof *list);
        if (!list) {
            fprintf(stderr, "cuda: out of host memory for the allocation list\n");
            abort();
        }
        state->allocation_list = list;
        state->allocation_capacity = grown;
    }
    allocation *list = (allocation *)state->allocation_list;
    list[state->allocations++] = allocation{ptr, bytes};
    state->held_bytes += bytes;
    if (state->held_bytes > state->peak_bytes) state->peak_bytes = state->held_bytes;
}

static void count_release(cuda_backend *state, void *ptr) {
    allocation *list = (allocation *)state->allocation_list;
    for (int i = state->allocations - 1; i >= 0; i--)
        if (list[i].ptr == ptr) {
            state->held_bytes -= list[i].bytes;
            list[i] = list[--state->allocations];
            return;
        }
}

void *cuda_device_malloc(size_t bytes) {
    void *ptr = NULL;
    if (cudaMalloc(&ptr, bytes ? bytes : 1) != cudaSuccess) {
        cudaGetLastError(); /* clear the error so later checks do not see it */
        return NULL;
    }
    count_allocation(&backend_state, ptr, bytes);
    return ptr;
}

void cuda_device_free(void *ptr) {
    if (!ptr) return;
    count_release(&backend_state, ptr);
    CUDA_CHECK(cudaFree(ptr));
}

void cuda_check(cudaError_t err, const char *what, const char *file, int line) {
    if (err == cudaSuccess) return;
    fprintf(stderr, "cuda: %s:%d: %s: %s\n", file, line, what, cudaGetErrorString(err));
    abort();
}

void cublas_check(cublasStatus_t status, const char *what, const char *file, int line) {
    if (status == CUBLAS_STATUS_SUCCESS) return;
    fprintf(stderr, "cublas: %s:%d: %s: %s\n", file, line, what, cublasLtGetStatusString(status));
    abort();
}

extern "C" int cuda_environment_choice(const char *variable, const char *const *names, int count,
                            int *choice, char *why, size_t why_size) {
    const char *value = getenv(variable);
    *choice = 0;
    if (!value || !*value) return 0;
    for (int i = 0; i < count; i++)
        if (strcmp(value, names[i]) == 0) {
            *choice = i;
            return 0;
        }
    if (why && why_size) {
        /* "expected a, b or c" */
        int used = snprintf(why, why_size, "%s=%s: expected", variable, value);
        for (int i = 0; i < count && used >= 0 && (size_t)used < why_size; i++)
            used += snprintf(why + used, why_size - used, "%s%s",
                             i == 0 ? " " : i == count - 1 ? " or " : ", ", names[i]);
    }
    return -1;
}

cuda_backend *cuda_backend_state(void) {
    return &backend_state;
}

void *cuda_scratch(size_t bytes) {
    cuda_backend *state = &backend_state;
    if (bytes <= state->scratch_bytes) return state->scratch;
    /* The old buffer is kept, not freed (cuda_common.cuh: cuda_scratch). */
    size_t grown = state->scratch_bytes * 2 > bytes ? state->scratch_bytes * 2 : bytes;
    grown = (grown + 255) / 256 * 256;
    state->scratch = cuda_device_malloc(grown);
    if (!state->scratch) {
        fprintf(stderr, "cuda: out of device memory for %zu bytes of scratch\n", grown);
        abort();
    }
    state->scratch_bytes = grown;
    return state->scratch;
}

/* ---- memory ---- */

static void *cuda_alloc(size_t bytes) {
    void *ptr = cuda_device_malloc(bytes);
    if (ptr) CUDA_CHECK(cudaMemset(ptr, 0, bytes));
    return ptr;
}

static void cuda_free(void *ptr) {
    cuda_device_free(ptr);
}

static size_t cuda_peak_memory(void) {
    return backend_state.peak_bytes;
}

static double cuda_peak_flops(void) {
    return backend_state.peak_flops;
}

static int cuda_device_identity(unsigned char identity[16]) {
    const int pci[3] = {backend_state.pci_domain, backend_state.pci_bus, backend_state.pci_device};
    memset(identity, 0, 16);
    memcpy(identity, pci, sizeof pci);
    return 0;
}

static void cuda_describe(char *out, size_t size) {
    snprintf(out, size, "%s (GPU %d of %d)", backend_state.name, backend_state.device,
             backend_state.device_count);
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

/* The compute stream only: NCCL's streams are non-blocking, so a device-wide wait here would
 * also wait for the data-parallel buckets and pipeline sends in flight and undo the overlap. */
static void cuda_synchronize(void) {
    CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy));
}

/* ---- conversions: bf16 rounding on the host (common/bf16.h) ---- */

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
    for (size_t i = 0; i < n; i++) host[i] = bf16_to_float(staged[i]);
    free(staged);
}

static void cuda_float_to_act(void *act, const float *host, size_t n) {
    uint16_t *staged = (uint16_t *)host_buffer(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) staged[i] = float_to_bf16(host[i]);
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
    .host_memory = 0,
    .describe = cuda_describe,
    .peak_flops = cuda_peak_flops,
    .peak_memory = cuda_peak_memory,
    .device_identity = cuda_device_identity,
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
    .matmul_grouped_forward = cuda_matmul_grouped_forward,
    .matmul_grouped_backward = cuda_matmul_grouped_backward,
    .matmul_gelu_forward = cuda_matmul_gelu_forward,
    .matmul_gelu_backward = cuda_matmul_gelu_backward,
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
    .moe_route_forward = cuda_moe_route_forward,
    .moe_route_backward = cuda_moe_route_backward,
    .gather_rows = cuda_gather_rows,
    .scatter_add_rows = cuda_scatter_add_rows,
    .moe_dispatch_backward = cuda_moe_dispatch_backward,
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

/* Dense bf16 tensor-core peaks (FLOP/s, fp32 accumulation) from the vendor's data sheets, by
 * the name the driver reports; the most specific names come first. Unknown GPUs get 0 and no
 * MFU rather than a guess. */
static double datasheet_peak_flops(const char *name) {
    static const struct {
        const char *name;
        double flops;
    } peaks[] = {
        {"GH200", 989.4e12}, {"H200", 989.4e12},   {"H100 PCIe", 756.5e12},
        {"H100 NVL", 835.5e12}, {"H100", 989.4e12}, {"H800", 989.4e12},
        {"GB200", 2500e12},  {"B200", 2250e12},    {"B100", 1750e12},
        {"A100", 312e12},    {"A800", 312e12},     {"L40S", 362.05e12},
        {"A10G", 70e12},     {"L4", 121e12},
    };
    for (size_t i = 0; i < sizeof peaks / sizeof *peaks; i++)
        if (strstr(name, peaks[i].name)) return peaks[i].flops;
    return 0;
}

static int backend_init(cuda_backend *state, int local_rank, char *why, size_t why_size) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) return fail(why, why_size, "cudaGetDeviceCount", err);
    if (count == 0) {
        if (why && why_size) snprintf(why, why_size, "cudaGetDeviceCount: no CUDA device");
        return -1;
    }
    state->device_count = count;
    state->device = (local_rank > 0 ? local_rank : 0) % count;
    if ((err = cudaSetDevice(state->device)) != cudaSuccess)
        return fail(why, why_size, "cudaSetDevice", err);
    cudaDeviceProp prop;
    if ((err = cudaGetDeviceProperties(&prop, state->device)) != cudaSuccess)
        return fail(why, why_size, "cudaGetDeviceProperties", err);
    if (prop.major < 8) {
        if (why && why_size)
            snprintf(why, why_size, "%s has compute capability %d.%d; bf16 needs 8.0 or newer",
                     prop.name, prop.major, prop.minor);
        return -1;
    }
    if (cuda_attention_read_environment(state, why, why_size) != 0 ||
        cuda_grouped_gemm_read_environment(state, why, why_size) != 0 ||
        cuda_gelu_epilogue_read_environment(state, why, why_size) != 0)
        return -1;
    state->multiprocessors = prop.multiProcessorCount;
    snprintf(state->name, sizeof state->name, "%s", prop.name);
    state->pci_domain = prop.pciDomainID;
    state->pci_bus = prop.pciBusID;
    state->pci_device = prop.pciDeviceID;
    state->peak_flops = datasheet_peak_flops(prop.name);
    cublasStatus_t status = cublasLtCreate(&state->lt);
    if (status != CUBLAS_STATUS_SUCCESS) {
        if (why && why_size)
            snprintf(why, why_size, "cublasLtCreate: %s", cublasLtGetStatusString(status));
        return -1;
    }
    state->lt_workspace_bytes = LT_WORKSPACE_BYTES;
    if (!(state->lt_workspace = cuda_device_malloc(state->lt_workspace_bytes))) {
        cublasLtDestroy(state->lt);
        return fail(why, why_size, "cudaMalloc (cuBLASLt workspace)", cudaErrorMemoryAllocation);
    }
    /* room for the kernels' static shared memory beside the dynamic part */
    int max_shared = (int)prop.sharedMemPerBlockOptin - 1024;
    if ((err = cuda_attention_init(max_shared)) == cudaSuccess)
        err = cuda_norms_init(max_shared);
    int failed = err != cudaSuccess
                     ? fail(why, why_size, "cudaFuncSetAttribute (shared memory)", err)
                     : cuda_grouped_gemm_start(state, why, why_size);
    if (failed != 0) {
        cuda_device_free(state->lt_workspace);
        cublasLtDestroy(state->lt);
        return -1;
    }
    cuda_attention_start_cudnn(state); /* cannot fail the backend: attention falls back to flash */
    return 0;
}

extern "C" const ops *ops_cuda(int local_rank, char *why, size_t why_size) {
    if (backend_ready) return &cuda_ops;
    if (backend_init(&backend_state, local_rank, why, why_size) != 0) return NULL;
    backend_ready = 1;
    return &cuda_ops;
}
