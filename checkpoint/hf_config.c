#include "checkpoint/hf_config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/json_parse.h"

static const struct {
    const char *architecture, *model_type;
    int moe, qk_norm, tie_default;
    double norm_eps_default, rope_theta_default;
} classes[] = {
    [HF_LLAMA] = {"LlamaForCausalLM", "llama", 0, 0, 0, 1e-6, 10000.0},
    [HF_QWEN3] = {"Qwen3ForCausalLM", "qwen3", 0, 1, 0, 1e-6, 10000.0},
    [HF_MIXTRAL] = {"MixtralForCausalLM", "mixtral", 1, 0, 0, 1e-5, 1e6},
    [HF_QWEN2_MOE] = {"Qwen2MoeForCausalLM", "qwen2_moe", 1, 0, 0, 1e-6, 10000.0},
    [HF_QWEN3_MOE] = {"Qwen3MoeForCausalLM", "qwen3_moe", 1, 1, 0, 1e-6, 10000.0},
    [HF_GPT2] = {"GPT2LMHeadModel", "gpt2", 0, 0, 1, 1e-5, 0.0},
};
enum { CLASS_COUNT = sizeof classes / sizeof classes[0] };

const char *hf_class_architecture(hf_class c) { return classes[c].architecture; }

/* ------------------------------------------------------------ class choice -- */

static int gpt2_class(const model_config *m, hf_class *out, status *st) {
    if (m->norm != NORM_LAYERNORM)
        return status_fail(st, "model.norm: GPT2LMHeadModel uses layernorm (got rmsnorm)");
    if (m->activation != ACTIVATION_GELU)
        return status_fail(st, "model.activation: GPT2LMHeadModel uses gelu (got %s)",
                           config_activation_name(m->activation));
    if (m->qk_norm) return status_fail(st, "model.qk_norm: GPT2LMHeadModel has no qk-norm");
    if (m->kv_heads != m->heads)
        return status_fail(st,
                           "model.kv_heads: GPT2LMHeadModel has no grouped-query attention "
                           "(kv_heads=%d, heads=%d)",
                           m->kv_heads, m->heads);
    if (m->moe.experts > 0)
        return status_fail(st, "model.moe.experts: GPT2LMHeadModel has no mixture of experts");
    *out = HF_GPT2;
    return 0;
}

int hf_class_for(const model_config *m, hf_class *out, status *st) {
    if (m->arch == ARCH_GPT2) return gpt2_class(m, out, st);
    if (m->norm != NORM_RMSNORM)
        return status_fail(st, "model.norm: layernorm with arch llama has no Hugging Face class "
                               "(Llama, Mixtral and Qwen use rmsnorm)");
    if (m->activation != ACTIVATION_SWIGLU)
        return status_fail(st,
                           "model.activation: %s with arch llama has no Hugging Face class "
                           "(Llama, Mixtral and Qwen use swiglu)",
                           config_activation_name(m->activation));
    if (m->moe.experts == 0) {
        *out = m->qk_norm ? HF_QWEN3 : HF_LLAMA;
        return 0;
    }
    if (m->moe.router != ROUTER_SOFTMAX)
        return status_fail(st, "model.moe.router: sigmoid has no Hugging Face class (Mixtral and "
                               "Qwen MoE route by softmax)");
    if (m->moe.shared_experts > 0 && m->qk_norm)
        return status_fail(st, "model.moe.shared_experts: no Hugging Face class has shared experts "
                               "and qk_norm (Qwen2-MoE has shared experts, Qwen3-MoE has qk_norm)");
    if (m->moe.shared_experts > 0)
        *out = HF_QWEN2_MOE;
    else
        *out = m->qk_norm ? HF_QWEN3_MOE : HF_MIXTRAL;
    return 0;
}

/* ---------------------------------------------------------------- writing -- */

typedef struct object_writer {
    FILE *out;
    int fields;
} object_writer;

static void key(object_writer *w, const char *name) {
    fputs(w->fields++ ? ",\n  " : "{\n  ", w->out);
    json_write_string(w->out, name);
    fputs(": ", w->out);
}

