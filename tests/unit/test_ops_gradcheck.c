/* Every backward op of the fp64 CPU backend against central finite differences.
 *
 * For each op: random inputs (fixed seed), the scalar L = Σ out ⊙ R with a random R
 * (cross_entropy: L = Σ_n w_n loss_n; moe_route: L = Σ R ⊙ gates of the kept slots + aux_scale
 * (aux + z), whose discrete decisions no step may change: checked), the analytic gradient from
 * the backward op with dout = R, and (L(x+h) - L(x-h)) / 2h for EVERY element of every input
 * that has a gradient. L is summed and differenced in long double, over the step actually taken, so
 * the only noise left is the op's own fp64 rounding.
 * The error of a tensor is max_i |analytic_i - fd_i| / max(|analytic_i|, |fd_i|, FLOOR),
 * which must stay below TOLERANCE; a wrong term or factor gives errors of order 1e-2..1.
 * The accumulate contracts are checked too: weight gradients add (+=) into what is
 * there, norm backward adds into dinp, and the ops that overwrite do overwrite. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/random.h"
#include "kernels/ops.h"
#include "tests/unit/check.h"

static const double STEP = 1e-5;
static const double TOLERANCE = 1e-6;
static const double FLOOR = 1e-3;

typedef long double (*loss_fn)(void *context);

static double *random_buffer(const ops *o, random_state *r, size_t n, double lo, double hi) {
    double *x = o->alloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * random_uniform(r);
    return x;
}

static double *copy_buffer(const ops *o, const double *src, size_t n) {
    double *x = o->alloc(n * sizeof(double));
    memcpy(x, src, n * sizeof(double));
    return x;
}

static long double weighted_sum(const double *out, const double *weights, size_t n) {
    long double sum = 0;
    for (size_t i = 0; i < n; i++) sum += (long double)out[i] * weights[i];
    return sum;
}

/* Largest relative error of the analytic gradient of L over all elements of x. */
static double gradient_error(double *x, size_t n, const double *analytic, loss_fn loss,
                             void *context) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double saved = x[i], up = saved + STEP, down = saved - STEP;
        x[i] = up;
        long double plus = loss(context);
        x[i] = down;
        long double minus = loss(context);
        x[i] = saved;
        double fd = (double)((plus - minus) / ((long double)up - down));
        double scale = fmax(FLOOR, fmax(fabs(fd), fabs(analytic[i])));
        worst = fmax(worst, fabs(fd - analytic[i]) / scale);
    }
    return worst;
}

#define CHECK_GRADIENT(what, x, n, analytic, loss, context)                              \
    do {                                                                                 \
        double error_ = gradient_error((x), (n), (analytic), (loss), (context));         \
        printf("  %-44s max relative error %.2e\n", (what), error_);                     \
        CHECK_MSG(error_ < TOLERANCE, "%s: relative error %.3g", (what), error_);        \
    } while (0)

/* max_i |a_i - b_i| / max(|b_i|, 1e-12): exact relations such as "called twice = double" */
static double relative_difference(const double *a, const double *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]) / fmax(fabs(b[i]), 1e-12));
    return worst;
}

static void scale_copy(double *dst, const double *src, size_t n, double factor, const double *add) {
    for (size_t i = 0; i < n; i++) dst[i] = factor * src[i] + (add ? add[i] : 0);
}

/* The second backward call into the same weight gradient must double it. */
static void check_doubles(const char *what, const double *after_two, const double *after_one,
                          size_t n) {
    double *expected = malloc(n * sizeof(double));
    scale_copy(expected, after_one, n, 2, NULL);
    double difference = relative_difference(after_two, expected, n);
    CHECK_MSG(difference < 1e-13, "%s: second backward did not accumulate (%.3g)", what,
              difference);
    free(expected);
}

/* ---------------------------------------------------------------- embedding */

typedef struct embedding_case {
    const ops *o;
    int N, C;
    const int32_t *tokens, *positions;
    double *wte, *wpe, *out, *R;
} embedding_case;

static long double embedding_loss(void *c_) {
    embedding_case *c = c_;
    c->o->embedding_forward(c->out, c->tokens, c->positions, c->wte, c->wpe, c->N, c->C);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->C);
}

