/* The CPU backends' values: small cases computed by hand, the fp32 backend against
 * the fp64 one on every op (forward and backward), bit-identical results whatever
 * the thread count (OpenMP, and OpenBLAS when linked), the linear layers with GELU
 * bit-identical to the plain ops they stand for, and the portable blocked
 * GEMM (the path taken without OpenBLAS) against a naive product. MoE routing's hand-worked
 * cases are in test_ops_moe_routing.c; its decisions are compared here too. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/random.h"
#include "kernels/ops.h"
#include "tests/unit/check.h"

/* Present when OpenBLAS is linked; weak so the test links without it. */
void openblas_set_num_threads(int threads) __attribute__((weak));

/* The backend's portable GEMM (kernels/cpu/cpu_gemm.c), normally hidden behind CBLAS. */
void cpu32_gemm_blocked(int transpose_a, int transpose_b, int M, int N, int K, const float *A,
                        int lda, const float *B, int ldb, int accumulate, float *C, int ldc);
void cpu64_gemm_blocked(int transpose_a, int transpose_b, int M, int N, int K, const double *A,
                        int lda, const double *B, int ldb, int accumulate, double *C, int ldc);

/* ------------------------------------------------------------ helpers */

static void *upload(const ops *o, const float *host, size_t n) {
    void *device = o->alloc(n * o->act_bytes);
    o->float_to_act(device, host, n);
    return device;
}

static void *upload_master(const ops *o, const float *host, size_t n) {
    void *device = o->alloc(n * o->master_bytes);
    o->float_to_master(device, host, n);
    return device;
}

static float *random_floats(random_state *r, size_t n, double lo, double hi) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * random_uniform(r));
    return x;
}

static float *download(const ops *o, const void *device, size_t n) {
    float *host = malloc(n * sizeof(float));
    o->act_to_float(host, device, n);
    return host;
}

/* Master values at full precision: doubles of cpu64 as they are, floats widened. */
static void read_master(const ops *o, const void *device, size_t n, double *dst) {
    if (o->master_bytes == sizeof(double)) {
        o->copy_to_host(dst, device, n * sizeof(double));
        return;
    }
    float *host = malloc(n * sizeof(float));
    o->master_to_float(host, device, n);
    for (size_t i = 0; i < n; i++) dst[i] = host[i];
    free(host);
}

/* ------------------------------------------------------------ hand-computed cases */

static void hand_memory(const ops *o) {
    float host[5] = {1.5f, -2.25f, 3.0f, 0.0f, 1e-3f}, back[5];
    unsigned char *p = o->alloc(1000);
    int zero = 1;
    for (int i = 0; i < 1000; i++) zero &= p[i] == 0;
    CHECK_MSG(zero && (uintptr_t)p % 64 == 0, "%s: alloc not zeroed or not 64-byte aligned",
              o->name);
    o->free(p);
    void *a = upload(o, host, 5), *b = o->alloc(5 * o->act_bytes);
    o->copy_device(b, a, 5 * o->act_bytes);
    o->act_to_float(back, b, 5);
    CHECK(memcmp(host, back, sizeof host) == 0);
    o->zero(b, 5 * o->act_bytes);
    o->act_to_float(back, b, 5);
    CHECK(back[0] == 0 && back[4] == 0);
    o->master_to_act(b, a, 5);
    o->master_to_float(back, b, 5);
    CHECK(memcmp(host, back, sizeof host) == 0);
    o->synchronize();
    o->free(a);
    o->free(b);
}

static void hand_matmul(const ops *o) {
    float inp[6] = {1, 2, 3, 4, 5, 6}, weight[6] = {1, 0, -1, 2, 1, 0}, bias[2] = {0.5f, -1};
    float expected[4] = {-1.5f, 3, -1.5f, 12}, out_host[4];
    void *i = upload(o, inp, 6), *w = upload(o, weight, 6), *b = upload(o, bias, 2);
    void *out = o->alloc(4 * o->act_bytes);
    o->matmul_forward(out, i, w, b, 2, 3, 2);
    o->act_to_float(out_host, out, 4);
    for (int k = 0; k < 4; k++) CHECK_NEAR(out_host[k], expected[k], 1e-6);
    /* dout = ones: dinp[n] = Σ_oc weight[oc], dweight[oc] += Σ_n inp[n], dbias += N */
    float ones[4] = {1, 1, 1, 1}, dinp_host[6], dweight_host[6], dbias_host[2];
    void *dout = upload(o, ones, 4), *dinp = o->alloc(6 * o->act_bytes);
    void *dweight = o->alloc(6 * o->master_bytes), *dbias = o->alloc(2 * o->master_bytes);
    o->matmul_backward(dinp, dweight, dbias, dout, i, w, 2, 3, 2);
    o->act_to_float(dinp_host, dinp, 6);
    o->master_to_float(dweight_host, dweight, 6);
    o->master_to_float(dbias_host, dbias, 2);
    float dinp_expected[6] = {3, 1, -1, 3, 1, -1}, dweight_expected[6] = {5, 7, 9, 5, 7, 9};
    for (int k = 0; k < 6; k++) {
        CHECK_NEAR(dinp_host[k], dinp_expected[k], 1e-6);
        CHECK_NEAR(dweight_host[k], dweight_expected[k], 1e-6);
    }
    CHECK(dbias_host[0] == 2 && dbias_host[1] == 2);
    void *buffers[] = {i, w, b, out, dout, dinp, dweight, dbias};
    for (size_t k = 0; k < sizeof buffers / sizeof *buffers; k++) o->free(buffers[k]);
}

/* Three groups over rows {0, 1}, {} and {2, 3, 4} of 3 columns, weights [2][3] 8 elements apart
 * (a gap of 2 between them): each group equals matmul_forward / matmul_backward over its rows
 * and weight; the empty group's gradient, the gaps and a row past the last group stay as they
 * were. */