static void put_int(object_writer *w, const char *name, long long value) {
    key(w, name);
    fprintf(w->out, "%lld", value);
}

/* The shortest text that reads back as the same double; an integer-valued one gets ".0" so that
 * readers keep it a float ("1e+06" is valid JSON as it is). */
static void put_number(object_writer *w, const char *name, double value) {
    key(w, name);
    if (!isfinite(value)) {
        fputs("null", w->out);
        return;
    }
    char text[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, value);
        if (strtod(text, NULL) == value) break;
    }
    if (!strpbrk(text, ".eEn")) strcat(text, ".0");
    fputs(text, w->out);
}

static void put_string(object_writer *w, const char *name, const char *value) {
    key(w, name);
    json_write_string(w->out, value);
}

/* true, false, null, [] */
static void put_raw(object_writer *w, const char *name, const char *text) {
    key(w, name);
    fputs(text, w->out);
}

static void put_bool(object_writer *w, const char *name, int value) {
    put_raw(w, name, value ? "true" : "false");
}

static void write_gpt2(object_writer *w, const model_config *m) {
    put_int(w, "vocab_size", m->vocab);
    put_int(w, "n_positions", m->seq_len);
    put_int(w, "n_embd", m->d_model);
    put_int(w, "n_layer", m->layers);
    put_int(w, "n_head", m->heads);
    put_int(w, "n_inner", m->ffn);
    put_string(w, "activation_function", "gelu_new"); /* the tanh approximation */
    put_number(w, "layer_norm_epsilon", m->norm_eps);
    put_number(w, "resid_pdrop", 0.0);
    put_number(w, "embd_pdrop", 0.0);
    put_number(w, "attn_pdrop", 0.0);
    put_bool(w, "scale_attn_weights", 1);
    put_bool(w, "scale_attn_by_inverse_layer_idx", 0);
    put_bool(w, "reorder_and_upcast_attn", 0);
}

static void write_llama_family(object_writer *w, const model_config *m, hf_class c) {
    int head_dim = m->d_model / m->heads;
    put_int(w, "vocab_size", m->vocab);
    put_int(w, "hidden_size", m->d_model);
    put_int(w, "intermediate_size", c == HF_MIXTRAL ? m->moe.ffn : m->ffn);
    put_int(w, "num_hidden_layers", m->layers);
    put_int(w, "num_attention_heads", m->heads);
    put_int(w, "num_key_value_heads", m->kv_heads);
    put_int(w, "head_dim", head_dim);
    put_string(w, "hidden_act", "silu");
    put_int(w, "max_position_embeddings", m->seq_len);
    put_number(w, "rms_norm_eps", m->norm_eps);
    put_number(w, "rope_theta", m->rope_theta);
    put_raw(w, "rope_scaling", "null");
    put_number(w, "attention_dropout", 0.0);
    if (c != HF_MIXTRAL) put_bool(w, "attention_bias", 0);
    if (c == HF_LLAMA) put_bool(w, "mlp_bias", 0);
    if (c == HF_MIXTRAL) put_raw(w, "sliding_window", "null");
    if (c == HF_QWEN3 || c == HF_QWEN2_MOE || c == HF_QWEN3_MOE) {
        put_bool(w, "use_sliding_window", 0);
        put_raw(w, "sliding_window", "null");
        put_int(w, "max_window_layers", m->layers);
    }
    if (!classes[c].moe) return;
    put_int(w, c == HF_MIXTRAL ? "num_local_experts" : "num_experts", m->moe.experts);
    put_int(w, "num_experts_per_tok", m->moe.top_k);
    put_number(w, "router_aux_loss_coef", m->moe.aux_loss_coef);
    put_bool(w, "output_router_logits", 0);
    if (c == HF_MIXTRAL) {
        put_number(w, "router_jitter_noise", 0.0);
        return;
    }
    put_int(w, "moe_intermediate_size", m->moe.ffn);
    if (c == HF_QWEN2_MOE)
        put_int(w, "shared_expert_intermediate_size",
                (long long)m->moe.shared_experts * m->moe.ffn);
    put_bool(w, "norm_topk_prob", 1); /* cairn's gates: softmax over the top-k logits */
    put_int(w, "decoder_sparse_step", 1);
    put_raw(w, "mlp_only_layers", "[]");
}

