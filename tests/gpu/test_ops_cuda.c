/* Every op of the CUDA backend (bf16) against the CPU backend (fp32) on the
 * same random inputs (bf16-representable, fresh seed per run unless
 * CAIRN_TEST_SEED is set). CUDA outputs that an op overwrites are poisoned
 * with 0xFF bytes (NaN) first, so an element never written fails; outputs an
 * op accumulates into (+=) start from the same random values on both sides.
 *
 * Attention is checked on both CUDA implementations, cuDNN's and the flash
 * kernels (kernels/cuda/attention_path.h), and a row per case says which ran;
 * so are the linear layers with GELU, with and without cuBLASLt's GELU
 * epilogues (kernels/cuda/gelu_epilogue.h), and the grouped (routed-expert)
 * linear layers, on the grouped call and per group
 * (kernels/cuda/gemm_grouped_path.h).
 *
 * An element passes when |cuda - cpu| <= tol · max|cpu| + rtol · |cpu|; each
 * row prints the max abs error, the max error relative to max|cpu|, and the
 * tolerances. Exit 0 all passed, 1 any failed, 77 no usable CUDA device. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/random.h"
#include "kernels/cuda/attention_path.h"
#include "kernels/cuda/gemm_grouped_path.h"
#include "kernels/cuda/gelu_epilogue.h"
#include "kernels/ops.h"

/* bf16 output rounding is 2^-9 relative; the default leaves 4x headroom */
#define RTOL_BF16 (1.0 / 128)
#define TOL_BF16 1e-3
#define RTOL_FP32 1e-5
#define TOL_FP32 1e-6

typedef enum { ACT, MASTER } tensor_kind;

typedef struct tensor {
    void *cpu, *gpu;
    size_t n;
    tensor_kind kind;
} tensor;

typedef struct index_buffer {
    int32_t *cpu, *gpu;
} index_buffer;

typedef struct harness {
    const ops *cpu, *gpu;
    random_state rng;
    int passed, failed;
} harness;

static void *host_alloc(size_t bytes) {
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) {
        fprintf(stderr, "test_ops_cuda: out of host memory\n");
        exit(1);
    }
    return p;
}

static float round_bf16(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    bits &= 0xffff0000u;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static tensor tensor_new(harness *h, size_t n, tensor_kind kind) {
    tensor t = {NULL, NULL, n, kind};
    t.cpu = h->cpu->alloc(n * h->cpu->act_bytes);
    t.gpu = h->gpu->alloc(n * (kind == ACT ? h->gpu->act_bytes : h->gpu->master_bytes));
    if (!t.cpu || !t.gpu) {
        fprintf(stderr, "test_ops_cuda: allocation of %zu elements failed\n", n);
        exit(1);
    }
    return t;
}

static void tensor_free(harness *h, tensor *t) {
    h->cpu->free(t->cpu);
    h->gpu->free(t->gpu);
}

/* the same values on both sides (rounded to bf16 for act tensors) */
static void tensor_set(harness *h, tensor *t, float *values) {
    if (t->kind == ACT) {
        for (size_t i = 0; i < t->n; i++) values[i] = round_bf16(values[i]);
        h->cpu->float_to_act(t->cpu, values, t->n);
        h->gpu->float_to_act(t->gpu, values, t->n);
    } else {
        h->cpu->float_to_master(t->cpu, values, t->n);
        h->gpu->float_to_master(t->gpu, values, t->n);
    }
}

/* both sides take the cpu side's values (rounded to bf16 for act tensors) */
static void tensor_set_from_cpu(harness *h, tensor *t) {
    float *values = host_alloc(t->n * sizeof(float));
    if (t->kind == ACT)
        h->cpu->act_to_float(values, t->cpu, t->n);
    else
        h->cpu->master_to_float(values, t->cpu, t->n);
    tensor_set(h, t, values);
    free(values);
}

/* normal(0, scale) + shift */
static void tensor_random(harness *h, tensor *t, double scale, double shift) {
    float *values = host_alloc(t->n * sizeof(float));
    for (size_t i = 0; i < t->n; i++)
        values[i] = (float)(shift + scale * random_normal(&h->rng));
    tensor_set(h, t, values);
    free(values);
}

static tensor tensor_random_new(harness *h, size_t n, tensor_kind kind, double scale) {
    tensor t = tensor_new(h, n, kind);
    tensor_random(h, &t, scale, 0.0);
    return t;
}

/* every CUDA byte 0xFF: NaN in bf16 and fp32 */
static void tensor_poison(harness *h, tensor *t) {
    size_t bytes = t->n * (t->kind == ACT ? h->gpu->act_bytes : h->gpu->master_bytes);
    unsigned char *fill = host_alloc(bytes);
    memset(fill, 0xFF, bytes);
    h->gpu->copy_to_device(t->gpu, fill, bytes);
    free(fill);
}

static index_buffer index_new(harness *h, const int32_t *values, size_t n) {
    index_buffer b;
    b.cpu = h->cpu->alloc(n * sizeof(int32_t));
    b.gpu = h->gpu->alloc(n * sizeof(int32_t));
    if (!b.cpu || !b.gpu) exit(1);
    h->cpu->copy_to_device(b.cpu, values, n * sizeof(int32_t));
    h->gpu->copy_to_device(b.gpu, values, n * sizeof(int32_t));
    return b;
}

static index_buffer index_random_new(harness *h, size_t n, int bound) {
    int32_t *values = host_alloc(n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) values[i] = (int32_t)random_below(&h->rng, (uint64_t)bound);
    index_buffer b = index_new(h, values, n);
    free(values);
    return b;
}

static void index_free(harness *h, index_buffer *b) {
    h->cpu->free(b->cpu);
    h->gpu->free(b->gpu);
}

static void report(harness *h, const char *name, double max_abs, double max_rel, int ok,
                   double tol, double rtol) {
    printf("%-36s %11.3e %11.3e  %-4s  tol %.0e·max + %.0e·|ref|\n", name, max_abs, max_rel,
           ok ? "PASS" : "FAIL", tol, rtol);
    if (ok)
        h->passed++;
    else
        h->failed++;
}

static void check(harness *h, const char *name, const tensor *t, double tol, double rtol) {
    float *ref = host_alloc(t->n * sizeof(float)), *got = host_alloc(t->n * sizeof(float));
    if (t->kind == ACT) {
        h->cpu->act_to_float(ref, t->cpu, t->n);
        h->gpu->act_to_float(got, t->gpu, t->n);
    } else {
        h->cpu->master_to_float(ref, t->cpu, t->n);
        h->gpu->master_to_float(got, t->gpu, t->n);
    }
    double scale = 0.0, max_abs = 0.0;
    for (size_t i = 0; i < t->n; i++) scale = fmax(scale, fabs(ref[i]));
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < t->n; i++) {
        double diff = fabs((double)got[i] - (double)ref[i]);
        if (!(diff <= tol * scale + rtol * fabs(ref[i]))) {
            if (bad++ == 0) first_bad = i;
        }
        if (!(diff <= max_abs)) max_abs = isnan(diff) ? INFINITY : diff;
    }
    report(h, name, max_abs, scale > 0 ? max_abs / scale : max_abs, bad == 0, tol, rtol);
    if (bad)
        printf("    %zu of %zu elements out of tolerance; first [%zu]: cuda %.6g, cpu %.6g\n", bad,
               t->n, first_bad, got[first_bad], ref[first_bad]);
    free(ref);
    free(got);
}

static void check_bf16(harness *h, const char *name, const tensor *t) {
    check(h, name, t, TOL_BF16, RTOL_BF16);
}

static void check_fp32(harness *h, const char *name, const tensor *t) {
    check(h, name, t, TOL_FP32, RTOL_FP32);
}

/* ---- the ops ---- */

static void test_conversions(harness *h) {
    size_t n = 1003;
    tensor master = tensor_random_new(h, n, MASTER, 3.0);
    tensor act = tensor_new(h, n, ACT);
    tensor_poison(h, &act);
    h->cpu->master_to_act(act.cpu, master.cpu, n);
    h->gpu->master_to_act(act.gpu, master.gpu, n);
    check(h, "master_to_act", &act, 0.0, 1.0 / 256);
    tensor copy = tensor_new(h, n, ACT);
    tensor_poison(h, &copy);
    h->cpu->copy_device(copy.cpu, act.cpu, n * h->cpu->act_bytes);
    h->gpu->copy_device(copy.gpu, act.gpu, n * h->gpu->act_bytes);
    check(h, "copy_device", &copy, 0.0, 1.0 / 256);
    h->cpu->zero(copy.cpu, n * h->cpu->act_bytes);
    h->gpu->zero(copy.gpu, n * h->gpu->act_bytes);
    check(h, "zero", &copy, 0.0, 0.0);
    tensor_free(h, &master);
    tensor_free(h, &act);
    tensor_free(h, &copy);
}

