/* Tokenized datasets: Megatron indexed datasets (PREFIX.bin + PREFIX.idx), written and read,
 * and llm.c token shards (data/llmc_shard.h), read through the same handle.
 *
 * Contract: the writer produces files byte-compatible with Megatron-LM's `_IndexWriter` (one
 * sequence per document, version 1, dtype code from the vocabulary size: uint16 below 65,500,
 * int32 above); it writes PREFIX.bin.tmp/.idx.tmp, syncs them, removes the old PREFIX.idx and
 * renames both into place, so a crash never leaves a new .bin beside an old .idx. The reader
 * memory-maps the files and validates them on open: for Megatron the magic, version, dtype code
 * (every code of Megatron's table, 1..8), sizes against the file lengths, pointers equal to the
 * running byte sums, document_indices starting at 0, never decreasing and ending at the sequence
 * count, and int64/float tokens being int32 integers; for llm.c what llmc_shard_parse checks.
 * Failures are one line naming the file and the field.
 *
 * `indexed_dataset_open(PATH)` reads: a Megatron prefix, or PREFIX.bin / PREFIX.idx when both
 * files exist; an llm.c shard given as its file path (any regular file without a PATH.idx
 * beside it is taken as one), or as PATH when PATH.bin is an llm.c shard and PATH.idx does not
 * exist. llm.c documents are split at the EOT token that starts each of them. */
#ifndef CAIRN_INDEXED_DATASET_H
#define CAIRN_INDEXED_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "data/llmc_shard.h"

typedef struct indexed_dataset_writer indexed_dataset_writer;
typedef struct indexed_dataset indexed_dataset;

/* Creates missing parent folders of prefix. */
int indexed_dataset_writer_open(const char *prefix, int vocab_size, indexed_dataset_writer **out,
                                status *st);
int indexed_dataset_writer_add(indexed_dataset_writer *w, const int32_t *tokens, size_t count,
                               status *st);
/* Writes the index and renames both files into place; frees w either way. */
int indexed_dataset_writer_close(indexed_dataset_writer *w, status *st);
/* Removes the temporary files and frees w; an existing PREFIX.bin/.idx stays untouched. */
void indexed_dataset_writer_abort(indexed_dataset_writer *w);

int indexed_dataset_open(const char *prefix, indexed_dataset **out, status *st);
void indexed_dataset_close(indexed_dataset *d);
int64_t indexed_dataset_documents(const indexed_dataset *d);
int64_t indexed_dataset_tokens(const indexed_dataset *d);
int64_t indexed_dataset_document_length(const indexed_dataset *d, int64_t doc);
/* Copies `count` tokens of document `doc` starting at `offset` into out (as int32). */
void indexed_dataset_read(const indexed_dataset *d, int64_t doc, int64_t offset, int64_t count,
                          int32_t *out);
/* Megatron dtype code of the tokens on disk; 0 for uint32 llm.c shards (not in the table). */
int indexed_dataset_dtype_code(const indexed_dataset *d);
/* Name of the token type on disk ("uint16", "int32", ..., "uint32"). */
const char *indexed_dataset_dtype(const indexed_dataset *d);
/* "megatron" or "llm.c". */
const char *indexed_dataset_format(const indexed_dataset *d);
/* The files read: PREFIX.idx and PREFIX.bin, or the one llm.c shard. */
int indexed_dataset_file_count(const indexed_dataset *d);
const char *indexed_dataset_file(const indexed_dataset *d, int i);
/* The llm.c header fields, or NULL for a Megatron dataset. */
const llmc_shard *indexed_dataset_llmc_shard(const indexed_dataset *d);
/* "uint16", "int32", ... for a dtype code of the Megatron table, "unknown" otherwise. */
const char *indexed_dataset_dtype_name(int code);
/* Position of document `doc`'s first token in the token stream (the file's tokens in order). */
int64_t indexed_dataset_document_start(const indexed_dataset *d, int64_t doc);
/* Copies tokens [first, first+count) of the token stream, in file order, as int32. */
void indexed_dataset_read_stream(const indexed_dataset *d, int64_t first, int64_t count,
                                 int32_t *out);
/* The Megatron prefix, or the llm.c shard's path. */
const char *indexed_dataset_prefix(const indexed_dataset *d);

#endif
