/* Extraction of one string field from a line of JSON Lines input.
 *
 * Contract: `json_text_field` validates that `line` is exactly one JSON object
 * (RFC 8259 grammar, surrounding whitespace allowed, nesting up to 512 deep)
 * and decodes the string value of its top-level key `field` (the last one if
 * repeated) into *value, unescaped and UTF-8 encoded (\uXXXX surrogate pairs
 * combined; an unpaired surrogate becomes U+FFFD, as Python's errors="replace").
 * Returns 1 when found, 0 when the object has no such key, -1 with a short
 * reason in `error` ("invalid JSON (...)" or "field ... is not a string"). */
#ifndef CAIRN_JSON_TEXT_H
#define CAIRN_JSON_TEXT_H

#include <stddef.h>

#include "data/text_buffer.h"

int json_text_field(const char *line, size_t length, const char *field, text_buffer *value,
                    char *error, size_t error_size);

#endif