static void test_embedding(harness *h, int N, int C, int with_wpe) {
    int V = 50, P = 40;
    char name[64];
    tensor wte = tensor_random_new(h, (size_t)V * C, ACT, 1.0);
    tensor wpe = tensor_random_new(h, (size_t)P * C, ACT, 1.0);
    index_buffer tokens = index_random_new(h, N, V), positions = index_random_new(h, N, P);
    tensor out = tensor_new(h, (size_t)N * C, ACT);
    tensor_poison(h, &out);
    h->cpu->embedding_forward(out.cpu, tokens.cpu, positions.cpu, wte.cpu,
                              with_wpe ? wpe.cpu : NULL, N, C);
    h->gpu->embedding_forward(out.gpu, tokens.gpu, positions.gpu, wte.gpu,
                              with_wpe ? wpe.gpu : NULL, N, C);
    snprintf(name, sizeof name, "embedding_forward C=%d%s", C, with_wpe ? " wpe" : "");
    check_bf16(h, name, &out);

    tensor dout = tensor_random_new(h, (size_t)N * C, ACT, 1.0);
    tensor dwte = tensor_random_new(h, (size_t)V * C, MASTER, 1.0);
    tensor dwpe = tensor_random_new(h, (size_t)P * C, MASTER, 1.0);
    h->cpu->embedding_backward(dwte.cpu, with_wpe ? dwpe.cpu : NULL, dout.cpu, tokens.cpu,
                               positions.cpu, N, C);
    h->gpu->embedding_backward(dwte.gpu, with_wpe ? dwpe.gpu : NULL, dout.gpu, tokens.gpu,
                               positions.gpu, N, C);
    snprintf(name, sizeof name, "embedding_backward dwte C=%d", C);
    check_fp32(h, name, &dwte);
    if (with_wpe) {
        snprintf(name, sizeof name, "embedding_backward dwpe C=%d", C);
        check_fp32(h, name, &dwpe);
    }
    tensor_free(h, &wte);
    tensor_free(h, &wpe);
    tensor_free(h, &out);
    tensor_free(h, &dout);
    tensor_free(h, &dwte);
    tensor_free(h, &dwpe);
    index_free(h, &tokens);
    index_free(h, &positions);
}

static void test_rmsnorm(harness *h, int N, int C) {
    char name[64];
    tensor inp = tensor_random_new(h, (size_t)N * C, ACT, 2.0);
    tensor weight = tensor_new(h, C, ACT);
    tensor_random(h, &weight, 0.2, 1.0);
    tensor out = tensor_new(h, (size_t)N * C, ACT), rstd = tensor_new(h, N, MASTER);
    tensor_poison(h, &out);
    tensor_poison(h, &rstd);
    h->cpu->rmsnorm_forward(out.cpu, rstd.cpu, inp.cpu, weight.cpu, N, C, 1e-5f);
    h->gpu->rmsnorm_forward(out.gpu, rstd.gpu, inp.gpu, weight.gpu, N, C, 1e-5f);
    snprintf(name, sizeof name, "rmsnorm_forward out C=%d", C);
    check_bf16(h, name, &out);
    snprintf(name, sizeof name, "rmsnorm_forward rstd C=%d", C);
    check(h, name, &rstd, 0.0, 1e-5);

    tensor dout = tensor_random_new(h, (size_t)N * C, ACT, 1.0);
    tensor dinp = tensor_random_new(h, (size_t)N * C, ACT, 1.0); /* += */
    tensor dweight = tensor_random_new(h, C, MASTER, 1.0);       /* += */
    h->cpu->rmsnorm_backward(dinp.cpu, dweight.cpu, dout.cpu, inp.cpu, weight.cpu, rstd.cpu, N, C);
    h->gpu->rmsnorm_backward(dinp.gpu, dweight.gpu, dout.gpu, inp.gpu, weight.gpu, rstd.gpu, N, C);
    snprintf(name, sizeof name, "rmsnorm_backward dinp+= C=%d", C);
    check_bf16(h, name, &dinp);
    snprintf(name, sizeof name, "rmsnorm_backward dweight+= C=%d", C);
    check(h, name, &dweight, 1e-5, 1e-4);
    tensor_free(h, &inp);
    tensor_free(h, &weight);
    tensor_free(h, &out);
    tensor_free(h, &rstd);
    tensor_free(h, &dout);
    tensor_free(h, &dinp);
    tensor_free(h, &dweight);
}

static void test_layernorm(harness *h, int N, int C) {
    char name[64];
    tensor inp = tensor_new(h, (size_t)N * C, ACT);
    tensor_random(h, &inp, 2.0, 0.5);
    tensor weight = tensor_new(h, C, ACT), bias = tensor_random_new(h, C, ACT, 0.5);
    tensor_random(h, &weight, 0.2, 1.0);
    tensor out = tensor_new(h, (size_t)N * C, ACT);
    tensor mean = tensor_new(h, N, MASTER), rstd = tensor_new(h, N, MASTER);
    tensor_poison(h, &out);
    tensor_poison(h, &mean);
    tensor_poison(h, &rstd);
    h->cpu->layernorm_forward(out.cpu, mean.cpu, rstd.cpu, inp.cpu, weight.cpu, bias.cpu, N, C,
                              1e-5f);
    h->gpu->layernorm_forward(out.gpu, mean.gpu, rstd.gpu, inp.gpu, weight.gpu, bias.gpu, N, C,
                              1e-5f);
    snprintf(name, sizeof name, "layernorm_forward out C=%d", C);
    check_bf16(h, name, &out);
    snprintf(name, sizeof name, "layernorm_forward mean C=%d", C);
    check(h, name, &mean, 1e-6, 1e-5);
    snprintf(name, sizeof name, "layernorm_forward rstd C=%d", C);
    check(h, name, &rstd, 0.0, 1e-5);

    tensor dout = tensor_random_new(h, (size_t)N * C, ACT, 1.0);
    tensor dinp = tensor_random_new(h, (size_t)N * C, ACT, 1.0);
    tensor dweight = tensor_random_new(h, C, MASTER, 1.0);
    tensor dbias = tensor_random_new(h, C, MASTER, 1.0);
    h->cpu->layernorm_backward(dinp.cpu, dweight.cpu, dbias.cpu, dout.cpu, inp.cpu, weight.cpu,
                               mean.cpu, rstd.cpu, N, C);
    h->gpu->layernorm_backward(dinp.gpu, dweight.gpu, dbias.gpu, dout.gpu, inp.gpu, weight.gpu,
                               mean.gpu, rstd.gpu, N, C);
    snprintf(name, sizeof name, "layernorm_backward dinp+= C=%d", C);
    check_bf16(h, name, &dinp);
    snprintf(name, sizeof name, "layernorm_backward dweight+= C=%d", C);
    check(h, name, &dweight, 1e-5, 1e-4);
    snprintf(name, sizeof name, "layernorm_backward dbias+= C=%d", C);
    check(h, name, &dbias, 1e-5, 1e-4);
    tensor *all[] = {&inp, &weight, &bias, &out, &mean, &rstd, &dout, &dinp, &dweight, &dbias};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(h, all[i]);
}

/* A linear layer's random inputs: inp [N][C], weight [OC][C] and, with a bias, bias [OC] at
 * bias_offset elements into a larger buffer (an unaligned bias takes the separate bias kernel
 * instead of the epilogue); bias_cpu and bias_gpu are NULL without one. */
typedef struct linear_inputs {
    tensor inp, weight, bias_buffer;
    const void *bias_cpu, *bias_gpu;
} linear_inputs;

static linear_inputs linear_inputs_new(harness *h, int N, int C, int OC, int with_bias,
                                       int bias_offset) {
    linear_inputs x = {tensor_random_new(h, (size_t)N * C, ACT, 1.0),
                       tensor_random_new(h, (size_t)OC * C, ACT, 0.05),
                       tensor_random_new(h, (size_t)OC + 8, ACT, 1.0), NULL, NULL};
    if (with_bias) {
        x.bias_cpu = (const char *)x.bias_buffer.cpu + bias_offset * h->cpu->act_bytes;
        x.bias_gpu = (const char *)x.bias_buffer.gpu + bias_offset * h->gpu->act_bytes;
    }
    return x;
}

static void linear_inputs_free(harness *h, linear_inputs *x) {
    tensor_free(h, &x->inp);
    tensor_free(h, &x->weight);
    tensor_free(h, &x->bias_buffer);
}

