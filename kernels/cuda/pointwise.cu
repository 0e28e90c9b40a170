/* Element-wise ops on bf16: rotary embedding, SwiGLU, GELU (tanh), xIELU, add,
 * accumulate, and the fp32 → bf16 weight copy. Arithmetic is in fp32; 16-byte
 * accesses when the sizes and pointers allow. */
#include "kernels/cuda/cuda_common.cuh"

enum { POINTWISE_THREADS = 256 };

/* ---- generic element-wise map over n elements: out[i] = op(a[i], b[i]) ---- */

template <int VEC, typename OP>
__global__ void map2_kernel(bf16 *out, const bf16 *a, const bf16 *b, size_t n, OP op) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= n) return;
    float av[VEC], bv[VEC];
    vec_io<VEC>::load(av, a + i);
    vec_io<VEC>::load(bv, b + i);
#pragma unroll
    for (int j = 0; j < VEC; j++) av[j] = op(av[j], bv[j]);
    vec_io<VEC>::store(out + i, av);
}

template <typename OP> static void map2(void *out, const void *a, const void *b, size_t n, OP op) {
    if (n == 0) return;
    if (n % 8 == 0 && cuda_aligned(out, 16) && cuda_aligned(a, 16) && cuda_aligned(b, 16))
        map2_kernel<8><<<cuda_blocks(n / 8, POINTWISE_THREADS), POINTWISE_THREADS>>>(
            (bf16 *)out, (const bf16 *)a, (const bf16 *)b, n, op);
    else
        map2_kernel<1><<<cuda_blocks(n, POINTWISE_THREADS), POINTWISE_THREADS>>>(
            (bf16 *)out, (const bf16 *)a, (const bf16 *)b, n, op);
    CUDA_CHECK_LAUNCH();
}

struct add_op {
    __device__ float operator()(float a, float b) const { return a + b; }
};

void cuda_add(void *out, const void *a, const void *b, size_t n) {
    map2(out, a, b, n, add_op());
}

void cuda_accumulate(void *dst, const void *src, size_t n) {
    map2(dst, dst, src, n, add_op());
}

static const float GELU_SCALE = 0.7978845608028654f; /* sqrt(2 / pi) */

struct gelu_forward_op {
    /* the second operand is unused (the input is passed twice) */
    __device__ float operator()(float x, float) const {
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.0f + tanhf(u));
    }
};

struct gelu_backward_op {
    __device__ float operator()(float x, float dout) const {
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        float t = tanhf(u);
        float du = GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        return dout * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
    }
};

void cuda_gelu_forward(void *out, const void *inp, size_t n) {
    map2(out, inp, inp, n, gelu_forward_op());
}

void cuda_gelu_backward(void *dinp, const void *dout, const void *inp, size_t n) {
    map2(dinp, inp, dout, n, gelu_backward_op());
}

/* ---- xIELU ---- */

static const float XIELU_BETA = 0.5f, XIELU_EPS = -1e-6f;

__device__ __forceinline__ float softplus(float x) {
    return x > 20.0f ? x : log1pf(expf(x));
}

struct xielu_forward_op {
    const bf16 *alpha;
    __device__ float operator()(float x, float) const {
        float alpha_p = softplus(__bfloat162float(alpha[0]));
        float alpha_n = XIELU_BETA + softplus(__bfloat162float(alpha[1]));
        if (x > 0.0f) return alpha_p * x * x + XIELU_BETA * x;
        return alpha_n * expm1f(fminf(x, XIELU_EPS)) - alpha_n * x + XIELU_BETA * x;
    }
};

void cuda_xielu_forward(void *out, const void *inp, const void *alpha, size_t n) {
    xielu_forward_op op = {(const bf16 *)alpha};
    map2(out, inp, inp, n, op);
}

enum { XIELU_MAX_BLOCKS = 1024 };

