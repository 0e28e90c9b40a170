/* A validating recursive-descent JSON reader that keeps only one string field.
 * Other values are checked and skipped, so a malformed line is always reported
 * even when the wanted field came before the error. */
#include "data/json_text.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DEPTH = 512 };

typedef struct parser {
    const char *start, *p, *end;
    char *error;
    size_t error_size;
} parser;

__attribute__((format(printf, 2, 3))) static int fail(parser *q, const char *format, ...) {
    char reason[128];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof reason, format, args);
    va_end(args);
    snprintf(q->error, q->error_size, "invalid JSON (%s at column %td)", reason,
             q->p - q->start + 1);
    return -1;
}

static void skip_space(parser *q) {
    while (q->p < q->end && (*q->p == ' ' || *q->p == '\t' || *q->p == '\n' || *q->p == '\r'))
        q->p++;
}

static int out_of_memory(parser *q) {
    snprintf(q->error, q->error_size, "out of memory");
    return -1;
}

static int hex_quad(parser *q, unsigned *value) {
    if (q->end - q->p < 4) return fail(q, "truncated \\u escape");
    *value = 0;
    for (int i = 0; i < 4; i++) {
        char c = q->p[i];
        int digit = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
        if (digit < 0) return fail(q, "bad hex digit in \\u escape");
        *value = *value * 16 + (unsigned)digit;
    }
    q->p += 4;
    return 0;
}