/* A linear layer's weight gradients, accumulated in fp32; dbias NULL when it has no bias */
static void check_weight_gradients(harness *h, const char *op, const char *shape,
                                   const tensor *dweight, const tensor *dbias) {
    char name[112];
    snprintf(name, sizeof name, "%s dweight+= %s", op, shape);
    check(h, name, dweight, 1e-5, 1e-4);
    if (dbias) {
        snprintf(name, sizeof name, "%s dbias+= %s", op, shape);
        check(h, name, dbias, 1e-5, 1e-4);
    }
}

static void test_matmul(harness *h, int N, int C, int OC, int with_bias, int bias_offset,
                        int with_dinp) {
    char name[80], shape[48];
    snprintf(shape, sizeof shape, "%dx%dx%d%s%s", N, C, OC, with_bias ? " bias" : "",
             bias_offset ? "@1" : "");
    linear_inputs x = linear_inputs_new(h, N, C, OC, with_bias, bias_offset);
    tensor out = tensor_new(h, (size_t)N * OC, ACT);
    tensor_poison(h, &out);
    h->cpu->matmul_forward(out.cpu, x.inp.cpu, x.weight.cpu, x.bias_cpu, N, C, OC);
    h->gpu->matmul_forward(out.gpu, x.inp.gpu, x.weight.gpu, x.bias_gpu, N, C, OC);
    snprintf(name, sizeof name, "matmul_forward %s", shape);
    check_bf16(h, name, &out);

    tensor dout = tensor_random_new(h, (size_t)N * OC, ACT, 1.0);
    tensor dinp = tensor_new(h, (size_t)N * C, ACT);
    tensor dweight = tensor_random_new(h, (size_t)OC * C, MASTER, 1.0);
    tensor dbias = tensor_random_new(h, OC, MASTER, 1.0);
    tensor_poison(h, &dinp);
    h->cpu->matmul_backward(with_dinp ? dinp.cpu : NULL, dweight.cpu,
                            with_bias ? dbias.cpu : NULL, dout.cpu, x.inp.cpu,
                            x.weight.cpu, N, C, OC);
    h->gpu->matmul_backward(with_dinp ? dinp.gpu : NULL, dweight.gpu,
                            with_bias ? dbias.gpu : NULL, dout.gpu, x.inp.gpu,
                            x.weight.gpu, N, C, OC);
    if (with_dinp) {
        snprintf(name, sizeof name, "matmul_backward dinp %s", shape);
        check_bf16(h, name, &dinp);
    }
    check_weight_gradients(h, "matmul_backward", shape, &dweight, with_bias ? &dbias : NULL);
    linear_inputs_free(h, &x);
    tensor *all[] = {&out, &dout, &dinp, &dweight, &dbias};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(h, all[i]);
}

/* Token-row counts that share a cached GEMM plan (kernels/cuda/gemm.cu caches rows by bucket):
 * each call gives the plan other exact rows, as routed experts do, in n (forward, dinp) and in k
 * (dweight); tiny counts and the bucket's own size too. */
static void test_matmul_row_counts(harness *h) {
    static const int rows[] = {1000, 900, 1024, 777, 1000, 5, 64, 63};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        test_matmul(h, rows[i], 128, 192, i % 2, 0, 1);
}

/* Grouped linear layers (routed experts) of `groups` groups (every third one empty, the others
 * of max_rows/2 to max_rows rows), weights `gap` elements apart beyond [OC][C], on the path
 * asked for; a row checks which path ran the forward and dinp products. */
static void test_matmul_grouped(harness *h, cuda_grouped_gemm_path path, int groups, int max_rows,
                                int C, int OC, int gap, cuda_grouped_gemm_path expected) {
    char name[112], shape[80];
    int32_t *offsets = host_alloc((size_t)(groups + 1) * sizeof(int32_t));
    for (int g = 0; g < groups; g++) {
        int half = max_rows / 2;
        int rows = g % 3 == 1 ? 0 : half + (int)random_below(&h->rng, (uint64_t)half + 1);
        offsets[g + 1] = offsets[g] + rows;
    }
    int N = offsets[groups];
    size_t stride = (size_t)OC * C + gap;
    snprintf(shape, sizeof shape, "E%d N%d %dx%d%s %s", groups, N, C, OC, gap ? " gap" : "",
             cuda_grouped_gemm_path_name(path));
    cuda_grouped_gemm_use(path);
    tensor inp = tensor_random_new(h, (size_t)N * C, ACT, 1.0);
    tensor weights = tensor_random_new(h, groups * stride, ACT, 0.05);
    tensor out = tensor_new(h, (size_t)N * OC, ACT);
    tensor_poison(h, &out);
    h->cpu->matmul_grouped_forward(out.cpu, inp.cpu, weights.cpu, stride, offsets, groups, C, OC);
    h->gpu->matmul_grouped_forward(out.gpu, inp.gpu, weights.gpu, stride, offsets, groups, C, OC);
    cuda_grouped_gemm_path ran_forward = cuda_grouped_gemm_ran();
    snprintf(name, sizeof name, "matmul_grouped_forward %s", shape);
    check_bf16(h, name, &out);

    tensor dout = tensor_random_new(h, (size_t)N * OC, ACT, 1.0);
    tensor dinp = tensor_new(h, (size_t)N * C, ACT);
    tensor dweights = tensor_random_new(h, groups * stride, MASTER, 1.0);
    tensor_poison(h, &dinp);
    h->cpu->matmul_grouped_backward(dinp.cpu, dweights.cpu, dout.cpu, inp.cpu, weights.cpu, stride,
                                    offsets, groups, C, OC);
    h->gpu->matmul_grouped_backward(dinp.gpu, dweights.gpu, dout.gpu, inp.gpu, weights.gpu, stride,
                                    offsets, groups, C, OC);
    cuda_grouped_gemm_path ran_backward = cuda_grouped_gemm_ran();
    snprintf(name, sizeof name, "matmul_grouped_backward dinp %s", shape);
    check_bf16(h, name, &dinp);
    snprintf(name, sizeof name, "matmul_grouped_backward dw+= %s", shape);
    check(h, name, &dweights, 1e-5, 1e-4);
    snprintf(name, sizeof name, "matmul_grouped ran %s/%s %s",
             cuda_grouped_gemm_path_name(ran_forward), cuda_grouped_gemm_path_name(ran_backward),
             shape);
    report(h, name, 0.0, 0.0, ran_forward == expected && ran_backward == expected, 0.0, 0.0);
    free(offsets);
    tensor *all[] = {&inp, &weights, &out, &dout, &dinp, &dweights};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(h, all[i]);
    cuda_grouped_gemm_use(CUDA_GROUPED_GEMM_AUTO);
}

/* The row saying whether a matmul_gelu call ran the GELU epilogue as `expected` */
static void check_gelu_epilogue_ran(harness *h, int backward, int expected, const char *shape) {
    char name[112];
    int ran = cuda_gelu_epilogue_ran(backward);
    snprintf(name, sizeof name, "matmul_gelu_%s ran %s %s", backward ? "backward" : "forward",
             ran ? "epilogue" : "kernels", shape);
    report(h, name, 0.0, 0.0, ran == expected, 0.0, 0.0);
}

/* matmul_gelu_forward and matmul_gelu_backward against the cpu's plain ops, as an MLP d → F → d:
 * the forward of its up projection, the backward of its down projection. bias_offset as in
 * linear_inputs_new; allow: the GELU epilogues allowed. A row per direction checks that the
 * epilogue ran where kernels/cuda/gemm.cu tries it (allowed, F a multiple of 8, the bias
 * aligned: the buffers from alloc are) and not elsewhere; cuBLASLt refusing a shape counts as a
 * failure, so that a run on a GPU tells whether the epilogues really run there. */
