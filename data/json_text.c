/* json_text_field on top of the document parser (common/json_parse.h): the whole
 * line is validated before the field is looked up, so a malformed line is
 * always reported even when the wanted field came before the error. */
#include "data/json_text.h"

#include <stdio.h>
#include <string.h>

#include "common/json_parse.h"

int json_text_field(const char *line, size_t length, const char *field, text_buffer *value,
                    char *error, size_t error_size) {
    size_t first = 0;
    while (first < length && (line[first] == ' ' || line[first] == '\t' || line[first] == '\n' ||
                              line[first] == '\r'))
        first++;
    if (first == length) {
        snprintf(error, error_size, "invalid JSON (expected an object at column %zu)", first + 1);
        return -1;
    }
    json_document *d;
    json_error reason;
    if (json_parse(line, length, 0, &d, &reason) != 0) {
        snprintf(error, error_size, "invalid JSON (%s at column %zu)", reason.reason,
                 reason.offset + 1);
        return -1;
    }
    const json_value *root = json_document_root(d);
    int result = 0;
    if (root->type != JSON_OBJECT) {
        snprintf(error, error_size, "expected a JSON object");
        result = -1;
    } else {
        const json_value *found = json_find(root, field);
        value->length = 0;
        if (found && found->type != JSON_STRING) {
            snprintf(error, error_size, "field \"%s\" is not a string", field);
            result = -1;
        } else if (found && text_buffer_append(value, found->as.string, found->length) != 0) {
            snprintf(error, error_size, "out of memory");
            result = -1;
        } else {
            result = found != NULL;
        }
    }
    json_document_free(d);
    return result;
}
