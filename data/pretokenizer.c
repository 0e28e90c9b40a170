/* Hugging Face's pre-tokenizer pipeline on raw bytes. Every step splits each
 * piece of the previous one on its own, exactly as PreTokenizedString::split
 * does: the regex sees only that piece (so (?!\S) cannot look past it), the
 * matches are found the way the onig crate iterates them (an empty match right
 * after the previous match is skipped by one character), the match/gap list is
 * folded by the split behavior (normalizer.rs::split), and empty pieces are
 * dropped. */
#include "data/pretokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/bpe_fields.h"
#include "data/bpe_unicode.h"

#if CAIRN_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#else
typedef struct pcre2_real_code_8 pcre2_code;
#endif

enum behavior { REMOVED, ISOLATED, MERGED_WITH_PREVIOUS, MERGED_WITH_NEXT, CONTIGUOUS };
enum { MAX_STEPS = 16, JIT_STACK_LIMIT = 256 << 20 };

static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* PCRE2 keeps U+180E MONGOLIAN VOWEL SEPARATOR in \s (it was a space separator before
 * Unicode 6.3), Oniguruma does not; regexes see it as U+200B ZERO WIDTH SPACE, which both
 * engines class as Oniguruma classes U+180E (Cf, not White_Space). Both are three UTF-8 bytes. */
static const char mongolian_vowel_separator[] = "\xE1\xA0\x8E";
static const char zero_width_space[] = "\xE2\x80\x8B";

typedef struct step {
    pcre2_code *regex; /* NULL: the piece is passed on whole */
    int jit, behavior, invert;
    int add_prefix_space, byte_level;
} step;

struct pretokenizer {
    step steps[MAX_STEPS];
    int count;
};

typedef struct event {
    size_t start, end;
    int is_match;
} event;

typedef struct level {
    event *events;
    size_t count, capacity;
    unsigned char *prefixed; /* " " + piece: the regex's copy, then the bytes' copy */
    size_t prefixed_capacity;
} level;

struct pretokenizer_state {
    level levels[MAX_STEPS];
    unsigned char *shadow; /* the text as the regexes see it, when it differs */
    size_t shadow_capacity;
#if CAIRN_HAVE_PCRE2
    pcre2_match_data *match;
    pcre2_match_context *context;
    pcre2_jit_stack *jit_stack; /* made on the first match that overflows the default one */
#endif
};

static int grow(void **buffer, size_t *capacity, size_t needed, size_t item) {
    if (needed <= *capacity) return 0;
    size_t grown = *capacity ? *capacity : 64;
    while (grown < needed)
        grown *= 2;
    void *bigger = realloc(*buffer, grown * item);
    if (!bigger) return -1;
    *buffer = bigger;
    *capacity = grown;
    return 0;
}

/* ---- loading ---- */

#if CAIRN_HAVE_PCRE2
static int refused_construct(const char *pattern, size_t length, char *what) {
    for (size_t i = 0; i + 1 < length; i++) {
        if (pattern[i] == '\\') {
            if (strchr("wWbBhH", pattern[i + 1]) && pattern[i + 1]) {
                what[0] = '\\';
                what[1] = pattern[i + 1];
                what[2] = '\0';
                return 1;
            }
            i++;
        } else if (pattern[i] == '(' && pattern[i + 1] == '?') {
            /* inline options: (?m) is dot-all in Oniguruma's Ruby syntax, multi-line in PCRE2 */
            for (size_t k = i + 2; k < length && strchr("imsx-", pattern[k]) && pattern[k]; k++)
                if (pattern[k] == 'm') {
                    strcpy(what, "(?m");
                    return 1;
                }
        }
    }
    return 0;
}

