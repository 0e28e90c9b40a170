/* Times the main ops of the CUDA backend at llama-1b shapes (B4 × T4096,
 * d 2048, 32 heads / 8 kv heads of 64, ffn 8192, vocab 128256) and at an
 * hd-128 attention shape. Inputs are random (a random pattern tiled over each
 * buffer), never zeros. Each row: the median over 5 rounds of the mean time of
 * an op, and its rate (TFLOP/s for matrix work, GB/s of the minimum traffic
 * otherwise). Attention is timed on cuDNN and on the flash kernels (only flash
 * with documents), routed experts' GEMMs on the grouped call and per expert;
 * their rows name the implementation that ran. gpt2-124m's MLP GEMMs with
 * their GELU are timed as the two plain ops and as the matmul_gelu op, whose
 * rows say whether the GELU ran in cuBLASLt's epilogue. Exit 77 when no CUDA
 * device is usable. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/random.h"
#include "kernels/cuda/attention_path.h"
#include "kernels/cuda/gemm_grouped_path.h"
#include "kernels/cuda/gelu_epilogue.h"
#include "kernels/ops.h"

enum { PATTERN = 1 << 22, ROUNDS = 5 };

typedef struct bench {
    const ops *gpu;
    float *pattern;
} bench;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *device_buffer(bench *b, size_t n, int master) {
    const ops *o = b->gpu;
    size_t bytes = n * (master ? o->master_bytes : o->act_bytes);
    void *p = o->alloc(bytes);
    if (!p) {
        fprintf(stderr, "bench_ops_cuda: out of device memory (%zu bytes)\n", bytes);
        exit(1);
    }
    /* write the random pattern once, then double the filled prefix by device copies */
    size_t first = n < PATTERN ? n : PATTERN;
    if (master)
        o->float_to_master(p, b->pattern, first);
    else
        o->float_to_act(p, b->pattern, first);
    size_t element = master ? o->master_bytes : o->act_bytes;
    for (size_t filled = first; filled < n;) {
        size_t chunk = filled < n - filled ? filled : n - filled;
        o->copy_device((char *)p + filled * element, p, chunk * element);
        filled += chunk;
    }
    return p;
}

static int32_t *index_buffer(bench *b, size_t n, int bound) {
    int32_t *host = malloc(n * sizeof(int32_t));
    random_state rng;
    random_seed(&rng, 7);
    for (size_t i = 0; i < n; i++) host[i] = (int32_t)random_below(&rng, (uint64_t)bound);
    int32_t *device = b->gpu->alloc(n * sizeof(int32_t));
    b->gpu->copy_to_device(device, host, n * sizeof(int32_t));
    free(host);
    return device;
}

typedef void (*bench_fn)(void *context);

/* median over ROUNDS of the mean time of `iters` calls, after a warm-up call */
static double time_op(bench *b, bench_fn fn, void *context, int iters) {
    double times[ROUNDS];
    fn(context);
    b->gpu->synchronize();
    for (int r = 0; r < ROUNDS; r++) {
        double start = now();
        for (int i = 0; i < iters; i++) fn(context);
        b->gpu->synchronize();
        times[r] = (now() - start) / iters;
    }
    for (int i = 1; i < ROUNDS; i++)
        for (int j = i; j > 0 && times[j] < times[j - 1]; j--) {
            double swap = times[j];
            times[j] = times[j - 1];
            times[j - 1] = swap;
        }
    return times[ROUNDS / 2];
}

static void row(const char *op, const char *shape, double seconds, double flops, double bytes) {
    if (flops > 0)
        printf("%-22s %-36s %9.3f ms %8.1f TFLOP/s\n", op, shape, seconds * 1e3,
               flops / seconds / 1e12);
    else
        printf("%-22s %-36s %9.3f ms %8.1f GB/s\n", op, shape, seconds * 1e3,
               bytes / seconds / 1e9);
}

/* ---- the benchmarked calls ---- */

typedef struct matmul_case {
    const ops *o;
    void *out, *inp, *weight, *dout, *dinp, *dweight;
    int N, C, OC;
} matmul_case;

static void run_matmul_forward(void *c_) {
    matmul_case *c = c_;
    c->o->matmul_forward(c->out, c->inp, c->weight, NULL, c->N, c->C, c->OC);
}

static void run_matmul_backward(void *c_) {
    matmul_case *c = c_;
    c->o->matmul_backward(c->dinp, c->dweight, NULL, c->dout, c->inp, c->weight, c->N, c->C,
                          c->OC);
}