static void hand_matmul_grouped(const ops *o) {
    enum { ROWS = 6, C = 3, OC = 2, STRIDE = 8, GROUPS = 3 };
    const int32_t offsets[GROUPS + 1] = {0, 2, 2, 5};
    float inp[ROWS * C], weights[GROUPS * STRIDE], dout[ROWS * OC], sentinel[ROWS * C];
    for (int i = 0; i < ROWS * C; i++) inp[i] = (float)(i % 7) - 2.5f;
    for (int i = 0; i < GROUPS * STRIDE; i++) weights[i] = (float)((i * 5) % 9) * 0.25f - 1;
    for (int i = 0; i < ROWS * OC; i++) dout[i] = (float)((i * 3) % 5) - 1.5f;
    for (int i = 0; i < ROWS * C; i++) sentinel[i] = 100 + i;
    void *x = upload(o, inp, ROWS * C), *w = upload(o, weights, GROUPS * STRIDE);
    void *dy = upload(o, dout, ROWS * OC);
    void *out = upload(o, sentinel, ROWS * OC), *dinp = upload(o, sentinel, ROWS * C);
    void *dweights = upload_master(o, weights, GROUPS * STRIDE);
    o->matmul_grouped_forward(out, x, w, STRIDE, offsets, GROUPS, C, OC);
    o->matmul_grouped_backward(dinp, dweights, dy, x, w, STRIDE, offsets, GROUPS, C, OC);
    float out_host[ROWS * OC], dinp_host[ROWS * C], dweights_host[GROUPS * STRIDE];
    o->act_to_float(out_host, out, ROWS * OC);
    o->act_to_float(dinp_host, dinp, ROWS * C);
    o->master_to_float(dweights_host, dweights, GROUPS * STRIDE);
    /* row 0 of group 0 by hand: out[0][j] = Σ_c inp[0][c] · weight0[j][c] */
    for (int j = 0; j < OC; j++) {
        float sum = 0;
        for (int c = 0; c < C; c++) sum += inp[c] * weights[j * C + c];
        CHECK_NEAR(out_host[j], sum, 1e-6);
    }
    for (int g = 0; g < GROUPS; g++) {
        int first = offsets[g], rows = offsets[g + 1] - first;
        if (rows == 0) continue;
        float one_out[ROWS * OC], one_dinp[ROWS * C], one_dweight[OC * C];
        void *out1 = o->alloc(ROWS * OC * o->act_bytes);
        void *dinp1 = o->alloc(ROWS * C * o->act_bytes);
        void *xg = upload(o, inp + first * C, rows * C);
        void *wg = upload(o, weights + g * STRIDE, OC * C);
        void *dyg = upload(o, dout + first * OC, rows * OC);
        void *dwg = upload_master(o, weights + g * STRIDE, OC * C);
        o->matmul_forward(out1, xg, wg, NULL, rows, C, OC);
        o->matmul_backward(dinp1, dwg, NULL, dyg, xg, wg, rows, C, OC);
        o->act_to_float(one_out, out1, rows * OC);
        o->act_to_float(one_dinp, dinp1, rows * C);
        o->master_to_float(one_dweight, dwg, OC * C);
        CHECK_MSG(memcmp(one_out, out_host + first * OC, rows * OC * sizeof(float)) == 0,
                  "%s: grouped forward of group %d differs from matmul_forward", o->name, g);
        CHECK_MSG(memcmp(one_dinp, dinp_host + first * C, rows * C * sizeof(float)) == 0,
                  "%s: grouped dinp of group %d differs from matmul_backward", o->name, g);
        CHECK_MSG(memcmp(one_dweight, dweights_host + g * STRIDE, OC * C * sizeof(float)) == 0,
                  "%s: grouped dweight of group %d differs from matmul_backward", o->name, g);
        void *buffers[] = {out1, dinp1, xg, wg, dyg, dwg};
        for (size_t k = 0; k < sizeof buffers / sizeof *buffers; k++) o->free(buffers[k]);
    }
    /* untouched: the empty group's gradient, the gaps between weights, the row past the groups */
    for (int i = 0; i < OC * C; i++) CHECK(dweights_host[STRIDE + i] == weights[STRIDE + i]);
    for (int g = 0; g < GROUPS; g++)
        for (int i = OC * C; i < STRIDE; i++)
            CHECK(dweights_host[g * STRIDE + i] == weights[g * STRIDE + i]);
    for (int j = 0; j < OC; j++) CHECK(out_host[5 * OC + j] == sentinel[5 * OC + j]);
    for (int c = 0; c < C; c++) CHECK(dinp_host[5 * C + c] == sentinel[5 * C + c]);
    void *buffers[] = {x, w, dy, out, dinp, dweights};
    for (size_t k = 0; k < sizeof buffers / sizeof *buffers; k++) o->free(buffers[k]);
}

