/* Goldfish mask: the Apertus table and worked example (reference §1.6, values from torch), the
 * signed modulo, the coef variant's coefficients, keys and EOD exemption (values from torch
 * 1.13), drop rates near 1/k, decisions that follow the h-gram wherever it sits, keys that move
 * with every token of the window, the never-dropped first h-1 targets, the static pattern and the
 * config's refusal of k < 2 and of windows longer than the sample. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/random.h"
#include "data/goldfish.h"
#include "train/config.h"

enum { SMALL_COUNT = 16 };
static const int32_t small_labels[SMALL_COUNT] = {5,  17, 29, 3,  11, 7,  101, 2,
                                                  13, 19, 23, 31, 37, 41, 43,  47};

static goldfish_config make_config(goldfish_variant variant, int k, int h) {
    goldfish_config g = {.enabled = 1, .k = k, .h = h, .variant = variant};
    return g;
}

static goldfish_table *make_table(const goldfish_config *g) {
    goldfish_table *table = NULL;
    status st;
    CHECK(goldfish_table_create(g, &table, &st) == 0);
    CHECK(table != NULL);
    return table;
}

/* Applies Goldfish to an all-ones mask and writes the dropped targets to `dropped`. */
static int dropped_targets(const goldfish_table *table, const goldfish_config *g,
                           const int32_t *labels, int count, int32_t eod_id, int *dropped) {
    uint8_t mask[4096];
    memset(mask, 1, (size_t)count);
    goldfish_apply(table, g, labels, count, eod_id, mask);
    int n = 0;
    for (int t = 0; t < count; t++)
        if (!mask[t]) dropped[n++] = t;
    return n;
}

static void check_dropped(const goldfish_table *table, const goldfish_config *g, int32_t eod_id,
                          const int *expected, int expected_count) {
    int dropped[SMALL_COUNT];
    int n = dropped_targets(table, g, small_labels, SMALL_COUNT, eod_id, dropped);
    CHECK_MSG(n == expected_count, "variant %d k=%d eod %d: %d dropped, expected %d", g->variant,
              g->k, eod_id, n, expected_count);
    for (int i = 0; i < n && i < expected_count; i++)
        CHECK_MSG(dropped[i] == expected[i], "drop %d at %d, expected %d", i, dropped[i],
                  expected[i]);
}

static void test_table(const goldfish_table *table) {
    static const float head[8] = {0.233683884f, 0.441264033f,   0.741147697f, 0.909271896f,
                                  0.711322308f, 0.00112521648f, 0.217162848f, 0.0382027626f};
    for (int i = 0; i < 8; i++)
        CHECK_MSG(table->values[i] == head[i], "table[%d] = %.9g, expected %.9g", i,
                  table->values[i], head[i]);
    CHECK(table->values[GOLDFISH_TABLE_SIZE - 1] == 0.836006761f);
    int below = 0;
    for (int i = 0; i < GOLDFISH_TABLE_SIZE; i++)
        below += table->values[i] < (float)(1.0 / 50);
    CHECK_MSG(below == 19901, "%d entries below 1/50", below);
}

static void test_apertus_example(const goldfish_table *table) {
    static const int32_t keys[] = {7395,  16269,  6699,   23331, 15554, 18382, 49894,
                                   11362, 176111, 501239, 81618, 22155, 65848};
    goldfish_config g = make_config(GOLDFISH_APERTUS, 4, 4);
    for (int p = 3; p < SMALL_COUNT; p++)
        CHECK_MSG(goldfish_window_key(table, &g, small_labels + p - 3) == keys[p - 3], "key at %d",
                  p);
    check_dropped(table, &g, -1, (const int[]){6}, 1);
    g.k = 2;
    check_dropped(table, &g, -1, (const int[]){5, 6, 8, 10, 12}, 5);
    /* Apertus has no exemption: an EOD target is dropped like any other */
    g.k = 4;
    check_dropped(table, &g, 101, (const int[]){6}, 1);

    /* the product -5677616269300761312 (sign bit set): torch's key 948200, not the uint64
     * modulo's 298884 */
    static const int32_t wrapping[4] = {100000, 100003, 99991, 123457};
    CHECK(goldfish_window_key(table, &g, wrapping) == 948200);
    /* Megatron rewrites padding (-1) to 0: any window holding it or a 0 has key 0 */
    static const int32_t padded[4] = {5, -1, 17, 29}, zero[4] = {5, 0, 17, 29};
    CHECK(goldfish_window_key(table, &g, padded) == 0);
    CHECK(goldfish_window_key(table, &g, zero) == 0);
}

