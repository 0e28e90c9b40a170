/* Typed configuration: the built-in defaults (the tiny run `cairn train` trains without a
 * CONFIG), the key table every other config*.c works from, and the enum names. */
#include "train/config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "train/config_keys.h"

static const char *const arch_words[] = {"llama", "gpt2", NULL};
static const char *const norm_words[] = {"rmsnorm", "layernorm", NULL};
static const char *const activation_words[] = {"swiglu", "gelu", "xielu", NULL};
static const char *const router_words[] = {"softmax", "sigmoid", NULL};
static const char *const precision_words[] = {"fp32", "bf16", NULL};
static const char *const recompute_words[] = {"none", "full", NULL};
static const char *const optimizer_words[] = {"adamw", "ademamix", NULL};
static const char *const schedule_words[] = {"constant", "cosine", "wsd", NULL};
static const char *const goldfish_words[] = {"apertus", "coef", "static", NULL};
static const char *const comm_words[] = {"auto", "mpi", "nccl", NULL};
static const char *const device_words[] = {"auto", "cpu", "cuda", NULL};

#define MEMBER_SIZE(member) sizeof(((config *)0)->member)
#define KEY(path, type, member) {path, type, offsetof(config, member), MEMBER_SIZE(member), NULL}
#define ENUM_KEY(path, member, words) \
    {path, KEY_ENUM, offsetof(config, member), MEMBER_SIZE(member), words}

const config_key config_keys[] = {
    KEY("run.name", KEY_STRING, run.name),
    KEY("run.out_dir", KEY_STRING, run.out_dir),
    KEY("run.seed", KEY_UINT64, run.seed),
    KEY("run.steps", KEY_INT64, run.steps),
    KEY("run.tokens", KEY_INT64, run.tokens),
    KEY("run.log_every", KEY_INT, run.log_every),
    KEY("run.eval_every", KEY_INT, run.eval_every),
    ENUM_KEY("model.arch", model.arch, arch_words),
    KEY("model.layers", KEY_INT, model.layers),
    KEY("model.d_model", KEY_INT, model.d_model),
    KEY("model.heads", KEY_INT, model.heads),
    KEY("model.kv_heads", KEY_INT, model.kv_heads),
    KEY("model.ffn", KEY_INT, model.ffn),
    KEY("model.vocab", KEY_INT, model.vocab),
    KEY("model.seq_len", KEY_INT, model.seq_len),
    ENUM_KEY("model.norm", model.norm, norm_words),
    KEY("model.norm_eps", KEY_DOUBLE, model.norm_eps),
    ENUM_KEY("model.activation", model.activation, activation_words),
    KEY("model.qk_norm", KEY_BOOL, model.qk_norm),
    KEY("model.rope_theta", KEY_DOUBLE, model.rope_theta),
    KEY("model.tie_embeddings", KEY_BOOL, model.tie_embeddings),
    KEY("model.document_masking", KEY_BOOL, model.document_masking),
    KEY("model.init_std", KEY_DOUBLE, model.init_std),
    KEY("model.moe.experts", KEY_INT, model.moe.experts),
    KEY("model.moe.top_k", KEY_INT, model.moe.top_k),
    KEY("model.moe.ffn", KEY_INT, model.moe.ffn),
    KEY("model.moe.shared_experts", KEY_INT, model.moe.shared_experts),
    ENUM_KEY("model.moe.router", model.moe.router, router_words),
    KEY("model.moe.aux_loss_coef", KEY_DOUBLE, model.moe.aux_loss_coef),
    KEY("model.moe.z_loss_coef", KEY_DOUBLE, model.moe.z_loss_coef),
    KEY("model.moe.capacity_factor", KEY_DOUBLE, model.moe.capacity_factor),
    KEY("train.micro_batch", KEY_INT, train.micro_batch),
    KEY("train.global_batch", KEY_INT, train.global_batch),
    ENUM_KEY("train.precision", train.precision, precision_words),
    KEY("train.grad_clip", KEY_DOUBLE, train.grad_clip),
    ENUM_KEY("train.recompute", train.recompute, recompute_words),
    KEY("train.goldfish.enabled", KEY_BOOL, train.goldfish.enabled),
    KEY("train.goldfish.k", KEY_INT, train.goldfish.k),
    KEY("train.goldfish.h", KEY_INT, train.goldfish.h),
    ENUM_KEY("train.goldfish.variant", train.goldfish.variant, goldfish_words),
    ENUM_KEY("optim.name", optim.name, optimizer_words),
    KEY("optim.lr", KEY_DOUBLE, optim.lr),
    KEY("optim.min_lr", KEY_DOUBLE, optim.min_lr),
    KEY("optim.betas", KEY_BETAS, optim.betas),
    KEY("optim.eps", KEY_DOUBLE, optim.eps),
    KEY("optim.weight_decay", KEY_DOUBLE, optim.weight_decay),
    KEY("optim.ademamix.alpha", KEY_DOUBLE, optim.ademamix_alpha),
    KEY("optim.ademamix.warmup", KEY_INT64, optim.ademamix_warmup),
    ENUM_KEY("optim.schedule.kind", optim.schedule.kind, schedule_words),
    KEY("optim.schedule.warmup", KEY_INT64, optim.schedule.warmup),
    KEY("optim.schedule.decay", KEY_INT64, optim.schedule.decay),
    KEY("data.tokenizer", KEY_STRING, data.tokenizer),
    KEY("data.sources", KEY_SOURCES, data.sources),
    KEY("data.valid", KEY_STRING, data.valid),
    KEY("data.split", KEY_STRING, data.split),
    KEY("data.eval_samples", KEY_INT, data.eval_samples),
    KEY("data.eod_id", KEY_INT, data.eod_id),
    KEY("data.mask_eod_input", KEY_BOOL, data.mask_eod_input),
    KEY("parallel.tp", KEY_INT, parallel.tp),
    KEY("parallel.pp", KEY_INT, parallel.pp),
    KEY("parallel.ep", KEY_INT, parallel.ep),
    KEY("parallel.zero", KEY_INT, parallel.zero),
    ENUM_KEY("parallel.comm", parallel.comm, comm_words),
    KEY("parallel.timeout_s", KEY_DOUBLE, parallel.timeout_s),
    KEY("parallel.bucket_elements", KEY_INT64, parallel.bucket_elements),
    KEY("checkpoint.dir", KEY_STRING, checkpoint.dir),
    KEY("checkpoint.every", KEY_INT64, checkpoint.every),
    KEY("checkpoint.keep", KEY_INT, checkpoint.keep),
    KEY("checkpoint.at_end", KEY_BOOL, checkpoint.at_end),
    KEY("checkpoint.resume", KEY_STRING, checkpoint.resume),
    ENUM_KEY("device", device, device_words),
};
const int config_key_count = (int)(sizeof config_keys / sizeof config_keys[0]);
_Static_assert(sizeof config_keys / sizeof config_keys[0] <= CONFIG_KEYS,
               "config_origin.line needs one slot per key: raise CONFIG_KEYS");

