/* Shared pieces of the CUDA backend: the process-wide backend state (one
 * device per process: cuBLASLt handle, its workspace, a growing scratch
 * buffer, the attention path and cuDNN's attention state), fatal error
 * checks, bf16 <-> fp32 vector loads, and warp/block reductions.
 *
 * Every kernel runs on the legacy default stream, so ops are ordered with
 * each other and with cudaMemcpy without events. A CUDA error inside an op is
 * a programmer error or a lost device (ops never fail by contract): it is
 * reported with its location and the process aborts. */
#ifndef CAIRN_CUDA_COMMON_CUH
#define CAIRN_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "kernels/ops.h"
}
#include "kernels/cuda/environment.h"

typedef __nv_bfloat16 bf16;

#define CUDA_CHECK(call) cuda_check((call), #call, __FILE__, __LINE__)
#define CUDA_CHECK_LAUNCH() cuda_check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
#define CUBLAS_CHECK(call) cublas_check((call), #call, __FILE__, __LINE__)

void cuda_check(cudaError_t err, const char *what, const char *file, int line);
void cublas_check(cublasStatus_t status, const char *what, const char *file, int line);

/* The backend's process-wide state, created once by ops_cuda. */
typedef struct cuda_backend {
    int device, device_count;
    char name[256];     /* as the driver reports it */
    int pci_domain, pci_bus, pci_device; /* where the GPU sits (ops' device_identity) */
    double peak_flops;  /* dense bf16, 0 when unknown */
    int multiprocessors;
    cublasLtHandle_t lt;
    void *lt_workspace;
    size_t lt_workspace_bytes;
    void *scratch;  /* grown on demand; only valid until the next cuda_scratch call */
    size_t scratch_bytes;
    void *allocation_list;  /* live allocations and their sizes (ops_cuda.cu) */
    int allocations, allocation_capacity;
    size_t held_bytes, peak_bytes;
    /* attention_path.cu: the chosen cuda_attention_path, what ran the latest forward and
     * backward, the notes already printed; cuDNN's handle, graphs and workspace (NULL in
     * builds without cuDNN attention) */
    int attention_path, attention_ran[2], attention_notes;
    struct cudnn_attention *cudnn_attention;
    /* gemm_grouped.cu: cuBLAS's handle (cublasGemmGroupedBatchedEx; it shares the cuBLASLt
     * workspace, as both run on the one stream), the device arrays of the grouped call's
     * operand pointers, the chosen cuda_grouped_gemm_path, what ran last, whether the grouped
     * call was refused (noted once, the per-group calls run from then on) */
    cublasHandle_t blas;
    void **grouped_pointers;
    int grouped_gemm_path, grouped_gemm_ran, grouped_gemm_refused;
    /* gemm.cu: the GELU epilogues switched off (kernels/cuda/gelu_epilogue.h), whether the latest
     * matmul_gelu forward and backward ran them, the GEMM notes already printed (gemm.cu) */
    int gelu_epilogue_off, gelu_epilogue_ran[2], gemm_notes;
    int unaligned_noted[4], unaligned_notes; /* row lengths noted as unaligned (gemm.cu) */
} cuda_backend;

cuda_backend *cuda_backend_state(void);
/* Device memory counted in peak_memory; NULL when the device has no room. */
void *cuda_device_malloc(size_t bytes);
void cuda_device_free(void *ptr);
/* A device buffer of at least `bytes` bytes, reused between ops (single stream). When it grows,
 * the old buffer stays allocated (and counted in peak memory) for the life of the process:
 * kernels in flight may still read it, and cudaFree would wait for the whole device, NCCL's
 * streams included, where a send that needs the peer's next call can keep it waiting for good.
 * It doubles at least, so the kept buffers hold less than the live one. */
void *cuda_scratch(size_t bytes);
/* Raise the dynamic shared-memory limits of the kernels that need more than
 * 48 KB, up to the device's opt-in limit `max_shared` (bytes). */
cudaError_t cuda_attention_init(int max_shared);
cudaError_t cuda_norms_init(int max_shared);

/* The first element of head `head` in row 0 of a bf16 buffer of rows of heads × hd (qkv rows:
 * q heads from 0, k heads from H, v heads from H + KV). */
static inline bf16 *cuda_head_start(const void *rows, int head, int hd) {
    return (bf16 *)rows + (size_t)head * hd;
}

static inline unsigned int cuda_blocks(size_t work, unsigned int threads) {
    size_t blocks = (work + threads - 1) / threads;
    return (unsigned int)(blocks < 1 ? 1 : blocks);
}

/* 1 when every pointer is aligned to `bytes` */
static inline int cuda_aligned(const void *p, size_t bytes) {
    return ((uintptr_t)p % bytes) == 0;
}

/* Loads and stores of VEC consecutive elements, converted to/from fp32.
 * VEC = 8 uses 16-byte accesses (the caller checks alignment), VEC = 1 scalar. */
template <int VEC> struct vec_io;

