/* Training loader and eval windows: packing (contiguity, coverage), determinism,
 * reshuffled epochs, exact resume, Megatron's data-parallel split, blending
 * proportions, EOD loss masks, and the too-small-source error.
 *
 * Every non-EOD token of the test datasets is unique (source*100000 + running
 * number), so a token tells which source, document and position it came from. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data/indexed_dataset.h"
#include "data/loader.h"

enum { EOD = 0, VOCAB = 1000000, SOURCE_STRIDE = 100000 };

static char dir[] = "/tmp/cairn-test-loader-XXXXXX";

/* Writes `documents` documents of lengths 1 + (i*37 % max_length) + EOD; returns total tokens. */
static int64_t make_source(const char *name, int source, int documents, int max_length) {
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s/%s", dir, name);
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

static void base_config(config *c, int seq_len, int micro_batch, int global_batch) {
    memset(c, 0, sizeof *c);
    c->model.seq_len = seq_len;
    c->train.micro_batch = micro_batch;
    c->train.global_batch = global_batch;
    c->run.seed = 1234;
    c->data.eod_id = EOD;
    c->data.mask_eod_input = 1;
}

static void add_source(config *c, const char *name, double weight) {
    data_source *s = &c->data.sources[c->data.source_count++];
    snprintf(s->path, sizeof s->path, "%s/%s", dir, name);
    s->weight = weight;
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
    int32_t *all = malloc((size_t)count * rows * row_tokens * sizeof *all);
    status st;
    for (int i = 0; i < count; i++) {
        CHECK(data_loader_next_global_batch(l, b, &st) == 0);
        memcpy(all + (size_t)i * rows * row_tokens, b->tokens, rows * row_tokens * sizeof *all);
    }
    batch_free(b);
    return all;
}

static int compare_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* One source, global batch 1, a whole epoch: each sample is a contiguous piece
 * of the shuffled document stream, the windows overlap by exactly one token,
 * every token but the tail shorter than a window is covered once, and the
 * next epoch brings a different order. */
static void test_packing_one_epoch(void) {
    const int seq_len = 16;
    int64_t total = make_source("pack", 0, 40, 20);
    config c;
    base_config(&c, seq_len, 1, 1);
    add_source(&c, "pack", 1.0);
    data_loader *l = open_loader(&c, 0, 1);
    int64_t per_epoch = (total - 1) / seq_len;
    CHECK(data_loader_total_tokens(l) == total);
    int32_t *samples = collect(l, (int)(2 * per_epoch), 1, seq_len);
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
    /* epoch 1 is another permutation: its first samples differ from epoch 0's */
    CHECK(memcmp(samples, samples + per_epoch * (seq_len + 1),
                 (size_t)(seq_len + 1) * 4 * sizeof *samples) != 0);
    free(covered);
    free(samples);
    data_loader_close(l);
}

static void test_determinism_and_resume(void) {
    const int seq_len = 8, global = 6, steps = 9;
    make_source("resume", 0, 30, 12);
    config c;
    base_config(&c, seq_len, 3, global);
    add_source(&c, "resume", 1.0);
    data_loader *a = open_loader(&c, 0, 1), *b = open_loader(&c, 0, 1);
    size_t batch_tokens = (size_t)global * (seq_len + 1);
    int32_t *first = collect(a, steps, global, seq_len);
    int32_t *second = collect(b, steps, global, seq_len);
    CHECK(memcmp(first, second, steps * batch_tokens * sizeof *first) == 0);
    CHECK(data_loader_cursor(a) == (int64_t)steps * global);

    c.run.seed = 99;
    data_loader *other = open_loader(&c, 0, 1);
    int32_t *reseeded = collect(other, steps, global, seq_len);
    CHECK(memcmp(first, reseeded, steps * batch_tokens * sizeof *first) != 0);

    /* resume at step 4 (past an epoch boundary: 30 documents are ~25 samples), forward
     * from a fresh loader and backward on a used one */
    c.run.seed = 1234;
    data_loader *resumed = open_loader(&c, 0, 1);
    status st;
    CHECK(data_loader_set_cursor(resumed, 4 * global, &st) == 0);
    int32_t *tail = collect(resumed, steps - 4, global, seq_len);
    CHECK(memcmp(tail, first + 4 * batch_tokens, (steps - 4) * batch_tokens * sizeof *tail) == 0);
    CHECK(data_loader_set_cursor(a, 2 * global, &st) == 0);
    CHECK(data_loader_cursor(a) == 2 * global);
    int32_t *again = collect(a, steps - 2, global, seq_len);
    CHECK(memcmp(again, first + 2 * batch_tokens, (steps - 2) * batch_tokens * sizeof *again) ==
          0);
    CHECK(data_loader_set_cursor(a, -1, &st) == -1);

    free(first);
    free(second);
    free(reseeded);
    free(tail);
    free(again);
    data_loader_close(a);
    data_loader_close(b);
    data_loader_close(other);
    data_loader_close(resumed);
}

/* Rank r of dp gets rows k*m + j = global sample k*m*dp + r*m + j (Megatron's sampler). */
static void test_data_parallel_split(void) {
    const int seq_len = 8, micro = 2, global = 16, steps = 3;
    make_source("dp-a", 0, 50, 12);
    make_source("dp-b", 1, 50, 12);
    config c;
    base_config(&c, seq_len, micro, global);
    add_source(&c, "dp-a", 0.7);
    add_source(&c, "dp-b", 0.3);
    data_loader *single = open_loader(&c, 0, 1);
    const int row = seq_len + 1;
    int32_t *whole = collect(single, steps, global, seq_len);
    for (int dp = 2; dp <= 8; dp *= 2) {
        int rows = global / dp, placed_right = 1;
        int32_t *gathered = malloc((size_t)steps * global * row * sizeof *gathered);
        int gathered_rows = 0;
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
                    memcpy(gathered + (size_t)gathered_rows++ * row, got, row * sizeof *got);
                }
            free(mine);
            data_loader_close(l);
        }
        CHECK_MSG(placed_right, "dp=%d", dp);
        /* as a multiset: sort the rows' first tokens (unique per window start offset pair) */
        int32_t *starts = malloc((size_t)steps * global * 2 * sizeof *starts);
        for (int i = 0; i < steps * global; i++) {
            starts[i] = gathered[(size_t)i * row + 1] * 7 + gathered[(size_t)i * row];
            starts[steps * global + i] = whole[(size_t)i * row + 1] * 7 + whole[(size_t)i * row];
        }
        qsort(starts, (size_t)steps * global, sizeof *starts, compare_int32);
        qsort(starts + steps * global, (size_t)steps * global, sizeof *starts, compare_int32);
        CHECK(memcmp(starts, starts + steps * global, (size_t)steps * global * sizeof *starts) ==
              0);
        free(starts);
        free(gathered);
    }
    free(whole);
    data_loader_close(single);
}

