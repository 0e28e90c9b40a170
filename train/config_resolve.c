/* Derived values and validation of a loaded config.
 *
 * Fills: gpt2's layernorm/gelu unless norm/activation were given, model.moe.ffn from model.ffn,
 * run.steps from run.tokens (when steps is 0 or holds its default), optim.ademamix.warmup -1
 * from run.steps, checkpoint.dir from run.out_dir. Resolving a resolved config changes nothing:
 * run.steps and run.tokens may both be given only when steps is exactly what tokens gives.
 * Errors name the key and where its value came from; when a combination of keys is wrong and the
 * named key holds its default, the place cited is where the other key of the combination was
 * set. */
#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "data/split.h"
#include "train/config.h"
#include "train/config_keys.h"

static int key_line(const config *c, const char *key) {
    int index = config_key_find(key);
    assert(index >= 0);
    return c->origin.line[index];
}

static int fail_at(const config *c, status *st, int line, const char *key, const char *format,
                   va_list args) {
    char where[CONFIG_STRING + 32], message[600];
    config_origin_describe(c, line, where, sizeof where);
    vsnprintf(message, sizeof message, format, args);
    return status_fail(st, "%s: %s: %s", where, key, message);
}

/* Fails naming `key`; `related` (or NULL) is the other key of a wrong combination. */
static int invalid(const config *c, status *st, const char *key, const char *related,
                   const char *format, ...) __attribute__((format(printf, 5, 6)));
static int invalid(const config *c, status *st, const char *key, const char *related,
                   const char *format, ...) {
    int line = key_line(c, key);
    if (line == 0 && related) line = key_line(c, related);
    va_list args;
    va_start(args, format);
    fail_at(c, st, line, key, format, args);
    va_end(args);
    return -1;
}

static int invalid_source(const config *c, status *st, int index, const char *field,
                          const char *format, ...) __attribute__((format(printf, 5, 6)));
static int invalid_source(const config *c, status *st, int index, const char *field,
                          const char *format, ...) {
    char key[64];
    snprintf(key, sizeof key, "data.sources.%d.%s", index, field);
    int line = c->origin.source_line[index];
    if (line == 0) line = key_line(c, "data.sources");
    va_list args;
    va_start(args, format);
    fail_at(c, st, line, key, format, args);
    va_end(args);
    return -1;
}

static const char *leaf(const char *key) {
    const char *dot = strrchr(key, '.');
    return dot ? dot + 1 : key;
}

static int at_least(const config *c, status *st, const char *key, long long value,
                    long long min) {
    if (value >= min) return 0;
    return invalid(c, st, key, NULL, "must be >= %lld (got %lld)", min, value);
}

static int positive(const config *c, status *st, const char *key, double value) {
    if (value > 0) return 0;
    return invalid(c, st, key, NULL, "must be > 0 (got %g)", value);
}

static int non_negative(const config *c, status *st, const char *key, double value) {
    if (value >= 0) return 0;
    return invalid(c, st, key, NULL, "must be >= 0 (got %g)", value);
}

/* `key` (value `divisor`) must divide `other` (value `dividend`). */
static int divides(const config *c, status *st, const char *key, long long divisor,
                   const char *other, long long dividend) {
    if (dividend % divisor == 0) return 0;
    return invalid(c, st, key, other, "must divide %s (got %s=%lld, %s=%lld)", other, leaf(key),
                   divisor, leaf(other), dividend);
}

/* `key` (value `dividend`) must be a multiple of `other` (value `divisor`). */
static int divisible_by(const config *c, status *st, const char *key, long long dividend,
                        const char *other, long long divisor) {
    if (dividend % divisor == 0) return 0;
    return invalid(c, st, key, other, "must be divisible by %s (got %s=%lld, %s=%lld)", other,
                   leaf(key), dividend, leaf(other), divisor);
}

static void apply_arch_defaults(config *c) {
    if (c->model.arch != ARCH_GPT2) return;
    if (key_line(c, "model.norm") == 0) c->model.norm = NORM_LAYERNORM;
    if (key_line(c, "model.activation") == 0) c->model.activation = ACTIVATION_GELU;
}