static void check_embedding(const ops *o, random_state *r) {
    enum { N = 23, C = 5, V = 6, P = 9 };
    int32_t tokens[N], positions[N];
    for (int n = 0; n < N; n++) {
        tokens[n] = (int32_t)random_below(r, V);
        positions[n] = (int32_t)random_below(r, P);
    }
    embedding_case c = {o, N, C, tokens, positions, random_buffer(o, r, V * C, -1, 1),
                        random_buffer(o, r, P * C, -1, 1), o->alloc(N * C * 8),
                        random_buffer(o, r, N * C, -1, 1)};
    double *dwte = o->alloc(V * C * 8), *dwpe = o->alloc(P * C * 8);
    o->embedding_backward(dwte, dwpe, c.R, tokens, positions, N, C);
    CHECK_GRADIENT("embedding dwte (repeated tokens)", c.wte, V * C, dwte, embedding_loss, &c);
    CHECK_GRADIENT("embedding dwpe", c.wpe, P * C, dwpe, embedding_loss, &c);
    double *once = copy_buffer(o, dwte, V * C), *once_pe = copy_buffer(o, dwpe, P * C);
    o->embedding_backward(dwte, dwpe, c.R, tokens, positions, N, C);
    check_doubles("embedding dwte", dwte, once, V * C);
    check_doubles("embedding dwpe", dwpe, once_pe, P * C);
    o->free(once);
    o->free(once_pe);
    o->free(dwte);
    o->free(dwpe);
    o->free(c.wte);
    o->free(c.wpe);
    o->free(c.out);
    o->free(c.R);
}

/* ---------------------------------------------------------------- norms */

typedef struct norm_case {
    const ops *o;
    int N, C, layer; /* layer: LayerNorm, else RMSNorm */
    double *inp, *weight, *bias, *out, *mean, *rstd, *R;
} norm_case;

static long double norm_loss(void *c_) {
    norm_case *c = c_;
    if (c->layer)
        c->o->layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->weight, c->bias, c->N, c->C,
                                1e-5f);
    else
        c->o->rmsnorm_forward(c->out, c->rstd, c->inp, c->weight, c->N, c->C, 1e-5f);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->C);
}

static void norm_backward(const norm_case *c, double *dinp, double *dweight, double *dbias) {
    if (c->layer)
        c->o->layernorm_backward(dinp, dweight, dbias, c->R, c->inp, c->weight, c->mean, c->rstd,
                                 c->N, c->C);
    else
        c->o->rmsnorm_backward(dinp, dweight, c->R, c->inp, c->weight, c->rstd, c->N, c->C);
}

static void check_norm(const ops *o, random_state *r, int layer) {
    enum { N = 37, C = 11 }; /* three row chunks; C not a multiple of the dot lanes */
    const size_t NC = (size_t)N * C;
    norm_case c = {o, N, C, layer, random_buffer(o, r, NC, -2, 2),
                   random_buffer(o, r, C, 0.5, 1.5), random_buffer(o, r, C, -1, 1),
                   o->alloc(NC * 8), o->alloc(N * 8), o->alloc(N * 8),
                   random_buffer(o, r, NC, -1, 1)};
    norm_loss(&c);
    double *dinp = o->alloc(NC * 8), *dweight = o->alloc(C * 8), *dbias = o->alloc(C * 8);
    norm_backward(&c, dinp, dweight, dbias);
    const char *name = layer ? "layernorm" : "rmsnorm";
    char what[64];
    snprintf(what, sizeof what, "%s dinp", name);
    CHECK_GRADIENT(what, c.inp, NC, dinp, norm_loss, &c);
    snprintf(what, sizeof what, "%s dweight", name);
    CHECK_GRADIENT(what, c.weight, C, dweight, norm_loss, &c);
    if (layer) CHECK_GRADIENT("layernorm dbias", c.bias, C, dbias, norm_loss, &c);

    /* accumulate: dinp += onto a random buffer, dweight/dbias doubled */
    norm_loss(&c);
    double *prior = random_buffer(o, r, NC, -1, 1), *dinp_again = copy_buffer(o, prior, NC);
    double *once_w = copy_buffer(o, dweight, C), *once_b = copy_buffer(o, dbias, C);
    norm_backward(&c, dinp_again, dweight, dbias);
    double *expected = malloc(NC * sizeof(double));
    scale_copy(expected, dinp, NC, 1, prior);
    CHECK_MSG(relative_difference(dinp_again, expected, NC) < 1e-12, "%s: dinp is not added to",
              name);
    check_doubles(name, dweight, once_w, C);
    if (layer) check_doubles("layernorm dbias", dbias, once_b, C);
    free(expected);
    double *buffers[] = {prior, dinp_again, once_w, once_b, dinp, dweight, dbias, c.inp,
                         c.weight, c.bias, c.out, c.mean, c.rstd, c.R};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++) o->free(buffers[i]);
}

/* ---------------------------------------------------------------- matmul */

typedef struct matmul_case {
    const ops *o;
    int N, C, OC;
    double *inp, *weight, *bias, *out, *R;
} matmul_case;