static void test_matmul_gelu(harness *h, int N, int d, int F, int with_bias, int bias_offset,
                             int allow) {
    char name[112], shape[64];
    snprintf(shape, sizeof shape, "%dx%dx%d%s%s%s", N, d, F, with_bias ? " bias" : "",
             bias_offset ? "@1" : "", allow ? "" : " no-epilogue");
    cuda_gelu_epilogue_allow(allow);
    linear_inputs up = linear_inputs_new(h, N, d, F, with_bias, bias_offset);
    tensor hidden = tensor_new(h, (size_t)N * F, ACT), pre = tensor_new(h, (size_t)N * F, ACT);
    tensor_poison(h, &hidden);
    tensor_poison(h, &pre);
    h->cpu->matmul_gelu_forward(hidden.cpu, pre.cpu, up.inp.cpu, up.weight.cpu, up.bias_cpu, N, d,
                                F);
    h->gpu->matmul_gelu_forward(hidden.gpu, pre.gpu, up.inp.gpu, up.weight.gpu, up.bias_gpu, N, d,
                                F);
    check_gelu_epilogue_ran(h, 0, allow && F % 8 == 0 && !(with_bias && bias_offset), shape);
    snprintf(name, sizeof name, "matmul_gelu_forward out %s", shape);
    check_bf16(h, name, &hidden);
    snprintf(name, sizeof name, "matmul_gelu_forward pre %s", shape);
    check_bf16(h, name, &pre);

    /* the backward of both sides reads the same pre-activations (the cpu ones) */
    tensor_set_from_cpu(h, &hidden);
    tensor_set_from_cpu(h, &pre);
    tensor down = tensor_random_new(h, (size_t)d * F, ACT, 0.05);
    tensor dout = tensor_random_new(h, (size_t)N * d, ACT, 1.0);
    tensor dpre = tensor_new(h, (size_t)N * F, ACT);
    tensor ddown = tensor_random_new(h, (size_t)d * F, MASTER, 1.0);
    tensor ddown_bias = tensor_random_new(h, d, MASTER, 1.0);
    tensor_poison(h, &dpre);
    h->cpu->matmul_gelu_backward(dpre.cpu, ddown.cpu, with_bias ? ddown_bias.cpu : NULL, dout.cpu,
                                 hidden.cpu, down.cpu, pre.cpu, N, F, d);
    h->gpu->matmul_gelu_backward(dpre.gpu, ddown.gpu, with_bias ? ddown_bias.gpu : NULL, dout.gpu,
                                 hidden.gpu, down.gpu, pre.gpu, N, F, d);
    check_gelu_epilogue_ran(h, 1, allow && F % 8 == 0, shape);
    snprintf(name, sizeof name, "matmul_gelu_backward dinp_pre %s", shape);
    check_bf16(h, name, &dpre);
    check_weight_gradients(h, "matmul_gelu_backward", shape, &ddown,
                           with_bias ? &ddown_bias : NULL);
    cuda_gelu_epilogue_allow(1);
    linear_inputs_free(h, &up);
    tensor *all[] = {&hidden, &pre, &down, &dout, &dpre, &ddown, &ddown_bias};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(h, all[i]);
}

/* Routed experts' row counts (see test_matmul_row_counts) through the GELU epilogues' plans */
static void test_matmul_gelu_row_counts(harness *h) {
    static const int rows[] = {1000, 900, 1024, 777, 5, 64};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        test_matmul_gelu(h, rows[i], 128, 192, i % 2, 0, 1);
}

/* cuBLASLt's GELU is the tanh approximation, as the cpu's: through an identity weight, the
 * epilogue sees pre-activations in [-3.25, -2.75] (forward) and [-3.75, -3.25] (backward), where
 * erf's GELU differs from tanh's by 6-20 % and its derivative by 8-30 %; every element must be
 * within 1/32 of the cpu's (bf16 rounding is 1/256). */
static void test_gelu_epilogue_tanh(harness *h) {
    enum { N = 64, C = 64 };
    size_t n = (size_t)N * C;
    float *values = host_alloc(n * sizeof(float));
    tensor identity = tensor_new(h, (size_t)C * C, ACT);
    for (size_t i = 0; i < (size_t)C * C; i++) values[i] = i / C == i % C ? 1.0f : 0.0f;
    tensor_set(h, &identity, values);
    tensor inp = tensor_new(h, n, ACT), out = tensor_new(h, n, ACT), pre = tensor_new(h, n, ACT);
    for (size_t i = 0; i < n; i++) values[i] = -3.25f + 0.5f * (float)i / (float)(n - 1);
    tensor_set(h, &inp, values);
    tensor_poison(h, &out);
    tensor_poison(h, &pre);
    h->cpu->matmul_gelu_forward(out.cpu, pre.cpu, inp.cpu, identity.cpu, NULL, N, C, C);
    h->gpu->matmul_gelu_forward(out.gpu, pre.gpu, inp.gpu, identity.gpu, NULL, N, C, C);
    check_gelu_epilogue_ran(h, 0, 1, "tanh tail");
    check(h, "matmul_gelu_forward tanh tail", &out, 0.0, 1.0 / 32);

    /* dout = 1 through the identity: dinp_pre = gelu'(pre) */
    for (size_t i = 0; i < n; i++) values[i] = -3.75f + 0.5f * (float)i / (float)(n - 1);
    tensor_set(h, &pre, values);
    for (size_t i = 0; i < n; i++) values[i] = 1.0f;
    tensor dout = tensor_new(h, n, ACT), dpre = tensor_new(h, n, ACT);
    tensor_set(h, &dout, values);
    tensor dweight = tensor_random_new(h, (size_t)C * C, MASTER, 1.0);
    tensor_poison(h, &dpre);
    h->cpu->matmul_gelu_backward(dpre.cpu, dweight.cpu, NULL, dout.cpu, inp.cpu, identity.cpu,
                                 pre.cpu, N, C, C);
    h->gpu->matmul_gelu_backward(dpre.gpu, dweight.gpu, NULL, dout.gpu, inp.gpu, identity.gpu,
                                 pre.gpu, N, C, C);
    check_gelu_epilogue_ran(h, 1, 1, "tanh tail");
    check(h, "matmul_gelu_backward tanh tail", &dpre, 0.0, 1.0 / 32);
    free(values);
    tensor *all[] = {&identity, &inp, &out, &pre, &dout, &dpre, &dweight};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(h, all[i]);
}

static void test_qk_norm(harness *h, int N, int H, int KV, int hd) {
    size_t n = (size_t)N * (H + 2 * KV) * hd;
    tensor inp = tensor_random_new(h, n, ACT, 2.0);
    tensor q_weight = tensor_new(h, hd, ACT), k_weight = tensor_new(h, hd, ACT);
    tensor_random(h, &q_weight, 0.2, 1.0);
    tensor_random(h, &k_weight, 0.2, 1.0);
    tensor out = tensor_new(h, n, ACT), rstd = tensor_new(h, (size_t)N * (H + KV), MASTER);
    tensor_poison(h, &out);
    tensor_poison(h, &rstd);
    h->cpu->qk_norm_forward(out.cpu, rstd.cpu, inp.cpu, q_weight.cpu, k_weight.cpu, N, H, KV, hd,
                            1e-6f);
    h->gpu->qk_norm_forward(out.gpu, rstd.gpu, inp.gpu, q_weight.gpu, k_weight.gpu, N, H, KV, hd,
                            1e-6f);
    check_bf16(h, "qk_norm_forward out", &out);
    check(h, "qk_norm_forward rstd", &rstd, 0.0, 1e-5);

    tensor dout = tensor_random_new(h, n, ACT, 1.0), dinp = tensor_new(h, n, ACT);
    tensor dq_weight = tensor_random_new(h, hd, MASTER, 1.0);
    tensor dk_weight = tensor_random_new(h, hd, MASTER, 1.0);
    tensor_poison(h, &dinp);
    h->cpu->qk_norm_backward(dinp.cpu, dq_weight.cpu, dk_weight.cpu, dout.cpu, inp.cpu,
                             q_weight.cpu, k_weight.cpu, rstd.cpu, N, H, KV, hd);
    h->gpu->qk_norm_backward(dinp.gpu, dq_weight.gpu, dk_weight.gpu, dout.gpu, inp.gpu,
                             q_weight.gpu, k_weight.gpu, rstd.gpu, N, H, KV, hd);
    check_bf16(h, "qk_norm_backward dinp", &dinp);
    check(h, "qk_norm_backward dq_weight+=", &dq_weight, 1e-5, 1e-4);
    check(h, "qk_norm_backward dk_weight+=", &dk_weight, 1e-5, 1e-4);
    tensor *all[] = {&inp, &q_weight, &k_weight, &out, &rstd, &dout, &dinp, &dq_weight,
                     &dk_weight};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(h, all[i]);
}

static void test_rope(harness *h, int N, int H, int KV, int hd) {
    size_t n = (size_t)N * (H + 2 * KV) * hd;
    index_buffer positions = index_random_new(h, N, 8192);
    tensor qkv = tensor_random_new(h, n, ACT, 1.0);
    h->cpu->rope_forward(qkv.cpu, positions.cpu, N, H, KV, hd, 500000.0f);
    h->gpu->rope_forward(qkv.gpu, positions.gpu, N, H, KV, hd, 500000.0f);
    check_bf16(h, "rope_forward (in place)", &qkv);
    tensor dqkv = tensor_random_new(h, n, ACT, 1.0);
    h->cpu->rope_backward(dqkv.cpu, positions.cpu, N, H, KV, hd, 10000.0f);
    h->gpu->rope_backward(dqkv.gpu, positions.gpu, N, H, KV, hd, 10000.0f);
    check_bf16(h, "rope_backward (in place)", &dqkv);
    tensor_free(h, &qkv);
    tensor_free(h, &dqkv);
    index_free(h, &positions);
}

