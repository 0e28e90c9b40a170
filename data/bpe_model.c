/* BPE over the bytes of one pre-token. The merge loop is Hugging Face's
 * (word.rs::merge_all): a min-heap of (rank, position) candidates, each checked
 * against the current pair before it is applied, so stale entries are
 * skipped. Because a merged token is the concatenation of its parts, a stale
 * entry never passes that check and the loop always applies the lowest-rank,
 * leftmost pair of the current symbols. */
#include "data/bpe_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/bpe_fields.h"
#include "data/bpe_unicode.h"
#include "data/text_buffer.h"

enum {
    ID_LIMIT = 1 << 24,
    SMALL_PIECE = 64,
    CACHED_PIECE = 256, /* longer pieces are rare: not worth the cache's memory */
    CACHE_PIECES = 1 << 16,
    CACHE_IDS = 1 << 20,
};

typedef struct symbol {
    int32_t id, prev, next;
    uint32_t length; /* bytes covered; 0 once merged into its left neighbour */
} symbol;

typedef struct candidate {
    uint32_t rank, position;
    int32_t merged;
} candidate;

const char *bpe_quote(const char *text, size_t length, char *out, size_t size) {
    size_t used = 0, i = 0;
    out[used++] = '"';
    for (; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        char piece[8] = {(char)c};
        int n = c < 0x20                ? snprintf(piece, sizeof piece, "\\x%02x", c)
                : c == '"' || c == '\\' ? snprintf(piece, sizeof piece, "\\%c", c)
                                        : 1;
        if (used + (size_t)n + 5 > size) break; /* keep room for ...", and NUL */
        memcpy(out + used, piece, (size_t)n);
        used += (size_t)n;
    }
    if (i < length) {
        /* cut at a character boundary: continuation bytes were copied one for one */
        for (; i > 0 && ((unsigned char)text[i] & 0xC0) == 0x80; i--)
            used--;
        memcpy(out + used, "...", 3);
        used += 3;
    }
    out[used++] = '"';
    out[used] = '\0';
    return out;
}

int id_list_push(id_list *out, int32_t id) {
    if (out->count == out->capacity) {
        size_t grown = out->capacity ? 2 * out->capacity : 256;
        int32_t *bigger = realloc(out->ids, grown * sizeof *bigger);
        if (!bigger) return -1;
        out->ids = bigger;
        out->capacity = grown;
    }
    out->ids[out->count++] = id;
    return 0;
}

void bpe_scratch_free(bpe_scratch *scratch) {
    free(scratch->symbols);
    free(scratch->heap);
    bytes_map_free(&scratch->cache);
    free(scratch->cached_ids);
    memset(scratch, 0, sizeof *scratch);
}

static int candidate_before(const candidate *a, const candidate *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->position < b->position);
}

static void heap_push(candidate *heap, size_t *size, candidate c) {
    size_t i = (*size)++;
    while (i > 0 && candidate_before(&c, &heap[(i - 1) / 2])) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = c;
}

static candidate heap_pop(candidate *heap, size_t *size) {
    candidate top = heap[0], last = heap[--*size];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *size) break;
        if (child + 1 < *size && candidate_before(&heap[child + 1], &heap[child])) child++;
        if (!candidate_before(&heap[child], &last)) break;
        heap[i] = heap[child];
        i = child;
    }
    if (*size) heap[i] = last;
    return top;
}

static uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}

/* Pushes the candidate merge of symbols[left] and its right neighbour `right`, if any. */
static void consider(const bpe_model *m, const symbol *symbols, int32_t left, int32_t right,
                     candidate *heap, size_t *heap_size) {
    uint64_t value;
    if (pair_map_get(&m->merges, pair_key(symbols[left].id, symbols[right].id), &value))
        heap_push(heap, heap_size,
                  (candidate){(uint32_t)(value >> 32), (uint32_t)left, (int32_t)(uint32_t)value});
}

static void merge_all(const bpe_model *m, symbol *symbols, size_t count, candidate *heap) {
    size_t heap_size = 0;
    for (size_t i = 0; i + 1 < count; i++)
        consider(m, symbols, (int32_t)i, (int32_t)i + 1, heap, &heap_size);
    while (heap_size) {
        candidate top = heap_pop(heap, &heap_size);
        symbol *left = &symbols[top.position];
        if (left->length == 0 || left->next < 0) continue;
        symbol right = symbols[left->next];
        uint64_t value;
        if (!pair_map_get(&m->merges, pair_key(left->id, right.id), &value) ||
            (int32_t)(uint32_t)value != top.merged)
            continue;
        symbols[left->next].length = 0;
        left->id = top.merged;
        left->length += right.length;
        left->next = right.next;
        if (right.next >= 0) symbols[right.next].prev = (int32_t)top.position;
        if (left->prev >= 0)
            consider(m, symbols, left->prev, (int32_t)top.position, heap, &heap_size);
        if (left->next >= 0)
            consider(m, symbols, (int32_t)top.position, left->next, heap, &heap_size);
    }
}

