/* memorization.c on a case worked out in advance. A tiny random model (large init, so its argmax
 * is never a near-tie) writes its own greedy continuations: each document is a random prefix, the
 * model's greedy continuation computed here one document at a time in the last row of a batch of
 * noise, then random tail tokens. The model therefore reproduces every document exactly, except
 * where the test changed one continuation token (one miss, since decoding feeds the model's own
 * tokens, not the document's). Documents too short are interleaved and must be skipped (one of
 * them a single token short); the documents are spread over several micro-batches with a partial
 * last one. Also: the documents limit, and the argument and no-document errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/indexed_dataset.h"
#include "train/device.h"
#include "train/memorization.h"

enum { VOCAB = 48, SEQ_LEN = 20, MICRO_BATCH = 3, PREFIX = 6, CONTINUATION = 9, LONG_DOCS = 7 };

static char dir[] = "/tmp/cairn-test-memorization-XXXXXX";

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static int32_t random_token(void) {
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return (int32_t)((rng_state >> 33) % VOCAB);
}

/* The greedy continuation of `prefix` computed document by document: the document sits in the
 * last row of the micro-batch, the other rows hold random tokens (rows must not interact). */
static void reference_continuation(model *m, const int32_t *prefix, int32_t *out) {
    int T = m->seq_len, B = m->micro_batch, V = m->vocab;
    int32_t tokens[MICRO_BATCH * (SEQ_LEN + 1)];
    for (int i = 0; i < B * (T + 1); i++) tokens[i] = random_token();
    int32_t *row = tokens + (size_t)(B - 1) * (T + 1);
    memcpy(row, prefix, sizeof *prefix * PREFIX);
    float logits[VOCAB];
    for (int g = 0; g < CONTINUATION; g++) {
        model_forward(m, tokens, NULL, 0);
        size_t position = (size_t)(B - 1) * T + PREFIX + g - 1;
        m->ops->act_to_float(logits, (const char *)m->logits + position * V * m->ops->act_bytes,
                             V);
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        row[PREFIX + g] = out[g] = best;
    }
}

/* Writes the documents; returns 0 or -1. changed[d] is the continuation position whose token
 * differs from the model's choice in long document d, or -1. */
static int write_dataset(model *m, const char *prefix_path, const int *changed, status *st) {
    indexed_dataset_writer *w;
    if (indexed_dataset_writer_open(prefix_path, VOCAB, &w, st) != 0) return -1;
    int32_t doc[PREFIX + CONTINUATION + 4];
    int rc = 0;
    for (int d = 0; rc == 0 && d < LONG_DOCS; d++) {
        if (d % 3 == 1) {  /* too short even for a continuation one token shorter: skipped */
            for (int i = 0; i < PREFIX + CONTINUATION - 2; i++) doc[i] = random_token();
            rc = indexed_dataset_writer_add(w, doc, PREFIX + CONTINUATION - 2, st);
        }
        for (int i = 0; i < PREFIX; i++) doc[i] = random_token();
        reference_continuation(m, doc, doc + PREFIX);
        if (changed[d] >= 0) {
            int32_t *token = doc + PREFIX + changed[d];
            *token = (*token + 1 + random_token() % (VOCAB - 1)) % VOCAB;
        }
        int tail = d % 4;  /* extra tokens after the continuation are ignored */
        for (int i = 0; i < tail; i++) doc[PREFIX + CONTINUATION + i] = random_token();
        if (rc == 0) rc = indexed_dataset_writer_add(w, doc, PREFIX + CONTINUATION + tail, st);
    }
    /* last, one token short of prefix + continuation: skipped */
    if (rc == 0) rc = indexed_dataset_writer_add(w, doc, PREFIX + CONTINUATION - 1, st);
    if (rc != 0) {
        indexed_dataset_writer_abort(w);
        return -1;
    }
    return indexed_dataset_writer_close(w, st);
}

