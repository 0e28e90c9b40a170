#include "checkpoint/checkpoint_inspect.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_file.h"

static void print_model(const char *path, FILE *out) {
    config c;
    status st;
    if (checkpoint_read_config(path, &c, &st) != 0) {
        fprintf(out, "model: unknown (%s)\n", st.message);
        return;
    }
    const model_config *m = &c.model;
    fprintf(out, "model: %s, %d layers, d_model %d, %d heads (%d kv), ffn %d, vocab %d, seq_len %d",
            config_arch_name(m->arch), m->layers, m->d_model, m->heads, m->kv_heads, m->ffn,
            m->vocab, m->seq_len);
    if (m->moe.experts > 0)
        fprintf(out, ", MoE %d experts top-%d (ffn %d, %d shared)", m->moe.experts, m->moe.top_k,
                m->moe.ffn, m->moe.shared_experts);
    fprintf(out, "\n");
}

/* Prints one tensor's line; adds its element count. */
static int print_tensor(checkpoint_file *f, const char *name, FILE *out, int64_t *elements,
                        status *st) {
    int ndim;
    int64_t shape[CHECKPOINT_MAX_DIMS], count = 1;
    if (checkpoint_file_tensor_shape(f, name, &ndim, shape, st) != 0) return -1;
    char text[160];
    checkpoint_file_describe_shape(ndim, shape, text, sizeof text);
    for (int d = 0; d < ndim; d++)
        count *= shape[d];
    float *data = malloc((size_t)(count ? count : 1) * sizeof *data);
    if (!data) return status_fail(st, "%s: %s: out of memory", checkpoint_file_path(f), name);
    int rc = checkpoint_file_read_tensor(f, name, data, ndim, shape, st);
    double sum = 0;
    for (int64_t i = 0; rc == 0 && i < count; i++)
        sum += (double)data[i] * data[i];
    free(data);
    if (rc != 0) return -1;
    fprintf(out, "  %-48s [%s]  l2 %.6g\n", name, text, sqrt(sum));
    *elements += count;
    return 0;
}

static int print_tensors(checkpoint_file *f, FILE *out, status *st) {
    char **names = NULL;
    int count = 0;
    if (!checkpoint_file_has(f, "/model")) {
        fprintf(out, "no /model group\n");
        return 0;
    }
    if (checkpoint_file_list(f, "/model", &names, &count, st) != 0) return -1;
    int64_t parameters = 0, optimizer_values = 0;
    char name[512];
    int rc = 0;
    fprintf(out, "tensors:\n");
    for (int i = 0; i < count && rc == 0; i++) {
        snprintf(name, sizeof name, "/model/%s", names[i]);
        rc = print_tensor(f, name, out, &parameters, st);
    }
    static const char *const moments[] = {"m", "v", "m2"};
    for (int i = 0; i < count && rc == 0; i++)
        for (int k = 0; k < 3 && rc == 0; k++) {
            snprintf(name, sizeof name, "/optim/%s/%s", names[i], moments[k]);
            if (checkpoint_file_has(f, name))
                rc = print_tensor(f, name, out, &optimizer_values, st);
        }
    if (rc == 0)
        fprintf(out, "parameters: %" PRId64 " in %d tensors; optimizer state: %" PRId64 " values\n",
                parameters, count, optimizer_values);
    checkpoint_file_free_names(names, count);
    return rc;
}

int checkpoint_inspect(const char *path, FILE *out, status *st) {
    checkpoint_file *f;
    if (checkpoint_file_open(path, &f, st) != 0) return -1;
    int64_t version = 0, step = 0, tokens = 0;
    char *optimizer = NULL;
    if (checkpoint_file_get_int64(f, "version", &version, st) != 0 ||
        checkpoint_file_get_int64(f, "step", &step, st) != 0 ||
        checkpoint_file_get_int64(f, "tokens", &tokens, st) != 0) {
        checkpoint_file_close(f, NULL);
        return -1;
    }
    fprintf(out, "checkpoint: %s (cairn format version %" PRId64 ")\n", path, version);
    fprintf(out, "step: %" PRId64 "\ntokens: %" PRId64 "\n", step, tokens);
    print_model(path, out);
    status ignored;
    if (checkpoint_file_has(f, "/optim") &&
        checkpoint_file_get_string(f, "optimizer", &optimizer, &ignored) == 0)
        fprintf(out, "optimizer: %s\n", optimizer);
    else
        fprintf(out, "optimizer: none (weights only)\n");
    free(optimizer);
    int64_t consumed;
    if (checkpoint_file_has(f, "/data/consumed_samples") &&
        checkpoint_file_read_int64s(f, "/data/consumed_samples", &consumed, 1, &ignored) == 0)
        fprintf(out, "data: %" PRId64 " samples consumed\n", consumed);
    int rc = print_tensors(f, out, st);
    checkpoint_file_close(f, NULL);
    return rc;
}

int checkpoint_inspect_applies(const char *path) { return checkpoint_file_is_hdf5(path); }

int checkpoint_inspect_command(const char *path) {
    status st;
    if (checkpoint_inspect(path, stdout, &st) != 0) {
        fflush(stdout);
        fprintf(stderr, "cairn inspect: %s\n", st.message);
        return 1;
    }
    return 0;
}
