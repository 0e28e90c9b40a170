/* Training loader (shuffled, blended, resumable) and eval windows over indexed datasets.
 *
 * Per source and epoch e the loader keeps three int64 arrays: the shuffled
 * document order, where each window of the packed stream starts (position in
 * that order + token offset), and the shuffled window order. Tokens are read
 * from the memory-mapped .bin on demand, so memory is 8 bytes per document
 * plus 24 per sample of one source-epoch, never the token stream itself.
 * The blend state is the per-source count of samples taken before the cursor;
 * set_cursor replays the blending rule (O(cursor * sources), no RNG). */
#include "data/loader.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "data/indexed_dataset.h"
#include "data/shuffle.h"

/* Labels that separate the random streams drawn for one (source, epoch). */
enum { STREAM_DOCUMENT_ORDER = 0, STREAM_SAMPLE_ORDER = 1 };

typedef struct source {
    indexed_dataset *data;
    int config_index;          /* position in c->data.sources: part of the seed */
    double weight;             /* normalised over the opened sources */
    int64_t documents, samples_per_epoch;
    int64_t epoch;             /* epoch the arrays below describe; -1 before the first */
    int64_t *document_order;   /* [documents] */
    int64_t *sample_position;  /* [samples_per_epoch] index into document_order */
    int64_t *sample_offset;    /* [samples_per_epoch] token offset in that document */
    int64_t *sample_order;     /* [samples_per_epoch] */
} source;