static long double matmul_loss(void *c_) {
    matmul_case *c = c_;
    c->o->matmul_forward(c->out, c->inp, c->weight, c->bias, c->N, c->C, c->OC);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->OC);
}

static void check_matmul(const ops *o, random_state *r) {
    enum { N = 19, C = 7, OC = 6 };
    matmul_case c = {o, N, C, OC, random_buffer(o, r, N * C, -1, 1),
                     random_buffer(o, r, OC * C, -1, 1), random_buffer(o, r, OC, -1, 1),
                     o->alloc(N * OC * 8), random_buffer(o, r, N * OC, -1, 1)};
    double *dinp = random_buffer(o, r, N * C, 5, 6); /* overwritten */
    double *dweight = o->alloc(OC * C * 8), *dbias = o->alloc(OC * 8);
    o->matmul_backward(dinp, dweight, dbias, c.R, c.inp, c.weight, N, C, OC);
    CHECK_GRADIENT("matmul dinp", c.inp, N * C, dinp, matmul_loss, &c);
    CHECK_GRADIENT("matmul dweight", c.weight, OC * C, dweight, matmul_loss, &c);
    CHECK_GRADIENT("matmul dbias", c.bias, OC, dbias, matmul_loss, &c);
    double *once_w = copy_buffer(o, dweight, OC * C), *once_b = copy_buffer(o, dbias, OC);
    o->matmul_backward(NULL, dweight, dbias, c.R, c.inp, c.weight, N, C, OC);
    check_doubles("matmul dweight", dweight, once_w, OC * C);
    check_doubles("matmul dbias", dbias, once_b, OC);
    double *buffers[] = {once_w, once_b, dinp, dweight, dbias, c.inp, c.weight, c.bias,
                         c.out, c.R};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++) o->free(buffers[i]);
}

/* ---------------------------------------------------------------- matmul with GELU */

/* An MLP out = down(gelu(up(inp))) with biases: matmul_gelu_forward and matmul_forward, whose
 * backward is matmul_gelu_backward then matmul_backward */
typedef struct mlp_case {
    const ops *o;
    int N, C, F;
    double *inp, *up, *up_bias, *down, *down_bias, *pre, *hidden, *out, *R;
} mlp_case;

static long double mlp_loss(void *c_) {
    mlp_case *c = c_;
    c->o->matmul_gelu_forward(c->hidden, c->pre, c->inp, c->up, c->up_bias, c->N, c->C, c->F);
    c->o->matmul_forward(c->out, c->hidden, c->down, c->down_bias, c->N, c->F, c->C);
    return weighted_sum(c->out, c->R, (size_t)c->N * c->C);
}

static void check_matmul_gelu(const ops *o, random_state *r) {
    enum { N = 13, C = 5, F = 8 };
    mlp_case c = {o, N, C, F, random_buffer(o, r, N * C, -2, 2), random_buffer(o, r, F * C, -1, 1),
                  random_buffer(o, r, F, -1, 1), random_buffer(o, r, C * F, -1, 1),
                  random_buffer(o, r, C, -1, 1), o->alloc(N * F * 8), o->alloc(N * F * 8),
                  o->alloc(N * C * 8), random_buffer(o, r, N * C, -1, 1)};
    double *dpre = random_buffer(o, r, N * F, 5, 6); /* overwritten */
    double *dinp = o->alloc(N * C * 8), *dup = o->alloc(F * C * 8), *dup_bias = o->alloc(F * 8);
    double *ddown = o->alloc(C * F * 8), *ddown_bias = o->alloc(C * 8);
    mlp_loss(&c); /* pre and hidden for the backward */
    o->matmul_gelu_backward(dpre, ddown, ddown_bias, c.R, c.hidden, c.down, c.pre, N, F, C);
    o->matmul_backward(dinp, dup, dup_bias, dpre, c.inp, c.up, N, C, F);
    CHECK_GRADIENT("matmul_gelu mlp dinp", c.inp, N * C, dinp, mlp_loss, &c);
    CHECK_GRADIENT("matmul_gelu mlp dweight up", c.up, F * C, dup, mlp_loss, &c);
    CHECK_GRADIENT("matmul_gelu mlp dbias up", c.up_bias, F, dup_bias, mlp_loss, &c);
    CHECK_GRADIENT("matmul_gelu mlp dweight down", c.down, C * F, ddown, mlp_loss, &c);
    CHECK_GRADIENT("matmul_gelu mlp dbias down", c.down_bias, C, ddown_bias, mlp_loss, &c);
    double *once_w = copy_buffer(o, ddown, C * F), *once_b = copy_buffer(o, ddown_bias, C);
    mlp_loss(&c); /* the gradient checks left pre and hidden of a perturbed input */
    o->matmul_gelu_backward(dpre, ddown, ddown_bias, c.R, c.hidden, c.down, c.pre, N, F, C);
    check_doubles("matmul_gelu dweight", ddown, once_w, C * F);
    check_doubles("matmul_gelu dbias", ddown_bias, once_b, C);
    double *buffers[] = {once_w, once_b, dpre, dinp, dup, dup_bias, ddown, ddown_bias, c.inp,
                         c.up, c.up_bias, c.down, c.down_bias, c.pre, c.hidden, c.out, c.R};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++) o->free(buffers[i]);
}

