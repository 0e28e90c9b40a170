#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "data/split.h"
#include "common/json.h"
#include "train/device.h"
#include "train/provenance.h"
#include "train/schedule.h"
#include "train/signals.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int make_directories(const char *path, status *st) {
    char buffer[CONFIG_STRING];
    snprintf(buffer, sizeof buffer, "%s", path);
    for (char *p = buffer + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buffer, 0755) != 0 && errno != EEXIST)
            return status_fail(st, "%s: cannot create directory: %s", buffer, strerror(errno));
        *p = '/';
    }
    if (mkdir(buffer, 0755) != 0 && errno != EEXIST)
        return status_fail(st, "%s: cannot create directory: %s", buffer, strerror(errno));
    return 0;
}

/* The resolved config as YAML text, for run.json and the checkpoints. */
static char *config_text(const config *c, status *st) {
    char *yaml = NULL;
    size_t yaml_size = 0;
    FILE *mem = open_memstream(&yaml, &yaml_size);
    if (!mem) {
        status_fail(st, "trainer: out of memory");
        return NULL;
    }
    int rc = config_write_yaml(c, mem, st);
    fclose(mem);
    if (rc != 0) {
        free(yaml);
        return NULL;
    }
    return yaml;
}

static void note_line(trainer_note note, void *context, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Ranks other than the reporter keep their notes to themselves. */
static void quiet_note(void *context, const char *message) {
    (void)context;
    (void)message;
}
static void note_line(trainer_note note, void *context, const char *format, ...) {
    char line[2 * CONFIG_STRING + 1024];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof line, format, args);
    va_end(args);
    note(context, line);
}

/* With resume none or a path, checkpoint.dir must not hold complete checkpoints of steps after
 * the one this run starts from: a later `resume: auto` would continue from those instead of from
 * this run's own (and retention would not count them). */
static int check_no_later_checkpoints(const trainer *t, status *st) {
    const checkpoint_config *k = &t->cfg.checkpoint;
    int64_t newest;
    if (checkpoint_newest_complete(k->dir, &newest, st) != 0) return -1;
    if (newest > t->step)
        return status_fail(st,
                           "checkpoint.resume %s: %s holds checkpoints up to step %lld, after step "
                           "%lld where this run starts; move them away or set checkpoint.dir",
                           k->resume, k->dir, (long long)newest, (long long)t->step);
    return 0;
}

static int load_checkpoint(trainer *t, const checkpoint_state *state, trainer_note note,
                           void *context, int *resumed, status *st);

/* Loads the checkpoint checkpoint.resume names, if any; t->step and t->tokens follow it.
 * *resumed: 1 with the training state, 2 with weights only, 0 from scratch. */
static int resume(trainer *t, trainer_note note, void *context, int *resumed, status *st) {
    const config *c = &t->cfg;
    const checkpoint_config *k = &c->checkpoint;
    *resumed = 0;
    if (strcmp(k->resume, "none") == 0) return 0;
    /* with ZeRO-1 the moments load whole into a temporary optimizer, then each rank keeps its
     * shard */
    optimizer whole_moments;
    optimizer *moments = &t->optimizer;
    if (t->use_zero) {
        if (optimizer_create(&whole_moments, t->ops, &c->optim, t->model.total_params,
                             t->model.decayed_params, st) != 0)
            return -1;
        moments = &whole_moments;
    }
    checkpoint_state state = {&t->model, moments,     t->loader, 0, 0, c->run.seed, NULL,
                              t->world_size > 1 ? &t->ranks : NULL};
    int rc = load_checkpoint(t, &state, note, context, resumed, st);
    if (t->use_zero) {
        if (rc == 0 && *resumed == 1) zero_load_moments(&t->zero, &whole_moments);
        optimizer_destroy(&whole_moments);
    }
    return rc;
}

