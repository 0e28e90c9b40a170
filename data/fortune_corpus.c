#include "data/fortune_corpus.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/path.h"
#include "data/document_writer.h"
#include "data/text_buffer.h"
#include "data/tokenizer.h"

enum { VALID_EVERY = 50 };

typedef struct path_list {
    char **paths;
    size_t count, capacity;
} path_list;

static void path_list_free(path_list *list) {
    for (size_t i = 0; i < list->count; i++) free(list->paths[i]);
    free(list->paths);
}

static int path_list_add(path_list *list, char *path) {
    if (list->count == list->capacity) {
        size_t grown = list->capacity ? 2 * list->capacity : 64;
        char **bigger = realloc(list->paths, grown * sizeof *bigger);
        if (!bigger) return -1;
        list->paths = bigger;
        list->capacity = grown;
    }
    list->paths[list->count++] = path;
    return 0;
}

static int collect_files(const char *folder, path_list *list, status *st) {
    DIR *dir = opendir(folder);
    if (!dir) return status_fail(st, "%s: cannot open folder: %s", folder, strerror(errno));
    int result = 0;
    struct dirent *entry;
    while (result == 0 && (entry = readdir(dir)) != NULL) {
        const char *name = entry->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        char *path = malloc(strlen(folder) + strlen(name) + 2);
        if (!path) {
            result = status_fail(st, "%s: out of memory", folder);
            break;
        }
        sprintf(path, "%s/%s", folder, name);
        struct stat info;
        int keep = 0;
        if (lstat(path, &info) != 0)
            result = status_fail(st, "%s: cannot stat: %s", path, strerror(errno));
        else if (S_ISDIR(info.st_mode) && strcmp(name, "off") != 0)
            result = collect_files(path, list, st);
        else
            keep = S_ISREG(info.st_mode) && !path_has_suffix(name, ".dat") &&
                   !path_has_suffix(name, ".u8");
        if (keep && path_list_add(list, path) != 0)
            result = status_fail(st, "%s: out of memory", folder);
        if (!keep) free(path);
    }
    closedir(dir);
    return result;
}

