/* RMSNorm, LayerNorm and per-head QK-norm, forward and backward, bf16 in and
 * out with fp32 statistics.
 *
 * Forward: one warp per row. Backward: one block per group of rows; each
 * thread owns a fixed set of columns and sums their weight gradient over the
 * group in shared memory, the groups' partial sums are then added to the
 * fp32 dweight in a fixed order (deterministic, no atomics). */
#include "kernels/cuda/cuda_common.cuh"

enum { NORM_WARPS = 4, NORM_BACKWARD_THREADS = 256, QK_BACKWARD_WARPS = 4 };

static int use_vec8(int C, const void *a, const void *b, const void *c, const void *d) {
    return C % 8 == 0 && cuda_aligned(a, 16) && cuda_aligned(b, 16) &&
           (!c || cuda_aligned(c, 16)) && (!d || cuda_aligned(d, 16));
}

/* Σ over a row of C elements of x (SQUARES = 0) or (x - center)² (SQUARES = 1),
 * one warp per row: every lane gets the sum. */
template <int VEC, int SQUARES>
__device__ __forceinline__ float warp_row_sum(const bf16 *x, int C, float center) {
    int lane = threadIdx.x % 32;
    float sum = 0.0f;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC];
        vec_io<VEC>::load(v, x + c);
#pragma unroll
        for (int i = 0; i < VEC; i++) sum += SQUARES ? (v[i] - center) * (v[i] - center) : v[i];
    }
    return warp_sum(sum);
}

/* ---- RMSNorm ---- */

template <int VEC>
__global__ void rmsnorm_forward_kernel(bf16 *out, float *rstd, const bf16 *inp, const bf16 *weight,
                                       int N, int C, float eps) {
    int row = blockIdx.x * NORM_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const bf16 *x = inp + (size_t)row * C;
    float r = rsqrtf(warp_row_sum<VEC, 1>(x, C, 0.0f) / C + eps);
    if (lane == 0) rstd[row] = r;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC], w[VEC];
        vec_io<VEC>::load(v, x + c);
        vec_io<VEC>::load(w, weight + c);
#pragma unroll
        for (int i = 0; i < VEC; i++) v[i] = v[i] * r * w[i];
        vec_io<VEC>::store(out + (size_t)row * C + c, v);
    }
}

void cuda_rmsnorm_forward(void *out, void *rstd, const void *inp, const void *weight, int N, int C,
                          float eps) {
    unsigned int blocks = cuda_blocks(N, NORM_WARPS);
    if (use_vec8(C, out, inp, weight, NULL))
        rmsnorm_forward_kernel<8><<<blocks, NORM_WARPS * 32>>>(
            (bf16 *)out, (float *)rstd, (const bf16 *)inp, (const bf16 *)weight, N, C, eps);
    else
        rmsnorm_forward_kernel<1><<<blocks, NORM_WARPS * 32>>>(
            (bf16 *)out, (float *)rstd, (const bf16 *)inp, (const bf16 *)weight, N, C, eps);
    CUDA_CHECK_LAUNCH();
}

/* ---- LayerNorm ---- */

template <int VEC>
__global__ void layernorm_forward_kernel(bf16 *out, float *mean_out, float *rstd_out,
                                         const bf16 *inp, const bf16 *weight, const bf16 *bias,
                                         int N, int C, float eps) {
    int row = blockIdx.x * NORM_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const bf16 *x = inp + (size_t)row * C;
    float mean = warp_row_sum<VEC, 0>(x, C, 0.0f) / C;
    float r = rsqrtf(warp_row_sum<VEC, 1>(x, C, mean) / C + eps);
    if (lane == 0) {
        mean_out[row] = mean;
        rstd_out[row] = r;
    }
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float v[VEC], w[VEC], b[VEC];
        vec_io<VEC>::load(v, x + c);
        vec_io<VEC>::load(w, weight + c);
        vec_io<VEC>::load(b, bias + c);
#pragma unroll
        for (int i = 0; i < VEC; i++) v[i] = (v[i] - mean) * r * w[i] + b[i];
        vec_io<VEC>::store(out + (size_t)row * C + c, v);
    }
}

