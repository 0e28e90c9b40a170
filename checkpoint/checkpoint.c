/* Training state <-> one checkpoint file (layout in checkpoint.h and docs/checkpoints.md).
 * Tensors travel chunk by chunk between the backend's buffers (master type) and the file's
 * chunk-sized host frame, converted on the way: no tensor-sized host copy. */
#include "checkpoint/checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/checkpoint_file.h"

#define TENSOR_NAME 160

static const char *optimizer_name(optimizer_kind kind) {
    return kind == OPTIM_ADEMAMIX ? "ademamix" : "adamw";
}

/* The optimizer moments saved per parameter, and where each lives. */
static int moment_count(const optimizer *opt) { return opt->m2 ? 3 : 2; }
static const char *const moment_names[3] = {"m", "v", "m2"};
static void *moment(const optimizer *opt, int which) {
    return which == 0 ? opt->m : which == 1 ? opt->v : opt->m2;
}

/* One tensor of the backend (`base` + the parameter's offset) seen as fp32 pieces. */
typedef struct backend_tensor {
    const ops *ops;
    char *base;
} backend_tensor;

static void fill_from_backend(void *context, int64_t first, int64_t count, float *out) {
    const backend_tensor *t = context;
    t->ops->master_to_float(out, t->base + (size_t)first * t->ops->master_bytes, (size_t)count);
}

static void take_into_backend(void *context, int64_t first, int64_t count, const float *values) {
    const backend_tensor *t = context;
    t->ops->float_to_master(t->base + (size_t)first * t->ops->master_bytes, values, (size_t)count);
}

static backend_tensor parameter_in(const model *m, void *base, const param_tensor *p) {
    return (backend_tensor){m->ops, (char *)base + p->offset * m->ops->master_bytes};
}

static int write_parameter(checkpoint_file *f, const model *m, const char *name,
                           const param_tensor *p, void *base, status *st) {
    backend_tensor t = parameter_in(m, base, p);
    return checkpoint_file_write_tensor_from(f, name, p->ndim, p->shape, fill_from_backend, &t, st);
}

static int read_parameter(checkpoint_file *f, const model *m, const char *name,
                          const param_tensor *p, void *base, status *st) {
    backend_tensor t = parameter_in(m, base, p);
    return checkpoint_file_read_tensor_into(f, name, p->ndim, p->shape, take_into_backend, &t, st);
}

static int write_contents(checkpoint_file *f, const checkpoint_state *s, status *st) {
    const model *m = s->model;
    char name[TENSOR_NAME];
    if (checkpoint_file_set_int64(f, "step", s->step, st) != 0 ||
        checkpoint_file_set_int64(f, "tokens", s->tokens, st) != 0 ||
        checkpoint_file_set_string(f, "config", s->config_yaml ? s->config_yaml : "", st) != 0)
        return -1;
    for (int i = 0; i < m->param_count; i++) {
        const param_tensor *p = &m->params[i];
        snprintf(name, sizeof name, "/model/%s", p->name);
        if (write_parameter(f, m, name, p, m->master, st) != 0) return -1;
    }
    const optimizer *opt = s->optimizer;
    if (opt) {
        if (checkpoint_file_set_string(f, "optimizer", optimizer_name(opt->cfg.name), st) != 0)
            return -1;
        for (int i = 0; i < m->param_count; i++) {
            const param_tensor *p = &m->params[i];
            for (int which = 0; which < moment_count(opt); which++) {
                snprintf(name, sizeof name, "/optim/%s/%s", p->name, moment_names[which]);
                if (write_parameter(f, m, name, p, moment(opt, which), st) != 0) return -1;
            }
        }
    }
    if (s->loader) {
        int64_t consumed = data_loader_cursor(s->loader);
        if (checkpoint_file_write_int64s(f, "/data/consumed_samples", &consumed, 1, st) != 0)
            return -1;
    }
    int64_t seed = (int64_t)s->seed;
    return checkpoint_file_write_int64s(f, "/rng/seed", &seed, 1, st);
}

int checkpoint_write(const char *path, const checkpoint_state *s, status *st) {
    checkpoint_file *f;
    if (checkpoint_file_create(path, &f, st) != 0) return -1;
    if (write_contents(f, s, st) != 0) {
        checkpoint_file_close(f, NULL);
        return -1;
    }
    return checkpoint_file_close(f, st);
}

/* ---- loading ---- */

/* Every /model tensor is one of the model's and has its shape, and none is missing. */
static int check_model_tensors(checkpoint_file *f, const model *m, status *st) {
    const char *path = checkpoint_file_path(f);
    char **names;
    int count;
    if (checkpoint_file_list(f, "/model", &names, &count, st) != 0) return CHECKPOINT_DAMAGED;
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++)
        if (!model_find_param(m, names[i]))
            rc = status_fail(st, "%s: /model/%s: not a tensor of the configured model", path,
                             names[i]);
    checkpoint_file_free_names(names, count);
    if (rc != 0) return CHECKPOINT_INCOMPATIBLE;
    char name[TENSOR_NAME];
    for (int i = 0; i < m->param_count; i++) {
        const param_tensor *p = &m->params[i];
        snprintf(name, sizeof name, "/model/%s", p->name);
        if (!checkpoint_file_has(f, name)) {
            status_fail(st, "%s: %s: missing, but the configured model has it", path, name);
            return CHECKPOINT_INCOMPATIBLE;
        }
        int ndim;
        int64_t shape[CHECKPOINT_MAX_DIMS];
        if (checkpoint_file_tensor_shape(f, name, &ndim, shape, st) != 0) return CHECKPOINT_DAMAGED;
        int same = ndim == p->ndim;
        for (int d = 0; same && d < ndim; d++)
            same = shape[d] == p->shape[d];
        if (!same) {
            char stored[128], wanted[128];
            checkpoint_file_describe_shape(ndim, shape, stored, sizeof stored);
            checkpoint_file_describe_shape(p->ndim, p->shape, wanted, sizeof wanted);
            status_fail(st, "%s: %s: shape [%s] in the checkpoint, [%s] in the configured model",
                        path, name, stored, wanted);
            return CHECKPOINT_INCOMPATIBLE;
        }
    }
    return 0;
}

