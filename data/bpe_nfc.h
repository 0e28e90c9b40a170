/* Unicode NFC of UTF-8 text, for tokenizer.json's "normalizer": {"type": "NFC"}.
 *
 * Contract: `bpe_nfc_is_stable` returns 1 when the text is certainly in NFC
 * already (no code point NFC could change), so most text skips the work.
 * `bpe_nfc` writes NFC(text) into out (length reset first): canonical
 * decomposition, canonical ordering, canonical composition (UAX #15), with
 * the tables of data/bpe_nfc_tables.c, which reproduce Hugging Face tokenizers'
 * NFC (older Unicode data than today's: marks added since are not
 * reordered, nor pairs added since composed). Ill-formed UTF-8 bytes are
 * copied unchanged and nothing composes across them. Returns 0, or -1 when out
 * of memory. No state: safe from any number of threads, each with its own
 * buffers. */
#ifndef CAIRN_BPE_NFC_H
#define CAIRN_BPE_NFC_H

#include <stddef.h>
#include <stdint.h>

#include "data/text_buffer.h"

typedef struct nfc_buffer {
    uint32_t *code_points;
    size_t capacity;
} nfc_buffer;

int bpe_nfc_is_stable(const unsigned char *text, size_t length);
int bpe_nfc(const unsigned char *text, size_t length, text_buffer *out, nfc_buffer *work);
void nfc_buffer_free(nfc_buffer *b);

#endif