static int compare_paths(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_whole_file(const char *path, text_buffer *out, status *st) {
    FILE *f = fopen(path, "rb");
    if (!f) return status_fail(st, "%s: cannot open: %s", path, strerror(errno));
    out->length = 0;
    char chunk[1 << 16];
    size_t got;
    int result = 0;
    while (result == 0 && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (text_buffer_append(out, chunk, got) != 0) result = status_fail(st, "out of memory");
    if (result == 0 && ferror(f)) result = status_fail(st, "%s: read error", path);
    fclose(f);
    if (result == 0 && !out->data && text_buffer_append(out, "", 0) != 0)
        result = status_fail(st, "out of memory");
    return result;
}

static int is_trailing_space(char c) { return c && strchr(" \t\r\n\f\v", c) != NULL; }

/* Appends line [begin, end) to out without ANSI CSI sequences (ESC '[', then
 * parameter bytes, up to a final byte in '@'..'~') and without trailing space. */
static int append_clean_line(text_buffer *out, const char *begin, const char *end) {
    size_t start = out->length;
    for (const char *p = begin; p < end; p++) {
        if (*p == '\033' && p + 1 < end && p[1] == '[') {
            p += 2;
            while (p < end && !(*p >= '@' && *p <= '~')) p++;
            continue;
        }
        if (text_buffer_append(out, p, 1) != 0) return -1;
    }
    while (out->length > start && is_trailing_space(out->data[out->length - 1])) out->length--;
    if (out->data) out->data[out->length] = '\0';
    return 0;
}

typedef struct corpus_writers {
    document_writer *train, *valid;
    int64_t documents;
} corpus_writers;

static int emit_entry(corpus_writers *w, text_buffer *entry, status *st) {
    while (entry->length && is_trailing_space(entry->data[entry->length - 1])) entry->length--;
    if (!entry->length) return 0;
    w->documents++;
    document_writer *target = w->documents % VALID_EVERY == 0 ? w->valid : w->train;
    int result = document_writer_add(target, entry->data, entry->length, st);
    entry->length = 0;
    return result;
}

static int split_fortunes(const text_buffer *file, corpus_writers *w, status *st) {
    text_buffer entry = {0};
    const char *p = file->data, *end = file->data + file->length;
    int result = 0;
    while (result == 0 && p < end) {
        const char *newline = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = newline ? newline : end;
        size_t before = entry.length;
        if (append_clean_line(&entry, p, line_end) != 0) {
            result = status_fail(st, "out of memory");
            break;
        }
        if (entry.length - before == 1 && entry.data[before] == '%') {
            entry.length = before;
            result = emit_entry(w, &entry, st);
        } else if (text_buffer_append(&entry, "\n", 1) != 0) {
            result = status_fail(st, "out of memory");
        }
        p = newline ? newline + 1 : end;
    }
    if (result == 0) result = emit_entry(w, &entry, st);
    text_buffer_free(&entry);
    return result;
}

static int write_corpus(const path_list *files, corpus_writers *w, status *st) {
    text_buffer content = {0};
    int result = 0;
    for (size_t i = 0; i < files->count && result == 0; i++) {
        result = read_whole_file(files->paths[i], &content, st);
        if (result == 0) result = split_fortunes(&content, w, st);
    }
    text_buffer_free(&content);
    return result;
}

int fortune_corpus_build(const char *fortune_dir, const char *train_prefix,
                         const char *valid_prefix, status *st) {
    if (!fortune_dir) fortune_dir = FORTUNE_DEFAULT_DIR;
    path_list files = {0};
    if (collect_files(fortune_dir, &files, st) != 0) {
        path_list_free(&files);
        return status_prefix(st, "fortune corpus");
    }
    if (files.count) qsort(files.paths, files.count, sizeof *files.paths, compare_paths);
    tokenizer *t = NULL;
    corpus_writers w = {0};
    int result = 0;
    if (tokenizer_open("bytes", &t, st) != 0 ||
        document_writer_open(t, train_prefix, &w.train, st) != 0 ||
        document_writer_open(t, valid_prefix, &w.valid, st) != 0 ||
        write_corpus(&files, &w, st) != 0)
        result = -1;
    if (result == 0 && w.documents == 0)
        result = status_fail(st, "%s: no fortunes found", fortune_dir);
    if (result != 0) {
        document_writer_abort(w.train);
        document_writer_abort(w.valid);
    } else {
        int64_t train_documents = document_writer_documents(w.train);
        int64_t train_tokens = document_writer_tokens(w.train);
        int64_t valid_documents = document_writer_documents(w.valid);
        int64_t valid_tokens = document_writer_tokens(w.valid);
        if (document_writer_close(w.train, st) != 0) {
            document_writer_abort(w.valid);
            result = -1;
        } else {
            result = document_writer_close(w.valid, st);
        }
        if (result == 0)
            fprintf(stderr,
                    "fortune corpus: %zu files under %s, %" PRId64 " documents: %" PRId64
                    " documents / %" PRId64 " tokens -> %s, %" PRId64 " documents / %" PRId64
                    " tokens -> %s\n",
                    files.count, fortune_dir, w.documents, train_documents, train_tokens,
                    train_prefix, valid_documents, valid_tokens, valid_prefix);
    }
    tokenizer_close(t);
    path_list_free(&files);
    return result;
}

static int dataset_exists(const char *prefix) {
    char path[4096];
    snprintf(path, sizeof path, "%s.bin", prefix);
    int found = access(path, F_OK) == 0;
    snprintf(path, sizeof path, "%s.idx", prefix);
    return found && access(path, F_OK) == 0;
}

int fortune_corpus_ensure(const char *train_prefix, const char *valid_prefix, status *st) {
    if (dataset_exists(train_prefix) && dataset_exists(valid_prefix)) return 0;
    if (access(FORTUNE_DEFAULT_DIR, F_OK) != 0)
        return status_fail(st,
                           "%s: not found, so the default corpus cannot be built (install "
                           "Debian's fortunes packages or configure data.sources)",
                           FORTUNE_DEFAULT_DIR);
    return fortune_corpus_build(NULL, train_prefix, valid_prefix, st);
}
