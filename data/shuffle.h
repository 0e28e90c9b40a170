/* numpy's legacy RandomState shuffles, bit for bit: the randomness of Megatron's GPTDataset.
 *
 * Contract: `numpy_random_seed(r, s)` is `numpy.random.RandomState(s)` (MT19937 init_genrand,
 * common/mt19937.h). `numpy_random_interval(r, max)` is numpy's `random_interval`: uniform in
 * [0, max] by masked rejection on 32-bit draws, or on 64-bit draws (two 32-bit outputs, the
 * first one the high word) when max > 0xffffffff; max = 0 draws nothing. `numpy_shuffle` is
 * `RandomState.shuffle` of the 1-D array values[begin, begin+count): for i = count-1 down to 1,
 * swap x[i] and x[random_interval(i)]. The element width does not change the draws. */
#ifndef CAIRN_SHUFFLE_H
#define CAIRN_SHUFFLE_H

#include <stdint.h>

#include "common/mt19937.h"
#include "data/index_array.h"

typedef struct numpy_random_state {
    mt19937 generator;
} numpy_random_state;

void numpy_random_seed(numpy_random_state *r, uint32_t seed);
uint64_t numpy_random_interval(numpy_random_state *r, uint64_t max);
void numpy_shuffle(numpy_random_state *r, index_array *values, int64_t begin, int64_t count);

#endif
