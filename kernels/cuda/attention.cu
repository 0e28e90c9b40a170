/* Causal GQA attention with per-document windows, forward and backward, as
 * flash-attention kernels on bf16 tensor cores (mma.sync m16n8k16 fed by
 * ldmatrix, fp32 accumulation): tiles of q, k, v in shared memory, key/value
 * tiles double-buffered with cp.async, online softmax in registers, lse saved
 * in fp32 for the backward pass.
 *
 * Query row t of sequence b sees keys j with doc_start[b·T+t] <= j <= t. A
 * block of 128 (forward) or 64 (dQ) query rows visits the key tiles between
 * the smallest doc_start of its rows and its last row; the mask is applied per
 * element.
 * Head dims up to 64 run with 64-wide tiles, up to 128 with 128-wide tiles
 * (a smaller hd is zero-padded in shared memory).
 *
 * Backward (recomputing P from lse): one kernel per key tile accumulates dK
 * and dV over every query head of its kv group and every query tile that can
 * see it; a second kernel per query tile accumulates dQ. No atomics: the
 * result is deterministic. delta = rowsum(dO ∘ O) is computed first.
 *
 * The entry points below run cuDNN's fused attention instead when
 * attention_path.cu lets it take the call (under auto, calls without
 * per-document masks; see kernels/cuda/attention_path.h); these kernels are
 * the rest and the fallback. */
#include <stdio.h>
#include <stdlib.h>

#include "kernels/cuda/cuda_common.cuh"

/* forward: 8 warps × 16 query rows; backward: 4 warps × 16 rows; key tiles of 64 */
enum { FWD_WARPS = 8, FWD_ROWS = 16 * FWD_WARPS, BWD_THREADS = 128, BWD_ROWS = 64 };
enum { ATTN_KV = 64, ATTN_MAX_HD = 128 };

static const float LOG2E = 1.4426950408889634f, LN2 = 0.6931471805599453f;

/* ---- tensor-core and shared-memory helpers ---- */

__device__ __forceinline__ void mma_16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

__device__ __forceinline__ uint32_t shared_address(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* four 8×8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i */
__device__ __forceinline__ void ldmatrix_x4(uint32_t *r, const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(p)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t *r, const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(p)));
}

/* 16 bytes global → shared without registers; bytes = 0 writes zeros */
__device__ __forceinline__ void cp_async_16(void *shared, const void *global, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(shared)),
                 "l"(global), "r"(bytes));
}

__device__ __forceinline__ void cp_async_commit(void) {
    asm volatile("cp.async.commit_group;\n" ::);
}

/* wait until at most N of this thread's copy groups are in flight */
template <int N> __device__ __forceinline__ void cp_async_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* A operand (16×16, row-major) from a shared tile: rows row0..row0+15, columns col0..col0+15 */
template <int LD>
__device__ __forceinline__ void load_a(uint32_t *a, const bf16 *tile, int row0, int col0) {
    int lane = threadIdx.x % 32;
    ldmatrix_x4(a, tile + (row0 + lane % 16) * LD + col0 + lane / 16 * 8);
}

/* S[16 × 8·NT] += A-rows of `a_tile` · (rows of `b_tile`)ᵀ over the HD columns:
 * the product of two row-major tiles, the second one read as Bᵀ. */
template <int HD, int NT>
__device__ __forceinline__ void mma_abt(float (*s)[4], const bf16 *a_tile, int a_row0,
                                        const bf16 *b_tile) {
    const int LD = HD + 8;
    int lane = threadIdx.x % 32;
    /* matrices: (n rows 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) */
    const bf16 *b_lane = b_tile + (lane % 8 + lane / 16 * 8) * LD + (lane / 8 % 2) * 8;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
        uint32_t a[4];
        load_a<LD>(a, a_tile, a_row0, kk * 16);
#pragma unroll
        for (int nt = 0; nt < NT; nt += 2) {
            uint32_t b[4];
            ldmatrix_x4(b, b_lane + nt * 8 * LD + kk * 16);
            mma_16816(s[nt], a, b[0], b[1]);
            mma_16816(s[nt + 1], a, b[2], b[3]);
        }
    }
}

/* O[16 × HD] += P[16 × 16·KT] · V[16·KT × HD], P given as C fragments (fp32,
 * converted to bf16 A fragments in registers), V a row-major shared tile. */
