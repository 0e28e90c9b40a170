/* The built-in default corpus: Debian's fortune files as train/valid datasets.
 *
 * Contract: `fortune_corpus_build` reads every regular file under fortune_dir
 * (NULL: FORTUNE_DEFAULT_DIR), recursively in sorted path order, skipping
 * symlinks, `*.dat` indexes, `*.u8` names and folders named `off` (offensive
 * fortunes). Entries are separated by lines holding a single `%`; ANSI escape
 * sequences (ESC [ ... final letter) and trailing whitespace (of each line and
 * of the entry) are removed and empty entries dropped. Document i (0-based,
 * over all files) goes to valid when (i+1) % 50 == 0, to train otherwise;
 * both are written with the bytes tokenizer (EOD after each document), parent
 * folders created, and one summary line is printed on stderr.
 * `fortune_corpus_ensure` builds from the default folder only when one of the
 * four files is missing. Neither is safe to run from several processes at
 * once on the same prefixes: call it from one rank, then synchronise. */
#ifndef CAIRN_FORTUNE_CORPUS_H
#define CAIRN_FORTUNE_CORPUS_H

#include "common/status.h"

#define FORTUNE_DEFAULT_DIR "/usr/share/games/fortunes"

int fortune_corpus_build(const char *fortune_dir, const char *train_prefix,
                         const char *valid_prefix, status *st);
int fortune_corpus_ensure(const char *train_prefix, const char *valid_prefix, status *st);

#endif