/* Random documents per sequence (mean length `doc_length`): doc_start[t] =
 * first position of t's document. */
static int32_t *random_doc_starts(harness *h, int B, int T, int doc_length) {
    int32_t *starts = host_alloc((size_t)B * T * sizeof(int32_t));
    for (int b = 0; b < B; b++) {
        int start = 0;
        for (int t = 0; t < T; t++) {
            if (t > 0 && random_below(&h->rng, (uint64_t)doc_length) == 0) start = t;
            starts[(size_t)b * T + t] = start;
        }
    }
    return starts;
}

/* doc_length: mean document length of the doc_start windows, 0 for none. path: the CUDA
 * attention path asked for; a row checks that the expected implementation ran both passes
 * (cuDNN unless flash is asked for, or auto with documents: cuDNN's ragged path for documents
 * runs only when asked for until it has been measured) */
static void test_attention(harness *h, cuda_attention_path path, int B, int T, int H, int KV,
                           int hd, int doc_length) {
    char name[112], shape[80], docs_text[24] = "";
    int with_docs = doc_length > 0;
    if (with_docs) snprintf(docs_text, sizeof docs_text, " docs~%d", doc_length);
    snprintf(shape, sizeof shape, "B%d T%d H%d KV%d hd%d%s %s", B, T, H, KV, hd, docs_text,
             cuda_attention_path_name(path));
    cuda_attention_path expected =
        path == CUDA_ATTENTION_FLASH || (with_docs && path == CUDA_ATTENTION_AUTO)
            ? CUDA_ATTENTION_FLASH
            : CUDA_ATTENTION_CUDNN;
#ifndef CAIRN_HAVE_CUDNN_ATTENTION
    if (expected == CUDA_ATTENTION_CUDNN) {
        printf("attention %s: skipped: built without cuDNN attention\n", shape);
        return;
    }
#endif
    cuda_attention_use(path);
    size_t N = (size_t)B * T, n_qkv = N * (H + 2 * KV) * hd, n_out = N * H * hd;
    int32_t *doc_start = random_doc_starts(h, B, T, with_docs ? doc_length : 1);
    int32_t *first_tokens = host_alloc((N + 1) * sizeof(int32_t));
    int count = attention_documents_starts(doc_start, B, T, first_tokens);
    index_buffer doc_starts = index_new(h, doc_start, N);
    index_buffer doc_firsts = index_new(h, first_tokens, (size_t)count + 1);
    attention_documents cpu_documents = {doc_starts.cpu, doc_firsts.cpu, count};
    attention_documents gpu_documents = {doc_starts.gpu, doc_firsts.gpu, count};
    const attention_documents *docs_cpu = with_docs ? &cpu_documents : NULL;
    const attention_documents *docs_gpu = with_docs ? &gpu_documents : NULL;
    tensor qkv = tensor_random_new(h, n_qkv, ACT, 1.0);
    tensor out = tensor_new(h, n_out, ACT), lse = tensor_new(h, (size_t)B * H * T, MASTER);
    tensor_poison(h, &out);
    tensor_poison(h, &lse);
    h->cpu->attention_forward(out.cpu, lse.cpu, qkv.cpu, docs_cpu, B, T, H, KV, hd);
    h->gpu->attention_forward(out.gpu, lse.gpu, qkv.gpu, docs_gpu, B, T, H, KV, hd);
    cuda_attention_path ran_forward = cuda_attention_ran(0);
    snprintf(name, sizeof name, "attention_forward out %s", shape);
    check(h, name, &out, 4e-3, 1.0 / 64);
    snprintf(name, sizeof name, "attention_forward lse %s", shape);
    check(h, name, &lse, 1e-4, 1e-4);

    /* the backward of both sides starts from the same forward results (the cpu ones) */
    tensor_set_from_cpu(h, &out);
    tensor_set_from_cpu(h, &lse);

    tensor dout = tensor_random_new(h, n_out, ACT, 1.0), dqkv = tensor_new(h, n_qkv, ACT);
    tensor_poison(h, &dqkv);
    h->cpu->attention_backward(dqkv.cpu, dout.cpu, qkv.cpu, out.cpu, lse.cpu, docs_cpu, B, T, H,
                               KV, hd);
    h->gpu->attention_backward(dqkv.gpu, dout.gpu, qkv.gpu, out.gpu, lse.gpu, docs_gpu, B, T, H,
                               KV, hd);
    cuda_attention_path ran_backward = cuda_attention_ran(1);
    snprintf(name, sizeof name, "attention_backward dqkv %s", shape);
    check(h, name, &dqkv, 1e-2, 1.0 / 32);
    snprintf(name, sizeof name, "attention ran %s/%s %s", cuda_attention_path_name(ran_forward),
             cuda_attention_path_name(ran_backward), shape);
    report(h, name, 0.0, 0.0, ran_forward == expected && ran_backward == expected, 0.0, 0.0);

    /* a second run is bit-identical: the flash kernels use no atomics, and at these sizes cuDNN
     * runs its deterministic backward */
    size_t bytes = n_qkv * h->gpu->act_bytes;
    unsigned char *first = host_alloc(bytes), *second = host_alloc(bytes);
    h->gpu->copy_to_host(first, dqkv.gpu, bytes);
    tensor_poison(h, &dqkv);
    h->gpu->attention_backward(dqkv.gpu, dout.gpu, qkv.gpu, out.gpu, lse.gpu, docs_gpu, B, T, H,
                               KV, hd);
    h->gpu->copy_to_host(second, dqkv.gpu, bytes);
    snprintf(name, sizeof name, "attention_backward repeat %s", shape);
    report(h, name, 0.0, 0.0, memcmp(first, second, bytes) == 0, 0.0, 0.0);
    free(first);
    free(second);
    free(doc_start);
    free(first_tokens);
    index_free(h, &doc_starts);
    index_free(h, &doc_firsts);
    tensor *all[] = {&qkv, &out, &lse, &dout, &dqkv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(h, all[i]);
    cuda_attention_use(CUDA_ATTENTION_AUTO);
}

/* causal without documents on both implementations, each asked for */
static void test_attention_paths(harness *h, int B, int T, int H, int KV, int hd) {
    test_attention(h, CUDA_ATTENTION_FLASH, B, T, H, KV, hd, 0);
    test_attention(h, CUDA_ATTENTION_CUDNN, B, T, H, KV, hd, 0);
}

static void test_swiglu(harness *h, int N, int F) {
    char name[64];
    tensor inp = tensor_random_new(h, (size_t)N * 2 * F, ACT, 2.0);
    tensor out = tensor_new(h, (size_t)N * F, ACT);
    tensor_poison(h, &out);
    h->cpu->swiglu_forward(out.cpu, inp.cpu, N, F);
    h->gpu->swiglu_forward(out.gpu, inp.gpu, N, F);
    snprintf(name, sizeof name, "swiglu_forward F=%d", F);
    check_bf16(h, name, &out);
    tensor dout = tensor_random_new(h, (size_t)N * F, ACT, 1.0);
    tensor dinp = tensor_new(h, (size_t)N * 2 * F, ACT);
    tensor_poison(h, &dinp);
    h->cpu->swiglu_backward(dinp.cpu, dout.cpu, inp.cpu, N, F);
    h->gpu->swiglu_backward(dinp.gpu, dout.gpu, inp.gpu, N, F);
    snprintf(name, sizeof name, "swiglu_backward F=%d", F);
    check_bf16(h, name, &dinp);
    tensor *all[] = {&inp, &out, &dout, &dinp};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(h, all[i]);
}

static void test_gelu_xielu(harness *h, size_t n) {
    char name[64];
    tensor inp = tensor_random_new(h, n, ACT, 2.0), out = tensor_new(h, n, ACT);
    tensor dout = tensor_random_new(h, n, ACT, 1.0), dinp = tensor_new(h, n, ACT);
    tensor_poison(h, &out);
    h->cpu->gelu_forward(out.cpu, inp.cpu, n);
    h->gpu->gelu_forward(out.gpu, inp.gpu, n);
    snprintf(name, sizeof name, "gelu_forward n=%zu", n);
    check_bf16(h, name, &out);
    tensor_poison(h, &dinp);
    h->cpu->gelu_backward(dinp.cpu, dout.cpu, inp.cpu, n);
    h->gpu->gelu_backward(dinp.gpu, dout.gpu, inp.gpu, n);
    snprintf(name, sizeof name, "gelu_backward n=%zu", n);
    check_bf16(h, name, &dinp);

    tensor alpha = tensor_new(h, 2, ACT);
    float alpha_values[2] = {(float)log(expm1(0.8)), (float)log(expm1(0.8 - 0.5))};
    tensor_set(h, &alpha, alpha_values);
    tensor_poison(h, &out);
    h->cpu->xielu_forward(out.cpu, inp.cpu, alpha.cpu, n);
    h->gpu->xielu_forward(out.gpu, inp.gpu, alpha.gpu, n);
    snprintf(name, sizeof name, "xielu_forward n=%zu", n);
    check_bf16(h, name, &out);
    tensor dalpha = tensor_random_new(h, 2, MASTER, 1.0);
    tensor_poison(h, &dinp);
    h->cpu->xielu_backward(dinp.cpu, dalpha.cpu, dout.cpu, inp.cpu, alpha.cpu, n);
    h->gpu->xielu_backward(dinp.gpu, dalpha.gpu, dout.gpu, inp.gpu, alpha.gpu, n);
    snprintf(name, sizeof name, "xielu_backward dinp n=%zu", n);
    check_bf16(h, name, &dinp);
    snprintf(name, sizeof name, "xielu_backward dalpha+= n=%zu", n);
    check(h, name, &dalpha, 1e-5, 1e-4);
    tensor *all[] = {&inp, &out, &dout, &dinp, &alpha, &dalpha};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(h, all[i]);
}

static void test_add(harness *h, size_t n) {
    char name[64];
    tensor a = tensor_random_new(h, n, ACT, 1.0), b = tensor_random_new(h, n, ACT, 1.0);
    tensor out = tensor_new(h, n, ACT);
    tensor_poison(h, &out);
    h->cpu->add(out.cpu, a.cpu, b.cpu, n);
    h->gpu->add(out.gpu, a.gpu, b.gpu, n);
    snprintf(name, sizeof name, "add n=%zu", n);
    check_bf16(h, name, &out);
    h->cpu->accumulate(a.cpu, b.cpu, n);
    h->gpu->accumulate(a.gpu, b.gpu, n);
    snprintf(name, sizeof name, "accumulate n=%zu", n);
    check_bf16(h, name, &a);
    tensor_free(h, &a);
    tensor_free(h, &b);
    tensor_free(h, &out);
}

/* The three vocabulary-parallel passes on one rank's slice (every 3rd target held by another
 * rank: -1), CPU against GPU, with the reductions between passes trivially local. */
static void test_vocab_parallel_cross_entropy(harness *h, int N, int V) {
    char name[64];
    tensor logits = tensor_random_new(h, (size_t)N * V, ACT, 2.0);
    tensor losses = tensor_new(h, N, MASTER), weights = tensor_new(h, N, MASTER);
    tensor row_max = tensor_new(h, N, MASTER), stats = tensor_new(h, 2 * (size_t)N, MASTER);
    float *w = host_alloc(N * sizeof(float));
    int32_t *t = host_alloc(N * sizeof(int32_t));
    for (int n = 0; n < N; n++) {
        w[n] = (float)random_uniform(&h->rng);
        t[n] = n % 3 == 2 ? -1 : (int32_t)random_below(&h->rng, V);
    }
    tensor_set(h, &weights, w);
    index_buffer targets = index_new(h, t, N);
    free(w);
    free(t);
    tensor_poison(h, &losses);
    tensor_poison(h, &row_max);
    tensor_poison(h, &stats);
    h->cpu->vocab_parallel_max(row_max.cpu, logits.cpu, N, V);
    h->gpu->vocab_parallel_max(row_max.gpu, logits.gpu, N, V);
    snprintf(name, sizeof name, "vocab_parallel_max V=%d", V);
    check(h, name, &row_max, 0, 0);
    h->cpu->vocab_parallel_sum_exp(stats.cpu, logits.cpu, row_max.cpu, targets.cpu, N, V);
    h->gpu->vocab_parallel_sum_exp(stats.gpu, logits.gpu, row_max.gpu, targets.gpu, N, V);
    snprintf(name, sizeof name, "vocab_parallel_sum_exp V=%d", V);
    check(h, name, &stats, 1e-5, 1e-5);
    h->cpu->vocab_parallel_loss(logits.cpu, losses.cpu, row_max.cpu, stats.cpu, targets.cpu,
                                weights.cpu, N, V);
    h->gpu->vocab_parallel_loss(logits.gpu, losses.gpu, row_max.gpu, stats.gpu, targets.gpu,
                                weights.gpu, N, V);
    snprintf(name, sizeof name, "vocab_parallel_loss V=%d", V);
    check(h, name, &losses, 1e-5, 1e-5);
    snprintf(name, sizeof name, "vocab_parallel dlogits V=%d", V);
    check_bf16(h, name, &logits);
    tensor_free(h, &logits);
    tensor_free(h, &losses);
    tensor_free(h, &weights);
    tensor_free(h, &row_max);
    tensor_free(h, &stats);
    index_free(h, &targets);
}

static void test_cross_entropy(harness *h, int N, int V, int with_weights) {
    char name[64];
    tensor logits = tensor_random_new(h, (size_t)N * V, ACT, 2.0);
    tensor losses = tensor_new(h, N, MASTER), weights = tensor_new(h, N, MASTER);
    float *w = host_alloc(N * sizeof(float));
    for (int n = 0; n < N; n++) w[n] = n % 5 == 0 ? 0.0f : (float)random_uniform(&h->rng);
    tensor_set(h, &weights, w);
    free(w);
    index_buffer targets = index_random_new(h, N, V);
    tensor_poison(h, &losses);
    h->cpu->cross_entropy(logits.cpu, losses.cpu, targets.cpu, with_weights ? weights.cpu : NULL,
                          N, V);
    h->gpu->cross_entropy(logits.gpu, losses.gpu, targets.gpu, with_weights ? weights.gpu : NULL,
                          N, V);
    snprintf(name, sizeof name, "cross_entropy losses V=%d%s", V, with_weights ? " w" : "");
    check(h, name, &losses, 1e-5, 1e-5);
    if (with_weights) {
        snprintf(name, sizeof name, "cross_entropy dlogits V=%d", V);
        check_bf16(h, name, &logits);
    }
    tensor_free(h, &logits);
    tensor_free(h, &losses);
    tensor_free(h, &weights);
    index_free(h, &targets);
}

static void test_rows(harness *h, int n_rows, int C) {
    char name[64];
    int n = 100;
    tensor inp = tensor_random_new(h, (size_t)n_rows * C, ACT, 1.0);
    index_buffer rows = index_random_new(h, n, n_rows);
    tensor gathered = tensor_new(h, (size_t)n * C, ACT);
    tensor_poison(h, &gathered);
    h->cpu->gather_rows(gathered.cpu, inp.cpu, rows.cpu, n, C);
    h->gpu->gather_rows(gathered.gpu, inp.gpu, rows.gpu, n, C);
    snprintf(name, sizeof name, "gather_rows C=%d", C);
    check(h, name, &gathered, 0.0, 0.0);
    h->cpu->scatter_add_rows(inp.cpu, gathered.cpu, rows.cpu, n, C);
    h->gpu->scatter_add_rows(inp.gpu, gathered.gpu, rows.gpu, n, C);
    snprintf(name, sizeof name, "scatter_add_rows+= C=%d", C);
    check(h, name, &inp, TOL_BF16, 1.0 / 64); /* each atomic add rounds to bf16 */
    tensor_free(h, &inp);
    tensor_free(h, &gathered);
    index_free(h, &rows);
}

static void test_moe_combine(harness *h, int N, int k, int C) {
    int slots = N * k;
    int32_t *slot = host_alloc((size_t)slots * sizeof(int32_t));
    for (int i = 0; i < slots; i++) slot[i] = i;
    for (int i = slots - 1; i > 0; i--) { /* shuffle, then drop some */
        int j = (int)random_below(&h->rng, (uint64_t)i + 1), swap = slot[i];
        slot[i] = slot[j];
        slot[j] = swap;
    }
    for (int i = 0; i < slots; i++)
        if (random_below(&h->rng, 6) == 0) slot[i] = -1;
    index_buffer slot_buffer = index_new(h, slot, slots);
    free(slot);
    tensor expert_out = tensor_random_new(h, (size_t)slots * C, ACT, 1.0);
    tensor gates = tensor_new(h, slots, MASTER);
    tensor_random(h, &gates, 0.2, 0.5);
    tensor out = tensor_new(h, (size_t)N * C, ACT);
    tensor_poison(h, &out);
    h->cpu->moe_combine_forward(out.cpu, expert_out.cpu, gates.cpu, slot_buffer.cpu, N, k, C);
    h->gpu->moe_combine_forward(out.gpu, expert_out.gpu, gates.gpu, slot_buffer.gpu, N, k, C);
    check_bf16(h, "moe_combine_forward", &out);
    tensor dout = tensor_random_new(h, (size_t)N * C, ACT, 1.0);
    /* rows of dropped slots must stay as they were: same random start on both sides */
    tensor dexpert_out = tensor_random_new(h, (size_t)slots * C, ACT, 1.0);
    tensor dgates = tensor_new(h, slots, MASTER);
    tensor_poison(h, &dgates);
    h->cpu->moe_combine_backward(dexpert_out.cpu, dgates.cpu, dout.cpu, expert_out.cpu, gates.cpu,
                                 slot_buffer.cpu, N, k, C);
    h->gpu->moe_combine_backward(dexpert_out.gpu, dgates.gpu, dout.gpu, expert_out.gpu, gates.gpu,
                                 slot_buffer.gpu, N, k, C);
    check_bf16(h, "moe_combine_backward dexpert_out", &dexpert_out);
    check(h, "moe_combine_backward dgates", &dgates, 1e-5, 1e-4);
    /* the dispatch's backward adds onto what dinp holds: the same random start on both sides */
    tensor dinp = tensor_random_new(h, (size_t)N * C, ACT, 1.0);
    h->cpu->moe_dispatch_backward(dinp.cpu, dexpert_out.cpu, slot_buffer.cpu, N, k, C);
    h->gpu->moe_dispatch_backward(dinp.gpu, dexpert_out.gpu, slot_buffer.gpu, N, k, C);
    check_bf16(h, "moe_dispatch_backward+=", &dinp);
    index_free(h, &slot_buffer);
    tensor *all[] = {&expert_out, &gates, &out, &dout, &dexpert_out, &dgates, &dinp};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(h, all[i]);
}

/* Integer outputs must match exactly; gpu is a device buffer, cpu host memory. */
static void check_indices(harness *h, const char *name, const int32_t *cpu, const int32_t *gpu,
                          size_t n) {
    int32_t *got = host_alloc(n * sizeof(int32_t));
    h->gpu->copy_to_host(got, gpu, n * sizeof(int32_t));
    size_t bad = 0, first_bad = 0;
    double max_abs = 0.0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != cpu[i]) {
            if (bad++ == 0) first_bad = i;
            max_abs = fmax(max_abs, fabs((double)got[i] - cpu[i]));
        }
    report(h, name, max_abs, 0.0, bad == 0, 0.0, 0.0);
    if (bad)
        printf("    %zu of %zu differ; first [%zu]: cuda %d, cpu %d\n", bad, n, first_bad,
               got[first_bad], cpu[first_bad]);
    free(got);
}