static int load_checkpoint(trainer *t, const checkpoint_state *state, trainer_note note,
                           void *context, int *resumed, status *st) {
    const config *c = &t->cfg;
    const checkpoint_config *k = &c->checkpoint;
    checkpoint_contents contents;
    char path[CONFIG_STRING + 64];
    int found = 1;
    if (strcmp(k->resume, "auto") == 0) {
        if (checkpoint_load_latest(k->dir, state, &contents, path, sizeof path, &found, note,
                                   context, st) != 0)
            return status_prefix(st, "checkpoint.resume auto");
    } else {
        snprintf(path, sizeof path, "%s", k->resume);
        if (checkpoint_load(path, state, &contents, st) != 0)
            return status_prefix(st, "checkpoint.resume");
    }
    if (!found) return 0;
    if (!contents.has_optimizer) {
        note_line(note, context,
                  "%s holds weights only (no /optim): training starts at step 0 from these "
                  "weights with a fresh optimizer",
                  path);
        *resumed = 2;
        return 0;
    }
    t->step = t->start_step = contents.step;
    t->tokens = contents.tokens;
    *resumed = 1;
    note_line(note, context, "resuming from %s at step %lld (%lld tokens)", path,
              (long long)contents.step, (long long)contents.tokens);
    if (contents.seed != c->run.seed)
        note_line(note, context,
                  "run.seed is %llu but the checkpoint was trained with %llu: the data order "
                  "from here on is not the one the checkpoint's run would have seen",
                  (unsigned long long)c->run.seed, (unsigned long long)contents.seed);
    if (!contents.has_data)
        note_line(note, context, "%s has no data cursor: the data starts from the beginning", path);
    return 0;
}

/* Keeps the metrics lines of steps up to `step` (a run that went past its last checkpoint left
 * lines that the resumed run writes again), atomically. */
static int keep_metrics_until(const char *path, int64_t step, status *st) {
    FILE *in = fopen(path, "r");
    if (!in)
        return errno == ENOENT ? 0 : status_fail(st, "%s: cannot read: %s", path, strerror(errno));
    char temporary[CONFIG_STRING + 128];
    snprintf(temporary, sizeof temporary, "%s.tmp", path);
    FILE *out = fopen(temporary, "w");
    if (!out) {
        fclose(in);
        return status_fail(st, "%s: cannot write: %s", temporary, strerror(errno));
    }
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    while ((length = getline(&line, &capacity, in)) > 0) {
        long long line_step;
        /* a line cut short by a crash has no newline: dropped */
        if (line[length - 1] == '\n' && sscanf(line, "{\"step\": %lld", &line_step) == 1 &&
            line_step <= step)
            fputs(line, out);
    }
    free(line);
    fclose(in);
    if (fclose(out) != 0 || rename(temporary, path) != 0) {
        unlink(temporary);
        return status_fail(st, "%s: cannot rewrite: %s", path, strerror(errno));
    }
    return 0;
}

/* Everyone agrees: any rank's failure (or value) is the world's. */
static int world_max(trainer *t, int64_t *value, status *st) {
    if (t->world_size == 1) return 0;
    return comm_all_reduce(&t->topology.comms[AXIS_WORLD], value, value, 1, COMM_INT64, COMM_MAX,
                           st);
}

/* The model shard of this rank's place in the grid. */
static int create_model(trainer *t, status *st) {
    const config *c = &t->cfg;
    const parallel_grid *g = &t->topology.grid;
    model_shard shard;
    memset(&shard, 0, sizeof shard);
    shard.stage = g->rank[AXIS_PP];
    shard.stages = g->size[AXIS_PP];
    model_stage_layers(c->model.layers, shard.stage, shard.stages, &shard.first_layer,
                       &shard.layers);
    shard.slots = pipeline_slots(shard.stage, shard.stages, t->micro_steps);
    if (t->use_zero) shard.param_multiple = (size_t)t->dp_size * ZERO_ALIGN;
    if (shard_comm_bind(&t->shard_comm, &shard, &t->topology, t->ops, st) != 0) return -1;
    return model_create_shard(&t->model, t->ops, c, c->data.eod_id, &shard, st);
}

