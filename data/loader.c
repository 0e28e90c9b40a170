/* Training loader and eval windows.
 *
 * A source is a shard pool plus its GPTDataset arrays (document, sample and shuffle index, and
 * the per-shard counts that let a cached index skip opening the shards); several sources add
 * the blend arrays (source and sample within it of every global sample). All of them come from
 * a cache file when one matches, else they are built and written (or kept in memory when the
 * file cannot be written). Producing a batch touches only the shard pools, under `reading`,
 * so the prefetch thread and data_loader_read_sample can share them. */
#include "data/loader.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sha256.h"
#include "data/blending.h"
#include "data/goldfish.h"
#include "data/gpt_dataset_index.h"
#include "data/index_cache.h"
#include "data/indexed_dataset.h"
#include "data/prefetch.h"
#include "data/shard_pool.h"

/* Bumped when what an index means changes, so that older cache files read as stale. */
enum { INDEX_FORMAT = 1 };

enum {
    SOURCE_DOCUMENTS, SOURCE_SAMPLES, SOURCE_ORDER, SHARD_DOCUMENTS, SHARD_TOKENS, SOURCE_ARRAYS
};
enum { BLEND_SOURCE, BLEND_SAMPLE, BLEND_TAKEN, BLEND_ARRAYS };

/* One cached index: its arrays and, when they came from (or went to) a file, the mapping. */
typedef struct cached_index {
    index_array arrays[INDEX_CACHE_MAX_ARRAYS];
    int count;
    index_cache_mapping *mapping;
} cached_index;

/* Prefetch numbers batches so that batch n starts at global sample n * G + phase; the phase
 * (cursor mod G) changes only while no thread runs. */
typedef struct numbered_batches {
    struct data_loader *loader;
    int64_t phase;
} numbered_batches;

typedef struct source {
    shard_pool *shards;
    int config_index;
    uint8_t fingerprint[32];
    cached_index index;
} source;

struct data_loader {
    source *sources;
    int source_count;
    int seq_len, micro_batch, global_batch, dp_rank, dp_size;
    int eod_id, mask_eod_input;
    uint32_t seed;
    data_split split;
    double shares[3];
    cached_index blend;          /* count 0 with a single source */
    int64_t samples, cursor, total_tokens;
    goldfish_config goldfish;    /* enabled only for the training split */
    goldfish_table *goldfish_table;
    prefetch *prefetch;
    numbered_batches numbering;
    int prefetch_depth;
    char split_text[64];
    pthread_mutex_t reading;
    data_loader_stats stats;
};

/* The one place that decides which targets count in the loss of a sample. */
static void fill_loss_mask(const int32_t *tokens, int seq_len, int eod_id, int mask_eod_input,
                           uint8_t *mask) {
    int mask_eod = mask_eod_input && eod_id >= 0;
    for (int t = 0; t < seq_len; t++) mask[t] = !(mask_eod && tokens[t] == eod_id);
}

batch *batch_alloc(int sequences, int seq_len) {
    batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->sequences = sequences;
    b->seq_len = seq_len;
    b->tokens = malloc((size_t)sequences * (seq_len + 1) * sizeof *b->tokens);
    b->loss_mask = malloc((size_t)sequences * seq_len * sizeof *b->loss_mask);
    if (!b->tokens || !b->loss_mask) {
        batch_free(b);
        return NULL;
    }
    return b;
}

void batch_free(batch *b) {
    if (!b) return;
    free(b->tokens);
    free(b->loss_mask);
    free(b);
}

/* ---- cached indices ---- */

static void cached_index_release(cached_index *x) {
    for (int i = 0; i < x->count; i++) index_array_release(&x->arrays[i]);
    index_cache_unmap(x->mapping);
    memset(x, 0, sizeof *x);
}