static void bench_matmul(bench *b, const char *name, int N, int C, int OC) {
    matmul_case c = {.o = b->gpu, .N = N, .C = C, .OC = OC};
    c.out = device_buffer(b, (size_t)N * OC, 0);
    c.inp = device_buffer(b, (size_t)N * C, 0);
    c.weight = device_buffer(b, (size_t)OC * C, 0);
    c.dout = device_buffer(b, (size_t)N * OC, 0);
    c.dinp = device_buffer(b, (size_t)N * C, 0);
    c.dweight = device_buffer(b, (size_t)OC * C, 1);
    char shape[64];
    snprintf(shape, sizeof shape, "%s %dx%dx%d", name, N, C, OC);
    double flops = 2.0 * N * C * OC;
    row("matmul_forward", shape, time_op(b, run_matmul_forward, &c, 10), flops, 0);
    row("matmul_backward", shape, time_op(b, run_matmul_backward, &c, 10), 2 * flops, 0);
    void *all[] = {c.out, c.inp, c.weight, c.dout, c.dinp, c.dweight};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) b->gpu->free(all[i]);
}

typedef struct grouped_case {
    const ops *o;
    void *out, *inp, *weights, *dout, *dinp, *dweights;
    int32_t *offsets; /* host */
    int groups, C, OC;
} grouped_case;

static void run_matmul_grouped_forward(void *c_) {
    grouped_case *c = c_;
    c->o->matmul_grouped_forward(c->out, c->inp, c->weights, (size_t)c->OC * c->C, c->offsets,
                                 c->groups, c->C, c->OC);
}

static void run_matmul_grouped_backward(void *c_) {
    grouped_case *c = c_;
    c->o->matmul_grouped_backward(c->dinp, c->dweights, c->dout, c->inp, c->weights,
                                  (size_t)c->OC * c->C, c->offsets, c->groups, c->C, c->OC);
}

/* One projection of `groups` routed experts of `rows` rows each (alternately 20 % more and
 * fewer, as routing is never even) on the grouped call and on one cuBLASLt call per expert:
 * the rows that set CUDA_GROUPED_GEMM_AUTO_ROWS. */
static void bench_matmul_grouped(bench *b, const char *name, int groups, int rows, int C, int OC) {
    grouped_case c = {.o = b->gpu, .groups = groups, .C = C, .OC = OC};
    c.offsets = malloc((size_t)(groups + 1) * sizeof(int32_t));
    c.offsets[0] = 0;
    for (int g = 0; g < groups; g++)
        c.offsets[g + 1] = c.offsets[g] + rows + (g % 2 ? -rows / 5 : rows / 5);
    size_t N = (size_t)c.offsets[groups];
    c.out = device_buffer(b, N * OC, 0);
    c.inp = device_buffer(b, N * C, 0);
    c.weights = device_buffer(b, (size_t)groups * OC * C, 0);
    c.dout = device_buffer(b, N * OC, 0);
    c.dinp = device_buffer(b, N * C, 0);
    c.dweights = device_buffer(b, (size_t)groups * OC * C, 1);
    double flops = 2.0 * (double)N * C * OC;
    const cuda_grouped_gemm_path paths[2] = {CUDA_GROUPED_GEMM_GROUPED, CUDA_GROUPED_GEMM_LOOP};
    for (int p = 0; p < 2; p++) {
        cuda_grouped_gemm_use(paths[p]);
        char shape[80];
        double forward = time_op(b, run_matmul_grouped_forward, &c, 10);
        snprintf(shape, sizeof shape, "%s E%d r%d %dx%d %s", name, groups, rows, C, OC,
                 cuda_grouped_gemm_path_name(cuda_grouped_gemm_ran()));
        row("grouped_forward", shape, forward, flops, 0);
        row("grouped_backward", shape, time_op(b, run_matmul_grouped_backward, &c, 10),
            2 * flops, 0);
    }
    cuda_grouped_gemm_use(CUDA_GROUPED_GEMM_AUTO);
    void *all[] = {c.out, c.inp, c.weights, c.dout, c.dinp, c.dweights};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) b->gpu->free(all[i]);
    free(c.offsets);
}

/* An MLP d → F → d with biases: the forward of its up projection and the backward of its down
 * projection, each with the GELU between them */
