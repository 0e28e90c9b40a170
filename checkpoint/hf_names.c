#include "checkpoint/hf_names.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct map_builder {
    hf_tensor *items;
    int count, capacity;
    int failed;
} map_builder;

static hf_tensor *add(map_builder *b, hf_transform transform, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static hf_tensor *add(map_builder *b, hf_transform transform, const char *format, ...) {
    static hf_tensor sink;
    if (b->count == b->capacity) {
        int grown = b->capacity ? 2 * b->capacity : 64;
        hf_tensor *items = realloc(b->items, sizeof *items * (size_t)grown);
        if (!items) {
            b->failed = 1;
            memset(&sink, 0, sizeof sink);
            return &sink;
        }
        b->items = items;
        b->capacity = grown;
    }
    hf_tensor *t = &b->items[b->count++];
    memset(t, 0, sizeof *t);
    t->transform = transform;
    va_list args;
    va_start(args, format);
    vsnprintf(t->name, sizeof t->name, format, args);
    va_end(args);
    return t;
}

/* Appends a cairn part of shape [rows] (cols 0) or [rows][cols] and sets the HF shape. */
static void part(hf_tensor *t, int64_t rows, int64_t cols, const char *format, ...)
    __attribute__((format(printf, 4, 5)));
static void part(hf_tensor *t, int64_t rows, int64_t cols, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(t->cairn[t->parts], sizeof t->cairn[0], format, args);
    va_end(args);
    t->cairn_rows[t->parts++] = rows;
    t->cairn_ndim = cols ? 2 : 1;
    t->cairn_cols = cols ? cols : 1;
    int64_t total = 0;
    for (int i = 0; i < t->parts; i++)
        total += t->cairn_rows[i];
    t->ndim = t->cairn_ndim;
    t->shape[0] = t->transform == HF_TRANSPOSE ? cols : total;
    t->shape[1] = t->transform == HF_TRANSPOSE ? total : cols;
}

/* An HF-only tensor of zeros: [rows] (cols 0) or [rows][cols]. */
static void zeros(map_builder *b, int64_t rows, int64_t cols, const char *name) {
    hf_tensor *t = add(b, HF_ZEROS, "%s", name);
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
}

/* A one-to-one tensor. */
static hf_tensor *same(map_builder *b, hf_transform transform, const char *hf, const char *cairn,
                       int64_t rows, int64_t cols) {
    hf_tensor *t = add(b, transform, "%s", hf);
    part(t, rows, cols, "%s", cairn);
    return t;
}

static void llama_layer(map_builder *b, const model_config *m, hf_class c, int i) {
    int d = m->d_model, H = m->heads, KV = m->kv_heads, hd = d / H, F = m->moe.ffn;
    char hf[128], cairn[96];
#define HF(fmt, ...) (snprintf(hf, sizeof hf, "model.layers.%d." fmt, i, ##__VA_ARGS__), hf)
#define CAIRN(fmt, ...) (snprintf(cairn, sizeof cairn, "layers.%d." fmt, i, ##__VA_ARGS__), cairn)
    same(b, HF_ROPE_ROWS, HF("self_attn.q_proj.weight"), CAIRN("attn.wq"), (int64_t)H * hd, d)
        ->heads = H;
    same(b, HF_ROPE_ROWS, HF("self_attn.k_proj.weight"), CAIRN("attn.wk"), (int64_t)KV * hd, d)
        ->heads = KV;
    same(b, HF_COPY, HF("self_attn.v_proj.weight"), CAIRN("attn.wv"), (int64_t)KV * hd, d);
    same(b, HF_COPY, HF("self_attn.o_proj.weight"), CAIRN("attn.wo"), d, (int64_t)H * hd);
    if (c == HF_QWEN2_MOE) {
        zeros(b, (int64_t)H * hd, 0, HF("self_attn.q_proj.bias"));
        zeros(b, (int64_t)KV * hd, 0, HF("self_attn.k_proj.bias"));
        zeros(b, (int64_t)KV * hd, 0, HF("self_attn.v_proj.bias"));
    }
    if (m->qk_norm) {
        same(b, HF_ROPE_ROWS, HF("self_attn.q_norm.weight"), CAIRN("attn.q_norm"), hd, 0)->heads =
            1;
        same(b, HF_ROPE_ROWS, HF("self_attn.k_norm.weight"), CAIRN("attn.k_norm"), hd, 0)->heads =
            1;
    }
    if (m->moe.experts == 0) {
        same(b, HF_COPY, HF("mlp.gate_proj.weight"), CAIRN("mlp.w_gate"), m->ffn, d);
        same(b, HF_COPY, HF("mlp.up_proj.weight"), CAIRN("mlp.w_up"), m->ffn, d);
        same(b, HF_COPY, HF("mlp.down_proj.weight"), CAIRN("mlp.w_down"), d, m->ffn);
    } else {
        const char *block = c == HF_MIXTRAL ? "block_sparse_moe" : "mlp";
        same(b, HF_COPY, HF("%s.gate.weight", block), CAIRN("moe.router"), m->moe.experts, d);
        for (int e = 0; e < m->moe.experts; e++) {
            /* Mixtral: w1 = gate, w3 = up, w2 = down */
            const char *gate = c == HF_MIXTRAL ? "w1" : "gate_proj";
            const char *up = c == HF_MIXTRAL ? "w3" : "up_proj";
            const char *down = c == HF_MIXTRAL ? "w2" : "down_proj";
            same(b, HF_COPY, HF("%s.experts.%d.%s.weight", block, e, gate),
                 CAIRN("moe.experts.%d.w_gate", e), F, d);
            same(b, HF_COPY, HF("%s.experts.%d.%s.weight", block, e, up),
                 CAIRN("moe.experts.%d.w_up", e), F, d);
            same(b, HF_COPY, HF("%s.experts.%d.%s.weight", block, e, down),
                 CAIRN("moe.experts.%d.w_down", e), d, F);
        }
        if (c == HF_QWEN2_MOE) {
            int64_t S = (int64_t)m->moe.shared_experts * F;
            same(b, HF_COPY, HF("mlp.shared_expert.gate_proj.weight"), CAIRN("moe.shared.w_gate"),
                 S, d);
            same(b, HF_COPY, HF("mlp.shared_expert.up_proj.weight"), CAIRN("moe.shared.w_up"), S,
                 d);
            same(b, HF_DOUBLE, HF("mlp.shared_expert.down_proj.weight"), CAIRN("moe.shared.w_down"),
                 d, S);
            zeros(b, 1, d, HF("mlp.shared_expert_gate.weight"));
        }
    }
    same(b, HF_COPY, HF("input_layernorm.weight"), CAIRN("attn_norm.weight"), d, 0);
    same(b, HF_COPY, HF("post_attention_layernorm.weight"), CAIRN("mlp_norm.weight"), d, 0);
#undef HF
#undef CAIRN
}

static void gpt2_layer(map_builder *b, const model_config *m, int i) {
    int d = m->d_model, F = m->ffn;
    char hf[128], cairn[96];
#define HF(fmt) (snprintf(hf, sizeof hf, "transformer.h.%d." fmt, i), hf)
#define CAIRN(fmt) (snprintf(cairn, sizeof cairn, "layers.%d." fmt, i), cairn)
    same(b, HF_COPY, HF("ln_1.weight"), CAIRN("attn_norm.weight"), d, 0);
    same(b, HF_COPY, HF("ln_1.bias"), CAIRN("attn_norm.bias"), d, 0);
    /* c_attn: q, k, v side by side in one Conv1D */
    hf_tensor *qkv = add(b, HF_TRANSPOSE, "transformer.h.%d.attn.c_attn.weight", i);
    hf_tensor *qkv_bias = add(b, HF_COPY, "transformer.h.%d.attn.c_attn.bias", i);
    if (!b->failed) {
        const char *which[3] = {"wq", "wk", "wv"}, *bias[3] = {"bq", "bk", "bv"};
        for (int j = 0; j < 3; j++) {
            part(qkv, d, d, "layers.%d.attn.%s", i, which[j]);
            part(qkv_bias, d, 0, "layers.%d.attn.%s", i, bias[j]);
        }
    }
    same(b, HF_TRANSPOSE, HF("attn.c_proj.weight"), CAIRN("attn.wo"), d, d);
    same(b, HF_COPY, HF("attn.c_proj.bias"), CAIRN("attn.bo"), d, 0);
    same(b, HF_COPY, HF("ln_2.weight"), CAIRN("mlp_norm.weight"), d, 0);
    same(b, HF_COPY, HF("ln_2.bias"), CAIRN("mlp_norm.bias"), d, 0);
    same(b, HF_TRANSPOSE, HF("mlp.c_fc.weight"), CAIRN("mlp.w_up"), F, d);
    same(b, HF_COPY, HF("mlp.c_fc.bias"), CAIRN("mlp.b_up"), F, 0);
    same(b, HF_TRANSPOSE, HF("mlp.c_proj.weight"), CAIRN("mlp.w_down"), d, F);
    same(b, HF_COPY, HF("mlp.c_proj.bias"), CAIRN("mlp.b_down"), d, 0);
#undef HF
#undef CAIRN
}

int hf_tensor_map(const model_config *m, hf_class c, hf_tensor **out, int *count, status *st) {
    map_builder b = {0};
    int d = m->d_model;
    if (c == HF_GPT2) {
        same(&b, HF_COPY, "transformer.wte.weight", "embed.tokens", m->vocab, d);
        same(&b, HF_COPY, "transformer.wpe.weight", "embed.positions", m->seq_len, d);
        for (int i = 0; i < m->layers; i++)
            gpt2_layer(&b, m, i);
        same(&b, HF_COPY, "transformer.ln_f.weight", "final_norm.weight", d, 0);
        same(&b, HF_COPY, "transformer.ln_f.bias", "final_norm.bias", d, 0);
    } else {
        same(&b, HF_COPY, "model.embed_tokens.weight", "embed.tokens", m->vocab, d);
        for (int i = 0; i < m->layers; i++)
            llama_layer(&b, m, c, i);
        same(&b, HF_COPY, "model.norm.weight", "final_norm.weight", d, 0);
    }
    if (!m->tie_embeddings) same(&b, HF_COPY, "lm_head.weight", "lm_head", m->vocab, d);
    if (b.failed) {
        free(b.items);
        return status_fail(st, "out of memory for the tensor map");
    }
    *out = b.items;
    *count = b.count;
    return 0;
}

int64_t hf_tensor_elements(const hf_tensor *t) {
    return t->shape[0] * (t->ndim > 1 ? t->shape[1] : 1);
}

/* HF row of cairn row r within one head of hd rows. */
static int64_t rope_row(int64_t r, int64_t hd) { return r % 2 ? hd / 2 + r / 2 : r / 2; }

/* Where element i of the concatenated cairn tensor goes in the HF tensor. */
static int64_t hf_index(const hf_tensor *t, int64_t i) {
    int64_t cols = t->cairn_cols, r = i / cols, k = i % cols, hd;
    switch (t->transform) {
    case HF_TRANSPOSE: /* cairn [rows][cols] -> HF [cols][rows] */
        return k * t->shape[1] + r;
    case HF_ROPE_ROWS:
        hd = t->shape[0] / t->heads;
        return (r / hd * hd + rope_row(r % hd, hd)) * cols + k;
    default:
        return i;
    }
}

void hf_from_cairn(const hf_tensor *t, const float *cairn, float *hf) {
    int64_t n = hf_tensor_elements(t);
    if (t->transform == HF_ZEROS) {
        memset(hf, 0, sizeof *hf * (size_t)n);
        return;
    }
    float scale = t->transform == HF_DOUBLE ? 2.0f : 1.0f; /* powers of two: exact */
    for (int64_t i = 0; i < n; i++)
        hf[hf_index(t, i)] = scale * cairn[i];
}

int hf_to_cairn(const hf_tensor *t, const float *hf, float *cairn, const char *file, status *st) {
    int64_t n = hf_tensor_elements(t);
    if (t->transform == HF_ZEROS) {
        for (int64_t i = 0; i < n; i++)
            if (hf[i] != 0.0f)
                return status_fail(st,
                                   "%s: tensor %s: nonzero values (element %lld = %g) have "
                                   "no cairn equivalent",
                                   file, t->name, (long long)i, (double)hf[i]);
        return 0;
    }
    float scale = t->transform == HF_DOUBLE ? 0.5f : 1.0f;
    for (int64_t i = 0; i < n; i++)
        cairn[i] = scale * hf[hf_index(t, i)];
    return 0;
}
