/* The input side of `cairn prepare`: text files -> ordered chunks of records.
 *
 * Contract: inputs are read in the order given through zlib (plain files pass through; a name
 * ending in .gz must hold gzip data) and cut into chunks of at least `target_bytes` of record
 * text (fewer at the end of a file); a chunk never spans two files. A record is, by suffix:
 *   .txt (.txt.gz)     one document: lines up to a blank (whitespace-only) line or the end of
 *                      the file, joined by "\n"; never empty;
 *   .jsonl (.jsonl.gz) one non-blank line, still JSON (the caller decodes it).
 * CRLF line ends read as LF. Every record keeps the number of its (first) line, so that errors
 * found later can name `file:line`. Read errors name the file and the line reached. */
#ifndef CAIRN_CHUNK_READER_H
#define CAIRN_CHUNK_READER_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "data/text_buffer.h"

typedef struct text_chunk {
    const char *path; /* the input of the records (the caller's string) */
    int json;         /* records are JSON lines */
    text_buffer text; /* the records back to back */
    size_t *ends;     /* record i is text.data[i ? ends[i-1] : 0 .. ends[i]) */
    int64_t *lines;   /* 1-based line number of record i */
    size_t records, record_capacity;
    int64_t input_bytes; /* uncompressed input bytes read while filling this chunk */
} text_chunk;

typedef enum input_kind { INPUT_UNKNOWN, INPUT_TEXT, INPUT_JSON_LINES } input_kind;

input_kind chunk_reader_input_kind(const char *path);

typedef struct chunk_reader chunk_reader;

/* paths must outlive the reader; their kinds must be known (checked by the caller). */
int chunk_reader_open(const char *const *paths, int count, size_t target_bytes, chunk_reader **out,
                      status *st);
/* 1: the next chunk is in *chunk (earlier contents replaced, storage reused; it may hold no
 * record, e.g. at the end of an empty input); 0: every input has been read; -1: error. */
int chunk_reader_next(chunk_reader *r, text_chunk *chunk, status *st);
void chunk_reader_close(chunk_reader *r);
void text_chunk_free(text_chunk *c);

#endif