template <> struct vec_io<1> {
    static __device__ __forceinline__ void load(float *x, const bf16 *p) {
        x[0] = __bfloat162float(*p);
    }
    static __device__ __forceinline__ void store(bf16 *p, const float *x) {
        *p = __float2bfloat16(x[0]);
    }
};

template <> struct vec_io<8> {
    static __device__ __forceinline__ void load(float *x, const bf16 *p) {
        uint4 raw = *reinterpret_cast<const uint4 *>(p);
        const __nv_bfloat162 *pairs = reinterpret_cast<const __nv_bfloat162 *>(&raw);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 f = __bfloat1622float2(pairs[i]);
            x[2 * i] = f.x;
            x[2 * i + 1] = f.y;
        }
    }
    static __device__ __forceinline__ void store(bf16 *p, const float *x) {
        uint4 raw;
        __nv_bfloat162 *pairs = reinterpret_cast<__nv_bfloat162 *>(&raw);
#pragma unroll
        for (int i = 0; i < 4; i++) pairs[i] = __floats2bfloat162_rn(x[2 * i], x[2 * i + 1]);
        *reinterpret_cast<uint4 *>(p) = raw;
    }
};

struct sum_op {
    __device__ float operator()(float a, float b) const { return a + b; }
};

struct max_op {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <typename OP> __device__ __forceinline__ float warp_reduce(float v, OP op) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
        v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

/* Reduction over the block (blockDim.x a multiple of 32, at most 1024); every
 * thread gets the result. `shared` holds 32 floats; the call starts with a
 * barrier so it can be called repeatedly with the same buffer. */
template <typename OP>
__device__ __forceinline__ float block_reduce(float v, float *shared, float identity, OP op) {
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_reduce(v, op);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    return warp_reduce(lane < warps ? shared[lane] : identity, op);
}

__device__ __forceinline__ float warp_sum(float v) {
    return warp_reduce(v, sum_op());
}

__device__ __forceinline__ float warp_max(float v) {
    return warp_reduce(v, max_op());
}

__device__ __forceinline__ float block_sum(float v, float *shared) {
    return block_reduce(v, shared, 0.0f, sum_op());
}

__device__ __forceinline__ float block_max(float v, float *shared) {
    return block_reduce(v, shared, -INFINITY, max_op());
}

/* Deterministic column reduction: dst[c] += Σ_g partials[g][c] in order of g. */
void cuda_add_partials(float *dst, const float *partials, int groups, int columns);

/* The number of row groups a deterministic weight-gradient reduction uses:
 * depends only on the row count, so results do not depend on the device. */
static inline int cuda_row_groups(int rows) {
    return rows < 256 ? (rows < 1 ? 1 : rows) : 256;
}

/* ---- the ops, by file ---- */
/* gemm.cu */
void cuda_matmul_forward(void *out, const void *inp, const void *weight, const void *bias, int N,
                         int C, int OC);
void cuda_matmul_backward(void *dinp, void *dweight, void *dbias, const void *dout,
                          const void *inp, const void *weight, int N, int C, int OC);
/* gemm.cu: CAIRN_CUDA_GELU_EPILOGUE into the state (-1 with `why` for a bad value) */
int cuda_gelu_epilogue_read_environment(cuda_backend *state, char *why, size_t why_size);
/* gemm_grouped.cu: CAIRN_CUDA_GROUPED_GEMM into the state (-1 with `why` for a bad value); the
 * cuBLAS handle and pointer arrays (-1 with `why` when they cannot be made) */
int cuda_grouped_gemm_read_environment(cuda_backend *state, char *why, size_t why_size);
int cuda_grouped_gemm_start(cuda_backend *state, char *why, size_t why_size);
void cuda_matmul_grouped_forward(void *out, const void *inp, const void *weights,
                                 size_t weight_stride, const int32_t *offsets, int groups, int C,
                                 int OC);
void cuda_matmul_grouped_backward(void *dinp, void *dweights, const void *dout, const void *inp,
                                  const void *weights, size_t weight_stride,
                                  const int32_t *offsets, int groups, int C, int OC);
void cuda_matmul_gelu_forward(void *out, void *pre, const void *inp, const void *weight,
                              const void *bias, int N, int C, int OC);
void cuda_matmul_gelu_backward(void *dinp_pre, void *dweight, void *dbias, const void *dout,
                               const void *inp, const void *weight, const void *pre, int N, int C,
                               int OC);
/* attention.cu: the flash kernels, or cuDNN when attention_path.cu lets it run the call */
void cuda_attention_forward(void *out, void *lse, const void *qkv,
                            const attention_documents *documents, int B, int T, int H, int KV,
                            int hd);
void cuda_attention_backward(void *dqkv, const void *dout, const void *qkv, const void *out,
                             const void *lse, const attention_documents *documents, int B, int T,
                             int H, int KV, int hd);
/* attention_path.cu: CAIRN_CUDA_ATTENTION into the state (-1 with `why` for a bad value), then,
 * once the device is set up, cuDNN's attention state. The try functions return 1 when cuDNN ran
 * the call, 0 when the caller runs the flash kernels, and record which ran. */
int cuda_attention_read_environment(cuda_backend *state, char *why, size_t why_size);
void cuda_attention_start_cudnn(cuda_backend *state);
int cuda_attention_try_cudnn_forward(void *out, void *lse, const void *qkv,
                                     const attention_documents *documents, int B, int T, int H,
                                     int KV, int hd);
int cuda_attention_try_cudnn_backward(void *dqkv, const void *dout, const void *qkv,
                                      const void *out, const void *lse,
                                      const attention_documents *documents, int B, int T, int H,
                                      int KV, int hd);
/* norms.cu */
void cuda_rmsnorm_forward(void *out, void *rstd, const void *inp, const void *weight, int N, int C,
                          float eps);
void cuda_rmsnorm_backward(void *dinp, void *dweight, const void *dout, const void *inp,
                           const void *weight, const void *rstd, int N, int C);
void cuda_layernorm_forward(void *out, void *mean, void *rstd, const void *inp,
                            const void *weight, const void *bias, int N, int C, float eps);
void cuda_layernorm_backward(void *dinp, void *dweight, void *dbias, const void *dout,
                             const void *inp, const void *weight, const void *mean,
                             const void *rstd, int N, int C);
void cuda_qk_norm_forward(void *out_qkv, void *rstd, const void *inp_qkv, const void *q_weight,
                          const void *k_weight, int N, int H, int KV, int hd, float eps);
void cuda_qk_norm_backward(void *dinp_qkv, void *dq_weight, void *dk_weight, const void *dout_qkv,
                           const void *inp_qkv, const void *q_weight, const void *k_weight,
                           const void *rstd, int N, int H, int KV, int hd);
/* pointwise.cu */
void cuda_rope_forward(void *qkv, const int32_t *positions, int N, int H, int KV, int hd,
                       float theta);
void cuda_rope_backward(void *dqkv, const int32_t *positions, int N, int H, int KV, int hd,
                        float theta);
void cuda_swiglu_forward(void *out, const void *inp, int N, int F);
void cuda_swiglu_backward(void *dinp, const void *dout, const void *inp, int N, int F);
void cuda_gelu_forward(void *out, const void *inp, size_t n);
void cuda_gelu_backward(void *dinp, const void *dout, const void *inp, size_t n);
void cuda_xielu_forward(void *out, const void *inp, const void *alpha, size_t n);
void cuda_xielu_backward(void *dinp, void *dalpha, const void *dout, const void *inp,
                         const void *alpha, size_t n);
void cuda_add(void *out, const void *a, const void *b, size_t n);
void cuda_accumulate(void *dst, const void *src, size_t n);
void cuda_master_to_act(void *act, const void *master, size_t n);
/* rows.cu */
void cuda_embedding_forward(void *out, const int32_t *tokens, const int32_t *positions,
                            const void *wte, const void *wpe, int N, int C);
void cuda_embedding_backward(void *dwte, void *dwpe, const void *dout, const int32_t *tokens,
                             const int32_t *positions, int N, int C);
void cuda_gather_rows(void *out, const void *inp, const int32_t *rows, int n_out, int C);
void cuda_scatter_add_rows(void *out, const void *inp, const int32_t *rows, int n_inp, int C);
void cuda_moe_dispatch_backward(void *dinp, const void *drows, const int32_t *slot, int N, int k,
                                int C);
void cuda_moe_combine_forward(void *out, const void *expert_out, const void *gates,
                              const int32_t *slot, int N, int k, int C);
void cuda_moe_combine_backward(void *dexpert_out, void *dgates, const void *dout,
                               const void *expert_out, const void *gates, const int32_t *slot,
                               int N, int k, int C);
/* moe_routing.cu */
void cuda_moe_route_forward(int32_t *choice, void *gates, int32_t *assigned, int32_t *slot,
                            int32_t *row_token, int32_t *expert_offset, void *losses,
                            const void *logits, const moe_router *router, int N);
void cuda_moe_route_backward(void *dlogits, const void *dgates, const void *logits,
                             const int32_t *choice, const int32_t *assigned,
                             const moe_router *router, int N, double aux_scale);
/* loss.cu */
void cuda_cross_entropy(void *logits, void *losses, const int32_t *targets, const void *weights,
                        int N, int V);
void cuda_vocab_parallel_max(void *row_max, const void *logits, int N, int V);
void cuda_vocab_parallel_sum_exp(void *stats, const void *logits, const void *row_max,
                                 const int32_t *targets, int N, int V);
void cuda_vocab_parallel_loss(void *logits, void *losses, const void *row_max, const void *stats,
                              const int32_t *targets, const void *weights, int N, int V);
/* optim.cu */
void cuda_adamw_update(void *param, const void *grad, void *m, void *v, size_t n, float lr,
                       float beta1, float beta2, float eps, float weight_decay,
                       float bias_correction1, float bias_correction2);
void cuda_ademamix_update(void *param, const void *grad, void *m1, void *m2, void *v, size_t n,
                          float lr, float beta1, float beta2, float beta3, float alpha, float eps,
                          float weight_decay, float bias_correction1, float bias_correction2);
double cuda_sum_squares(const void *x, size_t n);
void cuda_scale(void *x, size_t n, float s);

#endif
