/* Megatron GPTDataset's three indices (megatron/core/datasets/gpt_dataset.py, helpers.cpp), with
 * add_extra_token_to_sequence = 1 and drop_last_partial_sequence = true.
 *
 * Contract: for the documents [first, first+count) of a dataset whose sequence lengths are
 * `sizes`, gpt_index_build computes the arrays GPTDataset builds for the same documents,
 * sequence_length, random_seed and num_samples, element for element and in Megatron's dtypes:
 * - epochs: the smallest e >= 1 with e * tokens_per_epoch >= num_samples * seq_len + 1 (1 when
 *   num_samples is -1, Megatron's None); the last epoch is shuffled separately when it
 *   contributes fewer than int(0.8 * samples per epoch) samples;
 * - document_index (int32): the document ids tiled over the epochs, shuffled by
 *   RandomState(seed) (the separate final epoch after the others);
 * - sample_index ([samples+1][2], int32 or int64): where sample i starts (position in
 *   document_index, token offset); sample i is the seq_len+1 tokens from its start, so
 *   consecutive samples share one token;
 * - shuffle_index (uint32 or int64): the sample order, shuffled by the same RandomState after
 *   the document index (the final epoch's samples separately when it is separate).
 * Global sample i of the dataset is sample shuffle_index[i]. */
#ifndef CAIRN_GPT_DATASET_INDEX_H
#define CAIRN_GPT_DATASET_INDEX_H

#include <stdint.h>

#include "common/status.h"
#include "data/index_array.h"

typedef struct gpt_index_request {
    const int32_t *sizes;  /* tokens of every sequence of the dataset, indexed by document id */
    int64_t first, count;  /* the exposed documents (a split) */
    int seq_len;
    uint32_t seed;         /* Megatron's config.random_seed */
    int64_t num_samples;   /* samples requested; -1: one epoch */
} gpt_index_request;

typedef struct gpt_index {
    int64_t tokens_per_epoch, epochs, samples;
    int separate_final_epoch;
    index_array document_index;  /* [epochs * count] */
    index_array sample_index;    /* [(samples + 1) * 2] */
    index_array shuffle_index;   /* [samples] */
} gpt_index;

/* Fills *out with malloc'd arrays; fails (naming nothing but the numbers) when the documents
 * hold fewer than seq_len + 1 tokens or memory runs out. */
int gpt_index_build(const gpt_index_request *request, gpt_index *out, status *st);
void gpt_index_release(gpt_index *index);

/* Megatron's sample: the positions of sample `sample` (in sample_index order, not shuffled) as
 * (document_index position, offset) pairs of its start and of the next sample's start. */
static inline void gpt_index_sample_bounds(const gpt_index *index, int64_t sample,
                                           int64_t bounds[4]) {
    for (int i = 0; i < 4; i++) bounds[i] = index_array_get(&index->sample_index, 2 * sample + i);
}

#endif
