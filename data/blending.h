/* Megatron's BlendedDataset arithmetic (blended_megatron_dataset_builder.py, blended_dataset.py,
 * helpers.cpp::build_blending_indices).
 *
 * Contract:
 * - blend_normalize: w / sum(w) in float64 with numpy's pairwise sum, as utils.normalize;
 * - blend_target_samples: ceil(size * w), the samples the blend takes from a source;
 *   blend_buffer_samples: ceil(ceil(size * w) * 1.005), the samples built for it (the default
 *   mid_level_dataset_surplus); the blend holds the sum of the targets;
 * - blend_build: for i in [0, size) the source d maximising w[d] * max(i, 1) - taken[d] (ties to
 *   the lowest d), stored as source[i] (int16) and source_sample[i] = taken[d]++ (int64). */
#ifndef CAIRN_BLENDING_H
#define CAIRN_BLENDING_H

#include <stdint.h>

#include "common/status.h"
#include "data/index_array.h"

#define BLEND_MAX_SOURCES 32767

void blend_normalize(const double *weights, int count, double *normalized);
int64_t blend_target_samples(double weight, int64_t size);
int64_t blend_buffer_samples(double weight, int64_t size);
/* Allocates and fills source (width 2) and source_sample (width 8). */
int blend_build(const double *weights, int count, int64_t size, index_array *source,
                index_array *source_sample, status *st);

#endif