static int append_code_point(text_buffer *out, unsigned cp) {
    char bytes[4];
    size_t n;
    if (cp < 0x80) {
        bytes[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        bytes[0] = (char)(0xC0 | cp >> 6);
        bytes[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        bytes[0] = (char)(0xE0 | cp >> 12);
        bytes[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        bytes[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        bytes[0] = (char)(0xF0 | cp >> 18);
        bytes[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        bytes[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        bytes[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return text_buffer_append(out, bytes, n);
}

/* After "\u" has been consumed: one escape, or a surrogate pair of two. */
static int unicode_escape(parser *q, text_buffer *out) {
    unsigned cp;
    if (hex_quad(q, &cp) != 0) return -1;
    if (cp >= 0xD800 && cp <= 0xDBFF && q->end - q->p >= 6 && q->p[0] == '\\' && q->p[1] == 'u') {
        const char *after_high = q->p;
        unsigned low;
        q->p += 2;
        if (hex_quad(q, &low) != 0) return -1;
        if (low >= 0xDC00 && low <= 0xDFFF)
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        else
            q->p = after_high; /* the second escape is decoded on its own */
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
    return out && append_code_point(out, cp) != 0 ? out_of_memory(q) : 0;
}

/* Parses a string at q->p (which is '"'); appends its decoded bytes to out if not NULL. */
static int parse_string(parser *q, text_buffer *out) {
    q->p++;
    for (;;) {
        const char *run = q->p;
        while (q->p < q->end && *q->p != '"' && *q->p != '\\' && (unsigned char)*q->p >= 0x20)
            q->p++;
        if (out && text_buffer_append(out, run, (size_t)(q->p - run)) != 0) return out_of_memory(q);
        if (q->p >= q->end) return fail(q, "unterminated string");
        char c = *q->p;
        if (c == '"') {
            q->p++;
            return 0;
        }
        if (c != '\\') return fail(q, "control character in string");
        q->p++;
        if (q->p >= q->end) return fail(q, "unterminated string");
        char escape = *q->p++;
        if (escape == 'u') {
            if (unicode_escape(q, out) != 0) return -1;
            continue;
        }
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *found = strchr(from, escape);
        if (!found || !escape) {
            q->p--;
            return fail(q, "bad escape");
        }
        if (out && text_buffer_append(out, to + (found - from), 1) != 0) return out_of_memory(q);
    }
}

static int digits(parser *q) {
    const char *first = q->p;
    while (q->p < q->end && *q->p >= '0' && *q->p <= '9') q->p++;
    return q->p > first ? 0 : fail(q, "expected a digit");
}

static int parse_number(parser *q) {
    if (*q->p == '-') q->p++;
    if (q->p < q->end && *q->p == '0')
        q->p++;
    else if (digits(q) != 0)
        return -1;
    if (q->p < q->end && *q->p == '.') {
        q->p++;
        if (digits(q) != 0) return -1;
    }
    if (q->p < q->end && (*q->p == 'e' || *q->p == 'E')) {
        q->p++;
        if (q->p < q->end && (*q->p == '+' || *q->p == '-')) q->p++;
        if (digits(q) != 0) return -1;
    }
    return 0;
}

static int parse_value(parser *q, int depth);

/* Object or array at q->p. For the top-level object (field != NULL) the
 * value of key `field` is decoded into value and *found is set. */
static int parse_container(parser *q, int depth, const char *field, text_buffer *key,
                           text_buffer *value, int *found) {
    if (depth > MAX_DEPTH) return fail(q, "nesting deeper than %d", MAX_DEPTH);
    int object = *q->p == '{';
    char close = object ? '}' : ']';
    q->p++;
    skip_space(q);
    if (q->p < q->end && *q->p == close) {
        q->p++;
        return 0;
    }
    for (;;) {
        int wanted = 0;
        if (object) {
            if (q->p >= q->end || *q->p != '"') return fail(q, "expected a string key");
            if (key) key->length = 0;
            if (parse_string(q, key) != 0) return -1;
            wanted = field && key->length == strlen(field) && memcmp(key->data, field,
                                                                     key->length) == 0;
            skip_space(q);
            if (q->p >= q->end || *q->p != ':') return fail(q, "expected ':'");
            q->p++;
            skip_space(q);
        }
        if (wanted) {
            if (q->p >= q->end || *q->p != '"') {
                snprintf(q->error, q->error_size, "field \"%s\" is not a string", field);
                return -1;
            }
            value->length = 0;
            if (parse_string(q, value) != 0) return -1;
            *found = 1;
        } else if (parse_value(q, depth + 1) != 0) {
            return -1;
        }
        skip_space(q);
        if (q->p < q->end && *q->p == ',') {
            q->p++;
            skip_space(q);
            continue;
        }
        if (q->p < q->end && *q->p == close) {
            q->p++;
            return 0;
        }
        return fail(q, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int parse_literal(parser *q, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(q->end - q->p) < n || memcmp(q->p, word, n) != 0)
        return fail(q, "unexpected character");
    q->p += n;
    return 0;
}

static int parse_value(parser *q, int depth) {
    if (q->p >= q->end) return fail(q, "expected a value");
    switch (*q->p) {
    case '{': case '[': return parse_container(q, depth, NULL, NULL, NULL, NULL);
    case '"': return parse_string(q, NULL);
    case 't': return parse_literal(q, "true");
    case 'f': return parse_literal(q, "false");
    case 'n': return parse_literal(q, "null");
    default:
        if (*q->p == '-' || (*q->p >= '0' && *q->p <= '9')) return parse_number(q);
        return fail(q, "unexpected character");
    }
}

int json_text_field(const char *line, size_t length, const char *field, text_buffer *value,
                    char *error, size_t error_size) {
    parser q = {line, line, line + length, error, error_size};
    skip_space(&q);
    if (q.p >= q.end || *q.p != '{') {
        if (q.p < q.end && parse_value(&q, 1) == 0) {
            snprintf(error, error_size, "expected a JSON object");
            return -1;
        }
        return q.p >= q.end ? fail(&q, "expected an object") : -1;
    }
    text_buffer key = {0};
    int found = 0;
    int result = parse_container(&q, 1, field, &key, value, &found);
    text_buffer_free(&key);
    if (result != 0) return -1;
    skip_space(&q);
    if (q.p < q.end) return fail(&q, "trailing characters after the object");
    return found;
}
