/* `cairn inspect` for a dataset prefix.
 *
 * Contract: `inspect_dataset` opens PREFIX.bin/.idx (a path ending in .bin or
 * .idx is taken as its prefix) and prints on stdout: documents, tokens, dtype,
 * the shortest, longest and mean document length, and, when tokenizer_spec is
 * not NULL, the first 300 bytes of the first document decoded. */
#ifndef CAIRN_INSPECT_H
#define CAIRN_INSPECT_H

#include "common/status.h"

int inspect_dataset(const char *prefix, const char *tokenizer_spec, status *st);

#endif