static double gelu_tanh(double x) {
    return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

static double gelu_tanh_derivative(double x) {
    double t = tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * sqrt(2 / M_PI) * (1 + 3 * 0.044715 * x * x);
}

/* hand_matmul's layer, then GELU: pre = {-1.5, 3, -1.5, 12}. Backward of a layer of C = 2
 * inputs, OC = 3 outputs over N = 2 rows: dout · weight = {1, 3, -2, 1}. */
static void hand_matmul_gelu(const ops *o) {
    float inp[6] = {1, 2, 3, 4, 5, 6}, weight[6] = {1, 0, -1, 2, 1, 0}, bias[2] = {0.5f, -1};
    float expected_pre[4] = {-1.5f, 3, -1.5f, 12}, out_host[4], pre_host[4];
    void *i = upload(o, inp, 6), *w = upload(o, weight, 6), *b = upload(o, bias, 2);
    void *out = o->alloc(4 * o->act_bytes), *pre = o->alloc(4 * o->act_bytes);
    o->matmul_gelu_forward(out, pre, i, w, b, 2, 3, 2);
    o->act_to_float(pre_host, pre, 4);
    o->act_to_float(out_host, out, 4);
    for (int k = 0; k < 4; k++) {
        CHECK_NEAR(pre_host[k], expected_pre[k], 1e-6);
        CHECK_NEAR(out_host[k], gelu_tanh(expected_pre[k]), 1e-6);
    }

    float x[4] = {1, -1, 0.5f, 2}, hidden[4], w2[6] = {1, 0, -1, 2, 1, 1};
    float dout_host[6] = {1, 1, 1, 0, 1, -1}, product[4] = {1, 3, -2, 1};
    for (int k = 0; k < 4; k++) hidden[k] = (float)gelu_tanh(x[k]);
    void *dx = upload(o, x, 4), *dh = upload(o, hidden, 4), *dw2 = upload(o, w2, 6);
    void *dout = upload(o, dout_host, 6), *dpre = upload(o, dout_host, 4); /* overwritten */
    float prior[6] = {0.5f, -0.5f, 1, 2, -1, 0}, bias_prior[3] = {1, 0, -1};
    void *dweight = upload_master(o, prior, 6), *dbias = upload_master(o, bias_prior, 3);
    o->matmul_gelu_backward(dpre, dweight, dbias, dout, dh, dw2, dx, 2, 2, 3);
    float dpre_host[4], dweight_host[6], dbias_host[3];
    o->act_to_float(dpre_host, dpre, 4);
    o->master_to_float(dweight_host, dweight, 6);
    o->master_to_float(dbias_host, dbias, 3);
    for (int k = 0; k < 4; k++)
        CHECK_NEAR(dpre_host[k], product[k] * gelu_tanh_derivative(x[k]), 1e-6);
    /* dweight[oc][c] += Σ_n dout[n][oc] · hidden[n][c]; dbias += Σ_n dout = {1, 2, 0} */
    for (int oc = 0; oc < 3; oc++) {
        for (int c = 0; c < 2; c++)
            CHECK_NEAR(dweight_host[oc * 2 + c],
                       prior[oc * 2 + c] + (double)dout_host[oc] * hidden[c] +
                           (double)dout_host[3 + oc] * hidden[2 + c],
                       1e-6);
        CHECK_NEAR(dbias_host[oc], bias_prior[oc] + dout_host[oc] + dout_host[3 + oc], 1e-6);
    }
    void *buffers[] = {i, w, b, out, pre, dx, dh, dw2, dout, dpre, dweight, dbias};
    for (size_t k = 0; k < sizeof buffers / sizeof *buffers; k++) o->free(buffers[k]);
}

/* T = 3, one head, hd = 2. Each token its own document: out = v. Then documents
 * {0, 1} and {2}: token 1 mixes v0 and v1 by the softmax of q1·k/√2, token 2 = v2. */
static void hand_attention(const ops *o) {
    float qkv[3 * 6] = {
        /* q        k          v */
        0.5f, -1.0f, 1.0f, 0.0f, 1.0f, 2.0f,  /* t = 0 */
        1.0f, 2.0f, 0.0f, 1.0f, -3.0f, 4.0f,  /* t = 1 */
        -2.0f, 0.5f, 1.0f, 1.0f, 5.0f, -6.0f, /* t = 2 */
    };
    int32_t alone_start[3] = {0, 1, 2}, two_start[3] = {0, 0, 2}, alone_firsts[4], two_firsts[4];
    attention_documents alone = {alone_start, alone_firsts,
                                 attention_documents_starts(alone_start, 1, 3, alone_firsts)};
    attention_documents two_docs = {two_start, two_firsts,
                                    attention_documents_starts(two_start, 1, 3, two_firsts)};
    void *x = upload(o, qkv, 18), *out = o->alloc(6 * o->act_bytes);
    void *lse = o->alloc(3 * o->master_bytes);
    float out_host[6], lse_host[3];
    o->attention_forward(out, lse, x, &alone, 1, 3, 1, 1, 2);
    o->act_to_float(out_host, out, 6);
    o->master_to_float(lse_host, lse, 3);
    for (int t = 0; t < 3; t++) {
        CHECK_NEAR(out_host[2 * t], qkv[6 * t + 4], 1e-6);
        CHECK_NEAR(out_host[2 * t + 1], qkv[6 * t + 5], 1e-6);
        double own = (qkv[6 * t] * qkv[6 * t + 2] + qkv[6 * t + 1] * qkv[6 * t + 3]) / sqrt(2.0);
        CHECK_NEAR(lse_host[t], own, 1e-6);
    }
    o->attention_forward(out, lse, x, &two_docs, 1, 3, 1, 1, 2);
    o->act_to_float(out_host, out, 6);
    o->master_to_float(lse_host, lse, 3);
    double s0 = (1.0 * 1.0 + 2.0 * 0.0) / sqrt(2.0), s1 = (1.0 * 0.0 + 2.0 * 1.0) / sqrt(2.0);
    double p0 = exp(s0) / (exp(s0) + exp(s1)), p1 = 1 - p0;
    CHECK_NEAR(out_host[2], p0 * 1.0 + p1 * -3.0, 1e-6);
    CHECK_NEAR(out_host[3], p0 * 2.0 + p1 * 4.0, 1e-6);
    CHECK_NEAR(lse_host[1], log(exp(s0) + exp(s1)), 1e-6);
    CHECK_NEAR(out_host[4], 5.0, 1e-6);
    CHECK_NEAR(out_host[5], -6.0, 1e-6);
    /* causal without documents: token 0 sees only itself */
    o->attention_forward(out, lse, x, NULL, 1, 3, 1, 1, 2);
    o->act_to_float(out_host, out, 6);
    CHECK_NEAR(out_host[0], 1.0, 1e-6);
    CHECK_NEAR(out_host[1], 2.0, 1e-6);
    o->free(x);
    o->free(out);
    o->free(lse);
}

static void hand_cross_entropy(const ops *o) {
    float logits[4] = {1.0f, 3.0f, 2.0f, -1.0f}, weights[2] = {0.5f, 2.0f};
    int32_t targets[2] = {1, 1};
    void *x = upload(o, logits, 4), *losses = o->alloc(2 * o->master_bytes);
    void *w = upload_master(o, weights, 2);
    float losses_host[2], dlogits[4];
    o->cross_entropy(x, losses, targets, w, 2, 2);
    o->master_to_float(losses_host, losses, 2);
    o->act_to_float(dlogits, x, 4);
    CHECK_NEAR(losses_host[0], log(1 + exp(1.0 - 3.0)), 1e-6);
    CHECK_NEAR(losses_host[1], log(1 + exp(2.0 - -1.0)), 1e-6);
    double softmax0 = 1 / (1 + exp(3.0 - 1.0)), softmax1 = 1 / (1 + exp(-1.0 - 2.0));
    CHECK_NEAR(dlogits[0], softmax0 * 0.5, 1e-6);
    CHECK_NEAR(dlogits[1], (1 - softmax0 - 1) * 0.5, 1e-6);
    CHECK_NEAR(dlogits[2], softmax1 * 2.0, 1e-6);
    CHECK_NEAR(dlogits[3], (1 - softmax1 - 1) * 2.0, 1e-6);
    o->free(x);
    o->free(losses);
    o->free(w);
}

/* The vocabulary split over two simulated tensor-parallel ranks (columns [0, 3) and [3, 7)),
 * with the all-reduces done here, gives the losses and dlogits of the whole-vocabulary op. */
static void hand_vocab_parallel_cross_entropy(const ops *o) {
    enum { N = 3, V = 7, SPLIT = 3 };
    const float logits[N * V] = {0.5f, -1, 2,   3,  0.25f, -2, 1,  4, 1,  0, -1, 2, 2.5f, 0,
                                 -3,   1,  0.5f, -1, 2,     1,  -4};
    const int32_t targets[N] = {3, 0, 6};
    const float weights[N] = {0.5f, 1, 2};
    void *whole = upload(o, logits, N * V), *w = upload_master(o, weights, N);
    void *losses = o->alloc(N * o->master_bytes);
    o->cross_entropy(whole, losses, targets, w, N, V);
    float expect_losses[N], expect_dlogits[N * V];
    o->master_to_float(expect_losses, losses, N);
    o->act_to_float(expect_dlogits, whole, N * V);

    const int first[2] = {0, SPLIT}, width[2] = {SPLIT, V - SPLIT};
    void *slice[2], *row_max[2], *stats[2];
    int32_t local_targets[2][N];
    float max_total[N], stats_total[2 * N], part[2 * N];
    for (int r = 0; r < 2; r++) {
        float host[N * V];
        for (int n = 0; n < N; n++) {
            for (int v = 0; v < width[r]; v++) host[n * width[r] + v] = logits[n * V + first[r] + v];
            int t = targets[n] - first[r];
            local_targets[r][n] = t >= 0 && t < width[r] ? t : -1;
        }
        slice[r] = upload(o, host, (size_t)N * width[r]);
        row_max[r] = o->alloc(N * o->master_bytes);
        stats[r] = o->alloc(2 * N * o->master_bytes);
        o->vocab_parallel_max(row_max[r], slice[r], N, width[r]);
        o->master_to_float(part, row_max[r], N);
        for (int n = 0; n < N; n++) max_total[n] = r == 0 || part[n] > max_total[n] ? part[n] : max_total[n];
    }
    for (int r = 0; r < 2; r++) {
        o->float_to_master(row_max[r], max_total, N);
        o->vocab_parallel_sum_exp(stats[r], slice[r], row_max[r], local_targets[r], N, width[r]);
        o->master_to_float(part, stats[r], 2 * N);
        for (int i = 0; i < 2 * N; i++) stats_total[i] = (r == 0 ? 0 : stats_total[i]) + part[i];
    }
    for (int r = 0; r < 2; r++) {
        float got_losses[N], got[N * V];
        o->float_to_master(stats[r], stats_total, 2 * N);
        o->vocab_parallel_loss(slice[r], losses, row_max[r], stats[r], local_targets[r], w, N,
                               width[r]);
        o->master_to_float(got_losses, losses, N);
        o->act_to_float(got, slice[r], (size_t)N * width[r]);
        for (int n = 0; n < N; n++) {
            CHECK_NEAR(got_losses[n], expect_losses[n], 1e-6);
            for (int v = 0; v < width[r]; v++)
                CHECK_NEAR(got[n * width[r] + v], expect_dlogits[n * V + first[r] + v], 1e-7);
        }
        o->free(slice[r]);
        o->free(row_max[r]);
        o->free(stats[r]);
    }
    o->free(whole);
    o->free(w);
    o->free(losses);
}

static void hand_small_ops(const ops *o) {
    /* rmsnorm of [3, 4] with weight [1, 2]: mean square 12.5 */
    float x[2] = {3, 4}, w[2] = {1, 2}, out[2], rstd[1];
    void *dx = upload(o, x, 2), *dw = upload(o, w, 2), *dout = o->alloc(2 * o->act_bytes);
    void *drstd = o->alloc(o->master_bytes);
    o->rmsnorm_forward(dout, drstd, dx, dw, 1, 2, 1e-5f);
    o->act_to_float(out, dout, 2);
    o->master_to_float(rstd, drstd, 1);
    double r = 1 / sqrt(12.5 + 1e-5);
    CHECK_NEAR(rstd[0], r, 1e-7);
    CHECK_NEAR(out[0], 3 * r, 1e-6);
    CHECK_NEAR(out[1], 8 * r, 1e-6);
    /* RoPE with hd = 2: frequency 1, so position p rotates the pair by p radians */
    float pair[2 * 3] = {1, 0, 0, 1, 2, 3}; /* H = 1, KV = 1: q, k and v of one row */
    int32_t position = 2;
    void *qkv = upload(o, pair, 6);
    o->rope_forward(qkv, &position, 1, 1, 1, 2, 10000.0f);
    float rotated[6];
    o->act_to_float(rotated, qkv, 6);
    CHECK_NEAR(rotated[0], cos(2.0), 1e-6);
    CHECK_NEAR(rotated[1], sin(2.0), 1e-6);
    CHECK_NEAR(rotated[2], -sin(2.0), 1e-6);
    CHECK_NEAR(rotated[3], cos(2.0), 1e-6);
    CHECK(rotated[4] == 2 && rotated[5] == 3);
    o->rope_backward(qkv, &position, 1, 1, 1, 2, 10000.0f);
    o->act_to_float(rotated, qkv, 6);
    for (int i = 0; i < 6; i++) CHECK_NEAR(rotated[i], pair[i], 1e-6);
    /* swiglu: silu(1) · 2; gelu(1) with the tanh approximation */
    float gate_up[2] = {1, 2}, one = 1, value;
    void *gu = upload(o, gate_up, 2), *v1 = upload(o, &one, 1), *v = o->alloc(o->act_bytes);
    o->swiglu_forward(v, gu, 1, 1);
    o->act_to_float(&value, v, 1);
    CHECK_NEAR(value, 2.0 / (1 + exp(-1.0)), 1e-6);
    o->gelu_forward(v, v1, 1);
    o->act_to_float(&value, v, 1);
    CHECK_NEAR(value, 0.5 * (1 + tanh(sqrt(2 / M_PI) * (1 + 0.044715))), 1e-6);
    /* xIELU with alpha_p = 0.8, alpha_n = 0.5 + 0.3 */
    float alpha[2] = {(float)log(expm1(0.8)), (float)log(expm1(0.3))}, xs[3] = {2, -1, -1e-9f};
    float ys[3];
    void *da = upload(o, alpha, 2), *dxs = upload(o, xs, 3), *dys = o->alloc(3 * o->act_bytes);
    o->xielu_forward(dys, dxs, da, 3);
    o->act_to_float(ys, dys, 3);
    CHECK_NEAR(ys[0], 0.8 * 4 + 0.5 * 2, 1e-5);
    CHECK_NEAR(ys[1], (expm1(-1.0) + 1) * 0.8 - 0.5, 1e-6);
    CHECK_NEAR(ys[2], (expm1(-1e-6) + 1e-9) * 0.8 - 0.5e-9, 1e-9); /* min(x, -1e-6) */
    void *buffers[] = {dx, dw, dout, drstd, qkv, gu, v1, v, da, dxs, dys};
    for (size_t k = 0; k < sizeof buffers / sizeof *buffers; k++) o->free(buffers[k]);
}

static void hand_rows(const ops *o) {
    float table[3 * 2] = {1, 2, 3, 4, 5, 6}, got[4 * 2];
    int32_t rows[4] = {2, 0, 2, 1};
    void *t = upload(o, table, 6), *g = o->alloc(8 * o->act_bytes);
    o->gather_rows(g, t, rows, 4, 2);
    o->act_to_float(got, g, 8);
    float gathered[8] = {5, 6, 1, 2, 5, 6, 3, 4};
    CHECK(memcmp(got, gathered, sizeof got) == 0);
    o->scatter_add_rows(t, g, rows, 4, 2); /* row 2 gets itself twice more */
    o->act_to_float(got, t, 6);
    float scattered[6] = {2, 4, 6, 8, 15, 18};
    CHECK(memcmp(got, scattered, 6 * sizeof(float)) == 0);
    /* embedding: wte rows + wpe rows */
    int32_t tokens[2] = {2, 0}, positions[2] = {1, 1};
    o->embedding_forward(g, tokens, positions, t, t, 2, 2);
    o->act_to_float(got, g, 4);
    CHECK(got[0] == 15 + 6 && got[1] == 18 + 8 && got[2] == 2 + 6 && got[3] == 4 + 8);
    o->embedding_forward(g, tokens, NULL, t, NULL, 2, 2);
    o->act_to_float(got, g, 4);
    CHECK(got[0] == 15 && got[3] == 4);
    /* negative ids belong to another tensor-parallel rank: position only, or zero; the
     * gradient skips them */
    int32_t foreign[2] = {-1, 0};
    o->embedding_forward(g, foreign, positions, t, t, 2, 2);
    o->act_to_float(got, g, 4);
    CHECK(got[0] == 6 && got[1] == 8 && got[2] == 2 + 6 && got[3] == 4 + 8);
    o->embedding_forward(g, foreign, NULL, t, NULL, 2, 2);
    o->act_to_float(got, g, 4);
    CHECK(got[0] == 0 && got[1] == 0 && got[2] == 2);
    o->embedding_backward(t, NULL, g, foreign, NULL, 2, 2); /* row 0 += {2, 4} only */
    o->act_to_float(got, t, 6);
    CHECK(got[0] == 4 && got[1] == 8 && got[2] == 6 && got[3] == 8 && got[4] == 15);
    /* combine: token 0 = 0.25 e1 + 0.75 e0; token 1 has one dropped slot */
    float experts[2 * 2] = {1, 2, 3, 4}, gates[4] = {0.25f, 0.75f, 0.5f, 0.5f};
    int32_t slot[4] = {1, 0, -1, 1};
    void *e = upload(o, experts, 4), *ga = upload_master(o, gates, 4);
    o->moe_combine_forward(g, e, ga, slot, 2, 2, 2);
    o->act_to_float(got, g, 4);
    CHECK(got[0] == 0.25f * 3 + 0.75f * 1 && got[1] == 0.25f * 4 + 0.75f * 2);
    CHECK(got[2] == 1.5f && got[3] == 2.0f);
    /* dispatch backward: token 0 took rows 2 and 0, token 1 row 1 (and a dropped slot) */
    float drows[3 * 2] = {1, 2, 3, 4, 5, 6}, dinp[2 * 2] = {10, 20, 30, 40};
    int32_t dispatched[4] = {2, 0, -1, 1};
    void *dr = upload(o, drows, 6), *di = upload(o, dinp, 4);
    o->moe_dispatch_backward(di, dr, dispatched, 2, 2, 2);
    o->act_to_float(got, di, 4);
    CHECK(got[0] == 10 + 5 + 1 && got[1] == 20 + 6 + 2 && got[2] == 30 + 3 && got[3] == 40 + 4);
    o->free(dr);
    o->free(di);
    /* elementwise */
    float a[3] = {1, 2, 3}, b[3] = {0.5f, -1, 4};
    void *da = upload(o, a, 3), *db = upload(o, b, 3);
    o->add(g, da, db, 3);
    o->act_to_float(got, g, 3);
    CHECK(got[0] == 1.5f && got[1] == 1 && got[2] == 7);
    o->accumulate(da, db, 3);
    o->scale(da, 3, 2.0f);
    o->act_to_float(got, da, 3);
    CHECK(got[0] == 3 && got[1] == 2 && got[2] == 14);
    void *buffers[] = {t, g, e, ga, da, db};
    for (size_t k = 0; k < sizeof buffers / sizeof *buffers; k++) o->free(buffers[k]);
}

/* AdamW and AdEMAMix for 3 steps against the ops.h formulas evaluated here in double. */
static void hand_optimizers(const ops *o, double tolerance) {
    enum { n = 4 };
    const float grads[3][n] = {{0.1f, -0.2f, 0.3f, 0.0f},
                               {-0.05f, 0.4f, 0.3f, 1.0f},
                               {0.2f, -0.1f, -0.3f, 2.0f}};
    const float start[n] = {1.0f, -0.5f, 0.25f, 2.0f};
    const float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, b3 = 0.999f, alpha = 5.0f, eps = 1e-8f;
    const float wd = 0.1f;
    double p[n], m[n] = {0}, v[n] = {0}, q[n], m1[n] = {0}, m2[n] = {0}, u[n] = {0};
    float zeros[n] = {0};
    void *dp = upload_master(o, start, n), *dm = upload_master(o, zeros, n);
    void *dv = upload_master(o, zeros, n), *dq = upload_master(o, start, n);
    void *dm1 = upload_master(o, zeros, n), *dm2 = upload_master(o, zeros, n);
    void *du = upload_master(o, zeros, n), *dg = o->alloc(n * o->master_bytes);
    for (int i = 0; i < n; i++) p[i] = q[i] = start[i];
    for (int step = 1; step <= 3; step++) {
        float bc1 = 1 - powf(b1, (float)step), bc2 = 1 - powf(b2, (float)step);
        o->float_to_master(dg, grads[step - 1], n);
        o->adamw_update(dp, dg, dm, dv, n, lr, b1, b2, eps, wd, bc1, bc2);
        o->ademamix_update(dq, dg, dm1, dm2, du, n, lr, b1, b2, b3, alpha, eps, wd, bc1, bc2);
        for (int i = 0; i < n; i++) {
            double g = grads[step - 1][i];
            m[i] = (double)b1 * m[i] + (1 - (double)b1) * g;
            v[i] = (double)b2 * v[i] + (1 - (double)b2) * g * g;
            p[i] -= lr * ((m[i] / bc1) / (sqrt(v[i] / bc2) + (double)eps) + (double)wd * p[i]);
            m1[i] = (double)b1 * m1[i] + (1 - (double)b1) * g;
            m2[i] = (double)b3 * m2[i] + (1 - (double)b3) * g;
            u[i] = (double)b2 * u[i] + (1 - (double)b2) * g * g;
            q[i] -= lr * ((m1[i] / bc1 + (double)alpha * m2[i]) / (sqrt(u[i]) / sqrt(bc2) +
                                                                    (double)eps) +
                          (double)wd * q[i]);
        }
    }
    double got_p[n], got_q[n], got_m2[n];
    read_master(o, dp, n, got_p);
    read_master(o, dq, n, got_q);
    read_master(o, dm2, n, got_m2);
    for (int i = 0; i < n; i++) {
        CHECK_MSG(fabs(got_p[i] - p[i]) <= tolerance * fabs(p[i]), "%s adamw[%d]: %.9g vs %.9g",
                  o->name, i, got_p[i], p[i]);
        CHECK_MSG(fabs(got_q[i] - q[i]) <= tolerance * fabs(q[i]),
                  "%s ademamix[%d]: %.9g vs %.9g", o->name, i, got_q[i], q[i]);
        CHECK_MSG(fabs(got_m2[i] - m2[i]) <= tolerance * fabs(m2[i]) + 1e-12,
                  "%s ademamix m2[%d]: %.9g vs %.9g", o->name, i, got_m2[i], m2[i]);
    }
    void *buffers[] = {dp, dm, dv, dq, dm1, dm2, du, dg};
    for (size_t k = 0; k < sizeof buffers / sizeof *buffers; k++) o->free(buffers[k]);
}

static void hand_sum_squares(const ops *o) {
    enum { n = 10007 }; /* 1² + ... + n², exact in double */
    float *x = malloc(n * sizeof(float));
    for (int i = 0; i < n; i++) x[i] = (float)(i + 1);
    void *d = upload_master(o, x, n);
    double expected = (double)n * (n + 1) * (2.0 * n + 1) / 6;
    CHECK_MSG(o->sum_squares(d, n) == expected, "%s: sum_squares %.17g vs %.17g", o->name,
              o->sum_squares(d, n), expected);
    CHECK(o->sum_squares(d, 0) == 0);
    o->free(d);
    free(x);
}

/* ------------------------------------------------------------ whole-op runs */

enum { MAX_OUTPUTS = 6 };

/* The outputs of one run of an op on one backend, as doubles on the host. */
typedef struct outputs {
    int count;
    const char *name[MAX_OUTPUTS];
    double *data[MAX_OUTPUTS];
    size_t n[MAX_OUTPUTS];
} outputs;

static void keep(outputs *out, const ops *o, const char *name, const void *device, size_t n) {
    float *host = download(o, device, n);
    double *data = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) data[i] = host[i];
    free(host);
    out->name[out->count] = name;
    out->data[out->count] = data;
    out->n[out->count++] = n;
}