static void add_symbol(symbol *symbols, size_t *count, int32_t id, uint32_t length) {
    int32_t n = (int32_t)*count;
    symbols[n] = (symbol){id, n - 1, -1, length};
    if (n > 0) symbols[n - 1].next = n;
    (*count)++;
}

/* The merge loop for short pieces: the rank of every adjacent pair is kept next to it and the
 * lowest (leftmost on ties) is found by a scan, which beats the heap on a handful of symbols
 * and applies the same merges in the same order. */
static void merge_short(const bpe_model *m, int32_t *ids, size_t *count) {
    uint32_t ranks[SMALL_PIECE];
    int32_t merged[SMALL_PIECE];
    size_t n = *count;
    for (size_t i = 0; i + 1 < n; i++) {
        uint64_t value;
        int found = pair_map_get(&m->merges, pair_key(ids[i], ids[i + 1]), &value);
        ranks[i] = found ? (uint32_t)(value >> 32) : UINT32_MAX;
        merged[i] = (int32_t)(uint32_t)value;
    }
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (ranks[i] < ranks[best]) best = i;
        if (ranks[best] == UINT32_MAX) break;
        ids[best] = merged[best];
        n--;
        memmove(ids + best + 1, ids + best + 2, (n - best - 1) * sizeof *ids);
        memmove(ranks + best + 1, ranks + best + 2, (n - best - 1) * sizeof *ranks);
        memmove(merged + best + 1, merged + best + 2, (n - best - 1) * sizeof *merged);
        for (size_t i = best > 0 ? best - 1 : 0; i <= best && i + 1 < n; i++) {
            uint64_t value;
            int found = pair_map_get(&m->merges, pair_key(ids[i], ids[i + 1]), &value);
            ranks[i] = found ? (uint32_t)(value >> 32) : UINT32_MAX;
            merged[i] = (int32_t)(uint32_t)value;
        }
    }
    *count = n;
}

/* Symbols of a long piece, or just the ids of a short one. */
typedef struct symbol_list {
    symbol *symbols;
    int32_t *ids;
    size_t count;
} symbol_list;

static void list_add(symbol_list *l, int32_t id, uint32_t length) {
    if (l->symbols)
        add_symbol(l->symbols, &l->count, id, length);
    else
        l->ids[l->count++] = id;
}

/* The merge loop on the bytes of a piece, without the whole-token shortcut. */
static int merge_piece(const bpe_model *m, const unsigned char *piece, size_t length, id_list *out,
                       bpe_scratch *scratch) {
    int32_t short_ids[SMALL_PIECE];
    symbol *symbols = NULL;
    if (length > SMALL_PIECE) {
        if (length > scratch->capacity) {
            /* each applied merge pushes at most two candidates: 3 per byte bounds the heap */
            symbol *more_symbols = realloc(scratch->symbols, length * sizeof *more_symbols);
            if (more_symbols) scratch->symbols = more_symbols;
            candidate *more_heap = realloc(scratch->heap, 3 * length * sizeof *more_heap);
            if (more_heap) scratch->heap = more_heap;
            if (!more_symbols || !more_heap) return -1;
            scratch->capacity = length;
        }
        symbols = scratch->symbols;
    }
    symbol_list list = {symbols, short_ids, 0};
    uint32_t unknown = 0; /* bytes waiting for an unk token */
    for (size_t i = 0; i < length; i++) {
        int32_t id = m->byte_ids[piece[i]];
        if (id < 0 && m->unk_id < 0) continue; /* no token and no unk token: dropped */
        if (unknown && (id >= 0 || !m->fuse_unk)) {
            list_add(&list, m->unk_id, unknown);
            unknown = 0;
        }
        if (id >= 0)
            list_add(&list, id, 1);
        else
            unknown++;
    }
    if (unknown) list_add(&list, m->unk_id, unknown);
    size_t count = list.count;
    if (!symbols) {
        merge_short(m, short_ids, &count);
        for (size_t i = 0; i < count; i++)
            if (id_list_push(out, short_ids[i]) != 0) return -1;
        return 0;
    }
    merge_all(m, symbols, count, scratch->heap);
    for (size_t i = 0; i < count; i++)
        if (symbols[i].length && id_list_push(out, symbols[i].id) != 0) return -1;
    return 0;
}

