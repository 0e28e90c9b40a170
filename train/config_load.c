/* Overlaying YAML onto a config: a whole file (config_load_file) or one --set.
 *
 * Values are applied by dotted path: a file's nested mappings and a --set's path reach the same
 * apply_node(), so both accept the same keys, list indices (data.sources.N, optim.betas.N) and
 * whole sections as values. Every applied key records its line in config.origin so that
 * config_resolve can cite it. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "train/config.h"
#include "train/config_keys.h"

#define PATH_MAX_LENGTH 256

typedef struct load_context {
    config *c;
    yaml_document_t *document;
    const char *file;        /* the YAML file, or NULL for a --set */
    const char *assignment;  /* the whole --set text */
    const char *set_path;    /* the path a --set names */
    status *st;
} load_context;

/* One-line error: "FILE:LINE: KEY: message" for a file, "--set ASSIGNMENT: [KEY: ]message" for
 * a --set (the key is left out when it is the one the assignment names). */
static int load_fail(const load_context *x, int line, const char *key, const char *format, ...)
    __attribute__((format(printf, 4, 5)));
static int load_fail(const load_context *x, int line, const char *key, const char *format, ...) {
    char message[512], where[CONFIG_STRING + 300];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    if (!x->file)
        snprintf(where, sizeof where, "--set %s", x->assignment);
    else if (line > 0)
        snprintf(where, sizeof where, "%s:%d", x->file, line);
    else
        snprintf(where, sizeof where, "%s", x->file);
    if (key && (x->file || strcmp(key, x->set_path) != 0))
        return status_fail(x->st, "%s: %s: %s", where, key, message);
    return status_fail(x->st, "%s: %s", where, message);
}

static int origin_line(const load_context *x, int line) { return x->file ? line : -1; }

static int node_line(const yaml_node_t *node) { return (int)node->start_mark.line + 1; }

static const char *scalar_text(const yaml_node_t *node) {
    return (const char *)node->data.scalar.value;
}

static const char *node_kind(const yaml_node_t *node) {
    if (node->type == YAML_MAPPING_NODE) return "a mapping";
    if (node->type == YAML_SEQUENCE_NODE) return "a list";
    return "a scalar";
}

static int is_null(const yaml_node_t *node) {
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *text = scalar_text(node);
    return !*text || !strcmp(text, "~") || !strcmp(text, "null") || !strcmp(text, "Null") ||
           !strcmp(text, "NULL");
}

static int sequence_length(const yaml_node_t *node) {
    return (int)(node->data.sequence.items.top - node->data.sequence.items.start);
}

static yaml_node_t *sequence_item(const load_context *x, const yaml_node_t *node, int i) {
    return yaml_document_get_node(x->document, node->data.sequence.items.start[i]);
}

/* Whole-text decimal integer in [min, max]: 0 when valid, -1 when not an integer, -2 when out of
 * range. Fractions, exponents and trailing junk are not integers. */
static int parse_integer(const char *text, long long min, long long max, long long *value) {
    const char *digits = text + (*text == '-' || *text == '+');
    if (*digits < '0' || *digits > '9') return -1;
    char *end;
    errno = 0;
    long long parsed = strtoll(text, &end, 10);
    if (*end) return -1;
    if (errno == ERANGE || parsed < min || parsed > max) return -2;
    *value = parsed;
    return 0;
}

