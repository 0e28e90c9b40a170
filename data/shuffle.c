#include "data/shuffle.h"

void numpy_random_seed(numpy_random_state *r, uint32_t seed) { mt19937_seed(&r->generator, seed); }

uint64_t numpy_random_interval(numpy_random_state *r, uint64_t max) {
    if (max == 0) return 0;
    uint64_t mask = max;
    for (int shift = 1; shift <= 32; shift *= 2) mask |= mask >> shift;
    uint64_t value;
    if (max <= 0xffffffffu) {
        do value = mt19937_next(&r->generator) & mask;
        while (value > max);
    } else {
        do {
            uint64_t high = mt19937_next(&r->generator);
            value = (high << 32 | mt19937_next(&r->generator)) & mask;
        } while (value > max);
    }
    return value;
}

void numpy_shuffle(numpy_random_state *r, index_array *values, int64_t begin, int64_t count) {
    for (int64_t i = count - 1; i > 0; i--) {
        int64_t j = (int64_t)numpy_random_interval(r, (uint64_t)i);
        int64_t swap = index_array_get(values, begin + i);
        index_array_set(values, begin + i, index_array_get(values, begin + j));
        index_array_set(values, begin + j, swap);
    }
}
