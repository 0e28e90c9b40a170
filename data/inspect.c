#include "data/inspect.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "data/indexed_dataset.h"
#include "data/tokenizer.h"

enum { PREVIEW_BYTES = 300, DEFAULT_SAMPLE_DOCUMENTS = 3 };

/* Length of the well-formed UTF-8 sequence at p (RFC 3629), 0 when there is none. */
static size_t utf8_sequence(const unsigned char *p, size_t available) {
    unsigned char c = p[0];
    size_t n = c >= 0xC2 && c <= 0xDF   ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    if (n == 0 || n > available) return 0;
    unsigned char low = 0x80, high = 0xBF;
    if (c == 0xE0) low = 0xA0;
    if (c == 0xED) high = 0x9F;
    if (c == 0xF0) low = 0x90;
    if (c == 0xF4) high = 0x8F;
    if (p[1] < low || p[1] > high) return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

static void print_escaped(const char *text, size_t length) {
    const unsigned char *p = (const unsigned char *)text;
    for (size_t i = 0; i < length;) {
        unsigned char c = p[i];
        size_t n = c < 0x80 ? 1 : utf8_sequence(p + i, length - i);
        if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7F && c != '\\'))
            putchar(c);
        else if (c == '\\')
            fputs("\\\\", stdout);
        else if (c == '\r')
            fputs("\\r", stdout);
        else if (n == 2 && c == 0xC2 && p[i + 1] < 0xA0) /* C1 controls U+0080..U+009F */
            printf("\\u%04x", p[i + 1]);
        else if (n > 1)
            fwrite(p + i, 1, n, stdout);
        else
            printf("\\x%02x", c);
        i += n ? n : 1;
    }
}

static int print_document(const indexed_dataset *d, const tokenizer *t, int64_t doc, int32_t *ids,
                          status *st) {
    int64_t length = indexed_dataset_document_length(d, doc);
    /* Every token decodes to at least one byte, so this many tokens suffice. */
    int64_t count = length < PREVIEW_BYTES ? length : PREVIEW_BYTES;
    indexed_dataset_read(d, doc, 0, count, ids);
    char *text = NULL;
    size_t shown = 0;
    if (tokenizer_decode_bytes(t, ids, (size_t)count, &text, &shown, st) != 0)
        return status_prefix(st, "%s: document %" PRId64, indexed_dataset_prefix(d), doc);
    int cut = count < length || shown > PREVIEW_BYTES;
    if (shown > PREVIEW_BYTES) {
        shown = PREVIEW_BYTES;
        while (shown > 0 && ((unsigned char)text[shown] & 0xC0) == 0x80)
            shown--;
    }
    printf("document %" PRId64 " (%" PRId64 " tokens):\n", doc, length);
    print_escaped(text, shown);
    fputs(cut ? " [...]\n" : "\n", stdout);
    free(text);
    return 0;
}

static int print_sample(const indexed_dataset *d, const char *tokenizer_spec, int64_t documents,
                        status *st) {
    tokenizer *t = NULL;
    if (tokenizer_open(tokenizer_spec, &t, st) != 0) return -1;
    int32_t *ids = malloc(PREVIEW_BYTES * sizeof *ids);
    int result = ids ? 0 : status_fail(st, "out of memory");
    for (int64_t i = 0; i < documents && result == 0; i++)
        result = print_document(d, t, i, ids, st);
    free(ids);
    tokenizer_close(t);
    return result;
}

static void print_summary(const indexed_dataset *d) {
    int64_t documents = indexed_dataset_documents(d), tokens = indexed_dataset_tokens(d);
    int64_t shortest = documents ? INT64_MAX : 0, longest = 0;
    for (int64_t i = 0; i < documents; i++) {
        int64_t n = indexed_dataset_document_length(d, i);
        if (n < shortest) shortest = n;
        if (n > longest) longest = n;
    }
    printf("dataset: %s\n", indexed_dataset_prefix(d));
    const llmc_shard *shard = indexed_dataset_llmc_shard(d);
    if (shard)
        printf("format: llm.c (%s, magic %" PRId32 ", version %" PRId32 ", EOT %" PRId32 ")\n",
               llmc_shard_kind(shard), shard->magic, shard->version, shard->eot);
    else
        printf("format: %s\n", indexed_dataset_format(d));
    printf("documents: %" PRId64 "\n", documents);
    printf("tokens: %" PRId64 "\n", tokens);
    int code = indexed_dataset_dtype_code(d);
    if (code)
        printf("dtype: %s (code %d)\n", indexed_dataset_dtype(d), code);
    else
        printf("dtype: %s\n", indexed_dataset_dtype(d));
    printf("document length: min %" PRId64 ", max %" PRId64 ", mean %.2f\n", shortest, longest,
           documents ? (double)tokens / (double)documents : 0.0);
}

int inspect_dataset_sample(const char *path, const char *tokenizer_spec, int64_t sample_documents,
                           status *st) {
    indexed_dataset *d = NULL;
    if (indexed_dataset_open(path, &d, st) != 0) return -1;
    print_summary(d);
    int64_t documents = indexed_dataset_documents(d);
    if (sample_documents > documents) sample_documents = documents;
    int result = tokenizer_spec && sample_documents > 0
                     ? print_sample(d, tokenizer_spec, sample_documents, st)
                     : 0;
    indexed_dataset_close(d);
    return result;
}

int inspect_dataset(const char *path, const char *tokenizer_spec, status *st) {
    return inspect_dataset_sample(path, tokenizer_spec, DEFAULT_SAMPLE_DOCUMENTS, st);
}