/* PATH = base + "cairn-" + kind + "-" + 16 hex digits of the parameters' hash + ".cache" (not
 * .bin, which a shard pattern would match); key = hash(parameters, fingerprint of the data).
 * Returns 1 when a valid file was mapped into x. */
static int cached_index_find(cached_index *x, const char *base, const char *kind,
                             const char *parameters, const uint8_t fingerprint[32], char *path,
                             size_t path_size, uint8_t key[32]) {
    uint8_t digest[32];
    sha256_context h;
    sha256_init(&h);
    sha256_update(&h, parameters, strlen(parameters));
    sha256_final(&h, digest);
    char hex[65];
    sha256_hex(digest, hex);
    snprintf(path, path_size, "%scairn-%s-%.16s.cache", base, kind, hex);
    sha256_init(&h);
    sha256_update(&h, digest, sizeof digest);
    sha256_update(&h, fingerprint, 32);
    sha256_final(&h, key);
    const char *why;
    return index_cache_map(path, key, x->count, x->arrays, &x->mapping, &why);
}

/* Stores freshly built arrays: written to PATH and mapped back, or kept in memory with a
 * warning when the file cannot be written. */
static void cached_index_store(data_loader *l, cached_index *x, const char *path,
                               const uint8_t key[32], const char *owner) {
    status st;
    cached_index mapped = {.count = x->count};
    const char *why;
    if (index_cache_write(path, key, x->count, x->arrays, &st) == 0) {
        if (index_cache_map(path, key, mapped.count, mapped.arrays, &mapped.mapping, &why) == 1) {
            cached_index_release(x);
            *x = mapped;
            l->stats.cache_writes++;
            return;
        }
        status_fail(&st, "%s: %s right after writing", path, why);
    }
    fprintf(stderr, "cairn: warning: %s: the data index stays in memory (%s)\n", owner,
            st.message);
    l->stats.in_memory++;
}

/* ---- one source ---- */

static int source_fail(status *st, const char *path, int config_index) {
    return status_prefix(st, "data.sources.%d: %s", config_index, path);
}

static int source_build(data_loader *l, source *s, const char *path, int64_t num_samples,
                        status *st) {
    int32_t *lengths;
    if (shard_pool_scan(s->shards, &lengths, st) != 0) return -1;
    int64_t first, count;
    if (!data_split_range(l->shares, l->split, shard_pool_documents(s->shards), &first, &count)) {
        free(lengths);
        return status_fail(st, "data.sources.%d: %s: data.split \"%s\" gives this split no share",
                           s->config_index, path, l->split_text);
    }
    gpt_index_request request = {lengths, first, count, l->seq_len, l->seed, num_samples};
    gpt_index built;
    int rc = gpt_index_build(&request, &built, st);
    free(lengths);
    if (rc != 0) return source_fail(st, path, s->config_index);
    index_array *arrays = s->index.arrays;
    arrays[SOURCE_DOCUMENTS] = built.document_index;
    arrays[SOURCE_SAMPLES] = built.sample_index;
    arrays[SOURCE_ORDER] = built.shuffle_index;
    int shards = shard_pool_shard_count(s->shards);
    if (index_array_alloc(&arrays[SHARD_DOCUMENTS], shards, 8) != 0 ||
        index_array_alloc(&arrays[SHARD_TOKENS], shards, 8) != 0)
        return status_fail(st, "data.sources.%d: %s: out of memory", s->config_index, path);
    shard_pool_counts(s->shards, arrays[SHARD_DOCUMENTS].data, arrays[SHARD_TOKENS].data);
    return 0;
}