/* Remembers the ids out->ids[first..] of piece; 0, or -1 when out of memory. */
static int cache_put(bpe_scratch *s, const unsigned char *piece, size_t length, const id_list *out,
                     size_t first) {
    size_t count = out->count - first;
    if (s->cache.count >= CACHE_PIECES || s->cached_length + count + 1 > CACHE_IDS) {
        bytes_map_clear(&s->cache);
        s->cached_length = 0;
    }
    if (s->cached_length + count + 1 > s->cached_capacity) {
        size_t grown = s->cached_capacity ? 2 * s->cached_capacity : 4096;
        while (grown < s->cached_length + count + 1)
            grown *= 2;
        int32_t *bigger = realloc(s->cached_ids, grown * sizeof *bigger);
        if (!bigger) return -1;
        s->cached_ids = bigger;
        s->cached_capacity = grown;
    }
    if (bytes_map_put(&s->cache, piece, length, (int32_t)s->cached_length, NULL) < 0) return -1;
    s->cached_ids[s->cached_length] = (int32_t)count;
    memcpy(s->cached_ids + s->cached_length + 1, out->ids + first, count * sizeof *out->ids);
    s->cached_length += count + 1;
    return 0;
}

int bpe_model_encode(const bpe_model *m, const unsigned char *piece, size_t length, id_list *out,
                     bpe_scratch *scratch) {
    if (length == 0) return 0;
    int32_t id = bytes_map_get(&m->vocab, piece, length);
    if (id >= 0 && (m->ignore_merges || m->is_whole[id])) return id_list_push(out, id);
    int cached = scratch->use_cache && length <= CACHED_PIECE;
    int32_t at = cached ? bytes_map_get(&scratch->cache, piece, length) : -1;
    if (at >= 0) {
        const int32_t *ids = scratch->cached_ids + at + 1;
        for (int32_t i = 0; i < ids[-1]; i++)
            if (id_list_push(out, ids[i]) != 0) return -1;
        return 0;
    }
    size_t first = out->count;
    if (merge_piece(m, piece, length, out, scratch) != 0) return -1;
    return cached ? cache_put(scratch, piece, length, out, first) : 0;
}

static int32_t lookup_token(const bpe_model *m, const char *text, size_t length,
                            unsigned char *buffer) {
    long n = byte_level_to_bytes(text, length, buffer);
    return n >= 0 ? bytes_map_get(&m->vocab, buffer, (size_t)n)
                  : bytes_map_get(&m->other_tokens, text, length);
}

int32_t bpe_model_token_id(const bpe_model *m, const char *text, size_t length) {
    unsigned char small[256];
    unsigned char *buffer = length <= sizeof small ? small : malloc(length);
    if (!buffer) return -2;
    int32_t id = lookup_token(m, text, length, buffer);
    if (buffer != small) free(buffer);
    return id;
}

void bpe_model_free(bpe_model *m) {
    bytes_map_free(&m->vocab);
    bytes_map_free(&m->other_tokens);
    pair_map_free(&m->merges);
    free(m->is_whole);
    memset(m, 0, sizeof *m);
}

static int out_of_memory(const field_context *c) {
    return status_fail(c->st, "%s: out of memory", c->path);
}

static int vocab_id(const field_context *c, const json_member *member, int32_t *id) {
    char quoted[96], where[128];
    const json_value *v = &member->value;
    if (v->type != JSON_NUMBER || !v->is_integer || v->as.number < 0 || v->as.number >= ID_LIMIT) {
        snprintf(where, sizeof where, "model.vocab[%s]",
                 bpe_quote(member->key, member->key_length, quoted, sizeof quoted));
        return field_error(c, where, NULL, "the id must be an integer in [0, %d)", ID_LIMIT);
    }
    *id = (int32_t)v->as.number;
    return 0;
}