static int resolve_moe(config *c, status *st) {
    moe_config *moe = &c->model.moe;
    if (moe->ffn == 0) moe->ffn = c->model.ffn;
    if (moe->experts < 0 || moe->experts == 1)
        return invalid(c, st, "model.moe.experts", NULL, "must be 0 (dense) or >= 2 (got %d)",
                       moe->experts);
    if (moe->experts > 0) {
        if (moe->top_k < 1 || moe->top_k > moe->experts)
            return invalid(c, st, "model.moe.top_k", "model.moe.experts",
                           "must be between 1 and model.moe.experts (got top_k=%d, experts=%d)",
                           moe->top_k, moe->experts);
        if (c->model.activation == ACTIVATION_XIELU)
            return invalid(c, st, "model.activation", "model.moe.experts",
                           "xielu is not supported with MoE (model.moe.experts=%d)",
                           moe->experts);
    }
    if (at_least(c, st, "model.moe.ffn", moe->ffn, 1) ||
        at_least(c, st, "model.moe.shared_experts", moe->shared_experts, 0) ||
        non_negative(c, st, "model.moe.aux_loss_coef", moe->aux_loss_coef) ||
        non_negative(c, st, "model.moe.z_loss_coef", moe->z_loss_coef) ||
        non_negative(c, st, "model.moe.capacity_factor", moe->capacity_factor))
        return -1;
    return 0;
}

static int resolve_model(config *c, status *st) {
    const model_config *m = &c->model;
    if (at_least(c, st, "model.layers", m->layers, 1) ||
        at_least(c, st, "model.d_model", m->d_model, 1) ||
        at_least(c, st, "model.heads", m->heads, 1) ||
        divides(c, st, "model.heads", m->heads, "model.d_model", m->d_model) ||
        at_least(c, st, "model.kv_heads", m->kv_heads, 1) ||
        divides(c, st, "model.kv_heads", m->kv_heads, "model.heads", m->heads))
        return -1;
    int head_dim = m->d_model / m->heads;
    if (m->arch == ARCH_LLAMA && head_dim % 2)
        return invalid(c, st, "model.heads", "model.d_model",
                       "head dimension d_model/heads must be even for RoPE (got %d/%d = %d)",
                       m->d_model, m->heads, head_dim);
    if (m->vocab == 0 && !c->data.tokenizer[0])
        return invalid(c, st, "model.vocab", "data.tokenizer",
                       "required when data.tokenizer is not set");
    if (at_least(c, st, "model.ffn", m->ffn, 1) ||
        (m->vocab != 0 && at_least(c, st, "model.vocab", m->vocab, 2)) ||
        at_least(c, st, "model.seq_len", m->seq_len, 2) ||
        positive(c, st, "model.norm_eps", m->norm_eps) ||
        positive(c, st, "model.init_std", m->init_std) ||
        (m->arch == ARCH_LLAMA && positive(c, st, "model.rope_theta", m->rope_theta)))
        return -1;
    return resolve_moe(c, st);
}

static int check_train(const config *c, status *st) {
    const train_config *t = &c->train;
    if (at_least(c, st, "train.micro_batch", t->micro_batch, 1) ||
        at_least(c, st, "train.global_batch", t->global_batch, 1) ||
        non_negative(c, st, "train.grad_clip", t->grad_clip) ||
        at_least(c, st, "train.goldfish.k", t->goldfish.k, 2) ||
        at_least(c, st, "train.goldfish.h", t->goldfish.h, 1))
        return -1;
    /* the hashed variants decide only targets whose window of h labels lies in the sample */
    if (t->goldfish.enabled && t->goldfish.variant != GOLDFISH_STATIC &&
        t->goldfish.h > c->model.seq_len)
        return invalid(c, st, "train.goldfish.h", "model.seq_len",
                       "must be <= model.seq_len, or no target is ever dropped (got h=%d, "
                       "seq_len=%d)",
                       t->goldfish.h, c->model.seq_len);
    return 0;
}

