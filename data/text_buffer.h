/* A growable byte string, always NUL-terminated once anything was appended.
 *
 * Contract: a zero-initialised text_buffer is empty; `text_buffer_append`
 * returns 0, or -1 when out of memory (the buffer is unchanged then);
 * callers may reset `length` to 0 to reuse the storage. */
#ifndef CAIRN_TEXT_BUFFER_H
#define CAIRN_TEXT_BUFFER_H

#include <stddef.h>

typedef struct text_buffer {
    char *data;
    size_t length, capacity;
} text_buffer;

int text_buffer_append(text_buffer *b, const char *bytes, size_t count);
void text_buffer_free(text_buffer *b);

#endif