static int load_vocab(bpe_model *m, const field_context *c, const json_value *vocab) {
    size_t longest = 0;
    for (size_t i = 0; i < vocab->length; i++) {
        int32_t id = 0;
        if (vocab_id(c, &vocab->as.members[i], &id) != 0) return -1;
        if (id + 1 > m->id_limit) m->id_limit = id + 1;
        if (vocab->as.members[i].key_length > longest) longest = vocab->as.members[i].key_length;
    }
    uint32_t *owner = calloc((size_t)m->id_limit + 1, sizeof *owner); /* member index + 1 */
    unsigned char *bytes = malloc(longest + 1);
    int result = owner && bytes ? 0 : out_of_memory(c);
    for (size_t i = 0; i < vocab->length && result == 0; i++) {
        const json_member *token = &vocab->as.members[i];
        char quoted[96], other[96];
        int32_t id = 0;
        vocab_id(c, token, &id);
        if (owner[id]) {
            const json_member *first = &vocab->as.members[owner[id] - 1];
            result = field_error(c, "model", "vocab", "id %d is given to both %s and %s", id,
                                 bpe_quote(first->key, first->key_length, other, sizeof other),
                                 bpe_quote(token->key, token->key_length, quoted, sizeof quoted));
            break;
        }
        owner[id] = (uint32_t)i + 1;
        long n = byte_level_to_bytes(token->key, token->key_length, bytes);
        int put = n >= 0 ? bytes_map_put(&m->vocab, bytes, (size_t)n, id, NULL)
                         : bytes_map_put(&m->other_tokens, token->key, token->key_length, id, NULL);
        if (put < 0) result = out_of_memory(c);
        if (put > 0)
            result = field_error(c, "model", "vocab", "token %s appears twice",
                                 bpe_quote(token->key, token->key_length, quoted, sizeof quoted));
        if (n == 1) m->byte_ids[bytes[0]] = id;
    }
    free(owner);
    free(bytes);
    return result;
}

/* Splits merges[index] into its two tokens: "a b" or ["a", "b"]. 1: a "#version" line to skip. */
static int merge_parts(const field_context *c, const json_value *merge, size_t index,
                       const char **parts, size_t *lengths) {
    char where[64], quoted[96];
    snprintf(where, sizeof where, "model.merges[%zu]", index);
    if (merge->type == JSON_STRING) {
        if (strncmp(merge->as.string, "#version", 8) == 0) return 1;
        const char *space = memchr(merge->as.string, ' ', merge->length);
        if (!space ||
            memchr(space + 1, ' ', merge->length - (size_t)(space + 1 - merge->as.string)))
            return field_error(c, where, NULL, "%s is not two tokens separated by one space",
                               bpe_quote(merge->as.string, merge->length, quoted, sizeof quoted));
        parts[0] = merge->as.string;
        lengths[0] = (size_t)(space - merge->as.string);
        parts[1] = space + 1;
        lengths[1] = merge->length - lengths[0] - 1;
        return 0;
    }
    if (merge->type != JSON_ARRAY || merge->length != 2 || merge->as.items[0].type != JSON_STRING ||
        merge->as.items[1].type != JSON_STRING)
        return field_error(c, where, NULL, "expected \"a b\" or [\"a\", \"b\"], got %s",
                           merge->type == JSON_ARRAY ? "another array"
                                                     : json_type_name(merge->type));
    for (int i = 0; i < 2; i++) {
        parts[i] = merge->as.items[i].as.string;
        lengths[i] = merge->as.items[i].length;
    }
    return 0;
}

/* The id of a merge's token, with the error naming the merge. */
static int merge_token(const bpe_model *m, const field_context *c, const char *where,
                       const char *role, const char *text, size_t length, int32_t *id) {
    char quoted[96];
    *id = bpe_model_token_id(m, text, length);
    if (*id == -2) return out_of_memory(c);
    if (*id < 0)
        return field_error(c, where, NULL, "%s %s is not in model.vocab", role,
                           bpe_quote(text, length, quoted, sizeof quoted));
    return 0;
}

static int load_merges(bpe_model *m, const field_context *c, const json_value *merges) {
    text_buffer joined = {0};
    int result = 0;
    uint32_t rank = 0;
    for (size_t i = 0; i < merges->length && result == 0; i++) {
        const char *parts[2] = {NULL, NULL};
        size_t lengths[2] = {0, 0};
        int parsed = merge_parts(c, &merges->as.items[i], i, parts, lengths);
        if (parsed != 0) {
            result = parsed < 0 ? -1 : 0;
            continue;
        }
        char where[64];
        snprintf(where, sizeof where, "model.merges[%zu]", i);
        int32_t left, right, merged;
        joined.length = 0;
        if (text_buffer_append(&joined, parts[0], lengths[0]) != 0 ||
            text_buffer_append(&joined, parts[1], lengths[1]) != 0) {
            result = out_of_memory(c);
        } else if (merge_token(m, c, where, "token", parts[0], lengths[0], &left) != 0 ||
                   merge_token(m, c, where, "token", parts[1], lengths[1], &right) != 0 ||
                   merge_token(m, c, where, "the merged token", joined.data, joined.length,
                               &merged) != 0) {
            result = -1;
        } else if (pair_map_put(&m->merges, pair_key(left, right),
                                (uint64_t)rank << 32 | (uint32_t)merged) != 0) {
            result = out_of_memory(c);
        }
        rank++;
    }
    text_buffer_free(&joined);
    return result;
}