static int parse_unsigned(const char *text, unsigned long long *value) {
    const char *digits = text + (*text == '+');
    if (*digits < '0' || *digits > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long parsed = strtoull(digits, &end, 10);
    if (*end) return -1;
    if (errno == ERANGE) return -2;
    *value = parsed;
    return 0;
}

static int parse_number(const char *text, double *value) {
    if (!*text || strchr(" \t\n", *text)) return -1;
    char *end;
    double parsed = strtod(text, &end);
    if (*end || !isfinite(parsed)) return -1;
    *value = parsed;
    return 0;
}

static int parse_bool(const char *text, int *value) {
    if (!strcasecmp(text, "true") || !strcasecmp(text, "yes")) {
        *value = 1;
        return 0;
    }
    if (!strcasecmp(text, "false") || !strcasecmp(text, "no")) {
        *value = 0;
        return 0;
    }
    return -1;
}

static int parse_word(const char *text, const char *const *words, int *value) {
    for (int i = 0; words[i]; i++) {
        if (!strcmp(text, words[i])) {
            *value = i;
            return 0;
        }
    }
    return -1;
}

static void describe_expected(config_key_type type, const char *const *words, char *out,
                              size_t size) {
    switch (type) {
    case KEY_INT:
    case KEY_INT64: snprintf(out, size, "an integer"); break;
    case KEY_UINT64: snprintf(out, size, "a non-negative integer"); break;
    case KEY_DOUBLE: snprintf(out, size, "a number"); break;
    case KEY_BOOL: snprintf(out, size, "true or false"); break;
    case KEY_STRING: snprintf(out, size, "a string"); break;
    case KEY_BETAS: snprintf(out, size, "a list of 2 or 3 numbers"); break;
    case KEY_SOURCES: snprintf(out, size, "a list of {path, weight} mappings"); break;
    case KEY_ENUM: {
        size_t used = (size_t)snprintf(out, size, "one of ");
        for (int i = 0; words[i] && used < size; i++)
            used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "|" : "", words[i]);
        break;
    }
    }
}

/* Reads a scalar node of `type` into `field` (size bytes), or fails naming `path`. */
static int read_value(const load_context *x, const char *path, config_key_type type,
                      const char *const *words, size_t size, const yaml_node_t *node, int line,
                      void *field) {
    char expected[160];
    describe_expected(type, words, expected, sizeof expected);
    if (node->type != YAML_SCALAR_NODE)
        return load_fail(x, line, path, "expected %s, got %s", expected, node_kind(node));
    const char *text = scalar_text(node);
    int result = 0;
    switch (type) {
    case KEY_INT:
    case KEY_INT64: {
        long long value = 0;
        int is_int = type == KEY_INT;
        assert(size == (is_int ? sizeof(int) : sizeof(int64_t)));
        result = parse_integer(text, is_int ? INT_MIN : INT64_MIN, is_int ? INT_MAX : INT64_MAX,
                               &value);
        if (result == 0 && is_int) *(int *)field = (int)value;
        if (result == 0 && !is_int) *(int64_t *)field = (int64_t)value;
        break;
    }
    case KEY_UINT64: {
        unsigned long long value = 0;
        assert(size == sizeof(uint64_t));
        result = parse_unsigned(text, &value);
        if (result == 0) *(uint64_t *)field = (uint64_t)value;
        break;
    }
    case KEY_DOUBLE: result = parse_number(text, (double *)field); break;
    case KEY_BOOL:
    case KEY_ENUM:
        /* enums are stored as int: every enum of config.h has int's size and values 0..n-1 */
        assert(size == sizeof(int));
        result = type == KEY_BOOL ? parse_bool(text, (int *)field)
                                  : parse_word(text, words, (int *)field);
        break;
    case KEY_STRING: {
        size_t length = node->data.scalar.length;
        if (is_null(node)) length = 0;
        if (strlen(text) != length && length > 0)
            return load_fail(x, line, path, "contains a NUL character");
        if (length >= size)
            return load_fail(x, line, path, "longer than %zu bytes", size - 1);
        memset(field, 0, size);
        memcpy(field, text, length);
        break;
    }
    case KEY_BETAS:
    case KEY_SOURCES: assert(!"lists are not scalars"); break;
    }
    if (result == -2) return load_fail(x, line, path, "out of range: %.64s", text);
    if (result) return load_fail(x, line, path, "expected %s, got \"%.64s\"", expected, text);
    return 0;
}

static int apply_node(load_context *x, const char *path, const yaml_node_t *node, int line);

/* A path that has keys below it (a section such as "model.moe"); "" is the document's top. */
static int is_section(const char *path) {
    size_t length = strlen(path);
    if (length == 0) return 1;
    for (int k = 0; k < config_key_count; k++)
        if (!strncmp(config_keys[k].path, path, length) && config_keys[k].path[length] == '.')
            return 1;
    return 0;
}