/* Which replica writes each tensor: tensor-parallel rank 0 for replicated tensors, data-parallel
 * rank 0 (expert-data-parallel rank 0 for experts), never the last stage's tied copy. */
static int choose_writers(trainer *t, status *st) {
    const parallel_grid *g = &t->topology.grid;
    const model *m = &t->model;
    t->writes = calloc(m->param_count ? m->param_count : 1, 1);
    if (!t->writes) return status_fail(st, "trainer: out of host memory");
    for (int i = 0; i < m->param_count; i++) {
        const param_tensor *p = &m->params[i];
        int replica = p->expert ? g->rank[AXIS_EXPERT_DP] : g->rank[AXIS_DP];
        t->writes[i] = !p->stage_copy && (p->shard_dim >= 0 || g->rank[AXIS_TP] == 0) &&
                       replica == 0;
    }
    t->ranks = (checkpoint_ranks){&t->topology.comms[AXIS_WORLD], t->writes, &t->cfg};
    return 0;
}

static int open_outputs(trainer *t, const config *written, const char *command_line,
                        const char *tokenizer_checksum, const char *device_description, int resumed,
                        status *st) {
    const config *c = &t->cfg;
    char path[CONFIG_STRING + 64];
    snprintf(path, sizeof path, "%s/config.yaml", c->run.out_dir);
    if (config_write_yaml_file(written, path, st) != 0) return -1;
    provenance_info info = {.command_line = command_line,
                            .tokenizer_checksum = tokenizer_checksum,
                            .data_tokens = data_loader_total_tokens(t->loader),
                            .world_size = t->world_size,
                            .comm = t->topology.device_kind,
                            .backend = t->ops->name,
                            .device_description = device_description,
                            .parameters = t->model.whole_params,
                            .flops_per_token = model_flops_per_token(&t->model),
                            .loader = t->loader};
    snprintf(path, sizeof path, "%s/run.json", c->run.out_dir);
    if (provenance_write(path, written, t->config_yaml, &info, st) != 0) return -1;
    snprintf(path, sizeof path, "%s/metrics.jsonl", c->run.out_dir);
    if (resumed == 1 && keep_metrics_until(path, t->step, st) != 0) return -1;
    t->metrics = fopen(path, resumed == 1 ? "a" : "w");
    if (!t->metrics) return status_fail(st, "%s: cannot write: %s", path, strerror(errno));
    return 0;
}

