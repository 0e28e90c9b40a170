#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/json.h"
#include "train/provenance.h"
#include "train/schedule.h"

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

int trainer_open(trainer *t, const config *c, const ops *o, const char *device_description,
                 const char *command_line, const char *tokenizer_checksum, status *st) {
    memset(t, 0, sizeof *t);
    t->cfg = *c;
    t->ops = o;
    t->world_size = 1;
    t->micro_steps = c->train.global_batch / c->train.micro_batch;
    if (make_directories(c->run.out_dir, st) != 0) return -1;
    if (model_create(&t->model, o, c, c->data.eod_id, st) != 0) return -1;
    model_init_weights(&t->model, c->run.seed);
    if (optimizer_create(&t->optimizer, o, &c->optim, t->model.total_params,
                         t->model.decayed_params, st) != 0)
        return -1;
    if (data_loader_open(c, 0, 1, &t->loader, st) != 0) return -1;
    if (c->data.valid[0] && window_reader_open(c->data.valid, c->model.seq_len, c->data.eod_id,
                                               c->data.mask_eod_input, &t->valid, st) != 0)
        return -1;
    t->batch = batch_alloc(c->train.global_batch, c->model.seq_len);
    t->eval_batch = batch_alloc(c->train.micro_batch, c->model.seq_len);
    t->weights = calloc((size_t)c->train.global_batch * c->model.seq_len, sizeof *t->weights);
    if (!t->batch || !t->eval_batch || !t->weights) return status_fail(st, "trainer: out of memory");

    /* outputs: resolved config, provenance, metrics */
    char path[CONFIG_STRING + 64];
    snprintf(path, sizeof path, "%s/config.yaml", c->run.out_dir);
    if (config_write_yaml_file(c, path, st) != 0) return -1;
    char *yaml = NULL;
    size_t yaml_size = 0;
    FILE *mem = open_memstream(&yaml, &yaml_size);
    if (!mem || config_write_yaml(c, mem, st) != 0) {
        if (mem) fclose(mem);
        free(yaml);
        return mem ? -1 : status_fail(st, "trainer: out of memory");
    }
    fclose(mem);
    provenance_info info = {command_line,         tokenizer_checksum,
                            data_loader_total_tokens(t->loader),
                            t->world_size,        o->name,
                            device_description,   t->model.total_params,
                            model_flops_per_token(&t->model)};
    snprintf(path, sizeof path, "%s/run.json", c->run.out_dir);
    int rc = provenance_write(path, c, yaml, &info, st);
    free(yaml);
    if (rc != 0) return -1;
    snprintf(path, sizeof path, "%s/metrics.jsonl", c->run.out_dir);
    t->metrics = fopen(path, "w");
    if (!t->metrics) return status_fail(st, "%s: cannot write: %s", path, strerror(errno));
    return 0;
}

void trainer_close(trainer *t) {
    if (t->metrics) fclose(t->metrics);
    batch_free(t->batch);
    batch_free(t->eval_batch);
    free(t->weights);
    if (t->valid) window_reader_close(t->valid);
    if (t->loader) data_loader_close(t->loader);
    optimizer_destroy(&t->optimizer);
    model_destroy(&t->model);
    memset(t, 0, sizeof *t);
}

int trainer_step(trainer *t, trainer_step_result *result, status *st) {
    const config *c = &t->cfg;
    model *m = &t->model;
    const ops *o = t->ops;
    int T = c->model.seq_len, mb = c->train.micro_batch;
    double start = now_seconds();
    if (data_loader_next_global_batch(t->loader, t->batch, st) != 0) return -1;

    /* the loss is the mean over every counted token of the global batch, so
     * each token's gradient weight is 1 / (counted tokens of the global batch) */
    size_t n = (size_t)t->batch->sequences * T;
    int64_t counted = 0;
    for (size_t i = 0; i < n; i++) counted += t->batch->loss_mask[i];
    double inv = counted > 0 ? 1.0 / (double)counted : 0.0;
    for (size_t i = 0; i < n; i++) t->weights[i] = (float)(t->batch->loss_mask[i] * inv);

    model_zero_grads(m);
    double loss_sum = 0, aux = 0, z = 0;
    for (int micro = 0; micro < t->micro_steps; micro++) {
        const int32_t *tokens = t->batch->tokens + (size_t)micro * mb * (T + 1);
        const float *weights = t->weights + (size_t)micro * mb * T;
        const uint8_t *mask = t->batch->loss_mask + (size_t)micro * mb * T;
        model_forward(m, tokens, weights, 1.0 / t->micro_steps);
        for (int i = 0; i < mb * T; i++)
            if (mask[i]) loss_sum += m->host_losses[i];
        aux += m->aux_loss / t->micro_steps;
        z += m->z_loss / t->micro_steps;
        model_backward(m);
    }
    double grad_norm = sqrt(o->sum_squares(m->grads, m->total_params));
    int64_t step = t->optimizer.step + 1;
    double lr = schedule_lr(&c->optim, c->run.steps, step);
    optimizer_step(&t->optimizer, m->master, m->grads, lr, grad_norm, c->train.grad_clip);
    model_sync_compute_weights(m);
    o->synchronize();

    t->tokens += (int64_t)c->train.global_batch * T;
    result->step = step;
    result->loss = counted > 0 ? loss_sum / (double)counted : 0.0;
    result->aux_loss = aux;
    result->z_loss = z;
    result->lr = lr;
    result->grad_norm = grad_norm;
    result->loss_tokens = counted;
    result->tokens = t->tokens;
    result->seconds = now_seconds() - start;
    return 0;
}

void trainer_evaluate(trainer *t, double *loss, int64_t *tokens) {
    const config *c = &t->cfg;
    model *m = &t->model;
    int T = c->model.seq_len, mb = c->train.micro_batch;
    int64_t windows = window_reader_count(t->valid);
    if (windows > c->data.eval_samples) windows = c->data.eval_samples;
    double sum = 0;
    int64_t counted = 0;
    for (int64_t first = 0; first < windows; first += mb) {
        /* a short last batch is padded with masked copies of the first window */
        for (int row = 0; row < mb; row++)
            window_reader_get(t->valid, first + row < windows ? first + row : 0, t->eval_batch, row);
        for (int row = 0; row < mb; row++)
            if (first + row >= windows) memset(t->eval_batch->loss_mask + (size_t)row * T, 0, T);
        model_forward(m, t->eval_batch->tokens, NULL, 0);
        for (int i = 0; i < mb * T; i++)
            if (t->eval_batch->loss_mask[i]) {
                sum += m->host_losses[i];
                counted++;
            }
    }
    *loss = counted ? sum / (double)counted : NAN;
    *tokens = counted;
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
    if (t->peak_flops > 0) json_write_number(f, tok_per_s * model_flops_per_token(&t->model) / t->peak_flops);
    else fputs("null", f);
    fputs(", \"time_s\": ", f);
    json_write_number(f, elapsed);
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