static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(b);
    if (n >= PATH_MAX_LENGTH || strlen(a) >= PATH_MAX_LENGTH) return INT_MAX;
    int row[PATH_MAX_LENGTH];
    for (size_t j = 0; j <= n; j++) row[j] = (int)j;
    for (size_t i = 1; a[i - 1]; i++) {
        int diagonal = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= n; j++) {
            int above = row[j];
            int best = diagonal + (a[i - 1] != b[j - 1]);
            if (above + 1 < best) best = above + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diagonal = above;
        }
    }
    return row[n];
}

/* " (did you mean model.layers?)" for a near miss among the keys and sections at the same depth
 * as `path`, else "". */
static void suggest_key(const char *path, char *out, size_t size) {
    int depth = 0, best = 3;
    for (const char *p = path; *p; p++) depth += *p == '.';
    out[0] = '\0';
    for (int k = 0; k < config_key_count; k++) {
        char candidate[PATH_MAX_LENGTH];
        snprintf(candidate, sizeof candidate, "%s", config_keys[k].path);
        int dots = 0;
        for (char *p = candidate; *p; p++)
            if (*p == '.' && dots++ == depth) *p = '\0';
        if (dots < depth) continue;
        int distance = edit_distance(path, candidate);
        if (distance > 0 && distance < best) {
            best = distance;
            snprintf(out, size, " (did you mean %s?)", candidate);
        }
    }
}

static int apply_mapping(load_context *x, const char *path, const yaml_node_t *node, int line) {
    if (is_null(node)) return 0;
    if (node->type != YAML_MAPPING_NODE)
        return load_fail(x, line, *path ? path : NULL, "expected a mapping of keys, got %s",
                         node_kind(node));
    for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top; pair++) {
        yaml_node_t *key = yaml_document_get_node(x->document, pair->key);
        yaml_node_t *value = yaml_document_get_node(x->document, pair->value);
        int key_line = node_line(key);
        if (key->type != YAML_SCALAR_NODE)
            return load_fail(x, key_line, *path ? path : NULL, "keys must be words, got %s",
                             node_kind(key));
        char child[PATH_MAX_LENGTH];
        int length = snprintf(child, sizeof child, "%s%s%s", path, *path ? "." : "",
                              scalar_text(key));
        if (length >= (int)sizeof child) return load_fail(x, key_line, path, "key too long");
        for (yaml_node_pair_t *earlier = node->data.mapping.pairs.start; earlier < pair;
             earlier++) {
            yaml_node_t *other = yaml_document_get_node(x->document, earlier->key);
            if (other->type == YAML_SCALAR_NODE && !strcmp(scalar_text(other), scalar_text(key)))
                return load_fail(x, key_line, child, "duplicate key (first at line %d)",
                                 node_line(other));
        }
        if (apply_node(x, child, value, key_line)) return -1;
    }
    return 0;
}

/* "N" or "N.rest" after a list path: the index and what follows it ("" or ".rest"). */
static int parse_index(const char *text, int *index, const char **rest) {
    if (*text < '0' || *text > '9') return -1;
    char *end;
    long value = strtol(text, &end, 10);
    if (value > INT_MAX || (*end && *end != '.')) return -1;
    *index = (int)value;
    *rest = end;
    return 0;
}

/* data.sources.N[.path|.weight]; N == source_count appends a source (weight 1). */
static int apply_source_path(load_context *x, const char *path, const char *after_list,
                             const yaml_node_t *node, int line) {
    data_config *data = &x->c->data;
    int index;
    const char *rest;
    char suggestion[PATH_MAX_LENGTH + 32];
    if (parse_index(after_list, &index, &rest)) {
        suggest_key(path, suggestion, sizeof suggestion);
        return load_fail(x, line, path, "unknown key%s", suggestion);
    }
    if (index > data->source_count)
        return load_fail(x, line, path, "no such source (the list has %d; index %d appends one)",
                         data->source_count, data->source_count);
    if (index == data->source_count) {
        if (index == CONFIG_MAX_SOURCES)
            return load_fail(x, line, path, "at most %d sources", CONFIG_MAX_SOURCES);
        memset(&data->sources[index], 0, sizeof data->sources[index]);
        data->sources[index].weight = 1.0;
        data->source_count++;
        x->c->origin.source_line[index] = origin_line(x, line);
    }
    if (!x->file) x->c->origin.source_line[index] = -1;
    data_source *source = &data->sources[index];
    if (!*rest) {
        if (node->type != YAML_MAPPING_NODE)
            return load_fail(x, line, path, "expected a mapping {path, weight}, got %s",
                             node_kind(node));
        return apply_mapping(x, path, node, line);
    }
    if (!strcmp(rest, ".path"))
        return read_value(x, path, KEY_STRING, NULL, sizeof source->path, node, line,
                          source->path);
    if (!strcmp(rest, ".weight"))
        return read_value(x, path, KEY_DOUBLE, NULL, sizeof source->weight, node, line,
                          &source->weight);
    return load_fail(x, line, path, "unknown key (a source has path and weight)");
}

