#include "data/document_writer.h"

#include <stdlib.h>

#include "data/indexed_dataset.h"

struct document_writer {
    const tokenizer *tokenizer;
    indexed_dataset_writer *output;
    int32_t *ids;
    size_t capacity;
    int64_t documents, tokens;
};

int document_writer_open(const tokenizer *t, const char *prefix, document_writer **out,
                         status *st) {
    *out = NULL;
    document_writer *w = calloc(1, sizeof *w);
    if (!w) return status_fail(st, "%s: out of memory", prefix);
    w->tokenizer = t;
    if (indexed_dataset_writer_open(prefix, tokenizer_vocab_size(t), &w->output, st) != 0) {
        free(w);
        return -1;
    }
    *out = w;
    return 0;
}

int document_writer_add(document_writer *w, const char *text, size_t length, status *st) {
    size_t count = 0;
    int32_t eod = tokenizer_eod_id(w->tokenizer);
    if (tokenizer_encode(w->tokenizer, text, length, &w->ids, &count, &w->capacity, st) != 0)
        return -1;
    if (count == w->capacity) {
        int32_t *bigger = realloc(w->ids, (w->capacity + 1) * sizeof *bigger);
        if (!bigger) return status_fail(st, "out of memory for a document of %zu tokens", count);
        w->ids = bigger;
        w->capacity++;
    }
    w->ids[count++] = eod;
    if (indexed_dataset_writer_add(w->output, w->ids, count, st) != 0) return -1;
    w->documents++;
    w->tokens += (int64_t)count;
    return 0;
}

int64_t document_writer_documents(const document_writer *w) { return w->documents; }

int64_t document_writer_tokens(const document_writer *w) { return w->tokens; }

int document_writer_close(document_writer *w, status *st) {
    int result = indexed_dataset_writer_close(w->output, st);
    free(w->ids);
    free(w);
    return result;
}

void document_writer_abort(document_writer *w) {
    if (!w) return;
    indexed_dataset_writer_abort(w->output);
    free(w->ids);
    free(w);
}
