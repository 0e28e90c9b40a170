/* Seeded shuffles for the data order (on top of common/random.h).
 *
 * Contract: `shuffle_stream_seed` turns (seed, a, b, c), e.g. (run.seed,
 * source, epoch, purpose), into the seed of an independent stream, the same
 * on every machine; `shuffle_int64` is a Fisher-Yates shuffle drawing from r. */
#ifndef CAIRN_SHUFFLE_H
#define CAIRN_SHUFFLE_H

#include <stdint.h>

#include "common/random.h"

uint64_t shuffle_stream_seed(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
void shuffle_int64(random_state *r, int64_t *values, int64_t count);

#endif
