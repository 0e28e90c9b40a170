#include "checkpoint/hf_export.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_file.h"
#include "checkpoint/hf_config.h"
#include "checkpoint/hf_names.h"
#include "checkpoint/safetensors.h"
#include "common/json.h"

enum { PATH_BYTES = 4096 };

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every /model tensor of the checkpoint has a place in the map (missing ones fail on read). */
static int check_coverage(checkpoint_file *f, const hf_tensor *map, int count,
                          const char *architecture, status *st) {
    char **stored;
    int stored_count;
    if (checkpoint_file_list(f, "/model", &stored, &stored_count, st) != 0) return -1;
    int parts = 0;
    for (int i = 0; i < count; i++)
        parts += map[i].parts;
    const char **known = malloc(sizeof *known * (size_t)(parts + 1));
    int result = known ? 0 : status_fail(st, "out of memory");
    for (int i = 0, n = 0; result == 0 && i < count; i++)
        for (int j = 0; j < map[i].parts; j++)
            known[n++] = map[i].cairn[j];
    if (result == 0) qsort(known, (size_t)parts, sizeof *known, compare_strings);
    for (int i = 0; result == 0 && i < stored_count; i++) {
        const char *name = stored[i];
        if (!bsearch(&name, known, (size_t)parts, sizeof *known, compare_strings))
            result = status_fail(st, "%s: /model/%s: no place in %s", checkpoint_file_path(f), name,
                                 architecture);
    }
    free(known);
    checkpoint_file_free_names(stored, stored_count);
    return result;
}

static int64_t largest_tensor(const hf_tensor *map, int count) {
    int64_t largest = 1;
    for (int i = 0; i < count; i++)
        if (hf_tensor_elements(&map[i]) > largest) largest = hf_tensor_elements(&map[i]);
    return largest;
}

/* The cairn parts of t, concatenated, from the checkpoint. */
static int read_parts(checkpoint_file *f, const hf_tensor *t, float *out, status *st) {
    char name[160];
    for (int i = 0; i < t->parts; i++) {
        int64_t shape[2] = {t->cairn_rows[i], t->cairn_cols};
        snprintf(name, sizeof name, "/model/%s", t->cairn[i]);
        if (checkpoint_file_read_tensor(f, name, out, t->cairn_ndim, shape, st) != 0) return -1;
        out += t->cairn_rows[i] * t->cairn_cols;
    }
    return 0;
}

typedef struct export_plan {
    const hf_tensor *map;
    int count;
    safetensors_spec *specs;
    int *shard_of; /* per tensor */
    int shards;
    char (*files)[64];
    uint64_t total_bytes;
} export_plan;

/* Splits the tensors, in declaration order, into files of at most shard_bytes. */
static int plan_shards(export_plan *p, int bf16, uint64_t shard_bytes) {
    p->specs = calloc((size_t)p->count, sizeof *p->specs);
    p->shard_of = calloc((size_t)p->count, sizeof *p->shard_of);
    p->files = calloc((size_t)p->count + 1, sizeof *p->files);
    if (!p->specs || !p->shard_of || !p->files) return -1;
    uint64_t in_shard = 0;
    p->shards = 0;
    for (int i = 0; i < p->count; i++) {
        safetensors_spec *s = &p->specs[i];
        s->name = p->map[i].name;
        s->dtype = bf16 ? SAFETENSORS_BF16 : SAFETENSORS_F32;
        s->ndim = p->map[i].ndim;
        s->shape[0] = p->map[i].shape[0];
        s->shape[1] = p->map[i].shape[1];
        uint64_t bytes = safetensors_spec_bytes(s);
        if (p->shards == 0 || (in_shard > 0 && in_shard + bytes > shard_bytes)) {
            p->shards++;
            in_shard = 0;
        }
        in_shard += bytes;
        p->total_bytes += bytes;
        p->shard_of[i] = p->shards - 1;
    }
    for (int k = 0; k < p->shards; k++) {
        if (p->shards == 1)
            snprintf(p->files[k], sizeof p->files[k], "model.safetensors");
        else
            snprintf(p->files[k], sizeof p->files[k], "model-%05d-of-%05d.safetensors", k + 1,
                     p->shards);
    }
    return 0;
}

