#include "data/text_buffer.h"

#include <stdlib.h>
#include <string.h>

int text_buffer_append(text_buffer *b, const char *bytes, size_t count) {
    if (b->length + count + 1 > b->capacity) {
        size_t grown = b->capacity ? b->capacity : 256;
        while (grown < b->length + count + 1) grown *= 2;
        char *bigger = realloc(b->data, grown);
        if (!bigger) return -1;
        b->data = bigger;
        b->capacity = grown;
    }
    memcpy(b->data + b->length, bytes, count);
    b->length += count;
    b->data[b->length] = '\0';
    return 0;
}

void text_buffer_free(text_buffer *b) {
    free(b->data);
    b->data = NULL;
    b->length = b->capacity = 0;
}
