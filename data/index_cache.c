#include "data/index_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC "CAIRNIX\n"
enum { CACHE_VERSION = 1, ALIGNMENT = 64, BLOCK = 32, FIXED_HEADER = 56, TABLE_ENTRY = 16 };

struct index_cache_mapping {
    void *data;
    size_t size;
};

static size_t aligned(size_t offset) { return (offset + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT; }

static size_t header_size(int count) { return aligned(FIXED_HEADER + (size_t)count * TABLE_ENTRY); }

/* A fast checksum of the payload (a whole number of 32-byte blocks, since every array is padded
 * to 64 bytes): four multiply-xorshift lanes. It detects damage, not tampering. */
typedef struct checksum {
    uint64_t lanes[4];
} checksum;

static const uint64_t PRIME = 0x9e3779b97f4a7c15ull;

static void checksum_block(checksum *c, const uint8_t *block) {
    for (int j = 0; j < 4; j++) {
        uint64_t word;
        memcpy(&word, block + 8 * j, 8);
        c->lanes[j] = (c->lanes[j] ^ word) * PRIME;
        c->lanes[j] ^= c->lanes[j] >> 29;
    }
}

/* Feeds `bytes` of data followed by zeros up to `padded` (a multiple of 32). */
static void checksum_region(checksum *c, const uint8_t *data, size_t bytes, size_t padded) {
    size_t i = 0;
    for (; i + BLOCK <= bytes; i += BLOCK) checksum_block(c, data + i);
    uint8_t block[BLOCK];
    for (; i < padded; i += BLOCK) {
        memset(block, 0, sizeof block);
        if (i < bytes) memcpy(block, data + i, bytes - i);
        checksum_block(c, block);
    }
}

static uint64_t checksum_final(const checksum *c) {
    uint64_t sum = 0;
    for (int j = 0; j < 4; j++) sum = (sum ^ c->lanes[j]) * PRIME ^ (sum >> 31);
    return sum;
}

static size_t array_bytes(const index_array *a) { return (size_t)a->count * (size_t)a->width; }

/* Offsets of each array's data; returns the total file size. */
static size_t layout(int count, const index_array *arrays, size_t *offsets) {
    size_t offset = header_size(count);
    for (int i = 0; i < count; i++) {
        offsets[i] = offset;
        offset = aligned(offset + array_bytes(&arrays[i]));
    }
    return offset;
}

static uint64_t payload_checksum(int count, const index_array *arrays, const size_t *offsets,
                                 size_t size) {
    checksum c = {{1, 2, 3, 4}};
    for (int i = 0; i < count; i++) {
        size_t end = i + 1 < count ? offsets[i + 1] : size;
        checksum_region(&c, arrays[i].data, array_bytes(&arrays[i]), end - offsets[i]);
    }
    return checksum_final(&c);
}

int index_cache_map(const char *path, const uint8_t key[32], int count, index_array *arrays,
                    index_cache_mapping **out, const char **why) {
    *out = NULL;
    *why = "missing";
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    struct stat info;
    void *data = MAP_FAILED;
    if (fstat(fd, &info) == 0 && S_ISREG(info.st_mode) && info.st_size >= FIXED_HEADER)
        data = mmap(NULL, (size_t)info.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    *why = "damaged";
    if (data == MAP_FAILED) return 0;
    size_t size = (size_t)info.st_size;
    const uint8_t *bytes = data;
    uint32_t version, stored_count;
    memcpy(&version, bytes + 8, 4);
    memcpy(&stored_count, bytes + 12, 4);
    int valid = memcmp(bytes, CACHE_MAGIC, 8) == 0 && version == CACHE_VERSION &&
                stored_count == (uint32_t)count && count <= INDEX_CACHE_MAX_ARRAYS &&
                size >= header_size(count);
    if (valid && memcmp(bytes + 16, key, 32) != 0) {
        *why = "stale";
        valid = 0;
    }
    size_t offsets[INDEX_CACHE_MAX_ARRAYS] = {0};
    for (int i = 0; valid && i < count; i++) {
        uint64_t entry[2];
        memcpy(entry, bytes + FIXED_HEADER + (size_t)i * TABLE_ENTRY, sizeof entry);
        valid = (entry[1] == 2 || entry[1] == 4 || entry[1] == 8) && entry[0] <= size / entry[1];
        arrays[i] = (index_array){NULL, (int64_t)entry[0], (int)entry[1], 0};
    }
    if (valid) valid = layout(count, arrays, offsets) == size;
    for (int i = 0; valid && i < count; i++) arrays[i].data = (uint8_t *)data + offsets[i];
    uint64_t stored_sum;
    memcpy(&stored_sum, bytes + 48, 8);
    if (valid) valid = payload_checksum(count, arrays, offsets, size) == stored_sum;
    index_cache_mapping *m = valid ? malloc(sizeof *m) : NULL;
    if (!m) {
        munmap(data, size);
        return 0;
    }
    m->data = data;
    m->size = size;
    *out = m;
    *why = "";
    return 1;
}

void index_cache_unmap(index_cache_mapping *m) {
    if (!m) return;
    munmap(m->data, m->size);
    free(m);
}

static int write_all(int fd, const void *bytes, size_t size) {
    for (size_t done = 0; done < size;) {
        ssize_t wrote = write(fd, (const uint8_t *)bytes + done, size - done);
        if (wrote <= 0) return -1;
        done += (size_t)wrote;
    }
    return 0;
}

static int write_file(int fd, const uint8_t key[32], int count, const index_array *arrays) {
    size_t offsets[INDEX_CACHE_MAX_ARRAYS] = {0};
    size_t size = layout(count, arrays, offsets);
    uint8_t header[ALIGNMENT * 4] = {0}, zeros[ALIGNMENT] = {0};
    memcpy(header, CACHE_MAGIC, 8);
    uint32_t version = CACHE_VERSION, stored_count = (uint32_t)count;
    memcpy(header + 8, &version, 4);
    memcpy(header + 12, &stored_count, 4);
    memcpy(header + 16, key, 32);
    uint64_t sum = payload_checksum(count, arrays, offsets, size);
    memcpy(header + 48, &sum, 8);
    for (int i = 0; i < count; i++) {
        uint64_t entry[2] = {(uint64_t)arrays[i].count, (uint64_t)arrays[i].width};
        memcpy(header + FIXED_HEADER + (size_t)i * TABLE_ENTRY, entry, sizeof entry);
    }
    if (write_all(fd, header, header_size(count)) != 0) return -1;
    for (int i = 0; i < count; i++) {
        size_t end = i + 1 < count ? offsets[i + 1] : size;
        if (write_all(fd, arrays[i].data, array_bytes(&arrays[i])) != 0 ||
            write_all(fd, zeros, end - offsets[i] - array_bytes(&arrays[i])) != 0)
            return -1;
    }
    return fchmod(fd, 0644);
}

int index_cache_write(const char *path, const uint8_t key[32], int count,
                      const index_array *arrays, status *st) {
    _Static_assert(FIXED_HEADER + INDEX_CACHE_MAX_ARRAYS * TABLE_ENTRY <= ALIGNMENT * 4,
                   "the header buffer holds the largest array table");
    if (count > INDEX_CACHE_MAX_ARRAYS)
        return status_fail(st, "%s: %d arrays, at most %d", path, count, INDEX_CACHE_MAX_ARRAYS);
    size_t length = strlen(path);
    char *temporary = malloc(length + 16);
    if (!temporary) return status_fail(st, "%s: out of memory", path);
    snprintf(temporary, length + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(temporary);
    if (fd < 0) {
        status_fail(st, "%s: cannot create: %s", temporary, strerror(errno));
        free(temporary);
        return -1;
    }
    int written = write_file(fd, key, count, arrays) == 0;
    int error = errno;
    if (close(fd) != 0 && written) {
        written = 0;
        error = errno;
    }
    int rc = 0;
    if (!written)
        rc = status_fail(st, "%s: cannot write: %s", temporary, strerror(error));
    else if (rename(temporary, path) != 0)
        rc = status_fail(st, "%s: cannot rename to %s: %s", temporary, path, strerror(errno));
    if (rc != 0) unlink(temporary);
    free(temporary);
    return rc;
}
