#include "train/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/random.h"

#define ABSENT SIZE_MAX

/* ---------------------------------------------------------------- layout -- */

/* What one rank holds: the tensor-parallel slice and the pipeline stage's layers. The global
 * layout (the single-rank model) is the plan with tp_size 1 and every layer. */
typedef struct layout_plan {
    int tp_rank, tp_size;
    int first_layer, layers;
    int first_stage, last_stage;
    int first_expert, local_experts;  /* the routed experts held (expert parallelism) */
} layout_plan;

typedef struct layout_builder {
    const model_config *c;
    layout_plan plan;
    int head_dim, gated, is_moe;
    param_tensor *params;
    int count, capacity;
    size_t next;
    int decay_pass; /* tensors are laid out in two passes: decayed, then the rest */
} layout_builder;

/* How a tensor is split over the tensor-parallel ranks. */
typedef enum {
    WHOLE,        /* replicated; every rank computes the same gradient */
    WHOLE_PARTIAL,/* replicated; each rank computes a partial gradient (summed over tp) */
    ROWS,         /* split along dimension 0 (column-parallel output features, vocabulary) */
    COLUMNS,      /* split along dimension 1 (row-parallel input features) */
} split_kind;

/* The part [start, start + count) of `total` that tensor-parallel rank r of n holds: even
 * shares, except the vocabulary which may not divide (ceil-sized shares, the last smaller). */
static void split_range(int64_t total, int rank, int size, int64_t *start, int64_t *count) {
    int64_t share = (total + size - 1) / size;
    *start = share * rank < total ? share * rank : total;
    *count = total - *start < share ? total - *start : share;
}

/* Registers a tensor in the pass that matches its decay flag and returns its offset (ABSENT in
 * the other pass, where it is only skipped). Shapes are global; the rank's part follows `split`. */