static int open_rank(trainer *t, const config *c, const char *device_description,
                     const char *command_line, const char *tokenizer_checksum, trainer_note note,
                     void *note_context, status *st) {
    if (topology_create(&t->topology, &c->parallel, st) != 0) return -1;
    t->has_topology = 1;
    comm_kind kind;
    comm_device_memory memory = {t->ops->copy_to_host, t->ops->copy_to_device};
    int world = t->topology.grid.size[AXIS_WORLD], devices;
    if (world > 1 &&
        (device_count_distinct(&t->topology.comms[AXIS_WORLD], t->ops, device_host_hash(), &devices,
                               st) != 0 ||
         device_comm_choose(c->parallel.comm, t->ops, world, devices, &kind, st) != 0 ||
         topology_attach_device(&t->topology, kind, t->ops->host_memory ? NULL : &memory, st) != 0))
        return -1;
    const parallel_grid *g = &t->topology.grid;
    t->world_size = g->size[AXIS_WORLD];
    t->world_rank = g->rank[AXIS_WORLD];
    t->dp_size = g->size[AXIS_DP];
    t->reporter = t->world_rank == 0;
    t->micro_steps = c->train.global_batch / (c->train.micro_batch * t->dp_size);
    t->use_zero = c->parallel.zero == 1 && t->dp_size > 1;
    if (t->reporter && (make_directories(c->run.out_dir, st) != 0 ||
                        make_directories(c->checkpoint.dir, st) != 0))
        return -1;
    if (create_model(t, st) != 0) return -1;
    if (t->use_zero ? zero_create(&t->zero, t->topology.device[AXIS_DP], t->ops, &c->optim,
                                  t->model.total_params, t->model.decayed_params, ZERO_ALIGN, st)
                    : optimizer_create(&t->optimizer, t->ops, &c->optim, t->model.total_params,
                                       t->model.decayed_params, st))
        return -1;
    if (choose_writers(t, st) != 0) return -1;
    if (step_schedule_init(&t->schedule, &t->model, t->topology.device[AXIS_PP], t->micro_steps,
                           st) != 0 ||
        gradient_sync_init(&t->sync, &t->model, &t->topology, t->use_zero ? &t->zero.layout : NULL,
                           c->parallel.bucket_elements, st) != 0)
        return -1;
    if (data_loader_open(c, g->rank[AXIS_DP], t->dp_size, &t->loader, st) != 0) return -1;
    if (c->data.valid[0] && window_reader_open(c->data.valid, c->model.seq_len, c->data.eod_id,
                                               c->data.mask_eod_input, &t->valid, st) != 0)
        return -1;
    double shares[3];
    if (!c->data.valid[0] && data_split_parse(c->data.split, shares, st) == 0 &&
        shares[DATA_SPLIT_VALID] > 0) {
        data_loader_options options = {DATA_LOADER_MAX_OPEN_SHARDS, 0};
        if (data_loader_open_split(c, DATA_SPLIT_VALID, c->data.eval_samples, 0, 1, &options,
                                   &t->valid_split, st) != 0)
            return status_prefix(st, "data.split validation share");
    }
    t->has_validation = t->valid || t->valid_split;
    int rows = c->train.global_batch / t->dp_size;
    t->batch = batch_alloc(rows, c->model.seq_len);
    t->eval_batch = batch_alloc(c->train.micro_batch, c->model.seq_len);
    t->weights = calloc((size_t)rows * c->model.seq_len, sizeof *t->weights);
    if (!t->batch || !t->eval_batch || !t->weights)
        return status_fail(st, "trainer: out of memory");
    /* The config as written out (config.yaml, run.json, checkpoints) leaves checkpoint.dir
     * empty when it is the default <out_dir>/checkpoints, so that a copy of it used with
     * another run.out_dir does not resume from this run's checkpoints. */
    config written = *c;
    char default_dir[CONFIG_STRING + 16];
    snprintf(default_dir, sizeof default_dir, "%s/checkpoints", c->run.out_dir);
    if (strcmp(written.checkpoint.dir, default_dir) == 0) written.checkpoint.dir[0] = '\0';
    if (!(t->config_yaml = config_text(&written, st))) return -1;
    int resumed;
    if (resume(t, t->reporter ? note : quiet_note, note_context, &resumed, st) != 0) return -1;
    if (strcmp(c->checkpoint.resume, "auto") != 0 && check_no_later_checkpoints(t, st) != 0)
        return -1;
    if (!resumed) model_init_weights(&t->model, c->run.seed);
    if (!t->reporter) return 0;
    return open_outputs(t, &written, command_line, tokenizer_checksum, device_description,
                        resumed, st);
}

int trainer_open(trainer *t, const config *c, const ops *o, const char *device_description,
                 const char *command_line, const char *tokenizer_checksum, trainer_note note,
                 void *note_context, status *st) {
    memset(t, 0, sizeof *t);
    t->cfg = *c;
    t->ops = o;
    t->world_size = 1;
    int rc = open_rank(t, c, device_description, command_line, tokenizer_checksum, note,
                       note_context, st);
    if (!t->has_topology) return rc;
    /* every rank starts, or none does: a rank alone in the collectives would wait forever */
    int64_t failed = rc != 0, step = rc == 0 ? t->step : -1, low_step = -step;
    status agreement;
    if (world_max(t, &failed, &agreement) != 0 || world_max(t, &step, &agreement) != 0 ||
        world_max(t, &low_step, &agreement) != 0)
        return rc != 0 ? rc : status_fail(st, "%s", agreement.message);
    if (failed && rc == 0) return status_fail(st, "another rank could not start (see its message)");
    if (rc == 0 && step != -low_step)
        return status_fail(st, "ranks resumed from different steps (%lld and %lld): is "
                           "checkpoint.dir the same shared folder for every rank?",
                           (long long)-low_step, (long long)step);
    return rc;
}

