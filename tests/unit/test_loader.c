/* Training loader and eval windows: a hand-derived Megatron order, packing (contiguity,
 * coverage), determinism, exact resume with several sources and prefetch, Megatron's
 * data-parallel split, blending proportions, EOD and Goldfish loss masks, data.split, the index
 * cache (reuse, stale and damaged files, an unwritable location), ~2000 shards under an open-file
 * bound of 8, prefetch errors, and the error messages.
 * (tests/python/test_megatron_order.py checks the order element for element against
 * megatron-core itself.)
 *
 * Every non-EOD token of the test datasets is unique (source*100000 + running number), so a token
 * tells which source, document and position it came from. */
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "data/goldfish.h"
#include "data/indexed_dataset.h"
#include "data/loader.h"
#include "raw_dataset.h"
#include "temp_dir.h"

enum { EOD = 0, VOCAB = 1000000, SOURCE_STRIDE = 100000 };

static void dataset_path(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", temp_dir, name);
}

/* Writes `documents` documents of lengths 1 + (i*37 % max_length) + EOD; returns total tokens. */
static int64_t make_source(const char *name, int source, int documents, int max_length) {
    char prefix[512];
    dataset_path(prefix, sizeof prefix, name);
    indexed_dataset_writer *w;
    status st;
    CHECK(indexed_dataset_writer_open(prefix, VOCAB, &w, &st) == 0);
    int32_t tokens[1024];
    int32_t next = source * SOURCE_STRIDE + 1;
    int64_t total = 0;
    for (int i = 0; i < documents; i++) {
        int length = 1 + (i * 37) % max_length;
        for (int t = 0; t < length; t++) tokens[t] = next++;
        tokens[length] = EOD;
        CHECK(indexed_dataset_writer_add(w, tokens, (size_t)length + 1, &st) == 0);
        total += length + 1;
    }
    CHECK(indexed_dataset_writer_close(w, &st) == 0);
    return total;
}

/* A Megatron int32 dataset of consecutive tokens from first_token, written without fsync. */
static void write_raw_dataset(const char *prefix, const int32_t *lengths, int documents,
                              int32_t first_token) {
    char path[700];
    snprintf(path, sizeof path, "%s.bin", prefix);
    FILE *bin = fopen(path, "wb");
    CHECK(bin != NULL && raw_dataset_write_index(prefix, 4, 4, lengths, documents) == 0);
    if (!bin) return;
    for (int i = 0; i < documents; i++)
        for (int t = 0; t < lengths[i]; t++, first_token++) fwrite(&first_token, 4, 1, bin);
    fclose(bin);
}

static void base_config(config *c, int seq_len, int micro_batch, int global_batch, int steps) {
    memset(c, 0, sizeof *c);
    c->model.seq_len = seq_len;
    c->train.micro_batch = micro_batch;
    c->train.global_batch = global_batch;
    c->run.seed = 1234;
    c->run.steps = steps;
    c->data.eod_id = EOD;
    c->data.mask_eod_input = 1;
}

static void add_source(config *c, const char *name, double weight) {
    data_source *s = &c->data.sources[c->data.source_count++];
    dataset_path(s->path, sizeof s->path, name);
    s->weight = weight;
}

static data_loader *open_with(const config *c, int rank, int dp, int max_open, int prefetch) {
    data_loader *l = NULL;
    status st;
    data_loader_options options = {max_open, prefetch};
    int result = data_loader_open_split(c, DATA_SPLIT_TRAIN, c->run.steps * c->train.global_batch,
                                        rank, dp, &options, &l, &st);
    CHECK_MSG(result == 0, "%s", st.message);
    return l;
}

static data_loader *open_loader(const config *c, int rank, int dp) {
    data_loader *l = NULL;
    status st;
    int result = data_loader_open(c, rank, dp, &l, &st);
    CHECK_MSG(result == 0, "%s", st.message);
    return l;
}