static int source_open(data_loader *l, source *s, int config_index, const char *path,
                       int64_t num_samples, int max_open, status *st) {
    s->config_index = config_index;
    s->index.count = SOURCE_ARRAYS;
    if (shard_pool_open(path, max_open, &s->shards, st) != 0)
        return status_prefix(st, "data.sources.%d", config_index);
    l->stats.shards += shard_pool_shard_count(s->shards);
    char parameters[CONFIG_STRING + 512], cache_path[CONFIG_STRING + 128];
    snprintf(parameters, sizeof parameters,
             "cairn GPTDataset index %d\npath %s\nsplit %.17g %.17g %.17g\nwhich %d\nseq_len %d\n"
             "seed %" PRIu32 "\nnum_samples %" PRId64 "\n",
             INDEX_FORMAT, path, l->shares[0], l->shares[1], l->shares[2], (int)l->split,
             l->seq_len, l->seed, num_samples);
    uint8_t key[32];
    if (shard_pool_fingerprint(s->shards, s->fingerprint, st) != 0)
        return status_prefix(st, "data.sources.%d", config_index);
    l->stats.indices++;
    if (cached_index_find(&s->index, shard_pool_cache_base(s->shards), "index", parameters,
                          s->fingerprint, cache_path, sizeof cache_path, key) &&
        s->index.arrays[SHARD_DOCUMENTS].count == shard_pool_shard_count(s->shards) &&
        s->index.arrays[SHARD_DOCUMENTS].width == 8 && s->index.arrays[SHARD_TOKENS].width == 8) {
        shard_pool_set_counts(s->shards, s->index.arrays[SHARD_DOCUMENTS].data,
                              s->index.arrays[SHARD_TOKENS].data);
        l->stats.cache_hits++;
        return 0;
    }
    cached_index_release(&s->index);
    s->index.count = SOURCE_ARRAYS;
    if (source_build(l, s, path, num_samples, st) != 0) return -1;
    char owner[CONFIG_STRING + 32];
    snprintf(owner, sizeof owner, "data.sources.%d: %s", config_index, path);
    cached_index_store(l, &s->index, cache_path, key, owner);
    return 0;
}

static void source_close(source *s) {
    shard_pool_close(s->shards);
    cached_index_release(&s->index);
}

static int64_t source_samples(const source *s) { return s->index.arrays[SOURCE_ORDER].count; }

/* Copies sample k of the source's order (seq_len+1 tokens) as Megatron's
 * `_query_document_sample_shuffle_indices` assembles it. */
static int source_read_sample(source *s, int64_t k, int seq_len, int32_t *out, status *st) {
    const index_array *documents = &s->index.arrays[SOURCE_DOCUMENTS];
    const index_array *starts = &s->index.arrays[SOURCE_SAMPLES];
    int64_t sample = index_array_get(&s->index.arrays[SOURCE_ORDER], k);
    if (sample < 0 || 2 * sample + 3 >= starts->count)
        return status_fail(st, "data.sources.%d: sample %" PRId64 " out of the sample index",
                           s->config_index, sample);
    int64_t first = index_array_get(starts, 2 * sample);
    int64_t offset = index_array_get(starts, 2 * sample + 1);
    int64_t last = index_array_get(starts, 2 * sample + 2);
    int64_t last_end = index_array_get(starts, 2 * sample + 3) + 1;
    int64_t needed = (int64_t)seq_len + 1, filled = 0;
    for (int64_t position = first; position <= last; position++) {
        if (position >= documents->count)
            return status_fail(st, "data.sources.%d: position %" PRId64 " past the document index",
                               s->config_index, position);
        int64_t document = index_array_get(documents, position), end = last_end;
        if (position < last && shard_pool_document_length(s->shards, document, &end, st) != 0)
            return -1;
        int64_t begin = position == first ? offset : 0, count = end - begin;
        if (count < 0 || filled + count > needed)
            return status_fail(st, "data.sources.%d: sample %" PRId64 " does not fit %" PRId64
                               " tokens: the index does not match the data",
                               s->config_index, sample, needed);
        if (shard_pool_read(s->shards, document, begin, count, out + filled, st) != 0) return -1;
        filled += count;
    }
    if (filled != needed)
        return status_fail(st, "data.sources.%d: sample %" PRId64 " has %" PRId64 " of %" PRId64
                           " tokens: the index does not match the data",
                           s->config_index, sample, filled, needed);
    return 0;
}