static void keep_scalar(outputs *out, const char *name, double value) {
    double *data = malloc(sizeof(double));
    *data = value;
    out->name[out->count] = name;
    out->data[out->count] = data;
    out->n[out->count++] = 1;
}

static void keep_ints(outputs *out, const char *name, const int32_t *host, size_t n) {
    double *data = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) data[i] = host[i];
    out->name[out->count] = name;
    out->data[out->count] = data;
    out->n[out->count++] = n;
}

static void outputs_free(outputs *out) {
    for (int i = 0; i < out->count; i++) free(out->data[i]);
    out->count = 0;
}

/* An op run: inputs drawn from a fixed seed, so every backend and thread count
 * sees the same values. `device` collects buffers to free. */
typedef struct run {
    const ops *o;
    int variant;
    random_state rng;
    outputs *out;
    void *device[32];
    int n_device;
} run;

static void *input(run *x, size_t n, double lo, double hi) {
    float *host = random_floats(&x->rng, n, lo, hi);
    void *d = upload(x->o, host, n);
    free(host);
    return x->device[x->n_device++] = d;
}

static void *buffer(run *x, size_t n) {
    return x->device[x->n_device++] = x->o->alloc(n * x->o->act_bytes);
}

static int32_t *indices(run *x, int32_t *dst, int n, int bound) {
    for (int i = 0; i < n; i++) dst[i] = (int32_t)random_below(&x->rng, (uint64_t)bound);
    return dst;
}

