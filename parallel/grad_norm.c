#include "parallel/grad_norm.h"

#include <math.h>

int grad_norm_counts_here(const parallel_grid *g, unsigned replicated) {
    if ((replicated & REPLICATED_TP) && g->rank[AXIS_TP] != 0) return 0;
    if ((replicated & REPLICATED_PP) && g->rank[AXIS_PP] != 0) return 0;
    return 1;
}

double grad_norm_local(const ops *o, const void *grads, const grad_norm_part *parts, int part_count,
                       const parallel_grid *g, size_t window_start, size_t window_count) {
    size_t window_end = window_start + window_count;
    double sum = 0;
    for (int i = 0; i < part_count; i++) {
        const grad_norm_part *p = &parts[i];
        if (!grad_norm_counts_here(g, p->replicated)) continue;
        size_t lo = p->offset > window_start ? p->offset : window_start;
        size_t hi = p->offset + p->count < window_end ? p->offset + p->count : window_end;
        if (hi > lo) sum += o->sum_squares((const char *)grads + lo * o->master_bytes, hi - lo);
    }
    return sum;
}

int grad_norm_reduce(double local, comm *const *groups, int group_count, double *norm, status *st) {
    double sum = local;
    for (int i = 0; i < group_count; i++)
        if (groups[i] && comm_all_reduce(groups[i], &sum, &sum, 1, COMM_FLOAT64, COMM_SUM, st) != 0)
            return -1;
    *norm = sqrt(sum);
    return 0;
}
