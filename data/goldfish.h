/* Goldfish loss mask (Hans et al. 2024), bit-compatible with Apertus' Megatron data path.
 *
 * Contract: the decision for a target depends only on the sample's labels and the config, so it
 * is identical under every parallel layout, backend and resume. Variants (docs/goldfish.md):
 * - apertus: key = (int64) wrapping product of the h labels ending at target t, signed modulo
 *   1,000,003 made non-negative; drop when table[key] < (float)(1/k); t < h-1 is never dropped.
 * - coef: key = wrapping int64 sum of label[t-h+1+j] * coefficient[j] (h odd coefficients from
 *   torch.randint(0, 2^62) seeded 2971215073+h), same table and threshold; EOD targets are
 *   never dropped (the special-token exemption).
 * - static: drops targets t with t % k == 0.
 * Negative labels are Megatron's padding and hash as 0. The table is torch.rand(1,000,003) of
 * the CPU generator seeded 2971215073 (MT19937); it is read-only after creation, so threads
 * may share it. */
#ifndef CAIRN_GOLDFISH_H
#define CAIRN_GOLDFISH_H

#include <stdint.h>

#include "common/status.h"
#include "train/config.h"

#define GOLDFISH_TABLE_SIZE 1000003
#define GOLDFISH_TABLE_SEED 2971215073u

typedef struct goldfish_table {
    float *values;         /* GOLDFISH_TABLE_SIZE uniforms in [0, 1), multiples of 2^-24 */
    int64_t *coefficients; /* coef variant: h odd window coefficients; otherwise NULL */
    int h;                 /* window width the coefficients were drawn for */
} goldfish_table;

/* Builds what g's variant needs; *out is NULL when Goldfish is off or the variant is static. */
int goldfish_table_create(const goldfish_config *g, goldfish_table **out, status *st);
void goldfish_table_destroy(goldfish_table *table);

/* Table index of the h = g->h labels window[0..h-1] (the last one is the target decided);
 * apertus and coef variants only. */
int32_t goldfish_window_key(const goldfish_table *table, const goldfish_config *g,
                            const int32_t *window);

/* Clears loss_mask[t] for every target t in [0, count) that Goldfish drops. `labels` are the
 * sample's targets (tokens[1..seq_len]); eod_id is the document separator (-1: none). Does
 * nothing when g->enabled is 0; table may be NULL then and for the static variant. */
void goldfish_apply(const goldfish_table *table, const goldfish_config *g, const int32_t *labels,
                    int count, int32_t eod_id, uint8_t *loss_mask);

#endif