/* Batches [first, first+count) of the loader as one array of rows. */
static int32_t *collect(data_loader *l, int count, int rows, int seq_len) {
    batch *b = batch_alloc(rows, seq_len);
    size_t row_tokens = (size_t)seq_len + 1;
    int32_t *all = calloc((size_t)count * rows * row_tokens, sizeof *all);
    status st;
    for (int i = 0; i < count; i++) {
        int result = data_loader_next_global_batch(l, b, &st);
        CHECK_MSG(result == 0, "batch %d: %s", i, st.message);
        memcpy(all + (size_t)i * rows * row_tokens, b->tokens, rows * row_tokens * sizeof *all);
    }
    batch_free(b);
    return all;
}

static int compare_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int same_batches(const int32_t *a, const int32_t *b, int batches, int rows, int seq_len) {
    return memcmp(a, b, (size_t)batches * rows * (seq_len + 1) * sizeof *a) == 0;
}

/* Documents A = 1 2 3, B = 4 5, C = 6 7 8 9; seq_len 2, seed 1234, 4 samples: one epoch
 * (4*2+1 <= 9 tokens). MT19937(1234) starts 0x31076b2f 0x7f66e2d3 0x9f428526 0xd15ddc35
 * 0x700eeccc 0x9cb35d74 0xc90d4298. Document shuffle of [0 1 2]: i=2, mask 3: 3, 3 rejected,
 * 2 -> j=2; i=1, mask 1: 1 -> j=1: order A B C, stream 1..9. Samples start every 2 tokens:
 * s0 = 1 2 3, s1 = 3 4 5, s2 = 5 6 7, s3 = 7 8 9. Sample shuffle of [0 1 2 3]: i=3: 0 -> swap
 * with 0: [3 1 2 0]; i=2: 0 -> [2 1 3 0]; i=1: 0 -> [1 2 3 0]. */
static void test_hand_derived_order(void) {
    char prefix[512];
    dataset_path(prefix, sizeof prefix, "hand");
    const int32_t lengths[3] = {3, 2, 4};
    write_raw_dataset(prefix, lengths, 3, 1);
    config c;
    base_config(&c, 2, 1, 1, 4);
    c.data.eod_id = -1;
    add_source(&c, "hand", 1);
    data_loader *l = open_loader(&c, 0, 1);
    int32_t *got = collect(l, 4, 1, 2);
    const int32_t want[4][3] = {{3, 4, 5}, {5, 6, 7}, {7, 8, 9}, {1, 2, 3}};
    CHECK(memcmp(got, want, sizeof want) == 0);
    CHECK(data_loader_samples(l) == 4);
    free(got);
    data_loader_close(l);
}

/* One epoch of one source, global batch 1: each sample is a contiguous piece of the shuffled
 * document stream, and every token but the tail shorter than a window is covered once. */
