/* The documents of one micro-batch, as attention's per-document causal masks take them
 * (Megatron's reset_attention_mask): B sequences of T tokens, token n = b·T + t, each sequence
 * cut into documents that attend only to themselves.
 *
 * Two descriptions of the same cut, both in device memory, for the backends to pick from:
 * doc_start [B·T], the position in its sequence where each token's document begins (the CPU
 * backend and the flash kernels), and starts [count + 1], the first token n of every document
 * in increasing order, then B·T (cuDNN's ragged tensors). count (at least B, at most B·T) is a
 * host value, so a backend can size its launches without reading device memory. */
#ifndef CAIRN_ATTENTION_DOCUMENTS_H
#define CAIRN_ATTENTION_DOCUMENTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct attention_documents {
    const int32_t *doc_start; /* [B·T] */
    const int32_t *starts;    /* [count + 1] */
    int count;
} attention_documents;

/* Fills starts [count + 1] from a host doc_start [B·T] whose every sequence begins a document
 * at t = 0 (doc_start[b·T] = 0) and whose documents are contiguous (doc_start[n] is t at a
 * document's first token and its predecessor's value elsewhere); returns count. */
int attention_documents_starts(const int32_t *doc_start, int B, int T, int32_t *starts);

#endif
