/* Streaming text/JSONL readers for `cairn prepare`: inputs are read through
 * zlib (which passes plain files through unchanged) one line at a time, so
 * input size is bounded by disk, not memory. */
#include "data/prepare.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "data/document_writer.h"
#include "data/json_text.h"
#include "data/tokenizer.h"

typedef struct line_reader {
    const char *path;
    gzFile file;
    char chunk[1 << 16];
    int chunk_length, chunk_position;
    text_buffer line;    /* current line without its "\n" (and "\r") */
    int64_t number;      /* 1-based number of the current line */
    int64_t bytes;
} line_reader;

static int line_reader_open(line_reader *r, const char *path, status *st) {
    memset(r, 0, sizeof *r);
    r->path = path;
    errno = 0;
    r->file = gzopen(path, "rb");
    if (!r->file)
        return status_fail(st, "%s: cannot open: %s", path, errno ? strerror(errno) : "zlib error");
    gzbuffer(r->file, 1 << 17);
    return text_buffer_append(&r->line, "", 0) == 0 ? 0 : status_fail(st, "out of memory");
}

static void line_reader_close(line_reader *r) {
    if (r->file) gzclose(r->file);
    text_buffer_free(&r->line);
}

/* 1: a line is in r->line; 0: end of file; -1: read error. */
static int line_reader_next(line_reader *r, status *st) {
    r->line.length = 0;
    int got_any = 0;
    for (;;) {
        if (r->chunk_position == r->chunk_length) {
            r->chunk_length = gzread(r->file, r->chunk, sizeof r->chunk);
            r->chunk_position = 0;
            if (r->chunk_length < 0) {
                int code;
                const char *message = gzerror(r->file, &code);
                return status_fail(st, "%s: read error: %s", r->path,
                                   code == Z_ERRNO ? strerror(errno) : message);
            }
            if (r->chunk_length == 0) break;
            r->bytes += r->chunk_length;
        }
        got_any = 1;
        char *start = r->chunk + r->chunk_position;
        size_t available = (size_t)(r->chunk_length - r->chunk_position);
        char *newline = memchr(start, '\n', available);
        size_t take = newline ? (size_t)(newline - start) : available;
        if (text_buffer_append(&r->line, start, take) != 0) return status_fail(st, "out of memory");
        r->chunk_position += (int)take + (newline != NULL);
        if (newline) break;
    }
    if (!got_any) return 0;
    r->number++;
    if (r->line.length && r->line.data[r->line.length - 1] == '\r')
        r->line.data[--r->line.length] = '\0';
    return 1;
}

static int is_blank(const char *text, size_t length) {
    for (size_t i = 0; i < length; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\f' &&
            text[i] != '\v')
            return 0;
    return 1;
}

static int add_document(document_writer *w, const text_buffer *text, status *st) {
    return text->length ? document_writer_add(w, text->data, text->length, st) : 0;
}

static int read_text(line_reader *r, document_writer *w, status *st) {
    text_buffer document = {0};
    int result;
    while ((result = line_reader_next(r, st)) == 1) {
        result = 0;
        if (is_blank(r->line.data, r->line.length)) {
            result = add_document(w, &document, st);
            document.length = 0;
        } else if ((document.length && text_buffer_append(&document, "\n", 1) != 0) ||
                   text_buffer_append(&document, r->line.data, r->line.length) != 0) {
            result = status_fail(st, "out of memory");
        }
        if (result != 0) break;
    }
    if (result == 0) result = add_document(w, &document, st);
    text_buffer_free(&document);
    return result;
}

static int read_json_lines(line_reader *r, const char *field, document_writer *w, status *st) {
    text_buffer text = {0};
    char reason[256];
    int result;
    while ((result = line_reader_next(r, st)) == 1) {
        if (is_blank(r->line.data, r->line.length)) continue;
        text.length = 0;
        int found = json_text_field(r->line.data, r->line.length, field, &text, reason,
                                    sizeof reason);
        if (found < 0)
            result = status_fail(st, "%s:%" PRId64 ": %s", r->path, r->number, reason);
        else if (found == 0)
            result = status_fail(st, "%s:%" PRId64 ": no \"%s\" field", r->path, r->number, field);
        else
            result = add_document(w, &text, st);
        if (result != 0) break;
    }
    text_buffer_free(&text);
    return result;
}

static int has_suffix(const char *text, const char *suffix) {
    size_t n = strlen(text), m = strlen(suffix);
    return n >= m && strcmp(text + n - m, suffix) == 0;
}

static int read_input(const char *path, const char *field, document_writer *w, int64_t *bytes,
                      status *st) {
    int json = has_suffix(path, ".jsonl") || has_suffix(path, ".jsonl.gz");
    if (!json && !has_suffix(path, ".txt") && !has_suffix(path, ".txt.gz"))
        return status_fail(st, "%s: unknown input type (expected .txt, .jsonl or .jsonl.gz)",
                           path);
    line_reader *r = malloc(sizeof *r);
    if (!r) return status_fail(st, "%s: out of memory", path);
    int result = line_reader_open(r, path, st);
    if (result == 0) result = json ? read_json_lines(r, field, w, st) : read_text(r, w, st);
    *bytes += r->bytes;
    line_reader_close(r);
    free(r);
    return result;
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int prepare_dataset(const char *tokenizer_spec, const char *output_prefix, const char *field,
                    const char *const *inputs, int input_count, prepare_summary *summary,
                    status *st) {
    double start = now_seconds();
    memset(summary, 0, sizeof *summary);
    if (!field) field = "text";
    tokenizer *t = NULL;
    document_writer *w = NULL;
    if (tokenizer_open(tokenizer_spec, &t, st) != 0) return -1;
    if (document_writer_open(t, output_prefix, &w, st) != 0) {
        tokenizer_close(t);
        return -1;
    }
    for (int i = 0; i < input_count; i++) {
        if (read_input(inputs[i], field, w, &summary->input_bytes, st) != 0) {
            document_writer_abort(w);
            tokenizer_close(t);
            return -1;
        }
    }
    summary->documents = document_writer_documents(w);
    summary->tokens = document_writer_tokens(w);
    int result = document_writer_close(w, st);
    tokenizer_close(t);
    summary->seconds = now_seconds() - start;
    return result;
}
