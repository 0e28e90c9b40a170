/* goldfish_mask VARIANT K H EOD_ID: reads one sample's labels per line on stdin (integers
 * separated by spaces) and prints, per sample, the Goldfish loss mask of an all-ones mask as a
 * line of '0' (dropped) and '1' (kept) characters. For tests/python/test_goldfish_torch.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/goldfish.h"

enum { MAX_COUNT = 65536 };

static int parse_variant(const char *word, goldfish_variant *variant) {
    static const char *const names[] = {"apertus", "coef", "static"};
    static const goldfish_variant values[] = {GOLDFISH_APERTUS, GOLDFISH_COEF, GOLDFISH_STATIC};
    for (int i = 0; i < 3; i++)
        if (strcmp(word, names[i]) == 0) {
            *variant = values[i];
            return 0;
        }
    return -1;
}

/* Reads the integers of one line into labels; returns their count, or -1 at end of input. */
static int read_sample(int32_t *labels) {
    int count = 0, c;
    while ((c = getchar()) != EOF && c != '\n') {
        if (c == ' ') continue;
        ungetc(c, stdin);
        long value;
        if (count == MAX_COUNT || scanf("%ld", &value) != 1) return -2;
        labels[count++] = (int32_t)value;
    }
    return c == EOF && count == 0 ? -1 : count;
}

int main(int argc, char **argv) {
    goldfish_config g = {.enabled = 1};
    if (argc != 5 || parse_variant(argv[1], &g.variant) != 0) {
        fprintf(stderr, "usage: goldfish_mask apertus|coef|static K H EOD_ID < labels\n");
        return 2;
    }
    g.k = atoi(argv[2]);
    g.h = atoi(argv[3]);
    int32_t eod_id = atoi(argv[4]);
    if (g.k < 2 || g.h < 1) {
        fprintf(stderr, "goldfish_mask: need K >= 2 and H >= 1\n");
        return 2;
    }
    goldfish_table *table;
    status st;
    if (goldfish_table_create(&g, &table, &st) != 0) {
        fprintf(stderr, "goldfish_mask: %s\n", st.message);
        return 1;
    }
    static int32_t labels[MAX_COUNT];
    static uint8_t mask[MAX_COUNT];
    static char line[MAX_COUNT + 2];
    int count, result = 0;
    while ((count = read_sample(labels)) >= 0) {
        memset(mask, 1, (size_t)count);
        goldfish_apply(table, &g, labels, count, eod_id, mask);
        for (int t = 0; t < count; t++)
            line[t] = mask[t] ? '1' : '0';
        line[count] = '\n';
        fwrite(line, 1, (size_t)count + 1, stdout);
    }
    if (count == -2) {
        fprintf(stderr, "goldfish_mask: stdin: a line holds a non-integer or over %d labels\n",
                MAX_COUNT);
        result = 1;
    }
    goldfish_table_destroy(table);
    return result;
}