typedef struct mlp_case {
    const ops *o;
    void *inp, *up, *up_bias, *pre, *hidden, *down, *dout, *dhidden, *dpre, *ddown, *ddown_bias;
    int N, d, F;
} mlp_case;

static void run_matmul_then_gelu_forward(void *c_) {
    mlp_case *c = c_;
    c->o->matmul_forward(c->pre, c->inp, c->up, c->up_bias, c->N, c->d, c->F);
    c->o->gelu_forward(c->hidden, c->pre, (size_t)c->N * c->F);
}

static void run_matmul_gelu_forward(void *c_) {
    mlp_case *c = c_;
    c->o->matmul_gelu_forward(c->hidden, c->pre, c->inp, c->up, c->up_bias, c->N, c->d, c->F);
}

static void run_matmul_then_gelu_backward(void *c_) {
    mlp_case *c = c_;
    c->o->matmul_backward(c->dhidden, c->ddown, c->ddown_bias, c->dout, c->hidden, c->down, c->N,
                          c->F, c->d);
    c->o->gelu_backward(c->dpre, c->dhidden, c->pre, (size_t)c->N * c->F);
}

static void run_matmul_gelu_backward(void *c_) {
    mlp_case *c = c_;
    c->o->matmul_gelu_backward(c->dpre, c->ddown, c->ddown_bias, c->dout, c->hidden, c->down,
                               c->pre, c->N, c->F, c->d);
}

static void bench_matmul_gelu(bench *b, const char *name, int N, int d, int F) {
    mlp_case c = {.o = b->gpu, .N = N, .d = d, .F = F};
    size_t nd = (size_t)N * d, nf = (size_t)N * F, df = (size_t)d * F;
    c.inp = device_buffer(b, nd, 0);
    c.up = device_buffer(b, df, 0);
    c.up_bias = device_buffer(b, F, 0);
    c.pre = device_buffer(b, nf, 0);
    c.hidden = device_buffer(b, nf, 0);
    c.down = device_buffer(b, df, 0);
    c.dout = device_buffer(b, nd, 0);
    c.dhidden = device_buffer(b, nf, 0);
    c.dpre = device_buffer(b, nf, 0);
    c.ddown = device_buffer(b, df, 1);
    c.ddown_bias = device_buffer(b, d, 1);
    char shape[80];
    double flops = 2.0 * N * d * F;
    snprintf(shape, sizeof shape, "%s %dx%dx%d two ops", name, N, d, F);
    row("matmul+gelu_forward", shape, time_op(b, run_matmul_then_gelu_forward, &c, 10), flops, 0);
    double seconds = time_op(b, run_matmul_gelu_forward, &c, 10);
    snprintf(shape, sizeof shape, "%s %dx%dx%d %s", name, N, d, F,
             cuda_gelu_epilogue_ran(0) ? "epilogue" : "kernels");
    row("matmul_gelu_forward", shape, seconds, flops, 0);
    snprintf(shape, sizeof shape, "%s %dx%dx%d two ops", name, N, d, F);
    row("matmul+gelu_backward", shape, time_op(b, run_matmul_then_gelu_backward, &c, 10),
        2 * flops, 0);
    seconds = time_op(b, run_matmul_gelu_backward, &c, 10);
    snprintf(shape, sizeof shape, "%s %dx%dx%d %s", name, N, d, F,
             cuda_gelu_epilogue_ran(1) ? "epilogue" : "kernels");
    row("matmul_gelu_backward", shape, seconds, 2 * flops, 0);
    void *all[] = {c.inp, c.up, c.up_bias, c.pre, c.hidden, c.down, c.dout, c.dhidden, c.dpre,
                   c.ddown, c.ddown_bias};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) b->gpu->free(all[i]);
}

typedef struct attention_case {
    const ops *o;
    void *out, *lse, *qkv, *dout, *dqkv;
    int32_t *doc_start, *doc_firsts;
    attention_documents documents;
    int B, T, H, KV, hd;
} attention_case;

static const attention_documents *case_documents(const attention_case *c) {
    return c->doc_start ? &c->documents : NULL;
}

static void run_attention_forward(void *c_) {
    attention_case *c = c_;
    c->o->attention_forward(c->out, c->lse, c->qkv, case_documents(c), c->B, c->T, c->H, c->KV,
                            c->hd);
}

static void run_attention_backward(void *c_) {
    attention_case *c = c_;
    c->o->attention_backward(c->dqkv, c->dout, c->qkv, c->out, c->lse, case_documents(c), c->B,
                             c->T, c->H, c->KV, c->hd);
}

