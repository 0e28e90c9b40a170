/* Lines are appended straight into the chunk's text (a blank line is appended, then taken back),
 * so every input byte is copied once on its way from zlib's buffer to a chunk. */
#include "data/chunk_reader.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/path.h"

enum { READ_BUFFER_BYTES = 1 << 17 };

struct chunk_reader {
    const char *const *paths;
    int count, next_input;
    size_t target_bytes;
    gzFile file; /* the input being read, or NULL between inputs */
    const char *path;
    int json;
    int64_t line; /* lines read so far in the current input */
    int64_t unclaimed_bytes;
    char buffer[READ_BUFFER_BYTES];
    int length, position;
};

input_kind chunk_reader_input_kind(const char *path) {
    if (path_has_suffix(path, ".txt") || path_has_suffix(path, ".txt.gz")) return INPUT_TEXT;
    if (path_has_suffix(path, ".jsonl") || path_has_suffix(path, ".jsonl.gz"))
        return INPUT_JSON_LINES;
    return INPUT_UNKNOWN;
}

int chunk_reader_open(const char *const *paths, int count, size_t target_bytes, chunk_reader **out,
                      status *st) {
    *out = calloc(1, sizeof **out);
    if (!*out) return status_fail(st, "out of memory for the input reader");
    (*out)->paths = paths;
    (*out)->count = count;
    (*out)->target_bytes = target_bytes;
    return 0;
}

static void close_input(chunk_reader *r) {
    if (r->file) gzclose(r->file);
    r->file = NULL;
}

void chunk_reader_close(chunk_reader *r) {
    if (!r) return;
    close_input(r);
    free(r);
}

void text_chunk_free(text_chunk *c) {
    text_buffer_free(&c->text);
    free(c->ends);
    free(c->lines);
    memset(c, 0, sizeof *c);
}

static int open_input(chunk_reader *r, status *st) {
    r->path = r->paths[r->next_input++];
    r->json = chunk_reader_input_kind(r->path) == INPUT_JSON_LINES;
    r->line = 0;
    r->length = r->position = 0;
    errno = 0;
    r->file = gzopen(r->path, "rb");
    if (!r->file)
        return status_fail(st, "%s: cannot open: %s", r->path,
                           errno ? strerror(errno) : "out of memory");
    gzbuffer(r->file, READ_BUFFER_BYTES);
    if (path_has_suffix(r->path, ".gz") && gzdirect(r->file)) {
        close_input(r);
        return status_fail(st, "%s: not gzip data (the name ends in .gz)", r->path);
    }
    return 0;
}

static int refill(chunk_reader *r, status *st) {
    r->length = gzread(r->file, r->buffer, sizeof r->buffer);
    r->position = 0;
    if (r->length < 0) {
        int code;
        const char *message = gzerror(r->file, &code);
        r->length = 0;
        return status_fail(st, "%s: read error after line %" PRId64 ": %s", r->path, r->line,
                           code == Z_ERRNO ? strerror(errno) : message);
    }
    /* zlib reports a gzip stream cut short as a plain end of file plus Z_BUF_ERROR */
    int code = Z_OK;
    if (r->length == 0) gzerror(r->file, &code);
    if (code == Z_BUF_ERROR)
        return status_fail(st, "%s: read error after line %" PRId64 ": gzip data cut short",
                           r->path, r->line);
    r->unclaimed_bytes += r->length;
    return 0;
}

/* Appends the next line, without "\n" and a trailing "\r", to out.
 * 1: a line was appended; 0: end of the input; -1: error. */
static int append_line(chunk_reader *r, text_buffer *out, status *st) {
    int got_any = 0;
    for (;;) {
        if (r->position == r->length) {
            if (refill(r, st) != 0) return -1;
            if (r->length == 0) break;
        }
        got_any = 1;
        char *start = r->buffer + r->position;
        size_t available = (size_t)(r->length - r->position);
        char *newline = memchr(start, '\n', available);
        size_t take = newline ? (size_t)(newline - start) : available;
        if (text_buffer_append(out, start, take) != 0)
            return status_fail(st, "%s:%" PRId64 ": out of memory", r->path, r->line + 1);
        r->position += (int)take + (newline != NULL);
        if (newline) break;
    }
    if (!got_any) return 0;
    r->line++;
    if (out->length && out->data[out->length - 1] == '\r') out->data[--out->length] = '\0';
    return 1;
}

static int is_blank(const char *text, size_t length) {
    for (size_t i = 0; i < length; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\f' &&
            text[i] != '\v')
            return 0;
    return 1;
}

static void truncate_text(text_buffer *b, size_t length) {
    b->length = length;
    if (b->data) b->data[length] = '\0';
}

static int end_record(chunk_reader *r, text_chunk *c, int64_t line, status *st) {
    if (c->records == c->record_capacity) {
        size_t grown = c->record_capacity ? 2 * c->record_capacity : 1024;
        size_t *ends = realloc(c->ends, grown * sizeof *ends);
        if (ends) c->ends = ends;
        int64_t *lines = ends ? realloc(c->lines, grown * sizeof *lines) : NULL;
        if (!lines) return status_fail(st, "%s:%" PRId64 ": out of memory", r->path, line);
        c->lines = lines;
        c->record_capacity = grown;
    }
    c->ends[c->records] = c->text.length;
    c->lines[c->records++] = line;
    return 0;
}

/* Reads records of the current input into c until it holds target_bytes or the input ends.
 * 1: the chunk is full; 0: the input ended; -1: error. */
static int read_records(chunk_reader *r, text_chunk *c, status *st) {
    int in_document = 0;
    int64_t first_line = 0;
    for (;;) {
        size_t before = c->text.length;
        if (in_document && text_buffer_append(&c->text, "\n", 1) != 0)
            return status_fail(st, "%s:%" PRId64 ": out of memory", r->path, r->line);
        size_t line_start = c->text.length;
        int got = append_line(r, &c->text, st);
        if (got < 0) return -1;
        int blank = got == 0 || is_blank(c->text.data + line_start, c->text.length - line_start);
        if (blank) truncate_text(&c->text, before);
        if (!blank && !in_document) first_line = r->line;
        int record_ends = r->json ? !blank : blank && in_document;
        in_document = !r->json && !blank;
        if (record_ends && end_record(r, c, r->json ? r->line : first_line, st) != 0) return -1;
        if (got == 0) return 0;
        if (record_ends && c->text.length >= r->target_bytes) return 1;
    }
}

int chunk_reader_next(chunk_reader *r, text_chunk *c, status *st) {
    c->text.length = 0;
    c->records = 0;
    if (!r->file) {
        if (r->next_input == r->count) return 0;
        if (open_input(r, st) != 0) return -1;
    }
    c->path = r->path;
    c->json = r->json;
    int full = read_records(r, c, st);
    if (full < 0) return -1;
    if (full == 0) close_input(r);
    c->input_bytes = r->unclaimed_bytes;
    r->unclaimed_bytes = 0;
    return 1;
}