/* ---------------------------------------------------------------- qk-norm */

typedef struct qk_norm_case {
    const ops *o;
    int N, H, KV, hd;
    double *inp, *q_weight, *k_weight, *out, *rstd, *R;
} qk_norm_case;

static long double qk_norm_loss(void *c_) {
    qk_norm_case *c = c_;
    c->o->qk_norm_forward(c->out, c->rstd, c->inp, c->q_weight, c->k_weight, c->N, c->H, c->KV,
                          c->hd, 1e-6f);
    return weighted_sum(c->out, c->R, (size_t)c->N * (c->H + 2 * c->KV) * c->hd);
}

static void check_qk_norm(const ops *o, random_state *r) {
    enum { N = 20, H = 4, KV = 2, hd = 6 };
    const size_t n = (size_t)N * (H + 2 * KV) * hd;
    qk_norm_case c = {o, N, H, KV, hd, random_buffer(o, r, n, -2, 2),
                      random_buffer(o, r, hd, 0.5, 1.5), random_buffer(o, r, hd, 0.5, 1.5),
                      o->alloc(n * 8), o->alloc(N * (H + KV) * 8), random_buffer(o, r, n, -1, 1)};
    qk_norm_loss(&c);
    double *dinp = random_buffer(o, r, n, 5, 6); /* overwritten */
    double *dq = o->alloc(hd * 8), *dk = o->alloc(hd * 8);
    o->qk_norm_backward(dinp, dq, dk, c.R, c.inp, c.q_weight, c.k_weight, c.rstd, N, H, KV, hd);
    CHECK_GRADIENT("qk_norm dinp_qkv (q, k and v parts)", c.inp, n, dinp, qk_norm_loss, &c);
    CHECK_GRADIENT("qk_norm dq_weight", c.q_weight, hd, dq, qk_norm_loss, &c);
    CHECK_GRADIENT("qk_norm dk_weight", c.k_weight, hd, dk, qk_norm_loss, &c);
    double *once_q = copy_buffer(o, dq, hd), *once_k = copy_buffer(o, dk, hd);
    qk_norm_loss(&c);
    o->qk_norm_backward(dinp, dq, dk, c.R, c.inp, c.q_weight, c.k_weight, c.rstd, N, H, KV, hd);
    check_doubles("qk_norm dq_weight", dq, once_q, hd);
    check_doubles("qk_norm dk_weight", dk, once_k, hd);
    double *buffers[] = {once_q, once_k, dinp, dq, dk, c.inp, c.q_weight, c.k_weight, c.out,
                         c.rstd, c.R};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++) o->free(buffers[i]);
}

/* ---------------------------------------------------------------- rope */

typedef struct rope_case {
    const ops *o;
    int N, H, KV, hd;
    const int32_t *positions;
    double *inp, *work, *R;
} rope_case;

static long double rope_loss(void *c_) {
    rope_case *c = c_;
    size_t n = (size_t)c->N * (c->H + 2 * c->KV) * c->hd;
    memcpy(c->work, c->inp, n * sizeof(double));
    c->o->rope_forward(c->work, c->positions, c->N, c->H, c->KV, c->hd, 10000.0f);
    return weighted_sum(c->work, c->R, n);
}

/* max_position < N tabulates per position, larger per row: both paths. */
static void check_rope(const ops *o, random_state *r, int max_position) {
    enum { N = 12, H = 4, KV = 2, hd = 8 };
    const size_t n = (size_t)N * (H + 2 * KV) * hd;
    int32_t positions[N];
    for (int i = 0; i < N; i++) positions[i] = (int32_t)random_below(r, (uint64_t)max_position);
    rope_case c = {o, N, H, KV, hd, positions, random_buffer(o, r, n, -1, 1), o->alloc(n * 8),
                   random_buffer(o, r, n, -1, 1)};
    double *grad = copy_buffer(o, c.R, n);
    o->rope_backward(grad, positions, N, H, KV, hd, 10000.0f);
    char what[64];
    snprintf(what, sizeof what, "rope dqkv (positions < %d)", max_position);
    CHECK_GRADIENT(what, c.inp, n, grad, rope_loss, &c);
    o->free(grad);
    o->free(c.inp);
    o->free(c.work);
    o->free(c.R);
}

