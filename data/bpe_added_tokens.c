/* Added tokens: a byte trie per pass, scanned from each position a token can
 * start with, which gives the leftmost-longest matches of Hugging Face's
 * Aho-Corasick automaton (the scan, like the automaton, resumes after a match
 * even when single_word then discards it). */
#include "data/bpe_added_tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/bpe_fields.h"
#include "data/bpe_nfc.h"
#include "data/bpe_unicode.h"

#if CAIRN_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* \w of Rust's regex crate */
static const char word_pattern[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]";

static void *word_class_new(void) {
    int code;
    PCRE2_SIZE offset;
    pcre2_code *regex = pcre2_compile((PCRE2_SPTR)word_pattern, PCRE2_ZERO_TERMINATED,
                                      PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &code, &offset, NULL);
    return regex;
}

static void word_class_free(void *word_class) { pcre2_code_free(word_class); }

/* 1 if the character at s (length > 0) is a word character, 0 if not, -1 out of memory. */
static int is_word(const void *word_class, const unsigned char *s, size_t length) {
    uint32_t cp;
    size_t n = utf8_decode(s, length, &cp);
    if (cp == UTF8_INVALID) return 0;
    pcre2_match_data *match = pcre2_match_data_create(1, NULL);
    if (!match) return -1;
    int rc = pcre2_match(word_class, s, n, 0, 0, match, NULL);
    pcre2_match_data_free(match);
    return rc > 0;
}
#else
static void *word_class_new(void) { return NULL; }
static void word_class_free(void *word_class) { (void)word_class; }
static int is_word(const void *word_class, const unsigned char *s, size_t length) {
    (void)word_class, (void)s, (void)length;
    return 0;
}
#endif

static int trie_add(token_trie *t, const unsigned char *content, size_t length, int32_t index) {
    if (t->nodes == 0) {
        t->terminal = malloc(64 * sizeof *t->terminal);
        if (!t->terminal) return -1;
        t->node_capacity = 64;
        t->terminal[0] = -1;
        t->nodes = 1;
    }
    uint64_t node = 0;
    for (size_t i = 0; i < length; i++) {
        uint64_t key = node << 8 | content[i], child;
        if (!pair_map_get(&t->children, key, &child)) {
            if (t->nodes == t->node_capacity) {
                int32_t *bigger = realloc(t->terminal, 2 * t->node_capacity * sizeof *bigger);
                if (!bigger) return -1;
                t->terminal = bigger;
                t->node_capacity *= 2;
            }
            child = t->nodes++;
            t->terminal[child] = -1;
            if (pair_map_put(&t->children, key, child) != 0) return -1;
        }
        node = child;
    }
    t->terminal[node] = index;
    t->starts[content[0]] = 1;
    return 0;
}

/* The longest token starting at text[at]: its index, with *end set; -1 for none. */
static int32_t trie_longest(const token_trie *t, const unsigned char *text, size_t length,
                            size_t at, size_t *end) {
    int32_t found = -1;
    uint64_t node = 0;
    for (size_t i = at; i < length; i++) {
        if (!pair_map_get(&t->children, node << 8 | text[i], &node)) break;
        if (t->terminal[node] >= 0) {
            found = t->terminal[node];
            *end = i + 1;
        }
    }
    return found;
}

