#include "data/bpe_fields.h"

#include <stdarg.h>
#include <stdio.h>

int field_error(const field_context *c, const char *where, const char *key, const char *format,
                ...) {
    char reason[512];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof reason, format, args);
    va_end(args);
    const char *dot = where[0] && key && key[0] ? "." : "";
    return status_fail(c->st, "%s: %s%s%s: %s", c->path, where, dot, key ? key : "", reason);
}

int field_expect(const field_context *c, const json_value *value, json_type type, const char *where,
                 const char *key) {
    if (value->type == type ||
        (type == JSON_TRUE && (value->type == JSON_FALSE || value->type == JSON_TRUE)))
        return 0;
    return field_error(c, where, key, "expected %s, got %s",
                       type == JSON_TRUE ? "a boolean" : json_type_name(type),
                       json_type_name(value->type));
}

int field_bool(const field_context *c, const json_value *object, const char *where, const char *key,
               int fallback, int *out) {
    const json_value *v = json_find(object, key);
    *out = fallback;
    if (!v || v->type == JSON_NULL) return 0;
    if (field_expect(c, v, JSON_TRUE, where, key) != 0) return -1;
    *out = v->type == JSON_TRUE;
    return 0;
}

int field_string(const field_context *c, const json_value *object, const char *where,
                 const char *key, const json_value **out) {
    const json_value *v = json_find(object, key);
    *out = NULL;
    if (!v || v->type == JSON_NULL) return 0;
    if (field_expect(c, v, JSON_STRING, where, key) != 0) return -1;
    *out = v;
    return 0;
}

int field_type(const field_context *c, const json_value *object, const char *where,
               const char **out) {
    const json_value *type;
    if (field_string(c, object, where, "type", &type) != 0) return -1;
    if (!type) return field_error(c, where, "type", "missing");
    *out = type->as.string;
    return 0;
}

int field_list(const field_context *c, const json_value *object, const char *where, const char *key,
               int (*each)(void *, const json_value *, const char *), void *context) {
    const json_value *list = json_find(object, key);
    if (!list) return field_error(c, where, key, "missing");
    if (field_expect(c, list, JSON_ARRAY, where, key) != 0) return -1;
    for (size_t i = 0; i < list->length; i++) {
        char inner[256];
        snprintf(inner, sizeof inner, "%s.%s[%zu]", where, key, i);
        if (each(context, &list->as.items[i], inner) != 0) return -1;
    }
    return 0;
}