template <int HD, int KT>
__device__ __forceinline__ void mma_pv(float (*o)[4], const float (*p)[4], const bf16 *v_tile) {
    const int LD = HD + 8;
    int lane = threadIdx.x % 32;
    /* transposed matrices: (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15) */
    const bf16 *v_lane = v_tile + (lane % 8 + (lane / 8 % 2) * 8) * LD + lane / 16 * 8;
#pragma unroll
    for (int kk = 0; kk < KT; kk++) {
        uint32_t a[4];
        a[0] = pack_bf16(p[2 * kk][0], p[2 * kk][1]);
        a[1] = pack_bf16(p[2 * kk][2], p[2 * kk][3]);
        a[2] = pack_bf16(p[2 * kk + 1][0], p[2 * kk + 1][1]);
        a[3] = pack_bf16(p[2 * kk + 1][2], p[2 * kk + 1][3]);
#pragma unroll
        for (int dt = 0; dt < HD / 8; dt += 2) {
            uint32_t b[4];
            ldmatrix_x4_trans(b, v_lane + kk * 16 * LD + dt * 8);
            mma_16816(o[dt], a, b[0], b[1]);
            mma_16816(o[dt + 1], a, b[2], b[3]);
        }
    }
}

/* Start copying rows row0..row0+ROWS-1 (of T) of one head into a shared tile
 * [ROWS][HD+8], zero-filling rows past T and columns past hd. `src` points at
 * row 0 of the head; rows are `stride` elements apart. VEC (hd % 8 == 0 and
 * src 16-byte aligned): asynchronous 16-byte copies, complete after the
 * caller's cp_async_commit / cp_async_wait; else plain loads and stores.
 * Either way the tile is visible to the block after the next barrier. */
template <int ROWS, int HD>
__device__ __forceinline__ void load_tile(bf16 *tile, const bf16 *src, size_t stride, int row0,
                                          int T, int hd, int vec) {
    const int LD = HD + 8;
    if (vec) {
        for (int chunk = threadIdx.x; chunk < ROWS * HD / 8; chunk += blockDim.x) {
            int r = chunk / (HD / 8), d = chunk % (HD / 8) * 8;
            int valid = row0 + r < T && d < hd;
            const bf16 *from = valid ? src + (size_t)(row0 + r) * stride + d : src;
            cp_async_16(tile + r * LD + d, from, valid ? 16 : 0);
        }
    } else {
        for (int i = threadIdx.x; i < ROWS * HD; i += blockDim.x) {
            int r = i / HD, d = i % HD;
            bf16 value = __float2bfloat16(0.0f);
            if (row0 + r < T && d < hd) value = src[(size_t)(row0 + r) * stride + d];
            tile[r * LD + d] = value;
        }
    }
}

__device__ __forceinline__ float quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

__device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

/* 2^x on the special-function unit (flush-to-zero; 2^-inf = 0) */
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* smallest doc start among the first `count` entries (each thread scans the shared array) */
__device__ __forceinline__ int min_start(const int *starts, int count) {
    int lo = 0x7fffffff;
    for (int i = 0; i < count; i++) lo = min(lo, starts[i]);
    return lo;
}

/* Store a 16 × HD fp32 accumulator (C fragments) scaled by `scale` as bf16
 * rows of `dst` (stride elements apart), rows < T and columns < hd. */
template <int HD>
__device__ __forceinline__ void store_rows(bf16 *dst, size_t stride, const float (*acc)[4],
                                           int row0, int T, int hd, float scale0, float scale1) {
    int lane = threadIdx.x % 32, group = lane / 4, quad = lane % 4;
    int r0 = row0 + group, r1 = r0 + 8;
    bf16 *row0_dst = dst + (size_t)r0 * stride, *row1_dst = dst + (size_t)r1 * stride;
#pragma unroll
    for (int dt = 0; dt < HD / 8; dt++) {
        int d = dt * 8 + quad * 2;
        if (r0 < T) {
            if (d < hd) row0_dst[d] = __float2bfloat16(acc[dt][0] * scale0);
            if (d + 1 < hd) row0_dst[d + 1] = __float2bfloat16(acc[dt][1] * scale0);
        }
        if (r1 < T) {
            if (d < hd) row1_dst[d] = __float2bfloat16(acc[dt][2] * scale1);
            if (d + 1 < hd) row1_dst[d + 1] = __float2bfloat16(acc[dt][3] * scale1);
        }
    }
}