static size_t add_param(layout_builder *b, int decay, param_init init, split_kind split,
                        const char *name, int ndim, int64_t d0, int64_t d1) {
    if (decay != b->decay_pass) return ABSENT;
    if (b->count == b->capacity) {
        b->capacity = b->capacity ? 2 * b->capacity : 64;
        b->params = realloc(b->params, sizeof *b->params * b->capacity);
    }
    param_tensor *p = &b->params[b->count++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->global_shape[0] = p->shape[0] = d0;
    p->global_shape[1] = p->shape[1] = ndim > 1 ? d1 : 0;
    p->shard_dim = -1;
    if ((split == ROWS || split == COLUMNS) && b->plan.tp_size > 1) {
        p->shard_dim = split == ROWS ? 0 : 1;
        split_range(p->global_shape[p->shard_dim], b->plan.tp_rank, b->plan.tp_size,
                    &p->shard_offset, &p->shape[p->shard_dim]);
    }
    p->tp_partial = split == WHOLE_PARTIAL && b->plan.tp_size > 1;
    /* a replicated tensor counts once in the norm: on tensor-parallel rank 0 */
    p->counts_in_norm = split == ROWS || split == COLUMNS || b->plan.tp_rank == 0;
    p->count = (size_t)p->shape[0] * (ndim > 1 ? p->shape[1] : 1);
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

/* A gated (SwiGLU) MLP's gate and up projections, then down: [up rows ; down] adjacent. */
static size_t add_mlp(layout_builder *b, const char *prefix, int64_t F, size_t *down) {
    const model_config *c = b->c;
    char name[96];
    size_t first;
    if (b->gated) {
        snprintf(name, sizeof name, "%s.w_gate", prefix);
        first = add_param(b, 1, INIT_NORMAL, ROWS, name, 2, F, c->d_model);
        snprintf(name, sizeof name, "%s.w_up", prefix);
        add_param(b, 1, INIT_NORMAL, ROWS, name, 2, F, c->d_model);
    } else {
        snprintf(name, sizeof name, "%s.w_up", prefix);
        first = add_param(b, 1, INIT_NORMAL, ROWS, name, 2, F, c->d_model);
    }
    snprintf(name, sizeof name, "%s.w_down", prefix);
    size_t d = add_param(b, 1, INIT_NORMAL_OUTPUT, COLUMNS, name, 2, c->d_model, F);
    if (down) keep(down, d);
    return first;
}

static void layout_layer(layout_builder *b, layer_offsets *L, int i) {
    const model_config *c = b->c;
    int d = c->d_model, H = c->heads, KV = c->kv_heads, hd = b->head_dim;
    int biases = c->arch == ARCH_GPT2;
    int layernorm = c->norm == NORM_LAYERNORM;
    char name[96], prefix[96];
#define NAME(fmt, ...) (snprintf(name, sizeof name, "layers.%d." fmt, i, ##__VA_ARGS__), name)
    /* decayed matrices; q, k, v adjacent so one GEMM computes them */
    keep(&L->wqkv, add_param(b, 1, INIT_NORMAL, ROWS, NAME("attn.wq"), 2, (int64_t)H * hd, d));
    add_param(b, 1, INIT_NORMAL, ROWS, NAME("attn.wk"), 2, (int64_t)KV * hd, d);
    add_param(b, 1, INIT_NORMAL, ROWS, NAME("attn.wv"), 2, (int64_t)KV * hd, d);
    keep(&L->wo, add_param(b, 1, INIT_NORMAL_OUTPUT, COLUMNS, NAME("attn.wo"), 2, d, (int64_t)H * hd));
    if (!b->is_moe) {
        snprintf(prefix, sizeof prefix, "layers.%d.mlp", i);
        keep(&L->w_up, add_mlp(b, prefix, c->ffn, &L->w_down));
    } else {
        const moe_config *e = &c->moe;
        keep(&L->router, add_param(b, 1, INIT_NORMAL, WHOLE, NAME("moe.router"), 2, e->experts, d));
        /* each expert is [up rows ; down]: a uniform stride, ready for grouped GEMMs */
        for (int x = 0; x < b->plan.local_experts; x++) {
            snprintf(prefix, sizeof prefix, "layers.%d.moe.experts.%d", i, b->plan.first_expert + x);
            int before = b->count;
            size_t first = add_mlp(b, prefix, e->ffn, NULL);
            for (int t = before; t < b->count; t++) b->params[t].expert = 1;
            if (x == 0) keep(&L->experts, first);
        }
        if (e->shared_experts > 0) {
            snprintf(prefix, sizeof prefix, "layers.%d.moe.shared", i);
            keep(&L->shared_up, add_mlp(b, prefix, (int64_t)e->shared_experts * e->ffn,
                                        &L->shared_down));
        }
    }
    /* not decayed: norms, biases, xIELU scalars */
    keep(&L->attn_norm_w, add_param(b, 0, INIT_ONES, WHOLE, NAME("attn_norm.weight"), 1, d, 0));
    if (layernorm)
        keep(&L->attn_norm_b, add_param(b, 0, INIT_ZEROS, WHOLE, NAME("attn_norm.bias"), 1, d, 0));
    if (biases) {
        keep(&L->bqkv, add_param(b, 0, INIT_ZEROS, ROWS, NAME("attn.bq"), 1, (int64_t)H * hd, 0));
        add_param(b, 0, INIT_ZEROS, ROWS, NAME("attn.bk"), 1, (int64_t)KV * hd, 0);
        add_param(b, 0, INIT_ZEROS, ROWS, NAME("attn.bv"), 1, (int64_t)KV * hd, 0);
        keep(&L->bo, add_param(b, 0, INIT_ZEROS, WHOLE, NAME("attn.bo"), 1, d, 0));
    }
    if (c->qk_norm) {
        keep(&L->q_norm, add_param(b, 0, INIT_ONES, WHOLE_PARTIAL, NAME("attn.q_norm"), 1, hd, 0));
        keep(&L->k_norm, add_param(b, 0, INIT_ONES, WHOLE_PARTIAL, NAME("attn.k_norm"), 1, hd, 0));
    }
    keep(&L->mlp_norm_w, add_param(b, 0, INIT_ONES, WHOLE, NAME("mlp_norm.weight"), 1, d, 0));
    if (layernorm)
        keep(&L->mlp_norm_b, add_param(b, 0, INIT_ZEROS, WHOLE, NAME("mlp_norm.bias"), 1, d, 0));
    if (!b->is_moe && biases) {
        /* (a gated MLP with biases is refused with tensor parallelism: config_resolve) */
        keep(&L->b_up, add_param(b, 0, INIT_ZEROS, ROWS, NAME("mlp.b_up"), 1,
                                 (int64_t)(b->gated ? 2 : 1) * c->ffn, 0));
        keep(&L->b_down, add_param(b, 0, INIT_ZEROS, WHOLE, NAME("mlp.b_down"), 1, d, 0));
    }
    if (!b->is_moe && c->activation == ACTIVATION_XIELU)
        keep(&L->xielu_alpha,
             add_param(b, 0, INIT_XIELU_ALPHA, WHOLE_PARTIAL, NAME("mlp.xielu_alpha"), 1, 2, 0));
#undef NAME
}

/* Lays out the tensors of `plan` (ABSENT offsets for what it does not hold). */
static void layout_build(layout_builder *b, const model_config *c, const layout_plan *plan,
                         layer_offsets *layers, size_t *embed_tokens, size_t *embed_positions,
                         size_t *final_norm_w, size_t *final_norm_b, size_t *lm_head,
                         size_t *decayed) {
    memset(b, 0, sizeof *b);
    b->c = c;
    b->plan = *plan;
    b->head_dim = c->d_model / c->heads;
    b->gated = c->activation == ACTIVATION_SWIGLU;
    b->is_moe = c->moe.experts > 0;
    for (int i = 0; i < plan->layers; i++) {
        size_t *fields = (size_t *)&layers[i];
        for (size_t f = 0; f < sizeof *layers / sizeof(size_t); f++) fields[f] = ABSENT;
    }
    *embed_tokens = *embed_positions = *final_norm_w = *final_norm_b = *lm_head = ABSENT;
    int tied_copy = c->tie_embeddings && plan->last_stage && !plan->first_stage;
    for (b->decay_pass = 1; b->decay_pass >= 0; b->decay_pass--) {
        if (plan->first_stage || tied_copy) {
            keep(embed_tokens, add_param(b, 1, INIT_NORMAL, ROWS, "embed.tokens", 2, c->vocab,
                                         c->d_model));
            if (tied_copy && b->decay_pass == 1) {
                b->params[b->count - 1].stage_copy = 1;
                b->params[b->count - 1].counts_in_norm = 0;
            }
        }
        if (plan->first_stage && c->arch == ARCH_GPT2)
            keep(embed_positions, add_param(b, 1, INIT_NORMAL, WHOLE, "embed.positions", 2,
                                            c->seq_len, c->d_model));
        for (int i = 0; i < plan->layers; i++) {
            size_t start = b->next;
            layout_layer(b, &layers[i], plan->first_layer + i);
            layers[i].range[1 - b->decay_pass][0] = start;
            layers[i].range[1 - b->decay_pass][1] = b->next;
        }
        if (plan->last_stage) {
            keep(final_norm_w,
                 add_param(b, 0, INIT_ONES, WHOLE, "final_norm.weight", 1, c->d_model, 0));
            if (c->norm == NORM_LAYERNORM)
                keep(final_norm_b,
                     add_param(b, 0, INIT_ZEROS, WHOLE, "final_norm.bias", 1, c->d_model, 0));
            if (!c->tie_embeddings)
                keep(lm_head, add_param(b, 1, INIT_NORMAL, ROWS, "lm_head", 2, c->vocab,
                                        c->d_model));
        }
        if (b->decay_pass == 1) *decayed = b->next;
    }
    if (c->tie_embeddings && plan->last_stage) *lm_head = *embed_tokens;
}

static layout_plan model_plan(const model *m) {
    layout_plan plan = {m->shard.tp.rank,  m->shard.tp.size, m->shard.first_layer,
                        m->shard.layers,   m->first_stage,   m->last_stage,
                        m->first_expert,   m->local_experts};
    return plan;
}

/* The single-rank model's layout. */
static layout_plan whole_plan(const model_config *c) {
    layout_plan plan = {0, 1, 0, c->layers, 1, 1, 0, c->moe.experts};
    return plan;
}

static void layout_model(model *m) {
    layout_builder b;
    layout_plan plan = model_plan(m);
    layout_build(&b, &m->cfg, &plan, m->layers, &m->embed_tokens, &m->embed_positions,
                 &m->final_norm_w, &m->final_norm_b, &m->lm_head, &m->decayed_params);
    m->params = b.params;
    m->param_count = b.count;
    m->total_params = b.next;
    size_t multiple = m->shard.param_multiple > 1 ? m->shard.param_multiple : 1;
    m->padded_params = (m->total_params + multiple - 1) / multiple * multiple;
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

/* Activation sets (entries of m->acts) that own their buffers: with train.recompute every entry
 * but the first keeps only its input (resid_in) and borrows everything else from the first. */
static int owned_layer_sets(const model *m) {
    int sets = m->shard.slots * m->shard.layers;
    return m->recompute && sets > 1 ? 1 : sets;
}

#define ACT(n) arena_take(space, (size_t)(n), o->act_bytes)
#define MASTER(n) arena_take(space, (size_t)(n), o->master_bytes)
#define INT32(n) arena_take(space, (size_t)(n), sizeof(int32_t))

static void carve(model *m, arena *space) {
    const ops *o = m->ops;
    const model_config *c = &m->cfg;
    int N = m->N, d = c->d_model, H = m->heads, KV = m->kv_heads, hd = m->head_dim;
    int E = c->moe.experts, k = c->moe.top_k, slots = m->shard.slots, ep = m->shard.ep.size;
    size_t routed_rows = (size_t)N * (m->is_moe ? k : 0);
    /* rows this rank's experts may receive: every rank's routed rows (dropless worst case) */
    size_t expert_rows = routed_rows * ep;
    int hidden_rows = m->is_moe ? m->shared_up_rows : m->up_rows;
    int hidden = m->is_moe ? m->shared_ffn : m->ffn;
    m->master = MASTER(m->padded_params);
    m->grads = MASTER(m->padded_params);
    m->compute = o->compute_aliases_master ? m->master : ACT(m->padded_params);
    m->tokens = INT32((size_t)slots * N);
    m->targets = INT32(N);
    m->positions = INT32((size_t)slots * N);
    m->doc_start = INT32((size_t)slots * N);
    m->doc_starts = INT32((size_t)slots * (N + 1));
    m->loss_weights = MASTER(N);
    m->losses = MASTER(N);
    m->row_max = MASTER(N);
    m->loss_stats = MASTER(2 * (size_t)N);
    for (int i = 0; i < slots * m->shard.layers; i++) {
        layer_activations *a = &m->acts[i];
        a->resid_in = ACT((size_t)N * d);
        if (i >= owned_layer_sets(m)) continue;
        a->attn_norm_out = ACT((size_t)N * d);
        a->attn_norm_mean = MASTER(N);
        a->attn_norm_rstd = MASTER(N);
        /* without QK-norm the projection writes qkv itself */
        if (c->qk_norm) {
            a->qkv_pre = ACT((size_t)N * m->qkv_dim);
            a->qk_rstd = MASTER((size_t)N * (H + KV));
        }
        a->qkv = ACT((size_t)N * m->qkv_dim);
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
            a->expert_pre = ACT(expert_rows * m->expert_up_rows);
            a->expert_act = ACT(expert_rows * m->expert_ffn);
            a->expert_out = ACT(routed_rows * d);
            a->choice = INT32(routed_rows);
            a->gates = MASTER(routed_rows);
            a->assigned = INT32(E);
            a->slot = INT32(routed_rows);
            a->row_token = INT32(routed_rows);
            a->expert_offset = INT32(E + 1);
            if (ep > 1) {
                a->ep_in = ACT(expert_rows * d);
                a->ep_out = ACT(expert_rows * d);
                a->ep_order = INT32(expert_rows);
            }
        }
    }
    m->stage_out = ACT((size_t)slots * N * d);
    m->resid_out = m->stage_out;
    m->final_norm_out = ACT((size_t)N * d);
    m->final_norm_mean = MASTER(N);
    m->final_norm_rstd = MASTER(N);
    m->logits = ACT((size_t)N * (m->last_stage ? m->vocab : 1));
    m->scratch_d = ACT((size_t)N * d);
    m->dresid = ACT((size_t)N * d);
    m->dnorm = ACT((size_t)N * d);
    m->dqkv = ACT((size_t)N * m->qkv_dim * (c->qk_norm ? 2 : 1)); /* QK-norm: and d(qkv_pre) */
    m->dattn = ACT((size_t)N * H * hd);
    m->dmlp_pre = ACT((size_t)N * hidden_rows);
    /* GELU's backward runs in the down projection's (matmul_gelu_backward): no separate
     * gradient of the activation */
    if (c->activation != ACTIVATION_GELU) m->dmlp_act = ACT((size_t)N * hidden);
    if (m->is_moe) {
        m->dexpert_in = ACT(routed_rows * d);
        m->dexpert_pre = ACT(expert_rows * m->expert_up_rows);
        m->dexpert_act = ACT(expert_rows * m->expert_ffn);
        m->dexpert_out = ACT(routed_rows * d);
        if (ep > 1) {
            m->ep_rows = ACT(expert_rows * d);
            m->ep_dout = ACT(expert_rows * d);
            m->ep_din = ACT(expert_rows * d);
        }
        m->dgates = MASTER(routed_rows);
        m->drouter_logits = ACT((size_t)N * E);
        m->router_losses = MASTER(2);
    }
}

int model_param_layout(const config *cfg, param_tensor **params, int *count, status *st) {
    const model_config *c = &cfg->model;
    layer_offsets *layers = calloc(c->layers ? c->layers : 1, sizeof *layers);
    if (!layers) return status_fail(st, "model: out of host memory");
    layout_plan whole = whole_plan(c);
    layout_builder b;
    size_t unused[6];
    layout_build(&b, c, &whole, layers, &unused[0], &unused[1], &unused[2], &unused[3],
                 &unused[4], &unused[5]);
    free(layers);
    *params = b.params;
    *count = b.count;
    return 0;
}

void model_stage_layers(int layers, int stage, int stages, int *first, int *count) {
    int base = layers / stages, extra = layers % stages;
    *count = base + (stage < extra);
    *first = stage * base + (stage < extra ? stage : extra);
}

int model_create(model *m, const ops *o, const config *cfg, int eod_id, status *st) {
    model_shard whole = {{0, 1, NULL, NULL, NULL, NULL}, {0, 1, NULL, NULL, NULL}, 0, 1, 0,
                         cfg->model.layers, 1, 0, NULL, NULL};
    return model_create_shard(m, o, cfg, eod_id, &whole, st);
}

/* The whole model's parameter count and FLOPs per token, whatever this rank holds (a shard's
 * tensors are only its slice). FLOPs: 6 · active matmul parameters + attention; the embedding
 * counts once, as the LM head when tied; a token activates top_k of the routed experts. */
static int measure_whole_model(model *m, const config *cfg, status *st) {
    const model_config *c = &cfg->model;
    param_tensor *params;
    int count;
    if (model_param_layout(cfg, &params, &count, st) != 0) return -1;
    double active = 0;
    m->whole_params = 0;
    for (int i = 0; i < count; i++) {
        const param_tensor *p = &params[i];
        m->whole_params += p->count;
        if (p->ndim != 2 || strcmp(p->name, "embed.positions") == 0) continue;
        if (strcmp(p->name, "embed.tokens") == 0 && !c->tie_embeddings) continue;
        active += (double)p->count;
    }
    free(params);
    if (c->moe.experts > 0) {
        int up_rows = c->activation == ACTIVATION_SWIGLU ? 2 * c->moe.ffn : c->moe.ffn;
        double per_expert = (double)(up_rows + c->moe.ffn) * c->d_model;
        active -= c->layers * per_expert * (c->moe.experts - c->moe.top_k);
    }
    m->flops_per_token = 6.0 * active + 6.0 * c->layers * c->d_model * c->seq_len;
    return 0;
}

int model_create_shard(model *m, const ops *o, const config *cfg, int eod_id,
                       const model_shard *shard, status *st) {
    memset(m, 0, sizeof *m);
    m->ops = o;
    m->cfg = cfg->model;
    m->shard = *shard;
    m->recompute = cfg->train.recompute == RECOMPUTE_FULL;
    const model_config *c = &m->cfg;
    int tp = shard->tp.size;
    m->micro_batch = cfg->train.micro_batch;
    m->seq_len = c->seq_len;
    m->N = m->micro_batch * m->seq_len;
    m->eod_id = eod_id;
    m->first_stage = shard->stage == 0;
    m->last_stage = shard->stage == shard->stages - 1;
    /* config_resolve checks that heads, kv heads and MLP widths divide by tp */
    m->heads = c->heads / tp;
    m->kv_heads = c->kv_heads / tp;
    m->ffn = c->ffn / tp;
    m->expert_ffn = c->moe.ffn / tp;
    /* config_resolve checks that ep divides the experts */
    m->local_experts = c->moe.experts / shard->ep.size;
    m->first_expert = shard->ep.rank * m->local_experts;
    int64_t vocab_count;
    split_range(c->vocab, shard->tp.rank, tp, &m->vocab_start, &vocab_count);
    m->vocab = (int)vocab_count;
    m->head_dim = c->d_model / c->heads;
    m->qkv_dim = (m->heads + 2 * m->kv_heads) * m->head_dim;
    m->is_moe = c->moe.experts > 0;
    int gated = c->activation == ACTIVATION_SWIGLU;
    m->up_rows = gated ? 2 * m->ffn : m->ffn;
    m->expert_up_rows = gated ? 2 * m->expert_ffn : m->expert_ffn;
    m->shared_ffn = c->moe.shared_experts * m->expert_ffn;
    m->shared_up_rows = gated ? 2 * m->shared_ffn : m->shared_ffn;
    int slots = shard->slots, layers = shard->layers;
    m->layers = calloc(layers ? layers : 1, sizeof *m->layers);
    m->acts = calloc((size_t)slots * (layers ? layers : 1), sizeof *m->acts);
    if (!m->layers || !m->acts) return status_fail(st, "model: out of host memory");
    layout_model(m);
    if (measure_whole_model(m, cfg, st) != 0) {
        model_destroy(m);
        return -1;
    }

    arena measure = {NULL, 0};
    carve(m, &measure);
    arena device = {o->alloc(measure.used), 0};
    m->device_arena = device.base;
    m->device_bytes = measure.used;
    int failed = device.base == NULL;
    if (!failed) carve(m, &device);
    int N = m->N, E = c->moe.experts, k = c->moe.top_k;
    size_t routed_rows = (size_t)N * (m->is_moe ? k : 0);
    int ep = shard->ep.size;
    m->router = (moe_router){E, k, c->moe.router == ROUTER_SIGMOID, c->moe.aux_loss_coef,
                             c->moe.z_loss_coef, c->moe.capacity_factor};
    for (int i = 0; i < owned_layer_sets(m) && m->is_moe; i++) {
        layer_activations *a = &m->acts[i];
        a->host_expert_offset = calloc((size_t)E + 1, sizeof *a->host_expert_offset);
        if (!a->host_expert_offset) failed = 1;
        if (ep > 1) {
            a->ep_send_rows = calloc(ep, sizeof *a->ep_send_rows);
            a->ep_recv_rows = calloc(ep, sizeof *a->ep_recv_rows);
            a->ep_expert_offset = calloc(m->local_experts + 1, sizeof *a->ep_expert_offset);
            if (!a->ep_send_rows || !a->ep_recv_rows || !a->ep_expert_offset) failed = 1;
        }
    }
    if (m->is_moe && ep > 1) {
        m->host_ep_counts = calloc(2 * (size_t)ep * m->local_experts, sizeof *m->host_ep_counts);
        m->host_ep_order = calloc(routed_rows * ep, sizeof *m->host_ep_order);
        if (!m->host_ep_counts || !m->host_ep_order) failed = 1;
    }
    m->host_positions = calloc(N, sizeof *m->host_positions);
    m->host_doc_start = calloc(N, sizeof *m->host_doc_start);
    m->host_doc_starts = calloc((size_t)N + 1, sizeof *m->host_doc_starts);
    m->doc_counts = calloc(slots, sizeof *m->doc_counts);
    m->host_losses = calloc(N, sizeof *m->host_losses);
    m->host_inputs = calloc(N, sizeof *m->host_inputs);
    m->host_targets = calloc(N, sizeof *m->host_targets);
    for (int i = owned_layer_sets(m); i < slots * layers; i++) {
        void *input = m->acts[i].resid_in;
        m->acts[i] = m->acts[0];
        m->acts[i].resid_in = input;
    }
    if (failed || !m->host_positions || !m->host_doc_start || !m->host_doc_starts ||
        !m->doc_counts || !m->host_losses || !m->host_inputs || !m->host_targets) {
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
    for (int i = 0; m->acts && i < owned_layer_sets(m); i++) {
        free(m->acts[i].host_expert_offset);
        free(m->acts[i].ep_send_rows);
        free(m->acts[i].ep_recv_rows);
        free(m->acts[i].ep_expert_offset);
    }
    free(m->host_ep_counts);
    free(m->host_ep_order);
    free(m->acts);
    free(m->layers);
    free(m->params);
    free(m->host_positions);
    free(m->host_doc_start);
    free(m->host_doc_starts);
    free(m->doc_counts);
    free(m->host_losses);
    free(m->host_inputs);
    free(m->host_targets);
    memset(m, 0, sizeof *m);
}

const param_tensor *model_find_param(const model *m, const char *name) {
    for (int i = 0; i < m->param_count; i++)
        if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
    return NULL;
}

void param_tensor_slice(const param_tensor *p, const float *global, float *dst) {
    if (p->shard_dim < 0) {
        memcpy(dst, global, sizeof *dst * p->count);
    } else if (p->shard_dim == 0) {
        size_t row = p->ndim > 1 ? (size_t)p->global_shape[1] : 1;
        memcpy(dst, global + (size_t)p->shard_offset * row, sizeof *dst * p->count);
    } else {
        for (int64_t r = 0; r < p->shape[0]; r++)
            memcpy(dst + (size_t)r * p->shape[1],
                   global + (size_t)r * p->global_shape[1] + p->shard_offset,
                   sizeof *dst * (size_t)p->shape[1]);
    }
}

void model_init_weights(model *m, uint64_t seed) {
    float *host = malloc(sizeof *host * (m->total_params ? m->total_params : 1));
    random_state rng;
    random_seed(&rng, seed);
    double std = m->cfg.init_std, output_std = std / sqrt(2.0 * m->cfg.layers);
    /* The stream runs over the whole model in declaration order, so every rank draws the
     * values of the single-rank model and keeps its own part. */
    layout_plan whole = whole_plan(&m->cfg);
    layer_offsets *layers = calloc(m->cfg.layers ? m->cfg.layers : 1, sizeof *layers);
    layout_builder b;
    size_t unused[6];
    layout_build(&b, &m->cfg, &whole, layers, &unused[0], &unused[1], &unused[2], &unused[3],
                 &unused[4], &unused[5]);
    size_t largest = 1;
    for (int i = 0; i < b.count; i++) largest = b.params[i].count > largest ? b.params[i].count : largest;
    float *values = malloc(sizeof *values * largest);
    for (int i = 0; i < b.count; i++) {
        const param_tensor *g = &b.params[i];
        for (size_t j = 0; j < g->count; j++) {
            switch (g->init) {
            case INIT_NORMAL: values[j] = (float)(std * random_normal(&rng)); break;
            case INIT_NORMAL_OUTPUT: values[j] = (float)(output_std * random_normal(&rng)); break;
            case INIT_ONES: values[j] = 1.0f; break;
            case INIT_ZEROS: values[j] = 0.0f; break;
            case INIT_XIELU_ALPHA: values[j] = (float)log(expm1(j == 0 ? 0.8 : 0.8 - 0.5)); break;
            }
        }
        const param_tensor *p = model_find_param(m, g->name);
        if (p) param_tensor_slice(p, values, host + p->offset);
    }
    m->ops->float_to_master(m->master, host, m->total_params);
    free(values);
    free(b.params);
    free(layers);
    free(host);
    model_sync_compute_weights(m);
}

void model_sync_compute_weights(model *m) {
    if (m->compute != m->master) m->ops->master_to_act(m->compute, m->master, m->padded_params);
}

void model_zero_grads(model *m) {
    m->ops->zero(m->grads, m->padded_params * m->ops->master_bytes);
    if (m->router_losses) m->ops->zero(m->router_losses, 2 * m->ops->master_bytes);
}

void model_take_router_losses(model *m, double *aux, double *z) {
    const ops *o = m->ops;
    *aux = *z = 0;
    if (!m->router_losses) return;
    /* the fp64 reference backend's master type is double: read it whole (gradient checks) */
    double sums[2];
    if (o->master_bytes == sizeof(double)) {
        o->copy_to_host(sums, m->router_losses, sizeof sums);
    } else {
        float single[2];
        o->master_to_float(single, m->router_losses, 2);
        sums[0] = single[0];
        sums[1] = single[1];
    }
    o->zero(m->router_losses, 2 * o->master_bytes);
    *aux = sums[0];
    *z = sums[1];
}

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
/* Row `row` of an act buffer of `width` columns (const or not: the callers know). */
static void *act_row(const model *m, const void *base, size_t row, size_t width) {
    return (char *)base + row * width * m->ops->act_bytes;
}
static layer_activations *layer_acts(const model *m, int slot, int layer) {
    return &m->acts[(size_t)slot * m->shard.layers + layer];
}
/* The bias of a row-parallel projection is added once, after the partial sums: by rank 0. */
static void *row_parallel_bias(const model *m, size_t offset) {
    return m->shard.tp.rank == 0 ? weight(m, offset) : NULL;
}

/* Sums of partial results over the tensor-parallel ranks. */
static void tp_sum_act(const model *m, void *buffer, size_t count) {
    if (m->shard.tp.size > 1) m->shard.tp.sum_act(m->shard.tp.context, buffer, count);
}
static void tp_sum_master(const model *m, void *buffer, size_t count) {
    if (m->shard.tp.size > 1) m->shard.tp.sum_master(m->shard.tp.context, buffer, count);
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

/* The MLPs run GELU in one op with the linear layer next to it (matmul_gelu_*), which the cuda
 * backend fuses into the GEMM; routed experts, whose linear layers are grouped, call these. */
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
 * `pre` [rows][up_rows] and `hidden` [rows][F] are kept for backward; out NULL (a
 * recomputation for the backward pass) stops there, as the backward pass never reads out. */
typedef struct mlp_weights {
    size_t up, up_bias, down, down_bias, alpha;
    int F, up_rows;
} mlp_weights;

static void mlp_forward(const model *m, const mlp_weights *w, void *out, void *pre, void *hidden,
                        const void *inp, int rows) {
    const ops *o = m->ops;
    int d = m->cfg.d_model;
    const void *up = weight(m, w->up), *up_bias = weight(m, w->up_bias);
    if (m->cfg.activation == ACTIVATION_GELU) {
        o->matmul_gelu_forward(hidden, pre, inp, up, up_bias, rows, d, w->up_rows);
    } else {
        o->matmul_forward(pre, inp, up, up_bias, rows, d, w->up_rows);
        activation_forward(m, hidden, pre, rows, w->F, w->alpha);
    }
    if (!out) return;
    o->matmul_forward(out, hidden, weight(m, w->down), row_parallel_bias(m, w->down_bias), rows,
                      w->F, d);
}

/* dinp = d(inp) (overwritten); uses dpre/dhidden as scratch */
static void mlp_backward(const model *m, const mlp_weights *w, void *dinp, void *dpre,
                         void *dhidden, const void *dout, const void *pre, const void *hidden,
                         const void *inp, int rows) {
    const ops *o = m->ops;
    int d = m->cfg.d_model;
    void *ddown = grad(m, w->down), *ddown_bias = grad(m, w->down_bias);
    const void *down = weight(m, w->down);
    if (m->cfg.activation == ACTIVATION_GELU) {
        o->matmul_gelu_backward(dpre, ddown, ddown_bias, dout, hidden, down, pre, rows, w->F, d);
    } else {
        o->matmul_backward(dhidden, ddown, ddown_bias, dout, hidden, down, rows, w->F, d);
        activation_backward(m, dpre, dhidden, pre, rows, w->F, w->alpha);
    }
    o->matmul_backward(dinp, grad(m, w->up), grad(m, w->up_bias), dpre, inp, weight(m, w->up),
                       rows, d, w->up_rows);
}

static mlp_weights dense_mlp(const model *m, const layer_offsets *L) {
    mlp_weights w = {L->w_up, L->b_up, L->w_down, L->b_down, L->xielu_alpha, m->ffn, m->up_rows};
    return w;
}

static mlp_weights shared_mlp(const model *m, const layer_offsets *L) {
    mlp_weights w = {L->shared_up, ABSENT, L->shared_down, ABSENT, ABSENT, m->shared_ffn,
                     m->shared_up_rows};
    return w;
}

/* Elements from one routed expert's weights to the next: up [expert_up_rows][d] then
 * down [d][ffn] */
static size_t expert_stride(const model *m) {
    return (size_t)(m->expert_up_rows + m->expert_ffn) * m->cfg.d_model;
}

static mlp_weights expert_mlp(const model *m, const layer_offsets *L, int e) {
    size_t up = L->experts + (size_t)e * expert_stride(m);
    mlp_weights w = {up, ABSENT, up + (size_t)m->expert_up_rows * m->cfg.d_model, ABSENT, ABSENT,
                     m->expert_ffn, m->expert_up_rows};
    return w;
}

/* ---------------------------------------------------------------- MoE ---- */

/* Expert parallelism (Megatron's all-to-all token dispatcher): a layer's routed rows, grouped by
 * expert, go to the ranks that own the experts; each rank runs its experts over the rows of
 * every rank, expert-major, and sends the results back. The plan (row counts and the
 * expert-major order) is made once per forward pass and reused by the backward pass. */
static void expert_parallel_plan(model *m, layer_activations *a) {
    const expert_parallel *ep = &m->shard.ep;
    const int32_t *offset = a->host_expert_offset;
    int ranks = ep->size, local = m->local_experts;
    int *send = m->host_ep_counts, *recv = m->host_ep_counts + (size_t)ranks * local;
    for (int q = 0; q < ranks; q++) {
        a->ep_send_rows[q] = 0;
        for (int e = 0; e < local; e++) {
            int global = q * local + e;
            send[q * local + e] = offset[global + 1] - offset[global];
            a->ep_send_rows[q] += send[q * local + e];
        }
    }
    ep->exchange_counts(ep->context, send, recv, local);
    /* received rows arrive source-major; the experts want them expert-major */
    for (int q = 0; q < ranks; q++) {
        a->ep_recv_rows[q] = 0;
        for (int e = 0; e < local; e++) a->ep_recv_rows[q] += recv[q * local + e];
    }
    int next = 0;
    for (int e = 0; e < local; e++) {
        a->ep_expert_offset[e] = next;
        int start = 0;
        for (int q = 0; q < ranks; q++) {
            int within = start;
            for (int f = 0; f < e; f++) within += recv[q * local + f];
            for (int i = 0; i < recv[q * local + e]; i++) m->host_ep_order[next++] = within + i;
            start += a->ep_recv_rows[q];
        }
    }
    a->ep_expert_offset[local] = next;
    m->ops->copy_to_device(a->ep_order, m->host_ep_order, sizeof(int32_t) * (next ? next : 1));
}

/* rows [sent rows][d] (grouped by destination) → expert_major [received rows][d] */
static void expert_parallel_dispatch(model *m, layer_activations *a, const void *rows,
                                     void *expert_major) {
    const expert_parallel *ep = &m->shard.ep;
    size_t row_bytes = (size_t)m->cfg.d_model * m->ops->act_bytes;
    ep->exchange_rows(ep->context, rows, a->ep_send_rows, m->ep_rows, a->ep_recv_rows, row_bytes);
    m->ops->gather_rows(expert_major, m->ep_rows, a->ep_order,
                        a->ep_expert_offset[m->local_experts], m->cfg.d_model);
}

/* the inverse: expert_major results → rows, in the order this rank sent them */
static void expert_parallel_return(model *m, layer_activations *a, const void *expert_major,
                                   void *rows) {
    const expert_parallel *ep = &m->shard.ep;
    const ops *o = m->ops;
    int received = a->ep_expert_offset[m->local_experts], d = m->cfg.d_model;
    size_t row_bytes = (size_t)d * o->act_bytes;
    /* ep_order is a permutation: scatter-adding into zeros places each row */
    o->zero(m->ep_rows, (size_t)received * row_bytes);
    o->scatter_add_rows(m->ep_rows, expert_major, a->ep_order, received, d);
    ep->exchange_rows(ep->context, m->ep_rows, a->ep_recv_rows, rows, a->ep_send_rows, row_bytes);
}

/* The routed experts of this rank over rows grouped by expert: expert e takes rows
 * [offsets[e], offsets[e+1]) of `in` and writes them in `out` (the hidden buffers are the
 * layer's expert_pre / expert_act, at the same rows). Each projection is one grouped product
 * over all experts, and the activation one pass over all their rows. */
static void experts_forward(model *m, const layer_offsets *L, layer_activations *a,
                            const int32_t *offsets, int experts, const void *in, void *out) {
    const ops *o = m->ops;
    int d = m->cfg.d_model, rows = offsets[experts];
    if (rows == 0) return;
    mlp_weights w = expert_mlp(m, L, 0);
    size_t stride = expert_stride(m);
    o->matmul_grouped_forward(a->expert_pre, in, weight(m, w.up), stride, offsets, experts, d,
                              w.up_rows);
    activation_forward(m, a->expert_act, a->expert_pre, rows, w.F, w.alpha);
    o->matmul_grouped_forward(out, a->expert_act, weight(m, w.down), stride, offsets, experts,
                              w.F, d);
}

/* Its backward: din from dout, weight gradients +=. */
static void experts_backward(model *m, const layer_offsets *L, const layer_activations *a,
                             const int32_t *offsets, int experts, const void *dout, void *din,
                             const void *in) {
    const ops *o = m->ops;
    int d = m->cfg.d_model, rows = offsets[experts];
    if (rows == 0) return;
    mlp_weights w = expert_mlp(m, L, 0);
    size_t stride = expert_stride(m);
    o->matmul_grouped_backward(m->dexpert_act, grad(m, w.down), dout, a->expert_act,
                               weight(m, w.down), stride, offsets, experts, w.F, d);
    activation_backward(m, m->dexpert_pre, m->dexpert_act, a->expert_pre, rows, w.F, w.alpha);
    o->matmul_grouped_backward(din, grad(m, w.up), m->dexpert_pre, in, weight(m, w.up), stride,
                               offsets, experts, d, w.up_rows);
}

/* out [N][d] = Σ gates · experts(x) (+ shared experts(x)), x = mlp_norm_out. With tensor
 * parallelism every rank routes identically (same input, same router) and holds a slice of
 * every expert's hidden units, so out is summed over the ranks once at the end. out NULL: a
 * recomputation for the backward pass (train.recompute), which needs the routing, the experts'
 * rows and outputs (the gates' gradient reads them) but neither the combined output nor a
 * second count of the router's losses. Every rank of the tensor- and expert-parallel groups
 * recomputes the same layer at the same point, so the exchanges stay matched. */
static void moe_forward(model *m, int slot, int layer, void *out) {
    const ops *o = m->ops;
    const layer_offsets *L = &m->layers[layer];
    layer_activations *a = layer_acts(m, slot, layer);
    int N = m->N, d = m->cfg.d_model, E = m->router.experts, k = m->router.top_k;
    o->matmul_forward(a->router_logits, a->mlp_norm_out, weight(m, L->router), NULL, N, d, E);
    o->moe_route_forward(a->choice, a->gates, a->assigned, a->slot, a->row_token,
                         a->expert_offset, out ? m->router_losses : NULL, a->router_logits,
                         &m->router, N);
    /* the host needs only the experts' row ranges: the shapes of their GEMMs and exchanges */
    o->copy_to_host(a->host_expert_offset, a->expert_offset, sizeof(int32_t) * (E + 1));
    int rows = a->host_expert_offset[E];

    o->gather_rows(a->expert_in, a->mlp_norm_out, a->row_token, rows, d);
    if (m->shard.ep.size > 1) {
        expert_parallel_plan(m, a);
        expert_parallel_dispatch(m, a, a->expert_in, a->ep_in);
        experts_forward(m, L, a, a->ep_expert_offset, m->local_experts, a->ep_in, a->ep_out);
        expert_parallel_return(m, a, a->ep_out, a->expert_out);
    } else {
        experts_forward(m, L, a, a->host_expert_offset, E, a->expert_in, a->expert_out);
    }
    if (out) o->moe_combine_forward(out, a->expert_out, a->gates, a->slot, N, k, d);
    if (m->shared_ffn > 0) {
        mlp_weights w = shared_mlp(m, L);
        mlp_forward(m, &w, out ? m->dnorm : NULL, a->mlp_pre, a->mlp_act, a->mlp_norm_out, N);
        if (out) o->accumulate(out, m->dnorm, (size_t)N * d);
    }
    if (out) tp_sum_act(m, out, (size_t)N * d);
}

/* m->dnorm = d(mlp_norm_out) given dout = d(out). Under tensor parallelism the experts' share
 * of dnorm and the gate gradients are partial sums; the router's share is computed from the
 * summed gate gradients, identically on every rank, so it is added after the sum. */
static void moe_backward(model *m, int slot, int layer, const void *dout) {
    const ops *o = m->ops;
    const layer_offsets *L = &m->layers[layer];
    layer_activations *a = layer_acts(m, slot, layer);
    int N = m->N, d = m->cfg.d_model, E = m->router.experts, k = m->router.top_k;
    if (m->shared_ffn > 0) {
        mlp_weights w = shared_mlp(m, L);
        mlp_backward(m, &w, m->dnorm, m->dmlp_pre, m->dmlp_act, dout, a->mlp_pre, a->mlp_act,
                     a->mlp_norm_out, N);
    } else {
        o->zero(m->dnorm, (size_t)N * d * o->act_bytes);
    }
    o->moe_combine_backward(m->dexpert_out, m->dgates, dout, a->expert_out, a->gates, a->slot, N,
                            k, d);
    if (m->shard.ep.size > 1) {
        expert_parallel_dispatch(m, a, m->dexpert_out, m->ep_dout);
        experts_backward(m, L, a, a->ep_expert_offset, m->local_experts, m->ep_dout, m->ep_din,
                         a->ep_in);
        expert_parallel_return(m, a, m->ep_din, m->dexpert_in);
    } else {
        experts_backward(m, L, a, a->host_expert_offset, E, m->dexpert_out, m->dexpert_in,
                         a->expert_in);
    }
    o->moe_dispatch_backward(m->dnorm, m->dexpert_in, a->slot, N, k, d);
    tp_sum_act(m, m->dnorm, (size_t)N * d);
    tp_sum_master(m, m->dgates, (size_t)N * k);
    /* the router: gates and the auxiliary losses */
    o->moe_route_backward(m->drouter_logits, m->dgates, a->router_logits, a->choice, a->assigned,
                          &m->router, N, m->moe_scale);
    o->matmul_backward(m->scratch_d, grad(m, L->router), NULL, m->drouter_logits, a->mlp_norm_out,
                       weight(m, L->router), N, d, E);
    o->accumulate(m->dnorm, m->scratch_d, (size_t)N * d);
}

/* -------------------------------------------------------------- layers ---- */

/* The documents of a slot's micro-batch for attention, in *documents; NULL when
 * document masking is off. */
static const attention_documents *slot_documents(const model *m, int slot,
                                                 attention_documents *documents) {
    if (!m->cfg.document_masking) return NULL;
    documents->doc_start = m->doc_start + (size_t)slot * m->N;
    documents->starts = m->doc_starts + (size_t)slot * (m->N + 1);
    documents->count = m->doc_counts[slot];
    return documents;
}

/* out = the layer's output. out NULL: train.recompute's second forward pass, run by the backward
 * pass from the saved input into the shared activation set; it refills every activation the
 * backward pass reads (bit-identically: same input, weights and kernels) and skips what only
 * the output needs (the MLP's output projection, its tensor-parallel sum, the residual add). */
static void layer_forward(model *m, int slot, int i, void *out) {
    const ops *o = m->ops;
    const model_config *c = &m->cfg;
    const layer_offsets *L = &m->layers[i];
    layer_activations *a = layer_acts(m, slot, i);
    int N = m->N, d = c->d_model, H = m->heads, KV = m->kv_heads, hd = m->head_dim;
    size_t nd = (size_t)N * d;
    const int32_t *positions = m->positions + (size_t)slot * N;
    attention_documents documents;

    norm_forward(m, a->attn_norm_out, a->attn_norm_mean, a->attn_norm_rstd, a->resid_in,
                 L->attn_norm_w, L->attn_norm_b);
    o->matmul_forward(c->qk_norm ? a->qkv_pre : a->qkv, a->attn_norm_out, weight(m, L->wqkv),
                      weight(m, L->bqkv), N, d, m->qkv_dim);
    if (c->qk_norm)
        o->qk_norm_forward(a->qkv, a->qk_rstd, a->qkv_pre, weight(m, L->q_norm),
                           weight(m, L->k_norm), N, H, KV, hd, (float)c->norm_eps);
    if (c->arch == ARCH_LLAMA) o->rope_forward(a->qkv, positions, N, H, KV, hd, (float)c->rope_theta);
    o->attention_forward(a->attn_out, a->attn_lse, a->qkv, slot_documents(m, slot, &documents),
                         m->micro_batch, m->seq_len, H, KV, hd);
    o->matmul_forward(m->scratch_d, a->attn_out, weight(m, L->wo), row_parallel_bias(m, L->bo), N,
                      H * hd, d);
    tp_sum_act(m, m->scratch_d, nd);
    o->add(a->resid_mid, a->resid_in, m->scratch_d, nd);

    norm_forward(m, a->mlp_norm_out, a->mlp_norm_mean, a->mlp_norm_rstd, a->resid_mid,
                 L->mlp_norm_w, L->mlp_norm_b);
    void *mlp_out = out ? m->scratch_d : NULL;
    if (m->is_moe) {
        moe_forward(m, slot, i, mlp_out);
    } else {
        mlp_weights w = dense_mlp(m, L);
        mlp_forward(m, &w, mlp_out, a->mlp_pre, a->mlp_act, a->mlp_norm_out, N);
        if (out) tp_sum_act(m, m->scratch_d, nd);
    }
    if (out) o->add(out, a->resid_mid, m->scratch_d, nd);
}

/* On entry m->dresid = d(layer output); on exit m->dresid = d(layer input). Under tensor
 * parallelism the gradients of the norms' outputs are partial sums until reduced. */
static void layer_backward(model *m, int slot, int i) {
    const ops *o = m->ops;
    const model_config *c = &m->cfg;
    const layer_offsets *L = &m->layers[i];
    layer_activations *a = layer_acts(m, slot, i);
    int N = m->N, d = c->d_model, H = m->heads, KV = m->kv_heads, hd = m->head_dim;
    size_t nd = (size_t)N * d;
    const int32_t *positions = m->positions + (size_t)slot * N;
    attention_documents documents;

    /* MLP half: the residual passes dresid through; the norm adds its share */
    if (m->is_moe) {
        moe_backward(m, slot, i, m->dresid);
    } else {
        mlp_weights w = dense_mlp(m, L);
        mlp_backward(m, &w, m->dnorm, m->dmlp_pre, m->dmlp_act, m->dresid, a->mlp_pre, a->mlp_act,
                     a->mlp_norm_out, N);
        tp_sum_act(m, m->dnorm, nd);
    }
    norm_backward(m, m->dresid, m->dnorm, a->resid_mid, a->mlp_norm_mean, a->mlp_norm_rstd,
                  L->mlp_norm_w, L->mlp_norm_b);

    /* attention half */
    void *dqkv = m->dqkv;
    o->matmul_backward(m->dattn, grad(m, L->wo), grad(m, L->bo), m->dresid, a->attn_out,
                       weight(m, L->wo), N, H * hd, d);
    o->attention_backward(dqkv, m->dattn, a->qkv, a->attn_out, a->attn_lse,
                          slot_documents(m, slot, &documents), m->micro_batch, m->seq_len, H,
                          KV, hd);
    if (c->arch == ARCH_LLAMA) o->rope_backward(dqkv, positions, N, H, KV, hd, (float)c->rope_theta);
    if (c->qk_norm) {
        void *dqkv_pre = (char *)m->dqkv + (size_t)N * m->qkv_dim * o->act_bytes;
        o->qk_norm_backward(dqkv_pre, grad(m, L->q_norm), grad(m, L->k_norm), dqkv, a->qkv_pre,
                            weight(m, L->q_norm), weight(m, L->k_norm), a->qk_rstd, N, H, KV, hd);
        dqkv = dqkv_pre;
    }
    o->matmul_backward(m->dnorm, grad(m, L->wqkv), grad(m, L->bqkv), dqkv, a->attn_norm_out,
                       weight(m, L->wqkv), N, d, m->qkv_dim);
    tp_sum_act(m, m->dnorm, nd);
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

/* A token id in this rank's vocabulary slice, or -1 when another rank holds it. */
static int32_t vocab_local(const model *m, int32_t token) {
    int64_t local = token - m->vocab_start;
    return local >= 0 && local < m->vocab ? (int32_t)local : -1;
}

void *model_stage_input(model *m, int slot) { return layer_acts(m, slot, 0)->resid_in; }
void *model_stage_output(model *m, int slot) {
    return act_row(m, m->stage_out, (size_t)slot * m->N, m->cfg.d_model);
}
void *model_stage_grad(model *m) { return m->dresid; }

/* losses (master [N]) and, with weights, dlogits in place of the logits */
static void loss_forward(model *m, int with_weights) {
    const ops *o = m->ops;
    int N = m->N, V = m->vocab;
    void *weights = with_weights ? m->loss_weights : NULL;
    if (m->shard.tp.size == 1) {
        o->cross_entropy(m->logits, m->losses, m->targets, weights, N, V);
        return;
    }
    const tensor_parallel *tp = &m->shard.tp;
    o->vocab_parallel_max(m->row_max, m->logits, N, V);
    tp->max_master(tp->context, m->row_max, N);
    o->vocab_parallel_sum_exp(m->loss_stats, m->logits, m->row_max, m->targets, N, V);
    tp->sum_master(tp->context, m->loss_stats, 2 * (size_t)N);
    o->vocab_parallel_loss(m->logits, m->losses, m->row_max, m->loss_stats, m->targets, weights,
                           N, V);
}

void model_stage_forward(model *m, int slot, const int32_t *tokens, const float *loss_weights,
                         double moe_scale) {
    const ops *o = m->ops;
    const model_config *c = &m->cfg;
    int N = m->N, T = m->seq_len, d = c->d_model;
    int32_t *inputs = m->host_inputs, *targets = m->host_targets;
    int32_t *slot_tokens = m->tokens + (size_t)slot * N;
    for (int b = 0; b < m->micro_batch; b++)
        for (int t = 0; t < T; t++) {
            inputs[b * T + t] = vocab_local(m, tokens[(size_t)b * (T + 1) + t]);
            targets[b * T + t] = vocab_local(m, tokens[(size_t)b * (T + 1) + t + 1]);
        }
    document_positions(m, tokens);
    o->copy_to_device(slot_tokens, inputs, sizeof *inputs * N);
    o->copy_to_device(m->positions + (size_t)slot * N, m->host_positions, sizeof(int32_t) * N);
    o->copy_to_device(m->doc_start + (size_t)slot * N, m->host_doc_start, sizeof(int32_t) * N);
    if (c->document_masking) {
        m->doc_counts[slot] =
            attention_documents_starts(m->host_doc_start, m->micro_batch, T, m->host_doc_starts);
        o->copy_to_device(m->doc_starts + (size_t)slot * (N + 1), m->host_doc_starts,
                          sizeof(int32_t) * (m->doc_counts[slot] + 1));
    }
    m->moe_scale = moe_scale;

    int layers = m->shard.layers;
    if (m->first_stage) {
        void *first = layers > 0 ? layer_acts(m, slot, 0)->resid_in : model_stage_output(m, slot);
        o->embedding_forward(first, slot_tokens, m->positions + (size_t)slot * N,
                             weight(m, m->embed_tokens), row_parallel_bias(m, m->embed_positions),
                             N, d);
        tp_sum_act(m, first, (size_t)N * d);
    }
    for (int i = 0; i < layers; i++)
        layer_forward(m, slot, i,
                      i + 1 < layers ? layer_acts(m, slot, i + 1)->resid_in : model_stage_output(m, slot));
    if (!m->last_stage) return;
    void *out = model_stage_output(m, slot);
    norm_forward(m, m->final_norm_out, m->final_norm_mean, m->final_norm_rstd, out,
                 m->final_norm_w, m->final_norm_b);
    o->matmul_forward(m->logits, m->final_norm_out, weight(m, m->lm_head), NULL, N, d, m->vocab);
    o->copy_to_device(m->targets, targets, sizeof *targets * N);
    if (loss_weights) o->float_to_master(m->loss_weights, loss_weights, N);
    loss_forward(m, loss_weights != NULL);
    o->master_to_float(m->host_losses, m->losses, N);
}

void model_stage_backward(model *m, int slot) {
    const ops *o = m->ops;
    const model_config *c = &m->cfg;
    int N = m->N, d = c->d_model;
    size_t nd = (size_t)N * d;
    if (m->last_stage) {
        o->matmul_backward(m->dnorm, grad(m, m->lm_head), NULL, m->logits, m->final_norm_out,
                           weight(m, m->lm_head), N, d, m->vocab);
        tp_sum_act(m, m->dnorm, nd);
        o->zero(m->dresid, nd * o->act_bytes);
        norm_backward(m, m->dresid, m->dnorm, model_stage_output(m, slot), m->final_norm_mean,
                      m->final_norm_rstd, m->final_norm_w, m->final_norm_b);
    }
    for (int i = m->shard.layers - 1; i >= 0; i--) {
        /* only m->dresid is live between layers: the recomputation may use every other buffer */
        if (m->recompute) layer_forward(m, slot, i, NULL);
        layer_backward(m, slot, i);
        if (!m->final_backward || !m->shard.grads_final) continue;
        /* the layer's weight gradients are complete: nothing later adds to them */
        m->ops->synchronize();
        for (int pass = 0; pass < 2; pass++) {
            const size_t *r = m->layers[i].range[pass];
            if (r[1] > r[0]) m->shard.grads_final(m->shard.grads_context, r[0], r[1] - r[0]);
        }
    }
    /* the position table is replicated: every rank computes its (identical) gradient */
    if (m->first_stage)
        o->embedding_backward(grad(m, m->embed_tokens), grad(m, m->embed_positions), m->dresid,
                              m->tokens + (size_t)slot * N, m->positions + (size_t)slot * N, N, d);
}

void model_forward(model *m, const int32_t *tokens, const float *loss_weights, double moe_scale) {
    model_stage_forward(m, 0, tokens, loss_weights, moe_scale);
}

void model_backward(model *m) { model_stage_backward(m, 0); }

double model_flops_per_token(const model *m) { return m->flops_per_token; }