static void join(char *out, const char *dir, const char *name, const char *suffix) {
    snprintf(out, PATH_BYTES, "%s/%s%s", dir, name, suffix);
}

static int write_shard(checkpoint_file *f, const export_plan *p, int shard, const char *dir,
                       float *cairn, float *hf, status *st) {
    static const char *const metadata[] = {"format", "pt", NULL};
    char path[PATH_BYTES];
    join(path, dir, p->files[shard], ".tmp");
    int first = 0, count = 0;
    while (p->shard_of[first] != shard)
        first++;
    while (first + count < p->count && p->shard_of[first + count] == shard)
        count++;
    safetensors_writer *w;
    if (safetensors_writer_create(path, p->specs + first, count, metadata, &w, st) != 0) return -1;
    for (int i = 0; i < count; i++) {
        const hf_tensor *t = &p->map[first + i];
        if (read_parts(f, t, cairn, st) != 0) {
            safetensors_writer_abort(w);
            return -1;
        }
        hf_from_cairn(t, cairn, hf);
        if (safetensors_writer_put(w, i, hf, st) != 0) {
            safetensors_writer_abort(w);
            return -1;
        }
    }
    return safetensors_writer_finish(w, st);
}

static int by_tensor_name(const void *a, const void *b, void *map_) {
    const hf_tensor *map = map_;
    return strcmp(map[*(const int *)a].name, map[*(const int *)b].name);
}

static int write_index(const export_plan *p, const char *path, status *st) {
    int *order = malloc(sizeof *order * (size_t)p->count);
    FILE *out = order ? fopen(path, "w") : NULL;
    if (!out) {
        free(order);
        return status_fail(st, "%s: cannot create: %s", path, strerror(errno));
    }
    for (int i = 0; i < p->count; i++)
        order[i] = i;
    qsort_r(order, (size_t)p->count, sizeof *order, by_tensor_name, (void *)p->map);
    fprintf(out, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {",
            (unsigned long long)p->total_bytes);
    for (int i = 0; i < p->count; i++) {
        fputs(i ? ",\n    " : "\n    ", out);
        json_write_string(out, p->map[order[i]].name);
        fputs(": ", out);
        json_write_string(out, p->files[p->shard_of[order[i]]]);
    }
    fputs("\n  }\n}\n", out);
    free(order);
    int failed = ferror(out);
    failed |= fclose(out) != 0;
    return failed ? status_fail(st, "%s: write failed: %s", path, strerror(errno)) : 0;
}

/* model.safetensors, model-NNNNN-of-NNNNN.safetensors and the index: names an export owns. */
static int is_export_file(const char *name) {
    static const char pattern[] = "model-#####-of-#####.safetensors";
    if (strcmp(name, "model.safetensors") == 0 || strcmp(name, "model.safetensors.index.json") == 0)
        return 1;
    if (strlen(name) != sizeof pattern - 1) return 0;
    for (size_t i = 0; pattern[i]; i++)
        if (pattern[i] == '#' ? name[i] < '0' || name[i] > '9' : name[i] != pattern[i]) return 0;
    return 1;
}

static void remove_stale(const export_plan *p, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char path[PATH_BYTES];
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_export_file(e->d_name)) continue;
        int current = p->shards > 1 && strcmp(e->d_name, "model.safetensors.index.json") == 0;
        for (int k = 0; k < p->shards; k++)
            current |= strcmp(e->d_name, p->files[k]) == 0;
        if (current) continue;
        join(path, dir, e->d_name, "");
        remove(path);
    }
    closedir(d);
}

