/* `cairn prepare`: text corpora -> a Megatron indexed dataset.
 *
 * Contract: inputs are read in the order given, by suffix:
 *   .txt (.txt.gz)    documents separated by one or more blank (whitespace-only) lines;
 *                     a document is its lines joined by "\n";
 *   .jsonl (.jsonl.gz) one JSON object per line, the document is the string `field`
 *                     ("text" when NULL); blank lines are skipped.
 * CRLF line ends read as LF. Empty documents are skipped; every other document
 * gets the tokenizer's EOD appended. PREFIX.bin/.idx appear only when complete
 * (missing parent folders of PREFIX are created).
 * Errors name the file and, for JSON, the line:
 *   `data.jsonl:7: invalid JSON (expected ':' at column 9)`, `data.jsonl:8: no "text" field`. */
#ifndef CAIRN_PREPARE_H
#define CAIRN_PREPARE_H

#include <stdint.h>

#include "common/status.h"

typedef struct prepare_summary {
    int64_t documents, tokens;
    int64_t input_bytes;  /* uncompressed bytes read */
    double seconds;
} prepare_summary;

int prepare_dataset(const char *tokenizer_spec, const char *output_prefix, const char *field,
                    const char *const *inputs, int input_count, prepare_summary *summary,
                    status *st);

#endif