static int compile_regex(step *s, const char *pattern, size_t length, int literal,
                         const field_context *c, const char *where) {
    char what[8];
    if (!literal && refused_construct(pattern, length, what))
        return field_error(c, where, "pattern",
                           "%s is not supported (Oniguruma and PCRE2 give it different meanings)",
                           what);
    pcre2_compile_context *context = pcre2_compile_context_create(NULL);
    if (!context) return status_fail(c->st, "%s: out of memory", c->path);
    pcre2_set_newline(context, PCRE2_NEWLINE_LF);
    /* Oniguruma's Ruby syntax: ^ and $ are line anchors */
    uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF |
                       (literal ? PCRE2_LITERAL : PCRE2_UCP | PCRE2_MULTILINE);
    int code;
    PCRE2_SIZE offset;
    s->regex = pcre2_compile((PCRE2_SPTR)pattern, length, options, &code, &offset, context);
    pcre2_compile_context_free(context);
    if (!s->regex) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(code, message, sizeof message);
        return field_error(c, where, "pattern", "bad regex at offset %zu: %s", (size_t)offset,
                           (const char *)message);
    }
    s->jit = pcre2_jit_compile(s->regex, PCRE2_JIT_COMPLETE) == 0;
    return 0;
}
#else
static int compile_regex(step *s, const char *pattern, size_t length, int literal,
                         const field_context *c, const char *where) {
    (void)s, (void)pattern, (void)length, (void)literal;
    return field_error(c, where, "pattern",
                       "regex pre-tokenizers need PCRE2, which this cairn "
                       "was built without");
}
#endif

static int new_step(pretokenizer *p, const field_context *c, const char *where, step **out) {
    if (p->count == MAX_STEPS)
        return field_error(c, where, NULL, "more than %d pre-tokenizer steps", MAX_STEPS);
    *out = &p->steps[p->count++];
    memset(*out, 0, sizeof **out);
    (*out)->behavior = ISOLATED;
    return 0;
}

static int load_split(pretokenizer *p, const json_value *spec, const field_context *c,
                      const char *where) {
    static const char *const behaviors[] = {"Removed", "Isolated", "MergedWithPrevious",
                                            "MergedWithNext", "Contiguous"};
    step *s = NULL;
    if (new_step(p, c, where, &s) != 0) return -1;
    const json_value *behavior, *pattern = json_find(spec, "pattern");
    if (field_string(c, spec, where, "behavior", &behavior) != 0 ||
        field_bool(c, spec, where, "invert", 0, &s->invert) != 0)
        return -1;
    if (!behavior) return field_error(c, where, "behavior", "missing");
    s->behavior = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(behavior->as.string, behaviors[i]) == 0) s->behavior = i;
    if (s->behavior < 0)
        return field_error(c, where, "behavior", "\"%s\" is not a split behavior",
                           behavior->as.string);
    if (!pattern) return field_error(c, where, "pattern", "missing");
    if (field_expect(c, pattern, JSON_OBJECT, where, "pattern") != 0) return -1;
    const json_value *regex = json_find(pattern, "Regex"), *literal = json_find(pattern, "String");
    const json_value *text = regex ? regex : literal;
    if (!text || text->type != JSON_STRING)
        return field_error(c, where, "pattern",
                           "expected {\"Regex\": \"...\"} or "
                           "{\"String\": \"...\"}");
    return compile_regex(s, text->as.string, text->length, regex == NULL, c, where);
}

typedef struct step_loading {
    pretokenizer *p;
    const field_context *c;
} step_loading;

static int load_step(void *context, const json_value *spec, const char *where) {
    const step_loading *l = context;
    pretokenizer *p = l->p;
    const field_context *c = l->c;
    const char *type;
    if (field_expect(c, spec, JSON_OBJECT, where, NULL) != 0 ||
        field_type(c, spec, where, &type) != 0)
        return -1;
    if (strcmp(type, "Sequence") == 0)
        return field_list(c, spec, where, "pretokenizers", load_step, context);
    if (strcmp(type, "Split") == 0) return load_split(p, spec, c, where);
    step *s = NULL;
    if (strcmp(type, "Digits") == 0) {
        int individual;
        if (new_step(p, c, where, &s) != 0 ||
            field_bool(c, spec, where, "individual_digits", 0, &individual) != 0)
            return -1;
        /* char::is_numeric, one match per digit */
        s->behavior = individual ? ISOLATED : CONTIGUOUS;
        return compile_regex(s, "\\p{N}", 5, 0, c, where);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        int use_regex;
        if (new_step(p, c, where, &s) != 0 ||
            field_bool(c, spec, where, "add_prefix_space", 1, &s->add_prefix_space) != 0 ||
            field_bool(c, spec, where, "use_regex", 1, &use_regex) != 0)
            return -1;
        s->byte_level = 1;
        return use_regex ? compile_regex(s, gpt2_pattern, sizeof gpt2_pattern - 1, 0, c, where) : 0;
    }
    return field_error(c, where, "type",
                       "\"%s\" is not supported (ByteLevel, Split, Digits and "
                       "Sequence are)",
                       type);
}

