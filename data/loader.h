/* Training and validation batches from indexed datasets, in Megatron's sample order.
 *
 * Contract: a `sample` is seq_len+1 consecutive tokens of a source's packed token stream
 * (documents concatenated, so samples cross document boundaries; consecutive samples share one
 * token). The order of samples is Megatron-LM's, element for element (docs/data-order.md):
 * each source with a positive weight is a GPTDataset (document, sample and shuffle indices from
 * numpy.random.RandomState(run.seed)) over the documents of the data.split share, and two or more
 * sources are a BlendedDataset (weights normalised, ceil(N * w) samples each, built with 0.5%
 * surplus, interleaved by the error-minimising rule). N, the samples of the training order, is
 * run.steps * train.global_batch; one source alone is a GPTDataset of N samples. A source's path
 * is a dataset prefix, a glob pattern or a directory of shards read as one dataset
 * (data/shard_pool.h). The built indices are cached beside the data (data/index_cache.h) and
 * rebuilt when the data or the parameters change.
 *
 * Global batch n is global samples [cursor, cursor + G) (G = global_batch); the cursor counts the
 * samples consumed (all ranks) and setting it back reproduces exactly the same following
 * batches. As Megatron's MegatronPretrainingSampler, with m = micro_batch and dp ranks, rank r
 * gets, for each micro-batch k = 0 .. G/(m*dp)-1, the samples k*m*dp + r*m + [0, m) of the global
 * batch, stored as rows k*m + [0, m) of its batch; it reads no other rank's samples. By default a
 * background thread prepares the next batches (data/prefetch.h); batches do not depend on it.
 * `loss_mask[t]` is 1 where target t counts in the loss: 0 where the input token is EOD (when
 * mask_eod_input) and, in training with train.goldfish.enabled, where Goldfish drops the target.
 *
 * The window reader reads windows of seq_len+1 tokens with stride seq_len from the start of a
 * dataset's token stream, in file order (as `cairn eval`). */
#ifndef CAIRN_LOADER_H
#define CAIRN_LOADER_H

#include <stdint.h>

#include "common/status.h"
#include "data/split.h"
#include "train/config.h"

typedef struct data_loader data_loader;

typedef struct batch {
    int sequences;        /* rows */
    int seq_len;
    int32_t *tokens;      /* [sequences][seq_len+1] */
    uint8_t *loss_mask;   /* [sequences][seq_len] */
} batch;

typedef struct data_loader_options {
    int max_open_shards;  /* shard files mapped at once per source (least recently used closed) */
    int prefetch_depth;   /* global batches prepared ahead on a thread; 0: no thread */
} data_loader_options;

#define DATA_LOADER_MAX_OPEN_SHARDS 64
#define DATA_LOADER_PREFETCH_DEPTH 2

/* Opens every source of c->data (training split, run.steps * global_batch samples) with the
 * default options. dp_rank/dp_size choose this rank's share of each global batch. */
int data_loader_open(const config *c, int dp_rank, int dp_size, data_loader **out, status *st);
/* Any split of data.split with `samples` global samples (Megatron's size of that split);
 * options NULL: the defaults. Goldfish applies to the training split only. */
int data_loader_open_split(const config *c, data_split split, int64_t samples, int dp_rank,
                           int dp_size, const data_loader_options *options, data_loader **out,
                           status *st);
/* Fills `b` (allocated by the caller with room for c->train.global_batch / dp_size
 * sequences) with this rank's samples of the next global batch. */
int data_loader_next_global_batch(data_loader *l, batch *b, status *st);
/* Global sample `index` of the order (any rank may read any sample), into row `row` of b. */
int data_loader_read_sample(data_loader *l, int64_t index, batch *b, int row, status *st);
/* Samples of the global order consumed so far (all ranks). */
int64_t data_loader_cursor(const data_loader *l);
/* Fails when consumed_samples is negative or past the end of the order. */
int data_loader_set_cursor(data_loader *l, int64_t consumed_samples, status *st);
/* Samples in the order (at least what it was opened for). */
int64_t data_loader_samples(const data_loader *l);
/* Total tokens over all sources (every document, whatever the split), for run.json. */
int64_t data_loader_total_tokens(const data_loader *l);
/* For run.json: the shards of source `config_index` of c->data.sources and a SHA-256 over each
 * shard's path, file sizes, modification times and index header (what the index cache is keyed
 * by); -1 when that source was left out (weight 0). */
int data_loader_source_fingerprint(const data_loader *l, int config_index, int *shards,
                                   char hex[65]);
void data_loader_close(data_loader *l);

typedef struct data_loader_stats {
    int indices;             /* built or loaded: one per source, one more for a blend */
    int cache_hits;          /* loaded from a valid cache file */
    int cache_writes;        /* built and written to a cache file */
    int in_memory;           /* built and kept in memory: the cache could not be written */
    int shards;              /* over all sources */
    int open_shards_peak;    /* the most shards one source had mapped at once */
    int64_t shard_opens;     /* shard files opened so far */
} data_loader_stats;
void data_loader_get_stats(data_loader *l, data_loader_stats *out);

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
