/* Built index arrays cached in one file, found by name and checked before use.
 *
 * Contract: index_cache_write stores up to INDEX_CACHE_MAX_ARRAYS arrays and a 32-byte key in
 * PATH by writing a temporary file beside it and renaming it, so a reader sees the previous file
 * or the complete new one, never a partial one. index_cache_map maps PATH read-only and returns
 * 1 with `arrays` pointing into the mapping (owned = 0) when the file is complete (magic, format
 * version, array table against the file size), holds `key` and `count` arrays, and its payload
 * checksum matches; otherwise 0, with *why naming the reason (missing, stale, damaged). Layout
 * (little-endian): magic "CAIRNIX\n", uint32 version, uint32 count, key[32], uint64 checksum,
 * then per array uint64 elements and uint64 width, then each array at a 64-byte boundary. */
#ifndef CAIRN_INDEX_CACHE_H
#define CAIRN_INDEX_CACHE_H

#include <stdint.h>

#include "common/status.h"
#include "data/index_array.h"

#define INDEX_CACHE_MAX_ARRAYS 8

typedef struct index_cache_mapping index_cache_mapping;

int index_cache_map(const char *path, const uint8_t key[32], int count, index_array *arrays,
                    index_cache_mapping **out, const char **why);
void index_cache_unmap(index_cache_mapping *m);
int index_cache_write(const char *path, const uint8_t key[32], int count,
                      const index_array *arrays, status *st);

#endif