/* ---------------------------------------------------------------- attention */

typedef struct attention_case {
    const ops *o;
    int B, T, H, KV, hd;
    const attention_documents *documents;
    double *qkv, *out, *lse, *R;
} attention_case;

static long double attention_loss(void *c_) {
    attention_case *c = c_;
    c->o->attention_forward(c->out, c->lse, c->qkv, c->documents, c->B, c->T, c->H, c->KV,
                            c->hd);
    return weighted_sum(c->out, c->R, (size_t)c->B * c->T * c->H * c->hd);
}

/* Documents of random lengths 1..5 in every sequence. */
static void random_documents(random_state *r, int32_t *doc_start, int B, int T) {
    for (int b = 0; b < B; b++) {
        int start = 0;
        for (int t = 0; t < T; t++) {
            if (t > start && random_below(r, 4) == 0) start = t;
            doc_start[b * T + t] = start;
        }
    }
}

static void check_attention(const ops *o, random_state *r, int B, int T, int H, int KV, int hd,
                            int documents) {
    size_t n = (size_t)B * T * (H + 2 * KV) * hd, n_out = (size_t)B * T * H * hd;
    int32_t *doc_start = documents ? malloc(sizeof(int32_t) * B * T) : NULL;
    int32_t *starts = documents ? malloc(sizeof(int32_t) * (B * T + 1)) : NULL;
    attention_documents described = {doc_start, starts, 0};
    if (documents) {
        random_documents(r, doc_start, B, T);
        described.count = attention_documents_starts(doc_start, B, T, starts);
    }
    const attention_documents *docs = documents ? &described : NULL;
    attention_case c = {o, B, T, H, KV, hd, docs, random_buffer(o, r, n, -2, 2),
                        o->alloc(n_out * 8), o->alloc((size_t)B * H * T * 8),
                        random_buffer(o, r, n_out, -1, 1)};
    attention_loss(&c);
    double *dqkv = random_buffer(o, r, n, 5, 6); /* overwritten */
    o->attention_backward(dqkv, c.R, c.qkv, c.out, c.lse, docs, B, T, H, KV, hd);
    char what[96];
    snprintf(what, sizeof what, "attention dqkv B%d T%d H%d KV%d hd%d%s", B, T, H, KV, hd,
             documents ? " docs" : "");
    CHECK_GRADIENT(what, c.qkv, n, dqkv, attention_loss, &c);
    free(doc_start);
    free(starts);
    o->free(dqkv);
    o->free(c.qkv);
    o->free(c.out);
    o->free(c.lse);
    o->free(c.R);
}

/* ---------------------------------------------------------------- activations */

typedef enum activation_kind { SWIGLU, GELU, XIELU } activation_kind;

typedef struct activation_case {
    const ops *o;
    activation_kind kind;
    size_t n_inp, n_out;
    double *inp, *alpha, *out, *R;
} activation_case;

static long double activation_loss(void *c_) {
    activation_case *c = c_;
    if (c->kind == SWIGLU) c->o->swiglu_forward(c->out, c->inp, (int)(c->n_out / 7), 7);
    if (c->kind == GELU) c->o->gelu_forward(c->out, c->inp, c->n_inp);
    if (c->kind == XIELU) c->o->xielu_forward(c->out, c->inp, c->alpha, c->n_inp);
    return weighted_sum(c->out, c->R, c->n_out);
}

/* Inputs in (-3, 3) but away from the kinks of xIELU at 0 and -1e-6. */
static double *activation_inputs(const ops *o, random_state *r, size_t n) {
    double *x = random_buffer(o, r, n, -3, 3);
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) < 1e-2) x[i] += x[i] < 0 ? -0.1 : 0.1;
    return x;
}