static void run_embedding(run *x) {
    enum { N = 300, C = 130, V = 50, P = 64 };
    int32_t tokens[N], positions[N];
    indices(x, tokens, N, V);
    indices(x, positions, N, P);
    void *wte = input(x, V * C, -1, 1), *wpe = input(x, P * C, -1, 1), *out = buffer(x, N * C);
    void *dwte = input(x, V * C, -1, 1), *dwpe = input(x, P * C, -1, 1);
    x->o->embedding_forward(out, tokens, positions, wte, wpe, N, C);
    x->o->embedding_backward(dwte, dwpe, out, tokens, positions, N, C);
    keep(x->out, x->o, "embedding out", out, N * C);
    keep(x->out, x->o, "embedding dwte", dwte, V * C);
    keep(x->out, x->o, "embedding dwpe", dwpe, P * C);
}

static void run_norm(run *x) {
    int layer = x->variant; /* LayerNorm, else RMSNorm */
    enum { N = 300, C = 130 };
    void *inp = input(x, N * C, -2, 2), *w = input(x, C, 0.5, 1.5), *b = input(x, C, -1, 1);
    void *dout = input(x, N * C, -1, 1), *dinp = input(x, N * C, -1, 1);
    void *dw = input(x, C, -1, 1), *db = input(x, C, -1, 1), *out = buffer(x, N * C);
    void *mean = buffer(x, N), *rstd = buffer(x, N);
    if (layer) {
        x->o->layernorm_forward(out, mean, rstd, inp, w, b, N, C, 1e-5f);
        x->o->layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
        keep(x->out, x->o, "layernorm mean", mean, N);
        keep(x->out, x->o, "layernorm dbias", db, C);
    } else {
        x->o->rmsnorm_forward(out, rstd, inp, w, N, C, 1e-5f);
        x->o->rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);
    }
    keep(x->out, x->o, "norm out", out, N * C);
    keep(x->out, x->o, "norm rstd", rstd, N);
    keep(x->out, x->o, "norm dinp", dinp, N * C);
    keep(x->out, x->o, "norm dweight", dw, C);
}

static void run_matmul(run *x) {
    enum { N = 300, C = 70, OC = 90 };
    void *inp = input(x, N * C, -1, 1), *w = input(x, OC * C, -1, 1), *b = input(x, OC, -1, 1);
    void *out = buffer(x, N * OC), *dinp = buffer(x, N * C);
    void *dw = input(x, OC * C, -1, 1), *db = input(x, OC, -1, 1);
    x->o->matmul_forward(out, inp, w, b, N, C, OC);
    x->o->matmul_backward(dinp, dw, db, out, inp, w, N, C, OC);
    keep(x->out, x->o, "matmul out", out, N * OC);
    keep(x->out, x->o, "matmul dinp", dinp, N * C);
    keep(x->out, x->o, "matmul dweight", dw, OC * C);
    keep(x->out, x->o, "matmul dbias", db, OC);
}

