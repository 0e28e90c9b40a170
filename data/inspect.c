#include "data/inspect.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/indexed_dataset.h"
#include "data/tokenizer.h"

enum { PREVIEW_BYTES = 300 };

static int print_first_document(const indexed_dataset *d, const char *tokenizer_spec,
                                status *st) {
    tokenizer *t = NULL;
    if (tokenizer_open(tokenizer_spec, &t, st) != 0) return -1;
    int64_t length = indexed_dataset_document_length(d, 0);
    /* Every token decodes to at least one byte, so this many tokens suffice. */
    int64_t count = length < PREVIEW_BYTES ? length : PREVIEW_BYTES;
    int32_t *ids = malloc((size_t)(count ? count : 1) * sizeof *ids);
    char *text = NULL;
    int result = ids ? 0 : status_fail(st, "out of memory");
    if (result == 0) {
        indexed_dataset_read(d, 0, 0, count, ids);
        result = tokenizer_decode(t, ids, (size_t)count, &text, st);
    }
    if (result == 0) {
        if (strlen(text) > PREVIEW_BYTES) text[PREVIEW_BYTES] = '\0';
        printf("first document (%" PRId64 " tokens, first %d bytes decoded):\n%s\n", length,
               PREVIEW_BYTES, text);
    } else {
        status_prefix(st, "%s: first document", indexed_dataset_prefix(d));
    }
    free(text);
    free(ids);
    tokenizer_close(t);
    return result;
}

int inspect_dataset(const char *prefix, const char *tokenizer_spec, status *st) {
    char base[4096];
    size_t length = strlen(prefix);
    if (length >= sizeof base) return status_fail(st, "%s: path too long", prefix);
    memcpy(base, prefix, length + 1);
    if (length > 4 && (strcmp(base + length - 4, ".bin") == 0 ||
                       strcmp(base + length - 4, ".idx") == 0))
        base[length - 4] = '\0';

    indexed_dataset *d = NULL;
    if (indexed_dataset_open(base, &d, st) != 0) return -1;
    int64_t documents = indexed_dataset_documents(d), tokens = indexed_dataset_tokens(d);
    int64_t shortest = documents ? INT64_MAX : 0, longest = 0;
    for (int64_t i = 0; i < documents; i++) {
        int64_t n = indexed_dataset_document_length(d, i);
        if (n < shortest) shortest = n;
        if (n > longest) longest = n;
    }
    int code = indexed_dataset_dtype_code(d);
    printf("dataset: %s\n", base);
    printf("documents: %" PRId64 "\n", documents);
    printf("tokens: %" PRId64 "\n", tokens);
    printf("dtype: %s (code %d)\n", indexed_dataset_dtype_name(code), code);
    printf("document length: min %" PRId64 ", max %" PRId64 ", mean %.2f\n", shortest, longest,
           documents ? (double)tokens / (double)documents : 0.0);
    int result = tokenizer_spec && documents > 0 ? print_first_document(d, tokenizer_spec, st) : 0;
    indexed_dataset_close(d);
    return result;
}