static void test_coef_example(void) {
    goldfish_config g = make_config(GOLDFISH_COEF, 4, 4);
    goldfish_table *table = make_table(&g);
    if (!table) return;
    static const int64_t coefficients[4] = {720447553427833819, 4496691890966372455,
                                            1232637403507141081, 2767424380642735399};
    for (int j = 0; j < 4; j++)
        CHECK(table->coefficients[j] == coefficients[j]);
    static const int32_t keys[] = {921438, 166732, 943421, 218168, 715430, 821428, 765297,
                                   681154, 978826, 746074, 827924, 502355, 474281};
    for (int p = 3; p < SMALL_COUNT; p++)
        CHECK_MSG(goldfish_window_key(table, &g, small_labels + p - 3) == keys[p - 3], "key at %d",
                  p);
    check_dropped(table, &g, -1, (const int[]){4, 5, 10, 14}, 4);
    g.k = 2;
    check_dropped(table, &g, -1, (const int[]){3, 4, 5, 9, 10, 11, 14, 15}, 8);
    /* EOD targets are exempt: label 7 at target 5, label 43 at target 14 */
    g.k = 4;
    check_dropped(table, &g, 7, (const int[]){4, 10, 14}, 3);
    check_dropped(table, &g, 43, (const int[]){4, 5, 10}, 3);
    /* an EOD inside the window but not at the target does not exempt it */
    check_dropped(table, &g, 41, (const int[]){4, 5, 10, 14}, 4);
    goldfish_table_destroy(table);
}

static void random_labels(random_state *r, int32_t *labels, int count, int vocab) {
    for (int t = 0; t < count; t++)
        labels[t] = (int32_t)random_below(r, (uint64_t)vocab);
}

/* Over many random samples, the fraction dropped among targets t >= h-1 is 1/k within 5
 * binomial standard deviations. */
static void test_drop_rate(const goldfish_table *table, const goldfish_config *g) {
    enum { SAMPLES = 100, COUNT = 2048 };
    random_state r;
    random_seed(&r, 42);
    int32_t labels[COUNT];
    int dropped[COUNT];
    int64_t total = 0, eligible = 0;
    for (int s = 0; s < SAMPLES; s++) {
        random_labels(&r, labels, COUNT, 131072);
        total += dropped_targets(table, g, labels, COUNT, -1, dropped);
        eligible += COUNT - (g->h - 1);
    }
    double p = 1.0 / g->k, sd = sqrt((double)eligible * p * (1 - p));
    CHECK_MSG(fabs((double)total - eligible * p) <= 5 * sd,
              "variant %d k=%d h=%d: %lld of %lld dropped, expected %.0f +- %.0f", g->variant, g->k,
              g->h, (long long)total, (long long)eligible, eligible * p, 5 * sd);
}

/* A document's targets whose window lies inside it get the same decision in every sample that
 * holds it, at any offset and between any neighbours. */