/* MoE routing. Logits lie on a 1/64 grid in [-3, 3] (exact in bf16), so two experts' scores
 * either tie exactly (the same tie rule on both sides) or differ far beyond fp32 rounding; so do
 * the gates capacity compares across tokens when it is on (softmax top-2: the sigmoid of a grid
 * difference; sigmoid top-1: a grid point's sigmoid). Decisions must match exactly, gates and
 * losses within fp32 rounding, dlogits within bf16's. */
/* logits uniform in [shift - 3, shift + 3] (a shift of 20 puts a sigmoid router where fp32
 * sigmoids round to 1: the ranking must still follow the logits) */
static void test_moe_routing(harness *h, int N, int E, int k, int sigmoid,
                             double capacity_factor, float shift) {
    char name[112], label[64], shifted[16] = "";
    if (shift != 0) snprintf(shifted, sizeof shifted, " %+g", shift);
    snprintf(label, sizeof label, "N=%d E=%d k=%d %s%s%s", N, E, k, sigmoid ? "sig" : "soft",
             capacity_factor > 0 ? " cap" : "", shifted);
    moe_router router = {E, k, sigmoid, 0.01, 0.001, capacity_factor};
    int slots = N * k;
    float *values = host_alloc((size_t)N * E * sizeof(float));
    for (size_t i = 0; i < (size_t)N * E; i++)
        values[i] = shift + (float)((int)random_below(&h->rng, 385) - 192) / 64.0f;
    tensor logits = tensor_new(h, (size_t)N * E, ACT);
    tensor_set(h, &logits, values);
    tensor gates = tensor_new(h, slots, MASTER), losses = tensor_new(h, 2, MASTER);
    tensor_poison(h, &gates);
    tensor_set(h, &losses, (float[2]){0.25f, -0.5f}); /* the losses add to what is there */
    /* every int32 0x7F7F7F7F: an entry the op should write and does not differs */
    size_t ints = 3 * (size_t)slots + 2 * E + 1;
    int32_t *fill = host_alloc(ints * sizeof(int32_t));
    memset(fill, 0x7F, ints * sizeof(int32_t));
    index_buffer all = index_new(h, fill, ints);
    free(fill);
    int32_t *cpu_ints[5], *gpu_ints[5]; /* choice, slot, row_token, assigned, expert_offset */
    size_t starts[5] = {0, (size_t)slots, 2 * (size_t)slots, 3 * (size_t)slots,
                        3 * (size_t)slots + E};
    for (int i = 0; i < 5; i++) {
        cpu_ints[i] = all.cpu + starts[i];
        gpu_ints[i] = all.gpu + starts[i];
    }
    h->cpu->moe_route_forward(cpu_ints[0], gates.cpu, cpu_ints[3], cpu_ints[1], cpu_ints[2],
                              cpu_ints[4], losses.cpu, logits.cpu, &router, N);
    h->gpu->moe_route_forward(gpu_ints[0], gates.gpu, gpu_ints[3], gpu_ints[1], gpu_ints[2],
                              gpu_ints[4], losses.gpu, logits.gpu, &router, N);
    int rows = cpu_ints[4][E];
    const char *what[5] = {"choice", "slot", "row_token", "assigned", "expert_offset"};
    size_t counts[5] = {(size_t)slots, (size_t)slots, (size_t)rows, (size_t)E, (size_t)E + 1};
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "moe_route %s %s", what[i], label);
        check_indices(h, name, cpu_ints[i], gpu_ints[i], counts[i]);
    }
    if (capacity_factor > 0) { /* the case must exercise dropping: max abs = dropped slots */
        snprintf(name, sizeof name, "moe_route drops slots %s", label);
        report(h, name, slots - rows, 0.0, rows < slots, 0.0, 0.0);
    }
    snprintf(name, sizeof name, "moe_route gates %s", label);
    check(h, name, &gates, 1e-6, 1e-5);
    snprintf(name, sizeof name, "moe_route losses+= %s", label);
    check(h, name, &losses, 0.0, 1e-4);

    /* backward from the gates' gradient as combine gives it: 0 for dropped slots */
    tensor dgates = tensor_new(h, slots, MASTER), dlogits = tensor_new(h, (size_t)N * E, ACT);
    float *dg = host_alloc((size_t)slots * sizeof(float));
    for (int s = 0; s < slots; s++)
        dg[s] = cpu_ints[1][s] >= 0 ? (float)random_normal(&h->rng) : 0.0f;
    tensor_set(h, &dgates, dg);
    tensor_poison(h, &dlogits);
    h->cpu->moe_route_backward(dlogits.cpu, dgates.cpu, logits.cpu, cpu_ints[0], cpu_ints[3],
                               &router, N, 0.5);
    h->gpu->moe_route_backward(dlogits.gpu, dgates.gpu, logits.gpu, gpu_ints[0], gpu_ints[3],
                               &router, N, 0.5);
    snprintf(name, sizeof name, "moe_route_backward %s", label);
    check_bf16(h, name, &dlogits);
    free(values);
    free(dg);
    index_free(h, &all);
    tensor *tensors[] = {&logits, &gates, &losses, &dgates, &dlogits};
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++) tensor_free(h, tensors[i]);
}