struct data_loader {
    source *sources;
    int source_count;
    int seq_len, micro_batch, global_batch, dp_rank, dp_size;
    uint64_t seed;
    int eod_id, mask_eod_input;
    int64_t cursor;
    int64_t *taken;             /* [source_count] samples each source gave before the cursor */
    int *batch_source;          /* [global_batch] scratch: source of each sample of a batch */
    int64_t *batch_sample;      /* [global_batch] scratch: its index in that source's order */
    int64_t total_tokens;
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

/* ---- one source: epochs of shuffled documents, packed into windows ---- */

static void source_build_epoch(source *s, int64_t epoch, uint64_t seed, int seq_len) {
    random_state r;
    for (int64_t i = 0; i < s->documents; i++) s->document_order[i] = i;
    random_seed(&r, shuffle_stream_seed(seed, (uint64_t)s->config_index, (uint64_t)epoch,
                                  STREAM_DOCUMENT_ORDER));
    shuffle_int64(&r, s->document_order, s->documents);

    int64_t position = 0, document_begin = 0;
    for (int64_t j = 0; j < s->samples_per_epoch; j++) {
        int64_t target = j * seq_len;
        for (;;) {
            int64_t length = indexed_dataset_document_length(s->data, s->document_order[position]);
            if (document_begin + length > target) break;
            document_begin += length;
            position++;
        }
        s->sample_position[j] = position;
        s->sample_offset[j] = target - document_begin;
    }

    for (int64_t j = 0; j < s->samples_per_epoch; j++) s->sample_order[j] = j;
    random_seed(&r, shuffle_stream_seed(seed, (uint64_t)s->config_index, (uint64_t)epoch,
                                  STREAM_SAMPLE_ORDER));
    shuffle_int64(&r, s->sample_order, s->samples_per_epoch);
    s->epoch = epoch;
}

/* Copies the k-th sample of the source's endless order (seq_len+1 tokens). */
static void source_read_sample(source *s, int64_t k, uint64_t seed, int seq_len, int32_t *out) {
    int64_t epoch = k / s->samples_per_epoch;
    if (s->epoch != epoch) source_build_epoch(s, epoch, seed, seq_len);
    int64_t window = s->sample_order[k % s->samples_per_epoch];
    int64_t position = s->sample_position[window], offset = s->sample_offset[window];
    int64_t needed = seq_len + 1;
    while (needed > 0) {
        int64_t document = s->document_order[position++];
        int64_t available = indexed_dataset_document_length(s->data, document) - offset;
        int64_t take = available < needed ? available : needed;
        indexed_dataset_read(s->data, document, offset, take, out);
        out += take;
        needed -= take;
        offset = 0;
    }
}

static void source_close(source *s) {
    indexed_dataset_close(s->data);
    free(s->document_order);
    free(s->sample_position);
    free(s->sample_offset);
    free(s->sample_order);
}

static int source_open(source *s, const char *path, int config_index, double weight, int seq_len,
                       status *st) {
    memset(s, 0, sizeof *s);
    s->config_index = config_index;
    s->weight = weight;
    s->epoch = -1;
    if (indexed_dataset_open(path, &s->data, st) != 0)
        return status_prefix(st, "data.sources.%d", config_index);
    int64_t tokens = indexed_dataset_tokens(s->data);
    if (tokens < (int64_t)seq_len + 1)
        return status_fail(st,
                           "data.sources.%d: %s has %" PRId64
                           " tokens, fewer than one sample of seq_len+1 = %d",
                           config_index, path, tokens, seq_len + 1);
    s->documents = indexed_dataset_documents(s->data);
    s->samples_per_epoch = (tokens - 1) / seq_len;
    s->document_order = malloc((size_t)s->documents * sizeof(int64_t));
    s->sample_position = malloc((size_t)s->samples_per_epoch * sizeof(int64_t));
    s->sample_offset = malloc((size_t)s->samples_per_epoch * sizeof(int64_t));
    s->sample_order = malloc((size_t)s->samples_per_epoch * sizeof(int64_t));
    if (!s->document_order || !s->sample_position || !s->sample_offset || !s->sample_order)
        return status_fail(st, "data.sources.%d: %s: out of memory for %" PRId64
                           " documents and %" PRId64 " samples", config_index, path,
                           s->documents, s->samples_per_epoch);
    return 0;
}

/* ---- blending (Megatron helpers.cpp build_blending_indices) ---- */

/* Source of global sample i: the largest error weight*max(i,1) - taken, ties
 * to the lowest index. Updates taken and returns the sample's index within its
 * source's order through *sample. */
static int blend_next(const data_loader *l, int64_t i, int64_t *taken, int64_t *sample) {
    double x = i > 1 ? (double)i : 1.0;
    int best = 0;
    double best_error = l->sources[0].weight * x - (double)taken[0];
    for (int d = 1; d < l->source_count; d++) {
        double error = l->sources[d].weight * x - (double)taken[d];
        if (error > best_error) {
            best_error = error;
            best = d;
        }
    }
    if (sample) *sample = taken[best];
    taken[best]++;
    return best;
}

/* ---- the training loader ---- */

void data_loader_close(data_loader *l) {
    if (!l) return;
    for (int i = 0; i < l->source_count; i++) source_close(&l->sources[i]);
    free(l->sources);
    free(l->taken);
    free(l->batch_source);
    free(l->batch_sample);
    free(l);
}

static int check_layout(const config *c, int dp_rank, int dp_size, status *st) {
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
    double total = 0;
    for (int i = 0; i < c->data.source_count; i++) {
        if (!(c->data.sources[i].weight >= 0))
            return status_fail(st, "data.sources.%d.weight must not be negative", i);
        total += c->data.sources[i].weight;
    }
    if (!(total > 0)) return status_fail(st, "data.sources: no source with a positive weight");
    return 0;
}

int data_loader_open(const config *c, int dp_rank, int dp_size, data_loader **out, status *st) {
    *out = NULL;
    if (check_layout(c, dp_rank, dp_size, st) != 0) return -1;
    data_loader *l = calloc(1, sizeof *l);
    if (!l) return status_fail(st, "data loader: out of memory");
    l->seq_len = c->model.seq_len;
    l->micro_batch = c->train.micro_batch;
    l->global_batch = c->train.global_batch;
    l->dp_rank = dp_rank;
    l->dp_size = dp_size;
    l->seed = c->run.seed;
    l->eod_id = c->data.eod_id;
    l->mask_eod_input = c->data.mask_eod_input;
    l->sources = calloc((size_t)c->data.source_count, sizeof *l->sources);
    l->taken = calloc((size_t)c->data.source_count, sizeof *l->taken);
    l->batch_source = malloc((size_t)l->global_batch * sizeof *l->batch_source);
    l->batch_sample = malloc((size_t)l->global_batch * sizeof *l->batch_sample);
    if (!l->sources || !l->taken || !l->batch_source || !l->batch_sample) {
        data_loader_close(l);
        return status_fail(st, "data loader: out of memory");
    }
    double total = 0;
    for (int i = 0; i < c->data.source_count; i++) total += c->data.sources[i].weight;
    /* Zero-weight sources are left out: Megatron's rule could still pick one on a tie. */
    for (int i = 0; i < c->data.source_count; i++) {
        const data_source *config_source = &c->data.sources[i];
        if (config_source->weight == 0) continue;
        source *s = &l->sources[l->source_count++];
        if (source_open(s, config_source->path, i, config_source->weight / total, l->seq_len,
                        st) != 0) {
            data_loader_close(l);
            return -1;
        }
        l->total_tokens += indexed_dataset_tokens(s->data);
    }
    *out = l;
    return 0;
}

int data_loader_next_global_batch(data_loader *l, batch *b, status *st) {
    int rows = l->global_batch / l->dp_size;
    if (b->sequences != rows || b->seq_len != l->seq_len)
        return status_fail(st, "data loader: batch of %d x %d tokens, expected %d x %d",
                           b->sequences, b->seq_len, rows, l->seq_len);
    for (int g = 0; g < l->global_batch; g++)
        l->batch_source[g] = blend_next(l, l->cursor + g, l->taken, &l->batch_sample[g]);
    /* MegatronPretrainingSampler: each chunk of micro_batch*dp consecutive
     * samples gives rank r the slice [r*micro_batch, (r+1)*micro_batch). */
    for (int row = 0; row < rows; row++) {
        int micro = row / l->micro_batch, within = row % l->micro_batch;
        int g = micro * l->micro_batch * l->dp_size + l->dp_rank * l->micro_batch + within;
        int32_t *tokens = b->tokens + (size_t)row * (l->seq_len + 1);
        source_read_sample(&l->sources[l->batch_source[g]], l->batch_sample[g], l->seed,
                           l->seq_len, tokens);
        fill_loss_mask(tokens, l->seq_len, l->eod_id, l->mask_eod_input,
                       b->loss_mask + (size_t)row * l->seq_len);
    }
    l->cursor += l->global_batch;
    return 0;
}

int64_t data_loader_cursor(const data_loader *l) { return l->cursor; }

int data_loader_set_cursor(data_loader *l, int64_t consumed_samples, status *st) {
    if (consumed_samples < 0)
        return status_fail(st, "data loader: negative cursor %" PRId64, consumed_samples);
    if (l->source_count == 1) {
        l->taken[0] = l->cursor = consumed_samples;
        return 0;
    }
    if (consumed_samples < l->cursor) {
        memset(l->taken, 0, (size_t)l->source_count * sizeof *l->taken);
        l->cursor = 0;
    }
    for (; l->cursor < consumed_samples; l->cursor++) blend_next(l, l->cursor, l->taken, NULL);
    return 0;
}

int64_t data_loader_total_tokens(const data_loader *l) { return l->total_tokens; }

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