int trainer_save_checkpoint(trainer *t, char *path, size_t path_size, status *st) {
    const config *c = &t->cfg;
    optimizer whole_moments;
    optimizer *moments = &t->optimizer;
    if (t->use_zero) {
        if (optimizer_create(&whole_moments, t->ops, &c->optim, t->model.total_params,
                             t->model.decayed_params, st) != 0 ||
            zero_gather_moments(&t->zero, &whole_moments, st) != 0)
            return -1;
        moments = &whole_moments;
    }
    checkpoint_state state = {&t->model,     moments,     t->loader,
                              t->step,       t->tokens,   c->run.seed,
                              t->config_yaml, t->world_size > 1 ? &t->ranks : NULL};
    int rc = checkpoint_save(c->checkpoint.dir, &state, c->checkpoint.keep, path, path_size, st);
    if (t->use_zero) optimizer_destroy(&whole_moments);
    return rc;
}

int trainer_stop_requested(trainer *t) {
    int64_t signal = signals_pending();
    status st;
    /* a signal that reached one rank stops all of them at the same step */
    if (world_max(t, &signal, &st) != 0) return signals_pending();
    return (int)signal;
}

void trainer_close(trainer *t) {
    if (t->metrics) fclose(t->metrics);
    free(t->config_yaml);
    batch_free(t->batch);
    batch_free(t->eval_batch);
    free(t->weights);
    free(t->writes);
    if (t->valid) window_reader_close(t->valid);
    if (t->valid_split) data_loader_close(t->valid_split);
    if (t->loader) data_loader_close(t->loader);
    gradient_sync_release(&t->sync);
    step_schedule_release(&t->schedule);
    if (t->use_zero) zero_destroy(&t->zero);
    else optimizer_destroy(&t->optimizer);
    model_destroy(&t->model);
    shard_comm_release(&t->shard_comm);
    if (t->has_topology) topology_destroy(&t->topology);
    memset(t, 0, sizeof *t);
}

/* Bytes this rank's communicators have moved so far (the world's agreements included). */
static double comm_bytes(const trainer *t) {
    double bytes = 0;
    for (int axis = 0; t->has_topology && axis < AXIS_COUNT; axis++) {
        const parallel_topology *topology = &t->topology;
        bytes += comm_bytes_total(&topology->comms[axis]);
        if (topology->device[axis] != &topology->comms[axis])
            bytes += comm_bytes_total(topology->device[axis]);
    }
    return bytes;
}

/* Sums over the world of values only some ranks hold (the others add zeros). */
static int world_sum(trainer *t, double *values, int count, status *st) {
    if (t->world_size == 1) return 0;
    return comm_all_reduce(&t->topology.comms[AXIS_WORLD], values, values, (size_t)count,
                           COMM_FLOAT64, COMM_SUM, st);
}