/* experts of uneven sizes, one without rows, weights with a gap between them */
static void run_matmul_grouped(run *x) {
    enum { C = 70, OC = 90, GROUPS = 4, STRIDE = OC * C + 16 };
    const int32_t offsets[GROUPS + 1] = {0, 130, 130, 171, 300};
    int N = offsets[GROUPS];
    void *inp = input(x, (size_t)N * C, -1, 1), *w = input(x, GROUPS * STRIDE, -1, 1);
    void *dout = input(x, (size_t)N * OC, -1, 1), *out = buffer(x, (size_t)N * OC);
    void *dinp = buffer(x, (size_t)N * C), *dw = input(x, GROUPS * STRIDE, -1, 1);
    x->o->matmul_grouped_forward(out, inp, w, STRIDE, offsets, GROUPS, C, OC);
    x->o->matmul_grouped_backward(dinp, dw, dout, inp, w, STRIDE, offsets, GROUPS, C, OC);
    keep(x->out, x->o, "matmul_grouped out", out, (size_t)N * OC);
    keep(x->out, x->o, "matmul_grouped dinp", dinp, (size_t)N * C);
    keep(x->out, x->o, "matmul_grouped dweights", dw, GROUPS * STRIDE);
}

static void run_matmul_gelu(run *x) {
    enum { N = 300, C = 70, OC = 130 }; /* N·OC reaches PARALLEL_MIN_ELEMENTS: GELU in parallel */
    void *inp = input(x, N * C, -1, 1), *w = input(x, OC * C, -1, 1), *b = input(x, OC, -1, 1);
    void *out = buffer(x, N * OC), *pre = buffer(x, N * OC), *dpre = buffer(x, N * OC);
    void *w2 = input(x, C * OC, -1, 1), *dout = input(x, N * C, -1, 1);
    void *dw = input(x, C * OC, -1, 1), *db = input(x, C, -1, 1);
    x->o->matmul_gelu_forward(out, pre, inp, w, b, N, C, OC);
    x->o->matmul_gelu_backward(dpre, dw, db, dout, out, w2, pre, N, OC, C);
    keep(x->out, x->o, "matmul_gelu out", out, N * OC);
    keep(x->out, x->o, "matmul_gelu pre", pre, N * OC);
    keep(x->out, x->o, "matmul_gelu dinp_pre", dpre, N * OC);
    keep(x->out, x->o, "matmul_gelu dweight", dw, C * OC);
    keep(x->out, x->o, "matmul_gelu dbias", db, C);
}

static void run_qk_norm(run *x) {
    enum { N = 200, H = 4, KV = 2, hd = 32, ROW = (H + 2 * KV) * hd };
    void *inp = input(x, N * ROW, -2, 2), *qw = input(x, hd, 0.5, 1.5);
    void *kw = input(x, hd, 0.5, 1.5), *out = buffer(x, N * ROW), *rstd = buffer(x, N * (H + KV));
    void *dout = input(x, N * ROW, -1, 1), *dinp = buffer(x, N * ROW);
    void *dq = input(x, hd, -1, 1), *dk = input(x, hd, -1, 1);
    x->o->qk_norm_forward(out, rstd, inp, qw, kw, N, H, KV, hd, 1e-6f);
    x->o->qk_norm_backward(dinp, dq, dk, dout, inp, qw, kw, rstd, N, H, KV, hd);
    keep(x->out, x->o, "qk_norm out", out, N * ROW);
    keep(x->out, x->o, "qk_norm rstd", rstd, N * (H + KV));
    keep(x->out, x->o, "qk_norm dinp", dinp, N * ROW);
    keep(x->out, x->o, "qk_norm dq_weight", dq, hd);
    keep(x->out, x->o, "qk_norm dk_weight", dk, hd);
}

static void run_rope(run *x) {
    enum { N = 256, H = 4, KV = 2, hd = 32, ROW = (H + 2 * KV) * hd };
    int32_t positions[N];
    for (int n = 0; n < N; n++) positions[n] = n % 64;
    void *qkv = input(x, N * ROW, -1, 1), *dqkv = input(x, N * ROW, -1, 1);
    x->o->rope_forward(qkv, positions, N, H, KV, hd, 10000.0f);
    x->o->rope_backward(dqkv, positions, N, H, KV, hd, 10000.0f);
    keep(x->out, x->o, "rope forward", qkv, N * ROW);
    keep(x->out, x->o, "rope backward", dqkv, N * ROW);
}

static void run_attention(run *x) {
    int documents = x->variant;
    enum { B = 3, T = 70, H = 4, KV = 2, hd = 24, ROW = (H + 2 * KV) * hd };
    int32_t doc_start[B * T];
    for (int b = 0; b < B; b++)
        for (int t = 0, start = 0; t < T; t++) {
            if (t > start && random_below(&x->rng, 16) == 0) start = t;
            doc_start[b * T + t] = start;
        }
    int32_t starts[B * T + 1];
    attention_documents described = {doc_start, starts,
                                     attention_documents_starts(doc_start, B, T, starts)};
    const attention_documents *docs = documents ? &described : NULL;
    void *qkv = input(x, B * T * ROW, -2, 2), *out = buffer(x, B * T * H * hd);
    void *lse = x->device[x->n_device++] = x->o->alloc((size_t)B * H * T * x->o->master_bytes);
    void *dout = input(x, B * T * H * hd, -1, 1), *dqkv = buffer(x, B * T * ROW);
    x->o->attention_forward(out, lse, qkv, docs, B, T, H, KV, hd);
    x->o->attention_backward(dqkv, dout, qkv, out, lse, docs, B, T, H, KV, hd);
    keep(x->out, x->o, "attention out", out, B * T * H * hd);
    keep(x->out, x->o, "attention lse", lse, B * H * T);
    keep(x->out, x->o, "attention dqkv", dqkv, B * T * ROW);
}

static void run_activations(run *x) {
    enum { N = 200, F = 200, n = 50000 };
    void *gu = input(x, N * 2 * F, -3, 3), *out = buffer(x, N * F), *dout = input(x, n, -1, 1);
    void *dgu = buffer(x, N * 2 * F);
    x->o->swiglu_forward(out, gu, N, F);
    x->o->swiglu_backward(dgu, dout, gu, N, F);
    keep(x->out, x->o, "swiglu out", out, N * F);
    keep(x->out, x->o, "swiglu dinp", dgu, N * 2 * F);
    void *in = input(x, n, -3, 3), *y = buffer(x, n), *dy = buffer(x, n);
    x->o->gelu_forward(y, in, n);
    x->o->gelu_backward(dy, dout, in, n);
    keep(x->out, x->o, "gelu out", y, n);
    keep(x->out, x->o, "gelu dinp", dy, n);
}

static void run_xielu(run *x) {
    enum { n = 50000 };
    void *in = input(x, n, -3, 3), *alpha = input(x, 2, -0.5, 0.5), *dout = input(x, n, -1, 1);
    void *y = buffer(x, n), *dy = buffer(x, n), *dalpha = input(x, 2, -1, 1);
    x->o->xielu_forward(y, in, alpha, n);
    x->o->xielu_backward(dy, dalpha, dout, in, alpha, n);
    keep(x->out, x->o, "xielu out", y, n);
    keep(x->out, x->o, "xielu dinp", dy, n);
    keep(x->out, x->o, "xielu dalpha", dalpha, 2);
}

static void run_elementwise(run *x) {
    enum { n = 50000 };
    void *a = input(x, n, -1, 1), *b = input(x, n, -1, 1), *out = buffer(x, n);
    x->o->add(out, a, b, n);
    x->o->accumulate(a, out, n);
    x->o->scale(b, n, 0.3f);
    keep(x->out, x->o, "add", out, n);
    keep(x->out, x->o, "accumulate", a, n);
    keep(x->out, x->o, "scale", b, n);
    keep_scalar(x->out, "sum_squares", x->o->sum_squares(a, n));
}

