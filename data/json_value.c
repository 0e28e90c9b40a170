/* Recursive-descent JSON parser. Children of an open container wait on a
 * scratch stack and are copied into the document's arena when it closes, so
 * every array and object ends up contiguous and the tree needs no per-node
 * allocation. */
#include "data/json_value.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/bpe_unicode.h"
#include "data/text_buffer.h"

enum { MAX_DEPTH = 512, MIN_BLOCK = 4096 };

typedef struct block {
    struct block *next;
    size_t used, size;
    alignas(max_align_t) unsigned char data[];
} block;

struct json_document {
    block *blocks;
    size_t next_block_size;
    json_value root;
};

typedef struct parser {
    const char *start, *p, *end;
    json_error *error;
    json_document *document;
    json_value *values; /* items of the open arrays, innermost last */
    size_t value_count, value_capacity;
    json_member *members; /* members of the open objects, innermost last */
    size_t member_count, member_capacity;
    text_buffer text; /* the string being decoded */
} parser;

static void *arena_allocate(json_document *d, size_t size) {
    size = (size + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    block *b = d->blocks;
    if (!b || b->size - b->used < size) {
        size_t capacity = d->next_block_size > size ? d->next_block_size : size;
        b = malloc(sizeof *b + capacity);
        if (!b) return NULL;
        b->next = d->blocks;
        b->used = 0;
        b->size = capacity;
        d->blocks = b;
        d->next_block_size = 2 * capacity;
    }
    void *memory = b->data + b->used;
    b->used += size;
    return memory;
}

__attribute__((format(printf, 2, 3))) static int fail(parser *q, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(q->error->reason, sizeof q->error->reason, format, args);
    va_end(args);
    q->error->offset = (size_t)(q->p - q->start);
    return -1;
}

static int out_of_memory(parser *q) { return fail(q, "out of memory"); }

static void skip_space(parser *q) {
    while (q->p < q->end && (*q->p == ' ' || *q->p == '\t' || *q->p == '\n' || *q->p == '\r'))
        q->p++;
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
    return text_buffer_append(out, bytes, utf8_encode(cp, bytes));
}

/* After "\u" has been consumed: one escape, or a surrogate pair of two. */
static int unicode_escape(parser *q) {
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
    return append_code_point(&q->text, cp) != 0 ? out_of_memory(q) : 0;
}

/* Decodes the string at q->p (which is '"') into q->text. */
static int decode_string(parser *q) {
    q->text.length = 0;
    if (text_buffer_append(&q->text, "", 0) != 0) return out_of_memory(q);
    q->p++;
    for (;;) {
        const char *run = q->p;
        while (q->p < q->end && *q->p != '"' && *q->p != '\\' && (unsigned char)*q->p >= 0x20)
            q->p++;
        if (text_buffer_append(&q->text, run, (size_t)(q->p - run)) != 0) return out_of_memory(q);
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
            if (unicode_escape(q) != 0) return -1;
            continue;
        }
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *found = strchr(from, escape);
        if (!found || !escape) {
            q->p--;
            return fail(q, "bad escape");
        }
        if (text_buffer_append(&q->text, to + (found - from), 1) != 0) return out_of_memory(q);
    }
}

/* Decodes a string and copies it into the arena. */
static int parse_string(parser *q, const char **string, size_t *length) {
    if (decode_string(q) != 0) return -1;
    char *copy = arena_allocate(q->document, q->text.length + 1);
    if (!copy) return out_of_memory(q);
    memcpy(copy, q->text.data, q->text.length + 1);
    *string = copy;
    *length = q->text.length;
    return 0;
}

static int digits(parser *q) {
    const char *first = q->p;
    while (q->p < q->end && *q->p >= '0' && *q->p <= '9')
        q->p++;
    return q->p > first ? 0 : fail(q, "expected a digit");
}

static int parse_number(parser *q, json_value *v) {
    const char *first = q->p;
    v->type = JSON_NUMBER;
    v->is_integer = 1;
    if (*q->p == '-') q->p++;
    if (q->p < q->end && *q->p == '0')
        q->p++;
    else if (digits(q) != 0)
        return -1;
    if (q->p < q->end && *q->p == '.') {
        q->p++;
        v->is_integer = 0;
        if (digits(q) != 0) return -1;
    }
    if (q->p < q->end && (*q->p == 'e' || *q->p == 'E')) {
        q->p++;
        v->is_integer = 0;
        if (q->p < q->end && (*q->p == '+' || *q->p == '-')) q->p++;
        if (digits(q) != 0) return -1;
    }
    /* strtod needs a terminated copy; the grammar above already validated it */
    q->text.length = 0;
    if (text_buffer_append(&q->text, first, (size_t)(q->p - first)) != 0) return out_of_memory(q);
    v->as.number = strtod(q->text.data, NULL);
    return 0;
}

static int parse_literal(parser *q, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(q->end - q->p) < n || memcmp(q->p, word, n) != 0)
        return fail(q, "unexpected character");
    q->p += n;
    return 0;
}

/* Makes room for one more item on a scratch stack; 0, or -1 when out of memory. */
static int reserve(parser *q, void **items, size_t count, size_t *capacity, size_t item_size) {
    if (count < *capacity) return 0;
    size_t grown = *capacity ? 2 * *capacity : 64;
    void *bigger = realloc(*items, grown * item_size);
    if (!bigger) return out_of_memory(q);
    *items = bigger;
    *capacity = grown;
    return 0;
}

