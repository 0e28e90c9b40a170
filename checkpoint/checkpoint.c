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

/* A rank's slice of a global tensor goes through a host copy of the slice: slices are small
 * next to the whole, and HDF5 selects them in the file. */
static int slice_io(checkpoint_file *f, const model *m, const char *name, const param_tensor *p,
                    void *base, int write, status *st) {
    float *host = malloc(sizeof *host * (p->count ? p->count : 1));
    if (!host) return status_fail(st, "%s: %s: out of host memory", checkpoint_file_path(f), name);
    backend_tensor t = parameter_in(m, base, p);
    int dim = p->shard_dim < 0 ? 0 : p->shard_dim;
    int64_t first = p->shard_dim < 0 ? 0 : p->shard_offset;
    int rc;
    if (write) {
        fill_from_backend(&t, 0, (int64_t)p->count, host);
        rc = checkpoint_file_write_slice(f, name, dim, first, p->shape[dim], host, st);
    } else {
        rc = checkpoint_file_read_slice(f, name, dim, first, p->shape[dim], host, st);
        if (rc == 0) take_into_backend(&t, 0, (int64_t)p->count, host);
    }
    free(host);
    return rc;
}

/* into_existing: the dataset was laid out already (a save by several ranks) */
static int write_parameter(checkpoint_file *f, const model *m, const char *name,
                           const param_tensor *p, void *base, int into_existing, status *st) {
    if (into_existing) return slice_io(f, m, name, p, base, 1, st);
    backend_tensor t = parameter_in(m, base, p);
    return checkpoint_file_write_tensor_from(f, name, p->ndim, p->shape, fill_from_backend, &t, st);
}

static int read_parameter(checkpoint_file *f, const model *m, const char *name,
                          const param_tensor *p, void *base, status *st) {
    if (p->shard_dim >= 0) return slice_io(f, m, name, p, base, 0, st);
    backend_tensor t = parameter_in(m, base, p);
    return checkpoint_file_read_tensor_into(f, name, p->ndim, p->shape, take_into_backend, &t, st);
}

/* The tensors this rank writes: all of them, or with ranks the slices it is the writer of. */
static int write_tensors(checkpoint_file *f, const checkpoint_state *s, status *st) {
    const model *m = s->model;
    const optimizer *opt = s->optimizer;
    char name[TENSOR_NAME];
    for (int i = 0; i < m->param_count; i++) {
        const param_tensor *p = &m->params[i];
        if (s->ranks && !s->ranks->writes[i]) continue;
        snprintf(name, sizeof name, "/model/%s", p->name);
        int laid_out = s->ranks != NULL;
        if (write_parameter(f, m, name, p, m->master, laid_out, st) != 0) return -1;
        for (int which = 0; opt && which < moment_count(opt); which++) {
            snprintf(name, sizeof name, "/optim/%s/%s", p->name, moment_names[which]);
            if (write_parameter(f, m, name, p, moment(opt, which), laid_out, st) != 0) return -1;
        }
    }
    return 0;
}

/* With ranks: every tensor of the whole model at its global shape, for the ranks to fill. */
static int create_tensors(checkpoint_file *f, const checkpoint_state *s, status *st) {
    param_tensor *params;
    int count;
    if (model_param_layout(s->ranks->config, &params, &count, st) != 0) return -1;
    char name[TENSOR_NAME];
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++) {
        snprintf(name, sizeof name, "/model/%s", params[i].name);
        rc = checkpoint_file_create_tensor(f, name, params[i].ndim, params[i].global_shape, st);
        for (int which = 0; s->optimizer && rc == 0 && which < moment_count(s->optimizer);
             which++) {
            snprintf(name, sizeof name, "/optim/%s/%s", params[i].name, moment_names[which]);
            rc = checkpoint_file_create_tensor(f, name, params[i].ndim, params[i].global_shape, st);
        }
    }
    free(params);
    return rc;
}

