/* A Hugging Face tokenizer.json with a byte-level BPE model: the part of
 * data/tokenizer.h behind every spec other than "bytes".
 *
 * Contract: `bpe_tokenizer_open` reads the file (SHA-256 of its bytes is the
 * checksum) and accepts what docs/tokenizers.md lists: normalizer none,
 * BPE model (data/bpe_model.h), added tokens (data/bpe_added_tokens.h),
 * ByteLevel pre-tokenizers (data/pretokenizer.h), decoder ByteLevel or none;
 * post_processor, truncation and padding are ignored (encoding adds no
 * special tokens, like Hugging Face's encode(text, add_special_tokens=False)).
 * Everything else fails with one line naming the file and the field. The EOD
 * id is the first of <|endoftext|>, <|end_of_text|>, </s>, <|eot_id|>, <eos>
 * that is an added token or in model.vocab, else -1. Encoding gives Hugging
 * Face's ids for any valid UTF-8 and never fails on other bytes; decoding
 * concatenates each id's bytes (Hugging Face's ByteLevel decoder, without its
 * final UTF-8 repair, so decode(encode(x)) == x for any bytes x). An open
 * tokenizer is only read: any number of threads may encode at once. */
#ifndef CAIRN_BPE_TOKENIZER_H
#define CAIRN_BPE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "data/bpe_model.h"

typedef struct bpe_tokenizer bpe_tokenizer;

int bpe_tokenizer_open(const char *path, bpe_tokenizer **out, status *st);
void bpe_tokenizer_close(bpe_tokenizer *t);
int bpe_tokenizer_vocab_size(const bpe_tokenizer *t);
int bpe_tokenizer_eod_id(const bpe_tokenizer *t);
const char *bpe_tokenizer_checksum(const bpe_tokenizer *t);
int bpe_tokenizer_encode(const bpe_tokenizer *t, const char *text, size_t length, id_list *out,
                         status *st);

/* Per-thread encoding state; with use_cache, pre-tokens that needed the merge loop are
 * remembered across calls (data/bpe_model.h). */
typedef struct bpe_encoder bpe_encoder;
int bpe_encoder_open(const bpe_tokenizer *t, int use_cache, bpe_encoder **out, status *st);
int bpe_encoder_encode(bpe_encoder *e, const char *text, size_t length, id_list *out, status *st);
void bpe_encoder_close(bpe_encoder *e);
/* The bytes that token `id` decodes to, or NULL when no token has that id. */
const unsigned char *bpe_tokenizer_token_bytes(const bpe_tokenizer *t, int32_t id, size_t *length);

#endif