int trainer_step(trainer *t, trainer_step_result *result, status *st) {
    const config *c = &t->cfg;
    model *m = &t->model;
    const ops *o = t->ops;
    const parallel_grid *g = &t->topology.grid;
    int T = c->model.seq_len;
    double start = now_seconds(), bytes_before = comm_bytes(t);
    if (data_loader_next_global_batch(t->loader, t->batch, st) != 0) return -1;

    /* the loss is the mean over every counted token of the global batch, so each token's
     * gradient weight is 1 / (counted tokens of the global batch, over every dp rank) */
    size_t n = (size_t)t->batch->sequences * T;
    int64_t counted = 0;
    for (size_t i = 0; i < n; i++) counted += t->batch->loss_mask[i];
    comm *dp = &t->topology.comms[AXIS_DP];
    if (dp->size > 1 && comm_all_reduce(dp, &counted, &counted, 1, COMM_INT64, COMM_SUM, st) != 0)
        return -1;
    double inv = counted > 0 ? 1.0 / (double)counted : 0.0;
    for (size_t i = 0; i < n; i++) t->weights[i] = (float)(t->batch->loss_mask[i] * inv);

    model_zero_grads(m);
    step_losses losses;
    /* the router losses' gradients: one over the micro-batches of the whole global batch */
    double moe_scale = 1.0 / ((double)t->micro_steps * t->dp_size);
    if (step_schedule_run(&t->schedule, t->batch->tokens, t->weights, t->batch->loss_mask,
                          moe_scale, &losses, st) != 0 ||
        gradient_sync_reduce(&t->sync, st) != 0)
        return -1;
    double grad_norm;
    if (gradient_sync_norm(&t->sync, &grad_norm, st) != 0) return -1;
    int64_t step = t->step + 1;
    double lr = schedule_lr(&c->optim, c->run.steps, step);
    if (t->use_zero) {
        zero_step(&t->zero, m->master, m->grads, lr, grad_norm, c->train.grad_clip);
        if (zero_all_gather(&t->zero, m->master, st) != 0) return -1;
    } else {
        optimizer_step(&t->optimizer, m->master, m->grads, lr, grad_norm, c->train.grad_clip);
    }
    model_sync_compute_weights(m);
    o->synchronize();

    /* token losses live on the last stage, router losses on every stage; tensor-parallel ranks
     * hold copies */
    int first_tp = g->rank[AXIS_TP] == 0;
    double sums[3] = {first_tp && m->last_stage ? losses.loss_sum : 0,
                      first_tp ? losses.aux_loss : 0, first_tp ? losses.z_loss : 0};
    if (world_sum(t, sums, 3, st) != 0) return -1;

    t->tokens += (int64_t)c->train.global_batch * T;
    t->step = step;
    result->step = step;
    result->loss = counted > 0 ? sums[0] / (double)counted : 0.0;
    result->aux_loss = sums[1];
    result->z_loss = sums[2];
    result->lr = lr;
    result->grad_norm = grad_norm;
    result->loss_tokens = counted;
    result->tokens = t->tokens;
    result->seconds = now_seconds() - start;
    result->comm_bytes = comm_bytes(t) - bytes_before;
    /* the rank that holds the most (pipeline stage 0 keeps the most activations) */
    int64_t peak = (int64_t)o->peak_memory();
    if (world_max(t, &peak, st) != 0) return -1;
    result->peak_memory = peak;
    return 0;
}

double trainer_mfu(const trainer *t, double tok_per_s) {
    double peak = t->ops->peak_flops() * t->world_size;
    return peak > 0 ? tok_per_s * model_flops_per_token(&t->model) / peak : NAN;
}

/* The validation loop over windows of a file (r) or samples of a split (split); with a schedule
 * the forward passes go through the pipeline stages and the sums come from the last stage. */
static int evaluate_windows(model *m, step_schedule *schedule, const window_reader *r,
                            data_loader *split, batch *b, int64_t samples, double *sum,
                            int64_t *counted, status *st) {
    int T = b->seq_len, mb = b->sequences, vocab = m->cfg.vocab;
    int64_t windows = r ? window_reader_count(r) : data_loader_samples(split);
    if (windows > samples) windows = samples;
    *sum = 0;
    *counted = 0;
    for (int64_t first = 0; first < windows; first += mb) {
        /* a short last batch is padded with masked copies of the first window */
        for (int row = 0; row < mb; row++) {
            int64_t index = first + row < windows ? first + row : 0;
            if (r) window_reader_get(r, index, b, row);
            else if (data_loader_read_sample(split, index, b, row, st) != 0) return -1;
        }
        for (int row = 0; row < mb; row++)
            if (first + row >= windows) memset(b->loss_mask + (size_t)row * T, 0, T);
        for (int i = 0; i < mb * (T + 1); i++)
            if (b->tokens[i] < 0 || b->tokens[i] >= vocab)
                return status_fail(st, "window %lld: token %d outside the model's vocabulary of %d",
                                   (long long)(first + i / (T + 1)), b->tokens[i], vocab);
        if (schedule) {
            if (step_schedule_forward(schedule, b->tokens, st) != 0) return -1;
        } else {
            model_forward(m, b->tokens, NULL, 0);
        }
        if (!m->last_stage) continue;
        for (int i = 0; i < mb * T; i++)
            if (b->loss_mask[i]) {
                *sum += m->host_losses[i];
                (*counted)++;
            }
    }
    return 0;
}