static int token_field(const field_context *c, const json_value *token, const char *where,
                       added_token *out, const json_value **id) {
    const json_value *content;
    if (field_expect(c, token, JSON_OBJECT, where, NULL) != 0 ||
        field_string(c, token, where, "content", &content) != 0 ||
        field_bool(c, token, where, "special", 0, &out->special) != 0 ||
        field_bool(c, token, where, "single_word", 0, &out->single_word) != 0 ||
        field_bool(c, token, where, "lstrip", 0, &out->lstrip) != 0 ||
        field_bool(c, token, where, "rstrip", 0, &out->rstrip) != 0 ||
        field_bool(c, token, where, "normalized", !out->special, &out->normalized) != 0)
        return -1;
    if (!content || content->length == 0)
        return field_error(c, where, "content", "missing or empty");
    *id = json_find(token, "id");
    if (!*id || (*id)->type != JSON_NUMBER || !(*id)->is_integer || (*id)->as.number < 0 ||
        (*id)->as.number >= INT32_MAX)
        return field_error(c, where, "id", "expected a non-negative integer");
    out->content = malloc(content->length + 1);
    if (!out->content) return status_fail(c->st, "%s: out of memory", c->path);
    memcpy(out->content, content->as.string, content->length + 1);
    out->length = content->length;
    return 0;
}

int32_t added_tokens_find(const added_tokens *a, const char *content, size_t length) {
    for (size_t i = 0; i < a->count; i++)
        if (a->tokens[i].length == length && memcmp(a->tokens[i].content, content, length) == 0)
            return a->tokens[i].id;
    return -1;
}

/* The id Hugging Face gives the next added token (AddedVocabulary::add_tokens). */
static int32_t hugging_face_id(const added_tokens *a, const bpe_model *model, const char *content,
                               size_t length) {
    int32_t id = bpe_model_token_id(model, content, length);
    if (id != -1) return id;
    int32_t vocab_size = (int32_t)(model->vocab.count + model->other_tokens.count), largest = -1;
    for (size_t i = 0; i < a->count; i++)
        if (a->tokens[i].id > largest) largest = a->tokens[i].id;
    if (largest < 0) return vocab_size;
    return largest >= vocab_size || vocab_size == 0 ? largest + 1 : vocab_size;
}

/* Adds token index to its trie, in NFC when nfc is set and the token is normalized. */
static int add_to_trie(added_tokens *a, size_t index, int nfc) {
    const added_token *t = &a->tokens[index];
    const unsigned char *content = (const unsigned char *)t->content;
    if (!nfc || !t->normalized || bpe_nfc_is_stable(content, t->length))
        return trie_add(&a->tries[t->normalized], content, t->length, (int32_t)index);
    text_buffer normalized = {0};
    nfc_buffer work = {0};
    int result = bpe_nfc(content, t->length, &normalized, &work);
    if (result == 0)
        result = trie_add(&a->tries[1], (const unsigned char *)normalized.data, normalized.length,
                          (int32_t)index);
    text_buffer_free(&normalized);
    nfc_buffer_free(&work);
    return result;
}

static int load_token(added_tokens *a, const field_context *c, const json_value *token,
                      const bpe_model *model, int nfc, size_t index) {
    char where[64], quoted[96];
    snprintf(where, sizeof where, "added_tokens[%zu]", index);
    added_token *t = &a->tokens[a->count];
    memset(t, 0, sizeof *t);
    const json_value *id = NULL;
    if (token_field(c, token, where, t, &id) != 0) return -1;
    bpe_quote(t->content, t->length, quoted, sizeof quoted);
    int result = 0;
    if (added_tokens_find(a, t->content, t->length) >= 0) {
        result = field_error(c, where, "content", "%s is already an added token", quoted);
    } else {
        int32_t expected = hugging_face_id(a, model, t->content, t->length);
        t->id = (int32_t)id->as.number;
        if (expected == -2)
            result = status_fail(c->st, "%s: out of memory", c->path);
        else if (t->id != expected)
            result = field_error(c, where, "id",
                                 "%d, but Hugging Face tokenizers gives %s the id %d "
                                 "(its model.vocab id, else the next free one)",
                                 t->id, quoted, expected);
    }
    if (result == 0 && add_to_trie(a, a->count, nfc) != 0)
        result = status_fail(c->st, "%s: out of memory", c->path);
    if (result != 0) {
        free(t->content);
        return -1;
    }
    a->count++;
    return 0;
}

