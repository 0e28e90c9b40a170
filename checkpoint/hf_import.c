#include "checkpoint/hf_import.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_file.h"
#include "checkpoint/hf_config.h"
#include "checkpoint/hf_names.h"
#include "checkpoint/safetensors.h"
#include "common/json_parse.h"
#include "train/config.h"
#include "train/model.h"

enum { PATH_BYTES = 4096 };

/* The safetensors files of an HF directory, and which of their tensors were used. */
typedef struct hf_source {
    char index_path[PATH_BYTES];
    json_document *index; /* NULL: one model.safetensors */
    const json_value *weight_map;
    int count;
    safetensors_file **files;
    char **used; /* per file, per tensor */
} hf_source;

static void close_source(hf_source *s) {
    for (int i = 0; i < s->count; i++) {
        safetensors_close(s->files[i]);
        free(s->used[i]);
    }
    free(s->files);
    free(s->used);
    json_document_free(s->index);
}

static int add_file(hf_source *s, const char *dir, const char *name, status *st) {
    char path[PATH_BYTES];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    safetensors_file *f;
    if (safetensors_open(path, &f, st) != 0) return -1;
    s->files[s->count] = f;
    s->used[s->count] = calloc((size_t)f->count + 1, 1);
    s->count++;
    return s->used[s->count - 1] ? 0 : status_fail(st, "out of memory");
}

static const char *base_name(const safetensors_file *f) {
    const char *slash = strrchr(f->path, '/');
    return slash ? slash + 1 : f->path;
}

/* The files the index names, each once. */
static int open_indexed(hf_source *s, const char *dir, status *st) {
    if (json_read_file(s->index_path, JSON_UNIQUE_KEYS | JSON_NO_NUL, &s->index, st) != 0)
        return -1;
    s->weight_map = json_find(json_document_root(s->index), "weight_map");
    if (!s->weight_map || s->weight_map->type != JSON_OBJECT)
        return status_fail(st, "%s: field weight_map: missing or not an object", s->index_path);
    const json_value *m = s->weight_map;
    s->files = calloc(m->length + 1, sizeof *s->files);
    s->used = calloc(m->length + 1, sizeof *s->used);
    if (!s->files || !s->used) return status_fail(st, "out of memory");
    for (size_t i = 0; i < m->length; i++) {
        const json_value *file = &m->as.members[i].value;
        if (file->type != JSON_STRING || !file->as.string[0] || strchr(file->as.string, '/'))
            return status_fail(st, "%s: field weight_map.%s: not a file name in the directory",
                               s->index_path, m->as.members[i].key);
        int seen = 0;
        for (int j = 0; j < s->count && !seen; j++)
            seen = strcmp(base_name(s->files[j]), file->as.string) == 0;
        if (!seen && add_file(s, dir, file->as.string, st) != 0) return -1;
    }
    return 0;
}

static int open_source(hf_source *s, const char *dir, status *st) {
    memset(s, 0, sizeof *s);
    snprintf(s->index_path, sizeof s->index_path, "%s/model.safetensors.index.json", dir);
    if (access(s->index_path, F_OK) == 0) return open_indexed(s, dir, st);
    char single[PATH_BYTES];
    snprintf(single, sizeof single, "%s/model.safetensors", dir);
    if (access(single, F_OK) != 0)
        return status_fail(st, "%s: neither model.safetensors nor model.safetensors.index.json",
                           dir);
    s->files = calloc(1, sizeof *s->files);
    s->used = calloc(1, sizeof *s->used);
    if (!s->files || !s->used) return status_fail(st, "out of memory");
    return add_file(s, dir, "model.safetensors", st);
}

/* Finds `name` (GPT-2 files may lack the "transformer." prefix). *file is -1 when absent. */
static int find_tensor(const hf_source *s, const char *name, int *file,
                       const safetensors_tensor **tensor, status *st) {
    *file = -1;
    const char *keys[2] = {name, strncmp(name, "transformer.", 12) == 0 ? name + 12 : NULL};
    for (int k = 0; k < 2 && keys[k]; k++)
        for (int i = 0; i < s->count; i++) {
            const json_value *where = json_find(s->weight_map, keys[k]);
            if (s->index && !(where && strcmp(where->as.string, base_name(s->files[i])) == 0))
                continue;
            *tensor = safetensors_find(s->files[i], keys[k]);
            if (*tensor) {
                *file = i;
                return 0;
            }
            if (s->index)
                return status_fail(st, "%s: weight_map puts %s in %s, which does not hold it",
                                   s->index_path, keys[k], s->files[i]->path);
        }
    return 0;
}

