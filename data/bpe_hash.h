/* Open-addressing hash maps for the BPE tokenizer, written for fast reads
 * from many threads at once: after loading they are only read.
 *
 * Contract: `bytes_map` maps byte strings (copied in) to non-negative int32
 * values; `bytes_map_put` returns 0 when the key was new, 1 when it was
 * already there (its value is then left as it was and *existing, when not
 * NULL, receives it), -1 when out of memory. `bytes_map_get` returns the value
 * or -1. `pair_map` maps 64-bit keys other than UINT64_MAX to 64-bit values;
 * `pair_map_put` overwrites and returns 0, or -1 when out of memory;
 * `pair_map_get` returns 1 and fills *value when found, else 0. A
 * zero-initialised map is empty. */
#ifndef CAIRN_BPE_HASH_H
#define CAIRN_BPE_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct bytes_map_slot bytes_map_slot;

typedef struct bytes_map {
    bytes_map_slot *slots;
    size_t capacity, count;
    unsigned char *keys; /* every key, back to back */
    size_t keys_length, keys_capacity;
} bytes_map;

int bytes_map_put(bytes_map *m, const void *key, size_t length, int32_t value, int32_t *existing);
int32_t bytes_map_get(const bytes_map *m, const void *key, size_t length);
/* Empties the map, keeping its memory. */
void bytes_map_clear(bytes_map *m);
void bytes_map_free(bytes_map *m);

typedef struct pair_map_slot pair_map_slot;

typedef struct pair_map {
    pair_map_slot *slots;
    size_t capacity, count;
    int shift;
} pair_map;

int pair_map_put(pair_map *m, uint64_t key, uint64_t value);
int pair_map_get(const pair_map *m, uint64_t key, uint64_t *value);
void pair_map_free(pair_map *m);

#endif
