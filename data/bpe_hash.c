/* Linear probing over power-of-two tables kept at most half full. Byte-string
 * slots carry the full hash so most mismatches are rejected without touching
 * the key bytes. */
#include "data/bpe_hash.h"

#include <stdlib.h>
#include <string.h>

/* The first 8 key bytes sit in the slot: most tokens are that short and then never touch
 * m->keys on a lookup. */
struct bytes_map_slot {
    uint64_t prefix; /* key bytes 0..7, zero-padded */
    uint32_t offset; /* of the key in m->keys */
    uint32_t length;
    uint32_t hash;
    int32_t value; /* -1: empty */
};

struct pair_map_slot {
    uint64_t key; /* UINT64_MAX: empty */
    uint64_t value;
};

static uint64_t mix(uint64_t h) {
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        h = (h ^ word) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    uint64_t tail = 0;
    memcpy(&tail, p, n);
    return mix((h ^ tail) * 0x94d049bb133111ebull);
}

static uint64_t key_prefix(const unsigned char *key, size_t length) {
    uint64_t prefix = 0;
    memcpy(&prefix, key, length < 8 ? length : 8);
    return prefix;
}

static bytes_map_slot *bytes_slot(const bytes_map *m, const unsigned char *key, size_t length,
                                  uint32_t hash, uint64_t prefix) {
    size_t mask = m->capacity - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        bytes_map_slot *s = &m->slots[i];
        if (s->value < 0) return s;
        if (s->hash == hash && s->length == length && s->prefix == prefix &&
            (length <= 8 || memcmp(m->keys + s->offset + 8, key + 8, length - 8) == 0))
            return s;
    }
}

static int bytes_map_grow(bytes_map *m) {
    size_t capacity = m->capacity ? 2 * m->capacity : 64;
    bytes_map_slot *slots = malloc(capacity * sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < capacity; i++)
        slots[i].value = -1;
    bytes_map bigger = *m;
    bigger.slots = slots;
    bigger.capacity = capacity;
    for (size_t i = 0; i < m->capacity; i++) {
        const bytes_map_slot *s = &m->slots[i];
        if (s->value >= 0)
            *bytes_slot(&bigger, m->keys + s->offset, s->length, s->hash, s->prefix) = *s;
    }
    free(m->slots);
    *m = bigger;
    return 0;
}

int bytes_map_put(bytes_map *m, const void *key, size_t length, int32_t value, int32_t *existing) {
    if (length > UINT32_MAX || m->keys_length + length > UINT32_MAX) return -1;
    if (2 * (m->count + 1) > m->capacity && bytes_map_grow(m) != 0) return -1;
    uint32_t hash = (uint32_t)hash_bytes(key, length);
    uint64_t prefix = key_prefix(key, length);
    bytes_map_slot *s = bytes_slot(m, key, length, hash, prefix);
    if (s->value >= 0) {
        if (existing) *existing = s->value;
        return 1;
    }
    if (m->keys_length + length > m->keys_capacity) {
        size_t grown = m->keys_capacity ? m->keys_capacity : 4096;
        while (grown < m->keys_length + length)
            grown *= 2;
        unsigned char *keys = realloc(m->keys, grown);
        if (!keys) return -1;
        m->keys = keys;
        m->keys_capacity = grown;
    }
    if (length) memcpy(m->keys + m->keys_length, key, length);
    *s = (bytes_map_slot){prefix, (uint32_t)m->keys_length, (uint32_t)length, hash, value};
    m->keys_length += length;
    m->count++;
    return 0;
}

int32_t bytes_map_get(const bytes_map *m, const void *key, size_t length) {
    if (!m->capacity || length > UINT32_MAX) return -1;
    return bytes_slot(m, key, length, (uint32_t)hash_bytes(key, length), key_prefix(key, length))
        ->value;
}

void bytes_map_clear(bytes_map *m) {
    for (size_t i = 0; i < m->capacity; i++)
        m->slots[i].value = -1;
    m->count = m->keys_length = 0;
}

void bytes_map_free(bytes_map *m) {
    free(m->slots);
    free(m->keys);
    memset(m, 0, sizeof *m);
}

static pair_map_slot *pair_slot(const pair_map *m, uint64_t key) {
    size_t mask = m->capacity - 1;
    for (size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> m->shift);; i = (i + 1) & mask) {
        pair_map_slot *s = &m->slots[i];
        if (s->key == key || s->key == UINT64_MAX) return s;
    }
}

static int pair_map_grow(pair_map *m) {
    size_t capacity = m->capacity ? 2 * m->capacity : 64;
    pair_map_slot *slots = malloc(capacity * sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < capacity; i++)
        slots[i].key = UINT64_MAX;
    pair_map bigger = {slots, capacity, m->count, 64};
    while (((size_t)1 << (64 - bigger.shift)) < capacity)
        bigger.shift--;
    for (size_t i = 0; i < m->capacity; i++)
        if (m->slots[i].key != UINT64_MAX) *pair_slot(&bigger, m->slots[i].key) = m->slots[i];
    free(m->slots);
    *m = bigger;
    return 0;
}

int pair_map_put(pair_map *m, uint64_t key, uint64_t value) {
    if (2 * (m->count + 1) > m->capacity && pair_map_grow(m) != 0) return -1;
    pair_map_slot *s = pair_slot(m, key);
    if (s->key == UINT64_MAX) m->count++;
    *s = (pair_map_slot){key, value};
    return 0;
}

int pair_map_get(const pair_map *m, uint64_t key, uint64_t *value) {
    if (!m->capacity) return 0;
    const pair_map_slot *s = pair_slot(m, key);
    if (s->key == UINT64_MAX) return 0;
    *value = s->value;
    return 1;
}

void pair_map_free(pair_map *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}
