/* Megatron's GPTDataset indices. The steps and their order of random draws follow
 * `_build_document_sample_shuffle_indices`; the sample index is `build_sample_idx` of helpers.cpp
 * with Megatron's overflow-free types made int64 here. */
#include "data/gpt_dataset_index.h"

#include <inttypes.h>
#include <string.h>

#include "data/shuffle.h"

enum { EXTRA_TOKEN = 1 };  /* add_extra_token_to_sequence */

static int out_of_memory(status *st, const char *what, int64_t count) {
    return status_fail(st, "data index: out of memory for the %s (%" PRId64 " entries)", what,
                       count);
}

/* document ids [first, first+count) tiled `epochs` times and shuffled, from position `at`:
 * `_build_document_index` without the final-epoch separation. */
static void fill_documents(index_array *documents, int64_t at, int64_t first, int64_t count,
                           int64_t epochs, numpy_random_state *r) {
    for (int64_t e = 0; e < epochs; e++)
        for (int64_t d = 0; d < count; d++)
            index_array_set(documents, at + e * count + d, first + d);
    numpy_shuffle(r, documents, at, epochs * count);
}

static void build_sample_index(const gpt_index_request *q, const index_array *documents,
                               index_array *samples) {
    int64_t position = 0, offset = 0, last = documents->count - 1;
    index_array_set(samples, 0, 0);
    index_array_set(samples, 1, 0);
    for (int64_t s = 1; s <= samples->count / 2 - 1; s++) {
        int64_t remaining = q->seq_len + EXTRA_TOKEN;
        while (remaining != 0) {
            int64_t document = index_array_get(documents, position);
            int64_t length = q->sizes[document] - offset;
            remaining -= length;
            if (remaining <= 0) {
                offset += remaining + length - EXTRA_TOKEN;
                remaining = 0;
            } else if (position == last) {
                offset = q->sizes[document] - EXTRA_TOKEN;
                break;
            } else {
                position++;
                offset = 0;
            }
        }
        index_array_set(samples, 2 * s, position);
        index_array_set(samples, 2 * s + 1, offset);
    }
}

/* `_build_shuffle_index(first_part, total)`: [0, first_part) and [first_part, total) shuffled
 * one after the other (one range when they are equal). */
static void build_shuffle_index(index_array *order, int64_t first_part, numpy_random_state *r) {
    for (int64_t i = 0; i < order->count; i++) index_array_set(order, i, i);
    numpy_shuffle(r, order, 0, first_part);
    if (first_part < order->count) numpy_shuffle(r, order, first_part, order->count - first_part);
}

int gpt_index_build(const gpt_index_request *q, gpt_index *out, status *st) {
    memset(out, 0, sizeof *out);
    if (q->first + q->count > (int64_t)INT32_MAX + 1)
        return status_fail(st, "data index: %" PRId64 " documents exceed Megatron's int32 "
                           "document index", q->first + q->count);
    int64_t tokens = 0;
    for (int64_t d = q->first; d < q->first + q->count; d++) tokens += q->sizes[d];
    if (tokens < (int64_t)q->seq_len + EXTRA_TOKEN)
        return status_fail(st, "data index: %" PRId64 " documents of %" PRId64
                           " tokens, fewer than one sample of seq_len+1 = %d",
                           q->count, tokens, q->seq_len + EXTRA_TOKEN);
    out->tokens_per_epoch = tokens;
    out->epochs = 1;
    if (q->num_samples >= 0) {
        int64_t requested = q->num_samples * q->seq_len + EXTRA_TOKEN;
        out->epochs = requested > tokens ? (requested + tokens - 1) / tokens : 1;
    }
    out->samples = (out->epochs * tokens - EXTRA_TOKEN) / q->seq_len;
    int64_t sans_final = out->samples;  /* samples before the final epoch, when it is separate */
    if (out->epochs > 1) {
        int64_t before_final = ((out->epochs - 1) * tokens - EXTRA_TOKEN) / q->seq_len;
        int64_t per_epoch = (tokens - EXTRA_TOKEN) / q->seq_len;
        out->separate_final_epoch =
            q->num_samples - before_final < (int64_t)(0.80 * (double)per_epoch);
        if (out->separate_final_epoch) sans_final = before_final;
    }

    numpy_random_state r;
    numpy_random_seed(&r, q->seed);
    int64_t entries = out->epochs * q->count;
    if (index_array_alloc(&out->document_index, entries, 4) != 0)
        return out_of_memory(st, "document index", entries);
    int64_t joint = out->separate_final_epoch ? out->epochs - 1 : out->epochs;
    fill_documents(&out->document_index, 0, q->first, q->count, joint, &r);
    if (out->separate_final_epoch)
        fill_documents(&out->document_index, entries - q->count, q->first, q->count, 1, &r);

    /* Megatron's int32 test max(len(document_index), max(sizes)) <= INT32_MAX: sizes are int32 */
    int narrow = entries <= INT32_MAX;
    if (index_array_alloc(&out->sample_index, 2 * (out->samples + 1), narrow ? 4 : 8) != 0) {
        gpt_index_release(out);
        return out_of_memory(st, "sample index", 2 * (out->samples + 1));
    }
    build_sample_index(q, &out->document_index, &out->sample_index);

    int wide = out->samples >= (int64_t)UINT32_MAX - 1;
    if (index_array_alloc(&out->shuffle_index, out->samples, wide ? 8 : 4) != 0) {
        gpt_index_release(out);
        return out_of_memory(st, "shuffle index", out->samples);
    }
    build_shuffle_index(&out->shuffle_index, sans_final, &r);
    return 0;
}

void gpt_index_release(gpt_index *index) {
    index_array_release(&index->document_index);
    index_array_release(&index->sample_index);
    index_array_release(&index->shuffle_index);
}
