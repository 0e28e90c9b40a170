#include "train/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/random.h"
#include "train/moe_routing.h"

#define ABSENT SIZE_MAX

/* ---------------------------------------------------------------- layout -- */

typedef struct layout_builder {
    param_tensor *params;
    int count, capacity;
    size_t next;
    int decay_pass; /* tensors are laid out in two passes: decayed, then the rest */
} layout_builder;

/* Registers a tensor in the pass that matches its decay flag and returns its
 * offset (ABSENT in the other pass, where it is only skipped). */
static size_t add_param(layout_builder *b, int decay, param_init init, const char *name, int ndim,
                        int64_t d0, int64_t d1, int64_t d2) {
    if (decay != b->decay_pass) return ABSENT;
    if (b->count == b->capacity) {
        b->capacity = b->capacity ? 2 * b->capacity : 64;
        b->params = realloc(b->params, sizeof *b->params * b->capacity);
    }
    param_tensor *p = &b->params[b->count++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = d1;
    p->shape[2] = d2;
    p->count = (size_t)d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
    p->offset = b->next;
    p->decay = decay;
    p->init = init;
    b->next += p->count;
    return p->offset;
}

/* keep the offset found in whichever pass registered the tensor */
static void keep(size_t *slot, size_t offset) {
    if (offset != ABSENT) *slot = offset;
}

static void layout_layer(model *m, layout_builder *b, int i) {
    const model_config *c = &m->cfg;
    layer_offsets *L = &m->layers[i];
    int d = c->d_model, H = c->heads, KV = c->kv_heads, hd = m->head_dim;
    int biases = c->arch == ARCH_GPT2;
    int layernorm = c->norm == NORM_LAYERNORM;
    char name[96];
#define NAME(fmt, ...) (snprintf(name, sizeof name, "layers.%d." fmt, i, ##__VA_ARGS__), name)
    /* decayed matrices; q, k, v adjacent so one GEMM computes them */
    keep(&L->wqkv, add_param(b, 1, INIT_NORMAL, NAME("attn.wq"), 2, (int64_t)H * hd, d, 0));
    add_param(b, 1, INIT_NORMAL, NAME("attn.wk"), 2, (int64_t)KV * hd, d, 0);
    add_param(b, 1, INIT_NORMAL, NAME("attn.wv"), 2, (int64_t)KV * hd, d, 0);
    keep(&L->wo, add_param(b, 1, INIT_NORMAL_OUTPUT, NAME("attn.wo"), 2, d, (int64_t)H * hd, 0));
    if (!m->is_moe) {
        if (c->activation == ACTIVATION_SWIGLU) {
            keep(&L->w_up, add_param(b, 1, INIT_NORMAL, NAME("mlp.w_gate"), 2, c->ffn, d, 0));
            add_param(b, 1, INIT_NORMAL, NAME("mlp.w_up"), 2, c->ffn, d, 0);
        } else {
            keep(&L->w_up, add_param(b, 1, INIT_NORMAL, NAME("mlp.w_up"), 2, c->ffn, d, 0));
        }
        keep(&L->w_down, add_param(b, 1, INIT_NORMAL_OUTPUT, NAME("mlp.w_down"), 2, d, c->ffn, 0));
    } else {
        const moe_config *e = &c->moe;
        keep(&L->router, add_param(b, 1, INIT_NORMAL, NAME("moe.router"), 2, e->experts, d, 0));
        /* each expert is [up rows ; down]: a uniform stride, ready for grouped GEMMs */
        for (int x = 0; x < e->experts; x++) {
            size_t first;
            if (c->activation == ACTIVATION_SWIGLU) {
                first = add_param(b, 1, INIT_NORMAL, NAME("moe.experts.%d.w_gate", x), 2, e->ffn, d, 0);
                add_param(b, 1, INIT_NORMAL, NAME("moe.experts.%d.w_up", x), 2, e->ffn, d, 0);
            } else {
                first = add_param(b, 1, INIT_NORMAL, NAME("moe.experts.%d.w_up", x), 2, e->ffn, d, 0);
            }
            add_param(b, 1, INIT_NORMAL_OUTPUT, NAME("moe.experts.%d.w_down", x), 2, d, e->ffn, 0);
            if (x == 0) keep(&L->experts, first);
        }
        if (e->shared_experts > 0) {
            int sf = m->shared_ffn;
            if (c->activation == ACTIVATION_SWIGLU) {
                keep(&L->shared_up, add_param(b, 1, INIT_NORMAL, NAME("moe.shared.w_gate"), 2, sf, d, 0));
                add_param(b, 1, INIT_NORMAL, NAME("moe.shared.w_up"), 2, sf, d, 0);
            } else {
                keep(&L->shared_up, add_param(b, 1, INIT_NORMAL, NAME("moe.shared.w_up"), 2, sf, d, 0));
            }
            keep(&L->shared_down,
                 add_param(b, 1, INIT_NORMAL_OUTPUT, NAME("moe.shared.w_down"), 2, d, sf, 0));
        }
    }
    /* not decayed: norms, biases, xIELU scalars */
    keep(&L->attn_norm_w, add_param(b, 0, INIT_ONES, NAME("attn_norm.weight"), 1, d, 0, 0));
    if (layernorm) keep(&L->attn_norm_b, add_param(b, 0, INIT_ZEROS, NAME("attn_norm.bias"), 1, d, 0, 0));
    if (biases) {
        keep(&L->bqkv, add_param(b, 0, INIT_ZEROS, NAME("attn.bq"), 1, (int64_t)H * hd, 0, 0));
        add_param(b, 0, INIT_ZEROS, NAME("attn.bk"), 1, (int64_t)KV * hd, 0, 0);
        add_param(b, 0, INIT_ZEROS, NAME("attn.bv"), 1, (int64_t)KV * hd, 0, 0);
        keep(&L->bo, add_param(b, 0, INIT_ZEROS, NAME("attn.bo"), 1, d, 0, 0));
    }
    if (c->qk_norm) {
        keep(&L->q_norm, add_param(b, 0, INIT_ONES, NAME("attn.q_norm"), 1, hd, 0, 0));
        keep(&L->k_norm, add_param(b, 0, INIT_ONES, NAME("attn.k_norm"), 1, hd, 0, 0));
    }
    keep(&L->mlp_norm_w, add_param(b, 0, INIT_ONES, NAME("mlp_norm.weight"), 1, d, 0, 0));
    if (layernorm) keep(&L->mlp_norm_b, add_param(b, 0, INIT_ZEROS, NAME("mlp_norm.bias"), 1, d, 0, 0));
    if (!m->is_moe && biases) {
        keep(&L->b_up, add_param(b, 0, INIT_ZEROS, NAME("mlp.b_up"), 1, m->up_rows, 0, 0));
        keep(&L->b_down, add_param(b, 0, INIT_ZEROS, NAME("mlp.b_down"), 1, d, 0, 0));
    }
    if (!m->is_moe && c->activation == ACTIVATION_XIELU)
        keep(&L->xielu_alpha, add_param(b, 0, INIT_XIELU_ALPHA, NAME("mlp.xielu_alpha"), 1, 2, 0, 0));
#undef NAME
}

static void layout_model(model *m) {
    const model_config *c = &m->cfg;
    layout_builder b = {0};
    for (int i = 0; i < c->layers; i++) {
        layer_offsets *L = &m->layers[i];
        size_t *fields = (size_t *)L;
        for (size_t f = 0; f < sizeof *L / sizeof(size_t); f++) fields[f] = ABSENT;
    }
    m->embed_positions = m->final_norm_b = m->lm_head = ABSENT;
    for (b.decay_pass = 1; b.decay_pass >= 0; b.decay_pass--) {
        keep(&m->embed_tokens, add_param(&b, 1, INIT_NORMAL, "embed.tokens", 2, c->vocab, c->d_model, 0));
        if (c->arch == ARCH_GPT2)
            keep(&m->embed_positions,
                 add_param(&b, 1, INIT_NORMAL, "embed.positions", 2, c->seq_len, c->d_model, 0));
        for (int i = 0; i < c->layers; i++) layout_layer(m, &b, i);
        keep(&m->final_norm_w, add_param(&b, 0, INIT_ONES, "final_norm.weight", 1, c->d_model, 0, 0));
        if (c->norm == NORM_LAYERNORM)
            keep(&m->final_norm_b, add_param(&b, 0, INIT_ZEROS, "final_norm.bias", 1, c->d_model, 0, 0));
        if (!c->tie_embeddings)
            keep(&m->lm_head, add_param(&b, 1, INIT_NORMAL, "lm_head", 2, c->vocab, c->d_model, 0));
        if (b.decay_pass == 1) m->decayed_params = b.next;
    }
    if (c->tie_embeddings) m->lm_head = m->embed_tokens;
    m->params = b.params;
    m->param_count = b.count;
    m->total_params = b.next;
}

/* ------------------------------------------------------------ allocation -- */

/* Every device buffer of the model is carved from one allocation: `carve`
 * runs twice, first to measure (base NULL), then to hand out pointers. */
typedef struct arena {
    char *base;
    size_t used;
} arena;

static void *arena_take(arena *a, size_t elements, size_t element_bytes) {
    size_t offset = (a->used + 255) & ~(size_t)255; /* 256-byte aligned, as GPU kernels like */
    a->used = offset + (elements ? elements : 1) * element_bytes;
    return a->base ? a->base + offset : NULL;
}

#define ACT(n) arena_take(space, (size_t)(n), o->act_bytes)
#define MASTER(n) arena_take(space, (size_t)(n), o->master_bytes)
#define INT32(n) arena_take(space, (size_t)(n), sizeof(int32_t))

static void carve(model *m, arena *space) {
    const ops *o = m->ops;
    const model_config *c = &m->cfg;
    int N = m->N, d = c->d_model, H = c->heads, KV = c->kv_heads, hd = m->head_dim;
    int E = c->moe.experts, k = c->moe.top_k;
    size_t routed_rows = (size_t)N * (m->is_moe ? k : 0);
    int hidden_rows = m->is_moe ? m->shared_up_rows : m->up_rows;
    int hidden = m->is_moe ? m->shared_ffn : c->ffn;
    m->master = MASTER(m->total_params);
    m->grads = MASTER(m->total_params);
    m->compute = o->compute_aliases_master ? m->master : ACT(m->total_params);
    m->tokens = INT32(N);
    m->targets = INT32(N);
    m->positions = INT32(N);
    m->doc_start = INT32(N);
    m->loss_weights = MASTER(N);
    m->losses = MASTER(N);
    for (int i = 0; i < c->layers; i++) {
        layer_activations *a = &m->acts[i];
        a->resid_in = ACT((size_t)N * d);
        a->attn_norm_out = ACT((size_t)N * d);
        a->attn_norm_mean = MASTER(N);
        a->attn_norm_rstd = MASTER(N);
        a->qkv_pre = ACT((size_t)N * m->qkv_dim);
        a->qkv = ACT((size_t)N * m->qkv_dim);
        a->qk_rstd = MASTER((size_t)N * (H + KV));
        a->attn_out = ACT((size_t)N * H * hd);
        a->attn_lse = MASTER((size_t)m->micro_batch * H * m->seq_len);
        a->resid_mid = ACT((size_t)N * d);
        a->mlp_norm_out = ACT((size_t)N * d);
        a->mlp_norm_mean = MASTER(N);
        a->mlp_norm_rstd = MASTER(N);
        a->mlp_pre = ACT((size_t)N * hidden_rows);
        a->mlp_act = ACT((size_t)N * hidden);
        if (m->is_moe) {
            a->router_logits = ACT((size_t)N * E);
            a->expert_in = ACT(routed_rows * d);
            a->expert_pre = ACT(routed_rows * m->expert_up_rows);
            a->expert_act = ACT(routed_rows * c->moe.ffn);
            a->expert_out = ACT(routed_rows * d);
            a->slot = INT32(routed_rows);
            a->row_token = INT32(routed_rows);
            a->gates = MASTER(routed_rows);
        }
    }
    m->resid_out = ACT((size_t)N * d);
    m->final_norm_out = ACT((size_t)N * d);
    m->final_norm_mean = MASTER(N);
    m->final_norm_rstd = MASTER(N);
    m->logits = ACT((size_t)N * c->vocab);
    m->scratch_d = ACT((size_t)N * d);
    m->dresid = ACT((size_t)N * d);
    m->dnorm = ACT((size_t)N * d);
    m->dqkv = ACT((size_t)N * m->qkv_dim * 2);
    m->dattn = ACT((size_t)N * H * hd);
    m->dmlp_pre = ACT((size_t)N * hidden_rows);
    m->dmlp_act = ACT((size_t)N * hidden);
    if (m->is_moe) {
        m->dexpert_in = ACT(routed_rows * d);
        m->dexpert_pre = ACT(routed_rows * m->expert_up_rows);
        m->dexpert_act = ACT(routed_rows * c->moe.ffn);
        m->dexpert_out = ACT(routed_rows * d);
        m->dgates = MASTER(routed_rows);
        m->drouter_logits = ACT((size_t)N * E);
    }
}

int model_create(model *m, const ops *o, const config *cfg, int eod_id, status *st) {
    memset(m, 0, sizeof *m);
    m->ops = o;
    m->cfg = cfg->model;
    const model_config *c = &m->cfg;
    m->micro_batch = cfg->train.micro_batch;
    m->seq_len = c->seq_len;
    m->N = m->micro_batch * m->seq_len;
    m->eod_id = eod_id;
    m->head_dim = c->d_model / c->heads;
    m->qkv_dim = (c->heads + 2 * c->kv_heads) * m->head_dim;
    m->is_moe = c->moe.experts > 0;
    int gated = c->activation == ACTIVATION_SWIGLU;
    m->up_rows = gated ? 2 * c->ffn : c->ffn;
    m->expert_up_rows = gated ? 2 * c->moe.ffn : c->moe.ffn;
    m->shared_ffn = c->moe.shared_experts * c->moe.ffn;
    m->shared_up_rows = gated ? 2 * m->shared_ffn : m->shared_ffn;
    m->layers = calloc(c->layers, sizeof *m->layers);
    m->acts = calloc(c->layers, sizeof *m->acts);
    if (!m->layers || !m->acts) return status_fail(st, "model: out of host memory");
    layout_model(m);

    arena measure = {NULL, 0};
    carve(m, &measure);
    arena device = {o->alloc(measure.used), 0};
    m->device_arena = device.base;
    m->device_bytes = measure.used;
    int failed = device.base == NULL;
    if (!failed) carve(m, &device);
    int N = m->N, E = c->moe.experts, k = c->moe.top_k;
    size_t routed_rows = (size_t)N * (m->is_moe ? k : 0);
    for (int i = 0; i < c->layers && m->is_moe; i++) {
        m->acts[i].routing = moe_routing_create(N, &c->moe);
        if (!m->acts[i].routing) failed = 1;
    }
    if (m->is_moe) {
        m->host_dgates = calloc(routed_rows, sizeof *m->host_dgates);
        m->host_drouter_logits = calloc((size_t)N * E, sizeof *m->host_drouter_logits);
        m->host_router_staging =
            calloc((size_t)N * (E > k ? E : k), sizeof *m->host_router_staging);
        if (!m->host_dgates || !m->host_drouter_logits || !m->host_router_staging) failed = 1;
    }
    m->host_positions = calloc(N, sizeof *m->host_positions);
    m->host_doc_start = calloc(N, sizeof *m->host_doc_start);
    m->host_losses = calloc(N, sizeof *m->host_losses);
    m->host_inputs = calloc(N, sizeof *m->host_inputs);
    m->host_targets = calloc(N, sizeof *m->host_targets);
    if (failed || !m->host_positions || !m->host_doc_start || !m->host_losses || !m->host_inputs ||
        !m->host_targets) {
        model_destroy(m);
        return status_fail(st, "model: out of %s memory: %.2f GiB for %zu parameters and micro_batch %d",
                           o->name, (double)measure.used / (1 << 30), m->total_params, m->micro_batch);
    }
    return 0;
}

void model_destroy(model *m) {
    const ops *o = m->ops;
    if (!o) return;
    if (m->device_arena) o->free(m->device_arena);
    for (int i = 0; m->acts && i < m->cfg.layers; i++) moe_routing_destroy(m->acts[i].routing);
    free(m->acts);
    free(m->layers);
    free(m->params);
    free(m->host_positions);
    free(m->host_doc_start);
    free(m->host_losses);
    free(m->host_inputs);
    free(m->host_targets);
    free(m->host_dgates);
    free(m->host_drouter_logits);
    free(m->host_router_staging);
    memset(m, 0, sizeof *m);
}

const param_tensor *model_find_param(const model *m, const char *name) {
    for (int i = 0; i < m->param_count; i++)
        if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
    return NULL;
}

void model_init_weights(model *m, uint64_t seed) {
    float *host = malloc(sizeof *host * m->total_params);
    random_state rng;
    random_seed(&rng, seed);
    double std = m->cfg.init_std, output_std = std / sqrt(2.0 * m->cfg.layers);
    /* in declaration order, so the stream does not depend on the memory layout */
    for (int i = 0; i < m->param_count; i++) {
        const param_tensor *p = &m->params[i];
        float *w = host + p->offset;
        for (size_t j = 0; j < p->count; j++) {
            switch (p->init) {
            case INIT_NORMAL: w[j] = (float)(std * random_normal(&rng)); break;
            case INIT_NORMAL_OUTPUT: w[j] = (float)(output_std * random_normal(&rng)); break;
            case INIT_ONES: w[j] = 1.0f; break;
            case INIT_ZEROS: w[j] = 0.0f; break;
            case INIT_XIELU_ALPHA: w[j] = (float)log(expm1(j == 0 ? 0.8 : 0.8 - 0.5)); break;
            }
        }
    }
    m->ops->float_to_master(m->master, host, m->total_params);
    free(host);
    model_sync_compute_weights(m);
}

void model_sync_compute_weights(model *m) {
    if (m->compute != m->master) m->ops->master_to_act(m->compute, m->master, m->total_params);
}

void model_zero_grads(model *m) { m->ops->zero(m->grads, m->total_params * m->ops->master_bytes); }

/* ------------------------------------------------------------- pointers -- */

static void *at(void *base, size_t offset, size_t element_bytes) {
    return offset == ABSENT ? NULL : (char *)base + offset * element_bytes;
}
static void *weight(const model *m, size_t offset) {
    return at(m->compute, offset, m->ops->act_bytes);
}
static void *grad(const model *m, size_t offset) {
    return at(m->grads, offset, m->ops->master_bytes);
}
static void *act_row(const model *m, void *base, size_t row, size_t width) {
    return (char *)base + row * width * m->ops->act_bytes;
}

/* ------------------------------------------------------- building blocks -- */

static void norm_forward(const model *m, void *out, void *mean, void *rstd, const void *inp,
                         size_t w, size_t b) {
    const ops *o = m->ops;
    int N = m->N, d = m->cfg.d_model;
    float eps = (float)m->cfg.norm_eps;
    if (m->cfg.norm == NORM_LAYERNORM)
        o->layernorm_forward(out, mean, rstd, inp, weight(m, w), weight(m, b), N, d, eps);
    else
        o->rmsnorm_forward(out, rstd, inp, weight(m, w), N, d, eps);
}

/* dinp += d(norm)/d(inp) · dout */
static void norm_backward(const model *m, void *dinp, const void *dout, const void *inp,
                          const void *mean, const void *rstd, size_t w, size_t b) {
    const ops *o = m->ops;
    int N = m->N, d = m->cfg.d_model;
    if (m->cfg.norm == NORM_LAYERNORM)
        o->layernorm_backward(dinp, grad(m, w), grad(m, b), dout, inp, weight(m, w), mean, rstd, N, d);
    else
        o->rmsnorm_backward(dinp, grad(m, w), dout, inp, weight(m, w), rstd, N, d);
}

static void activation_forward(const model *m, void *out, const void *inp, int rows, int F,
                               size_t alpha) {
    const ops *o = m->ops;
    size_t n = (size_t)rows * F;
    switch (m->cfg.activation) {
    case ACTIVATION_SWIGLU: o->swiglu_forward(out, inp, rows, F); break;
    case ACTIVATION_GELU: o->gelu_forward(out, inp, n); break;
    case ACTIVATION_XIELU: o->xielu_forward(out, inp, weight(m, alpha), n); break;
    }
}

static void activation_backward(const model *m, void *dinp, const void *dout, const void *inp,
                                int rows, int F, size_t alpha) {
    const ops *o = m->ops;
    size_t n = (size_t)rows * F;
    switch (m->cfg.activation) {
    case ACTIVATION_SWIGLU: o->swiglu_backward(dinp, dout, inp, rows, F); break;
    case ACTIVATION_GELU: o->gelu_backward(dinp, dout, inp, n); break;
    case ACTIVATION_XIELU:
        o->xielu_backward(dinp, grad(m, alpha), dout, inp, weight(m, alpha), n);
        break;
    }
}

/* A two-layer MLP over `rows` rows: out = down(act(up(inp))). Hidden buffers
 * `pre` [rows][up_rows] and `hidden` [rows][F] are kept for backward. */
typedef struct mlp_weights {
    size_t up, up_bias, down, down_bias, alpha;
    int F, up_rows;
} mlp_weights;

static void mlp_forward(const model *m, const mlp_weights *w, void *out, void *pre, void *hidden,
                        const void *inp, int rows) {
    const ops *o = m->ops;
    int d = m->cfg.d_model;
    o->matmul_forward(pre, inp, weight(m, w->up), weight(m, w->up_bias), rows, d, w->up_rows);
    activation_forward(m, hidden, pre, rows, w->F, w->alpha);
    o->matmul_forward(out, hidden, weight(m, w->down), weight(m, w->down_bias), rows, w->F, d);
}

/* dinp = d(inp) (overwritten); uses dpre/dhidden as scratch */
static void mlp_backward(const model *m, const mlp_weights *w, void *dinp, void *dpre,
                         void *dhidden, const void *dout, const void *pre, const void *hidden,
                         const void *inp, int rows) {
    const ops *o = m->ops;
    int d = m->cfg.d_model;
    o->matmul_backward(dhidden, grad(m, w->down), grad(m, w->down_bias), dout, hidden,
                       weight(m, w->down), rows, w->F, d);
    activation_backward(m, dpre, dhidden, pre, rows, w->F, w->alpha);
    o->matmul_backward(dinp, grad(m, w->up), grad(m, w->up_bias), dpre, inp, weight(m, w->up),
                       rows, d, w->up_rows);
}

static mlp_weights dense_mlp(const model *m, const layer_offsets *L) {
    mlp_weights w = {L->w_up, L->b_up, L->w_down, L->b_down, L->xielu_alpha, m->cfg.ffn, m->up_rows};
    return w;
}

static mlp_weights shared_mlp(const model *m, const layer_offsets *L) {
    mlp_weights w = {L->shared_up, ABSENT, L->shared_down, ABSENT, ABSENT, m->shared_ffn,
                     m->shared_up_rows};
    return w;
}

static mlp_weights expert_mlp(const model *m, const layer_offsets *L, int e) {
    /* up [expert_up_rows][d] then down [d][ffn] */
    size_t stride = (size_t)(m->expert_up_rows + m->cfg.moe.ffn) * m->cfg.d_model;
    size_t up = L->experts + (size_t)e * stride;
    mlp_weights w = {up, ABSENT, up + (size_t)m->expert_up_rows * m->cfg.d_model, ABSENT, ABSENT,
                     m->cfg.moe.ffn, m->expert_up_rows};
    return w;
}

/* ---------------------------------------------------------------- MoE ---- */

/* Router logits and gates cross to the host as double. Where the backend's element type is
 * double (cpu64, the finite-difference reference) they are copied as they are, so routing is
 * exact there; other backends hold at most fp32 and go through float. */
typedef void (*to_float_fn)(float *host, const void *src, size_t n);
typedef void (*from_float_fn)(void *dst, const float *host, size_t n);

static void to_host_double(const model *m, double *host, const void *src, size_t n,
                           size_t element_bytes, to_float_fn to_float) {
    if (element_bytes == sizeof(double)) {
        m->ops->copy_to_host(host, src, n * sizeof(double));
        return;
    }
    to_float(m->host_router_staging, src, n);
    for (size_t i = 0; i < n; i++) host[i] = m->host_router_staging[i];
}

static void from_host_double(const model *m, void *dst, const double *host, size_t n,
                             size_t element_bytes, from_float_fn from_float) {
    if (element_bytes == sizeof(double)) {
        m->ops->copy_to_device(dst, host, n * sizeof(double));
        return;
    }
    for (size_t i = 0; i < n; i++) m->host_router_staging[i] = (float)host[i];
    from_float(dst, m->host_router_staging, n);
}

/* out [N][d] = Σ gates · experts(x) (+ shared experts(x)), x = mlp_norm_out */
static void moe_forward(model *m, int layer, void *out) {
    const ops *o = m->ops;
    const layer_offsets *L = &m->layers[layer];
    layer_activations *a = &m->acts[layer];
    moe_routing *r = a->routing;
    int N = m->N, d = m->cfg.d_model, E = r->E, k = r->k;
    o->matmul_forward(a->router_logits, a->mlp_norm_out, weight(m, L->router), NULL, N, d, E);
    to_host_double(m, r->logits, a->router_logits, (size_t)N * E, o->act_bytes, o->act_to_float);
    moe_route(r);
    m->aux_loss += r->aux_loss;
    m->z_loss += r->z_loss;
    o->copy_to_device(a->slot, r->slot, sizeof(int32_t) * N * k);
    o->copy_to_device(a->row_token, r->row_token, sizeof(int32_t) * (r->rows ? r->rows : 1));
    from_host_double(m, a->gates, r->used_gates, (size_t)N * k, o->master_bytes,
                     o->float_to_master);

    o->gather_rows(a->expert_in, a->mlp_norm_out, a->row_token, r->rows, d);
    for (int e = 0; e < E; e++) {
        int first = r->expert_offset[e], rows = r->expert_offset[e + 1] - first;
        if (rows == 0) continue;
        mlp_weights w = expert_mlp(m, L, e);
        mlp_forward(m, &w, act_row(m, a->expert_out, first, d),
                    act_row(m, a->expert_pre, first, w.up_rows),
                    act_row(m, a->expert_act, first, w.F), act_row(m, a->expert_in, first, d), rows);
    }
    o->moe_combine_forward(out, a->expert_out, a->gates, a->slot, N, k, d);
    if (m->shared_ffn > 0) {
        mlp_weights w = shared_mlp(m, L);
        mlp_forward(m, &w, m->dnorm, a->mlp_pre, a->mlp_act, a->mlp_norm_out, N);
        o->accumulate(out, m->dnorm, (size_t)N * d);
    }
}

/* m->dnorm = d(mlp_norm_out) given dout = d(out) */
static void moe_backward(model *m, int layer, const void *dout) {
    const ops *o = m->ops;
    const layer_offsets *L = &m->layers[layer];
    layer_activations *a = &m->acts[layer];
    const moe_routing *r = a->routing;
    int N = m->N, d = m->cfg.d_model, E = r->E, k = r->k;
    if (m->shared_ffn > 0) {
        mlp_weights w = shared_mlp(m, L);
        mlp_backward(m, &w, m->dnorm, m->dmlp_pre, m->dmlp_act, dout, a->mlp_pre, a->mlp_act,
                     a->mlp_norm_out, N);
    } else {
        o->zero(m->dnorm, (size_t)N * d * o->act_bytes);
    }
    o->moe_combine_backward(m->dexpert_out, m->dgates, dout, a->expert_out, a->gates, a->slot, N,
                            k, d);
    for (int e = 0; e < E; e++) {
        int first = r->expert_offset[e], rows = r->expert_offset[e + 1] - first;
        if (rows == 0) continue;
        mlp_weights w = expert_mlp(m, L, e);
        mlp_backward(m, &w, act_row(m, m->dexpert_in, first, d),
                     act_row(m, m->dexpert_pre, first, w.up_rows),
                     act_row(m, m->dexpert_act, first, w.F), act_row(m, m->dexpert_out, first, d),
                     act_row(m, a->expert_pre, first, w.up_rows),
                     act_row(m, a->expert_act, first, w.F), act_row(m, a->expert_in, first, d),
                     rows);
    }
    o->scatter_add_rows(m->dnorm, m->dexpert_in, a->row_token, r->rows, d);
    /* the router: gates and the auxiliary losses */
    to_host_double(m, m->host_dgates, m->dgates, (size_t)N * k, o->master_bytes,
                   o->master_to_float);
    moe_router_backward(r, m->host_dgates, m->moe_scale, m->host_drouter_logits);
    from_host_double(m, m->drouter_logits, m->host_drouter_logits, (size_t)N * E, o->act_bytes,
                     o->float_to_act);
    o->matmul_backward(m->scratch_d, grad(m, L->router), NULL, m->drouter_logits, a->mlp_norm_out,
                       weight(m, L->router), N, d, E);
    o->accumulate(m->dnorm, m->scratch_d, (size_t)N * d);
}

/* -------------------------------------------------------------- layers ---- */

static void layer_forward(model *m, int i, void *out) {
    const ops *o = m->ops;
    const model_config *c = &m->cfg;
    const layer_offsets *L = &m->layers[i];
    layer_activations *a = &m->acts[i];
    int N = m->N, d = c->d_model, H = c->heads, KV = c->kv_heads, hd = m->head_dim;
    size_t nd = (size_t)N * d;

    norm_forward(m, a->attn_norm_out, a->attn_norm_mean, a->attn_norm_rstd, a->resid_in,
                 L->attn_norm_w, L->attn_norm_b);
    o->matmul_forward(a->qkv_pre, a->attn_norm_out, weight(m, L->wqkv), weight(m, L->bqkv), N, d,
                      m->qkv_dim);
    if (c->qk_norm)
        o->qk_norm_forward(a->qkv, a->qk_rstd, a->qkv_pre, weight(m, L->q_norm),
                           weight(m, L->k_norm), N, H, KV, hd, (float)c->norm_eps);
    else
        o->copy_device(a->qkv, a->qkv_pre, (size_t)N * m->qkv_dim * o->act_bytes);
    if (c->arch == ARCH_LLAMA) o->rope_forward(a->qkv, m->positions, N, H, KV, hd, (float)c->rope_theta);
    o->attention_forward(a->attn_out, a->attn_lse, a->qkv, c->document_masking ? m->doc_start : NULL,
                         m->micro_batch, m->seq_len, H, KV, hd);
    o->matmul_forward(m->scratch_d, a->attn_out, weight(m, L->wo), weight(m, L->bo), N, H * hd, d);
    o->add(a->resid_mid, a->resid_in, m->scratch_d, nd);

    norm_forward(m, a->mlp_norm_out, a->mlp_norm_mean, a->mlp_norm_rstd, a->resid_mid,
                 L->mlp_norm_w, L->mlp_norm_b);
    if (m->is_moe) {
        moe_forward(m, i, m->scratch_d);
    } else {
        mlp_weights w = dense_mlp(m, L);
        mlp_forward(m, &w, m->scratch_d, a->mlp_pre, a->mlp_act, a->mlp_norm_out, N);
    }
    o->add(out, a->resid_mid, m->scratch_d, nd);
}

/* On entry m->dresid = d(layer output); on exit m->dresid = d(layer input). */
static void layer_backward(model *m, int i) {
    const ops *o = m->ops;
    const model_config *c = &m->cfg;
    const layer_offsets *L = &m->layers[i];
    layer_activations *a = &m->acts[i];
    int N = m->N, d = c->d_model, H = c->heads, KV = c->kv_heads, hd = m->head_dim;

    /* MLP half: the residual passes dresid through; the norm adds its share */
    if (m->is_moe) {
        moe_backward(m, i, m->dresid);
    } else {
        mlp_weights w = dense_mlp(m, L);
        mlp_backward(m, &w, m->dnorm, m->dmlp_pre, m->dmlp_act, m->dresid, a->mlp_pre, a->mlp_act,
                     a->mlp_norm_out, N);
    }
    norm_backward(m, m->dresid, m->dnorm, a->resid_mid, a->mlp_norm_mean, a->mlp_norm_rstd,
                  L->mlp_norm_w, L->mlp_norm_b);

    /* attention half */
    void *dqkv = m->dqkv, *dqkv_pre = (char *)m->dqkv + (size_t)N * m->qkv_dim * o->act_bytes;
    o->matmul_backward(m->dattn, grad(m, L->wo), grad(m, L->bo), m->dresid, a->attn_out,
                       weight(m, L->wo), N, H * hd, d);
    o->attention_backward(dqkv, m->dattn, a->qkv, a->attn_out, a->attn_lse,
                          c->document_masking ? m->doc_start : NULL, m->micro_batch, m->seq_len,
                          H, KV, hd);
    if (c->arch == ARCH_LLAMA) o->rope_backward(dqkv, m->positions, N, H, KV, hd, (float)c->rope_theta);
    if (c->qk_norm) {
        o->qk_norm_backward(dqkv_pre, grad(m, L->q_norm), grad(m, L->k_norm), dqkv, a->qkv_pre,
                            weight(m, L->q_norm), weight(m, L->k_norm), a->qk_rstd, N, H, KV, hd);
        dqkv = dqkv_pre;
    }
    o->matmul_backward(m->dnorm, grad(m, L->wqkv), grad(m, L->bqkv), dqkv, a->attn_norm_out,
                       weight(m, L->wqkv), N, d, m->qkv_dim);
    norm_backward(m, m->dresid, m->dnorm, a->resid_in, a->attn_norm_mean, a->attn_norm_rstd,
                  L->attn_norm_w, L->attn_norm_b);
}

/* ---------------------------------------------------------- whole model -- */

/* Positions restart and attention windows begin after each EOD input when
 * document masking is on (Megatron's reset_position_ids / reset_attention_mask). */
static void document_positions(model *m, const int32_t *tokens) {
    int T = m->seq_len;
    for (int b = 0; b < m->micro_batch; b++) {
        const int32_t *row = tokens + (size_t)b * (T + 1);
        int start = 0;
        for (int t = 0; t < T; t++) {
            int n = b * T + t;
            m->host_doc_start[n] = m->cfg.document_masking ? start : 0;
            m->host_positions[n] = t - m->host_doc_start[n];
            if (m->cfg.document_masking && m->eod_id >= 0 && row[t] == m->eod_id) start = t + 1;
        }
    }
}

void model_forward(model *m, const int32_t *tokens, const float *loss_weights, double moe_scale) {
    const ops *o = m->ops;
    const model_config *c = &m->cfg;
    int N = m->N, T = m->seq_len, d = c->d_model;
    int32_t *inputs = m->host_inputs, *targets = m->host_targets;
    for (int b = 0; b < m->micro_batch; b++)
        for (int t = 0; t < T; t++) {
            inputs[b * T + t] = tokens[(size_t)b * (T + 1) + t];
            targets[b * T + t] = tokens[(size_t)b * (T + 1) + t + 1];
        }
    document_positions(m, tokens);
    o->copy_to_device(m->tokens, inputs, sizeof *inputs * N);
    o->copy_to_device(m->targets, targets, sizeof *targets * N);
    o->copy_to_device(m->positions, m->host_positions, sizeof(int32_t) * N);
    o->copy_to_device(m->doc_start, m->host_doc_start, sizeof(int32_t) * N);
    m->aux_loss = m->z_loss = 0;
    m->moe_scale = moe_scale;

    o->embedding_forward(m->acts[0].resid_in, m->tokens, m->positions, weight(m, m->embed_tokens),
                         weight(m, m->embed_positions), N, d);
    for (int i = 0; i < c->layers; i++)
        layer_forward(m, i, i + 1 < c->layers ? m->acts[i + 1].resid_in : m->resid_out);
    norm_forward(m, m->final_norm_out, m->final_norm_mean, m->final_norm_rstd, m->resid_out,
                 m->final_norm_w, m->final_norm_b);
    o->matmul_forward(m->logits, m->final_norm_out, weight(m, m->lm_head), NULL, N, d, c->vocab);
    if (loss_weights) o->float_to_master(m->loss_weights, loss_weights, N);
    o->cross_entropy(m->logits, m->losses, m->targets, loss_weights ? m->loss_weights : NULL, N,
                     c->vocab);
    o->master_to_float(m->host_losses, m->losses, N);
}

void model_backward(model *m) {
    const ops *o = m->ops;
    const model_config *c = &m->cfg;
    int N = m->N, d = c->d_model;
    o->matmul_backward(m->dnorm, grad(m, m->lm_head), NULL, m->logits, m->final_norm_out,
                       weight(m, m->lm_head), N, d, c->vocab);
    o->zero(m->dresid, (size_t)N * d * o->act_bytes);
    norm_backward(m, m->dresid, m->dnorm, m->resid_out, m->final_norm_mean, m->final_norm_rstd,
                  m->final_norm_w, m->final_norm_b);
    for (int i = c->layers - 1; i >= 0; i--) layer_backward(m, i);
    o->embedding_backward(grad(m, m->embed_tokens), grad(m, m->embed_positions), m->dresid,
                          m->tokens, m->positions, N, d);
}

double model_flops_per_token(const model *m) {
    const model_config *c = &m->cfg;
    double active = 0;
    for (int i = 0; i < m->param_count; i++) {
        const param_tensor *p = &m->params[i];
        if (p->ndim != 2 || strcmp(p->name, "embed.positions") == 0) continue;
        if (strcmp(p->name, "embed.tokens") == 0 && !c->tie_embeddings) continue;
        active += (double)p->count;
    }
    if (m->is_moe) {
        double per_expert = (double)(m->expert_up_rows + c->moe.ffn) * c->d_model;
        active -= c->layers * per_expert * (c->moe.experts - c->moe.top_k);
    }
    return 6.0 * active + 6.0 * c->layers * c->d_model * m->seq_len;
}
