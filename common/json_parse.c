/* Recursive-descent JSON parser. Children of an open container wait on a scratch stack and are
 * copied into the document's arena when it closes, so every array and object ends up contiguous
 * and the tree needs no per-node allocation. Strings are decoded straight into the arena. */
#include "common/json_parse.h"

#include <errno.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

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
    int flags;
    json_error *error;
    json_document *document;
    json_value *values; /* items of the open arrays, innermost last */
    size_t value_count, value_capacity;
    json_member *members; /* members of the open objects, innermost last */
    size_t member_count, member_capacity;
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

/* After "\u" has been consumed: one escape, or a surrogate pair of two, appended at out + *n. */
static int unicode_escape(parser *q, char *out, size_t *n) {
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
    if (cp == 0 && (q->flags & JSON_NO_NUL)) return fail(q, "\\u0000 in string");
    *n += utf8_encode(cp, out + *n);
    return 0;
}

/* The first '"' from p on that no backslash escapes (an odd run of them), or `end`. The opening
 * quote of the string bounds the run. */
static const char *closing_quote(const char *p, const char *end) {
    while ((p = memchr(p, '"', (size_t)(end - p)))) {
        size_t backslashes = 0;
        while (p[-1 - (ptrdiff_t)backslashes] == '\\')
            backslashes++;
        if (backslashes % 2 == 0) return p;
        p++;
    }
    return end;
}

/* Decodes the string at q->p (which is '"') into the arena. No escape decodes to more bytes than
 * it is written with, so the span up to the closing quote bounds the decoded length. */