/* ---- forward ---- */

/* start loading the key and value tiles at kv0 into `tiles` ([k | v][ATTN_KV][HD+8]) */
template <int HD>
__device__ __forceinline__ void load_kv(bf16 *tiles, const bf16 *qkv_b, size_t stride, int H,
                                        int KV, int g, int kv0, int T, int hd, int vec) {
    load_tile<ATTN_KV, HD>(tiles, qkv_b + (size_t)(H + g) * hd, stride, kv0, T, hd, vec);
    load_tile<ATTN_KV, HD>(tiles + ATTN_KV * (HD + 8), qkv_b + (size_t)(H + KV + g) * hd, stride,
                           kv0, T, hd, vec);
}

/* Double-buffered walk over the key tiles: tile it+1 is copied while tile it is
 * used. Before the first call the caller has issued the copies of tile 0 into
 * buffer 0 (and committed them); `use(k_tile, v_tile, kv0)` runs between barriers. */
template <int HD, typename USE>
__device__ __forceinline__ void for_each_kv_tile(bf16 *kv_tiles, const bf16 *qkv_b, size_t stride,
                                                 int H, int KV, int g, int kv_first, int tiles,
                                                 int T, int hd, int vec, USE use) {
    const int TILE = 2 * ATTN_KV * (HD + 8);
    for (int it = 0; it < tiles; it++) {
        bf16 *k_tile = kv_tiles + (it & 1) * TILE;
        if (it + 1 < tiles) {
            load_kv<HD>(kv_tiles + ((it + 1) & 1) * TILE, qkv_b, stride, H, KV, g,
                        kv_first + (it + 1) * ATTN_KV, T, hd, vec);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        use(k_tile, k_tile + ATTN_KV * (HD + 8), kv_first + it * ATTN_KV);
        __syncthreads(); /* the buffer is consumed before it is refilled */
    }
}

template <int HD>
__global__ void __launch_bounds__(FWD_WARPS * 32)
    attention_forward_kernel(bf16 *out, float *lse, const bf16 *qkv, const int32_t *doc_start,
                             int T, int H, int KV, int hd, float scale_log2, int vec) {
    const int LD = HD + 8;
    extern __shared__ __align__(16) unsigned char attention_shared[];
    bf16 *q_tile = reinterpret_cast<bf16 *>(attention_shared);
    bf16 *kv_tiles = q_tile + FWD_ROWS * LD; /* [2 buffers][k | v][ATTN_KV][LD] */
    __shared__ int row_start[FWD_ROWS];

    int q0 = (gridDim.x - 1 - blockIdx.x) * FWD_ROWS; /* longest tiles first */
    int h = blockIdx.y, b = blockIdx.z, g = h / (H / KV);
    size_t stride = (size_t)(H + 2 * KV) * hd;
    const bf16 *qkv_b = qkv + (size_t)b * T * stride;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, group = lane / 4, quad = lane % 4;

    load_tile<FWD_ROWS, HD>(q_tile, qkv_b + (size_t)h * hd, stride, q0, T, hd, vec);
    for (int i = threadIdx.x; i < FWD_ROWS; i += blockDim.x) {
        int t = q0 + i;
        row_start[i] = t < T ? (doc_start ? doc_start[(size_t)b * T + t] : 0) : 0x7fffffff;
    }
    __syncthreads();
    int block_lo = min_start(row_start, FWD_ROWS);
    int block_hi = min(q0 + FWD_ROWS, T) - 1;
    int warp_row0 = warp * 16;
    int warp_lo = min_start(row_start + warp_row0, 16);
    int warp_hi = min(q0 + warp_row0 + 15, T - 1);
    int t0 = q0 + warp_row0 + group, t1 = t0 + 8;
    int start0 = row_start[warp_row0 + group], start1 = row_start[warp_row0 + group + 8];
    int kv_first = block_lo / ATTN_KV * ATTN_KV;
    int tiles = max(1, (block_hi - kv_first) / ATTN_KV + 1);

    float o[HD / 8][4];
#pragma unroll
    for (int dt = 0; dt < HD / 8; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

    load_kv<HD>(kv_tiles, qkv_b, stride, H, KV, g, kv_first, T, hd, vec);
    cp_async_commit(); /* with the q tile */
    for_each_kv_tile<HD>(kv_tiles, qkv_b, stride, H, KV, g, kv_first, tiles, T, hd, vec,
                         [&](const bf16 *k_tile, const bf16 *v_tile, int kv0) {
        if (kv0 + ATTN_KV - 1 < warp_lo || kv0 > warp_hi) return; /* nothing visible */
        float s[ATTN_KV / 8][4];
#pragma unroll
        for (int nt = 0; nt < ATTN_KV / 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
        mma_abt<HD, ATTN_KV / 8>(s, q_tile, warp_row0, k_tile);

        float max0 = -INFINITY, max1 = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < ATTN_KV / 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int j = kv0 + nt * 8 + quad * 2 + (e & 1);
                int t = e < 2 ? t0 : t1, start = e < 2 ? start0 : start1;
                s[nt][e] = (j >= start && j <= t) ? s[nt][e] * scale_log2 : -INFINITY;
            }
            max0 = fmaxf(max0, fmaxf(s[nt][0], s[nt][1]));
            max1 = fmaxf(max1, fmaxf(s[nt][2], s[nt][3]));
        }
        float new0 = fmaxf(m0, quad_max(max0)), new1 = fmaxf(m1, quad_max(max1));
        float corr0 = new0 == -INFINITY ? 1.0f : fast_exp2(m0 - new0);
        float corr1 = new1 == -INFINITY ? 1.0f : fast_exp2(m1 - new1);
        float base0 = new0 == -INFINITY ? 0.0f : new0, base1 = new1 == -INFINITY ? 0.0f : new1;
        m0 = new0;
        m1 = new1;
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (int nt = 0; nt < ATTN_KV / 8; nt++) {
            s[nt][0] = fast_exp2(s[nt][0] - base0);
            s[nt][1] = fast_exp2(s[nt][1] - base0);
            s[nt][2] = fast_exp2(s[nt][2] - base1);
            s[nt][3] = fast_exp2(s[nt][3] - base1);
            sum0 += s[nt][0] + s[nt][1];
            sum1 += s[nt][2] + s[nt][3];
        }
        l0 = l0 * corr0 + sum0;
        l1 = l1 * corr1 + sum1;
#pragma unroll
        for (int dt = 0; dt < HD / 8; dt++) {
            o[dt][0] *= corr0;
            o[dt][1] *= corr0;
            o[dt][2] *= corr1;
            o[dt][3] *= corr1;
        }
        mma_pv<HD, ATTN_KV / 16>(o, s, v_tile);
    });

    l0 = quad_sum(l0);
    l1 = quad_sum(l1);
    float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    size_t out_stride = (size_t)H * hd;
    store_rows<HD>(out + (size_t)b * T * out_stride + (size_t)h * hd, out_stride, o,
                   q0 + warp_row0, T, hd, inv0, inv1);
    if (quad == 0) {
        float *lse_bh = lse + ((size_t)b * H + h) * T;
        if (t0 < T) lse_bh[t0] = l0 > 0.0f ? (m0 + log2f(l0)) * LN2 : -INFINITY;
        if (t1 < T) lse_bh[t1] = l1 > 0.0f ? (m1 + log2f(l1)) * LN2 : -INFINITY;
    }
}

/* ---- backward ---- */

/* delta[b][h][t] = Σ_d dout · out, one warp per (row, head) */
__global__ void attention_delta_kernel(float *delta, const bf16 *dout, const bf16 *out, int B,
                                       int T, int H, int hd) {
    size_t task = (size_t)blockIdx.x * (BWD_THREADS / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (task >= (size_t)B * T * H) return;
    size_t n = task / H;
    int h = (int)(task % H);
    const bf16 *g = dout + task * hd, *o = out + task * hd;
    float sum = 0.0f;
    for (int d = lane; d < hd; d += 32) sum += __bfloat162float(g[d]) * __bfloat162float(o[d]);
    sum = warp_sum(sum);
    size_t b = n / T, t = n % T;
    if (lane == 0) delta[(b * H + h) * T + t] = sum;
}

/* Per query row of a tile: doc start (INT_MAX past T), lse in log2 units
 * (+inf for rows that saw no key, so their P is 0) and delta. */
__device__ __forceinline__ void load_row_stats(int *row_start, float *row_lse2, float *row_delta,
                                               int rows, const int32_t *doc_start,
                                               const float *lse_bh, const float *delta_bh, int b,
                                               int q0, int T) {
    for (int i = threadIdx.x; i < rows; i += blockDim.x) {
        int t = q0 + i;
        if (t < T) {
            float l = lse_bh[t];
            row_start[i] = doc_start ? doc_start[(size_t)b * T + t] : 0;
            row_lse2[i] = l == -INFINITY ? INFINITY : l * LOG2E;
            row_delta[i] = delta_bh[t];
        } else {
            row_start[i] = 0x7fffffff;
            row_lse2[i] = INFINITY;
            row_delta[i] = 0.0f;
        }
    }
}

/* dQ for one tile of 64 query rows of head h */
template <int HD>
__global__ void __launch_bounds__(BWD_THREADS)
    attention_dq_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                        const float *delta, const int32_t *doc_start, int T, int H, int KV, int hd,
                        float scale_log2, float scale, int vec) {
    const int LD = HD + 8;
    extern __shared__ __align__(16) unsigned char attention_shared[];
    bf16 *q_tile = reinterpret_cast<bf16 *>(attention_shared);
    bf16 *do_tile = q_tile + BWD_ROWS * LD;
    bf16 *kv_tiles = do_tile + BWD_ROWS * LD; /* [2 buffers][k | v][ATTN_KV][LD] */
    __shared__ int row_start[BWD_ROWS];
    __shared__ float row_lse2[BWD_ROWS], row_delta[BWD_ROWS];

    int q0 = (gridDim.x - 1 - blockIdx.x) * BWD_ROWS;
    int h = blockIdx.y, b = blockIdx.z, g = h / (H / KV);
    size_t stride = (size_t)(H + 2 * KV) * hd, out_stride = (size_t)H * hd;
    const bf16 *qkv_b = qkv + (size_t)b * T * stride;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, group = lane / 4, quad = lane % 4;

    load_tile<BWD_ROWS, HD>(q_tile, qkv_b + (size_t)h * hd, stride, q0, T, hd, vec);
    load_tile<BWD_ROWS, HD>(do_tile, dout + (size_t)b * T * out_stride + (size_t)h * hd,
                            out_stride, q0, T, hd, vec);
    load_row_stats(row_start, row_lse2, row_delta, BWD_ROWS, doc_start,
                   lse + ((size_t)b * H + h) * T, delta + ((size_t)b * H + h) * T, b, q0, T);
    __syncthreads();
    int block_lo = min_start(row_start, BWD_ROWS);
    int block_hi = min(q0 + BWD_ROWS, T) - 1;
    int warp_row0 = warp * 16;
    int warp_lo = min_start(row_start + warp_row0, 16);
    int warp_hi = min(q0 + warp_row0 + 15, T - 1);
    int r0 = warp_row0 + group, r1 = r0 + 8, t0 = q0 + r0, t1 = q0 + r1;
    int kv_first = block_lo / ATTN_KV * ATTN_KV;
    int tiles = max(1, (block_hi - kv_first) / ATTN_KV + 1);

    float dq[HD / 8][4];
#pragma unroll
    for (int dt = 0; dt < HD / 8; dt++) dq[dt][0] = dq[dt][1] = dq[dt][2] = dq[dt][3] = 0.0f;

    load_kv<HD>(kv_tiles, qkv_b, stride, H, KV, g, kv_first, T, hd, vec);
    cp_async_commit(); /* with the q and dout tiles */
    for_each_kv_tile<HD>(kv_tiles, qkv_b, stride, H, KV, g, kv_first, tiles, T, hd, vec,
                         [&](const bf16 *k_tile, const bf16 *v_tile, int kv0) {
        if (kv0 + ATTN_KV - 1 < warp_lo || kv0 > warp_hi) return;
        float s[ATTN_KV / 8][4], dp[ATTN_KV / 8][4];
#pragma unroll
        for (int nt = 0; nt < ATTN_KV / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[nt][e] = dp[nt][e] = 0.0f;
        mma_abt<HD, ATTN_KV / 8>(s, q_tile, warp_row0, k_tile);
        mma_abt<HD, ATTN_KV / 8>(dp, do_tile, warp_row0, v_tile);
#pragma unroll
        for (int nt = 0; nt < ATTN_KV / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int j = kv0 + nt * 8 + quad * 2 + (e & 1);
                int r = e < 2 ? r0 : r1, t = e < 2 ? t0 : t1;
                float p = (j >= row_start[r] && j <= t)
                              ? fast_exp2(s[nt][e] * scale_log2 - row_lse2[r])
                              : 0.0f;
                s[nt][e] = p * (dp[nt][e] - row_delta[r]); /* dS */
            }
        mma_pv<HD, ATTN_KV / 16>(dq, s, k_tile);
    });
    store_rows<HD>(dqkv + (size_t)b * T * stride + (size_t)h * hd, stride, dq, q0 + warp_row0, T,
                   hd, scale, scale);
}

/* The first query tile from `qs` on (BQ rows) with a row whose document starts
 * at or before key `last_key`: every warp scans doc_start itself, so the answer
 * is the same in the whole block. T or more when there is none. */
template <int BQ>
__device__ __forceinline__ int next_query_tile(int qs, int T, const int32_t *doc_start_b,
                                               int last_key) {
    if (!doc_start_b) return qs; /* causal only: every tile from the first one on */
    int lane = threadIdx.x % 32;
    for (; qs < T; qs += BQ) {
        int lo = 0x7fffffff;
        for (int i = lane; i < BQ; i += 32)
            if (qs + i < T) lo = min(lo, doc_start_b[qs + i]);
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1)
            lo = min(lo, __shfl_xor_sync(0xffffffffu, lo, offset));
        if (lo <= last_key) return qs;
    }
    return qs;
}

/* dK and dV for one tile of 64 key rows of kv head g, summed over the group's
 * query heads and every query tile (BQ rows) that can see the tile; the query
 * and dout tiles (and their row statistics) are double-buffered. */
template <int HD, int BQ>
__global__ void __launch_bounds__(BWD_THREADS)
    attention_dkdv_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                          const float *delta, const int32_t *doc_start, int T, int H, int KV,
                          int hd, float scale_log2, float scale, int vec) {
    const int LD = HD + 8;
    extern __shared__ __align__(16) unsigned char attention_shared[];
    bf16 *k_tile = reinterpret_cast<bf16 *>(attention_shared);
    bf16 *v_tile = k_tile + ATTN_KV * LD;
    bf16 *q_tiles = v_tile + ATTN_KV * LD; /* [2 buffers][q | dout][BQ][LD] */
    __shared__ int row_start[2][BQ];
    __shared__ float row_lse2[2][BQ], row_delta[2][BQ];

    int kv0 = blockIdx.x * ATTN_KV; /* the earliest keys see the most queries: first */
    int g = blockIdx.y, b = blockIdx.z, group_size = H / KV;
    size_t stride = (size_t)(H + 2 * KV) * hd, out_stride = (size_t)H * hd;
    const bf16 *qkv_b = qkv + (size_t)b * T * stride;
    const bf16 *dout_b = dout + (size_t)b * T * out_stride;
    const int32_t *doc_start_b = doc_start ? doc_start + (size_t)b * T : NULL;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, group = lane / 4, quad = lane % 4;

    load_kv<HD>(k_tile, qkv_b, stride, H, KV, g, kv0, T, hd, vec);
    cp_async_commit(); /* the oldest group: complete at the first wait below */
    int block_hi = min(kv0 + ATTN_KV, T) - 1;
    int warp_row0 = warp * 16;
    int warp_first = kv0 + warp_row0, warp_last = min(warp_first + 15, T - 1);
    int i0 = kv0 + warp_row0 + group, i1 = i0 + 8;

    float dk[HD / 8][4], dv[HD / 8][4];
#pragma unroll
    for (int dt = 0; dt < HD / 8; dt++)
#pragma unroll
        for (int e = 0; e < 4; e++) dk[dt][e] = dv[dt][e] = 0.0f;

    /* start loading query tile qs of query head g·group_size + hh into buffer buf */
    auto load_query_tile = [&](int buf, int hh, int qs) {
        int h = g * group_size + hh;
        bf16 *q_tile = q_tiles + buf * 2 * BQ * LD;
        load_row_stats(row_start[buf], row_lse2[buf], row_delta[buf], BQ, doc_start,
                       lse + ((size_t)b * H + h) * T, delta + ((size_t)b * H + h) * T, b, qs, T);
        load_tile<BQ, HD>(q_tile, qkv_b + (size_t)h * hd, stride, qs, T, hd, vec);
        load_tile<BQ, HD>(q_tile + BQ * LD, dout_b + (size_t)h * hd, out_stride, qs, T, hd, vec);
        cp_async_commit();
    };

    int first = next_query_tile<BQ>(kv0 / BQ * BQ, T, doc_start_b, block_hi);
    if (first < T) {
        int hh = 0, qs = first, buf = 0;
        load_query_tile(buf, hh, qs);
        for (;;) {
            int next_hh = hh, next_qs = next_query_tile<BQ>(qs + BQ, T, doc_start_b, block_hi);
            if (next_qs >= T) {
                next_hh = hh + 1;
                next_qs = first;
            }
            int has_next = next_hh < group_size;
            if (has_next) {
                load_query_tile(buf ^ 1, next_hh, next_qs);
                cp_async_wait<1>();
            } else {
                cp_async_wait<0>();
            }
            __syncthreads();
            const bf16 *q_tile = q_tiles + buf * 2 * BQ * LD, *do_tile = q_tile + BQ * LD;
            const int *starts = row_start[buf];
            const float *lse2 = row_lse2[buf], *deltas = row_delta[buf];
            int tile_lo = min_start(starts, BQ);
            if (warp_first <= warp_last && warp_first <= qs + BQ - 1 && warp_last >= tile_lo) {
                float st[BQ / 8][4], dpt[BQ / 8][4];
#pragma unroll
                for (int nt = 0; nt < BQ / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) st[nt][e] = dpt[nt][e] = 0.0f;
                mma_abt<HD, BQ / 8>(st, k_tile, warp_row0, q_tile);   /* Sᵀ = K Qᵀ */
                mma_abt<HD, BQ / 8>(dpt, v_tile, warp_row0, do_tile); /* dPᵀ = V dOᵀ */
#pragma unroll
                for (int nt = 0; nt < BQ / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int c = nt * 8 + quad * 2 + (e & 1), t = qs + c;
                        int i = e < 2 ? i0 : i1;
                        float p = (i >= starts[c] && i <= t)
                                      ? fast_exp2(st[nt][e] * scale_log2 - lse2[c])
                                      : 0.0f;
                        st[nt][e] = p;
                        dpt[nt][e] = p * (dpt[nt][e] - deltas[c]); /* dSᵀ */
                    }
                mma_pv<HD, BQ / 16>(dv, st, do_tile); /* dV += Pᵀ dO */
                mma_pv<HD, BQ / 16>(dk, dpt, q_tile); /* dK += dSᵀ Q */
            }
            __syncthreads(); /* the buffer is consumed before it is refilled */
            if (!has_next) break;
            hh = next_hh;
            qs = next_qs;
            buf ^= 1;
        }
    }
    cp_async_wait<0>();
    store_rows<HD>(dqkv + (size_t)b * T * stride + (size_t)(H + g) * hd, stride, dk, warp_first, T,
                   hd, scale, scale);
    store_rows<HD>(dqkv + (size_t)b * T * stride + (size_t)(H + KV + g) * hd, stride, dv,
                   warp_first, T, hd, 1.0f, 1.0f);
}