static void test_optimizers(harness *h, size_t n) {
    tensor param = tensor_random_new(h, n, MASTER, 1.0);
    tensor grad = tensor_random_new(h, n, MASTER, 1e-2);
    tensor m = tensor_random_new(h, n, MASTER, 1e-2), m2 = tensor_random_new(h, n, MASTER, 1e-2);
    tensor v = tensor_new(h, n, MASTER);
    tensor_random(h, &v, 1e-5, 2e-4); /* positive second moments */
    h->cpu->adamw_update(param.cpu, grad.cpu, m.cpu, v.cpu, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f,
                         0.271f, 0.0975f);
    h->gpu->adamw_update(param.gpu, grad.gpu, m.gpu, v.gpu, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f,
                         0.271f, 0.0975f);
    check_fp32(h, "adamw_update param", &param);
    check_fp32(h, "adamw_update m", &m);
    check_fp32(h, "adamw_update v", &v);
    h->cpu->ademamix_update(param.cpu, grad.cpu, m.cpu, m2.cpu, v.cpu, n, 1e-3f, 0.9f, 0.999f,
                            0.9999f, 8.0f, 1e-8f, 0.1f, 0.271f, 0.0975f);
    h->gpu->ademamix_update(param.gpu, grad.gpu, m.gpu, m2.gpu, v.gpu, n, 1e-3f, 0.9f, 0.999f,
                            0.9999f, 8.0f, 1e-8f, 0.1f, 0.271f, 0.0975f);
    check_fp32(h, "ademamix_update param", &param);
    check_fp32(h, "ademamix_update m1", &m);
    check_fp32(h, "ademamix_update m2", &m2);
    check_fp32(h, "ademamix_update v", &v);
    h->cpu->scale(grad.cpu, n, 0.37f);
    h->gpu->scale(grad.gpu, n, 0.37f);
    check_fp32(h, "scale", &grad);

    double ref = h->cpu->sum_squares(param.cpu, n), got = h->gpu->sum_squares(param.gpu, n);
    double err = fabs(got - ref), again = h->gpu->sum_squares(param.gpu, n);
    report(h, "sum_squares", err, err / ref, err <= 1e-9 * ref, 1e-9, 0.0);
    report(h, "sum_squares repeat", fabs(again - got), 0.0, again == got, 0.0, 0.0);
    tensor *all[] = {&param, &grad, &m, &m2, &v};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tensor_free(h, all[i]);
}