static int write_contents(checkpoint_file *f, const checkpoint_state *s, status *st) {
    if (checkpoint_file_set_int64(f, "step", s->step, st) != 0 ||
        checkpoint_file_set_int64(f, "tokens", s->tokens, st) != 0 ||
        checkpoint_file_set_string(f, "config", s->config_yaml ? s->config_yaml : "", st) != 0)
        return -1;
    const optimizer *opt = s->optimizer;
    if (opt && checkpoint_file_set_string(f, "optimizer", optimizer_name(opt->cfg.name), st) != 0)
        return -1;
    if (s->ranks ? create_tensors(f, s, st) != 0 : write_tensors(f, s, st) != 0) return -1;
    if (s->loader) {
        int64_t consumed = data_loader_cursor(s->loader);
        if (checkpoint_file_write_int64s(f, "/data/consumed_samples", &consumed, 1, st) != 0)
            return -1;
    }
    int64_t seed = (int64_t)s->seed;
    return checkpoint_file_write_int64s(f, "/rng/seed", &seed, 1, st);
}

static int write_whole_file(const char *path, const checkpoint_state *s, status *st) {
    checkpoint_file *f;
    if (checkpoint_file_create(path, &f, st) != 0) return -1;
    if (write_contents(f, s, st) != 0) {
        checkpoint_file_close(f, NULL);
        return -1;
    }
    return checkpoint_file_close(f, st);
}

static int write_own_slices(const char *path, const checkpoint_state *s, status *st) {
    checkpoint_file *f;
    if (checkpoint_file_open_write(path, &f, st) != 0) return -1;
    if (write_tensors(f, s, st) != 0) {
        checkpoint_file_close(f, NULL);
        return -1;
    }
    return checkpoint_file_close(f, st);
}

int checkpoint_write(const char *path, const checkpoint_state *s, status *st) {
    if (!s->ranks) return write_whole_file(path, s, st);
    /* rank 0 lays the file out; then one rank at a time adds its slices (serial HDF5: one
     * writer per file at a time); everyone learns whether anyone failed */
    comm *world = s->ranks->world;
    int failed = world->rank == 0 && write_whole_file(path, s, st) != 0;
    status ignored;
    for (int turn = 0; turn < world->size; turn++) {
        int64_t before = failed;
        if (comm_all_reduce(world, &before, &before, 1, COMM_INT64, COMM_MAX, &ignored) != 0)
            return status_fail(st, "%s: ranks could not agree on the save", path);
        if (before) break;
        if (world->rank == turn) failed = write_own_slices(path, s, st) != 0;
    }
    int64_t any = failed;
    if (comm_all_reduce(world, &any, &any, 1, COMM_INT64, COMM_MAX, &ignored) != 0) any = 1;
    if (any && !failed) status_fail(st, "%s: another rank could not write its part", path);
    return any ? -1 : 0;
}

/* ---- loading ---- */

static int known_tensor(const param_tensor *params, int count, const char *name) {
    for (int i = 0; i < count; i++)
        if (strcmp(params[i].name, name) == 0) return 1;
    return 0;
}

/* Every /model tensor is one of the (whole) model's and has its global shape, and none that this
 * rank holds is missing. */
static int check_model_tensors(checkpoint_file *f, const checkpoint_state *s, status *st) {
    const model *m = s->model;
    const char *path = checkpoint_file_path(f);
    param_tensor *whole = m->params;
    int whole_count = m->param_count;
    if (s->ranks && model_param_layout(s->ranks->config, &whole, &whole_count, st) != 0)
        return CHECKPOINT_INCOMPATIBLE;
    char **names = NULL;
    int count = 0, rc = 0;
    if (checkpoint_file_list(f, "/model", &names, &count, st) != 0) rc = CHECKPOINT_DAMAGED;
    for (int i = 0; i < count && rc == 0; i++)
        if (!known_tensor(whole, whole_count, names[i])) {
            status_fail(st, "%s: /model/%s: not a tensor of the configured model", path, names[i]);
            rc = CHECKPOINT_INCOMPATIBLE;
        }
    if (names) checkpoint_file_free_names(names, count);
    if (whole != m->params) free(whole);
    if (rc != 0) return rc;
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
            same = shape[d] == p->global_shape[d];
        if (!same) {
            char stored[128], wanted[128];
            checkpoint_file_describe_shape(ndim, shape, stored, sizeof stored);
            checkpoint_file_describe_shape(p->ndim, p->global_shape, wanted, sizeof wanted);
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
    int rc = check_model_tensors(f, s, st);
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
