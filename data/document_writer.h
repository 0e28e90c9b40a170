/* Text documents -> token ids + EOD -> an indexed dataset (the shared back end of `cairn prepare`
 * and the fortune corpus).
 *
 * Contract: `document_encode` appends one document's ids and the tokenizer's EOD id to a growing
 * id array, through a per-thread encoder (data/tokenizer.h), so several threads can encode at
 * once with one encoder each. Each `document_writer_add` tokenizes one document that way and
 * writes it as one Megatron sequence/document; `document_writer_add_tokens` writes an already
 * encoded one. A tokenizer without an EOD token is refused by `document_writer_open`. Nothing
 * appears at PREFIX.bin/.idx before `document_writer_close` succeeds; `document_writer_abort`
 * removes the temporary files. */
#ifndef CAIRN_DOCUMENT_WRITER_H
#define CAIRN_DOCUMENT_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "data/tokenizer.h"

typedef struct document_writer document_writer;

/* Appends the ids of text[0..length) and EOD to *ids (realloc'd; *count and *capacity updated). */
int document_encode(tokenizer_encoder *e, int32_t eod, const char *text, size_t length,
                    int32_t **ids, size_t *count, size_t *capacity, status *st);

int document_writer_open(const tokenizer *t, const char *prefix, document_writer **out, status *st);
int document_writer_add(document_writer *w, const char *text, size_t length, status *st);
int document_writer_add_tokens(document_writer *w, const int32_t *ids, size_t count, status *st);
int64_t document_writer_documents(const document_writer *w);
int64_t document_writer_tokens(const document_writer *w);
/* Commits the files; frees w either way. */
int document_writer_close(document_writer *w, status *st);
void document_writer_abort(document_writer *w);

#endif
