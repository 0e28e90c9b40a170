#include "common/status.h"

#include <stdio.h>
#include <string.h>

int status_fail(status *st, const char *format, ...) {
    if (!st) return -1;
    va_list args;
    va_start(args, format);
    vsnprintf(st->message, sizeof st->message, format, args);
    va_end(args);
    return -1;
}

int status_prefix(status *st, const char *format, ...) {
    if (!st) return -1;
    char prefix[512], previous[sizeof st->message];
    va_list args;
    va_start(args, format);
    vsnprintf(prefix, sizeof prefix, format, args);
    va_end(args);
    memcpy(previous, st->message, sizeof previous);
    /* the message is one line of bounded length: the tail of a long one is dropped */
    size_t room = sizeof st->message - 1;
    int used = snprintf(st->message, sizeof st->message, "%s: ", prefix);
    if (used < 0) used = 0;
    if ((size_t)used < room)
        snprintf(st->message + used, sizeof st->message - (size_t)used, "%.*s",
                 (int)(room - (size_t)used), previous);
    return -1;
}
