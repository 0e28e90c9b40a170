/* Tokenizers: text <-> token ids.
 *
 * Contract: `tokenizer_open("bytes")` is the byte tokenizer: ids 0..255 are the
 * bytes, 256 is <|endoftext|> (EOD), 257 <|pad|>; vocab_size 258. Any other
 * spec is a Hugging Face tokenizer.json path with a byte-level BPE model
 * (data/bpe_tokenizer.h, docs/tokenizers.md): its ids are those of Hugging
 * Face tokenizers' encode(text, add_special_tokens=False); vocab_size is the
 * largest id + 1; the EOD id is the first of <|endoftext|>, <|end_of_text|>,
 * </s>, <|eot_id|>, <eos> that it has, or -1 when it has none. `checksum` is a
 * stable hex digest of the tokenizer's definition (for tokenizer.json: the
 * SHA-256 of the file), recorded in run.json. Encoding never fails on valid
 * UTF-8 or arbitrary bytes, and decode(encode(x)) == x unless the
 * tokenizer.json itself rewrites text (NFC, prefix spaces, lstrip/rstrip
 * tokens). A tokenizer is never written after opening: any number of threads
 * may encode with it at once. */
#ifndef CAIRN_TOKENIZER_H
#define CAIRN_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef struct tokenizer tokenizer;

int tokenizer_open(const char *spec, tokenizer **out, status *st);
void tokenizer_close(tokenizer *t);
int tokenizer_vocab_size(const tokenizer *t);
int tokenizer_eod_id(const tokenizer *t);
const char *tokenizer_checksum(const tokenizer *t);
/* Appends the ids of text[0..length) to *ids (realloc'd; *count and *capacity updated). */
int tokenizer_encode(const tokenizer *t, const char *text, size_t length, int32_t **ids,
                     size_t *count, size_t *capacity, status *st);
/* Per-thread encoding state for many documents: a tokenizer.json tokenizer keeps a cache of
 * pre-tokens that needed BPE merges, which tokenizer_encode (one call, no state) cannot. Same
 * ids as tokenizer_encode. One encoder per thread; the tokenizer must outlive it. */
typedef struct tokenizer_encoder tokenizer_encoder;
int tokenizer_encoder_open(const tokenizer *t, tokenizer_encoder **out, status *st);
int tokenizer_encoder_encode(tokenizer_encoder *e, const char *text, size_t length, int32_t **ids,
                             size_t *count, size_t *capacity, status *st);
void tokenizer_encoder_close(tokenizer_encoder *e);
/* Writes the decoded bytes into a malloc'd, NUL-terminated string. */
int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t count, char **text,
                     status *st);
/* The same, with the byte count (the bytes may contain NULs). */
int tokenizer_decode_bytes(const tokenizer *t, const int32_t *ids, size_t count, char **text,
                           size_t *length, status *st);

#endif