/* ---- the blend ---- */

static int blend_open(data_loader *l, const double *weights, int64_t size, status *st) {
    char parameters[64 + 32 * CONFIG_MAX_SOURCES], cache_path[CONFIG_STRING + 128];
    int used = snprintf(parameters, sizeof parameters, "cairn blend %d\nsize %" PRId64 "\nweights",
                        INDEX_FORMAT, size);
    for (int d = 0; d < l->source_count; d++)
        used += snprintf(parameters + used, sizeof parameters - (size_t)used, " %.17g", weights[d]);
    const uint8_t no_data[32] = {0};  /* the blend depends on the weights and the size only */
    uint8_t key[32];
    cached_index *x = &l->blend;
    x->count = BLEND_ARRAYS;
    l->stats.indices++;
    if (cached_index_find(x, shard_pool_cache_base(l->sources[0].shards), "blend", parameters,
                          no_data, cache_path, sizeof cache_path, key) &&
        x->arrays[BLEND_SOURCE].width == 2 && x->arrays[BLEND_SAMPLE].width == 8 &&
        x->arrays[BLEND_SOURCE].count == size && x->arrays[BLEND_SAMPLE].count == size &&
        x->arrays[BLEND_TAKEN].count == l->source_count && x->arrays[BLEND_TAKEN].width == 8) {
        l->stats.cache_hits++;
    } else {
        cached_index_release(x);
        x->count = BLEND_ARRAYS;
        if (blend_build(weights, l->source_count, size, &x->arrays[BLEND_SOURCE],
                        &x->arrays[BLEND_SAMPLE], st) != 0)
            return -1;
        if (index_array_alloc(&x->arrays[BLEND_TAKEN], l->source_count, 8) != 0)
            return status_fail(st, "data blend: out of memory");
        int64_t *taken = x->arrays[BLEND_TAKEN].data;
        memset(taken, 0, (size_t)l->source_count * sizeof *taken);
        for (int64_t i = 0; i < size; i++) taken[index_array_get(&x->arrays[BLEND_SOURCE], i)]++;
        cached_index_store(l, x, cache_path, key, "data.sources (blend)");
    }
    for (int d = 0; d < l->source_count; d++) {
        int64_t taken = index_array_get(&x->arrays[BLEND_TAKEN], d);
        if (taken > source_samples(&l->sources[d]))
            return status_fail(st, "data.sources.%d: the blend takes %" PRId64
                               " samples, the source has %" PRId64,
                               l->sources[d].config_index, taken, source_samples(&l->sources[d]));
    }
    return 0;
}

/* ---- samples and batches ---- */

static int read_global_sample(data_loader *l, int64_t index, int32_t *tokens, uint8_t *mask,
                              status *st) {
    if (index < 0 || index >= l->samples)
        return status_fail(st, "data loader: sample %" PRId64 " is outside the %" PRId64
                           " samples of the order (run.steps x train.global_batch)",
                           index, l->samples);
    int d = 0;
    int64_t k = index;
    if (l->blend.count) {
        d = (int)index_array_get(&l->blend.arrays[BLEND_SOURCE], index);
        k = index_array_get(&l->blend.arrays[BLEND_SAMPLE], index);
    }
    if (source_read_sample(&l->sources[d], k, l->seq_len, tokens, st) != 0) return -1;
    fill_loss_mask(tokens, l->seq_len, l->eod_id, l->mask_eod_input, mask);
    if (l->goldfish.enabled)
        goldfish_apply(l->goldfish_table, &l->goldfish, tokens + 1, l->seq_len, l->eod_id, mask);
    return 0;
}

