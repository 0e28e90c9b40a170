/* dump_step CONFIG.yaml OUT.bin: one forward + backward of the fp32 CPU model, written out for an
 * independent reimplementation to compare against (tests/python/torch_parity.py).
 *
 * The config must set model.vocab and data.eod_id. Weights come from model_init_weights(run.seed);
 * tokens [micro_batch][seq_len+1] are uniform random (seed run.seed + 1) with about one in eight
 * replaced by EOD and at least one EOD per row, so document masking matters. Loss weights are
 * 1/(counted tokens), 0 where the input token is EOD when data.mask_eod_input; moe_scale is 1.
 *
 * OUT.bin, little-endian, no padding:
 *   char[8]  "CAIRNDS1"
 *   u32 n, char[n]            resolved config YAML (config_write_yaml)
 *   i32 B, i32 T              micro_batch, seq_len
 *   i32[B][T+1]               tokens
 *   f32[B][T]                 loss weights
 *   f32[B][T]                 per-token cross-entropy
 *   f64 objective, f64 aux, f64 z   objective = Σ w·CE + aux + z (router losses summed over layers)
 *   u32 P, then P parameters in declaration order:
 *     u32 n, char[n] name; u32 ndim; i64[ndim] shape; f32[count] value; f32[count] gradient
 * The file is written under a temporary name and renamed when complete. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/random.h"
#include "common/status.h"
#include "kernels/ops.h"
#include "train/config.h"
#include "train/model.h"

static int load_config(const char *path, config *c, status *st) {
    config_defaults(c);
    if (config_load_file(c, path, st) || config_resolve(c, 1, st)) return -1;
    if (c->model.vocab <= 0) return status_fail(st, "%s: model.vocab: required by dump_step", path);
    if (c->data.eod_id < 0) return status_fail(st, "%s: data.eod_id: required by dump_step", path);
    return 0;
}

static void make_batch(const config *c, int32_t *tokens, float *weights) {
    int B = c->train.micro_batch, T = c->model.seq_len, V = c->model.vocab, eod = c->data.eod_id;
    random_state rng;
    random_seed(&rng, c->run.seed + 1);
    for (int b = 0; b < B; b++) {
        int32_t *row = tokens + (size_t)b * (T + 1);
        for (int t = 0; t <= T; t++)
            row[t] = random_below(&rng, 8) == 0 ? eod : (int32_t)random_below(&rng, V);
        row[(T / 2 + 3 * b) % T] = eod;
    }
    int counted = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            counted += !(c->data.mask_eod_input && tokens[(size_t)b * (T + 1) + t] == eod);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int masked = c->data.mask_eod_input && tokens[(size_t)b * (T + 1) + t] == eod;
            weights[(size_t)b * T + t] = masked || counted == 0 ? 0.0f : 1.0f / counted;
        }
}

static void write_u32(FILE *out, uint32_t value) { fwrite(&value, sizeof value, 1, out); }

static void write_text(FILE *out, const char *text, size_t length) {
    write_u32(out, (uint32_t)length);
    fwrite(text, 1, length, out);
}

static int write_config_text(FILE *out, const config *c, status *st) {
    char *text = NULL;
    size_t length = 0;
    FILE *memory = open_memstream(&text, &length);
    if (!memory) return status_fail(st, "dump_step: open_memstream: %s", strerror(errno));
    int result = config_write_yaml(c, memory, st);
    fclose(memory);
    if (result == 0) write_text(out, text, length);
    free(text);
    return result;
}

static int write_dump(FILE *out, const config *c, model *m, const int32_t *tokens,
                      const float *weights, status *st) {
    int B = m->micro_batch, T = m->seq_len, N = m->N;
    fwrite("CAIRNDS1", 1, 8, out);
    if (write_config_text(out, c, st)) return -1;
    int32_t dims[2] = {B, T};
    fwrite(dims, sizeof *dims, 2, out);
    fwrite(tokens, sizeof *tokens, (size_t)B * (T + 1), out);
    fwrite(weights, sizeof *weights, N, out);
    fwrite(m->host_losses, sizeof *m->host_losses, N, out);
    double objective = 0;
    for (int i = 0; i < N; i++) objective += (double)weights[i] * m->host_losses[i];
    double aux, z;
    model_take_router_losses(m, &aux, &z);
    double scalars[3] = {objective + aux + z, aux, z};
    fwrite(scalars, sizeof *scalars, 3, out);

    float *values = malloc(sizeof *values * m->total_params);
    float *grads = malloc(sizeof *grads * m->total_params);
    if (!values || !grads) {
        free(values);
        free(grads);
        return status_fail(st, "dump_step: out of memory");
    }
    m->ops->master_to_float(values, m->master, m->total_params);
    m->ops->master_to_float(grads, m->grads, m->total_params);
    write_u32(out, (uint32_t)m->param_count);
    for (int i = 0; i < m->param_count; i++) {
        const param_tensor *p = &m->params[i];
        write_text(out, p->name, strlen(p->name));
        write_u32(out, (uint32_t)p->ndim);
        fwrite(p->shape, sizeof *p->shape, p->ndim, out);
        fwrite(values + p->offset, sizeof *values, p->count, out);
        fwrite(grads + p->offset, sizeof *grads, p->count, out);
    }
    free(values);
    free(grads);
    return 0;
}

static int dump_step(const char *config_path, const char *out_path, status *st) {
    config c;
    if (load_config(config_path, &c, st)) return -1;
    model m;
    if (model_create(&m, ops_cpu(), &c, c.data.eod_id, st)) return -1;
    model_init_weights(&m, c.run.seed);
    size_t tokens_count = (size_t)m.micro_batch * (m.seq_len + 1);
    int32_t *tokens = malloc(sizeof *tokens * tokens_count);
    float *weights = malloc(sizeof *weights * m.N);
    int result = -1;
    if (!tokens || !weights) {
        status_fail(st, "dump_step: out of memory");
        goto done;
    }
    make_batch(&c, tokens, weights);
    model_zero_grads(&m);
    model_forward(&m, tokens, weights, 1.0);
    model_backward(&m);

    char temporary[4096];
    if (snprintf(temporary, sizeof temporary, "%s.tmp", out_path) >= (int)sizeof temporary) {
        status_fail(st, "%s: path too long", out_path);
        goto done;
    }
    FILE *out = fopen(temporary, "wb");
    if (!out) {
        status_fail(st, "%s: cannot create: %s", temporary, strerror(errno));
        goto done;
    }
    result = write_dump(out, &c, &m, tokens, weights, st);
    if (result == 0 && ferror(out)) result = status_fail(st, "%s: write error", temporary);
    if (fclose(out) && result == 0) result = status_fail(st, "%s: write error", temporary);
    if (result == 0 && rename(temporary, out_path))
        result = status_fail(st, "%s: cannot rename to %s: %s", temporary, out_path,
                             strerror(errno));
    if (result) remove(temporary);
done:
    free(tokens);
    free(weights);
    model_destroy(&m);
    return result;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: dump_step CONFIG.yaml OUT.bin\n");
        return 2;
    }
    status st = {{0}};
    if (dump_step(argv[1], argv[2], &st)) {
        fprintf(stderr, "dump_step: %s\n", st.message);
        return 1;
    }
    return 0;
}