void cuda_layernorm_forward(void *out, void *mean, void *rstd, const void *inp,
                            const void *weight, const void *bias, int N, int C, float eps) {
    unsigned int blocks = cuda_blocks(N, NORM_WARPS);
    if (use_vec8(C, out, inp, weight, bias))
        layernorm_forward_kernel<8><<<blocks, NORM_WARPS * 32>>>(
            (bf16 *)out, (float *)mean, (float *)rstd, (const bf16 *)inp, (const bf16 *)weight,
            (const bf16 *)bias, N, C, eps);
    else
        layernorm_forward_kernel<1><<<blocks, NORM_WARPS * 32>>>(
            (bf16 *)out, (float *)mean, (float *)rstd, (const bf16 *)inp, (const bf16 *)weight,
            (const bf16 *)bias, N, C, eps);
    CUDA_CHECK_LAUNCH();
}

/* ---- backward of both norms ---- */

/* LayerNorm (LAYERNORM = 1): dx = rstd · (g·w − mean(g·w) − x̂ · mean(g·w·x̂)),
 * x̂ = (x − mean) · rstd; dweight += g·x̂; dbias += g.
 * RMSNorm: the same with mean = 0, without the mean(g·w) term and dbias.
 * dx is added to dinp. partials: [groups][C] for dweight, then (LayerNorm)
 * [groups][C] for dbias. */
template <int VEC, int LAYERNORM>
__global__ void norm_backward_kernel(bf16 *dinp, float *partials, const bf16 *dout,
                                     const bf16 *inp, const bf16 *weight, const float *mean,
                                     const float *rstd, int N, int C, int rows_per_group) {
    extern __shared__ float acc[]; /* [0, C): dweight, [C, 2C): dbias */
    __shared__ float reduce_buffer[32];
    int stride = blockDim.x * VEC;
    for (int c = threadIdx.x * VEC; c < C; c += stride)
#pragma unroll
        for (int i = 0; i < VEC; i++) {
            acc[c + i] = 0.0f;
            if (LAYERNORM) acc[C + c + i] = 0.0f;
        }
    int begin = blockIdx.x * rows_per_group, end = min(N, begin + rows_per_group);
    for (int row = begin; row < end; row++) {
        const bf16 *x = inp + (size_t)row * C, *g = dout + (size_t)row * C;
        bf16 *dx = dinp + (size_t)row * C;
        float mu = LAYERNORM ? mean[row] : 0.0f, r = rstd[row];
        float sum_gw = 0.0f, dot = 0.0f;
        for (int c = threadIdx.x * VEC; c < C; c += stride) {
            float xv[VEC], gv[VEC], wv[VEC];
            vec_io<VEC>::load(xv, x + c);
            vec_io<VEC>::load(gv, g + c);
            vec_io<VEC>::load(wv, weight + c);
#pragma unroll
            for (int i = 0; i < VEC; i++) {
                sum_gw += gv[i] * wv[i];
                dot += gv[i] * wv[i] * (xv[i] - mu) * r;
            }
        }
        float mean_gw = LAYERNORM ? block_sum(sum_gw, reduce_buffer) / C : 0.0f;
        float mean_dot = block_sum(dot, reduce_buffer) / C;
        for (int c = threadIdx.x * VEC; c < C; c += stride) {
            float xv[VEC], gv[VEC], wv[VEC], dv[VEC];
            vec_io<VEC>::load(xv, x + c);
            vec_io<VEC>::load(gv, g + c);
            vec_io<VEC>::load(wv, weight + c);
            vec_io<VEC>::load(dv, dx + c);
#pragma unroll
            for (int i = 0; i < VEC; i++) {
                float xhat = (xv[i] - mu) * r;
                dv[i] += r * (gv[i] * wv[i] - mean_gw - xhat * mean_dot);
                acc[c + i] += gv[i] * xhat;
                if (LAYERNORM) acc[C + c + i] += gv[i];
            }
            vec_io<VEC>::store(dx + c, dv);
        }
    }
    float *dweight_partial = partials + (size_t)blockIdx.x * C;
    float *dbias_partial = partials + (size_t)gridDim.x * C + (size_t)blockIdx.x * C;
    for (int c = threadIdx.x * VEC; c < C; c += stride)
#pragma unroll
        for (int i = 0; i < VEC; i++) {
            dweight_partial[c + i] = acc[c + i];
            if (LAYERNORM) dbias_partial[c + i] = acc[C + c + i];
        }
}