static int read_optimizer(checkpoint_file *f, const checkpoint_state *s, status *st) {
    const model *m = s->model;
    optimizer *opt = s->optimizer;
    char *saved = NULL;
    if (checkpoint_file_get_string(f, "optimizer", &saved, st) != 0) return CHECKPOINT_DAMAGED;
    int same = strcmp(saved, optimizer_name(opt->cfg.name)) == 0;
    if (!same)
        status_fail(st, "%s: optimizer: the checkpoint was trained with %s, optim.name is %s",
                    checkpoint_file_path(f), saved, optimizer_name(opt->cfg.name));
    free(saved);
    if (!same) return CHECKPOINT_INCOMPATIBLE;
    char name[TENSOR_NAME];
    for (int i = 0; i < m->param_count; i++) {
        const param_tensor *p = &m->params[i];
        for (int which = 0; which < moment_count(opt); which++) {
            snprintf(name, sizeof name, "/optim/%s/%s", p->name, moment_names[which]);
            if (read_parameter(f, m, name, p, moment(opt, which), st) != 0)
                return CHECKPOINT_DAMAGED;
        }
    }
    return 0;
}

static int read_contents(checkpoint_file *f, const checkpoint_state *s, checkpoint_contents *c,
                         status *st) {
    const model *m = s->model;
    memset(c, 0, sizeof *c);
    c->seed = s->seed;
    if (checkpoint_file_get_int64(f, "step", &c->step, st) != 0 ||
        checkpoint_file_get_int64(f, "tokens", &c->tokens, st) != 0)
        return CHECKPOINT_DAMAGED;
    int rc = check_model_tensors(f, m, st);
    if (rc != 0) return rc;
    char name[TENSOR_NAME];
    for (int i = 0; i < m->param_count; i++) {
        const param_tensor *p = &m->params[i];
        snprintf(name, sizeof name, "/model/%s", p->name);
        if (read_parameter(f, m, name, p, m->master, st) != 0) return CHECKPOINT_DAMAGED;
    }
    if (checkpoint_file_has(f, "/rng/seed")) {
        int64_t seed;
        if (checkpoint_file_read_int64s(f, "/rng/seed", &seed, 1, st) != 0)
            return CHECKPOINT_DAMAGED;
        c->seed = (uint64_t)seed;
    }
    c->has_optimizer = checkpoint_file_has(f, "/optim");
    if (!c->has_optimizer) {
        /* weights only (cairn import): training starts over from these weights */
        c->step = c->tokens = 0;
        return 0;
    }
    if (s->optimizer) {
        if ((rc = read_optimizer(f, s, st)) != 0) return rc;
        s->optimizer->step = c->step;
    }
    c->has_data = checkpoint_file_has(f, "/data/consumed_samples");
    if (c->has_data && s->loader) {
        int64_t consumed;
        if (checkpoint_file_read_int64s(f, "/data/consumed_samples", &consumed, 1, st) != 0)
            return CHECKPOINT_DAMAGED;
        if (data_loader_set_cursor(s->loader, consumed, st) != 0) {
            status_prefix(st, "%s: /data/consumed_samples", checkpoint_file_path(f));
            return CHECKPOINT_INCOMPATIBLE;
        }
    }
    return 0;
}

int checkpoint_load(const char *path, const checkpoint_state *s, checkpoint_contents *contents,
                    status *st) {
    checkpoint_file *f;
    if (checkpoint_file_open(path, &f, st) != 0) return CHECKPOINT_DAMAGED;
    int rc = read_contents(f, s, contents, st);
    checkpoint_file_close(f, NULL);
    if (rc == 0) model_sync_compute_weights(s->model);
    return rc;
}

int checkpoint_read_config(const char *path, config *c, status *st) {
    checkpoint_file *f;
    if (checkpoint_file_open(path, &f, st) != 0) return -1;
    char *text = NULL;
    int rc = checkpoint_file_get_string(f, "config", &text, st);
    checkpoint_file_close(f, NULL);
    if (rc != 0) return -1;
    char name[CONFIG_STRING];
    snprintf(name, sizeof name, "%s: config attribute", path);
    config_defaults(c);
    rc = config_load_string(c, text, name, st);
    free(text);
    if (rc != 0) return -1;
    c->parallel.tp = c->parallel.pp = c->parallel.ep = 1;
    c->parallel.zero = 0;
    c->parallel.comm = COMM_AUTO;
    return config_resolve(c, 1, st);
}