static void describe_shape(int ndim, const int64_t *shape, char *out, size_t size) {
    out[0] = '\0';
    for (int d = 0; d < ndim; d++)
        snprintf(out + strlen(out), size - strlen(out), "%s%lld", d ? ", " : "",
                 (long long)shape[d]);
}

/* Reads HF tensor t (converted to fp32) into hf; *where names its file. */
static int read_hf(hf_source *s, const hf_tensor *t, const char *dir, float *hf, const char **where,
                   status *st) {
    int file;
    const safetensors_tensor *found = NULL;
    if (find_tensor(s, t->name, &file, &found, st) != 0) return -1;
    if (file < 0)
        return status_fail(st, "%s: tensor %s: missing (config.json implies it)",
                           s->index ? s->index_path : dir, t->name);
    safetensors_file *f = s->files[file];
    *where = f->path;
    int same = found->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++)
        same = found->shape[d] == t->shape[d];
    if (!same) {
        char got[128], wanted[128];
        describe_shape(found->ndim, found->shape, got, sizeof got);
        describe_shape(t->ndim, t->shape, wanted, sizeof wanted);
        return status_fail(st, "%s: tensor %s: shape [%s], config.json implies [%s]", f->path,
                           t->name, got, wanted);
    }
    s->used[file][found - f->tensors] = 1;
    return safetensors_read_float(f, found, hf, st);
}

/* transformers' non-persistent buffers that older exports still carry */
static int ignorable(const char *name) {
    static const char *const suffixes[] = {"rotary_emb.inv_freq", ".attn.bias",
                                           ".attn.masked_bias"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t k = strlen(suffixes[i]);
        if (n >= k && strcmp(name + n - k, suffixes[i]) == 0) return 1;
    }
    return 0;
}

/* A tied model may still store lm_head.weight: allowed when it equals the embedding. */
static int check_tied_head(hf_source *s, const hf_tensor *embed, const float *embedding,
                           float *scratch, status *st) {
    int file;
    const safetensors_tensor *head;
    if (find_tensor(s, "lm_head.weight", &file, &head, st) != 0) return -1;
    if (file < 0) return 0;
    s->used[file][head - s->files[file]->tensors] = 1;
    if (head->elements != hf_tensor_elements(embed) ||
        safetensors_read_float(s->files[file], head, scratch, st) != 0 ||
        memcmp(scratch, embedding, sizeof *scratch * (size_t)head->elements) != 0)
        return status_fail(st,
                           "%s: tensor lm_head.weight: differs from %s, but config.json ties "
                           "them (tie_word_embeddings)",
                           s->files[file]->path, embed->name);
    return 0;
}

static int check_all_used(const hf_source *s, const char *architecture, status *st) {
    for (int i = 0; i < s->count; i++)
        for (int j = 0; j < s->files[i]->count; j++)
            if (!s->used[i][j] && !ignorable(s->files[i]->tensors[j].name))
                return status_fail(st,
                                   "%s: tensor %s: not a tensor of %s as config.json "
                                   "describes it",
                                   s->files[i]->path, s->files[i]->tensors[j].name, architecture);
    return 0;
}

static int by_param_name(const void *a, const void *b) {
    return strcmp(((const param_tensor *)a)->name, ((const param_tensor *)b)->name);
}

/* The map must produce exactly the model's parameters, with their shapes. */
static int check_map(const config *c, const hf_tensor *map, int count, long long *parameters,
                     status *st) {
    param_tensor *params;
    int n;
    if (model_param_layout(c, &params, &n, st) != 0) return -1;
    qsort(params, (size_t)n, sizeof *params, by_param_name);
    char *covered = calloc((size_t)n + 1, 1);
    int result = covered ? 0 : status_fail(st, "out of memory");
    *parameters = 0;
    for (int i = 0; result == 0 && i < count; i++)
        for (int j = 0; result == 0 && j < map[i].parts; j++) {
            param_tensor key;
            snprintf(key.name, sizeof key.name, "%s", map[i].cairn[j]);
            const param_tensor *p = bsearch(&key, params, (size_t)n, sizeof *params, by_param_name);
            int fits = p && !covered[p - params] && p->ndim == map[i].cairn_ndim &&
                       p->shape[0] == map[i].cairn_rows[j] &&
                       (p->ndim == 1 || p->shape[1] == map[i].cairn_cols);
            if (!fits)
                result = status_fail(st, "internal: %s does not map onto a model parameter",
                                     map[i].cairn[j]);
            else
                covered[p - params] = 1;
        }
    for (int p = 0; result == 0 && p < n; p++) {
        if (!covered[p])
            result = status_fail(st, "internal: parameter %s has no Hugging Face tensor",
                                 params[p].name);
        *parameters += (long long)params[p].count;
    }
    free(covered);
    free(params);
    return result;
}

