/* Text documents -> token ids + EOD -> an indexed dataset (the shared back end
 * of `cairn prepare` and the fortune corpus).
 *
 * Contract: each `document_writer_add` tokenizes one document, appends the
 * tokenizer's EOD id and writes it as one Megatron sequence/document. Nothing
 * appears at PREFIX.bin/.idx before `document_writer_close` succeeds;
 * `document_writer_abort` removes the temporary files. */
#ifndef CAIRN_DOCUMENT_WRITER_H
#define CAIRN_DOCUMENT_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "data/tokenizer.h"

typedef struct document_writer document_writer;

int document_writer_open(const tokenizer *t, const char *prefix, document_writer **out,
                         status *st);
int document_writer_add(document_writer *w, const char *text, size_t length, status *st);
int64_t document_writer_documents(const document_writer *w);
int64_t document_writer_tokens(const document_writer *w);
/* Commits the files; frees w either way. */
int document_writer_close(document_writer *w, status *st);
void document_writer_abort(document_writer *w);

#endif
