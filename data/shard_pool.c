/* Shards of a source and the least-recently-used set of mapped ones. */
#include "data/shard_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/path.h"
#include "common/sha256.h"
#include "data/indexed_dataset.h"

enum { FINGERPRINT_HEADER_BYTES = 64 };

typedef struct shard {
    char *prefix;
    int64_t first_document, documents, tokens;
    int slot;  /* -1 when not mapped */
} shard;

typedef struct slot {
    indexed_dataset *data;
    int shard;          /* -1 when free */
    uint64_t last_use;
} slot;

struct shard_pool {
    shard *shards;
    int shard_count;
    slot *slots;
    int max_open, open_now, open_peak;
    int64_t open_count;
    uint64_t clock;
    int last_shard;  /* shard of the previous lookup: reads are mostly local */
    char *cache_base;
};

static int compare_paths(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_directory(const char *path) {
    struct stat info;
    return stat(path, &info) == 0 && S_ISDIR(info.st_mode);
}

static int add_shard(shard_pool *p, const char *prefix, size_t length) {
    shard *s = &p->shards[p->shard_count];
    s->prefix = strndup(prefix, length);
    if (!s->prefix) return -1;
    s->slot = -1;
    p->shard_count++;
    return 0;
}

/* Every PATTERN.bin match (or PATTERN's own when it names .bin/.idx files) as a prefix. */
static int expand_pattern(shard_pool *p, const char *path, const char *pattern, status *st) {
    char *bin_pattern = malloc(strlen(pattern) + 8);
    if (!bin_pattern) return status_fail(st, "%s: out of memory", path);
    strcpy(bin_pattern, pattern);
    if (path_has_suffix(bin_pattern, ".idx")) bin_pattern[strlen(bin_pattern) - 4] = 0;
    if (!path_has_suffix(bin_pattern, ".bin")) strcat(bin_pattern, ".bin");
    glob_t found;
    int rc = glob(bin_pattern, 0, NULL, &found);
    free(bin_pattern);
    if (rc == GLOB_NOMATCH) return status_fail(st, "%s: no shard matches", path);
    if (rc != 0) return status_fail(st, "%s: cannot list the shards", path);
    qsort(found.gl_pathv, found.gl_pathc, sizeof *found.gl_pathv, compare_paths);
    p->shards = calloc(found.gl_pathc, sizeof *p->shards);
    for (size_t i = 0; p->shards && i < found.gl_pathc; i++)
        if (add_shard(p, found.gl_pathv[i], strlen(found.gl_pathv[i]) - 4) != 0) break;
    int complete = p->shards && (size_t)p->shard_count == found.gl_pathc;
    globfree(&found);
    return complete ? 0 : status_fail(st, "%s: out of memory for the shard list", path);
}

static int set_cache_base(shard_pool *p, const char *path, int kind_pattern, int kind_directory) {
    size_t length = strlen(path);
    if (kind_pattern) {
        length = strcspn(path, "*?[");
        while (length > 0 && path[length - 1] != '/') length--;
    }
    p->cache_base = malloc(length + 2);
    if (!p->cache_base) return -1;
    memcpy(p->cache_base, path, length);
    p->cache_base[length] = 0;
    if (kind_directory && length > 0 && path[length - 1] != '/') strcat(p->cache_base, "/");
    if (!kind_pattern && !kind_directory) strcat(p->cache_base, ".");
    return 0;
}

int shard_pool_open(const char *path, int max_open, shard_pool **out, status *st) {
    *out = NULL;
    shard_pool *p = calloc(1, sizeof *p);
    if (!p) return status_fail(st, "%s: out of memory", path);
    p->max_open = max_open > 0 ? max_open : 1;
    p->slots = calloc((size_t)p->max_open, sizeof *p->slots);
    int pattern = strpbrk(path, "*?[") != NULL;
    char bin_path[4096];
    snprintf(bin_path, sizeof bin_path, "%s.bin", path);
    int directory = !pattern && is_directory(path) && access(bin_path, F_OK) != 0;
    int rc = p->slots && set_cache_base(p, path, pattern, directory) == 0
                 ? 0
                 : status_fail(st, "%s: out of memory", path);
    for (int i = 0; rc == 0 && i < p->max_open; i++) p->slots[i].shard = -1;
    if (rc == 0 && (pattern || directory)) {
        char all_shards[4096];
        snprintf(all_shards, sizeof all_shards, "%s%s*", path,
                 path_has_suffix(path, "/") ? "" : "/");
        rc = expand_pattern(p, path, pattern ? path : all_shards, st);
    } else if (rc == 0) {
        p->shards = calloc(1, sizeof *p->shards);
        if (!p->shards || add_shard(p, path, strlen(path)) != 0)
            rc = status_fail(st, "%s: out of memory", path);
    }
    if (rc != 0) {
        shard_pool_close(p);
        return -1;
    }
    *out = p;
    return 0;
}

void shard_pool_close(shard_pool *p) {
    if (!p) return;
    for (int i = 0; p->slots && i < p->max_open; i++)
        if (p->slots[i].data) indexed_dataset_close(p->slots[i].data);
    for (int i = 0; i < p->shard_count; i++) free(p->shards[i].prefix);
    free(p->shards);
    free(p->slots);
    free(p->cache_base);
    free(p);
}

int shard_pool_shard_count(const shard_pool *p) { return p->shard_count; }
const char *shard_pool_cache_base(const shard_pool *p) { return p->cache_base; }

static void hash_file(sha256_context *h, const char *path, int with_header) {
    struct stat info;
    int64_t fields[3] = {-1, 0, 0};
    if (stat(path, &info) == 0 && S_ISREG(info.st_mode)) {
        fields[0] = (int64_t)info.st_size;
        fields[1] = (int64_t)info.st_mtim.tv_sec;
        fields[2] = (int64_t)info.st_mtim.tv_nsec;
    }
    sha256_update(h, fields, sizeof fields);
    if (!with_header || fields[0] < 0) return;
    uint8_t header[FINGERPRINT_HEADER_BYTES] = {0};
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t got = read(fd, header, sizeof header);
        (void)got;  /* a short or failed read hashes zeros: the sizes above still tell */
        close(fd);
    }
    sha256_update(h, header, sizeof header);
}