template <int LAYERNORM>
static void norm_backward(void *dinp, void *dweight, void *dbias, const void *dout,
                          const void *inp, const void *weight, const void *mean, const void *rstd,
                          int N, int C) {
    int groups = cuda_row_groups(N), rows_per_group = (N + groups - 1) / groups;
    size_t per_group = (size_t)(LAYERNORM ? 2 : 1) * C;
    float *partials = (float *)cuda_scratch((size_t)groups * per_group * sizeof(float));
    size_t shared = per_group * sizeof(float);
    if (use_vec8(C, dinp, dout, inp, weight))
        norm_backward_kernel<8, LAYERNORM><<<groups, NORM_BACKWARD_THREADS, shared>>>(
            (bf16 *)dinp, partials, (const bf16 *)dout, (const bf16 *)inp, (const bf16 *)weight,
            (const float *)mean, (const float *)rstd, N, C, rows_per_group);
    else
        norm_backward_kernel<1, LAYERNORM><<<groups, NORM_BACKWARD_THREADS, shared>>>(
            (bf16 *)dinp, partials, (const bf16 *)dout, (const bf16 *)inp, (const bf16 *)weight,
            (const float *)mean, (const float *)rstd, N, C, rows_per_group);
    CUDA_CHECK_LAUNCH();
    cuda_add_partials((float *)dweight, partials, groups, C);
    if (LAYERNORM) cuda_add_partials((float *)dbias, partials + (size_t)groups * C, groups, C);
}

void cuda_rmsnorm_backward(void *dinp, void *dweight, const void *dout, const void *inp,
                           const void *weight, const void *rstd, int N, int C) {
    norm_backward<0>(dinp, dweight, NULL, dout, inp, weight, NULL, rstd, N, C);
}