/* ---- launch ---- */

enum { BQ_64 = 64, BQ_128 = 32 };

static size_t forward_shared(int HD) {
    return (size_t)(FWD_ROWS + 4 * ATTN_KV) * (HD + 8) * sizeof(bf16);
}
static size_t dq_shared(int HD) {
    return (size_t)(2 * BWD_ROWS + 4 * ATTN_KV) * (HD + 8) * sizeof(bf16);
}
static size_t dkdv_shared(int HD, int BQ) {
    return (size_t)(2 * ATTN_KV + 4 * BQ) * (HD + 8) * sizeof(bf16);
}

cudaError_t cuda_attention_init(int max_shared) {
    struct {
        const void *kernel;
        size_t bytes;
    } kernels[] = {
        {(const void *)attention_forward_kernel<64>, forward_shared(64)},
        {(const void *)attention_forward_kernel<128>, forward_shared(128)},
        {(const void *)attention_dq_kernel<64>, dq_shared(64)},
        {(const void *)attention_dq_kernel<128>, dq_shared(128)},
        {(const void *)attention_dkdv_kernel<64, BQ_64>, dkdv_shared(64, BQ_64)},
        {(const void *)attention_dkdv_kernel<128, BQ_128>, dkdv_shared(128, BQ_128)},
    };
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++) {
        if (kernels[i].bytes > (size_t)max_shared) return cudaErrorInvalidValue;
        cudaError_t err = cudaFuncSetAttribute(
            kernels[i].kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)kernels[i].bytes);
        if (err != cudaSuccess) return err;
    }
    return cudaSuccess;
}