static void check_activation(const ops *o, random_state *r, activation_kind kind, size_t n,
                             int inputs_too) {
    size_t n_out = kind == SWIGLU ? n / 2 : n;
    activation_case c = {o, kind, n, n_out, activation_inputs(o, r, n), o->alloc(2 * 8),
                         o->alloc(n_out * 8), random_buffer(o, r, n_out, -1, 1)};
    c.alpha[0] = log(expm1(0.8)) + 0.3 * (random_uniform(r) - 0.5); /* Apertus init ± noise */
    c.alpha[1] = log(expm1(0.3)) + 0.3 * (random_uniform(r) - 0.5);
    double *dinp = random_buffer(o, r, n, 5, 6), *dalpha = o->alloc(2 * 8);
    if (kind == SWIGLU) o->swiglu_backward(dinp, c.R, c.inp, (int)(n_out / 7), 7);
    if (kind == GELU) o->gelu_backward(dinp, c.R, c.inp, n);
    if (kind == XIELU) o->xielu_backward(dinp, dalpha, c.R, c.inp, c.alpha, n);
    const char *names[] = {"swiglu", "gelu", "xielu"};
    char what[64];
    snprintf(what, sizeof what, "%s dinp (n=%zu)", names[kind], n);
    if (inputs_too) CHECK_GRADIENT(what, c.inp, n, dinp, activation_loss, &c);
    if (kind == XIELU) {
        snprintf(what, sizeof what, "xielu dalpha_p_raw, dalpha_n_raw (n=%zu)", n);
        CHECK_GRADIENT(what, c.alpha, 2, dalpha, activation_loss, &c);
        double once[2] = {dalpha[0], dalpha[1]};
        o->xielu_backward(dinp, dalpha, c.R, c.inp, c.alpha, n);
        check_doubles("xielu dalpha", dalpha, once, 2);
    }
    o->free(dinp);
    o->free(dalpha);
    o->free(c.inp);
    o->free(c.alpha);
    o->free(c.out);
    o->free(c.R);
}

/* ---------------------------------------------------------------- cross-entropy */

typedef struct cross_entropy_case {
    const ops *o;
    int N, V;
    const int32_t *targets;
    double *logits, *work, *losses, *weights;
} cross_entropy_case;

static long double cross_entropy_loss(void *c_) {
    cross_entropy_case *c = c_;
    memcpy(c->work, c->logits, (size_t)c->N * c->V * sizeof(double));
    c->o->cross_entropy(c->work, c->losses, c->targets, NULL, c->N, c->V);
    return weighted_sum(c->losses, c->weights, (size_t)c->N);
}

static void check_cross_entropy(const ops *o, random_state *r) {
    enum { N = 9, V = 13 };
    int32_t targets[N];
    for (int n = 0; n < N; n++) targets[n] = (int32_t)random_below(r, V);
    cross_entropy_case c = {o, N, V, targets, random_buffer(o, r, N * V, -4, 4),
                            o->alloc(N * V * 8), o->alloc(N * 8), random_buffer(o, r, N, 0, 2)};
    c.weights[3] = 0; /* a masked token */
    cross_entropy_loss(&c);
    double *unweighted = copy_buffer(o, c.losses, N);
    double *dlogits = copy_buffer(o, c.logits, N * V);
    o->cross_entropy(dlogits, c.losses, targets, c.weights, N, V);
    CHECK_MSG(relative_difference(c.losses, unweighted, N) == 0,
              "cross_entropy: losses differ with and without weights");
    CHECK_GRADIENT("cross_entropy dlogits (weights, one zero)", c.logits, N * V, dlogits,
                   cross_entropy_loss, &c);
    o->free(unweighted);
    o->free(dlogits);
    o->free(c.logits);
    o->free(c.work);
    o->free(c.losses);
    o->free(c.weights);
}

/* ---------------------------------------------------------------- MoE row movement */

typedef struct rows_case {
    const ops *o;
    int n_out, C, k;
    const int32_t *rows;
    double *inp, *gates, *out, *R;
} rows_case;

static long double gather_loss(void *c_) {
    rows_case *c = c_;
    c->o->gather_rows(c->out, c->inp, c->rows, c->n_out, c->C);
    return weighted_sum(c->out, c->R, (size_t)c->n_out * c->C);
}

/* gather_rows' gradient is scatter_add_rows (repeated rows included) */
static void check_gather_scatter(const ops *o, random_state *r) {
    enum { ROWS = 7, N_OUT = 16, C = 70 }; /* C spans two column blocks */
    int32_t rows[N_OUT];
    for (int i = 0; i < N_OUT; i++) rows[i] = (int32_t)random_below(r, ROWS);
    rows_case c = {o, N_OUT, C, 0, rows, random_buffer(o, r, ROWS * C, -1, 1), NULL,
                   o->alloc(N_OUT * C * 8), random_buffer(o, r, N_OUT * C, -1, 1)};
    double *prior = random_buffer(o, r, ROWS * C, -1, 1), *grad = copy_buffer(o, prior, ROWS * C);
    o->scatter_add_rows(grad, c.R, rows, N_OUT, C);
    for (int i = 0; i < ROWS * C; i++) grad[i] -= prior[i];
    CHECK_GRADIENT("gather_rows / scatter_add_rows (+= onto data)", c.inp, ROWS * C, grad,
                   gather_loss, &c);
    o->free(prior);
    o->free(grad);
    o->free(c.inp);
    o->free(c.out);
    o->free(c.R);
}