/* Renames every NAME.tmp of the export to NAME (config.json last), then drops stale files. */
static int publish(const export_plan *p, const char *dir, int commit, status *st) {
    const char *extra[2] = {p->shards > 1 ? "model.safetensors.index.json" : NULL, "config.json"};
    char from[PATH_BYTES], to[PATH_BYTES];
    int result = 0;
    for (int k = 0; k < p->shards + 2; k++) {
        const char *name = k < p->shards ? p->files[k] : extra[k - p->shards];
        if (!name) continue;
        join(from, dir, name, ".tmp");
        join(to, dir, name, "");
        if (!commit)
            remove(from);
        else if (result == 0 && rename(from, to) != 0)
            result = status_fail(st, "%s: cannot rename from %s: %s", to, from, strerror(errno));
    }
    if (commit && result == 0) remove_stale(p, dir);
    return result;
}

/* mkdir -p */
static int make_dir(const char *dir, status *st) {
    char path[PATH_BYTES];
    snprintf(path, sizeof path, "%s", dir);
    for (char *slash = strchr(path + 1, '/');; slash = strchr(slash + 1, '/')) {
        if (slash) *slash = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return status_fail(st, "%s: cannot create the directory: %s", path, strerror(errno));
        if (!slash) break;
        *slash = '/';
    }
    struct stat info;
    if (stat(dir, &info) != 0 || !S_ISDIR(info.st_mode))
        return status_fail(st, "%s: not a directory", dir);
    return 0;
}

static int export_tensors(checkpoint_file *f, const config *c, hf_class cls, const char *dir,
                          const hf_export_options *options, hf_export_summary *summary,
                          status *st) {
    export_plan p = {0};
    hf_tensor *map = NULL;
    float *cairn = NULL, *hf = NULL;
    int result = hf_tensor_map(&c->model, cls, &map, &p.count, st);
    p.map = map;
    if (result == 0) result = check_coverage(f, map, p.count, hf_class_architecture(cls), st);
    if (result == 0) {
        size_t largest = (size_t)largest_tensor(map, p.count);
        cairn = malloc(sizeof *cairn * largest);
        hf = malloc(sizeof *hf * largest);
        if (!cairn || !hf || plan_shards(&p, options->bf16, options->shard_bytes) != 0)
            result = status_fail(st, "out of memory");
    }
    if (result == 0) result = make_dir(dir, st);
    int written = 0;
    for (int k = 0; result == 0 && k < p.shards; k++, written++)
        result = write_shard(f, &p, k, dir, cairn, hf, st);
    char path[PATH_BYTES];
    if (result == 0 && p.shards > 1) {
        join(path, dir, "model.safetensors.index.json", ".tmp");
        result = write_index(&p, path, st);
    }
    if (result == 0) {
        join(path, dir, "config.json", ".tmp");
        result = hf_config_write(path, &c->model, cls, options->bf16 ? "bfloat16" : "float32",
                                 c->data.eod_id, st);
    }
    if (written > 0 || result == 0) {
        if (result != 0) p.shards = written; /* drop what this export wrote */
        status ignored;
        result = publish(&p, dir, result == 0, result == 0 ? st : &ignored) == 0 ? result : -1;
    }
    summary->architecture = hf_class_architecture(cls);
    summary->tensors = p.count;
    summary->files = p.shards;
    summary->bytes = p.total_bytes;
    free(p.specs);
    free(p.shard_of);
    free(p.files);
    free(map);
    free(cairn);
    free(hf);
    return result;
}

int hf_export(const char *checkpoint_path, const char *dir, const hf_export_options *options,
              hf_export_summary *summary, status *st) {
    config c;
    hf_class cls;
    if (checkpoint_read_config(checkpoint_path, &c, st) != 0) return -1;
    if (hf_class_for(&c.model, &cls, st) != 0)
        return status_prefix(st, "%s: no Hugging Face class for this model", checkpoint_path);
    checkpoint_file *f;
    if (checkpoint_file_open(checkpoint_path, &f, st) != 0) return -1;
    int result = export_tensors(f, &c, cls, dir, options, summary, st);
    checkpoint_file_close(f, NULL);
    return result;
}