/* This rank's rows of the global batch that starts at global sample `start`. */
static int produce_rows(data_loader *l, int64_t start, batch *b, status *st) {
    pthread_mutex_lock(&l->reading);
    int rc = 0;
    for (int row = 0; rc == 0 && row < b->sequences; row++) {
        int micro = row / l->micro_batch, within = row % l->micro_batch;
        int64_t g = start + (int64_t)micro * l->micro_batch * l->dp_size +
                    (int64_t)l->dp_rank * l->micro_batch + within;
        rc = read_global_sample(l, g, b->tokens + (size_t)row * (l->seq_len + 1),
                                b->loss_mask + (size_t)row * l->seq_len, st);
    }
    pthread_mutex_unlock(&l->reading);
    return rc;
}

static int produce_numbered(void *context, int64_t number, batch *b, status *st) {
    const numbered_batches *n = context;
    return produce_rows(n->loader, number * n->loader->global_batch + n->phase, b, st);
}

/* ---- the training loader ---- */

void data_loader_close(data_loader *l) {
    if (!l) return;
    prefetch_close(l->prefetch);
    for (int i = 0; i < l->source_count; i++) source_close(&l->sources[i]);
    cached_index_release(&l->blend);
    goldfish_table_destroy(l->goldfish_table);
    pthread_mutex_destroy(&l->reading);
    free(l->sources);
    free(l);
}

static int check_layout(const config *c, int dp_rank, int dp_size, int64_t samples, status *st) {
    const train_config *t = &c->train;
    if (c->model.seq_len < 1) return status_fail(st, "model.seq_len must be positive");
    if (dp_size < 1 || dp_rank < 0 || dp_rank >= dp_size)
        return status_fail(st, "data loader: data-parallel rank %d of %d", dp_rank, dp_size);
    if (t->micro_batch < 1 || t->global_batch < 1 ||
        t->global_batch % ((int64_t)t->micro_batch * dp_size) != 0)
        return status_fail(st,
                           "train.global_batch %d must be a positive multiple of "
                           "train.micro_batch %d times the data-parallel size %d",
                           t->global_batch, t->micro_batch, dp_size);
    if (samples < 1)
        return status_fail(st, "data loader: the order needs a positive number of samples (got %"
                           PRId64 "; run.steps x train.global_batch for training)", samples);
    if (c->run.seed > UINT32_MAX)
        return status_fail(st, "run.seed %" PRIu64 " is Megatron's random_seed of the data order "
                           "(numpy RandomState), which must be below 2^32", c->run.seed);
    double total = 0;
    for (int i = 0; i < c->data.source_count; i++) {
        if (!(c->data.sources[i].weight >= 0))
            return status_fail(st, "data.sources.%d.weight must not be negative", i);
        total += c->data.sources[i].weight;
    }
    if (!(total > 0)) return status_fail(st, "data.sources: no source with a positive weight");
    return 0;
}

/* Sources with a positive weight (Megatron's blend has no zero weights), then the blend. */
static int open_sources(data_loader *l, const config *c, int64_t samples, int max_open,
                        status *st) {
    double weights[CONFIG_MAX_SOURCES] = {0}, normalized[CONFIG_MAX_SOURCES];
    int config_index[CONFIG_MAX_SOURCES], count = 0;
    for (int i = 0; i < c->data.source_count; i++) {
        if (c->data.sources[i].weight == 0) continue;
        config_index[count] = i;
        weights[count++] = c->data.sources[i].weight;
    }
    blend_normalize(weights, count, normalized);
    l->sources = calloc((size_t)count, sizeof *l->sources);
    if (!l->sources) return status_fail(st, "data loader: out of memory");
    int64_t blend_size = 0;
    for (int d = 0; d < count; d++) {
        int64_t num_samples = count == 1 ? samples : blend_buffer_samples(normalized[d], samples);
        blend_size += blend_target_samples(normalized[d], samples);
        l->source_count++;
        if (source_open(l, &l->sources[d], config_index[d], c->data.sources[config_index[d]].path,
                        num_samples, max_open, st) != 0)
            return -1;
        l->total_tokens += shard_pool_tokens(l->sources[d].shards);
    }
    if (count == 1) {
        l->samples = source_samples(&l->sources[0]);
        return 0;
    }
    l->samples = blend_size;
    return blend_open(l, normalized, blend_size, st);
}

