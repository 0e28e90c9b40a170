/* Megatron indexed dataset (PREFIX.bin + PREFIX.idx), the one on-disk token format.
 *
 * Contract: the writer produces files byte-compatible with Megatron-LM's
 * `_IndexWriter` (one sequence per document, version 1, dtype code from the
 * vocabulary size: uint16 below 65,500, int32 above). The reader memory-maps
 * both files, validates them on open (magic, version, dtype code, sizes
 * against file length, monotonic pointers, document index ending at the
 * sequence count) and fails with a one-line message naming the file. */
#ifndef CAIRN_INDEXED_DATASET_H
#define CAIRN_INDEXED_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

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
int indexed_dataset_dtype_code(const indexed_dataset *d);
/* "uint16", "int32", ... for a dtype code of the Megatron table, "unknown" otherwise. */
const char *indexed_dataset_dtype_name(int code);
/* Position of document `doc`'s first token in the .bin token stream. */
int64_t indexed_dataset_document_start(const indexed_dataset *d, int64_t doc);
/* Copies tokens [first, first+count) of the .bin token stream, in file order, as int32. */
void indexed_dataset_read_stream(const indexed_dataset *d, int64_t first, int64_t count,
                                 int32_t *out);
const char *indexed_dataset_prefix(const indexed_dataset *d);

#endif
