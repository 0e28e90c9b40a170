/* The `added_tokens` of a tokenizer.json: tokens found in the raw text before
 * pre-tokenization, as Hugging Face's AddedVocabulary does (tokenizers 0.19,
 * tokenizer/added_vocabulary.rs).
 *
 * Contract: `added_tokens_load` reads {id, content, single_word, lstrip,
 * rstrip, normalized, special} for each token and checks that `id` is the id
 * Hugging Face gives the token (its model.vocab id when it has one, else the
 * next free id); a mismatch, a repeated or empty content, or a field of the
 * wrong type is a one-line error. `added_tokens_split` cuts text into pieces:
 * the tokens of one trie (normalized == 0: tokens matched on the raw text;
 * 1: the others, matched in what the first pass left), leftmost-longest and
 * non-overlapping, honouring single_word (no Unicode word character, \w of
 * Rust's regex crate, on either side), lstrip and rstrip (the White_Space run
 * before/after is swallowed); `emit` gets (start, end, id) for each token and
 * (start, end, -1) for each non-empty stretch of text between them, and
 * returns 0, or -1 (emit's -1, or out of memory with st filled). Read-only
 * after loading: safe to use from several threads at once. */
#ifndef CAIRN_BPE_ADDED_TOKENS_H
#define CAIRN_BPE_ADDED_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "common/json_parse.h"
#include "common/status.h"
#include "data/bpe_hash.h"
#include "data/bpe_model.h"

typedef struct added_token {
    char *content;
    size_t length;
    int32_t id;
    int single_word, lstrip, rstrip, normalized, special;
} added_token;

typedef struct token_trie {
    pair_map children; /* node << 8 | byte -> child node; node 0 is the root */
    int32_t *terminal; /* node -> index of the token ending there, or -1 */
    size_t nodes, node_capacity;
    uint8_t starts[256]; /* bytes some token starts with */
} token_trie;

typedef struct added_tokens {
    added_token *tokens;
    size_t count;
    token_trie tries[2];
    void *word_class; /* compiled \w for single_word tokens, NULL when there are none */
} added_tokens;

typedef int (*added_tokens_emit)(void *context, size_t start, size_t end, int32_t id);

/* `list` is the "added_tokens" value (NULL or null: none); with nfc set, tokens with
 * normalized true are matched in their NFC form, as the text they are looked for in is. */
int added_tokens_load(added_tokens *a, const json_value *list, const bpe_model *model, int nfc,
                      const char *path, status *st);
void added_tokens_free(added_tokens *a);
/* The id of the added token with this content, or -1. */
int32_t added_tokens_find(const added_tokens *a, const char *content, size_t length);
int added_tokens_split(const added_tokens *a, int normalized, const unsigned char *text,
                       size_t length, added_tokens_emit emit, void *context, status *st);

#endif