/* moe_dispatch_backward is gather_rows' gradient when the rows are the tokens' slots: rows
 * gathered by row_token, the gradient summed back through slot (its inverse) */
static void check_moe_dispatch(const ops *o, random_state *r) {
    enum { N = 5, K = 2, C = 6, ROWS = 8 };
    /* every row once; two dropped slots */
    int32_t slot[N * K] = {3, 0, 7, -1, 1, 6, 5, 2, -1, 4};
    int32_t row_token[ROWS];
    for (int i = 0; i < N * K; i++)
        if (slot[i] >= 0) row_token[slot[i]] = i / K;
    rows_case c = {o,
                   ROWS,
                   C,
                   0,
                   row_token,
                   random_buffer(o, r, N * C, -1, 1),
                   NULL,
                   o->alloc(ROWS * C * 8),
                   random_buffer(o, r, ROWS * C, -1, 1)};
    double *prior = random_buffer(o, r, N * C, -1, 1), *grad = copy_buffer(o, prior, N * C);
    o->moe_dispatch_backward(grad, c.R, slot, N, K, C);
    for (int i = 0; i < N * C; i++)
        grad[i] -= prior[i];
    CHECK_GRADIENT("gather_rows by row_token / moe_dispatch_backward by slot (+= onto data)", c.inp,
                   N * C, grad, gather_loss, &c);
    o->free(prior);
    o->free(grad);
    o->free(c.inp);
    o->free(c.out);
    o->free(c.R);
}

static long double combine_loss(void *c_) {
    rows_case *c = c_;
    c->o->moe_combine_forward(c->out, c->inp, c->gates, c->rows, c->n_out, c->k, c->C);
    return weighted_sum(c->out, c->R, (size_t)c->n_out * c->C);
}

static void check_moe_combine(const ops *o, random_state *r) {
    enum { N = 5, K = 2, C = 6, SLOTS = 12 };
    /* distinct slots, two dropped (-1), slots 4, 6, 10 and 11 unused */
    int32_t slot[N * K] = {3, 0, 7, -1, 1, 9, 5, 2, -1, 8};
    double sentinel = 7.25;
    rows_case c = {o, N, C, K, slot, random_buffer(o, r, SLOTS * C, -1, 1),
                   random_buffer(o, r, N * K, 0, 1), o->alloc(N * C * 8),
                   random_buffer(o, r, N * C, -1, 1)};
    double *dexpert = random_buffer(o, r, SLOTS * C, sentinel, sentinel);
    double *dgates = random_buffer(o, r, N * K, 5, 6);
    o->moe_combine_backward(dexpert, dgates, c.R, c.inp, c.gates, slot, N, K, C);
    int untouched = 1;
    for (int s = 0; s < SLOTS; s++)
        for (int i = 0; i < C && (s == 4 || s == 6 || s >= 10); i++) {
            untouched &= dexpert[s * C + i] == sentinel;
            dexpert[s * C + i] = 0; /* the true gradient of an unused row */
        }
    CHECK_MSG(untouched, "moe_combine_backward wrote rows of unused slots");
    CHECK_MSG(dgates[3] == 0 && dgates[8] == 0, "moe_combine_backward: dropped dgates not 0");
    CHECK_GRADIENT("moe_combine dexpert_out", c.inp, SLOTS * C, dexpert, combine_loss, &c);
    CHECK_GRADIENT("moe_combine dgates", c.gates, N * K, dgates, combine_loss, &c);
    o->free(dexpert);
    o->free(dgates);
    o->free(c.inp);
    o->free(c.gates);
    o->free(c.out);
    o->free(c.R);
}

/* ---------------------------------------------------------------- MoE routing */

typedef struct route_case {
    const ops *o;
    moe_router router;
    int N;
    double aux_scale;
    double *logits, *gates, *losses, *R;
    int32_t *choice, *assigned, *slot, *row_token, *expert_offset;
    int32_t *first_choice, *first_slot; /* the unperturbed decisions */
    int flips;
} route_case;

/* L = Σ_kept R·gate + aux_scale·(aux + z): the gates as combine applies them, and the losses.
 * Every evaluation must take the unperturbed decisions (counted in flips otherwise). */
