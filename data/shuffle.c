#include "data/shuffle.h"

uint64_t shuffle_stream_seed(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    const uint64_t labels[3] = {a, b, c};
    random_state r;
    for (int i = 0; i < 3; i++) {
        random_seed(&r, seed);
        seed = random_next(&r) ^ labels[i];
    }
    random_seed(&r, seed);
    return random_next(&r);
}

void shuffle_int64(random_state *r, int64_t *values, int64_t count) {
    for (int64_t i = count - 1; i > 0; i--) {
        int64_t j = (int64_t)random_below(r, (uint64_t)i + 1);
        int64_t swap = values[i];
        values[i] = values[j];
        values[j] = swap;
    }
}
