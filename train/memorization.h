/* Verbatim memorization of training documents (the Goldfish paper's measurement).
 *
 * Contract: `memorization_evaluate` takes the first `documents` documents of the dataset (in
 * file order) that hold at least prefix + continuation tokens (as stored: the EOD that
 * `cairn prepare` appends counts), feeds each document's first `prefix` tokens to the model and
 * decodes `continuation` tokens greedily (argmax; ties go to the lowest id), each decoded token
 * fed back as the next input, then compares them with the document's true next tokens. It
 * reports the fraction of documents whose whole continuation is reproduced (exact match) and the
 * mean fraction of continuation tokens equal to the document's at the same position (token
 * match). The model must be a whole single-rank model; prefix + continuation <= seq_len.
 * Documents are decoded micro_batch at a time, each greedy token one forward pass of the model;
 * the positions after the decoded tokens and the unused rows hold token 0, which causal
 * attention hides from the decoded positions (only MoE with a capacity factor lets them compete
 * for expert slots). Fails, with one line in st, on bad options or when no document is long
 * enough. */
#ifndef CAIRN_MEMORIZATION_H
#define CAIRN_MEMORIZATION_H

#include <stdint.h>

#include "common/status.h"
#include "data/indexed_dataset.h"
#include "train/model.h"

typedef struct memorization_options {
    int64_t documents;
    int prefix, continuation;
} memorization_options;

typedef struct memorization_result {
    int64_t documents;  /* evaluated (long enough) */
    double exact_match, token_match;
} memorization_result;

int memorization_evaluate(model *m, const indexed_dataset *data, const memorization_options *opt,
                          memorization_result *result, status *st);

#endif