/* doc_length: documents of that many tokens (0: plain causal) */
static void bench_attention(bench *b, int B, int T, int H, int KV, int hd, int doc_length) {
    size_t N = (size_t)B * T;
    attention_case c = {.o = b->gpu, .B = B, .T = T, .H = H, .KV = KV, .hd = hd};
    c.out = device_buffer(b, N * H * hd, 0);
    c.lse = device_buffer(b, (size_t)B * H * T, 1);
    c.qkv = device_buffer(b, N * (H + 2 * KV) * hd, 0);
    c.dout = device_buffer(b, N * H * hd, 0);
    c.dqkv = device_buffer(b, N * (H + 2 * KV) * hd, 0);
    if (doc_length) {
        int32_t *host = malloc(N * sizeof(int32_t)), *firsts = malloc((N + 1) * sizeof(int32_t));
        for (size_t i = 0; i < N; i++)
            host[i] = (int32_t)((i % T) / (size_t)doc_length * (size_t)doc_length);
        int count = attention_documents_starts(host, B, T, firsts);
        c.doc_start = b->gpu->alloc(N * sizeof(int32_t));
        c.doc_firsts = b->gpu->alloc(((size_t)count + 1) * sizeof(int32_t));
        b->gpu->copy_to_device(c.doc_start, host, N * sizeof(int32_t));
        b->gpu->copy_to_device(c.doc_firsts, firsts, ((size_t)count + 1) * sizeof(int32_t));
        c.documents = (attention_documents){c.doc_start, c.doc_firsts, count};
        free(host);
        free(firsts);
    }
    char docs[16] = "";
    if (doc_length) snprintf(docs, sizeof docs, " doc%d", doc_length);
    /* causal: half of the T×T scores (of each document's) */
    double span = doc_length ? doc_length : T;
    double flops = 4.0 * B * H * (double)T * span * hd / 2;
    /* documents on cuDNN: its ragged path, taken only when asked for */
    cuda_attention_path paths[] = {CUDA_ATTENTION_CUDNN, CUDA_ATTENTION_FLASH};
    for (int p = 0; p < 2; p++) {
        cuda_attention_use(paths[p]);
        run_attention_forward(&c); /* a real lse for the backward */
        double seconds[2];
        seconds[0] = time_op(b, run_attention_forward, &c, 5);
        seconds[1] = time_op(b, run_attention_backward, &c, 5);
        const char *ops[2] = {"attention_forward", "attention_backward"};
        for (int backward = 0; backward < 2; backward++) {
            char shape[80];
            snprintf(shape, sizeof shape, "B%d T%d H%d KV%d hd%d%s %s", B, T, H, KV, hd, docs,
                     cuda_attention_path_name(cuda_attention_ran(backward)));
            row(ops[backward], shape, seconds[backward], (backward ? 2.5 : 1.0) * flops, 0);
        }
    }
    cuda_attention_use(CUDA_ATTENTION_AUTO);
    void *all[] = {c.out, c.lse, c.qkv, c.dout, c.dqkv, c.doc_start, c.doc_firsts};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) b->gpu->free(all[i]);
}

typedef struct norm_case {
    const ops *o;
    void *out, *inp, *weight, *rstd, *dinp, *dweight, *dout;
    int N, C;
} norm_case;

static void run_rmsnorm_forward(void *c_) {
    norm_case *c = c_;
    c->o->rmsnorm_forward(c->out, c->rstd, c->inp, c->weight, c->N, c->C, 1e-5f);
}

static void run_rmsnorm_backward(void *c_) {
    norm_case *c = c_;
    c->o->rmsnorm_backward(c->dinp, c->dweight, c->dout, c->inp, c->weight, c->rstd, c->N, c->C);
}

static void bench_rmsnorm(bench *b, int N, int C) {
    norm_case c = {.o = b->gpu, .N = N, .C = C};
    c.out = device_buffer(b, (size_t)N * C, 0);
    c.inp = device_buffer(b, (size_t)N * C, 0);
    c.weight = device_buffer(b, C, 0);
    c.rstd = device_buffer(b, N, 1);
    c.dinp = device_buffer(b, (size_t)N * C, 0);
    c.dweight = device_buffer(b, C, 1);
    c.dout = device_buffer(b, (size_t)N * C, 0);
    char shape[64];
    snprintf(shape, sizeof shape, "N%d C%d", N, C);
    double bytes = (double)N * C * b->gpu->act_bytes;
    row("rmsnorm_forward", shape, time_op(b, run_rmsnorm_forward, &c, 20), 0, 2 * bytes);
    row("rmsnorm_backward", shape, time_op(b, run_rmsnorm_backward, &c, 20), 0, 4 * bytes);
    void *all[] = {c.out, c.inp, c.weight, c.rstd, c.dinp, c.dweight, c.dout};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) b->gpu->free(all[i]);
}