static void run_cross_entropy(run *x) {
    enum { N = 64, V = 1000 };
    int32_t targets[N];
    indices(x, targets, N, V);
    void *logits = input(x, N * V, -8, 8), *weights = input(x, N, 0, 1);
    void *losses = buffer(x, N), *plain = buffer(x, N);
    x->o->cross_entropy(logits, plain, targets, NULL, N, V);
    x->o->cross_entropy(logits, losses, targets, weights, N, V);
    keep(x->out, x->o, "cross_entropy losses", plain, N);
    keep(x->out, x->o, "cross_entropy losses (weighted)", losses, N);
    keep(x->out, x->o, "cross_entropy dlogits", logits, N * V);
}

static void run_rows(run *x) {
    enum { ROWS = 100, N_OUT = 400, C = 130, N = 200, K = 2, SLOTS = N * K };
    int32_t rows[N_OUT], slot[N * K];
    indices(x, rows, N_OUT, ROWS);
    for (int i = 0; i < N * K; i++) slot[i] = i % 7 == 3 ? -1 : (i * 37) % SLOTS; /* distinct */
    void *inp = input(x, ROWS * C, -1, 1), *g = buffer(x, N_OUT * C);
    x->o->gather_rows(g, inp, rows, N_OUT, C);
    x->o->scatter_add_rows(inp, g, rows, N_OUT, C);
    keep(x->out, x->o, "gather_rows", g, N_OUT * C);
    keep(x->out, x->o, "scatter_add_rows", inp, ROWS * C);
    void *experts = input(x, SLOTS * C, -1, 1), *gates = input(x, N * K, 0, 1);
    void *out = buffer(x, N * C), *dexperts = buffer(x, SLOTS * C), *dgates = buffer(x, N * K);
    x->o->moe_combine_forward(out, experts, gates, slot, N, K, C);
    x->o->moe_combine_backward(dexperts, dgates, out, experts, gates, slot, N, K, C);
    keep(x->out, x->o, "moe_combine out", out, N * C);
    keep(x->out, x->o, "moe_combine dexpert_out", dexperts, SLOTS * C);
    keep(x->out, x->o, "moe_combine dgates", dgates, N * K);
}

/* variant 0: softmax top-2 with capacity 1.0 (drops); 1: sigmoid top-3, dropless */
static void run_moe_routing(run *x) {
    enum { N = 4096, E = 8 }; /* N·E reaches PARALLEL_MIN_ELEMENTS: the token loop is parallel */
    moe_router router = {E, x->variant ? 3 : 2, x->variant, 0.1, 0.01, x->variant ? 0 : 1.0};
    int slots = N * router.top_k;
    size_t ints = 3 * (size_t)slots + 2 * E + 1;
    void *logits = input(x, N * E, -3, 3), *dgates = input(x, slots, -1, 1);
    void *gates = buffer(x, slots), *losses = buffer(x, 2), *dlogits = buffer(x, N * E);
    int32_t *decisions = x->device[x->n_device++] = x->o->alloc(ints * sizeof(int32_t));
    int32_t *choice = decisions, *slot = decisions + slots, *row_token = decisions + 2 * slots;
    int32_t *assigned = decisions + 3 * slots, *expert_offset = assigned + E;
    x->o->moe_route_forward(choice, gates, assigned, slot, row_token, expert_offset, losses,
                            logits, &router, N);
    x->o->moe_route_backward(dlogits, dgates, logits, choice, assigned, &router, N, 0.5);
    int32_t *host = malloc(ints * sizeof(int32_t));
    x->o->copy_to_host(host, decisions, ints * sizeof(int32_t));
    keep_ints(x->out, "moe_route decisions and rows", host, ints);
    free(host);
    keep(x->out, x->o, "moe_route gates", gates, slots);
    keep(x->out, x->o, "moe_route losses", losses, 2);
    keep(x->out, x->o, "moe_route dlogits", dlogits, N * E);
}

static void run_optimizers(run *x) {
    enum { n = 50000 };
    void *p = input(x, n, -1, 1), *q = input(x, n, -1, 1), *g = input(x, n, -1, 1);
    void *m = buffer(x, n), *v = buffer(x, n), *m1 = buffer(x, n), *m2 = buffer(x, n);
    void *u = buffer(x, n);
    for (int step = 1; step <= 3; step++) {
        float bc1 = 1 - powf(0.9f, (float)step), bc2 = 1 - powf(0.95f, (float)step);
        x->o->adamw_update(p, g, m, v, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, bc1, bc2);
        x->o->ademamix_update(q, g, m1, m2, u, n, 1e-3f, 0.9f, 0.95f, 0.999f, 8.0f, 1e-8f, 0.1f,
                              bc1, bc2);
        x->o->scale(g, n, -0.7f);
    }
    keep(x->out, x->o, "adamw param", p, n);
    keep(x->out, x->o, "adamw v", v, n);
    keep(x->out, x->o, "ademamix param", q, n);
    keep(x->out, x->o, "ademamix m2", m2, n);
}

typedef struct op_run {
    const char *name;
    void (*fn)(run *x);
    int variant; /* handed to fn as x->variant */
    double tolerance; /* fp32 vs fp64: max |a - b| / max |b| per output */
} op_run;

static const op_run op_runs[] = {
    {"embedding", run_embedding, 0, 1e-6},
    {"rmsnorm", run_norm, 0, 1e-5},
    {"layernorm", run_norm, 1, 1e-5},
    {"matmul", run_matmul, 0, 1e-5},
    {"matmul_grouped", run_matmul_grouped, 0, 1e-5},
    {"matmul_gelu", run_matmul_gelu, 0, 1e-5},
    {"qk_norm", run_qk_norm, 0, 1e-5},
    {"rope", run_rope, 0, 1e-5},
    {"attention", run_attention, 0, 1e-5},
    {"attention with documents", run_attention, 1, 1e-5},
    {"swiglu, gelu", run_activations, 0, 1e-5},
    {"xielu", run_xielu, 0, 1e-5},
    {"add, accumulate, scale, sum_squares", run_elementwise, 0, 1e-6},
    {"cross_entropy", run_cross_entropy, 0, 1e-5},
    {"gather, scatter_add, moe_combine", run_rows, 0, 1e-6},
    {"moe_route softmax capacity", run_moe_routing, 0, 1e-6},
    {"moe_route sigmoid top-3", run_moe_routing, 1, 1e-6},
    {"adamw, ademamix", run_optimizers, 0, 1e-5},
};
enum { N_RUNS = sizeof op_runs / sizeof *op_runs };

static void run_op(const op_run *op, const ops *o, outputs *out) {
    run x = {o, op->variant, {{0}}, out, {0}, 0};
    random_seed(&x.rng, 99);
    op->fn(&x);
    for (int i = 0; i < x.n_device; i++) o->free(x.device[i]);
}

static void set_threads(int threads) {
    omp_set_num_threads(threads);
    if (openblas_set_num_threads) openblas_set_num_threads(threads);
}

static void check_precision_agreement(void) {
    for (int k = 0; k < N_RUNS; k++) {
        outputs single = {0}, twin = {0};
        run_op(&op_runs[k], ops_cpu(), &single);
        run_op(&op_runs[k], ops_cpu64(), &twin);
        for (int i = 0; i < single.count; i++) {
            double difference = 0, largest = 1e-30;
            for (size_t j = 0; j < single.n[i]; j++) {
                difference = fmax(difference, fabs(single.data[i][j] - twin.data[i][j]));
                largest = fmax(largest, fabs(twin.data[i][j]));
            }
            double relative = difference / largest;
            printf("  fp32 vs fp64 %-32s %.2e\n", single.name[i], relative);
            CHECK_MSG(relative <= op_runs[k].tolerance, "%s: fp32 vs fp64 %.3g", single.name[i],
                      relative);
        }
        outputs_free(&single);
        outputs_free(&twin);
    }
}