/* Moves the children pushed since `base` from the scratch stack to the arena. */
static int close_container(parser *q, json_value *v, size_t base) {
    int object = v->type == JSON_OBJECT;
    size_t count = (object ? q->member_count : q->value_count) - base;
    size_t size = count * (object ? sizeof(json_member) : sizeof(json_value));
    void *children = count ? arena_allocate(q->document, size) : NULL;
    if (count && !children) return out_of_memory(q);
    if (object) {
        if (count) memcpy(children, q->members + base, size);
        v->as.members = children;
        q->member_count = base;
    } else {
        if (count) memcpy(children, q->values + base, size);
        v->as.items = children;
        q->value_count = base;
    }
    v->length = count;
    return 0;
}

static int parse_value(parser *q, json_value *v, int depth);

/* A child is parsed into a local and pushed afterwards: its own children come
 * and go on the same scratch stacks, which may move when they grow. */
static int parse_container(parser *q, json_value *v, int depth) {
    if (depth > MAX_DEPTH) return fail(q, "nesting deeper than %d", MAX_DEPTH);
    int object = *q->p == '{';
    char close = object ? '}' : ']';
    v->type = object ? JSON_OBJECT : JSON_ARRAY;
    size_t base = object ? q->member_count : q->value_count;
    q->p++;
    skip_space(q);
    if (q->p < q->end && *q->p == close) {
        q->p++;
        return close_container(q, v, base);
    }
    for (;;) {
        json_value child;
        memset(&child, 0, sizeof child);
        const char *key = NULL;
        size_t key_length = 0;
        if (object) {
            if (q->p >= q->end || *q->p != '"') return fail(q, "expected a string key");
            if (parse_string(q, &key, &key_length) != 0) return -1;
            skip_space(q);
            if (q->p >= q->end || *q->p != ':') return fail(q, "expected ':'");
            q->p++;
            skip_space(q);
        }
        if (parse_value(q, &child, depth + 1) != 0) return -1;
        if (object) {
            if (reserve(q, (void **)&q->members, q->member_count, &q->member_capacity,
                        sizeof *q->members) != 0)
                return -1;
            q->members[q->member_count++] = (json_member){key, key_length, child};
        } else {
            if (reserve(q, (void **)&q->values, q->value_count, &q->value_capacity,
                        sizeof *q->values) != 0)
                return -1;
            q->values[q->value_count++] = child;
        }
        skip_space(q);
        if (q->p < q->end && *q->p == ',') {
            q->p++;
            skip_space(q);
            continue;
        }
        if (q->p < q->end && *q->p == close) {
            q->p++;
            return close_container(q, v, base);
        }
        return fail(q, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int parse_value(parser *q, json_value *v, int depth) {
    if (q->p >= q->end) return fail(q, "expected a value");
    switch (*q->p) {
    case '{':
    case '[':
        return parse_container(q, v, depth);
    case '"':
        v->type = JSON_STRING;
        return parse_string(q, &v->as.string, &v->length);
    case 't':
        v->type = JSON_TRUE;
        return parse_literal(q, "true");
    case 'f':
        v->type = JSON_FALSE;
        return parse_literal(q, "false");
    case 'n':
        v->type = JSON_NULL;
        return parse_literal(q, "null");
    default:
        if (*q->p == '-' || (*q->p >= '0' && *q->p <= '9')) return parse_number(q, v);
        return fail(q, "unexpected character");
    }
}

int json_parse(const char *text, size_t length, json_document **out, json_error *error) {
    *out = NULL;
    json_document *d = calloc(1, sizeof *d);
    parser q = {.start = text, .p = text, .end = text + length, .error = error, .document = d};
    if (!d) return out_of_memory(&q);
    /* one block usually holds the whole tree of a small document */
    d->next_block_size = length * 2 > MIN_BLOCK ? length * 2 : MIN_BLOCK;
    skip_space(&q);
    int result = parse_value(&q, &d->root, 1);
    if (result == 0) {
        skip_space(&q);
        if (q.p < q.end)
            result = fail(&q, "trailing characters after the %s",
                          d->root.type == JSON_OBJECT ? "object" : "value");
    }
    free(q.values);
    free(q.members);
    text_buffer_free(&q.text);
    if (result != 0) {
        json_document_free(d);
        return -1;
    }
    *out = d;
    return 0;
}

const json_value *json_document_root(const json_document *d) { return &d->root; }

void json_document_free(json_document *d) {
    if (!d) return;
    for (block *b = d->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(d);
}

const json_value *json_find(const json_value *object, const char *key) {
    if (!object || object->type != JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    for (size_t i = object->length; i-- > 0;) {
        const json_member *m = &object->as.members[i];
        if (m->key_length == n && memcmp(m->key, key, n) == 0) return &m->value;
    }
    return NULL;
}

void json_position(const char *text, size_t offset, size_t *line, size_t *column) {
    *line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < offset; i++)
        if (text[i] == '\n') {
            (*line)++;
            line_start = i + 1;
        }
    *column = offset - line_start + 1;
}

const char *json_type_name(json_type type) {
    static const char *const names[] = {"null",     "a boolean", "a boolean", "a number",
                                        "a string", "an array",  "an object"};
    return names[type];
}