int added_tokens_load(added_tokens *a, const json_value *list, const bpe_model *model, int nfc,
                      const char *path, status *st) {
    memset(a, 0, sizeof *a);
    field_context c = {path, st};
    if (!list || list->type == JSON_NULL) return 0;
    if (field_expect(&c, list, JSON_ARRAY, "", "added_tokens") != 0) return -1;
    a->tokens = calloc(list->length + 1, sizeof *a->tokens);
    if (!a->tokens) return status_fail(st, "%s: out of memory", path);
    int single_word = 0;
    for (size_t i = 0; i < list->length; i++) {
        if (load_token(a, &c, &list->as.items[i], model, nfc, i) != 0) {
            added_tokens_free(a);
            return -1;
        }
        single_word |= a->tokens[i].single_word;
    }
    if (single_word && !(a->word_class = word_class_new())) {
        added_tokens_free(a);
        return field_error(&c, "", "added_tokens",
                           "single_word tokens need PCRE2, which this cairn was built without");
    }
    return 0;
}

void added_tokens_free(added_tokens *a) {
    for (size_t i = 0; i < a->count; i++)
        free(a->tokens[i].content);
    free(a->tokens);
    for (int i = 0; i < 2; i++) {
        pair_map_free(&a->tries[i].children);
        free(a->tries[i].terminal);
    }
    word_class_free(a->word_class);
    memset(a, 0, sizeof *a);
}

static size_t white_space_before(const unsigned char *text, size_t end) {
    while (end > 0) {
        size_t start = utf8_last_start(text, end);
        uint32_t cp;
        utf8_decode(text + start, end - start, &cp);
        if (!unicode_is_white_space(cp)) break;
        end = start;
    }
    return end;
}

static size_t white_space_after(const unsigned char *text, size_t length, size_t start) {
    while (start < length) {
        uint32_t cp;
        size_t n = utf8_decode(text + start, length - start, &cp);
        if (!unicode_is_white_space(cp)) break;
        start += n;
    }
    return start;
}

/* 1 if the match [start, end) stands alone (no word character touches it), 0 if not, -1 out
 * of memory. */
static int single_word_ok(const added_tokens *a, const unsigned char *text, size_t length,
                          size_t start, size_t end) {
    int before = 0, after = 0;
    if (start > 0) {
        size_t last = utf8_last_start(text, start);
        before = is_word(a->word_class, text + last, start - last);
    }
    if (end < length) after = is_word(a->word_class, text + end, length - end);
    return before < 0 || after < 0 ? -1 : !before && !after;
}

int added_tokens_split(const added_tokens *a, int normalized, const unsigned char *text,
                       size_t length, added_tokens_emit emit, void *context, status *st) {
    const token_trie *trie = &a->tries[normalized];
    size_t gap_start = 0;
    for (size_t at = 0; trie->nodes && at < length;) {
        size_t end;
        int32_t index = trie->starts[text[at]] ? trie_longest(trie, text, length, at, &end) : -1;
        if (index < 0) {
            at++;
            continue;
        }
        const added_token *t = &a->tokens[index];
        size_t start = at, stop = end;
        at = end;
        if (t->single_word) {
            int alone = single_word_ok(a, text, length, start, stop);
            if (alone < 0) return status_fail(st, "tokenizer: out of memory");
            if (!alone) continue;
        }
        if (t->lstrip) {
            size_t stripped = white_space_before(text, start);
            start = stripped > gap_start ? stripped : gap_start;
        }
        if (t->rstrip) stop = white_space_after(text, length, stop);
        if (gap_start < start && emit(context, gap_start, start, -1) != 0) return -1;
        /* lstrip can push the start onto what rstrip of the previous token swallowed: Hugging
         * Face then drops the empty piece, token and all */
        if (start < stop && emit(context, start, stop, t->id) != 0) return -1;
        gap_start = stop;
    }
    if (gap_start < length && emit(context, gap_start, length, -1) != 0) return -1;
    return 0;
}