int shard_pool_fingerprint(const shard_pool *p, uint8_t digest[32], status *st) {
    sha256_context h;
    sha256_init(&h);
    for (int i = 0; i < p->shard_count; i++) {
        const char *prefix = p->shards[i].prefix;
        size_t length = strlen(prefix);
        char *path = malloc(length + 5);
        if (!path) return status_fail(st, "%s: out of memory", prefix);
        sha256_update(&h, prefix, length + 1);
        snprintf(path, length + 5, "%s.idx", prefix);
        int has_index = access(path, F_OK) == 0;
        hash_file(&h, path, has_index);
        snprintf(path, length + 5, "%s.bin", prefix);
        hash_file(&h, path, !has_index);
        hash_file(&h, prefix, 0);
        free(path);
    }
    sha256_final(&h, digest);
    return 0;
}

static void set_first_documents(shard_pool *p) {
    int64_t first = 0;
    for (int i = 0; i < p->shard_count; i++) {
        p->shards[i].first_document = first;
        first += p->shards[i].documents;
    }
}

void shard_pool_set_counts(shard_pool *p, const int64_t *documents, const int64_t *tokens) {
    for (int i = 0; i < p->shard_count; i++) {
        p->shards[i].documents = documents[i];
        p->shards[i].tokens = tokens[i];
    }
    set_first_documents(p);
}

void shard_pool_counts(const shard_pool *p, int64_t *documents, int64_t *tokens) {
    for (int i = 0; i < p->shard_count; i++) {
        documents[i] = p->shards[i].documents;
        tokens[i] = p->shards[i].tokens;
    }
}

int64_t shard_pool_documents(const shard_pool *p) {
    const shard *last = &p->shards[p->shard_count - 1];
    return last->first_document + last->documents;
}

int64_t shard_pool_tokens(const shard_pool *p) {
    int64_t tokens = 0;
    for (int i = 0; i < p->shard_count; i++) tokens += p->shards[i].tokens;
    return tokens;
}