void config_defaults(config *c) {
    memset(c, 0, sizeof *c);
    run_config *run = &c->run;
    snprintf(run->name, sizeof run->name, "tiny");
    snprintf(run->out_dir, sizeof run->out_dir, "runs/tiny");
    run->seed = 1234;
    run->steps = 200;
    run->tokens = 0;
    run->log_every = 10;
    run->eval_every = 50;

    model_config *model = &c->model;
    model->arch = ARCH_LLAMA;
    model->layers = 4;
    model->d_model = 128;
    model->heads = 4;
    model->kv_heads = 2;
    model->ffn = 384;
    model->vocab = 0;
    model->seq_len = 128;
    model->norm = NORM_RMSNORM;
    model->norm_eps = 1e-5;
    model->activation = ACTIVATION_SWIGLU;
    model->qk_norm = 0;
    model->rope_theta = 10000.0;
    model->tie_embeddings = 1;
    model->document_masking = 1;
    model->init_std = 0.02;
    model->moe.experts = 0;
    model->moe.top_k = 2;
    model->moe.ffn = 0;
    model->moe.shared_experts = 0;
    model->moe.router = ROUTER_SOFTMAX;
    model->moe.aux_loss_coef = 0.01;
    model->moe.z_loss_coef = 0.001;
    model->moe.capacity_factor = 0.0;

    train_config *train = &c->train;
    train->micro_batch = 8;
    train->global_batch = 16;
    train->precision = PRECISION_FP32;
    train->grad_clip = 1.0;
    train->recompute = RECOMPUTE_NONE;
    train->goldfish.enabled = 0;
    train->goldfish.k = 50;
    train->goldfish.h = 50;
    train->goldfish.variant = GOLDFISH_APERTUS;

    optim_config *optim = &c->optim;
    optim->name = OPTIM_ADAMW;
    optim->lr = 3e-3;
    optim->min_lr = 3e-4;
    optim->betas[0] = 0.9;
    optim->betas[1] = 0.95;
    optim->betas[2] = 0.9999;
    optim->eps = 1e-8;
    optim->weight_decay = 0.1;
    optim->ademamix_alpha = 8.0;
    optim->ademamix_warmup = -1;
    optim->schedule.kind = SCHEDULE_COSINE;
    optim->schedule.warmup = 20;
    optim->schedule.decay = 0;

    data_config *data = &c->data;
    snprintf(data->tokenizer, sizeof data->tokenizer, "bytes");
    data->source_count = 1;
    snprintf(data->sources[0].path, sizeof data->sources[0].path, "runs/corpus/fortunes-train");
    data->sources[0].weight = 1.0;
    snprintf(data->valid, sizeof data->valid, "runs/corpus/fortunes-valid");
    data->eval_samples = 32;
    data->eod_id = -1;
    data->mask_eod_input = 1;

    c->parallel.tp = 1;
    c->parallel.pp = 1;
    c->parallel.ep = 1;
    c->parallel.zero = 0;
    c->parallel.comm = COMM_AUTO;
    c->parallel.timeout_s = 600.0;

    c->checkpoint.every = 0;
    c->checkpoint.keep = 3;
    c->checkpoint.at_end = 1;
    snprintf(c->checkpoint.resume, sizeof c->checkpoint.resume, "auto");
    c->device = DEVICE_AUTO;
}

static const char *enum_word(const char *const *words, int count, int value) {
    return value >= 0 && value < count ? words[value] : "?";
}

const char *config_arch_name(model_arch a) { return enum_word(arch_words, 2, (int)a); }

const char *config_activation_name(activation_kind a) {
    return enum_word(activation_words, 3, (int)a);
}

const char *config_device_name(device_kind d) { return enum_word(device_words, 3, (int)d); }

int config_key_find(const char *path) {
    for (int k = 0; k < config_key_count; k++)
        if (strcmp(config_keys[k].path, path) == 0) return k;
    return -1;
}

void config_origin_describe(const config *c, int line, char *out, size_t size) {
    if (line > 0)
        snprintf(out, size, "%s:%d", c->source, line);
    else if (line < 0)
        snprintf(out, size, "--set");
    else if (c->source[0])
        snprintf(out, size, "%s (default)", c->source);
    else
        snprintf(out, size, "built-in default");
}
