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
    snprintf(st->message, sizeof st->message, "%s: %s", prefix, previous);
    return -1;
}
