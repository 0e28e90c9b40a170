/* MT19937, the 32-bit Mersenne Twister of Matsumoto and Nishimura (1998).
 *
 * Contract: `mt19937_seed(g, s)` is the reference `init_genrand(s)`, the seeding that
 * numpy's legacy `RandomState(int)` and PyTorch's CPU generator (`manual_seed`) use, so
 * the same seed gives the same 32-bit stream here as there. Data-path code that must
 * reproduce another framework's random choices (Megatron's shuffles, Apertus' Goldfish
 * table) builds on this; cairn's own randomness uses common/random.h. */
#ifndef CAIRN_MT19937_H
#define CAIRN_MT19937_H

#include <stdint.h>

typedef struct mt19937 {
    uint32_t state[624];
    int index;
} mt19937;

void mt19937_seed(mt19937 *g, uint32_t seed);
uint32_t mt19937_next(mt19937 *g);

#endif
