/* A flat array of non-negative integers stored in 2, 4 or 8 bytes per element: Megatron's
 * int16 / int32 / uint32 / int64 index arrays, held in memory or in a mapped cache file.
 *
 * Contract: `width` is the element size in bytes; elements of width 2 and 4 are read as
 * unsigned (every stored index is non-negative, and Megatron's shuffle index is uint32), width
 * 8 as int64. `owned` says whether `data` was malloc'd by whoever filled the array. */
#ifndef CAIRN_INDEX_ARRAY_H
#define CAIRN_INDEX_ARRAY_H

#include <stdint.h>
#include <stdlib.h>

typedef struct index_array {
    void *data;
    int64_t count;
    int width;
    int owned;
} index_array;

static inline int64_t index_array_get(const index_array *a, int64_t i) {
    switch (a->width) {
    case 2: return ((const uint16_t *)a->data)[i];
    case 4: return ((const uint32_t *)a->data)[i];
    default: return ((const int64_t *)a->data)[i];
    }
}

static inline void index_array_set(index_array *a, int64_t i, int64_t value) {
    switch (a->width) {
    case 2: ((uint16_t *)a->data)[i] = (uint16_t)value; break;
    case 4: ((uint32_t *)a->data)[i] = (uint32_t)value; break;
    default: ((int64_t *)a->data)[i] = value; break;
    }
}

/* Allocates count elements of `width` bytes (uninitialised); 0, or -1 when out of memory. */
static inline int index_array_alloc(index_array *a, int64_t count, int width) {
    a->count = count;
    a->width = width;
    a->owned = 1;
    a->data = malloc(count > 0 ? (size_t)count * (size_t)width : 1);
    return a->data ? 0 : -1;
}

static inline void index_array_release(index_array *a) {
    if (a->owned) free(a->data);
    a->data = NULL;
    a->count = 0;
    a->owned = 0;
}

#endif
