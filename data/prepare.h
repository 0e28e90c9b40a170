/* `cairn prepare`: text corpora -> a Megatron indexed dataset, on all cores.
 *
 * Contract: each input is a path or a glob(3) pattern (expanded in sorted order; a pattern that
 * matches nothing is an error naming it). Inputs are read in the order given, by suffix
 * (data/chunk_reader.h):
 *   .txt (.txt.gz)    documents separated by one or more blank (whitespace-only) lines;
 *                     a document is its lines joined by "\n";
 *   .jsonl (.jsonl.gz) one JSON object per line, the document is the string `field`
 *                     ("text" when NULL); blank lines are skipped.
 * CRLF line ends read as LF. Empty documents are skipped; every other document gets the
 * tokenizer's EOD appended. Documents are written in input order, so the output is
 * byte-identical whatever the thread count. One thread reads and cuts the inputs into chunks,
 * `threads` threads decode JSON and tokenize, and the calling thread writes chunks in order;
 * at most 2*threads+2 chunks (about 256 KiB of text each, or one longer document) are in flight.
 * PREFIX.bin/.idx appear only when complete (missing parent folders of PREFIX are created).
 * Errors name the file and, for JSON, the line:
 *   `data.jsonl:7: invalid JSON (expected ':' at column 9)`, `data.jsonl:8: no "text" field`;
 * when several inputs are bad, the first error in input order is reported. */
#ifndef CAIRN_PREPARE_H
#define CAIRN_PREPARE_H

#include <stdint.h>

#include "common/status.h"

typedef struct prepare_summary {
    int64_t documents, tokens;
    int64_t input_bytes; /* uncompressed bytes read */
    int input_files;     /* after glob expansion */
    double seconds;
} prepare_summary;

typedef struct prepare_options {
    const char *tokenizer_spec; /* "bytes" or a tokenizer.json path */
    const char *output_prefix;
    const char *field;         /* JSON field; "text" when NULL */
    const char *const *inputs; /* paths or glob patterns */
    int input_count;
    int threads; /* tokenizing threads; 0: one per online CPU */
    /* When not NULL, called on the calling thread after each written chunk with the totals so
     * far. */
    void (*progress)(const prepare_summary *so_far, void *context);
    void *progress_context;
} prepare_options;

int prepare_run(const prepare_options *options, prepare_summary *summary, status *st);

/* prepare_run with one thread per online CPU and no progress reports. */
int prepare_dataset(const char *tokenizer_spec, const char *output_prefix, const char *field,
                    const char *const *inputs, int input_count, prepare_summary *summary,
                    status *st);

#endif
