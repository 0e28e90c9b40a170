/* Deterministic pseudo-random numbers (splitmix64 seeding, xoshiro256**).
 * Every generator is an explicit value: no global state, and the same seed
 * gives the same stream on every machine. */
#ifndef CAIRN_RANDOM_H
#define CAIRN_RANDOM_H

#include <stdint.h>

typedef struct random_state {
    uint64_t s[4];
} random_state;

void random_seed(random_state *r, uint64_t seed);
uint64_t random_next(random_state *r);
/* uniform in [0, 1) with 53 random bits */
double random_uniform(random_state *r);
/* standard normal (Box-Muller, both values used in turn is NOT done: one draw per call) */
double random_normal(random_state *r);
/* uniform integer in [0, bound) without modulo bias */
uint64_t random_below(random_state *r, uint64_t bound);

#endif
