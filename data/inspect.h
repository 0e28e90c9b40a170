/* `cairn inspect` for tokenized datasets.
 *
 * Contract: `inspect_dataset_sample` opens PATH with indexed_dataset_open (a Megatron prefix,
 * PREFIX.bin / PREFIX.idx, or an llm.c shard) and prints on stdout one `key: value` per line:
 * dataset, format (`megatron`, or `llm.c (KIND, magic M, version V, EOT E)`), documents,
 * tokens, dtype, and `document length: min A, max B, mean C`. When tokenizer_spec is not NULL
 * it then prints the first `sample_documents` documents decoded, each under a
 * `document I (N tokens):` line and cut after 300 bytes (` [...]` marks a cut). The sample is
 * safe for a terminal: newlines and tabs stay, a backslash reads `\\`, CR `\r`, other control
 * characters (C0, DEL, C1) and bytes that are not UTF-8 read `\xNN` / `\uNNNN`.
 * `inspect_dataset` is the same with a sample of 3 documents. */
#ifndef CAIRN_INSPECT_H
#define CAIRN_INSPECT_H

#include <stdint.h>

#include "common/status.h"

int inspect_dataset(const char *path, const char *tokenizer_spec, status *st);
int inspect_dataset_sample(const char *path, const char *tokenizer_spec, int64_t sample_documents,
                           status *st);

#endif