static void test_blending(void) {
    const int seq_len = 4, global = 8, steps = 250;
    make_source("blend-0", 0, 60, 10);
    make_source("blend-1", 1, 60, 10);
    make_source("blend-2", 2, 60, 10);
    config c;
    base_config(&c, seq_len, 1, global);
    add_source(&c, "blend-0", 5);
    add_source(&c, "blend-1", 3);
    add_source(&c, "blend-2", 2);
    data_loader *l = open_loader(&c, 0, 1);
    int32_t *all = collect(l, steps, global, seq_len);
    const double weights[3] = {0.5, 0.3, 0.2};
    /* Megatron's rule worked by hand: i=1: errors -.5 .3 .2; i=2: 0 -.4 .4; i=3: .5 -.1 -.4 */
    const int first_sources[5] = {0, 1, 2, 0, 1};
    int counts[3] = {0, 0, 0}, within_one = 1;
    for (int i = 0; i < steps * global; i++) {
        const int32_t *x = all + (size_t)i * (seq_len + 1);
        int source = (x[0] != EOD ? x[0] : x[1]) / SOURCE_STRIDE;
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
    for (int i = 0; i < 10 * global; i++) {
        const int32_t *x = all + (size_t)i * (seq_len + 1);
        from_zero += (x[0] != EOD ? x[0] : x[1]) / SOURCE_STRIDE == 1;
    }
    CHECK(from_zero == 0);
    free(all);
    data_loader_close(l);
}

static void test_masks(void) {
    const int seq_len = 12, global = 4;
    make_source("mask", 0, 30, 6);
    config c;
    base_config(&c, seq_len, 2, global);
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

static void test_errors(void) {
    make_source("short", 0, 2, 3);  /* 2 + 1 ... fewer than 9 tokens */
    config c;
    base_config(&c, 8, 1, 2);
    add_source(&c, "short", 1);
    data_loader *l = NULL;
    status st;
    CHECK(data_loader_open(&c, 0, 1, &l, &st) == -1 && l == NULL);
    CHECK_STR_CONTAINS(st.message, "data.sources.0");
    CHECK_STR_CONTAINS(st.message, "/short");
    CHECK_STR_CONTAINS(st.message, "fewer than one sample");

    base_config(&c, 8, 1, 2);
    add_source(&c, "missing", 1);
    CHECK(data_loader_open(&c, 0, 1, &l, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "/missing.idx");

    base_config(&c, 8, 2, 6);
    add_source(&c, "mask", 1);
    CHECK(data_loader_open(&c, 0, 2, &l, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "train.global_batch");

    base_config(&c, 8, 1, 2);
    add_source(&c, "mask", 1);
    l = open_loader(&c, 0, 1);
    batch *wrong = batch_alloc(3, 8);
    CHECK(data_loader_next_global_batch(l, wrong, &st) == -1);
    batch_free(wrong);
    data_loader_close(l);
}

static void test_windows(void) {
    const int seq_len = 10;
    int64_t total = make_source("windows", 3, 20, 9);
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s/windows", dir);
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

    snprintf(prefix, sizeof prefix, "%s/short", dir);
    CHECK(window_reader_open(prefix, seq_len, EOD, 1, &r, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "fewer than one window");
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_packing_one_epoch();
    test_determinism_and_resume();
    test_data_parallel_split();
    test_blending();
    test_masks();
    test_errors();
    test_windows();
    char command[600];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary("test_loader");
}
