/* NFC in three passes over a code point buffer: decompose (tables, Hangul by
 * arithmetic), put each run of combining marks in canonical order (stable
 * insertion sort), then compose with the UAX #15 algorithm: a mark joins the
 * last starter unless a mark of the same or higher class, or a starter, stands
 * between them. */
#include "data/bpe_nfc.h"

#include <stdlib.h>
#include <string.h>

#include "data/bpe_nfc_tables.h"
#include "data/bpe_unicode.h"

enum {
    HANGUL_S = 0xAC00,
    HANGUL_L = 0x1100,
    HANGUL_V = 0x1161,
    HANGUL_T = 0x11A7,
    HANGUL_L_COUNT = 19,
    HANGUL_V_COUNT = 21,
    HANGUL_T_COUNT = 28,
    HANGUL_N = HANGUL_V_COUNT * HANGUL_T_COUNT,
    HANGUL_S_COUNT = HANGUL_L_COUNT * HANGUL_N,
    FIRST_UNSAFE = 0x300,
    RAW_BYTE = 0x110000, /* + byte: an ill-formed byte, kept as it is */
};

/* bsearch comparisons: a code point (or a pair of them) against a table entry */
static int compare_range(const void *key, const void *entry) {
    uint32_t cp = *(const uint32_t *)key;
    const nfc_range *r = entry;
    return cp < r->first ? -1 : cp > r->last ? 1 : 0;
}

static int compare_decomposition(const void *key, const void *entry) {
    uint32_t cp = *(const uint32_t *)key, other = ((const nfc_decomposition *)entry)->code_point;
    return cp < other ? -1 : cp > other;
}

static int compare_composition(const void *key, const void *entry) {
    const uint32_t *pair = key;
    const nfc_composition *c = entry;
    if (pair[0] != c->first) return pair[0] < c->first ? -1 : 1;
    return pair[1] < c->second ? -1 : pair[1] > c->second;
}

static int combining_class(uint32_t cp) {
    const nfc_range *r = cp < FIRST_UNSAFE
                             ? NULL
                             : bsearch(&cp, nfc_classes, nfc_class_count, sizeof *r, compare_range);
    return r ? r->value : 0;
}

static const nfc_decomposition *decomposition(uint32_t cp) {
    return bsearch(&cp, nfc_decompositions, nfc_decomposition_count, sizeof *nfc_decompositions,
                   compare_decomposition);
}

/* The primary composite of first + second, or 0. */
static uint32_t compose(uint32_t first, uint32_t second) {
    if (first >= HANGUL_L && first < HANGUL_L + HANGUL_L_COUNT && second >= HANGUL_V &&
        second < HANGUL_V + HANGUL_V_COUNT)
        return HANGUL_S +
               ((first - HANGUL_L) * HANGUL_V_COUNT + (second - HANGUL_V)) * HANGUL_T_COUNT;
    if (first >= HANGUL_S && first < HANGUL_S + HANGUL_S_COUNT &&
        (first - HANGUL_S) % HANGUL_T_COUNT == 0 && second > HANGUL_T &&
        second < HANGUL_T + HANGUL_T_COUNT)
        return first + (second - HANGUL_T);
    uint32_t pair[2] = {first, second};
    const nfc_composition *c = bsearch(pair, nfc_compositions, nfc_composition_count,
                                       sizeof *nfc_compositions, compare_composition);
    return c ? c->composite : 0;
}

int bpe_nfc_is_stable(const unsigned char *text, size_t length) {
    for (size_t i = 0; i < length;) {
        if (text[i] < 0xCC) { /* every code point below U+0300 is stable */
            i++;
            continue;
        }
        uint32_t cp;
        i += utf8_decode(text + i, length - i, &cp);
        if (cp != UTF8_INVALID &&
            bsearch(&cp, nfc_unsafe, nfc_unsafe_count, sizeof *nfc_unsafe, compare_range))
            return 0;
    }
    return 1;
}

void nfc_buffer_free(nfc_buffer *b) {
    free(b->code_points);
    b->code_points = NULL;
    b->capacity = 0;
}

/* Decomposes text into work; returns the number of code points or -1. */
static long decompose(const unsigned char *text, size_t length, nfc_buffer *work) {
    long n = 0;
    for (size_t i = 0; i < length;) {
        /* canonical decompositions are at most 4 code points long (U+1FAF) */
        if ((size_t)n + 4 > work->capacity) {
            size_t grown = work->capacity ? 2 * work->capacity : 256;
            uint32_t *bigger = realloc(work->code_points, grown * sizeof *bigger);
            if (!bigger) return -1;
            work->code_points = bigger;
            work->capacity = grown;
        }
        uint32_t *out = work->code_points;
        uint32_t cp;
        size_t bytes = utf8_decode(text + i, length - i, &cp);
        if (cp == UTF8_INVALID) cp = RAW_BYTE + text[i];
        i += bytes;
        const nfc_decomposition *d = cp >= FIRST_UNSAFE ? decomposition(cp) : NULL;
        if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_S_COUNT) {
            uint32_t s = cp - HANGUL_S;
            out[n++] = HANGUL_L + s / HANGUL_N;
            out[n++] = HANGUL_V + s % HANGUL_N / HANGUL_T_COUNT;
            if (s % HANGUL_T_COUNT) out[n++] = HANGUL_T + s % HANGUL_T_COUNT;
        } else if (d) {
            memcpy(out + n, nfc_decomposition_pool + d->offset, d->length * sizeof *out);
            n += d->length;
        } else {
            out[n++] = cp;
        }
    }
    return n;
}

static void canonical_order(uint32_t *cp, long n) {
    for (long i = 1; i < n; i++) {
        int c = combining_class(cp[i]);
        if (c == 0) continue;
        uint32_t moving = cp[i];
        long j = i;
        while (j > 0 && combining_class(cp[j - 1]) > c) {
            cp[j] = cp[j - 1];
            j--;
        }
        cp[j] = moving;
    }
}

static long compose_all(uint32_t *cp, long n) {
    if (n == 0) return 0;
    long starter = 0, kept = 1;
    int last_class = combining_class(cp[0]) ? 256 : 0;
    for (long i = 1; i < n; i++) {
        int c = combining_class(cp[i]);
        uint32_t composite = compose(cp[starter], cp[i]);
        if (composite && (last_class < c || last_class == 0)) {
            cp[starter] = composite;
            continue;
        }
        if (c == 0) starter = kept;
        last_class = c;
        cp[kept++] = cp[i];
    }
    return kept;
}

int bpe_nfc(const unsigned char *text, size_t length, text_buffer *out, nfc_buffer *work) {
    out->length = 0;
    if (text_buffer_append(out, "", 0) != 0) return -1;
    long n = decompose(text, length, work);
    if (n < 0) return -1;
    canonical_order(work->code_points, n);
    n = compose_all(work->code_points, n);
    for (long i = 0; i < n; i++) {
        uint32_t cp = work->code_points[i];
        char bytes[4] = {(char)(cp - RAW_BYTE)};
        size_t count = cp >= RAW_BYTE ? 1 : utf8_encode(cp, bytes);
        if (text_buffer_append(out, bytes, count) != 0) return -1;
    }
    return 0;
}
