/* Tokenizer dispatch and the byte tokenizer. The byte tokenizer's checksum is
 * the SHA-256 of a canonical description, so it only changes if its ids do. */
#include "data/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sha256.h"
#include "data/bpe_tokenizer.h"

enum { BYTES_EOD = 256, BYTES_PAD = 257, BYTES_VOCAB = 258 };

static const char bytes_definition[] =
    "cairn byte tokenizer v1: ids 0..255 are bytes; 256 <|endoftext|>; 257 <|pad|>; vocab 258";

struct tokenizer {
    bpe_tokenizer *bpe;  /* NULL: the byte tokenizer */
    int vocab_size;
    int eod_id;
    char checksum[65];
    unsigned char bytes[256];  /* byte tokenizer: what ids 0..255 decode to */
};

struct tokenizer_encoder {
    const tokenizer *t;
    bpe_encoder *bpe;  /* NULL for the byte tokenizer */
};

int tokenizer_open(const char *spec, tokenizer **out, status *st) {
    *out = NULL;
    tokenizer *t = calloc(1, sizeof *t);
    if (!t) return status_fail(st, "tokenizer: out of memory");
    if (strcmp(spec, "bytes") != 0) {
        if (bpe_tokenizer_open(spec, &t->bpe, st) != 0) {
            free(t);
            return -1;
        }
        t->vocab_size = bpe_tokenizer_vocab_size(t->bpe);
        t->eod_id = bpe_tokenizer_eod_id(t->bpe);
        memcpy(t->checksum, bpe_tokenizer_checksum(t->bpe), sizeof t->checksum);
        *out = t;
        return 0;
    }
    t->vocab_size = BYTES_VOCAB;
    t->eod_id = BYTES_EOD;
    for (int b = 0; b < 256; b++) t->bytes[b] = (unsigned char)b;
    sha256_context c;
    uint8_t digest[32];
    sha256_init(&c);
    sha256_update(&c, bytes_definition, strlen(bytes_definition));
    sha256_final(&c, digest);
    sha256_hex(digest, t->checksum);
    *out = t;
    return 0;
}

void tokenizer_close(tokenizer *t) {
    if (!t) return;
    bpe_tokenizer_close(t->bpe);
    free(t);
}

int tokenizer_vocab_size(const tokenizer *t) { return t->vocab_size; }

int tokenizer_eod_id(const tokenizer *t) { return t->eod_id; }

const char *tokenizer_checksum(const tokenizer *t) { return t->checksum; }

/* Runs a bpe encoder (or, with NULL, a one-call one) on the caller's id arrays. */
static int encode_bpe(const tokenizer *t, bpe_encoder *e, const char *text, size_t length,
                      int32_t **ids, size_t *count, size_t *capacity, status *st) {
    id_list out = {*ids, *count, *capacity};
    int result = e ? bpe_encoder_encode(e, text, length, &out, st)
                   : bpe_tokenizer_encode(t->bpe, text, length, &out, st);
    *ids = out.ids;
    *count = out.count;
    *capacity = out.capacity;
    return result;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t length, int32_t **ids,
                     size_t *count, size_t *capacity, status *st) {
    if (t->bpe) return encode_bpe(t, NULL, text, length, ids, count, capacity, st);
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

int tokenizer_encoder_open(const tokenizer *t, tokenizer_encoder **out, status *st) {
    *out = calloc(1, sizeof **out);
    if (!*out) return status_fail(st, "tokenizer: out of memory");
    (*out)->t = t;
    if (t->bpe && bpe_encoder_open(t->bpe, 1, &(*out)->bpe, st) != 0) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

void tokenizer_encoder_close(tokenizer_encoder *e) {
    if (!e) return;
    bpe_encoder_close(e->bpe);
    free(e);
}

int tokenizer_encoder_encode(tokenizer_encoder *e, const char *text, size_t length, int32_t **ids,
                             size_t *count, size_t *capacity, status *st) {
    if (e->bpe) return encode_bpe(e->t, e->bpe, text, length, ids, count, capacity, st);
    return tokenizer_encode(e->t, text, length, ids, count, capacity, st);
}

/* The bytes of token id, or NULL when it has none. */
static const unsigned char *token_bytes(const tokenizer *t, int32_t id, size_t *length) {
    if (t->bpe) return bpe_tokenizer_token_bytes(t->bpe, id, length);
    const char *special = id == BYTES_EOD ? "<|endoftext|>" : id == BYTES_PAD ? "<|pad|>" : NULL;
    if (id < 0 || id >= BYTES_VOCAB) return NULL;
    *length = special ? strlen(special) : 1;
    return special ? (const unsigned char *)special : &t->bytes[id];
}

int tokenizer_decode_bytes(const tokenizer *t, const int32_t *ids, size_t count, char **text,
                           size_t *length, status *st) {
    *text = NULL;
    size_t total = 0, n;
    for (size_t i = 0; i < count; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size)
            return status_fail(st, "token id %d at position %zu is outside the vocabulary (%d)",
                               ids[i], i, t->vocab_size);
        if (!token_bytes(t, ids[i], &n))
            return status_fail(st, "token id %d at position %zu has no token in the vocabulary",
                               ids[i], i);
        total += n;
    }
    char *decoded = malloc(total + 1);
    if (!decoded) return status_fail(st, "tokenizer: out of memory decoding %zu ids", count);
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        const unsigned char *bytes = token_bytes(t, ids[i], &n);
        memcpy(decoded + used, bytes, n);
        used += n;
    }
    decoded[used] = '\0';
    *text = decoded;
    *length = used;
    return 0;
}

int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t count, char **text,
                     status *st) {
    size_t length;
    return tokenizer_decode_bytes(t, ids, count, text, &length, st);
}