static void test_packing_one_epoch(void) {
    const int seq_len = 16;
    int64_t total = make_source("pack", 0, 40, 20);
    int64_t per_epoch = (total - 1) / seq_len;
    config c;
    base_config(&c, seq_len, 1, 1, (int)per_epoch);
    add_source(&c, "pack", 1.0);
    data_loader *l = open_loader(&c, 0, 1);
    CHECK(data_loader_total_tokens(l) == total);
    CHECK(data_loader_samples(l) == per_epoch);
    int32_t *samples = collect(l, (int)per_epoch, 1, seq_len);
    int32_t *covered = malloc((size_t)per_epoch * seq_len * sizeof *covered);
    int contiguous = 1, eod_count = 0;
    for (int64_t s = 0; s < per_epoch; s++) {
        const int32_t *x = samples + s * (seq_len + 1);
        for (int t = 0; t < seq_len; t++) {
            /* inside a document ids step by one; after an EOD any document may start */
            if (x[t] != EOD && x[t + 1] != EOD && x[t + 1] != x[t] + 1) contiguous = 0;
            covered[s * seq_len + t] = x[t];
            eod_count += x[t] == EOD;
        }
    }
    CHECK(contiguous);
    qsort(covered, (size_t)(per_epoch * seq_len), sizeof *covered, compare_int32);
    int unique = 1;
    for (int64_t i = eod_count + 1; i < per_epoch * seq_len; i++)
        if (covered[i] == covered[i - 1]) unique = 0;
    CHECK(unique);
    CHECK(per_epoch * seq_len >= total - seq_len);
    status st;
    batch *b = batch_alloc(1, seq_len);
    CHECK(data_loader_next_global_batch(l, b, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "outside the");
    batch_free(b);
    free(covered);
    free(samples);
    data_loader_close(l);
}

/* Same config -> same batches; prefetch depth does not matter; another seed differs; resuming at
 * any cursor (fresh loader, used loader, backwards) continues exactly; three sources. */
static void test_determinism_and_resume(void) {
    const int seq_len = 8, global = 6, steps = 12;
    make_source("resume-a", 0, 30, 12);
    make_source("resume-b", 1, 25, 9);
    make_source("resume-c", 2, 8, 30);
    config c;
    base_config(&c, seq_len, 3, global, steps);
    add_source(&c, "resume-a", 2);
    add_source(&c, "resume-b", 1);
    add_source(&c, "resume-c", 0.5);
    data_loader *a = open_with(&c, 0, 1, 64, 2), *b = open_with(&c, 0, 1, 64, 0);
    data_loader *deep = open_with(&c, 0, 1, 64, 5);
    size_t batch_tokens = (size_t)global * (seq_len + 1);
    int32_t *first = collect(a, steps, global, seq_len);
    int32_t *second = collect(b, steps, global, seq_len);
    int32_t *third = collect(deep, steps, global, seq_len);
    CHECK(same_batches(first, second, steps, global, seq_len));
    CHECK(same_batches(first, third, steps, global, seq_len));
    CHECK(data_loader_cursor(a) == (int64_t)steps * global);

    c.run.seed = 99;
    data_loader *other = open_loader(&c, 0, 1);
    int32_t *reseeded = collect(other, steps, global, seq_len);
    CHECK(!same_batches(first, reseeded, steps, global, seq_len));
    c.run.seed = 1234;

    status st;
    for (int at = 1; at < steps; at += 4) {
        data_loader *resumed = open_loader(&c, 0, 1);
        CHECK(data_loader_set_cursor(resumed, (int64_t)at * global, &st) == 0);
        int32_t *tail = collect(resumed, steps - at, global, seq_len);
        CHECK_MSG(same_batches(tail, first + at * batch_tokens, steps - at, global, seq_len),
                  "resumed at step %d", at);
        free(tail);
        data_loader_close(resumed);
    }
    CHECK(data_loader_set_cursor(a, 2 * global, &st) == 0);
    CHECK(data_loader_cursor(a) == 2 * global);
    int32_t *again = collect(a, steps - 2, global, seq_len);
    CHECK(same_batches(again, first + 2 * batch_tokens, steps - 2, global, seq_len));
    /* a cursor between batches (global batch changed on resume) shifts the windows by samples */
    CHECK(data_loader_set_cursor(a, global + 2, &st) == 0);
    int32_t *shifted = collect(a, 1, global, seq_len);
    CHECK(memcmp(shifted, first + batch_tokens + 2 * (seq_len + 1),
                 (global - 2) * (seq_len + 1) * sizeof *shifted) == 0);
    CHECK(data_loader_set_cursor(a, -1, &st) == -1);
    CHECK(data_loader_set_cursor(a, data_loader_samples(a) + 1, &st) == -1);

    free(first);
    free(second);
    free(third);
    free(reseeded);
    free(again);
    free(shifted);
    data_loader_close(a);
    data_loader_close(b);
    data_loader_close(deep);
    data_loader_close(other);
}

/* Rank r of dp gets rows k*m + j = global sample k*m*dp + r*m + j (Megatron's sampler). */
static void test_data_parallel_split(void) {
    const int seq_len = 8, micro = 2, global = 16, steps = 3;
    make_source("dp-a", 0, 50, 12);
    make_source("dp-b", 1, 50, 12);
    config c;
    base_config(&c, seq_len, micro, global, steps);
    add_source(&c, "dp-a", 0.7);
    add_source(&c, "dp-b", 0.3);
    data_loader *single = open_loader(&c, 0, 1);
    const int row = seq_len + 1;
    int32_t *whole = collect(single, steps, global, seq_len);
    for (int dp = 2; dp <= 8; dp *= 2) {
        int rows = global / dp, placed_right = 1;
        for (int rank = 0; rank < dp; rank++) {
            data_loader *l = open_loader(&c, rank, dp);
            int32_t *mine = collect(l, steps, rows, seq_len);
            for (int step = 0; step < steps; step++)
                for (int r = 0; r < rows; r++) {
                    int k = r / micro, j = r % micro;
                    int g = k * micro * dp + rank * micro + j;
                    const int32_t *got = mine + ((size_t)step * rows + r) * row;
                    const int32_t *want = whole + ((size_t)step * global + g) * row;
                    if (memcmp(got, want, row * sizeof *got) != 0) placed_right = 0;
                }
            free(mine);
            data_loader_close(l);
        }
        CHECK_MSG(placed_right, "dp=%d", dp);
    }
    free(whole);
    data_loader_close(single);
}

static int source_of(const int32_t *x) { return (x[0] != EOD ? x[0] : x[1]) / SOURCE_STRIDE; }

static void test_blending(void) {
    const int seq_len = 4, global = 8, steps = 250;
    make_source("blend-0", 0, 60, 10);
    make_source("blend-1", 1, 60, 10);
    make_source("blend-2", 2, 60, 10);
    config c;
    base_config(&c, seq_len, 1, global, steps);
    add_source(&c, "blend-0", 5);
    add_source(&c, "blend-1", 3);
    add_source(&c, "blend-2", 2);
    data_loader *l = open_loader(&c, 0, 1);
    CHECK(data_loader_samples(l) == (int64_t)steps * global);
    int32_t *all = collect(l, steps, global, seq_len);
    const double weights[3] = {0.5, 0.3, 0.2};
    /* Megatron's rule worked by hand: i=1: errors -.5 .3 .2; i=2: 0 -.4 .4; i=3: .5 -.1 -.4 */
    const int first_sources[5] = {0, 1, 2, 0, 1};
    int counts[3] = {0, 0, 0}, within_one = 1;
    for (int i = 0; i < steps * global; i++) {
        int source = source_of(all + (size_t)i * (seq_len + 1));
        counts[source]++;
        for (int d = 0; d < 3; d++)
            if (counts[d] < weights[d] * (i + 1) - 1 || counts[d] > weights[d] * (i + 1) + 1)
                within_one = 0;
        if (i < 5) CHECK_MSG(source == first_sources[i], "sample %d", i);
    }
    CHECK(within_one);
    CHECK(counts[0] == 1000 && counts[1] == 600 && counts[2] == 400);
    free(all);
    data_loader_close(l);

    /* a zero weight leaves a source out entirely */
    c.data.sources[1].weight = 0;
    l = open_loader(&c, 0, 1);
    all = collect(l, 10, global, seq_len);
    int from_zero = 0;
    for (int i = 0; i < 10 * global; i++)
        from_zero += source_of(all + (size_t)i * (seq_len + 1)) == 1;
    CHECK(from_zero == 0);
    free(all);
    data_loader_close(l);
}

static void test_masks(void) {
    const int seq_len = 12, global = 4;
    make_source("mask", 0, 30, 6);
    config c;
    base_config(&c, seq_len, 2, global, 4);
    add_source(&c, "mask", 1);
    for (int mode = 0; mode < 3; mode++) {
        c.data.mask_eod_input = mode != 1;
        c.data.eod_id = mode == 2 ? -1 : EOD;
        data_loader *l = open_loader(&c, 0, 1);
        batch *b = batch_alloc(global, seq_len);
        status st;
        CHECK(data_loader_next_global_batch(l, b, &st) == 0);
        int right = 1, masked = 0;
        for (int r = 0; r < global; r++)
            for (int t = 0; t < seq_len; t++) {
                int is_eod = b->tokens[r * (seq_len + 1) + t] == EOD;
                int want = mode == 0 ? !is_eod : 1;
                if (b->loss_mask[r * seq_len + t] != want) right = 0;
                masked += !b->loss_mask[r * seq_len + t];
            }
        CHECK_MSG(right, "mode %d", mode);
        CHECK(mode == 0 ? masked > 0 : masked == 0);
        batch_free(b);
        data_loader_close(l);
    }
}

/* Goldfish drops come on top of the EOD mask, exactly as goldfish_apply decides them. */
static void test_goldfish(void) {
    const int seq_len = 32, global = 8;
    make_source("goldfish", 0, 60, 40);
    config c;
    base_config(&c, seq_len, 4, global, 3);
    add_source(&c, "goldfish", 1);
    c.train.goldfish = (goldfish_config){.enabled = 1, .k = 3, .h = 4, .variant = GOLDFISH_APERTUS};
    data_loader *l = open_loader(&c, 0, 1);
    goldfish_table *table;
    status st;
    CHECK(goldfish_table_create(&c.train.goldfish, &table, &st) == 0);
    batch *b = batch_alloc(global, seq_len);
    int right = 1, dropped = 0;
    for (int step = 0; step < 3; step++) {
        CHECK(data_loader_next_global_batch(l, b, &st) == 0);
        for (int r = 0; r < global; r++) {
            const int32_t *tokens = b->tokens + r * (seq_len + 1);
            uint8_t want[64];
            for (int t = 0; t < seq_len; t++) want[t] = tokens[t] != EOD;
            goldfish_apply(table, &c.train.goldfish, tokens + 1, seq_len, EOD, want);
            for (int t = 0; t < seq_len; t++) dropped += tokens[t] != EOD && !want[t];
            if (memcmp(want, b->loss_mask + r * seq_len, (size_t)seq_len) != 0) right = 0;
        }
    }
    CHECK(right);
    CHECK(dropped > 0);
    /* the validation split never gets Goldfish */
    c.data.eod_id = -1;
    data_loader *valid;
    data_loader_options options = {8, 0};
    snprintf(c.data.split, sizeof c.data.split, "50,50");
    CHECK(data_loader_open_split(&c, DATA_SPLIT_VALID, 4, 0, 1, &options, &valid, &st) == 0);
    CHECK(data_loader_read_sample(valid, 0, b, 0, &st) == 0);
    int all_counted = 1;
    for (int t = 0; t < seq_len; t++) all_counted &= b->loss_mask[t] == 1;
    CHECK(all_counted);
    data_loader_close(valid);
    goldfish_table_destroy(table);
    batch_free(b);
    data_loader_close(l);
}

/* data.split "80,20": training reads documents [0, 80) only, validation [80, 100). */
static void test_split(void) {
    const int seq_len = 8, documents = 100;
    int32_t lengths[100];
    for (int i = 0; i < documents; i++) lengths[i] = 3 + i % 7;
    char prefix[512];
    dataset_path(prefix, sizeof prefix, "split");
    write_raw_dataset(prefix, lengths, documents, 1);
    int32_t boundary = 1;
    for (int i = 0; i < 80; i++) boundary += lengths[i];
    config c;
    base_config(&c, seq_len, 1, 1, 40);
    c.data.eod_id = -1;
    add_source(&c, "split", 1);
    snprintf(c.data.split, sizeof c.data.split, "80,20,0");
    status st;
    data_loader *train = open_loader(&c, 0, 1), *valid = NULL;
    data_loader_options options = {64, 0};
    CHECK(data_loader_open_split(&c, DATA_SPLIT_VALID, 10, 0, 1, &options, &valid, &st) == 0);
    batch *b = batch_alloc(1, seq_len);
    int train_inside = 1, valid_inside = 1;
    for (int i = 0; i < 40; i++) {
        CHECK(data_loader_read_sample(train, i, b, 0, &st) == 0);
        for (int t = 0; t <= seq_len; t++) train_inside &= b->tokens[t] < boundary;
    }
    for (int i = 0; i < 10; i++) {
        CHECK(data_loader_read_sample(valid, i, b, 0, &st) == 0);
        for (int t = 0; t <= seq_len; t++) valid_inside &= b->tokens[t] >= boundary;
    }
    CHECK(train_inside);
    CHECK(valid_inside);
    data_loader_close(valid);
    CHECK(data_loader_open_split(&c, DATA_SPLIT_TEST, 10, 0, 1, &options, &valid, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "no share");
    snprintf(c.data.split, sizeof c.data.split, "1,2,3,4");
    CHECK(data_loader_open(&c, 0, 1, &valid, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "data.split");
    batch_free(b);
    data_loader_close(train);
}

/* The one cache file of `name` (PREFIX.cairn-index-*.cache), or "" */
static void find_cache(const char *name, char *out, size_t size) {
    char pattern[600];
    snprintf(pattern, sizeof pattern, "%s/%s.cairn-index-*.cache", temp_dir, name);
    glob_t found;
    out[0] = 0;
    if (glob(pattern, 0, NULL, &found) == 0) {
        CHECK(found.gl_pathc == 1);
        snprintf(out, size, "%s", found.gl_pathv[0]);
        globfree(&found);
    }
}

static void test_index_cache(void) {
    const int seq_len = 8, global = 4, steps = 20;
    make_source("cache", 0, 40, 15);
    config c;
    base_config(&c, seq_len, 2, global, steps);
    add_source(&c, "cache", 1);
    data_loader_stats stats;
    data_loader *l = open_loader(&c, 0, 1);
    data_loader_get_stats(l, &stats);
    CHECK(stats.indices == 1 && stats.cache_writes == 1 && stats.cache_hits == 0);
    int32_t *fresh = collect(l, steps, global, seq_len);
    data_loader_close(l);
    char cache[600];
    find_cache("cache", cache, sizeof cache);
    CHECK(cache[0] != 0);

    l = open_loader(&c, 0, 1);
    data_loader_get_stats(l, &stats);
    CHECK(stats.cache_hits == 1 && stats.cache_writes == 0 && stats.shard_opens == 0);
    char before[65], after[65];
    int shards = 0;
    CHECK(data_loader_source_fingerprint(l, 0, &shards, before) == 0 && shards == 1);
    CHECK(data_loader_source_fingerprint(l, 1, &shards, after) == -1);
    int32_t *cached = collect(l, steps, global, seq_len);
    CHECK(same_batches(fresh, cached, steps, global, seq_len));
    free(cached);
    data_loader_close(l);

    /* a damaged file is rebuilt */
    FILE *f = fopen(cache, "r+b");
    CHECK(f != NULL);
    if (f) {
        fseek(f, 200, SEEK_SET);
        int byte = fgetc(f);
        fseek(f, 200, SEEK_SET);
        fputc(byte ^ 0x40, f);
        fclose(f);
    }
    l = open_loader(&c, 0, 1);
    data_loader_get_stats(l, &stats);
    CHECK(stats.cache_hits == 0 && stats.cache_writes == 1);
    cached = collect(l, steps, global, seq_len);
    CHECK(same_batches(fresh, cached, steps, global, seq_len));
    free(cached);
    data_loader_close(l);
    CHECK(truncate(cache, 100) == 0);
    l = open_loader(&c, 0, 1);
    data_loader_get_stats(l, &stats);
    CHECK(stats.cache_hits == 0 && stats.cache_writes == 1);
    data_loader_close(l);

    /* changed data makes the cache stale: the same name is rebuilt for the new documents */
    make_source("cache", 3, 45, 15);
    l = open_loader(&c, 0, 1);
    data_loader_get_stats(l, &stats);
    CHECK(stats.cache_hits == 0 && stats.cache_writes == 1);
    CHECK(data_loader_source_fingerprint(l, 0, &shards, after) == 0 && strcmp(before, after) != 0);
    int32_t *changed = collect(l, 1, global, seq_len);
    CHECK(source_of(changed) == 3);
    free(changed);
    data_loader_close(l);
    char rebuilt[600];
    find_cache("cache", rebuilt, sizeof rebuilt);
    CHECK(strcmp(rebuilt, cache) == 0);

    /* an unwritable location keeps the index in memory (root ignores permissions: a directory in
     * the cache file's place makes the rename fail instead) */
    CHECK(unlink(cache) == 0);
    int as_root = geteuid() == 0;
    CHECK(as_root ? mkdir(cache, 0755) == 0 : chmod(temp_dir, 0555) == 0);
    l = open_loader(&c, 0, 1);
    data_loader_get_stats(l, &stats);
    CHECK(stats.in_memory == 1 && stats.cache_writes == 0);
    changed = collect(l, 1, global, seq_len);
    CHECK(source_of(changed) == 3);
    free(changed);
    data_loader_close(l);
    CHECK(as_root ? rmdir(cache) == 0 : chmod(temp_dir, 0755) == 0);
    free(fresh);
}

/* ~2000 shards in a directory read as one source with at most 8 mapped at once give the same
 * samples as one dataset holding the same documents; a pattern picks a subset. */
static void test_many_shards(void) {
    enum { SHARDS = 2000, PER_SHARD = 3 };
    const int seq_len = 16, global = 32, steps = 8;
    char shard_dir[512], prefix[600];
    dataset_path(shard_dir, sizeof shard_dir, "shards");
    CHECK(mkdir(shard_dir, 0755) == 0);
    int32_t *lengths = malloc(SHARDS * PER_SHARD * sizeof *lengths);
    for (int i = 0; i < SHARDS * PER_SHARD; i++) lengths[i] = 1 + (i * 7919) % 13;
    int32_t token = 1;
    for (int s = 0; s < SHARDS; s++) {
        snprintf(prefix, sizeof prefix, "%s/part-%05d", shard_dir, s);
        write_raw_dataset(prefix, lengths + s * PER_SHARD, PER_SHARD, token);
        for (int d = 0; d < PER_SHARD; d++) token += lengths[s * PER_SHARD + d];
    }
    dataset_path(prefix, sizeof prefix, "merged");
    write_raw_dataset(prefix, lengths, SHARDS * PER_SHARD, 1);

    config c;
    base_config(&c, seq_len, 4, global, steps);
    c.data.eod_id = -1;
    add_source(&c, "shards", 1);
    data_loader *sharded = open_with(&c, 0, 1, 8, 2);
    data_loader_stats stats;
    data_loader_get_stats(sharded, &stats);
    CHECK(stats.shards == SHARDS);
    int32_t *got = collect(sharded, steps, global, seq_len);
    data_loader_get_stats(sharded, &stats);
    CHECK_MSG(stats.open_shards_peak <= 8, "%d shards mapped at once", stats.open_shards_peak);
    CHECK(stats.shard_opens > SHARDS);  /* every shard once to index, then reads through 8 */
    data_loader_close(sharded);
    snprintf(c.data.sources[0].path, sizeof c.data.sources[0].path, "%s", prefix);
    data_loader *merged = open_with(&c, 0, 1, 8, 0);
    int32_t *want = collect(merged, steps, global, seq_len);
    CHECK(same_batches(got, want, steps, global, seq_len));
    data_loader_close(merged);

    /* a cached index opens no shard before reading */
    snprintf(c.data.sources[0].path, sizeof c.data.sources[0].path, "%s", shard_dir);
    sharded = open_with(&c, 0, 1, 8, 0);
    data_loader_get_stats(sharded, &stats);
    CHECK(stats.cache_hits == 1 && stats.shard_opens == 0);
    data_loader_close(sharded);

    snprintf(c.data.sources[0].path, sizeof c.data.sources[0].path, "%s/part-0000*", shard_dir);
    sharded = open_with(&c, 0, 1, 8, 0);
    data_loader_get_stats(sharded, &stats);
    CHECK(stats.shards == 10);
    int32_t *subset = collect(sharded, 1, global, seq_len);
    int inside = 1;
    for (int i = 0; i < global * (seq_len + 1); i++) inside &= subset[i] < 500;
    CHECK(inside);
    free(subset);
    data_loader_close(sharded);
    free(lengths);
    free(got);
    free(want);
}

/* A read error on the prefetch thread comes back from the call that wanted the batch. */
static void test_prefetch_error(void) {
    char shard_dir[512], prefix[600];
    dataset_path(shard_dir, sizeof shard_dir, "vanishing");
    CHECK(mkdir(shard_dir, 0755) == 0);
    const int32_t lengths[8] = {9, 4, 7, 12, 5, 8, 6, 10};
    for (int s = 0; s < 4; s++) {
        snprintf(prefix, sizeof prefix, "%s/part-%d", shard_dir, s);
        write_raw_dataset(prefix, lengths + 2 * s, 2, 1 + 100 * s);
    }
    config c;
    base_config(&c, 4, 4, 8, 4);
    c.data.eod_id = -1;
    add_source(&c, "vanishing", 1);
    data_loader *l = open_with(&c, 0, 1, 1, 2);
    for (int s = 0; s < 4; s++) {
        snprintf(prefix, sizeof prefix, "%s/part-%d.idx", shard_dir, s);
        CHECK(unlink(prefix) == 0);
    }
    batch *b = batch_alloc(8, 4);
    status st;
    CHECK(data_loader_next_global_batch(l, b, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "vanishing/part-");
    CHECK(data_loader_next_global_batch(l, b, &st) == -1);
    CHECK(data_loader_cursor(l) == 0);
    batch_free(b);
    data_loader_close(l);
}

/* Opening a loader over `name` fails with a message containing `needle`. */
static void check_open_fails(config *c, const char *name, int dp, const char *needle) {
    add_source(c, name, 1);
    data_loader *l = NULL;
    status st;
    CHECK_MSG(data_loader_open(c, 0, dp, &l, &st) == -1 && l == NULL, "%s", name);
    CHECK_STR_CONTAINS(st.message, needle);
}

static void test_errors(void) {
    make_source("short", 0, 2, 3);  /* 2 + 1 ... fewer than 9 tokens */
    config c;
    base_config(&c, 8, 1, 2, 5);
    check_open_fails(&c, "short", 1, "fewer than one sample");
    status st;
    data_loader *l = NULL;
    CHECK(data_loader_open(&c, 0, 1, &l, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "data.sources.0");
    CHECK_STR_CONTAINS(st.message, "/short");
    base_config(&c, 8, 1, 2, 5);
    check_open_fails(&c, "missing", 1, "/missing");
    base_config(&c, 8, 1, 2, 5);
    check_open_fails(&c, "nothing-*", 1, "no shard matches");
    base_config(&c, 8, 2, 6, 5);
    check_open_fails(&c, "mask", 2, "train.global_batch");
    base_config(&c, 8, 1, 2, 0);
    check_open_fails(&c, "mask", 1, "run.steps");
    base_config(&c, 8, 1, 2, 5);
    c.run.seed = (uint64_t)1 << 32;
    check_open_fails(&c, "mask", 1, "run.seed");

    base_config(&c, 8, 1, 2, 5);
    add_source(&c, "mask", 1);
    l = open_loader(&c, 0, 1);
    batch *wrong = batch_alloc(3, 8);
    CHECK(data_loader_next_global_batch(l, wrong, &st) == -1);
    CHECK(data_loader_read_sample(l, data_loader_samples(l), wrong, 0, &st) == -1);
    batch_free(wrong);
    data_loader_close(l);
}

static void test_windows(void) {
    const int seq_len = 10;
    int64_t total = make_source("windows", 3, 20, 9);
    char prefix[512];
    dataset_path(prefix, sizeof prefix, "windows");
    window_reader *r;
    status st;
    CHECK(window_reader_open(prefix, seq_len, EOD, 1, &r, &st) == 0);
    CHECK(window_reader_count(r) == (total - 1) / seq_len);
    indexed_dataset *d;
    CHECK(indexed_dataset_open(prefix, &d, &st) == 0);
    int32_t *stream = malloc((size_t)total * sizeof *stream);
    indexed_dataset_read_stream(d, 0, total, stream);
    batch *b = batch_alloc(2, seq_len);
    int right = 1;
    for (int64_t i = 0; i < window_reader_count(r); i++) {
        window_reader_get(r, i, b, (int)(i % 2));
        const int32_t *row = b->tokens + (i % 2) * (seq_len + 1);
        const uint8_t *mask = b->loss_mask + (i % 2) * seq_len;
        if (memcmp(row, stream + i * seq_len, (seq_len + 1) * sizeof *row) != 0) right = 0;
        for (int t = 0; t < seq_len; t++)
            if (mask[t] != (row[t] != EOD)) right = 0;
    }
    CHECK(right);
    CHECK(stream[0] == 3 * SOURCE_STRIDE + 1);
    batch_free(b);
    free(stream);
    indexed_dataset_close(d);
    window_reader_close(r);

    snprintf(prefix, sizeof prefix, "%s/short", temp_dir);
    CHECK(window_reader_open(prefix, seq_len, EOD, 1, &r, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "fewer than one window");
}

int main(void) {
    if (temp_dir_create("loader") != 0) return 1;
    test_hand_derived_order();
    test_packing_one_epoch();
    test_determinism_and_resume();
    test_data_parallel_split();
    test_blending();
    test_masks();
    test_goldfish();
    test_split();
    test_index_cache();
    test_many_shards();
    test_prefetch_error();
    test_errors();
    test_windows();
    temp_dir_remove();
    return check_summary("test_loader");
}
