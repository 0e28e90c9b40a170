#include "data/blending.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

/* numpy's pairwise summation of float64 (loops_utils.h): blocks of up to 128 summed with eight
 * accumulators, larger arrays split in halves of a multiple of 8. */
static double numpy_sum(const double *a, int64_t n) {
    if (n < 8) {
        double sum = 0.;
        for (int64_t i = 0; i < n; i++) sum += a[i];
        return sum;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = a[j];
        int64_t i = 8;
        for (; i < n - n % 8; i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) sum += a[i];
        return sum;
    }
    int64_t half = n / 2;
    half -= half % 8;
    return numpy_sum(a, half) + numpy_sum(a + half, n - half);
}

void blend_normalize(const double *weights, int count, double *normalized) {
    double total = numpy_sum(weights, count);
    for (int i = 0; i < count; i++) normalized[i] = weights[i] / total;
}

int64_t blend_target_samples(double weight, int64_t size) {
    return (int64_t)ceil((double)size * weight);
}

int64_t blend_buffer_samples(double weight, int64_t size) {
    return (int64_t)ceil(ceil((double)size * weight) * (1 + 0.005));
}

int blend_build(const double *weights, int count, int64_t size, index_array *source,
                index_array *source_sample, status *st) {
    if (count < 1 || count > BLEND_MAX_SOURCES)
        return status_fail(st, "data blend: %d sources (1 to %d)", count, BLEND_MAX_SOURCES);
    *source = (index_array){0};
    *source_sample = (index_array){0};
    int64_t *taken = calloc((size_t)count, sizeof *taken);
    if (!taken || index_array_alloc(source, size, 2) != 0 ||
        index_array_alloc(source_sample, size, 8) != 0) {
        free(taken);
        index_array_release(source);
        return status_fail(st, "data blend: out of memory for %" PRId64 " samples", size);
    }
    uint16_t *chosen = source->data;
    int64_t *sample = source_sample->data;
    for (int64_t i = 0; i < size; i++) {
        double x = i > 1 ? (double)i : 1.0;
        int best = 0;
        double best_error = weights[0] * x - (double)taken[0];
        for (int d = 1; d < count; d++) {
            double error = weights[d] * x - (double)taken[d];
            if (error > best_error) {
                best_error = error;
                best = d;
            }
        }
        chosen[i] = (uint16_t)best;
        sample[i] = taken[best]++;
    }
    free(taken);
    return 0;
}
