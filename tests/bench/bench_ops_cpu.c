/* Times the heavy ops of the fp32 CPU backend on llama-like shapes of N = 1024
 * tokens: the linear layers (forward and backward) and attention (forward and
 * backward), plus the per-token ops of a block. Prints one line per op with the
 * best of several runs and the GFLOP/s where the FLOPs are well defined.
 * Usage: bench_ops_cpu [repeats]   (OMP_NUM_THREADS picks the thread count) */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/ops.h"

typedef struct buffers {
    const ops *o;
    void *p[16];
    int n;
} buffers;

static void *random_act(buffers *b, size_t n, float scale) {
    float *host = malloc(n * sizeof(float));
    unsigned state = 12345u + (unsigned)b->n;
    for (size_t i = 0; i < n; i++) {
        state = state * 1664525u + 1013904223u;
        host[i] = scale * ((float)(state >> 8) / 16777216.0f - 0.5f);
    }
    void *d = b->o->alloc(n * b->o->act_bytes);
    b->o->float_to_act(d, host, n);
    free(host);
    return b->p[b->n++] = d;
}

static void buffers_free(buffers *b) {
    for (int i = 0; i < b->n; i++) b->o->free(b->p[i]);
    b->n = 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define TIME_BEST(best, repeats, statement)                          \
    do {                                                             \
        statement; /* warm-up */                                     \
        best = 1e30;                                                 \
        for (int r_ = 0; r_ < (repeats); r_++) {                     \
            double t0_ = now();                                      \
            statement;                                               \
            double dt_ = now() - t0_;                                \
            best = dt_ < best ? dt_ : best;                          \
        }                                                            \
    } while (0)

static void report(const char *what, double seconds, double flops) {
    if (seconds >= 1e30) return; /* warm-up runs report nothing */
    if (flops > 0)
        printf("  %-44s %8.3f ms  %7.1f GFLOP/s\n", what, seconds * 1e3, flops / seconds * 1e-9);
    else
        printf("  %-44s %8.3f ms\n", what, seconds * 1e3);
}

static void bench_matmul(const ops *o, int N, int C, int OC, int repeats) {
    buffers b = {o, {0}, 0};
    void *inp = random_act(&b, (size_t)N * C, 1), *w = random_act(&b, (size_t)OC * C, 0.1f);
    void *out = random_act(&b, (size_t)N * OC, 1), *dinp = random_act(&b, (size_t)N * C, 1);
    void *dw = random_act(&b, (size_t)OC * C, 1);
    double t, flops = 2.0 * N * C * OC;
    char what[96];
    TIME_BEST(t, repeats, o->matmul_forward(out, inp, w, NULL, N, C, OC));
    snprintf(what, sizeof what, "matmul forward  %4dx%4d . %4dx%4d^T", N, C, OC, C);
    report(what, t, flops);
    TIME_BEST(t, repeats, o->matmul_backward(dinp, dw, NULL, out, inp, w, N, C, OC));
    snprintf(what, sizeof what, "matmul backward (dinp + dweight)");
    report(what, t, 2 * flops);
    buffers_free(&b);
}

static void bench_attention(const ops *o, int N, int T, int H, int KV, int hd, int repeats) {
    int B = N / T;
    size_t row = (size_t)(H + 2 * KV) * hd;
    buffers b = {o, {0}, 0};
    void *qkv = random_act(&b, (size_t)N * row, 2), *out = random_act(&b, (size_t)N * H * hd, 1);
    void *lse = random_act(&b, (size_t)B * H * T, 1), *dout = random_act(&b, (size_t)N * H * hd, 1);
    void *dqkv = random_act(&b, (size_t)N * row, 1);
    /* causal: half of the T² score matrix; 2 GEMM-like products forward, 5 backward */
    double half = (double)B * H * T * (T + 1) / 2 * hd * 2, t;
    char what[96];
    TIME_BEST(t, repeats, o->attention_forward(out, lse, qkv, NULL, B, T, H, KV, hd));
    snprintf(what, sizeof what, "attention forward  B%d T%d H%d KV%d hd%d", B, T, H, KV, hd);
    report(what, t, 2 * half);
    TIME_BEST(t, repeats,
              o->attention_backward(dqkv, dout, qkv, out, lse, NULL, B, T, H, KV, hd));
    snprintf(what, sizeof what, "attention backward B%d T%d H%d KV%d hd%d", B, T, H, KV, hd);
    report(what, t, 5 * half);
    buffers_free(&b);
}

static void bench_token_ops(const ops *o, int N, int C, int F, int V, int repeats) {
    buffers b = {o, {0}, 0};
    void *x = random_act(&b, (size_t)N * C, 1), *w = random_act(&b, C, 1);
    void *y = random_act(&b, (size_t)N * C, 1), *rstd = random_act(&b, N, 1);
    void *dx = random_act(&b, (size_t)N * C, 1), *dw = random_act(&b, C, 1);
    void *gu = random_act(&b, (size_t)N * 2 * F, 1), *h = random_act(&b, (size_t)N * F, 1);
    void *dgu = random_act(&b, (size_t)N * 2 * F, 1), *logits = random_act(&b, (size_t)N * V, 4);
    void *losses = random_act(&b, N, 1), *weights = random_act(&b, N, 1);
    int32_t *targets = malloc(sizeof(int32_t) * N);
    for (int n = 0; n < N; n++) targets[n] = (n * 7919) % V;
    double t;
    char what[96];
    TIME_BEST(t, repeats, o->rmsnorm_forward(y, rstd, x, w, N, C, 1e-5f));
    snprintf(what, sizeof what, "rmsnorm forward  N%d C%d", N, C);
    report(what, t, 0);
    TIME_BEST(t, repeats, o->rmsnorm_backward(dx, dw, y, x, w, rstd, N, C));
    report("rmsnorm backward", t, 0);
    TIME_BEST(t, repeats, o->swiglu_forward(h, gu, N, F));
    snprintf(what, sizeof what, "swiglu forward   N%d F%d", N, F);
    report(what, t, 0);
    TIME_BEST(t, repeats, o->swiglu_backward(dgu, h, gu, N, F));
    report("swiglu backward", t, 0);
    TIME_BEST(t, repeats, o->cross_entropy(logits, losses, targets, weights, N, V));
    snprintf(what, sizeof what, "cross_entropy + dlogits N%d V%d", N, V);
    report(what, t, 0);
    free(targets);
    buffers_free(&b);
}

int main(int argc, char **argv) {
    int repeats = argc > 1 ? atoi(argv[1]) : 5;
    const ops *o = ops_cpu();
    const int N = 1024;
    printf("cairn cpu backend (fp32), %d OpenMP threads, best of %d\n", omp_get_max_threads(),
           repeats);
    /* Warm up the thread pool and the clocks: the first ~0.1 s of a process
     * can run at a fraction of the speed on small VMs. */
    for (double start = now(); now() - start < 0.3;) bench_matmul(o, N, 128, 128, 0);
    const int widths[3] = {128, 256, 512};
    for (int i = 0; i < 3; i++) {
        int C = widths[i], hd = C >= 512 ? 64 : 32, H = C / hd, KV = H / 2;
        printf("C = %d (H %d, KV %d, hd %d)\n", C, H, KV, hd);
        bench_matmul(o, N, C, (H + 2 * KV) * hd, repeats);
        bench_matmul(o, N, C, 4 * C, repeats);
        bench_attention(o, N, 128, H, KV, hd, repeats);
        bench_attention(o, N, 256, H, KV, hd, repeats);
        bench_token_ops(o, N, C, 2 * C, 8192, repeats);
    }
    return 0;
}