static int evaluate(model *m, const indexed_dataset *data, int64_t documents, int prefix,
                    int continuation, memorization_result *r, status *st) {
    memorization_options options = {
        .documents = documents, .prefix = prefix, .continuation = continuation};
    st->message[0] = '\0';
    return memorization_evaluate(m, data, &options, r, st);
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    status st = {{0}};
    config c;
    config_defaults(&c);
    c.model.layers = 2;
    c.model.d_model = 32;
    c.model.heads = 4;
    c.model.kv_heads = 2;
    c.model.ffn = 48;
    c.model.vocab = VOCAB;
    c.model.seq_len = SEQ_LEN;
    c.model.init_std = 1.0;
    c.train.micro_batch = c.train.global_batch = MICRO_BATCH;
    const ops *o;
    char device[256];
    model m;
    if (config_resolve(&c, 1, &st) != 0 ||
        device_select(DEVICE_CPU, 0, &o, device, sizeof device, &st) != 0 ||
        model_create(&m, o, &c, -1, &st) != 0) {
        fprintf(stderr, "setup: %s\n", st.message);
        return 1;
    }
    model_init_weights(&m, 7);

    /* long documents 1 and 4 differ from the model at the first and the last continuation
     * token; the others are the model's own continuation */
    const int changed[LONG_DOCS] = {-1, 0, -1, -1, CONTINUATION - 1, -1, -1};
    char prefix_path[sizeof dir + 16];
    snprintf(prefix_path, sizeof prefix_path, "%s/docs", dir);
    indexed_dataset *data = NULL;
    if (write_dataset(&m, prefix_path, changed, &st) != 0 ||
        indexed_dataset_open(prefix_path, &data, &st) != 0) {
        fprintf(stderr, "dataset: %s\n", st.message);
        return 1;
    }
    CHECK(indexed_dataset_documents(data) == LONG_DOCS + 3);

    memorization_result r;
    double miss = 1.0 / CONTINUATION;
    CHECK_MSG(evaluate(&m, data, INT64_MAX, PREFIX, CONTINUATION, &r, &st) == 0, "%s", st.message);
    CHECK(r.documents == LONG_DOCS);
    CHECK_NEAR(r.exact_match, (LONG_DOCS - 2.0) / LONG_DOCS, 1e-12);
    CHECK_NEAR(r.token_match, (LONG_DOCS - 2 * miss) / LONG_DOCS, 1e-12);

    /* the first two long documents: one exact, one with a miss */
    CHECK(evaluate(&m, data, 2, PREFIX, CONTINUATION, &r, &st) == 0);
    CHECK(r.documents == 2);
    CHECK_NEAR(r.exact_match, 0.5, 1e-12);
    CHECK_NEAR(r.token_match, (2 - miss) / 2, 1e-12);

    /* a shorter continuation ends before the last document's changed token */
    CHECK(evaluate(&m, data, 5, PREFIX, CONTINUATION - 1, &r, &st) == 0);
    CHECK(r.documents == 5);
    CHECK_NEAR(r.exact_match, 4.0 / 5, 1e-12);
    CHECK_NEAR(r.token_match, (5 - 1.0 / (CONTINUATION - 1)) / 5, 1e-12);

    CHECK(evaluate(&m, data, 3, PREFIX, SEQ_LEN - PREFIX + 1, &r, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "model.seq_len (20)");
    CHECK(evaluate(&m, data, 3, 0, CONTINUATION, &r, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "at least 1");
    CHECK(evaluate(&m, data, 0, PREFIX, CONTINUATION, &r, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "documents (0)");
    CHECK(evaluate(&m, data, 3, PREFIX, SEQ_LEN - PREFIX, &r, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "no document holds prefix + continuation = 20 tokens");
    CHECK(r.documents == 0);

    indexed_dataset_close(data);
    model_destroy(&m);
    char path[sizeof prefix_path + 8];
    snprintf(path, sizeof path, "%s.bin", prefix_path);
    unlink(path);
    snprintf(path, sizeof path, "%s.idx", prefix_path);
    unlink(path);
    rmdir(dir);
    return check_summary("test_memorization");
}