static void check_head_dim(int hd) {
    if (hd < 1 || hd > ATTN_MAX_HD) {
        fprintf(stderr, "cuda attention: head dim %d is outside 1..%d\n", hd, ATTN_MAX_HD);
        abort();
    }
}

/* 16-byte tile loads need hd % 8 == 0 and 16-byte aligned tensors */
static int attention_vec(int hd, const void *a, const void *b) {
    return hd % 8 == 0 && cuda_aligned(a, 16) && (!b || cuda_aligned(b, 16));
}

void cuda_attention_forward(void *out, void *lse, const void *qkv,
                            const attention_documents *documents, int B, int T, int H, int KV,
                            int hd) {
    check_head_dim(hd);
    if (B == 0 || T == 0) return;
    if (cuda_attention_try_cudnn_forward(out, lse, qkv, documents, B, T, H, KV, hd)) return;
    const int32_t *doc_start = documents ? documents->doc_start : NULL;
    float scale_log2 = LOG2E / sqrtf((float)hd);
    int vec = attention_vec(hd, qkv, NULL);
    dim3 grid((T + FWD_ROWS - 1) / FWD_ROWS, H, B);
    if (hd <= 64)
        attention_forward_kernel<64><<<grid, FWD_WARPS * 32, forward_shared(64)>>>(
            (bf16 *)out, (float *)lse, (const bf16 *)qkv, doc_start, T, H, KV, hd, scale_log2,
            vec);
    else
        attention_forward_kernel<128><<<grid, FWD_WARPS * 32, forward_shared(128)>>>(
            (bf16 *)out, (float *)lse, (const bf16 *)qkv, doc_start, T, H, KV, hd, scale_log2,
            vec);
    CUDA_CHECK_LAUNCH();
}

