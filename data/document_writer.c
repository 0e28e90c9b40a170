#include "data/document_writer.h"

#include <stdlib.h>

#include "data/indexed_dataset.h"

struct document_writer {
    tokenizer_encoder *encoder;
    int32_t eod;
    indexed_dataset_writer *output;
    int32_t *ids;
    size_t capacity;
    int64_t documents, tokens;
};

int document_encode(tokenizer_encoder *e, int32_t eod, const char *text, size_t length,
                    int32_t **ids, size_t *count, size_t *capacity, status *st) {
    if (tokenizer_encoder_encode(e, text, length, ids, count, capacity, st) != 0) return -1;
    if (*count == *capacity) {
        size_t grown = *capacity ? 2 * *capacity : 256;
        int32_t *bigger = realloc(*ids, grown * sizeof *bigger);
        if (!bigger) return status_fail(st, "out of memory for a document of %zu tokens", *count);
        *ids = bigger;
        *capacity = grown;
    }
    (*ids)[(*count)++] = eod;
    return 0;
}

int document_writer_open(const tokenizer *t, const char *prefix, document_writer **out,
                         status *st) {
    *out = NULL;
    if (tokenizer_eod_id(t) < 0)
        return status_fail(st,
                           "%s: the tokenizer has no end-of-document token to end documents "
                           "with",
                           prefix);
    document_writer *w = calloc(1, sizeof *w);
    if (!w) return status_fail(st, "%s: out of memory", prefix);
    w->eod = tokenizer_eod_id(t);
    if (tokenizer_encoder_open(t, &w->encoder, st) != 0) {
        free(w);
        return -1;
    }
    if (indexed_dataset_writer_open(prefix, tokenizer_vocab_size(t), &w->output, st) != 0) {
        tokenizer_encoder_close(w->encoder);
        free(w);
        return -1;
    }
    *out = w;
    return 0;
}

int document_writer_add_tokens(document_writer *w, const int32_t *ids, size_t count, status *st) {
    if (indexed_dataset_writer_add(w->output, ids, count, st) != 0) return -1;
    w->documents++;
    w->tokens += (int64_t)count;
    return 0;
}

int document_writer_add(document_writer *w, const char *text, size_t length, status *st) {
    size_t count = 0;
    if (document_encode(w->encoder, w->eod, text, length, &w->ids, &count, &w->capacity, st) != 0)
        return -1;
    return document_writer_add_tokens(w, w->ids, count, st);
}

int64_t document_writer_documents(const document_writer *w) { return w->documents; }

int64_t document_writer_tokens(const document_writer *w) { return w->tokens; }

static void writer_free(document_writer *w) {
    tokenizer_encoder_close(w->encoder);
    free(w->ids);
    free(w);
}

int document_writer_close(document_writer *w, status *st) {
    int result = indexed_dataset_writer_close(w->output, st);
    writer_free(w);
    return result;
}

void document_writer_abort(document_writer *w) {
    if (!w) return;
    indexed_dataset_writer_abort(w->output);
    writer_free(w);
}
