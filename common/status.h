/* Error reporting for library code.
 *
 * Library functions return 0 on success and -1 on failure, filling a `status`
 * with one line that names the file (and line or field) at fault. Only the CLI
 * layer prints it and exits. */
#ifndef CAIRN_STATUS_H
#define CAIRN_STATUS_H

#include <stdarg.h>

typedef struct status {
    char message[1024];
} status;

/* Formats the message into `st` (when not NULL) and returns -1, so callers can
 * write `return status_fail(st, "%s: bad magic", path);`. */
int status_fail(status *st, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message: "context: previous message". Returns -1. */
int status_prefix(status *st, const char *format, ...) __attribute__((format(printf, 2, 3)));

#endif