void cuda_attention_backward(void *dqkv, const void *dout, const void *qkv, const void *out,
                             const void *lse, const attention_documents *documents, int B, int T,
                             int H, int KV, int hd) {
    check_head_dim(hd);
    if (B == 0 || T == 0) return;
    if (cuda_attention_try_cudnn_backward(dqkv, dout, qkv, out, lse, documents, B, T, H, KV, hd))
        return;
    const int32_t *doc_start = documents ? documents->doc_start : NULL;
    float scale = 1.0f / sqrtf((float)hd), scale_log2 = LOG2E * scale;
    int vec = attention_vec(hd, qkv, dout);
    size_t rows = (size_t)B * T * H;
    float *delta = (float *)cuda_scratch(rows * sizeof(float));
    attention_delta_kernel<<<cuda_blocks(rows, BWD_THREADS / 32), BWD_THREADS>>>(
        delta, (const bf16 *)dout, (const bf16 *)out, B, T, H, hd);
    CUDA_CHECK_LAUNCH();
    dim3 q_grid((T + BWD_ROWS - 1) / BWD_ROWS, H, B);
    dim3 kv_grid((T + ATTN_KV - 1) / ATTN_KV, KV, B);
    if (hd <= 64) {
        attention_dkdv_kernel<64, BQ_64><<<kv_grid, BWD_THREADS, dkdv_shared(64, BQ_64)>>>(
            (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv, (const float *)lse, delta,
            doc_start, T, H, KV, hd, scale_log2, scale, vec);
        CUDA_CHECK_LAUNCH();
        attention_dq_kernel<64><<<q_grid, BWD_THREADS, dq_shared(64)>>>(
            (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv, (const float *)lse, delta,
            doc_start, T, H, KV, hd, scale_log2, scale, vec);
    } else {
        attention_dkdv_kernel<128, BQ_128><<<kv_grid, BWD_THREADS, dkdv_shared(128, BQ_128)>>>(
            (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv, (const float *)lse, delta,
            doc_start, T, H, KV, hd, scale_log2, scale, vec);
        CUDA_CHECK_LAUNCH();
        attention_dq_kernel<128><<<q_grid, BWD_THREADS, dq_shared(128)>>>(
            (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv, (const float *)lse, delta,
            doc_start, T, H, KV, hd, scale_log2, scale, vec);
    }
    CUDA_CHECK_LAUNCH();
}