static int apply_sources(load_context *x, int key, const yaml_node_t *node, int line) {
    if (node->type != YAML_SEQUENCE_NODE)
        return load_fail(x, line, "data.sources", "expected a list of {path, weight} mappings, "
                         "got %s", node_kind(node));
    int count = sequence_length(node);
    if (count > CONFIG_MAX_SOURCES)
        return load_fail(x, line, "data.sources", "at most %d sources (got %d)",
                         CONFIG_MAX_SOURCES, count);
    x->c->data.source_count = 0;
    for (int i = 0; i < count; i++) {
        const yaml_node_t *item = sequence_item(x, node, i);
        char path[64];
        snprintf(path, sizeof path, "data.sources.%d", i);
        if (apply_node(x, path, item, x->file ? node_line(item) : line)) return -1;
    }
    x->c->origin.line[key] = origin_line(x, line);
    return 0;
}

static int apply_betas(load_context *x, int key, const yaml_node_t *node, int line) {
    double *betas = x->c->optim.betas;
    if (node->type != YAML_SEQUENCE_NODE)
        return load_fail(x, line, "optim.betas", "expected a list of 2 or 3 numbers, got %s",
                         node_kind(node));
    int count = sequence_length(node);
    if (count < 2 || count > 3)
        return load_fail(x, line, "optim.betas", "expected a list of 2 or 3 numbers, got %d",
                         count);
    double values[3] = {betas[0], betas[1], betas[2]};
    for (int i = 0; i < count; i++) {
        const yaml_node_t *item = sequence_item(x, node, i);
        char path[32];
        snprintf(path, sizeof path, "optim.betas.%d", i);
        if (read_value(x, path, KEY_DOUBLE, NULL, sizeof(double), item,
                       x->file ? node_line(item) : line, &values[i]))
            return -1;
    }
    memcpy(betas, values, sizeof values);
    x->c->origin.line[key] = origin_line(x, line);
    return 0;
}

static int apply_node(load_context *x, const char *path, const yaml_node_t *node, int line) {
    int key = config_key_find(path);
    if (key >= 0) {
        const config_key *spec = &config_keys[key];
        if (spec->type == KEY_BETAS) return apply_betas(x, key, node, line);
        if (spec->type == KEY_SOURCES) return apply_sources(x, key, node, line);
        if (read_value(x, path, spec->type, spec->words, spec->size, node, line,
                       (char *)x->c + spec->offset))
            return -1;
        x->c->origin.line[key] = origin_line(x, line);
        return 0;
    }
    static const char sources_prefix[] = "data.sources.", betas_prefix[] = "optim.betas.";
    if (!strncmp(path, sources_prefix, sizeof sources_prefix - 1))
        return apply_source_path(x, path, path + sizeof sources_prefix - 1, node, line);
    int index;
    const char *rest;
    if (!strncmp(path, betas_prefix, sizeof betas_prefix - 1) &&
        !parse_index(path + sizeof betas_prefix - 1, &index, &rest) && !*rest && index < 3) {
        if (read_value(x, path, KEY_DOUBLE, NULL, sizeof(double), node, line,
                       &x->c->optim.betas[index]))
            return -1;
        x->c->origin.line[config_key_find("optim.betas")] = origin_line(x, line);
        return 0;
    }
    if (is_section(path)) return apply_mapping(x, path, node, line);
    char suggestion[PATH_MAX_LENGTH + 32];
    suggest_key(path, suggestion, sizeof suggestion);
    return load_fail(x, line, path, "unknown key%s", suggestion);
}

