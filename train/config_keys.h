/* The configuration's key table, private to train/config*.c.
 *
 * One row per YAML key, in the order the resolved YAML is written: its dotted path, its type and
 * where it lives in `struct config`. The row index is also the index of the key's line in
 * `config.origin.line`. Loading, --set, writing and the error messages of validation all work
 * from this one table. */
#ifndef CAIRN_CONFIG_KEYS_H
#define CAIRN_CONFIG_KEYS_H

#include <stddef.h>

#include "train/config.h"

typedef enum {
    KEY_INT,      /* int */
    KEY_INT64,    /* int64_t */
    KEY_UINT64,   /* uint64_t */
    KEY_DOUBLE,
    KEY_BOOL,     /* int, 0 or 1 */
    KEY_ENUM,     /* an enum stored as int; `words` names its values in order */
    KEY_STRING,   /* char[size] */
    KEY_BETAS,    /* optim.betas: a list of 2 or 3 numbers */
    KEY_SOURCES,  /* data.sources: a list of {path, weight} */
} config_key_type;

typedef struct config_key {
    const char *path;
    config_key_type type;
    size_t offset;
    size_t size;
    const char *const *words;  /* KEY_ENUM: NULL-terminated */
} config_key;

extern const config_key config_keys[];
extern const int config_key_count;

/* Index of the key with this exact dotted path, or -1. */
int config_key_find(const char *path);

/* Describes where a value came from ("cfg.yaml:7", "--set", "cfg.yaml (default)", "built-in
 * default") for the origin line `line` (see config_origin). */
void config_origin_describe(const config *c, int line, char *out, size_t size);

#endif