typedef struct swiglu_case {
    const ops *o;
    void *out, *inp;
    int N, F;
} swiglu_case;

static void run_swiglu_forward(void *c_) {
    swiglu_case *c = c_;
    c->o->swiglu_forward(c->out, c->inp, c->N, c->F);
}

static void bench_swiglu(bench *b, int N, int F) {
    swiglu_case c = {b->gpu, device_buffer(b, (size_t)N * F, 0),
                     device_buffer(b, (size_t)N * 2 * F, 0), N, F};
    char shape[64];
    snprintf(shape, sizeof shape, "N%d F%d", N, F);
    row("swiglu_forward", shape, time_op(b, run_swiglu_forward, &c, 20), 0,
        3.0 * N * F * b->gpu->act_bytes);
    b->gpu->free(c.out);
    b->gpu->free(c.inp);
}

typedef struct loss_case {
    const ops *o;
    void *logits, *losses, *weights;
    int32_t *targets;
    int N, V;
} loss_case;

static void run_cross_entropy(void *c_) {
    loss_case *c = c_;
    c->o->cross_entropy(c->logits, c->losses, c->targets, c->weights, c->N, c->V);
}

static void bench_cross_entropy(bench *b, int N, int V) {
    loss_case c = {b->gpu, device_buffer(b, (size_t)N * V, 0), device_buffer(b, N, 1),
                   device_buffer(b, N, 1), index_buffer(b, N, V), N, V};
    char shape[64];
    snprintf(shape, sizeof shape, "N%d V%d", N, V);
    row("cross_entropy", shape, time_op(b, run_cross_entropy, &c, 3), 0,
        2.0 * N * V * b->gpu->act_bytes);
    void *all[] = {c.logits, c.losses, c.weights, c.targets};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) b->gpu->free(all[i]);
}

typedef struct route_case {
    const ops *o;
    moe_router router;
    void *logits, *gates, *losses, *dgates, *dlogits;
    int32_t *choice, *assigned, *slot, *row_token, *expert_offset;
    int N;
} route_case;

static void run_moe_route_forward(void *c_) {
    route_case *c = c_;
    c->o->moe_route_forward(c->choice, c->gates, c->assigned, c->slot, c->row_token,
                            c->expert_offset, c->losses, c->logits, &c->router, c->N);
}

static void run_moe_route_backward(void *c_) {
    route_case *c = c_;
    c->o->moe_route_backward(c->dlogits, c->dgates, c->logits, c->choice, c->assigned,
                             &c->router, c->N, 0.5);
}

/* Routing of the MoE proxy's micro-batch; rates count reading the logits once and writing the
 * per-slot outputs (forward) or reading logits and gate gradients and writing dlogits. */
static void bench_moe_route(bench *b, int N, int E, int k, double capacity_factor) {
    route_case c = {.o = b->gpu, .router = {E, k, 0, 0.01, 0.001, capacity_factor}, .N = N};
    size_t slots = (size_t)N * k;
    c.logits = device_buffer(b, (size_t)N * E, 0);
    c.dlogits = device_buffer(b, (size_t)N * E, 0);
    c.gates = device_buffer(b, slots, 1);
    c.dgates = device_buffer(b, slots, 1);
    c.losses = device_buffer(b, 2, 1);
    c.choice = index_buffer(b, slots, E);
    c.slot = index_buffer(b, slots, 1);
    c.row_token = index_buffer(b, slots, 1);
    c.assigned = index_buffer(b, E, 1);
    c.expert_offset = index_buffer(b, E + 1, 1);
    char shape[64];
    snprintf(shape, sizeof shape, "N%d E%d k%d%s", N, E, k, capacity_factor > 0 ? " cap" : "");
    double logit_bytes = (double)N * E * b->gpu->act_bytes;
    row("moe_route_forward", shape, time_op(b, run_moe_route_forward, &c, 10), 0,
        logit_bytes + slots * (b->gpu->master_bytes + 3 * sizeof(int32_t)));
    row("moe_route_backward", shape, time_op(b, run_moe_route_backward, &c, 10), 0,
        2 * logit_bytes + slots * (b->gpu->master_bytes + sizeof(int32_t)));
    void *all[] = {c.logits, c.dlogits, c.gates, c.dgates, c.losses, c.choice, c.slot,
                   c.row_token, c.assigned, c.expert_offset};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) b->gpu->free(all[i]);
}