static int syntax_error(const load_context *x, const yaml_parser_t *parser) {
    const char *problem = parser->problem ? parser->problem : "cannot parse";
    if (parser->error == YAML_MEMORY_ERROR) return load_fail(x, 0, NULL, "out of memory");
    if (parser->error == YAML_READER_ERROR)
        return load_fail(x, 0, NULL, "YAML error: %s at byte %zu", problem,
                         parser->problem_offset);
    int line = (int)parser->problem_mark.line + 1;
    if (parser->context)
        return load_fail(x, line, NULL, "YAML syntax error: %s (%s)", problem, parser->context);
    return load_fail(x, line, NULL, "YAML syntax error: %s", problem);
}

/* Parses one YAML document and applies it: at the top (a file) or at x->set_path (a --set,
 * where an empty value is an empty scalar). A second document is an error. */
static int load_document(load_context *x, yaml_parser_t *parser) {
    yaml_document_t document;
    if (!yaml_parser_load(parser, &document)) return syntax_error(x, parser);
    x->document = &document;
    yaml_node_t *root = yaml_document_get_root_node(&document);
    yaml_node_t empty = {.type = YAML_SCALAR_NODE};
    empty.data.scalar.value = (yaml_char_t *)"";
    empty.data.scalar.style = YAML_PLAIN_SCALAR_STYLE;
    int result = 0;
    if (x->file && root)
        result = apply_node(x, "", root, node_line(root));
    else if (!x->file)
        result = apply_node(x, x->set_path, root ? root : &empty, 0);
    yaml_document_delete(&document);
    x->document = NULL;
    if (result) return -1;
    if (!yaml_parser_load(parser, &document)) return syntax_error(x, parser);
    root = yaml_document_get_root_node(&document);
    int line = root ? node_line(root) : 0;
    yaml_document_delete(&document);
    if (root) return load_fail(x, line, NULL, "only one YAML document is allowed");
    return 0;
}

int config_load_file(config *c, const char *path, status *st) {
    if (strlen(path) >= sizeof c->source) return status_fail(st, "%s: path too long", path);
    FILE *file = fopen(path, "rb");
    if (!file) return status_fail(st, "%s: cannot open: %s", path, strerror(errno));
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(file);
        return status_fail(st, "%s: out of memory", path);
    }
    yaml_parser_set_input_file(&parser, file);
    snprintf(c->source, sizeof c->source, "%s", path);
    load_context x = {.c = c, .file = path, .st = st};
    int result = load_document(&x, &parser);
    yaml_parser_delete(&parser);
    if (ferror(file) && result == 0)
        result = status_fail(st, "%s: read error: %s", path, strerror(errno));
    fclose(file);
    return result;
}

int config_load_string(config *c, const char *text, const char *name, status *st) {
    if (strlen(name) >= sizeof c->source) return status_fail(st, "%s: name too long", name);
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return status_fail(st, "%s: out of memory", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    snprintf(c->source, sizeof c->source, "%s", name);
    load_context x = {.c = c, .file = name, .st = st};
    int result = load_document(&x, &parser);
    yaml_parser_delete(&parser);
    return result;
}

int config_apply_set(config *c, const char *assignment, status *st) {
    const char *equals = strchr(assignment, '=');
    char path[PATH_MAX_LENGTH];
    if (!equals || equals == assignment)
        return status_fail(st, "--set %s: expected key.path=value", assignment);
    size_t length = (size_t)(equals - assignment);
    if (length >= sizeof path) return status_fail(st, "--set %s: key path too long", assignment);
    memcpy(path, assignment, length);
    path[length] = '\0';
    const char *value = equals + 1;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return status_fail(st, "--set %s: out of memory", assignment);
    yaml_parser_set_input_string(&parser, (const unsigned char *)value, strlen(value));
    load_context x = {.c = c, .assignment = assignment, .set_path = path, .st = st};
    int result = load_document(&x, &parser);
    yaml_parser_delete(&parser);
    return result;
}