/* is_whole[id] for every token in the byte-level alphabet. */
static int find_whole_tokens(bpe_model *m, const field_context *c, const json_value *vocab) {
    m->is_whole = calloc((size_t)m->id_limit + 1, 1);
    if (!m->is_whole) return out_of_memory(c);
    if (m->ignore_merges) return 0;
    id_list ids = {0};
    bpe_scratch scratch = {0};
    text_buffer bytes = {0};
    int result = 0;
    for (size_t i = 0; i < vocab->length && result == 0; i++) {
        const json_member *token = &vocab->as.members[i];
        bytes.length = 0;
        if (text_buffer_append(&bytes, token->key, token->key_length) != 0) {
            result = -1;
            break;
        }
        long n = byte_level_to_bytes(token->key, token->key_length, (unsigned char *)bytes.data);
        if (n <= 0) continue;
        ids.count = 0;
        result = merge_piece(m, (const unsigned char *)bytes.data, (size_t)n, &ids, &scratch);
        int32_t id = (int32_t)token->value.as.number;
        m->is_whole[id] = ids.count == 1 && ids.ids[0] == id;
    }
    free(ids.ids);
    bpe_scratch_free(&scratch);
    text_buffer_free(&bytes);
    return result == 0 ? 0 : out_of_memory(c);
}

static int check_unsupported(const field_context *c, const json_value *model) {
    const char *type;
    if (field_type(c, model, "model", &type) != 0) return -1;
    if (strcmp(type, "BPE") != 0)
        return field_error(c, "model", "type", "\"%s\" is not supported (only \"BPE\")", type);
    const json_value *dropout = json_find(model, "dropout");
    if (dropout && dropout->type != JSON_NULL) {
        if (field_expect(c, dropout, JSON_NUMBER, "model", "dropout") != 0) return -1;
        if (dropout->as.number != 0)
            return field_error(c, "model", "dropout",
                               "%g is not supported (BPE dropout makes encoding random)",
                               dropout->as.number);
    }
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const json_value *affix;
        if (field_string(c, model, "model", affixes[i], &affix) != 0) return -1;
        if (affix && affix->length)
            return field_error(c, "model", affixes[i], "not supported by byte-level BPE");
    }
    int byte_fallback;
    if (field_bool(c, model, "model", "byte_fallback", 0, &byte_fallback) != 0) return -1;
    if (byte_fallback)
        return field_error(c, "model", "byte_fallback",
                           "true is not supported (byte-level BPE needs no byte fallback)");
    return 0;
}

int bpe_model_load(bpe_model *m, const json_value *model, const char *path, status *st) {
    memset(m, 0, sizeof *m);
    m->unk_id = -1;
    for (int b = 0; b < 256; b++)
        m->byte_ids[b] = -1;
    field_context c = {path, st};
    if (field_expect(&c, model, JSON_OBJECT, "", "model") != 0 ||
        check_unsupported(&c, model) != 0 ||
        field_bool(&c, model, "model", "fuse_unk", 0, &m->fuse_unk) != 0 ||
        field_bool(&c, model, "model", "ignore_merges", 0, &m->ignore_merges) != 0)
        return -1;
    const json_value *vocab = json_find(model, "vocab"), *merges = json_find(model, "merges");
    const json_value *unk;
    int result = !vocab    ? field_error(&c, "model", "vocab", "missing")
                 : !merges ? field_error(&c, "model", "merges", "missing")
                 : field_expect(&c, vocab, JSON_OBJECT, "model", "vocab") != 0 ||
                         field_expect(&c, merges, JSON_ARRAY, "model", "merges") != 0 ||
                         field_string(&c, model, "model", "unk_token", &unk) != 0 ||
                         load_vocab(m, &c, vocab) != 0
                     ? -1
                     : 0;
    if (result == 0 && unk) {
        char quoted[96];
        m->unk_id = bpe_model_token_id(m, unk->as.string, unk->length);
        if (m->unk_id < 0)
            result =
                m->unk_id == -2
                    ? out_of_memory(&c)
                    : field_error(&c, "model", "unk_token", "%s is not in model.vocab",
                                  bpe_quote(unk->as.string, unk->length, quoted, sizeof quoted));
    }
    if (result == 0) result = load_merges(m, &c, merges);
    if (result == 0) result = find_whole_tokens(m, &c, vocab);
    if (result != 0) bpe_model_free(m);
    return result;
}