void cuda_layernorm_backward(void *dinp, void *dweight, void *dbias, const void *dout,
                             const void *inp, const void *weight, const void *mean,
                             const void *rstd, int N, int C) {
    norm_backward<1>(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}

/* ---- QK-norm: RMSNorm over hd of each q and k head, v copied ---- */

__global__ void qk_norm_forward_kernel(bf16 *out, float *rstd, const bf16 *inp,
                                       const bf16 *q_weight, const bf16 *k_weight, int N, int H,
                                       int KV, int hd, float eps) {
    int heads = H + 2 * KV;
    size_t task = (size_t)blockIdx.x * NORM_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (task >= (size_t)N * heads) return;
    int n = (int)(task / heads), head = (int)(task % heads);
    const bf16 *x = inp + task * hd;
    bf16 *y = out + task * hd;
    if (head >= H + KV) {
        for (int d = lane; d < hd; d += 32) y[d] = x[d];
        return;
    }
    const bf16 *w = head < H ? q_weight : k_weight;
    float squares = 0.0f;
    for (int d = lane; d < hd; d += 32) {
        float v = __bfloat162float(x[d]);
        squares += v * v;
    }
    float r = rsqrtf(warp_sum(squares) / hd + eps);
    if (lane == 0) rstd[(size_t)n * (H + KV) + head] = r;
    for (int d = lane; d < hd; d += 32)
        y[d] = __float2bfloat16(__bfloat162float(x[d]) * r * __bfloat162float(w[d]));
}

void cuda_qk_norm_forward(void *out_qkv, void *rstd, const void *inp_qkv, const void *q_weight,
                          const void *k_weight, int N, int H, int KV, int hd, float eps) {
    size_t tasks = (size_t)N * (H + 2 * KV);
    qk_norm_forward_kernel<<<cuda_blocks(tasks, NORM_WARPS), NORM_WARPS * 32>>>(
        (bf16 *)out_qkv, (float *)rstd, (const bf16 *)inp_qkv, (const bf16 *)q_weight,
        (const bf16 *)k_weight, N, H, KV, hd, eps);
    CUDA_CHECK_LAUNCH();
}

/* Each warp keeps its own [q | k] × hd weight-gradient sums in shared memory
 * (lane d % 32 owns dimension d); the block adds its warps in order and writes
 * partials_q[group][hd] and partials_k[group][hd]. */
__global__ void qk_norm_backward_kernel(bf16 *dinp, float *partials_q, float *partials_k,
                                        const bf16 *dout, const bf16 *inp, const bf16 *q_weight,
                                        const bf16 *k_weight, const float *rstd, int N, int H,
                                        int KV, int hd, int rows_per_group) {
    extern __shared__ float acc[]; /* [warp][2][hd] */
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, heads = H + 2 * KV;
    float *warp_acc = acc + (size_t)warp * 2 * hd;
    for (int d = lane; d < 2 * hd; d += 32) warp_acc[d] = 0.0f;
    int begin = blockIdx.x * rows_per_group, end = min(N, begin + rows_per_group);
    size_t first = (size_t)begin * heads, last = (size_t)max(end, begin) * heads;
    for (size_t task = first + warp; task < last; task += QK_BACKWARD_WARPS) {
        int n = (int)(task / heads), head = (int)(task % heads);
        const bf16 *x = inp + task * hd, *g = dout + task * hd;
        bf16 *dx = dinp + task * hd;
        if (head >= H + KV) {
            for (int d = lane; d < hd; d += 32) dx[d] = g[d];
            continue;
        }
        const bf16 *w = head < H ? q_weight : k_weight;
        float *wacc = warp_acc + (head < H ? 0 : hd);
        float r = rstd[(size_t)n * (H + KV) + head];
        float dot = 0.0f;
        for (int d = lane; d < hd; d += 32)
            dot += __bfloat162float(g[d]) * __bfloat162float(w[d]) * __bfloat162float(x[d]) * r;
        float mean_dot = warp_sum(dot) / hd;
        for (int d = lane; d < hd; d += 32) {
            float xhat = __bfloat162float(x[d]) * r, gv = __bfloat162float(g[d]);
            dx[d] = __float2bfloat16(r * (gv * __bfloat162float(w[d]) - xhat * mean_dot));
            wacc[d] += gv * xhat;
        }
    }
    __syncthreads();
    for (int d = threadIdx.x; d < 2 * hd; d += blockDim.x) {
        float sum = 0.0f;
        for (int w = 0; w < QK_BACKWARD_WARPS; w++) sum += acc[(size_t)w * 2 * hd + d];
        if (d < hd)
            partials_q[(size_t)blockIdx.x * hd + d] = sum;
        else
            partials_k[(size_t)blockIdx.x * hd + d - hd] = sum;
    }
}

void cuda_qk_norm_backward(void *dinp_qkv, void *dq_weight, void *dk_weight, const void *dout_qkv,
                           const void *inp_qkv, const void *q_weight, const void *k_weight,
                           const void *rstd, int N, int H, int KV, int hd) {
    int groups = cuda_row_groups(N), rows_per_group = (N + groups - 1) / groups;
    float *partials = (float *)cuda_scratch((size_t)2 * groups * hd * sizeof(float));
    size_t shared = (size_t)QK_BACKWARD_WARPS * 2 * hd * sizeof(float);
    qk_norm_backward_kernel<<<groups, QK_BACKWARD_WARPS * 32, shared>>>(
        (bf16 *)dinp_qkv, partials, partials + (size_t)groups * hd, (const bf16 *)dout_qkv,
        (const bf16 *)inp_qkv, (const bf16 *)q_weight, (const bf16 *)k_weight,
        (const float *)rstd, N, H, KV, hd, rows_per_group);
    CUDA_CHECK_LAUNCH();
    cuda_add_partials((float *)dq_weight, partials, groups, hd);
    cuda_add_partials((float *)dk_weight, partials + (size_t)groups * hd, groups, hd);
}

/* The backward kernels hold 2·C floats (LayerNorm) in shared memory: C up to
 * max_shared / 8 (20k on an H100). */
cudaError_t cuda_norms_init(int max_shared) {
    cudaError_t err;
    const void *kernels[] = {
        (const void *)norm_backward_kernel<1, 0>, (const void *)norm_backward_kernel<8, 0>,
        (const void *)norm_backward_kernel<1, 1>, (const void *)norm_backward_kernel<8, 1>};
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++) {
        err = cudaFuncSetAttribute(kernels[i], cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   max_shared);
        if (err != cudaSuccess) return err;
    }
    return cudaSuccess;
}
