#include "parallel/data_parallel.h"

#include <stdlib.h>
#include <string.h>

/* Each rank's part of [start, start + count) in rank order: the intersections with the shards. */
static void shard_counts(const zero_layout *z, size_t start, size_t count, size_t *counts) {
    for (int r = 0; r < z->dp; r++) {
        size_t lo = z->shard * (size_t)r, hi = lo + z->shard;
        size_t a = start > lo ? start : lo, b = start + count < hi ? start + count : hi;
        counts[r] = b > a ? b - a : 0;
    }
}

size_t dp_bucket_elements(int dp) {
    size_t per_rank = (size_t)1 << 20;
    return dp > 0 && per_rank * (size_t)dp > DP_BUCKET_ELEMENTS ? per_rank * (size_t)dp
                                                                : DP_BUCKET_ELEMENTS;
}

int dp_create(data_parallel *d, comm *c, void *grads, size_t count, comm_dtype dtype,
              size_t bucket_elements, const zero_layout *zero, status *st) {
    memset(d, 0, sizeof *d);
    if (bucket_elements == 0) return status_fail(st, "data_parallel: bucket size must be > 0");
    if (zero && (count != zero->padded || zero->dp != c->size))
        return status_fail(st,
                           "data_parallel: ZeRO needs the padded arena over the dp ranks (got "
                           "%zu elements over %d ranks, layout %zu over %d)",
                           count, c->size, zero->padded, zero->dp);
    d->comm = c;
    d->grads = grads;
    d->count = count;
    d->dtype = dtype;
    d->element_bytes = comm_dtype_bytes(dtype);
    d->bucket_elements = bucket_elements;
    d->zero = zero;
    size_t buckets = count ? (count + bucket_elements - 1) / bucket_elements : 0;
    d->bucket_count = (int)buckets;
    d->buckets = calloc(buckets ? buckets : 1, sizeof *d->buckets);
    if (!d->buckets) return status_fail(st, "data_parallel: out of memory");
    for (int i = 0; i < d->bucket_count; i++) {
        dp_bucket *b = &d->buckets[i];
        b->start = (size_t)i * bucket_elements;
        b->count = count - b->start < bucket_elements ? count - b->start : bucket_elements;
        if (!zero) continue;
        b->shard_counts = malloc((size_t)c->size * sizeof *b->shard_counts);
        if (!b->shard_counts) {
            dp_destroy(d);
            return status_fail(st, "data_parallel: out of memory");
        }
        shard_counts(zero, b->start, b->count, b->shard_counts);
    }
    return 0;
}

void dp_destroy(data_parallel *d) {
    for (int i = 0; d->buckets && i < d->bucket_count; i++)
        free(d->buckets[i].shard_counts);
    free(d->buckets);
    memset(d, 0, sizeof *d);
}

static int start_bucket(data_parallel *d, dp_bucket *b, status *st) {
    char *data = (char *)d->grads + b->start * d->element_bytes;
    b->started = 1;
    if (!d->zero)
        return comm_all_reduce_start(d->comm, data, data, b->count, d->dtype, COMM_SUM, &b->request,
                                     st);
    /* in place: this rank's part sits where its shard meets the bucket */
    size_t before = 0;
    for (int r = 0; r < d->comm->rank; r++)
        before += b->shard_counts[r];
    return comm_reduce_scatter_v_start(d->comm, data, data + before * d->element_bytes,
                                       b->shard_counts, d->dtype, COMM_SUM, &b->request, st);
}

int dp_poll(data_parallel *d, status *st) {
    for (int i = 0; i < d->bucket_count; i++) {
        int done;
        if (d->buckets[i].started && comm_test(&d->buckets[i].request, &done, st) != 0) return -1;
    }
    return 0;
}

int dp_grad_ready(data_parallel *d, size_t offset, size_t count, status *st) {
    if (offset > d->count || count > d->count - offset)
        return status_fail(st, "data_parallel: range [%zu, %zu) outside the arena of %zu", offset,
                           offset + count, d->count);
    if (count == 0) return 0;
    size_t first = offset / d->bucket_elements, last = (offset + count - 1) / d->bucket_elements;
    for (size_t i = first; i <= last; i++) {
        dp_bucket *b = &d->buckets[i];
        size_t lo = offset > b->start ? offset : b->start;
        size_t hi = offset + count < b->start + b->count ? offset + count : b->start + b->count;
        b->ready += hi - lo;
        if (b->ready > b->count)
            return status_fail(st,
                               "data_parallel: bucket %zu [%zu, %zu) got more ready elements "
                               "than it holds: a range was reported twice in one step",
                               i, b->start, b->start + b->count);
        if (b->ready == b->count && start_bucket(d, b, st) != 0) return -1;
    }
    return dp_poll(d, st);
}

int dp_finish(data_parallel *d, status *st) {
    for (int i = 0; i < d->bucket_count; i++)
        if (!d->buckets[i].started && start_bucket(d, &d->buckets[i], st) != 0) return -1;
    for (int i = 0; i < d->bucket_count; i++) {
        if (comm_wait(&d->buckets[i].request, st) != 0) return -1;
        d->buckets[i].ready = 0;
        d->buckets[i].started = 0;
    }
    return 0;
}

int dp_started_buckets(const data_parallel *d) {
    int started = 0;
    for (int i = 0; i < d->bucket_count; i++)
        started += d->buckets[i].started;
    return started;
}
