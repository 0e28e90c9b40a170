/* Activation functions: SwiGLU, GELU (tanh approximation) and xIELU
 * (Apertus), elementwise in the working precision with the `real` math
 * functions. The xIELU alpha gradients are fixed-chunk sums (chunked_sums). */
#include "kernels/cpu/cpu_real.h"

static real sigmoid(real x) {
    return 1 / (1 + rexp(-x));
}

void CPU_FN(swiglu_forward)(void *out_, const void *inp_, int N, int F) {
    real *out = out_;
    const real *inp = inp_;
#pragma omp parallel for schedule(static) if ((size_t)N * F >= PARALLEL_MIN_ELEMENTS)
    for (int n = 0; n < N; n++) {
        const real *gate = inp + (size_t)n * 2 * F, *up = gate + F;
        real *o = out + (size_t)n * F;
        for (int f = 0; f < F; f++) {
            o[f] = gate[f] * sigmoid(gate[f]) * up[f];
        }
    }
}

void CPU_FN(swiglu_backward)(void *dinp_, const void *dout_, const void *inp_, int N, int F) {
    real *dinp = dinp_;
    const real *dout = dout_, *inp = inp_;
#pragma omp parallel for schedule(static) if ((size_t)N * F >= PARALLEL_MIN_ELEMENTS)
    for (int n = 0; n < N; n++) {
        const real *gate = inp + (size_t)n * 2 * F, *up = gate + F, *d = dout + (size_t)n * F;
        real *dgate = dinp + (size_t)n * 2 * F, *dup = dgate + F;
        for (int f = 0; f < F; f++) {
            real g = gate[f], s = sigmoid(g);
            dgate[f] = d[f] * up[f] * (s * (1 + g * (1 - s)));
            dup[f] = d[f] * (g * s);
        }
    }
}

#define GELU_SCALE ((real)0.7978845608028654) /* sqrt(2 / pi) */
#define GELU_CUBIC ((real)0.044715)

void CPU_FN(gelu_forward)(void *out_, const void *inp_, size_t n) {
    real *out = out_;
    const real *inp = inp_;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (size_t i = 0; i < n; i++) {
        real x = inp[i];
        out[i] = (real)0.5 * x * (1 + rtanh(GELU_SCALE * (x + GELU_CUBIC * x * x * x)));
    }
}

void CPU_FN(gelu_backward)(void *dinp_, const void *dout_, const void *inp_, size_t n) {
    real *dinp = dinp_;
    const real *dout = dout_, *inp = inp_;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (size_t i = 0; i < n; i++) {
        real x = inp[i];
        real t = rtanh(GELU_SCALE * (x + GELU_CUBIC * x * x * x));
        real dinner = GELU_SCALE * (1 + 3 * GELU_CUBIC * x * x);
        dinp[i] = dout[i] * ((real)0.5 * (1 + t) + (real)0.5 * x * (1 - t * t) * dinner);
    }
}

/* xIELU constants (Apertus / Hugging Face XIELUActivation) */
#define XIELU_BETA ((real)0.5)
#define XIELU_EPS ((real)-1e-6)

/* PyTorch's softplus (threshold 20) */
static real softplus(real x) {
    return x > 20 ? x : rlog1p(rexp(x));
}

void CPU_FN(xielu_forward)(void *out_, const void *inp_, const void *alpha_, size_t n) {
    real *out = out_;
    const real *inp = inp_, *alpha = alpha_;
    real alpha_p = softplus(alpha[0]), alpha_n = XIELU_BETA + softplus(alpha[1]);
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
    for (size_t i = 0; i < n; i++) {
        real x = inp[i];
        out[i] = x > 0 ? alpha_p * x * x + XIELU_BETA * x
                       : (rexpm1(x < XIELU_EPS ? x : XIELU_EPS) - x) * alpha_n + XIELU_BETA * x;
    }
}

typedef struct xielu_backward_context {
    real *dinp;
    const real *dout, *inp;
    real alpha_p, alpha_n;
} xielu_backward_context;

/* dinp over [begin, end); sums[0] = Σ dout·∂out/∂alpha_p, sums[1] = Σ dout·∂out/∂alpha_n */
static void xielu_backward_chunk(const void *context_, size_t begin, size_t end, double *sums) {
    const xielu_backward_context *c = context_;
    double sum_p = 0, sum_n = 0;
    for (size_t i = begin; i < end; i++) {
        real x = c->inp[i], d = c->dout[i];
        if (x > 0) {
            c->dinp[i] = d * (2 * c->alpha_p * x + XIELU_BETA);
            sum_p += (double)d * x * x;
        } else {
            real clamped = x < XIELU_EPS ? x : XIELU_EPS;
            real dexpm1 = x < XIELU_EPS ? rexp(x) : 0;
            c->dinp[i] = d * (c->alpha_n * (dexpm1 - 1) + XIELU_BETA);
            sum_n += (double)d * (rexpm1(clamped) - x);
        }
    }
    sums[0] = sum_p;
    sums[1] = sum_n;
}

void CPU_FN(xielu_backward)(void *dinp, void *dalpha_, const void *dout, const void *inp,
                            const void *alpha_, size_t n) {
    real *dalpha = dalpha_;
    const real *alpha = alpha_;
    xielu_backward_context context = {dinp, dout, inp, softplus(alpha[0]),
                                      XIELU_BETA + softplus(alpha[1])};
    double sums[2];
    CPU_FN(chunked_sums)(n, 2, xielu_backward_chunk, &context, sums);
    /* d softplus(r) / dr = sigmoid(r) */
    dalpha[0] += (real)(sums[0] * sigmoid(alpha[0]));
    dalpha[1] += (real)(sums[1] * sigmoid(alpha[1]));
}