static int resolve_run(config *c, status *st) {
    run_config *run = &c->run;
    if (!run->name[0]) return invalid(c, st, "run.name", NULL, "must not be empty");
    for (const char *p = run->name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
            return invalid(c, st, "run.name", NULL,
                           "may hold only letters, digits, '-', '_' and '.' (got \"%s\")",
                           run->name);
    if (!run->out_dir[0]) return invalid(c, st, "run.out_dir", NULL, "must not be empty");
    if (at_least(c, st, "run.steps", run->steps, 0) ||
        at_least(c, st, "run.tokens", run->tokens, 0))
        return -1;
    if (run->tokens > 0) {
        int64_t per_step = (int64_t)c->train.global_batch * c->model.seq_len;
        int64_t derived = run->tokens / per_step + (run->tokens % per_step != 0);
        /* run.steps holding its default does not count as set */
        if (run->steps == 0 || key_line(c, "run.steps") == 0) run->steps = derived;
        if (run->steps != derived)
            return invalid(c, st, "run.steps", "run.tokens",
                           "set run.steps or run.tokens, not both (got steps=%lld, "
                           "tokens=%lld)",
                           (long long)run->steps, (long long)run->tokens);
    }
    if (run->steps < 1)
        return invalid(c, st, "run.steps", NULL, "must be >= 1, or set run.tokens (got %lld)",
                       (long long)run->steps);
    if (at_least(c, st, "run.log_every", run->log_every, 1) ||
        at_least(c, st, "run.eval_every", run->eval_every, 0))
        return -1;
    return 0;
}

static int resolve_optim(config *c, status *st) {
    optim_config *o = &c->optim;
    int64_t steps = c->run.steps;
    if (positive(c, st, "optim.lr", o->lr) || non_negative(c, st, "optim.min_lr", o->min_lr))
        return -1;
    if (o->min_lr > o->lr)
        return invalid(c, st, "optim.min_lr", "optim.lr",
                       "must be <= optim.lr (got min_lr=%g, lr=%g)", o->min_lr, o->lr);
    for (int i = 0; i < 3; i++)
        if (!(o->betas[i] >= 0 && o->betas[i] < 1))
            return invalid(c, st, "optim.betas", NULL, "beta%d must be in [0, 1) (got %g)",
                           i + 1, o->betas[i]);
    if (positive(c, st, "optim.eps", o->eps) ||
        non_negative(c, st, "optim.weight_decay", o->weight_decay) ||
        non_negative(c, st, "optim.ademamix.alpha", o->ademamix_alpha))
        return -1;
    if (o->ademamix_warmup == -1) o->ademamix_warmup = steps;
    if (o->ademamix_warmup < 0)
        return invalid(c, st, "optim.ademamix.warmup", NULL,
                       "must be >= 0, or -1 for run.steps (got %lld)",
                       (long long)o->ademamix_warmup);
    const schedule_config *s = &o->schedule;
    if (at_least(c, st, "optim.schedule.warmup", s->warmup, 0) ||
        at_least(c, st, "optim.schedule.decay", s->decay, 0))
        return -1;
    if (s->warmup >= steps)
        return invalid(c, st, "optim.schedule.warmup", "run.steps",
                       "must be < run.steps (got warmup=%lld, steps=%lld)",
                       (long long)s->warmup, (long long)steps);
    if (s->kind == SCHEDULE_WSD && s->decay > steps - s->warmup)
        return invalid(c, st, "optim.schedule.decay", "run.steps",
                       "must be <= run.steps - optim.schedule.warmup (got decay=%lld, "
                       "steps=%lld, warmup=%lld)",
                       (long long)s->decay, (long long)steps, (long long)s->warmup);
    return 0;
}

static int check_data(const config *c, status *st) {
    const data_config *d = &c->data;
    if (d->source_count < 1)
        return invalid(c, st, "data.sources", NULL, "at least one source is required");
    for (int i = 0; i < d->source_count; i++) {
        if (!d->sources[i].path[0])
            return invalid_source(c, st, i, "path", "must not be empty");
        if (!(d->sources[i].weight > 0))
            return invalid_source(c, st, i, "weight", "must be > 0 (got %g)",
                                  d->sources[i].weight);
    }
    if (at_least(c, st, "data.eval_samples", d->eval_samples, 1) ||
        at_least(c, st, "data.eod_id", d->eod_id, -1))
        return -1;
    double shares[3];
    status split_status;
    if (data_split_parse(d->split, shares, &split_status) != 0)
        return invalid(c, st, "data.split", NULL, "%s", split_status.message);
    if (shares[DATA_SPLIT_TRAIN] == 0)
        return invalid(c, st, "data.split", NULL, "\"%s\" leaves nothing to train on", d->split);
    if (c->model.vocab > 0 && d->eod_id >= c->model.vocab)
        return invalid(c, st, "data.eod_id", "model.vocab",
                       "must be < model.vocab (got eod_id=%d, vocab=%d)", d->eod_id,
                       c->model.vocab);
    return 0;
}

static int check_parallel(const config *c, int world_size, status *st) {
    const parallel_config *p = &c->parallel;
    const model_config *m = &c->model;
    if (at_least(c, st, "parallel.tp", p->tp, 1) || at_least(c, st, "parallel.pp", p->pp, 1) ||
        at_least(c, st, "parallel.ep", p->ep, 1))
        return -1;
    long long model_ranks = (long long)p->tp * p->pp;
    if (world_size % model_ranks)
        return invalid(c, st, "parallel.tp", "parallel.pp",
                       "tp*pp (=%d*%d) must divide the number of ranks (%d)", p->tp, p->pp,
                       world_size);
    int dp = (int)(world_size / model_ranks);
    if (divisible_by(c, st, "model.heads", m->heads, "parallel.tp", p->tp) ||
        divisible_by(c, st, "model.kv_heads", m->kv_heads, "parallel.tp", p->tp) ||
        divisible_by(c, st, "model.ffn", m->ffn, "parallel.tp", p->tp))
        return -1;
    /* gpt2's up-projection bias is one tensor over [gate | up]: no even split of both halves */
    if (p->tp > 1 && m->arch == ARCH_GPT2 && m->activation == ACTIVATION_SWIGLU)
        return invalid(c, st, "parallel.tp", "model.activation",
                       "tensor parallelism does not split gpt2's biased swiglu MLP (use gelu, or "
                       "arch llama)");
    if (p->pp > m->layers)
        return invalid(c, st, "parallel.pp", "model.layers",
                       "must be <= model.layers (got pp=%d, layers=%d)", p->pp, m->layers);
    if (m->moe.experts == 0 && p->ep > 1)
        return invalid(c, st, "parallel.ep", "model.moe.experts",
                       "expert parallelism needs an MoE model (model.moe.experts=0)");
    if (m->moe.experts > 0) {
        if (divisible_by(c, st, "model.moe.ffn", m->moe.ffn, "parallel.tp", p->tp) ||
            divides(c, st, "parallel.ep", p->ep, "model.moe.experts", m->moe.experts))
            return -1;
        if (dp % p->ep)
            return invalid(c, st, "parallel.ep", NULL,
                           "must divide the data-parallel size (got ep=%d, dp=%d = %d ranks / "
                           "(tp=%d * pp=%d))",
                           p->ep, dp, world_size, p->tp, p->pp);
    }
    if (p->zero != 0 && p->zero != 1)
        return invalid(c, st, "parallel.zero", NULL, "must be 0 or 1 (got %d)", p->zero);
    /* the ranks of an expert-parallel group hold different experts at the same places of their
     * parameter arenas, which ZeRO-1's shards of one arena cannot mix */
    if (p->zero == 1 && p->ep > 1)
        return invalid(c, st, "parallel.zero", "parallel.ep",
                       "ZeRO-1 with expert parallelism is not supported (set parallel.zero: 0 "
                       "or parallel.ep: 1)");
    if (p->bucket_elements < 0)
        return invalid(c, st, "parallel.bucket_elements", NULL,
                       "must be >= 0 (0: automatic; got %lld)", (long long)p->bucket_elements);
    if (!(p->timeout_s > 0))
        return invalid(c, st, "parallel.timeout_s", NULL, "must be > 0 seconds (got %g)",
                       p->timeout_s);
    if (p->comm == COMM_NCCL && c->device == DEVICE_CPU)
        return invalid(c, st, "parallel.comm", "device", "nccl needs device cuda or auto");
    long long per_step = (long long)c->train.micro_batch * dp;
    if (c->train.global_batch % per_step)
        return invalid(c, st, "train.global_batch", "train.micro_batch",
                       "must be divisible by train.micro_batch * dp (got global_batch=%d, "
                       "micro_batch=%d, dp=%d)",
                       c->train.global_batch, c->train.micro_batch, dp);
    return 0;
}

static int resolve_checkpoint(config *c, status *st) {
    checkpoint_config *k = &c->checkpoint;
    if (!k->dir[0] &&
        snprintf(k->dir, sizeof k->dir, "%s/checkpoints", c->run.out_dir) >= (int)sizeof k->dir)
        return invalid(c, st, "checkpoint.dir", "run.out_dir",
                       "<run.out_dir>/checkpoints is longer than %zu bytes", sizeof k->dir - 1);
    if (at_least(c, st, "checkpoint.every", k->every, 0) ||
        at_least(c, st, "checkpoint.keep", k->keep, 0))
        return -1;
    if (!k->resume[0])
        return invalid(c, st, "checkpoint.resume", NULL,
                       "must be auto, none or a checkpoint path");
    return 0;
}

int config_resolve(config *c, int world_size, status *st) {
    assert(world_size >= 1);
    apply_arch_defaults(c);
    if (resolve_model(c, st) || check_train(c, st) || resolve_run(c, st) ||
        resolve_optim(c, st) || check_data(c, st) || check_parallel(c, world_size, st) ||
        resolve_checkpoint(c, st))
        return -1;
    return 0;
}