static int parse_string(parser *q, const char **string, size_t *length) {
    const char *first = ++q->p;
    while (q->p < q->end && *q->p != '"' && *q->p != '\\' && (unsigned char)*q->p >= 0x20)
        q->p++;
    const char *last = q->p < q->end && *q->p == '\\' ? closing_quote(q->p, q->end) : q->p;
    char *out = arena_allocate(q->document, (size_t)(last - first) + 1);
    if (!out) return out_of_memory(q);
    size_t n = (size_t)(q->p - first);
    memcpy(out, first, n);
    for (;;) {
        if (q->p >= q->end) return fail(q, "unterminated string");
        char c = *q->p;
        if (c == '"') {
            q->p++;
            break;
        }
        if (c != '\\') return fail(q, "control character in string");
        q->p++;
        if (q->p >= q->end) return fail(q, "unterminated string");
        char escape = *q->p++;
        if (escape == 'u') {
            if (unicode_escape(q, out, &n) != 0) return -1;
        } else {
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *found = strchr(from, escape);
            if (!found || !escape) {
                q->p--;
                return fail(q, "bad escape");
            }
            out[n++] = to[found - from];
        }
        const char *run = q->p;
        while (q->p < q->end && *q->p != '"' && *q->p != '\\' && (unsigned char)*q->p >= 0x20)
            q->p++;
        memcpy(out + n, run, (size_t)(q->p - run));
        n += (size_t)(q->p - run);
    }
    out[n] = '\0';
    *string = out;
    *length = n;
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
    size_t n = (size_t)(q->p - first);
    if (v->is_integer && n <= 18) {
        /* below 10^18: exact in int64, and the conversion rounds as strtod does */
        int negative = *first == '-';
        int64_t magnitude = 0;
        for (const char *c = first + negative; c < q->p; c++)
            magnitude = magnitude * 10 + (*c - '0');
        v->as.integer = negative ? -magnitude : magnitude;
        v->as.number = negative ? -(double)magnitude : (double)magnitude;
        return 0;
    }
    /* strtod needs a terminated copy; the grammar above already validated it */
    char local[64];
    char *copy = n < sizeof local ? local : arena_allocate(q->document, n + 1);
    if (!copy) return out_of_memory(q);
    memcpy(copy, first, n);
    copy[n] = '\0';
    v->as.number = strtod(copy, NULL);
    if (v->is_integer) {
        errno = 0;
        long long integer = strtoll(copy, NULL, 10);
        v->is_integer = errno == 0;
        v->as.integer = integer;
    }
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

static int compare_keys(const char *a, size_t a_length, const char *b, size_t b_length) {
    int c = memcmp(a, b, a_length < b_length ? a_length : b_length);
    return c ? c : (a_length > b_length) - (a_length < b_length);
}

static int compare_members(const void *a, const void *b, void *members) {
    const json_member *x = (const json_member *)members + *(const size_t *)a;
    const json_member *y = (const json_member *)members + *(const size_t *)b;
    return compare_keys(x->key, x->key_length, y->key, y->key_length);
}

/* JSON_UNIQUE_KEYS: sorts the object's key index and rejects a repeated key. */
static int index_keys(parser *q, json_value *object) {
    size_t count = object->length;
    if (count == 0) return 0;
    size_t *by_key = arena_allocate(q->document, count * sizeof *by_key);
    if (!by_key) return out_of_memory(q);
    for (size_t i = 0; i < count; i++)
        by_key[i] = i;
    qsort_r(by_key, count, sizeof *by_key, compare_members, (void *)object->as.members);
    for (size_t i = 1; i < count; i++)
        if (compare_members(&by_key[i - 1], &by_key[i], (void *)object->as.members) == 0)
            return fail(q, "duplicate key \"%s\"", object->as.members[by_key[i]].key);
    object->as.by_key = by_key;
    return 0;
}

/* Moves the children pushed since `base` from the scratch stack to the arena. */
static int close_container(parser *q, json_value *v, size_t base) {
    int object = v->type == JSON_OBJECT;
    size_t count = (object ? q->member_count : q->value_count) - base;
    size_t size = count * (object ? sizeof(json_member) : sizeof(json_value));
    void *children = count ? arena_allocate(q->document, size) : NULL;
    if (count && !children) return out_of_memory(q);
    v->length = count;
    if (!object) {
        if (count) memcpy(children, q->values + base, size);
        v->as.items = children;
        q->value_count = base;
        return 0;
    }
    if (count) memcpy(children, q->members + base, size);
    v->as.members = children;
    q->member_count = base;
    return q->flags & JSON_UNIQUE_KEYS ? index_keys(q, v) : 0;
}

static int parse_value(parser *q, json_value *v, int depth);

/* A child is parsed into a local and pushed afterwards: its own children come and go on the same
 * scratch stacks, which may move when they grow. */
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

int json_parse(const char *text, size_t length, int flags, json_document **out, json_error *error) {
    *out = NULL;
    json_document *d = calloc(1, sizeof *d);
    parser q = {.start = text, .p = text, .end = text + length, .error = error, .document = d};
    q.flags = flags;
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

int json_parse_file_text(const char *path, const char *text, size_t length, int flags,
                         json_document **out, status *st) {
    json_error error;
    if (json_parse(text, length, flags, out, &error) == 0) return 0;
    size_t line, column;
    json_position(text, error.offset, &line, &column);
    return status_fail(st, "%s: invalid JSON (%s at line %zu column %zu)", path, error.reason, line,
                       column);
}

int json_read_file(const char *path, int flags, json_document **out, status *st) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return status_fail(st, "%s: cannot open: %s", path, strerror(errno));
    char *text = NULL;
    size_t length = 0, capacity = 0;
    int result = 0;
    for (;;) {
        if (length == capacity) {
            capacity = capacity ? 2 * capacity : 65536;
            char *grown = realloc(text, capacity);
            if (!grown) {
                result = status_fail(st, "%s: out of memory", path);
                break;
            }
            text = grown;
        }
        size_t n = fread(text + length, 1, capacity - length, f);
        length += n;
        if (n == 0) break;
    }
    if (result == 0 && ferror(f)) result = status_fail(st, "%s: read error", path);
    fclose(f);
    if (result == 0) result = json_parse_file_text(path, text, length, flags, out, st);
    free(text);
    return result;
}

const json_value *json_find(const json_value *object, const char *key) {
    if (!object || object->type != JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    const json_member *members = object->as.members;
    if (object->as.by_key) {
        size_t low = 0, high = object->length;
        while (low < high) {
            size_t mid = low + (high - low) / 2;
            const json_member *m = &members[object->as.by_key[mid]];
            int c = compare_keys(m->key, m->key_length, key, n);
            if (c == 0) return &m->value;
            if (c < 0)
                low = mid + 1;
            else
                high = mid;
        }
        return NULL;
    }
    for (size_t i = object->length; i-- > 0;)
        if (members[i].key_length == n && memcmp(members[i].key, key, n) == 0)
            return &members[i].value;
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