/* dinp, and per block the partial sums of dalpha_p_raw and dalpha_n_raw */
__global__ void xielu_backward_kernel(bf16 *dinp, float *partials, const bf16 *dout,
                                      const bf16 *inp, const bf16 *alpha, size_t n) {
    __shared__ float reduce_buffer[32];
    float raw_p = __bfloat162float(alpha[0]), raw_n = __bfloat162float(alpha[1]);
    float alpha_p = softplus(raw_p), alpha_n = XIELU_BETA + softplus(raw_n);
    float sum_p = 0.0f, sum_n = 0.0f;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float x = __bfloat162float(inp[i]), g = __bfloat162float(dout[i]);
        float dx;
        if (x > 0.0f) {
            dx = 2.0f * alpha_p * x + XIELU_BETA;
            sum_p += g * x * x;
        } else {
            float clamped = fminf(x, XIELU_EPS);
            dx = (x < XIELU_EPS ? alpha_n * expf(x) : 0.0f) - alpha_n + XIELU_BETA;
            sum_n += g * (expm1f(clamped) - x);
        }
        dinp[i] = __float2bfloat16(g * dx);
    }
    /* d softplus(raw) / d raw = sigmoid(raw) */
    sum_p = block_sum(sum_p, reduce_buffer) / (1.0f + expf(-raw_p));
    sum_n = block_sum(sum_n, reduce_buffer) / (1.0f + expf(-raw_n));
    if (threadIdx.x == 0) {
        partials[2 * blockIdx.x] = sum_p;
        partials[2 * blockIdx.x + 1] = sum_n;
    }
}

void cuda_xielu_backward(void *dinp, void *dalpha, const void *dout, const void *inp,
                         const void *alpha, size_t n) {
    unsigned int blocks = cuda_blocks(n, POINTWISE_THREADS);
    if (blocks > XIELU_MAX_BLOCKS) blocks = XIELU_MAX_BLOCKS;
    float *partials = (float *)cuda_scratch((size_t)blocks * 2 * sizeof(float));
    xielu_backward_kernel<<<blocks, POINTWISE_THREADS>>>((bf16 *)dinp, partials,
                                                          (const bf16 *)dout, (const bf16 *)inp,
                                                          (const bf16 *)alpha, n);
    CUDA_CHECK_LAUNCH();
    cuda_add_partials((float *)dalpha, partials, (int)blocks, 2);
}

/* ---- SwiGLU: inp [N][2F] = [gate | up] ---- */

__device__ __forceinline__ float sigmoid(float x) {
    return 1.0f / (1.0f + expf(-x));
}

template <int VEC>
__global__ void swiglu_forward_kernel(bf16 *out, const bf16 *inp, int N, int F) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= (size_t)N * F) return;
    size_t n = i / F, f = i % F;
    float gate[VEC], up[VEC];
    vec_io<VEC>::load(gate, inp + n * 2 * F + f);
    vec_io<VEC>::load(up, inp + n * 2 * F + F + f);
#pragma unroll
    for (int j = 0; j < VEC; j++) gate[j] = gate[j] * sigmoid(gate[j]) * up[j];
    vec_io<VEC>::store(out + i, gate);
}

template <int VEC>
__global__ void swiglu_backward_kernel(bf16 *dinp, const bf16 *dout, const bf16 *inp, int N,
                                       int F) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= (size_t)N * F) return;
    size_t n = i / F, f = i % F;
    float gate[VEC], up[VEC], g[VEC], dgate[VEC], dup[VEC];
    vec_io<VEC>::load(gate, inp + n * 2 * F + f);
    vec_io<VEC>::load(up, inp + n * 2 * F + F + f);
    vec_io<VEC>::load(g, dout + i);
#pragma unroll
    for (int j = 0; j < VEC; j++) {
        float s = sigmoid(gate[j]);
        dgate[j] = g[j] * up[j] * s * (1.0f + gate[j] * (1.0f - s));
        dup[j] = g[j] * gate[j] * s;
    }
    vec_io<VEC>::store(dinp + n * 2 * F + f, dgate);
    vec_io<VEC>::store(dinp + n * 2 * F + F + f, dup);
}

