/* The temporary directory of a C unit test: `temp_dir_create("name")` makes
 * /tmp/cairn-test-name-XXXXXX (its path is then in `temp_dir`), `in_dir` names a file inside it,
 * `write_bytes` and `write_text` create one there, `file_size` is the size of any file (-1 when it
 * cannot be opened), and `temp_dir_remove` deletes the directory with everything in it. Like
 * check.h, one directory per test program. */
#ifndef CAIRN_TEMP_DIR_H
#define CAIRN_TEMP_DIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char temp_dir[64];

/* 0, or -1 with the reason on stderr. */
static inline int temp_dir_create(const char *name) {
    snprintf(temp_dir, sizeof temp_dir, "/tmp/cairn-test-%s-XXXXXX", name);
    if (mkdtemp(temp_dir)) return 0;
    perror("mkdtemp");
    return -1;
}

/* The path of `name` in the directory; the eight latest results stay valid. */
static inline const char *in_dir(const char *name) {
    static char paths[8][512];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, sizeof paths[0], "%s/%s", temp_dir, name);
    return path;
}

static inline void write_bytes(const char *name, const void *bytes, size_t size) {
    FILE *f = fopen(in_dir(name), "wb");
    if (!f) {
        perror(in_dir(name));
        return;
    }
    fwrite(bytes, 1, size, f);
    fclose(f);
}

static inline void write_text(const char *name, const char *text) {
    write_bytes(name, text, strlen(text));
}

static inline long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    return size;
}

static inline int temp_dir_remove_entry(const char *path, const struct stat *info, int kind,
                                        struct FTW *where) {
    (void)info, (void)kind, (void)where;
    return remove(path);
}

static inline void temp_dir_remove(void) {
    if (nftw(temp_dir, temp_dir_remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "could not remove %s\n", temp_dir);
}

#endif
