/* JSON documents of the Hugging Face formats: safetensors headers, config.json and
 * model.safetensors.index.json.
 *
 * Contract: `hf_json_parse` builds a tree from RFC 8259 text (nesting up to 64 deep, strings
 * unescaped to UTF-8). An object with a repeated key is an error (safetensors forbids them and
 * config.json never has them); so is a string holding U+0000. Errors are a short reason with the
 * byte offset. Object lookups take O(log n). A number written as an integer that fits int64 also
 * keeps its exact integer value. `hf_json_write_number` writes the shortest text that reads back
 * as the same double. */
#ifndef CAIRN_HF_JSON_H
#define CAIRN_HF_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/status.h"

typedef enum {
    HF_JSON_NULL,
    HF_JSON_BOOL,
    HF_JSON_NUMBER,
    HF_JSON_STRING,
    HF_JSON_ARRAY,
    HF_JSON_OBJECT,
} hf_json_kind;

typedef struct hf_json {
    hf_json_kind kind;
    int boolean;
    double number;
    int is_integer; /* NUMBER written without fraction or exponent, within int64 */
    int64_t integer;
    char *string;          /* STRING */
    size_t count;          /* ARRAY and OBJECT: number of values */
    struct hf_json *items; /* ARRAY and OBJECT values, in document order */
    char **keys;           /* OBJECT keys, in document order */
    size_t *by_key;        /* OBJECT: indices sorted by key */
} hf_json;

int hf_json_parse(const char *text, size_t length, hf_json **out, char *error, size_t error_size);
/* Reads and parses a whole file; errors name the file. */
int hf_json_read_file(const char *path, hf_json **out, status *st);
void hf_json_free(hf_json *value);

/* The value of `key`, or NULL when `object` is not an object or has no such key. */
const hf_json *hf_json_get(const hf_json *object, const char *key);

void hf_json_write_number(FILE *out, double value);

#endif
