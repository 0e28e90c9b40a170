/* Megatron's train/valid/test split string ("969,30,1") over a dataset's documents
 * (blended_megatron_dataset_config.py, blended_megatron_dataset_builder.py).
 *
 * Contract: data_split_parse reads the numbers as re.findall(r"[.0-9]+") does, pads them with
 * zeros to three and normalises them to sum 1; "" is "1,0,0" (everything trains). It fails on a
 * run of digits and dots that is not a number, on more than three numbers and on a zero sum.
 * data_split_range gives split `which`'s documents [round(lo*N), round(hi*N)) from the cumulative
 * bookends lo, hi (rounding half to even, as Python's round); it returns 0, with an empty range,
 * when the split's share is zero (Megatron builds no dataset for it). */
#ifndef CAIRN_SPLIT_H
#define CAIRN_SPLIT_H

#include <stdint.h>

#include "common/status.h"

typedef enum { DATA_SPLIT_TRAIN, DATA_SPLIT_VALID, DATA_SPLIT_TEST } data_split;

int data_split_parse(const char *text, double fractions[3], status *st);
int data_split_range(const double fractions[3], data_split which, int64_t documents,
                     int64_t *first, int64_t *count);

#endif