void cuda_swiglu_forward(void *out, const void *inp, int N, int F) {
    size_t n = (size_t)N * F;
    if (n == 0) return;
    if (F % 8 == 0 && cuda_aligned(out, 16) && cuda_aligned(inp, 16))
        swiglu_forward_kernel<8><<<cuda_blocks(n / 8, POINTWISE_THREADS), POINTWISE_THREADS>>>(
            (bf16 *)out, (const bf16 *)inp, N, F);
    else
        swiglu_forward_kernel<1><<<cuda_blocks(n, POINTWISE_THREADS), POINTWISE_THREADS>>>(
            (bf16 *)out, (const bf16 *)inp, N, F);
    CUDA_CHECK_LAUNCH();
}

void cuda_swiglu_backward(void *dinp, const void *dout, const void *inp, int N, int F) {
    size_t n = (size_t)N * F;
    if (n == 0) return;
    if (F % 8 == 0 && cuda_aligned(dinp, 16) && cuda_aligned(dout, 16) && cuda_aligned(inp, 16))
        swiglu_backward_kernel<8><<<cuda_blocks(n / 8, POINTWISE_THREADS), POINTWISE_THREADS>>>(
            (bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp, N, F);
    else
        swiglu_backward_kernel<1><<<cuda_blocks(n, POINTWISE_THREADS), POINTWISE_THREADS>>>(
            (bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp, N, F);
    CUDA_CHECK_LAUNCH();
}

/* ---- rotary embedding on the q and k heads, interleaved pairs ---- */

template <int INVERSE>
__global__ void rope_kernel(bf16 *qkv, const int32_t *positions, int N, int H, int KV, int hd,
                            float theta) {
    size_t pair = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    int half = hd / 2, rotated = H + KV;
    if (pair >= (size_t)N * rotated * half) return;
    int i = (int)(pair % half);
    size_t head_row = pair / half;
    int head = (int)(head_row % rotated);
    size_t n = head_row / rotated;
    bf16 *x = qkv + (n * (H + 2 * KV) + head) * hd + 2 * i;
    /* as the CPU backend: 1 / theta^(2i/hd) rounded to fp32 (pow in double so the
     * result is correctly rounded: at position 8192 one ulp of freq moves the angle
     * by about 1e-3) */
    float freq = 1.0f / (float)pow((double)theta, (double)((float)(2 * i) / (float)hd));
    float s, c;
    sincosf((float)positions[n] * freq, &s, &c);
    if (INVERSE) s = -s;
    float x0 = __bfloat162float(x[0]), x1 = __bfloat162float(x[1]);
    x[0] = __float2bfloat16(x0 * c - x1 * s);
    x[1] = __float2bfloat16(x0 * s + x1 * c);
}

void cuda_rope_forward(void *qkv, const int32_t *positions, int N, int H, int KV, int hd,
                       float theta) {
    size_t pairs = (size_t)N * (H + KV) * (hd / 2);
    if (pairs == 0) return;
    rope_kernel<0><<<cuda_blocks(pairs, POINTWISE_THREADS), POINTWISE_THREADS>>>(
        (bf16 *)qkv, positions, N, H, KV, hd, theta);
    CUDA_CHECK_LAUNCH();
}

void cuda_rope_backward(void *dqkv, const int32_t *positions, int N, int H, int KV, int hd,
                        float theta) {
    size_t pairs = (size_t)N * (H + KV) * (hd / 2);
    if (pairs == 0) return;
    rope_kernel<1><<<cuda_blocks(pairs, POINTWISE_THREADS), POINTWISE_THREADS>>>(
        (bf16 *)dqkv, positions, N, H, KV, hd, theta);
    CUDA_CHECK_LAUNCH();
}

/* ---- fp32 master weights → bf16 compute copy ---- */

__global__ void master_to_act_kernel(bf16 *act, const float *master, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) act[i] = __float2bfloat16(master[i]);
}

void cuda_master_to_act(void *act, const void *master, size_t n) {
    if (n == 0) return;
    master_to_act_kernel<<<cuda_blocks(n, POINTWISE_THREADS), POINTWISE_THREADS>>>(
        (bf16 *)act, (const float *)master, n);
    CUDA_CHECK_LAUNCH();
}