/* Maps shard `index` (closing the least recently used one when all slots are taken). */
static int acquire(shard_pool *p, int index, indexed_dataset **data, status *st) {
    shard *s = &p->shards[index];
    p->clock++;
    if (s->slot >= 0) {
        p->slots[s->slot].last_use = p->clock;
        *data = p->slots[s->slot].data;
        return 0;
    }
    int chosen = 0;
    for (int i = 0; i < p->max_open; i++) {
        if (p->slots[i].shard < 0) {
            chosen = i;
            break;
        }
        if (p->slots[i].last_use < p->slots[chosen].last_use) chosen = i;
    }
    slot *target = &p->slots[chosen];
    if (target->shard >= 0) {
        indexed_dataset_close(target->data);
        p->shards[target->shard].slot = -1;
        target->shard = -1;
        target->data = NULL;
        p->open_now--;
    }
    if (indexed_dataset_open(s->prefix, &target->data, st) != 0) return -1;
    target->shard = index;
    target->last_use = p->clock;
    s->slot = chosen;
    p->open_count++;
    if (++p->open_now > p->open_peak) p->open_peak = p->open_now;
    *data = target->data;
    return 0;
}

int shard_pool_scan(shard_pool *p, int32_t **lengths, status *st) {
    *lengths = NULL;
    int64_t capacity = 0, count = 0;
    int32_t *all = NULL;
    for (int i = 0; i < p->shard_count; i++) {
        indexed_dataset *d;
        if (acquire(p, i, &d, st) != 0) {
            free(all);
            return -1;
        }
        shard *s = &p->shards[i];
        s->documents = indexed_dataset_documents(d);
        s->tokens = indexed_dataset_tokens(d);
        if (count + s->documents > capacity) {
            capacity = 2 * (count + s->documents);
            int32_t *grown = realloc(all, (size_t)capacity * sizeof *all);
            if (!grown) {
                free(all);
                return status_fail(st, "%s: out of memory for %" PRId64 " document lengths",
                                   s->prefix, capacity);
            }
            all = grown;
        }
        for (int64_t doc = 0; doc < s->documents; doc++) {
            int64_t length = indexed_dataset_document_length(d, doc);
            if (length > INT32_MAX) {
                free(all);
                return status_fail(st, "%s: document %" PRId64 " has %" PRId64
                                   " tokens, more than Megatron's int32 sequence lengths",
                                   s->prefix, doc, length);
            }
            all[count++] = (int32_t)length;
        }
    }
    set_first_documents(p);
    *lengths = all ? all : malloc(sizeof *all);
    return *lengths ? 0 : status_fail(st, "out of memory");
}

static int find_shard(shard_pool *p, int64_t document) {
    const shard *last = &p->shards[p->last_shard];
    if (document >= last->first_document && document < last->first_document + last->documents)
        return p->last_shard;
    int low = 0, high = p->shard_count - 1;
    while (low < high) {  /* the last shard whose first document is <= document */
        int middle = (low + high + 1) / 2;
        if (p->shards[middle].first_document <= document)
            low = middle;
        else
            high = middle - 1;
    }
    p->last_shard = low;
    return low;
}

static int locate(shard_pool *p, int64_t document, indexed_dataset **data, int64_t *local,
                  status *st) {
    if (document < 0 || document >= shard_pool_documents(p))
        return status_fail(st, "%s: document %" PRId64 " out of range (%" PRId64 " documents)",
                           p->shards[0].prefix, document, shard_pool_documents(p));
    int index = find_shard(p, document);
    *local = document - p->shards[index].first_document;
    return acquire(p, index, data, st);
}

int shard_pool_document_length(shard_pool *p, int64_t document, int64_t *length, status *st) {
    indexed_dataset *d;
    int64_t local;
    if (locate(p, document, &d, &local, st) != 0) return -1;
    *length = indexed_dataset_document_length(d, local);
    return 0;
}

int shard_pool_read(shard_pool *p, int64_t document, int64_t offset, int64_t count, int32_t *out,
                    status *st) {
    indexed_dataset *d;
    int64_t local;
    if (locate(p, document, &d, &local, st) != 0) return -1;
    int64_t length = indexed_dataset_document_length(d, local);
    if (offset < 0 || count < 0 || offset + count > length)
        return status_fail(st, "%s: tokens [%" PRId64 ", %" PRId64 ") of document %" PRId64
                           " of %" PRId64 " tokens", indexed_dataset_prefix(d), offset,
                           offset + count, local, length);
    indexed_dataset_read(d, local, offset, count, out);
    return 0;
}

int shard_pool_open_peak(const shard_pool *p) { return p->open_peak; }
int64_t shard_pool_open_count(const shard_pool *p) { return p->open_count; }
