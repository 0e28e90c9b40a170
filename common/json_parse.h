/* A validating JSON parser that builds a read-only document tree (tokenizer.json, JSON Lines
 * inputs, safetensors headers, Hugging Face config.json and index files).
 *
 * Contract: `json_parse` accepts exactly one RFC 8259 value (surrounding whitespace allowed,
 * nesting up to 512 deep). Strings are unescaped to UTF-8 (\uXXXX surrogate pairs combined; an
 * unpaired surrogate becomes U+FFFD, as Python's errors="replace") and NUL-terminated; object
 * members keep their document order. A number written without fraction or exponent that fits
 * int64 is `is_integer` and keeps its exact value in `as.integer`. Flags: JSON_UNIQUE_KEYS makes a
 * repeated key an error (`duplicate key "k"`) and object lookups O(log n); JSON_NO_NUL rejects
 * \u0000, for callers that use strings as C strings. On failure `json_parse` returns -1 and fills
 * `error` with a short reason ("expected ':'") and the byte offset where parsing stopped. All nodes
 * live in the document and are freed with it. */
#ifndef CAIRN_JSON_PARSE_H
#define CAIRN_JSON_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef enum json_type {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_type;

enum { JSON_UNIQUE_KEYS = 1, JSON_NO_NUL = 2 };

typedef struct json_value json_value;
typedef struct json_member json_member;

struct json_value {
    json_type type;
    int is_integer; /* a number written without fraction or exponent, within int64 */
    size_t length;  /* bytes of a string, items of an array, members of an object */
    union {
        struct {
            double number;
            int64_t integer; /* the exact value when is_integer */
        };
        const char *string;
        const json_value *items;
        struct {
            const json_member *members;
            const size_t *by_key; /* JSON_UNIQUE_KEYS: member indices sorted by key */
        };
    } as;
};

struct json_member {
    const char *key; /* unescaped, NUL-terminated */
    size_t key_length;
    json_value value;
};

typedef struct json_document json_document;

typedef struct json_error {
    char reason[96];
    size_t offset;
} json_error;

int json_parse(const char *text, size_t length, int flags, json_document **out, json_error *error);
const json_value *json_document_root(const json_document *d);
void json_document_free(json_document *d);

/* json_parse on the contents of file `path` (`text`), failing with
 * "PATH: invalid JSON (REASON at line L column C)". */
int json_parse_file_text(const char *path, const char *text, size_t length, int flags,
                         json_document **out, status *st);
/* Reads the file at `path` and parses it as json_parse_file_text does. */
int json_read_file(const char *path, int flags, json_document **out, status *st);

/* The value of `key` (the last one when repeated), or NULL, also when `object` is not an object. */
const json_value *json_find(const json_value *object, const char *key);
void json_position(const char *text, size_t offset, size_t *line, size_t *column);
const char *json_type_name(json_type type);

#endif
