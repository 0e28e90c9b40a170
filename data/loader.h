/* Training and validation batches from indexed datasets.
 *
 * Contract: a `sample` is seq_len+1 consecutive tokens of the packed token
 * stream (documents concatenated, each ending with EOD, so samples cross
 * document boundaries). The training loader yields samples in a
 * deterministic shuffled order from (seed, sources, weights, seq_len); the
 * position in that order is the cursor (`data_loader_cursor`), and setting it
 * back reproduces exactly the same following batches. Each data-parallel rank
 * receives only its own samples of a global batch. `loss_mask[t]` is 1 where
 * target t counts in the loss: 0 where the input token is EOD (when
 * mask_eod_input) and where Goldfish drops the target.
 *
 * Order: each source's packed stream is its documents in an order shuffled
 * per epoch, cut into windows at stride seq_len; the windows of an epoch are
 * shuffled too (seeds from run.seed, source index, epoch), and epochs repeat
 * forever. Sources are interleaved by Megatron's deterministic blending rule
 * (global sample i goes to the source maximising weight*max(i,1) - taken).
 * Global batch n is global samples [n*G, (n+1)*G) after the cursor (G =
 * global_batch). As in Megatron's MegatronPretrainingSampler, with m =
 * micro_batch and dp data-parallel ranks, rank r gets, for each micro-batch
 * k = 0 .. G/(m*dp)-1, the samples k*m*dp + r*m + [0, m) of the global batch,
 * stored as rows k*m + [0, m) of its batch.
 *
 * The validation loader reads windows of seq_len+1 tokens with stride seq_len
 * from the start of the token stream, in file order (as `cairn eval`). */
#ifndef CAIRN_LOADER_H
#define CAIRN_LOADER_H

#include <stdint.h>

#include "common/status.h"
#include "train/config.h"

typedef struct data_loader data_loader;

typedef struct batch {
    int sequences;        /* rows */
    int seq_len;
    int32_t *tokens;      /* [sequences][seq_len+1] */
    uint8_t *loss_mask;   /* [sequences][seq_len] */
} batch;

/* Opens every source of c->data (training split). dp_rank/dp_size choose this
 * rank's share of each global batch. */
int data_loader_open(const config *c, int dp_rank, int dp_size, data_loader **out, status *st);
/* Fills `b` (allocated by the caller with room for c->train.global_batch / dp_size
 * sequences) with this rank's samples of the next global batch. */
int data_loader_next_global_batch(data_loader *l, batch *b, status *st);
/* Samples of the global order consumed so far (all ranks). */
int64_t data_loader_cursor(const data_loader *l);
int data_loader_set_cursor(data_loader *l, int64_t consumed_samples, status *st);
/* Total tokens and documents over all sources, and a description for run.json. */
int64_t data_loader_total_tokens(const data_loader *l);
void data_loader_close(data_loader *l);

/* Sequential windows of a dataset, for eval: window i covers tokens
 * [i*seq_len, i*seq_len + seq_len + 1) of the file's token stream. */
typedef struct window_reader window_reader;
int window_reader_open(const char *prefix, int seq_len, int eod_id, int mask_eod_input,
                       window_reader **out, status *st);
int64_t window_reader_count(const window_reader *r);
/* Fills row `row` of b with window `index`. */
void window_reader_get(const window_reader *r, int64_t index, batch *b, int row);
void window_reader_close(window_reader *r);

batch *batch_alloc(int sequences, int seq_len);
void batch_free(batch *b);

#endif