int main(void) {
    /* a row per line even into a pipe: a CUDA error aborts, and rows still in the buffer would
     * be lost with it */
    setvbuf(stdout, NULL, _IOLBF, 0);
    char why[512] = "";
    harness h;
    memset(&h, 0, sizeof h);
    h.gpu = ops_cuda(0, why, sizeof why);
    if (!h.gpu) {
        printf("test_ops_cuda: skipped: no CUDA device (%s)\n", why);
        return 77;
    }
    h.cpu = ops_cpu();
    const char *seed_text = getenv("CAIRN_TEST_SEED");
    uint64_t seed = seed_text ? strtoull(seed_text, NULL, 10)
                              : (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
    random_seed(&h.rng, seed);
    printf("test_ops_cuda: seed %llu (set CAIRN_TEST_SEED to repeat)\n", (unsigned long long)seed);
    printf("%-36s %11s %11s  %-4s\n", "op", "max abs", "max rel", "");

    test_conversions(&h);
    test_embedding(&h, 96, 136, 1);
    test_embedding(&h, 64, 70, 0);
    test_rmsnorm(&h, 64, 256);
    test_rmsnorm(&h, 300, 100);
    test_layernorm(&h, 64, 256);
    test_layernorm(&h, 37, 100);
    test_matmul(&h, 192, 320, 384, 1, 0, 1);
    test_matmul(&h, 64, 100, 72, 1, 1, 1);
    test_matmul(&h, 130, 64, 96, 0, 0, 0);
    test_matmul_row_counts(&h);
    /* each path asked for; more groups than one grouped call takes (64); auto on small and on
     * large groups; rows of 100 columns (200 bytes) are not 16-byte aligned for the grouped call */
    const cuda_grouped_gemm_path grouped = CUDA_GROUPED_GEMM_GROUPED, loop = CUDA_GROUPED_GEMM_LOOP;
    test_matmul_grouped(&h, grouped, 8, 300, 128, 192, 8, grouped);
    test_matmul_grouped(&h, loop, 8, 300, 128, 192, 8, loop);
    test_matmul_grouped(&h, grouped, 70, 40, 64, 96, 0, grouped);
    test_matmul_grouped(&h, CUDA_GROUPED_GEMM_AUTO, 16, 200, 256, 128, 0, grouped);
    test_matmul_grouped(&h, CUDA_GROUPED_GEMM_AUTO, 3, 5000, 128, 256, 0, loop);
    test_matmul_grouped(&h, grouped, 6, 100, 100, 72, 0, loop);
    test_matmul_gelu(&h, 192, 320, 384, 1, 0, 1);
    test_matmul_gelu(&h, 192, 320, 384, 0, 0, 1);
    test_matmul_gelu(&h, 4096, 768, 3072, 1, 0, 1); /* gpt2-124m's MLP, a quarter of its rows */
    test_matmul_gelu(&h, 4096, 768, 3072, 1, 0, 0);
    test_matmul_gelu(&h, 64, 96, 72, 1, 1, 1);   /* unaligned bias: the forward on the kernels */
    test_matmul_gelu(&h, 130, 64, 100, 1, 0, 1); /* F not a multiple of 8: both on the kernels */
    test_matmul_gelu_row_counts(&h);
    test_gelu_epilogue_tanh(&h);
    test_qk_norm(&h, 64, 4, 2, 64);
    test_rope(&h, 64, 4, 2, 64);
    test_attention(&h, CUDA_ATTENTION_AUTO, 2, 200, 4, 2, 64, 40);
    test_attention(&h, CUDA_ATTENTION_AUTO, 1, 130, 4, 1, 128, 0);
    test_attention(&h, CUDA_ATTENTION_AUTO, 2, 96, 2, 2, 40, 40);
    test_attention(&h, CUDA_ATTENTION_AUTO, 1, 700, 4, 2, 64, 250);
    test_attention(&h, CUDA_ATTENTION_AUTO, 1, 520, 2, 2, 128, 200);
    test_attention_paths(&h, 2, 200, 8, 2, 64);
    test_attention_paths(&h, 2, 130, 8, 2, 128);
    test_attention_paths(&h, 3, 96, 4, 4, 64);
    test_attention_paths(&h, 2, 256, 4, 4, 128);
    test_attention_paths(&h, 2, 1000, 8, 2, 64);
    test_swiglu(&h, 64, 136);
    test_swiglu(&h, 33, 50);
    test_gelu_xielu(&h, 4096);
    test_gelu_xielu(&h, 5001);
    test_add(&h, 1000);
    test_add(&h, 1001);
    test_cross_entropy(&h, 48, 50257, 1);
    test_cross_entropy(&h, 32, 4096, 1);
    test_cross_entropy(&h, 16, 4096, 0);
    test_vocab_parallel_cross_entropy(&h, 48, 25129);
    test_vocab_parallel_cross_entropy(&h, 16, 4096);
    test_rows(&h, 64, 136);
    test_rows(&h, 64, 45);
    test_moe_combine(&h, 48, 2, 136);
    test_moe_combine(&h, 37, 3, 50); /* columns not a multiple of 8: one per thread */
    test_moe_routing(&h, 1000, 8, 2, 0, 0.0, 0.0f);
    test_moe_routing(&h, 1000, 8, 2, 0, 1.0, 0.0f);
    test_moe_routing(&h, 777, 16, 1, 1, 1.25, 0.0f);
    test_moe_routing(&h, 513, 64, 6, 1, 0.0, 0.0f);
    test_moe_routing(&h, 4096, 128, 8, 0, 0.0, 0.0f);
    test_moe_routing(&h, 1000, 16, 2, 1, 0.0, 20.0f);
    /* capacity over more slots than CUB sorts in one block (4864 on sm80+: its multi-pass sort) */
    test_moe_routing(&h, 16384, 64, 2, 0, 1.0, 0.0f);
    test_moe_routing(&h, 6000, 16, 1, 1, 1.25, 0.0f);
    test_optimizers(&h, 100003);
    /* cuDNN's ragged path (per-document masks): a few documents, many (a bucket of 256), long
     * ones. Last because it has never run: an error in a built cuDNN graph aborts the process,
     * which here costs no other row. */
    test_attention(&h, CUDA_ATTENTION_CUDNN, 1, 300, 2, 1, 128, 40);
    test_attention(&h, CUDA_ATTENTION_CUDNN, 2, 200, 4, 2, 64, 40);
    test_attention(&h, CUDA_ATTENTION_CUDNN, 2, 256, 4, 4, 128, 3);
    test_attention(&h, CUDA_ATTENTION_CUDNN, 1, 700, 4, 2, 64, 250);

    printf("test_ops_cuda: %d passed, %d failed\n", h.passed, h.failed);
    return h.failed ? 1 : 0;
}