static void test_same_context_same_decision(const goldfish_table *table, const goldfish_config *g) {
    enum { COUNT = 1024, LENGTH = 400, PLACES = 3 };
    static const int offsets[PLACES] = {0, 37, COUNT - LENGTH};
    random_state r;
    random_seed(&r, 7);
    int32_t document[LENGTH], labels[COUNT];
    random_labels(&r, document, LENGTH, 50000);
    uint8_t reference[LENGTH];
    int drops = 0;
    for (int place = 0; place < PLACES; place++) {
        random_labels(&r, labels, COUNT, 50000);
        memcpy(labels + offsets[place], document, sizeof document);
        uint8_t mask[COUNT];
        memset(mask, 1, sizeof mask);
        goldfish_apply(table, g, labels, COUNT, -1, mask);
        const uint8_t *inside = mask + offsets[place];
        if (place == 0) {
            memcpy(reference, inside, LENGTH);
            for (int i = g->h - 1; i < LENGTH; i++)
                drops += !inside[i];
            continue;
        }
        int differ = 0;
        for (int i = g->h - 1; i < LENGTH; i++)
            differ += inside[i] != reference[i];
        CHECK_MSG(differ == 0, "variant %d h=%d offset %d: %d decisions differ", g->variant, g->h,
                  offsets[place], differ);
    }
    CHECK_MSG(drops > 0, "variant %d: no drop inside the document, nothing compared", g->variant);
}

/* Replacing any single label of a window changes its key; the coef key also sees the order. */
static void test_key_follows_window(const goldfish_table *table, const goldfish_config *g) {
    random_state r;
    random_seed(&r, 11);
    int32_t window[64];
    /* odd labels: a product with 64 factors of two would wrap to 0 whatever the rest */
    for (int j = 0; j < g->h; j++)
        window[j] = 2 * (int32_t)random_below(&r, 60000) + 1;
    int32_t key = goldfish_window_key(table, g, window);
    int unchanged = 0;
    for (int j = 0; j < g->h; j++) {
        int32_t saved = window[j];
        window[j] = saved + 2;
        unchanged += goldfish_window_key(table, g, window) == key;
        window[j] = saved;
    }
    CHECK_MSG(unchanged == 0, "variant %d: %d single-label changes kept the key", g->variant,
              unchanged);
    int32_t swapped[64];
    memcpy(swapped, window, (size_t)g->h * sizeof *window);
    swapped[0] = window[g->h - 1];
    swapped[g->h - 1] = window[0];
    int32_t swapped_key = goldfish_window_key(table, g, swapped);
    if (g->variant == GOLDFISH_APERTUS)
        CHECK(swapped_key == key); /* the product ignores the order */
    else
        CHECK(swapped_key != key);
}

/* A sample repeating a label whose all-equal window is dropped loses exactly targets >= h-1. */
static void test_first_targets_kept(const goldfish_table *table, const goldfish_config *g) {
    enum { COUNT = 200 };
    int32_t labels[COUNT], window[64];
    int32_t value = 2;
    for (;; value++) {
        for (int j = 0; j < g->h; j++)
            window[j] = value;
        if (table->values[goldfish_window_key(table, g, window)] < (float)(1.0 / g->k)) break;
    }
    for (int t = 0; t < COUNT; t++)
        labels[t] = value;
    int dropped[COUNT];
    int n = dropped_targets(table, g, labels, COUNT, -1, dropped);
    CHECK_MSG(n == COUNT - (g->h - 1) && dropped[0] == g->h - 1,
              "label %d: %d dropped from %d, expected %d from %d", value, n, n ? dropped[0] : -1,
              COUNT - (g->h - 1), g->h - 1);
}

static void test_static(void) {
    goldfish_config g = make_config(GOLDFISH_STATIC, 5, 50);
    goldfish_table *table = (goldfish_table *)1;
    status st;
    CHECK(goldfish_table_create(&g, &table, &st) == 0 && table == NULL);
    int dropped[SMALL_COUNT + 7];
    int32_t labels[SMALL_COUNT + 7] = {0};
    int n = dropped_targets(NULL, &g, labels, SMALL_COUNT + 7, 0, dropped);
    CHECK(n == 5);
    for (int i = 0; i < n; i++)
        CHECK(dropped[i] == 5 * i);
}

