/* Row-indexed ops: token/position embedding, MoE gather/scatter of rows, the
 * gate-weighted combine and the dispatch's backward. The embedding gradient
 * and scatter_add_rows add with atomics (fp32 into the tables, bf16), so sums
 * into a row that several inputs share are not bit-reproducible; the MoE
 * backward avoids them: moe_dispatch_backward sums each token's rows through
 * its slots instead (scatter_add_rows is left with permutations, where no row
 * is shared). */
#include "kernels/cuda/cuda_common.cuh"

enum { ROWS_THREADS = 256, ROWS_WARPS = 8 };

static int rows_vec8(int C, const void *a, const void *b, const void *c) {
    return C % 8 == 0 && cuda_aligned(a, 16) && cuda_aligned(b, 16) && (!c || cuda_aligned(c, 16));
}

/* ---- embedding ---- */

template <int VEC>
__global__ void embedding_forward_kernel(bf16 *out, const int32_t *tokens,
                                         const int32_t *positions, const bf16 *wte,
                                         const bf16 *wpe, int N, int C) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= (size_t)N * C) return;
    size_t n = i / C, c = i % C;
    float x[VEC];
    if (tokens[n] >= 0) {
        vec_io<VEC>::load(x, wte + (size_t)tokens[n] * C + c);
    } else {
#pragma unroll
        for (int j = 0; j < VEC; j++) x[j] = 0.0f; /* another tensor-parallel rank's token */
    }
    if (wpe) {
        float p[VEC];
        vec_io<VEC>::load(p, wpe + (size_t)positions[n] * C + c);
#pragma unroll
        for (int j = 0; j < VEC; j++) x[j] += p[j];
    }
    vec_io<VEC>::store(out + i, x);
}

void cuda_embedding_forward(void *out, const int32_t *tokens, const int32_t *positions,
                            const void *wte, const void *wpe, int N, int C) {
    size_t n = (size_t)N * C;
    if (n == 0) return;
    if (rows_vec8(C, out, wte, wpe))
        embedding_forward_kernel<8><<<cuda_blocks(n / 8, ROWS_THREADS), ROWS_THREADS>>>(
            (bf16 *)out, tokens, positions, (const bf16 *)wte, (const bf16 *)wpe, N, C);
    else
        embedding_forward_kernel<1><<<cuda_blocks(n, ROWS_THREADS), ROWS_THREADS>>>(
            (bf16 *)out, tokens, positions, (const bf16 *)wte, (const bf16 *)wpe, N, C);
    CUDA_CHECK_LAUNCH();
}

__global__ void embedding_backward_kernel(float *dwte, float *dwpe, const bf16 *dout,
                                          const int32_t *tokens, const int32_t *positions, int N,
                                          int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    size_t n = i / C, c = i % C;
    float g = __bfloat162float(dout[i]);
    if (tokens[n] >= 0) atomicAdd(dwte + (size_t)tokens[n] * C + c, g);
    if (dwpe) atomicAdd(dwpe + (size_t)positions[n] * C + c, g);
}

void cuda_embedding_backward(void *dwte, void *dwpe, const void *dout, const int32_t *tokens,
                             const int32_t *positions, int N, int C) {
    size_t n = (size_t)N * C;
    if (n == 0) return;
    embedding_backward_kernel<<<cuda_blocks(n, ROWS_THREADS), ROWS_THREADS>>>(
        (float *)dwte, (float *)dwpe, (const bf16 *)dout, tokens, positions, N, C);
    CUDA_CHECK_LAUNCH();
}

/* ---- gather / scatter of rows ---- */

template <int VEC>
__global__ void gather_rows_kernel(bf16 *out, const bf16 *inp, const int32_t *rows, int n_out,
                                   int C) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= (size_t)n_out * C) return;
    size_t r = i / C, c = i % C;
    float x[VEC];
    vec_io<VEC>::load(x, inp + (size_t)rows[r] * C + c);
    vec_io<VEC>::store(out + i, x);
}

void cuda_gather_rows(void *out, const void *inp, const int32_t *rows, int n_out, int C) {
    size_t n = (size_t)n_out * C;
    if (n == 0) return;
    if (rows_vec8(C, out, inp, NULL))
        gather_rows_kernel<8><<<cuda_blocks(n / 8, ROWS_THREADS), ROWS_THREADS>>>(
            (bf16 *)out, (const bf16 *)inp, rows, n_out, C);
    else
        gather_rows_kernel<1><<<cuda_blocks(n, ROWS_THREADS), ROWS_THREADS>>>(
            (bf16 *)out, (const bf16 *)inp, rows, n_out, C);
    CUDA_CHECK_LAUNCH();
}

/* PAIRED: two elements per thread with a bf16x2 atomic (C even, 4-byte aligned) */
template <int PAIRED>
__global__ void scatter_add_rows_kernel(bf16 *out, const bf16 *inp, const int32_t *rows,
                                        int n_inp, int C) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * (PAIRED ? 2 : 1);
    if (i >= (size_t)n_inp * C) return;
    size_t r = i / C, c = i % C;
    if (rows[r] < 0) return;
    bf16 *dst = out + (size_t)rows[r] * C + c;
    if (PAIRED)
        atomicAdd(reinterpret_cast<__nv_bfloat162 *>(dst),
                  *reinterpret_cast<const __nv_bfloat162 *>(inp + i));
    else
        atomicAdd(dst, inp[i]);
}

