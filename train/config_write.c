/* Writes a config as YAML that config_load_file reads back into the same struct: every key of
 * the key table in its order, doubles in the shortest form that parses back to the same bits,
 * strings double-quoted with escapes. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train/config.h"
#include "train/config_keys.h"

#define MAX_DEPTH 4
#define PART_LENGTH 64

static void write_double(FILE *out, double value) {
    char text[40];
    if (value == trunc(value) && fabs(value) < 1e15) {
        fprintf(out, "%.0f", value);  /* 10000 rather than 1e+04 */
        return;
    }
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(text, sizeof text, "%.*g", precision, value);
        if (strtod(text, NULL) == value) break;
    }
    fputs(text, out);
}

static void write_string(FILE *out, const char *text) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void write_indent(FILE *out, int depth) {
    for (int i = 0; i < depth; i++) fputs("  ", out);
}

/* Splits "a.b.c" into its components; returns how many. */
static int split_path(const char *path, char parts[MAX_DEPTH][PART_LENGTH]) {
    int count = 0;
    while (count < MAX_DEPTH) {
        size_t length = strcspn(path, ".");
        snprintf(parts[count++], PART_LENGTH, "%.*s", (int)length, path);
        if (!path[length]) break;
        path += length + 1;
    }
    return count;
}

static void write_sources(FILE *out, const data_config *data, int depth) {
    if (data->source_count == 0) {
        fputs(" []\n", out);
        return;
    }
    fputc('\n', out);
    for (int i = 0; i < data->source_count; i++) {
        write_indent(out, depth + 1);
        fputs("- path: ", out);
        write_string(out, data->sources[i].path);
        fputc('\n', out);
        write_indent(out, depth + 2);
        fputs("weight: ", out);
        write_double(out, data->sources[i].weight);
        fputc('\n', out);
    }
}

static void write_value(FILE *out, const config *c, const config_key *key, int depth) {
    const void *field = (const char *)c + key->offset;
    switch (key->type) {
    case KEY_INT: fprintf(out, " %d\n", *(const int *)field); return;
    case KEY_INT64: fprintf(out, " %" PRId64 "\n", *(const int64_t *)field); return;
    case KEY_UINT64: fprintf(out, " %" PRIu64 "\n", *(const uint64_t *)field); return;
    case KEY_BOOL: fprintf(out, " %s\n", *(const int *)field ? "true" : "false"); return;
    case KEY_ENUM: {
        int value = *(const int *)field, count = 0;
        while (key->words[count]) count++;
        fprintf(out, " %s\n", value >= 0 && value < count ? key->words[value] : "invalid");
        return;
    }
    case KEY_DOUBLE:
        fputc(' ', out);
        write_double(out, *(const double *)field);
        fputc('\n', out);
        return;
    case KEY_STRING:
        fputc(' ', out);
        write_string(out, (const char *)field);
        fputc('\n', out);
        return;
    case KEY_BETAS: {
        const double *betas = (const double *)field;
        for (int i = 0; i < 3; i++) {
            fputs(i ? ", " : " [", out);
            write_double(out, betas[i]);
        }
        fputs("]\n", out);
        return;
    }
    case KEY_SOURCES: write_sources(out, &c->data, depth); return;
    }
}

int config_write_yaml(const config *c, FILE *out, status *st) {
    char previous[MAX_DEPTH][PART_LENGTH] = {{0}};
    int previous_count = 0;
    fputs("# cairn configuration (resolved)\n", out);
    for (int k = 0; k < config_key_count; k++) {
        char parts[MAX_DEPTH][PART_LENGTH];
        int count = split_path(config_keys[k].path, parts);
        /* open the sections this key does not share with the previous one */
        int shared = 0;
        while (shared < count - 1 && shared < previous_count - 1 &&
               !strcmp(parts[shared], previous[shared]))
            shared++;
        for (int depth = shared; depth < count - 1; depth++) {
            write_indent(out, depth);
            fprintf(out, "%s:\n", parts[depth]);
        }
        write_indent(out, count - 1);
        fprintf(out, "%s:", parts[count - 1]);
        write_value(out, c, &config_keys[k], count - 1);
        memcpy(previous, parts, sizeof parts);
        previous_count = count;
    }
    if (ferror(out)) return status_fail(st, "resolved config: write error: %s", strerror(errno));
    return 0;
}

int config_write_yaml_file(const config *c, const char *path, status *st) {
    char temporary[CONFIG_STRING + 8];
    if (snprintf(temporary, sizeof temporary, "%s.tmp", path) >= (int)sizeof temporary)
        return status_fail(st, "%s: path too long", path);
    FILE *out = fopen(temporary, "w");
    if (!out) return status_fail(st, "%s: cannot create: %s", temporary, strerror(errno));
    int result = config_write_yaml(c, out, st);
    if (result == 0 && (fflush(out) || fsync(fileno(out))))
        result = status_fail(st, "%s: write error: %s", temporary, strerror(errno));
    if (fclose(out) && result == 0)
        result = status_fail(st, "%s: write error: %s", temporary, strerror(errno));
    if (result == 0 && rename(temporary, path))
        result = status_fail(st, "%s: cannot rename to %s: %s", temporary, path, strerror(errno));
    if (result) remove(temporary);
    return result;
}