static void test_disabled_and_existing_mask(const goldfish_table *table) {
    goldfish_config g = make_config(GOLDFISH_APERTUS, 2, 4);
    g.enabled = 0;
    goldfish_table *none = (goldfish_table *)1;
    status st;
    CHECK(goldfish_table_create(&g, &none, &st) == 0 && none == NULL);
    int dropped[SMALL_COUNT];
    CHECK(dropped_targets(NULL, &g, small_labels, SMALL_COUNT, -1, dropped) == 0);
    /* Goldfish only clears: targets already masked stay masked, kept ones keep their value */
    g.enabled = 1;
    uint8_t mask[SMALL_COUNT];
    for (int t = 0; t < SMALL_COUNT; t++)
        mask[t] = t % 3 != 0;
    goldfish_apply(table, &g, small_labels, SMALL_COUNT, -1, mask);
    static const int goldfish_drops[] = {5, 6, 8, 10, 12};
    for (int t = 0; t < SMALL_COUNT; t++) {
        int is_dropped = 0;
        for (int i = 0; i < 5; i++)
            is_dropped |= goldfish_drops[i] == t;
        CHECK_MSG(mask[t] == (t % 3 != 0 && !is_dropped), "mask[%d] = %d", t, mask[t]);
    }
}

/* Resolves the defaults with `settings` applied; returns config_resolve's result. */
static int resolve_with(const char *const *settings, int count, status *st) {
    config c;
    config_defaults(&c);
    for (int i = 0; i < count; i++)
        CHECK(config_apply_set(&c, settings[i], st) == 0);
    return config_resolve(&c, 1, st);
}

static void test_config_validation(void) {
    status st = {{0}};
    const char *window_too_long[] = {"train.goldfish.enabled=true", "model.seq_len=64",
                                     "train.goldfish.h=65"};
    CHECK(resolve_with(window_too_long, 3, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "train.goldfish.h: must be <= model.seq_len");
    const char *window_fits[] = {"train.goldfish.enabled=true", "model.seq_len=64",
                                 "train.goldfish.h=64", "train.goldfish.variant=coef"};
    CHECK_MSG(resolve_with(window_fits, 4, &st) == 0, "%s", st.message);
    /* static ignores h */
    const char *static_long_h[] = {"train.goldfish.enabled=true", "model.seq_len=64",
                                   "train.goldfish.h=65", "train.goldfish.variant=static"};
    CHECK_MSG(resolve_with(static_long_h, 4, &st) == 0, "%s", st.message);
    const char *k_one[] = {"train.goldfish.k=1"};
    CHECK(resolve_with(k_one, 1, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "train.goldfish.k: must be >= 2");
    const char *h_zero[] = {"train.goldfish.h=0"};
    CHECK(resolve_with(h_zero, 1, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "train.goldfish.h: must be >= 1");
}

int main(void) {
    goldfish_config apertus = make_config(GOLDFISH_APERTUS, 50, 50);
    goldfish_table *table = make_table(&apertus);
    if (!table) return check_summary("test_goldfish");
    test_table(table);
    test_apertus_example(table);
    test_coef_example();

    goldfish_config apertus_short = make_config(GOLDFISH_APERTUS, 8, 13);
    goldfish_config coef = make_config(GOLDFISH_COEF, 50, 50);
    goldfish_table *coef_table = make_table(&coef);
    if (coef_table) {
        test_drop_rate(table, &apertus_short);
        test_drop_rate(coef_table, &coef);
        goldfish_config apertus_dense = make_config(GOLDFISH_APERTUS, 4, 50);
        goldfish_config coef_dense = make_config(GOLDFISH_COEF, 4, 50);
        test_same_context_same_decision(table, &apertus_dense);
        test_same_context_same_decision(coef_table, &coef_dense);
        test_key_follows_window(table, &apertus);
        test_key_follows_window(coef_table, &coef);
        test_first_targets_kept(table, &apertus);
        test_first_targets_kept(table, &apertus_short);
        goldfish_table_destroy(coef_table);
    }
    test_static();
    test_disabled_and_existing_mask(table);
    test_config_validation();
    goldfish_table_destroy(table);
    return check_summary("test_goldfish");
}