int hf_config_write(const char *path, const model_config *m, hf_class c, const char *torch_dtype,
                    int eos_token_id, status *st) {
    FILE *out = fopen(path, "w");
    if (!out) return status_fail(st, "%s: cannot create: %s", path, strerror(errno));
    object_writer w = {out, 0};
    key(&w, "architectures");
    fputc('[', out);
    json_write_string(out, classes[c].architecture);
    fputc(']', out);
    put_string(&w, "model_type", classes[c].model_type);
    if (c == HF_GPT2)
        write_gpt2(&w, m);
    else
        write_llama_family(&w, m, c);
    put_bool(&w, "tie_word_embeddings", m->tie_embeddings);
    put_number(&w, "initializer_range", m->init_std);
    put_raw(&w, "bos_token_id", "null");
    if (eos_token_id >= 0)
        put_int(&w, "eos_token_id", eos_token_id);
    else
        put_raw(&w, "eos_token_id", "null");
    put_bool(&w, "use_cache", 1);
    put_string(&w, "torch_dtype", torch_dtype);
    fputs("\n}\n", out);
    int failed = ferror(out);
    failed |= fclose(out) != 0;
    if (failed) return status_fail(st, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

/* ---------------------------------------------------------------- reading -- */

typedef struct reader {
    const char *path;
    const json_value *root;
    status *st;
} reader;

/* NULL for an absent key and for null */
static const json_value *field(const reader *r, const char *name) {
    const json_value *v = json_find(r->root, name);
    return v && v->type != JSON_NULL ? v : NULL;
}

static int bad(const reader *r, const char *name, const char *what) {
    return status_fail(r->st, "%s: field %s: %s", r->path, name, what);
}

/* required: no fallback; the value must be an integer >= min */
static int read_int(const reader *r, const char *name, int required, int fallback, int min,
                    int *out) {
    const json_value *v = field(r, name);
    if (!v) {
        if (required) return bad(r, name, "missing");
        *out = fallback;
        return 0;
    }
    if (v->type != JSON_NUMBER || !v->is_integer || v->as.integer < min ||
        v->as.integer > 1 << 30) {
        char what[80];
        snprintf(what, sizeof what, "must be an integer >= %d", min);
        return bad(r, name, what);
    }
    *out = (int)v->as.integer;
    return 0;
}

static int read_positive(const reader *r, const char *name, double fallback, double *out) {
    const json_value *v = field(r, name);
    if (!v) {
        *out = fallback;
        return 0;
    }
    if (v->type != JSON_NUMBER || !(v->as.number > 0)) return bad(r, name, "must be a number > 0");
    *out = v->as.number;
    return 0;
}

static int read_bool(const reader *r, const char *name, int fallback, int *out) {
    const json_value *v = field(r, name);
    if (!v) {
        *out = fallback;
        return 0;
    }
    if (v->type != JSON_TRUE && v->type != JSON_FALSE) return bad(r, name, "must be true or false");
    *out = v->type == JSON_TRUE;
    return 0;
}

/* A boolean field that cairn supports only with one value. */
static int require_bool(const reader *r, const char *name, int fallback, int wanted,
                        const char *why) {
    int value = fallback;
    if (read_bool(r, name, fallback, &value) != 0) return -1;
    return value == wanted ? 0 : bad(r, name, why);
}

/* A string field that must be one of `allowed` (NULL-terminated); absent is `allowed[0]`. */
static int require_string(const reader *r, const char *name, const char *const *allowed,
                          const char *why) {
    const json_value *v = field(r, name);
    if (!v) return 0;
    if (v->type == JSON_STRING)
        for (int i = 0; allowed[i]; i++)
            if (strcmp(v->as.string, allowed[i]) == 0) return 0;
    return bad(r, name, why);
}

static int require_absent(const reader *r, const char *name, const char *why) {
    return field(r, name) ? bad(r, name, why) : 0;
}

static int read_class(const reader *r, hf_class *c) {
    const json_value *v = field(r, "model_type");
    if (!v || v->type != JSON_STRING) return bad(r, "model_type", "missing or not a string");
    for (int i = 0; i < CLASS_COUNT; i++)
        if (strcmp(v->as.string, classes[i].model_type) == 0) {
            *c = (hf_class)i;
            return 0;
        }
    char what[300];
    snprintf(what, sizeof what,
             "\"%.100s\" is not supported (llama, qwen3, mixtral, qwen2_moe, "
             "qwen3_moe, gpt2)",
             v->as.string);
    return bad(r, "model_type", what);
}

static int read_gpt2(const reader *r, model_config *m) {
    static const char *const tanh_gelu[] = {"gelu_new", "gelu_pytorch_tanh", NULL};
    m->arch = ARCH_GPT2;
    m->norm = NORM_LAYERNORM;
    m->activation = ACTIVATION_GELU;
    if (read_int(r, "n_layer", 1, 0, 1, &m->layers) ||
        read_int(r, "n_embd", 1, 0, 1, &m->d_model) || read_int(r, "n_head", 1, 0, 1, &m->heads) ||
        read_int(r, "n_positions", 1, 0, 2, &m->seq_len) ||
        read_int(r, "n_inner", 0, 4 * m->d_model, 1, &m->ffn) ||
        read_positive(r, "layer_norm_epsilon", classes[HF_GPT2].norm_eps_default, &m->norm_eps) ||
        require_string(r, "activation_function", tanh_gelu,
                       "cairn's gelu is the tanh approximation (gelu_new)") ||
        require_bool(r, "scale_attn_weights", 1, 1, "cairn scales attention by 1/sqrt(head_dim)") ||
        require_bool(r, "scale_attn_by_inverse_layer_idx", 0, 0,
                     "cairn does not scale attention by layer"))
        return -1;
    m->kv_heads = m->heads;
    if (m->d_model % m->heads) return bad(r, "n_head", "must divide n_embd");
    return 0;
}

static int read_moe(const reader *r, model_config *m, hf_class c) {
    moe_config *e = &m->moe;
    int shared = 0;
    e->router = ROUTER_SOFTMAX;
    e->shared_experts = 0;
    e->capacity_factor = 0;
    if (read_int(r, c == HF_MIXTRAL ? "num_local_experts" : "num_experts", 1, 0, 2, &e->experts) ||
        read_int(r, "num_experts_per_tok", 1, 0, 1, &e->top_k))
        return -1;
    if (e->top_k > e->experts)
        return bad(r, "num_experts_per_tok", "must not exceed the number of experts");
    const json_value *aux = field(r, "router_aux_loss_coef");
    if (aux && aux->type == JSON_NUMBER && aux->as.number >= 0) e->aux_loss_coef = aux->as.number;
    if (c == HF_MIXTRAL) {
        e->ffn = m->ffn;
        const json_value *window = field(r, "sliding_window");
        if (window && !(window->type == JSON_NUMBER && window->as.number >= m->seq_len))
            return bad(r, "sliding_window", "cairn attends over the whole sequence (want null)");
        return 0;
    }
    if (read_int(r, "moe_intermediate_size", 1, 0, 1, &e->ffn) ||
        require_bool(r, "norm_topk_prob", 0, 1,
                     "false has no cairn equivalent (cairn renormalises the top-k gates)") ||
        require_bool(r, "use_sliding_window", 0, 0, "cairn attends over the whole sequence"))
        return -1;
    int step = 1;
    if (read_int(r, "decoder_sparse_step", 0, 1, 1, &step)) return -1;
    if (step != 1) return bad(r, "decoder_sparse_step", "cairn has MoE in every layer (want 1)");
    const json_value *dense = field(r, "mlp_only_layers");
    if (dense && !(dense->type == JSON_ARRAY && dense->length == 0))
        return bad(r, "mlp_only_layers", "cairn has MoE in every layer (want [])");
    if (c == HF_QWEN2_MOE) {
        if (read_int(r, "shared_expert_intermediate_size", 1, 0, 1, &shared)) return -1;
        if (shared % e->ffn)
            return bad(r, "shared_expert_intermediate_size",
                       "must be a multiple of moe_intermediate_size (cairn's shared experts have "
                       "the routed experts' width)");
        e->shared_experts = shared / e->ffn;
    }
    return 0;
}

static int read_llama_family(const reader *r, model_config *m, hf_class c) {
    static const char *const silu[] = {"silu", NULL};
    m->arch = ARCH_LLAMA;
    m->norm = NORM_RMSNORM;
    m->activation = ACTIVATION_SWIGLU;
    m->qk_norm = classes[c].qk_norm;
    if (read_int(r, "num_hidden_layers", 1, 0, 1, &m->layers) ||
        read_int(r, "hidden_size", 1, 0, 1, &m->d_model) ||
        read_int(r, "num_attention_heads", 1, 0, 1, &m->heads) ||
        read_int(r, "num_key_value_heads", 0, m->heads, 1, &m->kv_heads) ||
        read_int(r, "intermediate_size", 1, 0, 1, &m->ffn) ||
        read_int(r, "max_position_embeddings", 1, 0, 2, &m->seq_len) ||
        read_positive(r, "rms_norm_eps", classes[c].norm_eps_default, &m->norm_eps) ||
        read_positive(r, "rope_theta", classes[c].rope_theta_default, &m->rope_theta) ||
        require_string(r, "hidden_act", silu, "cairn's swiglu gates with silu") ||
        require_absent(r, "rope_scaling", "cairn has plain RoPE (want null)") ||
        (c != HF_QWEN2_MOE &&
         require_bool(r, "attention_bias", 0, 0, "cairn's llama attention has no biases")) ||
        require_bool(r, "mlp_bias", 0, 0, "cairn's llama MLP has no biases"))
        return -1;
    if (m->d_model % m->heads) return bad(r, "num_attention_heads", "must divide hidden_size");
    if (m->heads % m->kv_heads)
        return bad(r, "num_key_value_heads", "must divide num_attention_heads");
    int head_dim = 0;
    if (read_int(r, "head_dim", 0, m->d_model / m->heads, 1, &head_dim)) return -1;
    if (head_dim != m->d_model / m->heads)
        return bad(r, "head_dim", "cairn's head dimension is hidden_size / num_attention_heads");
    if (head_dim % 2) return bad(r, "head_dim", "must be even for RoPE");
    if (!classes[c].moe) {
        m->moe.experts = 0;
        return 0;
    }
    return read_moe(r, m, c);
}

int hf_config_read(const char *path, model_config *m, hf_class *c, int *eos_token_id, status *st) {
    json_document *document;
    if (json_read_file(path, JSON_UNIQUE_KEYS | JSON_NO_NUL, &document, st) != 0) return -1;
    const json_value *root = json_document_root(document);
    reader r = {path, root, st};
    int result = root->type == JSON_OBJECT ? 0 : status_fail(st, "%s: not a JSON object", path);
    if (result == 0) result = read_class(&r, c);
    if (result == 0) result = *c == HF_GPT2 ? read_gpt2(&r, m) : read_llama_family(&r, m, *c);
    if (result == 0)
        result = read_int(&r, "vocab_size", 1, 0, 2, &m->vocab) ||
                         read_bool(&r, "tie_word_embeddings", classes[*c].tie_default,
                                   &m->tie_embeddings) ||
                         read_positive(&r, "initializer_range", m->init_std, &m->init_std)
                     ? -1
                     : 0;
    const json_value *eos = field(&r, "eos_token_id");
    *eos_token_id = eos && eos->type == JSON_NUMBER && eos->is_integer && eos->as.integer >= 0 &&
                            eos->as.integer < m->vocab
                        ? (int)eos->as.integer
                        : -1;
    json_document_free(document);
    return result;
}
