/* The BPE model of a Hugging Face tokenizer.json ("model": {"type": "BPE"}),
 * working on raw bytes: tokens written in GPT-2's byte-level alphabet are
 * stored as the bytes they stand for.
 *
 * Contract: `bpe_model_load` reads `vocab`, `merges` (both the ["a b", ...]
 * and the [["a", "b"], ...] form; "#version" lines of the first are skipped as
 * Hugging Face does; a repeated pair takes its last rank), `ignore_merges`,
 * `unk_token` and `fuse_unk`; it rejects dropout, byte_fallback, subword
 * prefixes/suffixes, and any token, id or merge it cannot honour, with one
 * line "PATH: model.FIELD: reason". `bpe_model_encode` appends the ids of one
 * pre-token exactly as Hugging Face's BPE::tokenize (models/bpe/model.rs and
 * word.rs, tokenizers 0.19): whole-token lookup first when ignore_merges is
 * set, then the merge loop (lowest rank first, leftmost on ties). A loaded
 * model is only read, so any number of threads may encode with it at once,
 * each with its own `bpe_scratch` (zero-initialised; set use_cache to keep
 * the results of the merge loop between calls). */
#ifndef CAIRN_BPE_MODEL_H
#define CAIRN_BPE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/json_parse.h"
#include "common/status.h"
#include "data/bpe_hash.h"

typedef struct bpe_model {
    bytes_map vocab;        /* raw bytes of the tokens in the byte-level alphabet -> id */
    bytes_map other_tokens; /* UTF-8 text of every other token -> id */
    pair_map merges;        /* left id << 32 | right id -> rank << 32 | merged id */
    int32_t byte_ids[256];  /* the single-byte tokens, -1 when absent */
    /* is_whole[id]: the merge loop turns the bytes of token id into [id] exactly, so a pre-token
     * equal to it can skip the loop (the loop's result, computed once at load) */
    uint8_t *is_whole;
    int32_t id_limit; /* largest id in the vocabulary + 1 */
    int32_t unk_id;   /* -1: characters without a token are dropped, as Hugging Face does */
    int fuse_unk, ignore_merges;
} bpe_model;

/* Growable id output and per-thread working memory. */
typedef struct id_list {
    int32_t *ids;
    size_t count, capacity;
} id_list;

/* Working memory of one thread. With use_cache set, pieces that needed the merge loop are
 * remembered (piece -> offset in cached_ids of its count followed by its ids) until the
 * cache fills up and is emptied. */
typedef struct bpe_scratch {
    void *symbols, *heap;
    size_t capacity;
    int use_cache;
    bytes_map cache;
    int32_t *cached_ids;
    size_t cached_length, cached_capacity;
} bpe_scratch;

int bpe_model_load(bpe_model *m, const json_value *model, const char *path, status *st);
void bpe_model_free(bpe_model *m);
/* The id of a token written as in tokenizer.json, or -1. */
int32_t bpe_model_token_id(const bpe_model *m, const char *text, size_t length);
/* 0, or -1 when out of memory. */
int bpe_model_encode(const bpe_model *m, const unsigned char *piece, size_t length, id_list *out,
                     bpe_scratch *scratch);
int id_list_push(id_list *out, int32_t id);
void bpe_scratch_free(bpe_scratch *scratch);

/* `text` quoted for an error message: control characters escaped, long tokens cut. */
const char *bpe_quote(const char *text, size_t length, char *out, size_t size);

#endif
