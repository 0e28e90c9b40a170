/* bench_loader [DIR]: training-loader throughput, for people (not a ctest test).
 *
 * Writes two corpora of uint16 Megatron shards under DIR (default: a new folder in /tmp, removed
 * afterwards): one source of one dataset, and 8 sources of 500 shards each (4000 shards), then
 * for each: the time to build the index (no cache), to open again from the cache, and the
 * tokens/s of data_loader_next_global_batch at gpt2-124m's batch (64 x 1024) without prefetch
 * (the loader's own speed) and, with prefetch, the time a step waits for its batch while it
 * "computes" for 20 ms (what training sees). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/random.h"
#include "data/loader.h"
#include "tests/unit/raw_dataset.h"

enum { SEQ_LEN = 1024, GLOBAL_BATCH = 64, MICRO_BATCH = 16, STEPS = 40, COMPUTE_MS = 20 };

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A uint16 Megatron dataset of `documents` documents of 50..2048 tokens; returns its tokens. */
static int64_t write_dataset(const char *prefix, int documents, random_state *r) {
    char path[4400];
    snprintf(path, sizeof path, "%s.bin", prefix);
    FILE *bin = fopen(path, "wb");
    int32_t *lengths = malloc((size_t)documents * sizeof *lengths);
    uint16_t tokens[2048];
    int64_t total = 0;
    for (int i = 0; bin && i < documents; i++) {
        lengths[i] = 50 + (int32_t)random_below(r, 1999);
        for (int t = 0; t < lengths[i]; t++) tokens[t] = (uint16_t)random_below(r, 50000);
        tokens[lengths[i] - 1] = 50256;
        fwrite(tokens, 2, (size_t)lengths[i], bin);
        total += lengths[i];
    }
    if (!bin || fclose(bin) != 0 || raw_dataset_write_index(prefix, 8, 2, lengths, documents) != 0) {
        perror(prefix);
        exit(1);
    }
    free(lengths);
    return total;
}

static double open_seconds(const config *c, const data_loader_options *o, data_loader **l) {
    status st;
    double start = now_seconds();
    if (data_loader_open_split(c, DATA_SPLIT_TRAIN, c->run.steps * c->train.global_batch, 0, 1,
                               o, l, &st) != 0) {
        fprintf(stderr, "bench_loader: %s\n", st.message);
        exit(1);
    }
    return now_seconds() - start;
}

static void run(const char *name, const config *c, int64_t corpus_tokens) {
    data_loader_options plain = {DATA_LOADER_MAX_OPEN_SHARDS, 0};
    data_loader_options prefetching = {DATA_LOADER_MAX_OPEN_SHARDS, DATA_LOADER_PREFETCH_DEPTH};
    data_loader *l;
    double build = open_seconds(c, &plain, &l);
    data_loader_close(l);
    double cached = open_seconds(c, &plain, &l);
    batch *b = batch_alloc(GLOBAL_BATCH, SEQ_LEN);
    status st;
    double start = now_seconds();
    for (int step = 0; step < STEPS; step++)
        if (data_loader_next_global_batch(l, b, &st) != 0) {
            fprintf(stderr, "bench_loader: %s\n", st.message);
            exit(1);
        }
    double plain_seconds = now_seconds() - start;
    data_loader_stats stats;
    data_loader_get_stats(l, &stats);
    data_loader_close(l);

    open_seconds(c, &prefetching, &l);
    double waited = 0;
    for (int step = 0; step < STEPS; step++) {
        double asked = now_seconds();
        if (data_loader_next_global_batch(l, b, &st) != 0) {
            fprintf(stderr, "bench_loader: %s\n", st.message);
            exit(1);
        }
        if (step > 0) waited += now_seconds() - asked;  /* the first batch has no step before it */
        struct timespec compute = {0, COMPUTE_MS * 1000000L};
        nanosleep(&compute, NULL);
    }
    data_loader_close(l);
    batch_free(b);
    double tokens = (double)STEPS * GLOBAL_BATCH * SEQ_LEN;
    printf("%s: %d shards, %.1fM tokens; index build %.2f s, open from cache %.3f s; "
           "%.2fM tokens/s without prefetch (%.1f ms per %dx%d batch, %" PRId64
           " shard opens); with prefetch a %d ms step waits %.3f ms for its batch\n",
           name, stats.shards, (double)corpus_tokens / 1e6, build, cached,
           tokens / plain_seconds / 1e6, 1e3 * plain_seconds / STEPS, GLOBAL_BATCH, SEQ_LEN,
           stats.shard_opens, COMPUTE_MS, 1e3 * waited / (STEPS - 1));
}

static void base_config(config *c) {
    memset(c, 0, sizeof *c);
    c->model.seq_len = SEQ_LEN;
    c->train.micro_batch = MICRO_BATCH;
    c->train.global_batch = GLOBAL_BATCH;
    c->run.seed = 1234;
    c->run.steps = 20000;  /* 1.3B tokens: several epochs of the corpora below */
    c->data.eod_id = 50256;
    c->data.mask_eod_input = 1;
}

int main(int argc, char **argv) {
    char folder[] = "/tmp/cairn-bench-loader-XXXXXX";
    const char *root = argc > 1 ? argv[1] : mkdtemp(folder);
    if (!root) {
        perror("mkdtemp");
        return 1;
    }
    random_state r;
    random_seed(&r, 7);
    config c;
    base_config(&c);
    char path[1000];
    snprintf(path, sizeof path, "%s/single", root);
    int64_t single_tokens = write_dataset(path, 40000, &r);
    c.data.source_count = 1;
    snprintf(c.data.sources[0].path, sizeof c.data.sources[0].path, "%s", path);
    c.data.sources[0].weight = 1;
    run("1 source", &c, single_tokens);

    base_config(&c);
    int64_t blend_tokens = 0;
    for (int s = 0; s < 8; s++) {
        snprintf(path, sizeof path, "%s/source-%d", root, s);
        mkdir(path, 0755);
        for (int shard = 0; shard < 500; shard++) {
            char prefix[1100];
            snprintf(prefix, sizeof prefix, "%s/part-%04d", path, shard);
            blend_tokens += write_dataset(prefix, 10, &r);
        }
        data_source *source = &c.data.sources[c.data.source_count++];
        snprintf(source->path, sizeof source->path, "%s", path);
        source->weight = 1.0 + s;
    }
    run("8 blended sources", &c, blend_tokens);
    if (argc <= 1) {
        char command[200];
        snprintf(command, sizeof command, "rm -rf '%s'", root);
        if (system(command) != 0) fprintf(stderr, "bench_loader: could not remove %s\n", root);
    }
    return 0;
}