int data_loader_open_split(const config *c, data_split split, int64_t samples, int dp_rank,
                           int dp_size, const data_loader_options *options, data_loader **out,
                           status *st) {
    *out = NULL;
    data_loader_options defaults = {DATA_LOADER_MAX_OPEN_SHARDS, DATA_LOADER_PREFETCH_DEPTH};
    if (!options) options = &defaults;
    if (check_layout(c, dp_rank, dp_size, samples, st) != 0) return -1;
    data_loader *l = calloc(1, sizeof *l);
    if (!l) return status_fail(st, "data loader: out of memory");
    pthread_mutex_init(&l->reading, NULL);
    l->seq_len = c->model.seq_len;
    l->micro_batch = c->train.micro_batch;
    l->global_batch = c->train.global_batch;
    l->dp_rank = dp_rank;
    l->dp_size = dp_size;
    l->seed = (uint32_t)c->run.seed;
    l->split = split;
    snprintf(l->split_text, sizeof l->split_text, "%s", c->data.split);
    l->eod_id = c->data.eod_id;
    l->mask_eod_input = c->data.mask_eod_input;
    if (split == DATA_SPLIT_TRAIN) l->goldfish = c->train.goldfish;
    int rc = data_split_parse(c->data.split, l->shares, st) != 0
                 ? status_prefix(st, "data.split")
                 : open_sources(l, c, samples, options->max_open_shards, st);
    if (rc == 0 && l->goldfish.enabled)
        rc = goldfish_table_create(&l->goldfish, &l->goldfish_table, st);
    l->prefetch_depth = options->prefetch_depth;
    if (rc != 0) {
        data_loader_close(l);
        return -1;
    }
    *out = l;
    return 0;
}

int data_loader_open(const config *c, int dp_rank, int dp_size, data_loader **out, status *st) {
    return data_loader_open_split(c, DATA_SPLIT_TRAIN, c->run.steps * c->train.global_batch,
                                  dp_rank, dp_size, NULL, out, st);
}

/* (Re)starts the prefetch thread for batches in the phase of `start`. */
static int start_prefetch(data_loader *l, int64_t start, status *st) {
    int64_t phase = start % l->global_batch;
    if (l->prefetch && l->numbering.phase == phase) return 0;
    prefetch_close(l->prefetch);
    l->prefetch = NULL;
    l->numbering = (numbered_batches){l, phase};
    return prefetch_open(produce_numbered, &l->numbering, l->prefetch_depth,
                         l->global_batch / l->dp_size, l->seq_len, start / l->global_batch,
                         &l->prefetch, st);
}

int data_loader_next_global_batch(data_loader *l, batch *b, status *st) {
    int rows = l->global_batch / l->dp_size;
    if (b->sequences != rows || b->seq_len != l->seq_len)
        return status_fail(st, "data loader: batch of %d x %d tokens, expected %d x %d",
                           b->sequences, b->seq_len, rows, l->seq_len);
    int64_t start = l->cursor;
    if (l->prefetch_depth > 0) {
        if (start_prefetch(l, start, st) != 0 ||
            prefetch_take(l->prefetch, start / l->global_batch, b, st) != 0)
            return -1;
    } else if (produce_rows(l, start, b, st) != 0) {
        return -1;
    }
    l->cursor += l->global_batch;
    return 0;
}