typedef struct adamw_case {
    const ops *o;
    void *param, *grad, *m, *v;
    size_t n;
} adamw_case;

static void run_adamw(void *c_) {
    adamw_case *c = c_;
    c->o->adamw_update(c->param, c->grad, c->m, c->v, c->n, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f,
                       0.5f, 0.5f);
}

static void bench_adamw(bench *b, size_t n) {
    adamw_case c = {b->gpu, device_buffer(b, n, 1), device_buffer(b, n, 1), device_buffer(b, n, 1),
                    device_buffer(b, n, 1), n};
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu", n);
    /* read param, grad, m, v; write param, m, v */
    row("adamw_update", shape, time_op(b, run_adamw, &c, 5), 0, 7.0 * n * b->gpu->master_bytes);
    void *all[] = {c.param, c.grad, c.m, c.v};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) b->gpu->free(all[i]);
}

int main(void) {
    /* a row per line even into a pipe: a CUDA error aborts, and rows still in the buffer would
     * be lost with it */
    setvbuf(stdout, NULL, _IOLBF, 0);
    char why[512] = "";
    bench b;
    b.gpu = ops_cuda(0, why, sizeof why);
    if (!b.gpu) {
        printf("bench_ops_cuda: skipped: no CUDA device (%s)\n", why);
        return 77;
    }
    b.pattern = malloc(PATTERN * sizeof(float));
    random_state rng;
    random_seed(&rng, 1);
    for (int i = 0; i < PATTERN; i++) b.pattern[i] = (float)random_normal(&rng);

    printf("%-22s %-36s %12s %16s\n", "op", "shape", "time", "rate");
    int N = 4 * 4096;
    bench_matmul(&b, "qkv", N, 2048, 3072);
    bench_matmul(&b, "ffn-up", N, 2048, 16384);
    bench_matmul(&b, "ffn-down", N, 8192, 2048);
    bench_matmul(&b, "lm-head", N, 2048, 128256);
    bench_matmul_gelu(&b, "gpt2-mlp", 16 * 1024, 768, 3072);
    bench_attention(&b, 4, 4096, 32, 8, 64, 0);
    bench_attention(&b, 1, 4096, 32, 8, 128, 0);
    bench_attention(&b, 16, 1024, 12, 12, 64, 0);
    bench_rmsnorm(&b, N, 2048);
    bench_swiglu(&b, N, 8192);
    bench_cross_entropy(&b, N, 128256);
    /* moe-8x-gmm's experts (16384 tokens, top-2 of 8: 4096 rows each), then a fine-grained MoE's
     * (d 2048, expert ffn 768) at 256 to 4096 rows per expert */
    bench_matmul_grouped(&b, "moe8-up", 8, 4096, 1024, 5632);
    bench_matmul_grouped(&b, "moe8-down", 8, 4096, 2816, 1024);
    bench_matmul_grouped(&b, "fine-up", 64, 256, 2048, 1536);
    bench_matmul_grouped(&b, "fine-up", 64, 512, 2048, 1536);
    bench_matmul_grouped(&b, "fine-up", 32, 1024, 2048, 1536);
    bench_matmul_grouped(&b, "fine-up", 16, 2048, 2048, 1536);
    bench_matmul_grouped(&b, "fine-up", 8, 4096, 2048, 1536);
    bench_matmul_grouped(&b, "fine-down", 64, 512, 768, 2048);
    bench_moe_route(&b, 8 * 2048, 8, 2, 0.0);
    bench_moe_route(&b, 8 * 2048, 8, 2, 1.25);
    bench_moe_route(&b, 8 * 2048, 64, 8, 0.0);
    bench_adamw(&b, (size_t)1 << 28);
    /* documents: the flash kernels and cuDNN's ragged path, which has never run (last, so an
     * abort in it costs no other row) */
    bench_attention(&b, 4, 4096, 32, 8, 64, 1024);
    bench_attention(&b, 4, 4096, 32, 8, 64, 256);
    free(b.pattern);
    return 0;
}
