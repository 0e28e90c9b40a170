#include "parallel/zero.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static size_t clamp_below(size_t limit, size_t start, size_t count) {
    if (limit <= start) return 0;
    return limit - start < count ? limit - start : count;
}

void zero_layout_init(zero_layout *z, size_t total, size_t decayed, int dp, int dp_rank,
                      size_t align) {
    assert(dp >= 1 && dp_rank >= 0 && dp_rank < dp && align >= 1 && decayed <= total);
    memset(z, 0, sizeof *z);
    size_t unit = (size_t)dp * align;
    z->total = total;
    z->decayed = decayed;
    z->padded = (total + unit - 1) / unit * unit;
    if (z->padded == 0) z->padded = unit;
    z->shard = z->padded / (size_t)dp;
    z->dp = dp;
    z->dp_rank = dp_rank;
    z->start = z->shard * (size_t)dp_rank;
    z->real = zero_shard_below(z, dp_rank, total);
    z->real_decayed = zero_shard_below(z, dp_rank, decayed);
}

size_t zero_shard_below(const zero_layout *z, int rank, size_t limit) {
    return clamp_below(limit, z->shard * (size_t)rank, z->shard);
}

int zero_create(zero_optimizer *z, comm *dp, const ops *o, const optim_config *cfg, size_t total,
                size_t decayed, size_t align, status *st) {
    memset(z, 0, sizeof *z);
    zero_layout_init(&z->layout, total, decayed, dp->size, dp->rank, align);
    z->dp = dp;
    if (comm_float_dtype(o->master_bytes, &z->dtype) != 0)
        return status_fail(st, "zero: %zu-byte master weights", o->master_bytes);
    if (optimizer_create(&z->opt, o, cfg, z->layout.real, z->layout.real_decayed, st) != 0)
        return status_prefix(st, "zero: shard of %zu of %zu parameters", z->layout.real, total);
    return 0;
}

void zero_destroy(zero_optimizer *z) {
    optimizer_destroy(&z->opt);
    memset(z, 0, sizeof *z);
}

static char *at(const zero_optimizer *z, const void *arena, size_t element) {
    return (char *)arena + element * z->opt.ops->master_bytes;
}

int zero_reduce_scatter(zero_optimizer *z, void *grads, status *st) {
    const zero_layout *l = &z->layout;
    return comm_reduce_scatter(z->dp, grads, at(z, grads, l->start), l->shard, z->dtype, COMM_SUM,
                               st);
}

double zero_shard_sum_squares(const zero_optimizer *z, const void *grads) {
    return z->layout.real ? z->opt.ops->sum_squares(at(z, grads, z->layout.start), z->layout.real)
                          : 0.0;
}

double zero_step(zero_optimizer *z, void *master, void *grads, double lr, double grad_norm,
                 double grad_clip) {
    size_t start = z->layout.start;
    return optimizer_step(&z->opt, at(z, master, start), at(z, grads, start), lr, grad_norm,
                          grad_clip);
}

int zero_all_gather_start(zero_optimizer *z, void *master, comm_request *request, status *st) {
    const zero_layout *l = &z->layout;
    return comm_all_gather_start(z->dp, at(z, master, l->start), master, l->shard, z->dtype,
                                 request, st);
}

int zero_all_gather(zero_optimizer *z, void *master, status *st) {
    comm_request request;
    if (zero_all_gather_start(z, master, &request, st) != 0) return -1;
    return comm_wait(&request, st);
}

/* Shards are contiguous in rank order and only the last ones are short, so blocks of `real`
 * elements laid end to end land exactly at [0, total). */
int zero_gather_moments(zero_optimizer *z, optimizer *full, status *st) {
    const zero_layout *l = &z->layout;
    assert(full->total == l->total && full->cfg.name == z->opt.cfg.name);
    size_t *counts = malloc((size_t)l->dp * sizeof *counts);
    if (!counts) return status_fail(st, "zero: out of memory");
    for (int r = 0; r < l->dp; r++)
        counts[r] = zero_shard_below(l, r, l->total);
    void *shards[3] = {z->opt.m, z->opt.v, z->opt.m2}, *globals[3] = {full->m, full->v, full->m2};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (!shards[i]) continue;
        comm_request request;
        rc = comm_all_gather_v_start(z->dp, shards[i], globals[i], counts, z->dtype, &request, st);
        if (rc == 0) rc = comm_wait(&request, st);
    }
    free(counts);
    full->step = z->opt.step;
    return rc;
}

void zero_load_moments(zero_optimizer *z, const optimizer *full) {
    const zero_layout *l = &z->layout;
    assert(full->total == l->total && full->cfg.name == z->opt.cfg.name);
    void *shards[3] = {z->opt.m, z->opt.v, z->opt.m2};
    const void *globals[3] = {full->m, full->v, full->m2};
    size_t bytes = l->real * z->opt.ops->master_bytes;
    for (int i = 0; i < 3; i++)
        if (shards[i] && bytes)
            z->opt.ops->copy_device(shards[i], at(z, globals[i], l->start), bytes);
    z->opt.step = full->step;
}