static void check_determinism(void) {
    outputs reference[N_RUNS] = {{0}};
    set_threads(1);
    for (int k = 0; k < N_RUNS; k++) run_op(&op_runs[k], ops_cpu(), &reference[k]);
    for (int threads = 2; threads <= 3; threads++) {
        set_threads(threads);
        for (int k = 0; k < N_RUNS; k++) {
            outputs again = {0};
            run_op(&op_runs[k], ops_cpu(), &again);
            for (int i = 0; i < again.count; i++)
                CHECK_MSG(memcmp(again.data[i], reference[k].data[i],
                                 again.n[i] * sizeof(double)) == 0,
                          "%s differs between 1 and %d threads", again.name[i], threads);
            outputs_free(&again);
        }
    }
    for (int k = 0; k < N_RUNS; k++) outputs_free(&reference[k]);
    set_threads(2);
}

/* ------------------------------------------------------------ GELU linear layers */

/* The model calls matmul_gelu_* where it called the plain matmul and gelu ops, and its results on
 * the CPU must not move: same bits as those ops, with and without the biases. */
static void check_matmul_gelu_composition(const ops *o) {
    enum { N = 300, C = 70, OC = 130, OUTPUTS = 5 };
    /* out, pre, dinp_pre (act), dweight, dbias (master): the gradients start from random values */
    const char *what[OUTPUTS] = {"out", "pre", "dinp_pre", "dweight", "dbias"};
    const size_t n[OUTPUTS] = {N * OC, N * OC, N * OC, C * OC, C};
    random_state r;
    random_seed(&r, 17);
    float *host = random_floats(&r, 2 * N * C + OC * C + OC, -1, 1);
    size_t at_b = N * C + OC * C, at_dout = at_b + OC;
    void *inp = upload(o, host, N * C), *w = upload(o, host + N * C, OC * C);
    void *b = upload(o, host + at_b, OC), *dout = upload(o, host + at_dout, N * C);
    void *dhidden = o->alloc((size_t)N * OC * o->act_bytes);
    for (int with_bias = 0; with_bias <= 1; with_bias++) {
        void *fused[OUTPUTS], *plain[OUTPUTS];
        for (int k = 0; k < OUTPUTS; k++) {
            fused[k] = k < 3 ? o->alloc(n[k] * o->act_bytes) : upload_master(o, host, n[k]);
            plain[k] = k < 3 ? o->alloc(n[k] * o->act_bytes) : upload_master(o, host, n[k]);
        }
        const void *bias = with_bias ? b : NULL;
        o->matmul_gelu_forward(fused[0], fused[1], inp, w, bias, N, C, OC);
        o->matmul_forward(plain[1], inp, w, bias, N, C, OC);
        o->gelu_forward(plain[0], plain[1], (size_t)N * OC);
        /* the backward of a layer OC → C (weight w read as [C][OC]) whose input is gelu(pre) */
        o->matmul_gelu_backward(fused[2], fused[3], with_bias ? fused[4] : NULL, dout, fused[0], w,
                                fused[1], N, OC, C);
        o->matmul_backward(dhidden, plain[3], with_bias ? plain[4] : NULL, dout, plain[0], w, N,
                           OC, C);
        o->gelu_backward(plain[2], dhidden, plain[1], (size_t)N * OC);
        for (int k = 0; k < OUTPUTS; k++) {
            size_t bytes = n[k] * (k < 3 ? o->act_bytes : o->master_bytes);
            CHECK_MSG(memcmp(fused[k], plain[k], bytes) == 0,
                      "%s: matmul_gelu %s%s differs from the plain ops", o->name, what[k],
                      with_bias ? " (bias)" : "");
            o->free(fused[k]);
            o->free(plain[k]);
        }
    }
    void *buffers[] = {inp, w, b, dout, dhidden};
    for (size_t k = 0; k < sizeof buffers / sizeof *buffers; k++) o->free(buffers[k]);
    free(host);
}

/* ------------------------------------------------------------ portable GEMM */

static void check_blocked_gemm(void) {
    enum { M = 70, N = 300, K = 270 }; /* partial blocks in every dimension */
    random_state r;
    random_seed(&r, 5);
    float *a = random_floats(&r, M * K, -1, 1), *b = random_floats(&r, K * N, -1, 1);
    float *prior = random_floats(&r, M * N, -1, 1), *c = malloc(M * N * sizeof(float));
    float *c_three = malloc(M * N * sizeof(float));
    double *a64 = malloc(M * K * sizeof(double)), *b64 = malloc(K * N * sizeof(double));
    double *c64 = malloc(M * N * sizeof(double));
    for (int i = 0; i < M * K; i++) a64[i] = a[i];
    for (int i = 0; i < K * N; i++) b64[i] = b[i];
    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++) {
            /* the same buffers read as op(A) [M][K] and op(B) [K][N] */
            int lda = ta ? M : K, ldb = tb ? K : N;
            memcpy(c, prior, M * N * sizeof(float));
            set_threads(1);
            cpu32_gemm_blocked(ta, tb, M, N, K, a, lda, b, ldb, 1, c, N);
            memcpy(c_three, prior, M * N * sizeof(float));
            set_threads(3);
            cpu32_gemm_blocked(ta, tb, M, N, K, a, lda, b, ldb, 1, c_three, N);
            set_threads(2);
            cpu64_gemm_blocked(ta, tb, M, N, K, a64, lda, b64, ldb, 0, c64, N);
            double worst = 0, worst64 = 0;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    long double sum = 0;
                    for (int k = 0; k < K; k++)
                        sum += (long double)(ta ? a[k * lda + i] : a[i * lda + k]) *
                               (tb ? b[j * ldb + k] : b[k * ldb + j]);
                    worst = fmax(worst, fabs(c[i * N + j] - (double)(sum + prior[i * N + j])));
                    worst64 = fmax(worst64, fabs(c64[i * N + j] - (double)sum));
                }
            CHECK_MSG(worst < 2e-5, "blocked gemm fp32 ta=%d tb=%d: error %.3g", ta, tb, worst);
            CHECK_MSG(worst64 < 1e-12, "blocked gemm fp64 ta=%d tb=%d: error %.3g", ta, tb,
                      worst64);
            CHECK_MSG(memcmp(c, c_three, M * N * sizeof(float)) == 0,
                      "blocked gemm ta=%d tb=%d differs between 1 and 3 threads", ta, tb);
        }
    free(a);
    free(b);
    free(prior);
    free(c);
    free(c_three);
    free(a64);
    free(b64);
    free(c64);
}

int main(void) {
    const ops *backends[2] = {ops_cpu(), ops_cpu64()};
    CHECK(strcmp(backends[0]->name, "cpu") == 0 && backends[0]->act_bytes == 4 &&
          backends[0]->master_bytes == 4 && backends[0]->compute_aliases_master == 1);
    CHECK(strcmp(backends[1]->name, "cpu64") == 0 && backends[1]->act_bytes == 8 &&
          backends[1]->master_bytes == 8 && backends[1]->compute_aliases_master == 1);
    for (int i = 0; i < 2; i++) {
        hand_memory(backends[i]);
        hand_matmul(backends[i]);
        hand_matmul_grouped(backends[i]);
        hand_matmul_gelu(backends[i]);
        check_matmul_gelu_composition(backends[i]);
        hand_attention(backends[i]);
        hand_cross_entropy(backends[i]);
        hand_vocab_parallel_cross_entropy(backends[i]);
        hand_small_ops(backends[i]);
        hand_rows(backends[i]);
        hand_optimizers(backends[i], i == 0 ? 2e-6 : 1e-12);
        hand_sum_squares(backends[i]);
    }
    check_precision_agreement();
    check_determinism();
    check_blocked_gemm();
    return check_summary("test_ops_cpu");
}
