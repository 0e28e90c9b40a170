/* SHA-256 (FIPS 180-4), for checksums of tokenizers, data files and run provenance.
 *
 * Contract: sha256_init / sha256_update (any number of times, any sizes) /
 * sha256_final give the standard 32-byte digest; sha256_hex writes it as 64
 * lowercase hex digits plus NUL. sha256_file_hex hashes a whole file and fails
 * with a one-line message naming the file. */
#ifndef CAIRN_SHA256_H
#define CAIRN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef struct sha256_context {
    uint32_t state[8];
    uint64_t length;      /* bytes hashed so far */
    uint8_t block[64];
    size_t used;          /* bytes waiting in block */
} sha256_context;

void sha256_init(sha256_context *c);
void sha256_update(sha256_context *c, const void *data, size_t size);
void sha256_final(sha256_context *c, uint8_t digest[32]);
void sha256_hex(const uint8_t digest[32], char hex[65]);
int sha256_file_hex(const char *path, char hex[65], status *st);

#endif
