#include "data/goldfish.h"

#include <assert.h>
#include <stdlib.h>

#include "common/mt19937.h"

/* torch.rand's float32 on the CPU generator: the low 24 bits of one 32-bit draw times 2^-24
 * (ATen's uniform_real), exact in float. */
static float torch_uniform_float(mt19937 *g) {
    return (float)(mt19937_next(g) & 0xFFFFFFu) * (1.0f / 16777216.0f);
}

/* torch.randint(0, 2^62) on the CPU generator: ranges of 2^32 or more take random64(), the first
 * draw as the high word, reduced modulo the range. */
static int64_t torch_randint_below_2_62(mt19937 *g) {
    uint64_t high = mt19937_next(g);
    uint64_t low = mt19937_next(g);
    return (int64_t)(((high << 32) | low) & ((UINT64_C(1) << 62) - 1));
}

static int fill_coefficients(goldfish_table *table, int h, status *st) {
    table->coefficients = malloc((size_t)h * sizeof *table->coefficients);
    if (!table->coefficients)
        return status_fail(st, "train.goldfish.h: out of memory for %d coefficients", h);
    /* torch's manual_seed keeps the low 32 bits of the seed for MT19937 */
    mt19937 g;
    mt19937_seed(&g, GOLDFISH_TABLE_SEED + (uint32_t)h);
    for (int j = 0; j < h; j++)
        table->coefficients[j] = torch_randint_below_2_62(&g) | 1;
    return 0;
}

int goldfish_table_create(const goldfish_config *g, goldfish_table **out, status *st) {
    *out = NULL;
    if (!g->enabled || g->variant == GOLDFISH_STATIC) return 0;
    goldfish_table *table = calloc(1, sizeof *table);
    if (table) table->values = malloc(GOLDFISH_TABLE_SIZE * sizeof *table->values);
    if (!table || !table->values) {
        goldfish_table_destroy(table);
        return status_fail(st, "train.goldfish: out of memory for the %d-entry hash table",
                           GOLDFISH_TABLE_SIZE);
    }
    mt19937 rng;
    mt19937_seed(&rng, GOLDFISH_TABLE_SEED);
    for (int i = 0; i < GOLDFISH_TABLE_SIZE; i++)
        table->values[i] = torch_uniform_float(&rng);
    table->h = g->h;
    if (g->variant == GOLDFISH_COEF && fill_coefficients(table, g->h, st)) {
        goldfish_table_destroy(table);
        return -1;
    }
    *out = table;
    return 0;
}

void goldfish_table_destroy(goldfish_table *table) {
    if (!table) return;
    free(table->values);
    free(table->coefficients);
    free(table);
}

/* Megatron rewrites its padding id (-1) to 0 before hashing. */
static uint64_t hashed_label(int32_t label) { return label < 0 ? 0 : (uint64_t)label; }

int32_t goldfish_window_key(const goldfish_table *table, const goldfish_config *g,
                            const int32_t *window) {
    assert(table && g->variant != GOLDFISH_STATIC);
    uint64_t key = 0; /* int64 arithmetic wraps modulo 2^64 in torch; uint64 does so in C */
    if (g->variant == GOLDFISH_COEF) {
        assert(table->coefficients && table->h == g->h);
        for (int j = 0; j < g->h; j++)
            key += hashed_label(window[j]) * (uint64_t)table->coefficients[j];
    } else {
        key = 1;
        for (int j = 0; j < g->h; j++)
            key *= hashed_label(window[j]);
    }
    /* torch's % on the signed int64 follows Python: the result takes the divisor's sign. Taking
     * the uint64 modulo instead would differ whenever the sign bit is set. */
    int64_t remainder = (int64_t)key % GOLDFISH_TABLE_SIZE;
    if (remainder < 0) remainder += GOLDFISH_TABLE_SIZE;
    return (int32_t)remainder;
}

void goldfish_apply(const goldfish_table *table, const goldfish_config *g, const int32_t *labels,
                    int count, int32_t eod_id, uint8_t *loss_mask) {
    if (!g->enabled) return;
    assert(g->k >= 2 && g->h >= 1); /* config_resolve refuses other values */
    if (g->variant == GOLDFISH_STATIC) {
        for (int t = 0; t < count; t += g->k)
            loss_mask[t] = 0;
        return;
    }
    /* torch compares the float32 table with 1/k rounded to float32; for table values (multiples
     * of 2^-24) this agrees with the double comparison for every k >= 2. */
    const float threshold = (float)(1.0 / g->k);
    const int exempt_eod = g->variant == GOLDFISH_COEF && eod_id >= 0;
    for (int t = g->h - 1; t < count; t++) {
        if (exempt_eod && hashed_label(labels[t]) == (uint64_t)eod_id) continue;
        if (table->values[goldfish_window_key(table, g, labels + t - g->h + 1)] < threshold)
            loss_mask[t] = 0;
    }
}
