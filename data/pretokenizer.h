/* Pre-tokenizers of byte-level tokenizer.json files: text -> pre-tokens.
 *
 * Contract: `pretokenizer_load` accepts `ByteLevel` (add_prefix_space,
 * use_regex with GPT-2's pattern) alone or as the last step of a `Sequence`
 * whose other steps are `Split` (pattern {"Regex": ...} or {"String": ...},
 * behavior Removed / Isolated / MergedWithPrevious / MergedWithNext /
 * Contiguous, invert) and `Digits` (individual_digits); anything else is a
 * one-line error naming the file and the field. Regexes run on PCRE2 in
 * UTF + UCP mode, adjusted to give Oniguruma's (Hugging Face's engine)
 * results: ^ and $ match at line ends, and U+180E is not \s; patterns using
 * \w \b \h or (?m), whose meanings differ between the engines, are refused.
 * `pretokenizer_run` calls `sink` for every non-empty pre-token of `text` in
 * order, with its raw bytes (the byte-level mapping of Hugging Face is the
 * identity on bytes); invalid UTF-8 never matches a regex and ends up in the
 * gaps between matches. A pretokenizer is only read after loading; each
 * thread needs its own `pretokenizer_state`. Returns 0, or -1 with a reason
 * in st (out of memory, regex failure) or the sink's -1. */
#ifndef CAIRN_PRETOKENIZER_H
#define CAIRN_PRETOKENIZER_H

#include <stddef.h>

#include "common/json_parse.h"
#include "common/status.h"

typedef struct pretokenizer pretokenizer;
typedef struct pretokenizer_state pretokenizer_state;
typedef int (*pretokenizer_sink)(void *context, const unsigned char *piece, size_t length);

/* `spec` is the "pre_tokenizer" value. */
int pretokenizer_load(const json_value *spec, const char *path, pretokenizer **out, status *st);
void pretokenizer_free(pretokenizer *p);
/* NULL when out of memory. */
pretokenizer_state *pretokenizer_state_new(const pretokenizer *p);
void pretokenizer_state_free(pretokenizer_state *s);
int pretokenizer_run(const pretokenizer *p, pretokenizer_state *s, const unsigned char *text,
                     size_t length, pretokenizer_sink sink, void *context, status *st);

#endif