static int write_header(checkpoint_file *f, const config *c, status *st) {
    char *yaml = NULL;
    size_t length = 0;
    FILE *out = open_memstream(&yaml, &length);
    if (!out) return status_fail(st, "out of memory");
    int result = config_write_yaml(c, out, st);
    if (fclose(out) != 0 && result == 0) result = status_fail(st, "out of memory");
    if (result == 0) result = checkpoint_file_set_int64(f, "step", 0, st);
    if (result == 0) result = checkpoint_file_set_int64(f, "tokens", 0, st);
    if (result == 0) result = checkpoint_file_set_string(f, "config", yaml, st);
    free(yaml);
    return result;
}

static int write_weights(checkpoint_file *f, hf_source *s, const hf_tensor *map, int count,
                         int tied, const char *dir, status *st) {
    int64_t largest = 1;
    for (int i = 0; i < count; i++)
        if (hf_tensor_elements(&map[i]) > largest) largest = hf_tensor_elements(&map[i]);
    float *hf = malloc(sizeof *hf * (size_t)largest),
          *cairn = malloc(sizeof *cairn * (size_t)largest);
    int result = hf && cairn ? 0 : status_fail(st, "out of memory");
    char name[160];
    for (int i = 0; result == 0 && i < count; i++) {
        const hf_tensor *t = &map[i];
        const char *where = dir;
        result = read_hf(s, t, dir, hf, &where, st);
        if (result == 0 && tied && strcmp(t->cairn[0], "embed.tokens") == 0)
            result = check_tied_head(s, t, hf, cairn, st);
        if (result == 0) result = hf_to_cairn(t, hf, cairn, where, st);
        const float *data = cairn;
        for (int j = 0; result == 0 && j < t->parts; j++) {
            int64_t shape[2] = {t->cairn_rows[j], t->cairn_cols};
            snprintf(name, sizeof name, "/model/%s", t->cairn[j]);
            result = checkpoint_file_write_tensor(f, name, data, t->cairn_ndim, shape, st);
            data += t->cairn_rows[j] * t->cairn_cols;
        }
    }
    free(hf);
    free(cairn);
    return result;
}

int hf_import(const char *hf_dir, const char *output, hf_import_summary *summary, status *st) {
    char config_path[PATH_BYTES], temporary[PATH_BYTES];
    snprintf(config_path, sizeof config_path, "%s/config.json", hf_dir);
    snprintf(temporary, sizeof temporary, "%s.tmp", output);
    config c;
    config_defaults(&c);
    hf_class cls;
    int eos;
    if (hf_config_read(config_path, &c.model, &cls, &eos, st) != 0) return -1;
    c.data.tokenizer[0] = '\0'; /* the vocabulary is config.json's */
    c.data.eod_id = eos;
    if (config_resolve(&c, 1, st) != 0) return status_prefix(st, "%s", config_path);
    hf_tensor *map = NULL;
    int count = 0;
    hf_source source;
    memset(&source, 0, sizeof source);
    int result = hf_tensor_map(&c.model, cls, &map, &count, st);
    if (result == 0) result = check_map(&c, map, count, &summary->parameters, st);
    if (result == 0) result = open_source(&source, hf_dir, st);
    checkpoint_file *f = NULL;
    if (result == 0) result = checkpoint_file_create(temporary, &f, st);
    if (result == 0) result = write_header(f, &c, st);
    if (result == 0)
        result = write_weights(f, &source, map, count, c.model.tie_embeddings, hf_dir, st);
    if (result == 0) result = check_all_used(&source, hf_class_architecture(cls), st);
    if (f) {
        if (result == 0)
            result = checkpoint_file_close(f, st);
        else
            checkpoint_file_close(f, NULL);
    }
    if (result == 0) result = checkpoint_commit(temporary, output, st);
    if (result != 0 && f) remove(temporary);
    summary->architecture = hf_class_architecture(cls);
    summary->tensors = count;
    summary->files = source.count;
    close_source(&source);
    free(map);
    return result;
}
