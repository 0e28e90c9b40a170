/* Typed reads of tokenizer.json fields with one-line errors that name the
 * file and the field: "PATH: model.fuse_unk: expected a boolean, got a string".
 *
 * Contract: `where` is the dotted path of the object being read ("model",
 * "pre_tokenizer.pretokenizers[1]"); every function returns 0, or -1 after
 * filling c->st. Absent and null fields take the fallback. */
#ifndef CAIRN_BPE_FIELDS_H
#define CAIRN_BPE_FIELDS_H

#include "common/json_parse.h"
#include "common/status.h"

typedef struct field_context {
    const char *path;
    status *st;
} field_context;

int field_error(const field_context *c, const char *where, const char *key, const char *format, ...)
    __attribute__((format(printf, 4, 5)));
/* `value` (the field `key` of `where`) must have type `type`. */
int field_expect(const field_context *c, const json_value *value, json_type type, const char *where,
                 const char *key);
int field_bool(const field_context *c, const json_value *object, const char *where, const char *key,
               int fallback, int *out);
/* *out: the string value, or NULL when absent or null. */
int field_string(const field_context *c, const json_value *object, const char *where,
                 const char *key, const json_value **out);
/* Calls each(context, item, where of the item) for every item of the array field `key`
 * (missing is an error); stops at the first -1. */
int field_list(const field_context *c, const json_value *object, const char *where, const char *key,
               int (*each)(void *, const json_value *, const char *), void *context);
/* *out: the object's "type" string; a missing type is an error. */
int field_type(const field_context *c, const json_value *object, const char *where,
               const char **out);

#endif
