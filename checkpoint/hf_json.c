#include "checkpoint/hf_json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DEPTH = 64 };

typedef struct parser {
    const char *text;
    size_t length, at;
    char *error;
    size_t error_size;
    int failed;
} parser;

static int fail(parser *p, const char *format, ...) __attribute__((format(printf, 2, 3)));
static int fail(parser *p, const char *format, ...) {
    if (p->failed) return -1;
    p->failed = 1;
    char reason[200];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof reason, format, args);
    va_end(args);
    snprintf(p->error, p->error_size, "%s at byte %zu", reason, p->at);
    return -1;
}

static void skip_space(parser *p) {
    while (p->at < p->length && p->text[p->at] && strchr(" \t\r\n", p->text[p->at]))
        p->at++;
}

static int peek(const parser *p) { return p->at < p->length ? (unsigned char)p->text[p->at] : -1; }

static int expect_word(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->length - p->at < n || memcmp(p->text + p->at, word, n) != 0)
        return fail(p, "invalid literal");
    p->at += n;
    return 0;
}

static int hex4(parser *p, unsigned *out) {
    if (p->length - p->at < 4) return fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->text[p->at++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return fail(p, "invalid \\u escape");
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *out, unsigned code) {
    if (code < 0x80) {
        out[0] = (char)code;
        return 1;
    }
    if (code < 0x800) {
        out[0] = (char)(0xC0 | code >> 6);
        out[1] = (char)(0x80 | (code & 0x3F));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (char)(0xE0 | code >> 12);
        out[1] = (char)(0x80 | (code >> 6 & 0x3F));
        out[2] = (char)(0x80 | (code & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | code >> 18);
    out[1] = (char)(0x80 | (code >> 12 & 0x3F));
    out[2] = (char)(0x80 | (code >> 6 & 0x3F));
    out[3] = (char)(0x80 | (code & 0x3F));
    return 4;
}

/* At the opening quote; *out is malloc'd. Escapes never grow the text, so the raw span bounds
 * the decoded length. */
static int parse_string(parser *p, char **out) {
    p->at++;
    size_t end = p->at;
    while (end < p->length && p->text[end] != '"')
        end += p->text[end] == '\\' ? 2 : 1;
    if (end >= p->length) return fail(p, "unterminated string");
    char *s = malloc(end - p->at + 1);
    if (!s) return fail(p, "out of memory");
    size_t n = 0;
    while (p->text[p->at] != '"') {
        unsigned char c = (unsigned char)p->text[p->at++];
        if (c < 0x20) {
            free(s);
            return fail(p, "control character in string");
        }
        if (c != '\\') {
            s[n++] = (char)c;
            continue;
        }
        char e = p->text[p->at++];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (simple && e) {
            s[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            continue;
        }
        unsigned code, low;
        if (e != 'u' || hex4(p, &code) != 0) {
            free(s);
            return fail(p, "invalid escape");
        }
        if (code >= 0xD800 && code < 0xDC00 && p->length - p->at >= 6 && p->text[p->at] == '\\' &&
            p->text[p->at + 1] == 'u') {
            p->at += 2;
            if (hex4(p, &low) != 0 || low < 0xDC00 || low > 0xDFFF) {
                free(s);
                return fail(p, "invalid surrogate pair");
            }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        } else if (code >= 0xD800 && code < 0xE000) {
            code = 0xFFFD;
        }
        if (code == 0) {
            free(s);
            return fail(p, "\\u0000 in string");
        }
        n += put_utf8(s + n, code);
    }
    p->at++;
    s[n] = '\0';
    *out = s;
    return 0;
}

static int parse_number(parser *p, hf_json *v) {
    size_t start = p->at;
    int integer = 1;
    if (peek(p) == '-') p->at++;
    if (peek(p) == '0') {
        p->at++;
    } else if (peek(p) >= '1' && peek(p) <= '9') {
        while (peek(p) >= '0' && peek(p) <= '9')
            p->at++;
    } else {
        return fail(p, "invalid number");
    }
    if (peek(p) == '.') {
        integer = 0;
        p->at++;
        if (!(peek(p) >= '0' && peek(p) <= '9')) return fail(p, "invalid number");
        while (peek(p) >= '0' && peek(p) <= '9')
            p->at++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        integer = 0;
        p->at++;
        if (peek(p) == '+' || peek(p) == '-') p->at++;
        if (!(peek(p) >= '0' && peek(p) <= '9')) return fail(p, "invalid number");
        while (peek(p) >= '0' && peek(p) <= '9')
            p->at++;
    }
    char buffer[64];
    size_t n = p->at - start;
    if (n >= sizeof buffer) return fail(p, "number too long");
    memcpy(buffer, p->text + start, n);
    buffer[n] = '\0';
    v->kind = HF_JSON_NUMBER;
    v->number = strtod(buffer, NULL);
    if (integer) {
        errno = 0;
        long long i = strtoll(buffer, NULL, 10);
        v->is_integer = errno == 0;
        v->integer = i;
    }
    return 0;
}

static int parse_value(parser *p, hf_json *v, int depth);
static void free_members(hf_json *v);

static int compare_keys(const void *a, const void *b, void *keys) {
    char **k = keys;
    return strcmp(k[*(const size_t *)a], k[*(const size_t *)b]);
}

static int append(parser *p, hf_json *container, size_t *capacity, const hf_json *item, char *key) {
    if (container->count == *capacity) {
        size_t grown = *capacity ? 2 * *capacity : 8;
        hf_json *items = realloc(container->items, grown * sizeof *items);
        if (items) container->items = items;
        char **keys = key ? realloc(container->keys, grown * sizeof *keys) : NULL;
        if (keys) container->keys = keys;
        if (!items || (key && !keys)) return fail(p, "out of memory");
        *capacity = grown;
    }
    container->items[container->count] = *item;
    if (key) container->keys[container->count] = key;
    container->count++;
    return 0;
}

/* Sorts the key index and rejects repeated keys. */
static int index_keys(parser *p, hf_json *object) {
    object->by_key = malloc((object->count ? object->count : 1) * sizeof *object->by_key);
    if (!object->by_key) return fail(p, "out of memory");
    for (size_t i = 0; i < object->count; i++)
        object->by_key[i] = i;
    qsort_r(object->by_key, object->count, sizeof *object->by_key, compare_keys, object->keys);
    for (size_t i = 1; i < object->count; i++)
        if (strcmp(object->keys[object->by_key[i]], object->keys[object->by_key[i - 1]]) == 0)
            return fail(p, "duplicate key \"%s\"", object->keys[object->by_key[i]]);
    return 0;
}

static int parse_container(parser *p, hf_json *v, int depth) {
    int is_object = peek(p) == '{';
    char close = is_object ? '}' : ']';
    v->kind = is_object ? HF_JSON_OBJECT : HF_JSON_ARRAY;
    p->at++;
    size_t capacity = 0;
    skip_space(p);
    if (peek(p) == close) {
        p->at++;
        return is_object ? index_keys(p, v) : 0;
    }
    for (;;) {
        char *key = NULL;
        skip_space(p);
        if (is_object) {
            if (peek(p) != '"') return fail(p, "expected a key");
            if (parse_string(p, &key) != 0) return -1;
            skip_space(p);
            if (peek(p) != ':') {
                free(key);
                return fail(p, "expected ':'");
            }
            p->at++;
        }
        hf_json item = {0};
        if (parse_value(p, &item, depth + 1) != 0 || append(p, v, &capacity, &item, key) != 0) {
            free(key);
            free_members(&item);
            return -1;
        }
        skip_space(p);
        if (peek(p) == ',') {
            p->at++;
            continue;
        }
        if (peek(p) == close) {
            p->at++;
            return is_object ? index_keys(p, v) : 0;
        }
        return fail(p, "expected ',' or '%c'", close);
    }
}

static int parse_value(parser *p, hf_json *v, int depth) {
    if (depth > MAX_DEPTH) return fail(p, "nesting deeper than %d", MAX_DEPTH);
    skip_space(p);
    switch (peek(p)) {
    case '{':
    case '[':
        return parse_container(p, v, depth);
    case '"':
        v->kind = HF_JSON_STRING;
        return parse_string(p, &v->string);
    case 't':
        v->kind = HF_JSON_BOOL;
        v->boolean = 1;
        return expect_word(p, "true");
    case 'f':
        v->kind = HF_JSON_BOOL;
        return expect_word(p, "false");
    case 'n':
        v->kind = HF_JSON_NULL;
        return expect_word(p, "null");
    case -1:
        return fail(p, "unexpected end of text");
    default:
        return parse_number(p, v);
    }
}

static void free_members(hf_json *v) {
    for (size_t i = 0; i < v->count; i++) {
        free_members(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->by_key);
    free(v->string);
}

void hf_json_free(hf_json *value) {
    if (!value) return;
    free_members(value);
    free(value);
}

int hf_json_parse(const char *text, size_t length, hf_json **out, char *error, size_t error_size) {
    parser p = {text, length, 0, error, error_size, 0};
    hf_json *root = calloc(1, sizeof *root);
    if (!root) return fail(&p, "out of memory");
    if (parse_value(&p, root, 0) == 0) {
        skip_space(&p);
        if (p.at != p.length) fail(&p, "trailing characters");
    }
    if (p.failed) {
        hf_json_free(root);
        return -1;
    }
    *out = root;
    return 0;
}

int hf_json_read_file(const char *path, hf_json **out, status *st) {
    FILE *f = fopen(path, "rb");
    if (!f) return status_fail(st, "%s: cannot open: %s", path, strerror(errno));
    char *text = NULL;
    size_t length = 0, capacity = 0;
    for (;;) {
        if (length == capacity) {
            capacity = capacity ? 2 * capacity : 65536;
            char *grown = realloc(text, capacity);
            if (!grown) {
                free(text);
                fclose(f);
                return status_fail(st, "%s: out of memory", path);
            }
            text = grown;
        }
        size_t n = fread(text + length, 1, capacity - length, f);
        length += n;
        if (n == 0) break;
    }
    int read_error = ferror(f);
    fclose(f);
    char error[256];
    int result = 0;
    if (read_error)
        result = status_fail(st, "%s: read error", path);
    else if (hf_json_parse(text, length, out, error, sizeof error) != 0)
        result = status_fail(st, "%s: invalid JSON: %s", path, error);
    free(text);
    return result;
}

const hf_json *hf_json_get(const hf_json *object, const char *key) {
    if (!object || object->kind != HF_JSON_OBJECT) return NULL;
    size_t low = 0, high = object->count;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        int c = strcmp(object->keys[object->by_key[mid]], key);
        if (c == 0) return &object->items[object->by_key[mid]];
        if (c < 0)
            low = mid + 1;
        else
            high = mid;
    }
    return NULL;
}

void hf_json_write_number(FILE *out, double value) {
    if (!isfinite(value)) {
        fputs("null", out);
        return;
    }
    char text[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, value);
        if (strtod(text, NULL) == value) break;
    }
    /* "1e+06" is valid JSON; a bare integer-valued double gets ".0" so readers keep it a float */
    if (!strpbrk(text, ".eEn")) strcat(text, ".0");
    fputs(text, out);
}