void cuda_scatter_add_rows(void *out, const void *inp, const int32_t *rows, int n_inp, int C) {
    size_t n = (size_t)n_inp * C;
    if (n == 0) return;
    if (C % 2 == 0 && cuda_aligned(out, 4) && cuda_aligned(inp, 4))
        scatter_add_rows_kernel<1><<<cuda_blocks(n / 2, ROWS_THREADS), ROWS_THREADS>>>(
            (bf16 *)out, (const bf16 *)inp, rows, n_inp, C);
    else
        scatter_add_rows_kernel<0><<<cuda_blocks(n, ROWS_THREADS), ROWS_THREADS>>>(
            (bf16 *)out, (const bf16 *)inp, rows, n_inp, C);
    CUDA_CHECK_LAUNCH();
}

/* ---- MoE combine ---- */

/* out[n] = Σ_j gates[n*k+j] · rows[slot[n*k+j]] (gates: moe_combine_forward), or
 * out[n] + Σ_j rows[slot[n*k+j]] (no gates: moe_dispatch_backward), over slots != -1: one
 * thread per VEC columns of a token sums in fp32 in slot order and rounds once */
template <int VEC>
__global__ void slot_sum_kernel(bf16 *out, const bf16 *rows, const float *gates,
                                const int32_t *slot, int N, int k, int C) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= (size_t)N * C) return;
    size_t n = i / C, c = i % C;
    float acc[VEC];
    if (gates) {
#pragma unroll
        for (int j = 0; j < VEC; j++)
            acc[j] = 0.0f;
    } else {
        vec_io<VEC>::load(acc, out + i);
    }
    for (int j = 0; j < k; j++) {
        int s = slot[n * k + j];
        if (s < 0) continue;
        float gate = gates ? gates[n * k + j] : 1.0f, x[VEC];
        vec_io<VEC>::load(x, rows + (size_t)s * C + c);
#pragma unroll
        for (int e = 0; e < VEC; e++) acc[e] += gate * x[e];
    }
    vec_io<VEC>::store(out + i, acc);
}

static void slot_sum(void *out, const void *rows, const void *gates, const int32_t *slot, int N,
                     int k, int C) {
    size_t n = (size_t)N * C;
    if (n == 0) return;
    if (rows_vec8(C, out, rows, NULL))
        slot_sum_kernel<8><<<cuda_blocks(n / 8, ROWS_THREADS), ROWS_THREADS>>>(
            (bf16 *)out, (const bf16 *)rows, (const float *)gates, slot, N, k, C);
    else
        slot_sum_kernel<1><<<cuda_blocks(n, ROWS_THREADS), ROWS_THREADS>>>(
            (bf16 *)out, (const bf16 *)rows, (const float *)gates, slot, N, k, C);
    CUDA_CHECK_LAUNCH();
}

void cuda_moe_combine_forward(void *out, const void *expert_out, const void *gates,
                              const int32_t *slot, int N, int k, int C) {
    slot_sum(out, expert_out, gates, slot, N, k, C);
}

void cuda_moe_dispatch_backward(void *dinp, const void *drows, const int32_t *slot, int N, int k,
                                int C) {
    slot_sum(dinp, drows, NULL, slot, N, k, C);
}

/* one warp per (n, j): the expert row's gradient and the gate's gradient */
__global__ void moe_combine_backward_kernel(bf16 *dexpert_out, float *dgates, const bf16 *dout,
                                            const bf16 *expert_out, const float *gates,
                                            const int32_t *slot, int N, int k, int C) {
    size_t task = (size_t)blockIdx.x * ROWS_WARPS + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (task >= (size_t)N * k) return;
    size_t n = task / k;
    int s = slot[task];
    if (s < 0) {
        if (lane == 0) dgates[task] = 0.0f;
        return;
    }
    float gate = gates[task], dot = 0.0f;
    const bf16 *g = dout + n * C, *x = expert_out + (size_t)s * C;
    bf16 *dx = dexpert_out + (size_t)s * C;
    for (int c = lane; c < C; c += 32) {
        float gv = __bfloat162float(g[c]);
        dot += gv * __bfloat162float(x[c]);
        dx[c] = __float2bfloat16(gate * gv);
    }
    dot = warp_sum(dot);
    if (lane == 0) dgates[task] = dot;
}

void cuda_moe_combine_backward(void *dexpert_out, void *dgates, const void *dout,
                               const void *expert_out, const void *gates, const int32_t *slot,
                               int N, int k, int C) {
    size_t tasks = (size_t)N * k;
    if (tasks == 0) return;
    moe_combine_backward_kernel<<<cuda_blocks(tasks, ROWS_WARPS), ROWS_WARPS * 32>>>(
        (bf16 *)dexpert_out, (float *)dgates, (const bf16 *)dout, (const bf16 *)expert_out,
        (const float *)gates, slot, N, k, C);
    CUDA_CHECK_LAUNCH();
}
