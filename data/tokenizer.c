/* Tokenizer dispatch and the byte tokenizer. The byte tokenizer's checksum is
 * the SHA-256 of a canonical description, so it only changes if its ids do. */
#include "data/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sha256.h"

enum { BYTES_EOD = 256, BYTES_PAD = 257, BYTES_VOCAB = 258 };

static const char bytes_definition[] =
    "cairn byte tokenizer v1: ids 0..255 are bytes; 256 <|endoftext|>; 257 <|pad|>; vocab 258";

struct tokenizer {
    int vocab_size;
    int eod_id;
    char checksum[65];
};

int tokenizer_open(const char *spec, tokenizer **out, status *st) {
    *out = NULL;
    if (strcmp(spec, "bytes") != 0) {
        FILE *f = fopen(spec, "rb");
        if (!f) return status_fail(st, "%s: cannot open tokenizer: %s", spec, strerror(errno));
        fclose(f);
        return status_fail(st,
                           "%s: Hugging Face tokenizer.json files are not supported yet "
                           "(use \"bytes\")",
                           spec);
    }
    tokenizer *t = calloc(1, sizeof *t);
    if (!t) return status_fail(st, "tokenizer: out of memory");
    t->vocab_size = BYTES_VOCAB;
    t->eod_id = BYTES_EOD;
    sha256_context c;
    uint8_t digest[32];
    sha256_init(&c);
    sha256_update(&c, bytes_definition, strlen(bytes_definition));
    sha256_final(&c, digest);
    sha256_hex(digest, t->checksum);
    *out = t;
    return 0;
}

void tokenizer_close(tokenizer *t) { free(t); }

int tokenizer_vocab_size(const tokenizer *t) { return t->vocab_size; }

int tokenizer_eod_id(const tokenizer *t) { return t->eod_id; }

const char *tokenizer_checksum(const tokenizer *t) { return t->checksum; }

int tokenizer_encode(const tokenizer *t, const char *text, size_t length, int32_t **ids,
                     size_t *count, size_t *capacity, status *st) {
    (void)t;
    if (*count + length > *capacity) {
        size_t grown = *capacity ? *capacity : 256;
        while (grown < *count + length) grown *= 2;
        int32_t *bigger = realloc(*ids, grown * sizeof *bigger);
        if (!bigger) return status_fail(st, "tokenizer: out of memory for %zu ids", grown);
        *ids = bigger;
        *capacity = grown;
    }
    const unsigned char *bytes = (const unsigned char *)text;
    for (size_t i = 0; i < length; i++) (*ids)[*count + i] = bytes[i];
    *count += length;
    return 0;
}

static const char *special_text(int32_t id) {
    return id == BYTES_EOD ? "<|endoftext|>" : id == BYTES_PAD ? "<|pad|>" : NULL;
}

int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t count, char **text,
                     status *st) {
    *text = NULL;
    size_t length = 0;
    for (size_t i = 0; i < count; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size)
            return status_fail(st, "token id %d at position %zu is outside the vocabulary (%d)",
                               ids[i], i, t->vocab_size);
        length += special_text(ids[i]) ? strlen(special_text(ids[i])) : 1;
    }
    char *decoded = malloc(length + 1);
    if (!decoded) return status_fail(st, "tokenizer: out of memory decoding %zu ids", count);
    char *cursor = decoded;
    for (size_t i = 0; i < count; i++) {
        const char *special = special_text(ids[i]);
        if (special) {
            memcpy(cursor, special, strlen(special));
            cursor += strlen(special);
        } else {
            *cursor++ = (char)ids[i];
        }
    }
    *cursor = '\0';
    *text = decoded;
    return 0;
}