void pretokenizer_free(pretokenizer *p) {
    if (!p) return;
#if CAIRN_HAVE_PCRE2
    for (int i = 0; i < p->count; i++)
        pcre2_code_free(p->steps[i].regex);
#endif
    free(p);
}

int pretokenizer_load(const json_value *spec, const char *path, pretokenizer **out, status *st) {
    *out = NULL;
    field_context c = {path, st};
    if (!spec || spec->type == JSON_NULL)
        return field_error(&c, "", "pre_tokenizer",
                           "missing (byte-level BPE needs a ByteLevel pre-tokenizer)");
    pretokenizer *p = calloc(1, sizeof *p);
    if (!p) return status_fail(st, "%s: out of memory", path);
    step_loading loading = {p, &c};
    if (load_step(&loading, spec, "pre_tokenizer") != 0) {
        pretokenizer_free(p);
        return -1;
    }
    int byte_levels = 0;
    for (int i = 0; i < p->count; i++)
        byte_levels += p->steps[i].byte_level;
    if (byte_levels != 1 || !p->steps[p->count - 1].byte_level) {
        pretokenizer_free(p);
        return field_error(&c, "", "pre_tokenizer",
                           "byte-level BPE needs exactly one ByteLevel step, as the last step");
    }
    *out = p;
    return 0;
}

/* ---- running ---- */

pretokenizer_state *pretokenizer_state_new(const pretokenizer *p) {
    (void)p;
    pretokenizer_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
#if CAIRN_HAVE_PCRE2
    s->match = pcre2_match_data_create(1, NULL);
    s->context = pcre2_match_context_create(NULL);
    if (!s->match || !s->context) {
        pretokenizer_state_free(s);
        return NULL;
    }
    /* long runs of one character class backtrack far; encoding must not give up */
    pcre2_set_match_limit(s->context, UINT32_MAX);
    pcre2_set_depth_limit(s->context, UINT32_MAX);
#endif
    return s;
}

void pretokenizer_state_free(pretokenizer_state *s) {
    if (!s) return;
    for (int i = 0; i < MAX_STEPS; i++) {
        free(s->levels[i].events);
        free(s->levels[i].prefixed);
    }
    free(s->shadow);
#if CAIRN_HAVE_PCRE2
    pcre2_match_data_free(s->match);
    pcre2_match_context_free(s->context);
    pcre2_jit_stack_free(s->jit_stack);
#endif
    free(s);
}

#if CAIRN_HAVE_PCRE2
static int add_event(level *l, size_t start, size_t end, int is_match) {
    if (grow((void **)&l->events, &l->capacity, l->count + 1, sizeof *l->events) != 0) return -1;
    l->events[l->count++] = (event){start, end, is_match};
    return 0;
}

/* One search from `from`: 1 with the match in start and end, 0 for none, -1 on failure. */
static int search(const step *step, pretokenizer_state *s, const unsigned char *subject,
                  size_t length, size_t from, size_t *start, size_t *end, status *st) {
    for (;;) {
        int rc = step->jit
                     ? pcre2_jit_match(step->regex, subject, length, from, 0, s->match, s->context)
                     : pcre2_match(step->regex, subject, length, from, 0, s->match, s->context);
        if (rc >= 0) {
            PCRE2_SIZE *ovector = pcre2_get_ovector_pointer(s->match);
            *start = ovector[0];
            *end = ovector[1];
            return 1;
        }
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !s->jit_stack) {
            s->jit_stack = pcre2_jit_stack_create(32 << 10, JIT_STACK_LIMIT, NULL);
            if (!s->jit_stack) return status_fail(st, "pre-tokenizer: out of memory");
            pcre2_jit_stack_assign(s->context, NULL, s->jit_stack);
            continue;
        }
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof message);
        return status_fail(st, "pre-tokenizer: regex match failed on a %zu-byte piece: %s", length,
                           (const char *)message);
    }
}

