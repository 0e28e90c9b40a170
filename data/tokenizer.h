/* Tokenizers: text <-> token ids.
 *
 * Contract: `tokenizer_open("bytes")` is the byte tokenizer: ids 0..255 are the
 * bytes, 256 is <|endoftext|> (EOD), 257 <|pad|>; vocab_size 258. Any other
 * spec is a Hugging Face tokenizer.json path (byte-level BPE; data issue).
 * `checksum` is a stable hex digest of the tokenizer's definition, recorded in
 * run.json. Encoding never fails on valid UTF-8 or arbitrary bytes. */
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
/* Writes the decoded bytes into a malloc'd, NUL-terminated string. */
int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t count, char **text,
                     status *st);

#endif