int data_loader_read_sample(data_loader *l, int64_t index, batch *b, int row, status *st) {
    if (row < 0 || row >= b->sequences || b->seq_len != l->seq_len)
        return status_fail(st, "data loader: row %d of a batch of %d x %d tokens (seq_len %d)",
                           row, b->sequences, b->seq_len, l->seq_len);
    pthread_mutex_lock(&l->reading);
    int rc = read_global_sample(l, index, b->tokens + (size_t)row * (l->seq_len + 1),
                                b->loss_mask + (size_t)row * l->seq_len, st);
    pthread_mutex_unlock(&l->reading);
    return rc;
}

int64_t data_loader_cursor(const data_loader *l) { return l->cursor; }

int data_loader_set_cursor(data_loader *l, int64_t consumed_samples, status *st) {
    if (consumed_samples < 0 || consumed_samples > l->samples)
        return status_fail(st, "data loader: cursor %" PRId64 " outside the %" PRId64
                           " samples of the order", consumed_samples, l->samples);
    l->cursor = consumed_samples;
    return 0;
}

int64_t data_loader_samples(const data_loader *l) { return l->samples; }

int64_t data_loader_total_tokens(const data_loader *l) { return l->total_tokens; }

int data_loader_source_fingerprint(const data_loader *l, int config_index, int *shards,
                                   char hex[65]) {
    for (int i = 0; i < l->source_count; i++) {
        if (l->sources[i].config_index != config_index) continue;
        *shards = shard_pool_shard_count(l->sources[i].shards);
        sha256_hex(l->sources[i].fingerprint, hex);
        return 0;
    }
    return -1;
}

void data_loader_get_stats(data_loader *l, data_loader_stats *out) {
    pthread_mutex_lock(&l->reading);
    *out = l->stats;
    for (int i = 0; i < l->source_count; i++) {
        const shard_pool *p = l->sources[i].shards;
        if (shard_pool_open_peak(p) > out->open_shards_peak)
            out->open_shards_peak = shard_pool_open_peak(p);
        out->shard_opens += shard_pool_open_count(p);
    }
    pthread_mutex_unlock(&l->reading);
}

/* ---- eval windows in file order ---- */

struct window_reader {
    indexed_dataset *data;
    int seq_len, eod_id, mask_eod_input;
    int64_t count;
};

int window_reader_open(const char *prefix, int seq_len, int eod_id, int mask_eod_input,
                       window_reader **out, status *st) {
    *out = NULL;
    if (seq_len < 1) return status_fail(st, "%s: seq_len %d must be positive", prefix, seq_len);
    window_reader *r = calloc(1, sizeof *r);
    if (!r) return status_fail(st, "%s: out of memory", prefix);
    if (indexed_dataset_open(prefix, &r->data, st) != 0) {
        free(r);
        return -1;
    }
    int64_t tokens = indexed_dataset_tokens(r->data);
    if (tokens < (int64_t)seq_len + 1) {
        window_reader_close(r);
        return status_fail(st, "%s: %" PRId64 " tokens, fewer than one window of seq_len+1 = %d",
                           prefix, tokens, seq_len + 1);
    }
    r->seq_len = seq_len;
    r->eod_id = eod_id;
    r->mask_eod_input = mask_eod_input;
    r->count = (tokens - 1) / seq_len;
    *out = r;
    return 0;
}

int64_t window_reader_count(const window_reader *r) { return r->count; }

void window_reader_get(const window_reader *r, int64_t index, batch *b, int row) {
    assert(index >= 0 && index < r->count && row >= 0 && row < b->sequences &&
           b->seq_len == r->seq_len);
    int32_t *tokens = b->tokens + (size_t)row * (r->seq_len + 1);
    indexed_dataset_read_stream(r->data, index * r->seq_len, r->seq_len + 1, tokens);
    fill_loss_mask(tokens, r->seq_len, r->eod_id, r->mask_eod_input,
                   b->loss_mask + (size_t)row * r->seq_len);
}

void window_reader_close(window_reader *r) {
    if (!r) return;
    indexed_dataset_close(r->data);
    free(r);
}
