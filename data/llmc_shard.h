/* llm.c token shards (karpathy/llm.c `dev/data/data_common.py` `write_datafile`).
 *
 * Layout: a header of 256 little-endian int32 (magic, version, token count, zeros) and then the
 * tokens. Two kinds exist: GPT-2 (magic 20240520, version 1, uint16 tokens, EOT 50256) and
 * Llama-3 (magic 20240801, version 7, uint32 tokens, EOT 128000, the <|begin_of_text|> id).
 *
 * Contract: `llmc_shard_parse` validates the bytes of one shard (magic, version, token count
 * against the file length, uint32 tokens below 2^31) and finds its documents. llm.c writes the
 * EOT token BEFORE every document, so a document is an EOT and the tokens up to the next one;
 * tokens before the first EOT (a document continued from the previous shard) form a document of
 * their own. Documents concatenated are exactly the token stream. Errors are one line naming
 * the file and the field. */
#ifndef CAIRN_LLMC_SHARD_H
#define CAIRN_LLMC_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

enum { LLMC_HEADER_BYTES = 1024 };

typedef struct llmc_shard {
    int32_t magic, version, eot;
    int token_bytes;       /* 2 (uint16) or 4 (uint32) */
    const uint8_t *tokens; /* the bytes after the header (borrowed from the caller) */
    int64_t token_count, document_count;
    int64_t *document_starts; /* document_count + 1 entries, the last is token_count */
} llmc_shard;

/* 1 when the regular file at path starts with an llm.c magic, 0 otherwise (also when absent). */
int llmc_shard_probe(const char *path);
/* data/size: the whole file (e.g. memory-mapped; it must outlive *out). */
int llmc_shard_parse(const char *path, const uint8_t *data, size_t size, llmc_shard *out,
                     status *st);
void llmc_shard_free(llmc_shard *s);
/* "GPT-2" or "Llama-3". */
const char *llmc_shard_kind(const llmc_shard *s);

#endif