static long double route_loss(void *c_) {
    route_case *c = c_;
    int slots = c->N * c->router.top_k;
    c->losses[0] = c->losses[1] = 0;
    c->o->moe_route_forward(c->choice, c->gates, c->assigned, c->slot, c->row_token,
                            c->expert_offset, c->losses, c->logits, &c->router, c->N);
    c->flips += memcmp(c->choice, c->first_choice, sizeof(int32_t) * slots) != 0 ||
                memcmp(c->slot, c->first_slot, sizeof(int32_t) * slots) != 0;
    long double sum = 0;
    for (int s = 0; s < slots; s++)
        if (c->slot[s] >= 0) sum += (long double)c->R[s] * c->gates[s];
    return sum + c->aux_scale * ((long double)c->losses[0] + c->losses[1]);
}

static void check_moe_route(const ops *o, random_state *r, const char *what, int sigmoid, int k,
                            double capacity_factor) {
    enum { N = 9, E = 5 };
    int slots = N * k;
    int32_t ints[5][N * E];
    route_case c = {o, {E, k, sigmoid, 0.3, 0.02, capacity_factor}, N, 0.7,
                    random_buffer(o, r, N * E, -2, 2), o->alloc(slots * 8), o->alloc(2 * 8),
                    random_buffer(o, r, slots, -1, 1), ints[0], ints[1], ints[2], ints[3],
                    ints[4], malloc(sizeof(int32_t) * slots), malloc(sizeof(int32_t) * slots),
                    0};
    route_loss(&c);
    memcpy(c.first_choice, c.choice, sizeof(int32_t) * slots);
    memcpy(c.first_slot, c.slot, sizeof(int32_t) * slots);
    c.flips = 0;
    int dropped = slots - c.expert_offset[E];
    CHECK_MSG((capacity_factor > 0) == (dropped > 0), "%s: %d slots dropped", what, dropped);
    /* the gates' gradient as combine gives it: 0 for dropped slots */
    double *dgates = o->alloc(slots * 8), *dlogits = random_buffer(o, r, N * E, 5, 6);
    for (int s = 0; s < slots; s++) dgates[s] = c.slot[s] >= 0 ? c.R[s] : 0;
    o->moe_route_backward(dlogits, dgates, c.logits, c.choice, c.assigned, &c.router, N,
                          c.aux_scale);
    CHECK_GRADIENT(what, c.logits, N * E, dlogits, route_loss, &c);
    CHECK_MSG(c.flips == 0, "%s: %d evaluations changed the routing", what, c.flips);
    void *buffers[] = {c.logits, c.gates, c.losses, c.R, dgates, dlogits};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++) o->free(buffers[i]);
    free(c.first_choice);
    free(c.first_slot);
}

int main(void) {
    const ops *o = ops_cpu64();
    CHECK(o->act_bytes == 8 && o->master_bytes == 8);
    random_state r;
    random_seed(&r, 20240611);
    check_embedding(o, &r);
    check_norm(o, &r, 0);
    check_norm(o, &r, 1);
    check_matmul(o, &r);
    check_matmul_gelu(o, &r);
    check_qk_norm(o, &r);
    check_rope(o, &r, 8);
    check_rope(o, &r, 4000);
    check_attention(o, &r, 2, 9, 4, 2, 8, 0);   /* GQA */
    check_attention(o, &r, 2, 9, 4, 2, 8, 1);   /* GQA with documents */
    check_attention(o, &r, 1, 21, 2, 2, 6, 1);  /* several key tiles, hd not a tile multiple */
    check_attention(o, &r, 1, 6, 3, 1, 4, 0);   /* one kv head for three query heads */
    check_activation(o, &r, SWIGLU, 2 * 7 * 6, 1);
    check_activation(o, &r, GELU, 80, 1);
    check_activation(o, &r, XIELU, 80, 1);
    check_activation(o, &r, XIELU, 3 * 4096 + 17, 0); /* several chunks of the alpha sums */
    check_cross_entropy(o, &r);
    check_gather_scatter(o, &r);
    check_moe_combine(o, &r);
    check_moe_dispatch(o, &r);
    check_moe_route(o, &r, "moe_route softmax top-2 (dlogits overwritten)", 0, 2, 0);
    check_moe_route(o, &r, "moe_route softmax top-1", 0, 1, 0);
    check_moe_route(o, &r, "moe_route softmax top-2 capacity 0.5", 0, 2, 0.5);
    check_moe_route(o, &r, "moe_route sigmoid top-1", 1, 1, 0);
    check_moe_route(o, &r, "moe_route sigmoid top-3", 1, 3, 0);
    check_moe_route(o, &r, "moe_route sigmoid top-2 capacity 0.5", 1, 2, 0.5);
    return check_summary("test_ops_gradcheck");
}