/* The match/gap list of pattern.rs::find_matches for &SysRegex, with onig's FindMatches. */
static int find_events(const step *step, pretokenizer_state *s, level *l,
                       const unsigned char *subject, size_t length, status *st) {
    size_t gap_start = 0, next = 0, last_match_end = 0;
    int matched_before = 0;
    while (next <= length) {
        size_t start, end;
        int found = search(step, s, subject, length, next, &start, &end, st);
        if (found < 0) return -1;
        if (!found) break;
        if (start == end && matched_before && last_match_end == end) {
            uint32_t cp;
            next += next < length ? utf8_decode(subject + next, length - next, &cp) : 1;
            continue;
        }
        next = last_match_end = end;
        matched_before = 1;
        if ((gap_start != start && add_event(l, gap_start, start, step->invert) != 0) ||
            add_event(l, start, end, !step->invert) != 0)
            return status_fail(st, "pre-tokenizer: out of memory");
        gap_start = end;
    }
    if (gap_start != length && add_event(l, gap_start, length, step->invert) != 0)
        return status_fail(st, "pre-tokenizer: out of memory");
    return 0;
}
#else
static int find_events(const step *step, pretokenizer_state *s, level *l,
                       const unsigned char *subject, size_t length, status *st) {
    (void)step, (void)s, (void)l, (void)subject, (void)length;
    return status_fail(st, "pre-tokenizer: built without PCRE2");
}
#endif

/* Folds the events as the split behavior says; returns the index of the first kept one. With
 * REMOVED the matches stay in the list and are skipped by the caller. */
static size_t fold_events(level *l, int behavior) {
    event *e = l->events;
    size_t n = l->count, kept = 0;
    int previous_match = 0;
    if (behavior == CONTIGUOUS || behavior == MERGED_WITH_PREVIOUS) {
        for (size_t i = 0; i < n; i++) {
            int joins = behavior == CONTIGUOUS ? e[i].is_match == previous_match
                                               : e[i].is_match && !previous_match;
            previous_match = e[i].is_match;
            if (joins && kept > 0)
                e[kept - 1].end = e[i].end;
            else
                e[kept++] = e[i];
        }
        l->count = kept;
        return 0;
    }
    if (behavior == MERGED_WITH_NEXT) {
        kept = n;
        for (size_t i = n; i-- > 0;) {
            int joins = e[i].is_match && !previous_match;
            previous_match = e[i].is_match;
            if (joins && kept < n)
                e[kept].start = e[i].start;
            else
                e[--kept] = e[i];
        }
        return kept;
    }
    return 0;
}

static int run_step(const pretokenizer *p, pretokenizer_state *s, int index,
                    const unsigned char *subject, const unsigned char *bytes, size_t length,
                    pretokenizer_sink sink, void *context, status *st) {
    if (length == 0) return 0;
    if (index == p->count) return sink(context, bytes, length);
    const step *step = &p->steps[index];
    level *l = &s->levels[index];
    if (step->add_prefix_space && bytes[0] != ' ') {
        if (grow((void **)&l->prefixed, &l->prefixed_capacity, 2 * (length + 1), 1) != 0)
            return status_fail(st, "pre-tokenizer: out of memory");
        unsigned char *copy = l->prefixed;
        copy[0] = copy[length + 1] = ' ';
        memcpy(copy + 1, subject, length);
        memcpy(copy + length + 2, bytes, length);
        subject = copy;
        bytes = copy + length + 1;
        length++;
    }
    if (!step->regex) return run_step(p, s, index + 1, subject, bytes, length, sink, context, st);
    l->count = 0;
    if (find_events(step, s, l, subject, length, st) != 0) return -1;
    for (size_t i = fold_events(l, step->behavior); i < l->count; i++) {
        const event *e = &l->events[i];
        if (step->behavior == REMOVED && e->is_match) continue;
        if (run_step(p, s, index + 1, subject + e->start, bytes + e->start, e->end - e->start, sink,
                     context, st) != 0)
            return -1;
    }
    return 0;
}

int pretokenizer_run(const pretokenizer *p, pretokenizer_state *s, const unsigned char *text,
                     size_t length, pretokenizer_sink sink, void *context, status *st) {
    const unsigned char *subject = text;
    if (memmem(text, length, mongolian_vowel_separator, 3)) {
        if (grow((void **)&s->shadow, &s->shadow_capacity, length, 1) != 0)
            return status_fail(st, "pre-tokenizer: out of memory");
        memcpy(s->shadow, text, length);
        for (unsigned char *at = s->shadow;
             (at = memmem(at, length - (size_t)(at - s->shadow), mongolian_vowel_separator, 3));
             at += 3)
            memcpy(at, zero_width_space, 3);
        subject = s->shadow;
    }
    return run_step(p, s, 0, subject, text, length, sink, context, st);
}