int trainer_evaluate_windows(model *m, const window_reader *r, batch *b, int64_t samples,
                             double *loss, int64_t *tokens, status *st) {
    double sum;
    if (evaluate_windows(m, NULL, r, NULL, b, samples, &sum, tokens, st) != 0) return -1;
    *loss = *tokens ? sum / (double)*tokens : NAN;
    return 0;
}

int trainer_evaluate(trainer *t, double *loss, int64_t *tokens, status *st) {
    double sum;
    int64_t counted;
    if (evaluate_windows(&t->model, t->world_size > 1 ? &t->schedule : NULL, t->valid,
                         t->valid_split, t->eval_batch, t->cfg.data.eval_samples, &sum, &counted,
                         st) != 0)
        return status_prefix(st, "%s", t->valid ? t->cfg.data.valid : "data.split validation");
    /* every data-parallel replica evaluates the same windows: count one */
    const parallel_grid *g = &t->topology.grid;
    int counts = g->rank[AXIS_TP] == 0 && g->rank[AXIS_DP] == 0 && t->model.last_stage;
    double sums[2] = {counts ? sum : 0, counts ? (double)counted : 0};
    if (world_sum(t, sums, 2, st) != 0) return -1;
    *tokens = (int64_t)sums[1];
    *loss = *tokens ? sums[0] / sums[1] : NAN;
    return 0;
}

void trainer_write_metrics(trainer *t, const trainer_step_result *r, double elapsed,
                           double val_loss) {
    FILE *f = t->metrics;
    int T = t->cfg.model.seq_len;
    double tok_per_s = r->seconds > 0 ? (double)t->cfg.train.global_batch * T / r->seconds : 0;
    fprintf(f, "{\"step\": %lld, \"loss\": ", (long long)r->step);
    json_write_number(f, r->loss);
    fputs(", \"lr\": ", f);
    json_write_number(f, r->lr);
    fputs(", \"grad_norm\": ", f);
    json_write_number(f, r->grad_norm);
    fprintf(f, ", \"tokens\": %lld, \"loss_tokens\": %lld, \"tok_per_s\": ", (long long)r->tokens,
            (long long)r->loss_tokens);
    json_write_number(f, tok_per_s);
    fputs(", \"mfu\": ", f);
    double mfu = trainer_mfu(t, tok_per_s);
    if (isnan(mfu)) fputs("null", f);
    else json_write_number(f, mfu);
    fprintf(f, ", \"peak_memory_bytes\": %lld", (long long)r->peak_memory);
    fputs(", \"time_s\": ", f);
    json_write_number(f, elapsed);
    if (t->world_size > 1) {
        fputs(", \"comm_bytes\": ", f);
        json_write_number(f, r->comm_bytes);
        if (t->sync.dp_ready)
            fprintf(f, ", \"dp_buckets\": %d, \"dp_buckets_early\": %d", t->sync.buckets,
                    t->sync.early_buckets);
    }
    if (t->model.is_moe) {
        fputs(", \"aux_loss\": ", f);
        json_write_number(f, r->aux_loss);
        fputs(", \"z_loss\": ", f);
        json_write_number(f, r->z_loss);
    }
    if (!isnan(val_loss)) {
        fputs(", \"val_loss\": ", f);
        json_write_number(f, val_loss);
    }
    fputs("}\n", f);
    fflush(f);
}
