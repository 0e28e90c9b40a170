/* A validating JSON parser that builds a read-only document tree.
 *
 * Contract: `json_parse` accepts exactly one RFC 8259 value (surrounding
 * whitespace allowed, nesting up to 512 deep). Strings are unescaped to UTF-8
 * (\uXXXX surrogate pairs combined; an unpaired surrogate becomes U+FFFD, as
 * Python's errors="replace") and NUL-terminated; object members keep their
 * order, duplicates included. On failure it returns -1 and fills `error` with a
 * short reason ("expected ':'") and the byte offset where parsing stopped;
 * `json_position` turns that offset into a 1-based line and column. All nodes
 * live in the document and are freed with it. */
#ifndef CAIRN_JSON_VALUE_H
#define CAIRN_JSON_VALUE_H

#include <stddef.h>

typedef enum json_type {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_type;

typedef struct json_value json_value;
typedef struct json_member json_member;

struct json_value {
    json_type type;
    int is_integer; /* a number written without fraction or exponent */
    size_t length;  /* bytes of a string, items of an array, members of an object */
    union {
        double number;
        const char *string;
        const json_value *items;
        const json_member *members;
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

int json_parse(const char *text, size_t length, json_document **out, json_error *error);
const json_value *json_document_root(const json_document *d);
void json_document_free(json_document *d);

/* The value of the last member named `key`, or NULL (also when not an object). */
const json_value *json_find(const json_value *object, const char *key);
void json_position(const char *text, size_t offset, size_t *line, size_t *column);
const char *json_type_name(json_type type);

#endif
