#include "train/gradient_sync.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* host values (norm sums, the tied embeddings' host copies) */
static comm *axis(gradient_sync *g, parallel_axis a) { return &g->topology->comms[a]; }
/* the backend's gradient buffers */
static comm *device_axis(gradient_sync *g, parallel_axis a) { return g->topology->device[a]; }

static void *grad_at(const model *m, size_t offset) {
    return (char *)m->grads + offset * m->ops->master_bytes;
}

int gradient_sync_init(gradient_sync *g, model *m, parallel_topology *t, const zero_layout *zero,
                       int64_t bucket_elements, status *st) {
    memset(g, 0, sizeof *g);
    g->model = m;
    g->topology = t;
    g->zero = zero;
    if (comm_float_dtype(m->ops->master_bytes, &g->master) != 0)
        return status_fail(st, "parallel: %zu-byte master weights", m->ops->master_bytes);
    comm *dp = device_axis(g, AXIS_DP);
    if (dp->size > 1 && t->grid.size[AXIS_EP] == 1) {
        size_t count = zero ? zero->padded : m->total_params;
        size_t bucket = bucket_elements > 0
                            ? (size_t)bucket_elements
                            : dp_bucket_elements(dp->size);
        if (dp_create(&g->dp, dp, m->grads, count, g->master, bucket, zero, st) != 0) return -1;
        g->dp_ready = 1;
    }
    g->tp_summed = calloc(m->param_count ? m->param_count : 1, 1);
    if (!g->tp_summed) return status_fail(st, "trainer: out of host memory");
    m->shard.grads_final = gradient_sync_layer_final;
    m->shard.grads_context = g;
    const param_tensor *embed = model_find_param(m, "embed.tokens");
    if (m->cfg.tie_embeddings && m->shard.stages > 1 && embed) {
        g->host_scratch = malloc(sizeof *g->host_scratch * 2 * embed->count);
        if (!g->host_scratch) return status_fail(st, "trainer: out of host memory");
    }
    return 0;
}

void gradient_sync_release(gradient_sync *g) {
    if (g->dp_ready) dp_destroy(&g->dp);
    if (g->model) g->model->shard.grads_final = NULL;
    free(g->host_scratch);
    free(g->tp_summed);
    memset(g, 0, sizeof *g);
}

/* The first and the last stage each hold a copy of tied embeddings: both get the sum. The
 * addition goes through the host because the backends add only activation buffers, so the
 * copies travel as host floats. */
static int sum_tied_embeddings(gradient_sync *g, status *st) {
    model *m = g->model;
    const ops *o = m->ops;
    const param_tensor *p = model_find_param(m, "embed.tokens");
    if (!g->host_scratch || !p || !(m->first_stage || m->last_stage)) return 0;
    comm *pp = axis(g, AXIS_PP);
    int peer = m->first_stage ? pp->size - 1 : 0;
    void *mine = grad_at(m, p->offset);
    float *a = g->host_scratch, *b = g->host_scratch + p->count;
    o->master_to_float(a, mine, p->count);
    comm_request send = {0};
    if (comm_send_start(pp, a, p->count, COMM_FLOAT32, peer, &send, st) != 0) return -1;
    int rc = comm_recv(pp, b, p->count, COMM_FLOAT32, peer, st);
    if (rc == 0) rc = comm_wait(&send, st);
    if (rc == 0) {
        /* the same order of addition on both stages keeps the copies identical */
        for (size_t i = 0; i < p->count; i++) a[i] = m->first_stage ? a[i] + b[i] : b[i] + a[i];
        o->float_to_master(mine, a, p->count);
    }
    return rc;
}

/* Partial gradients of replicated tensors within [start, end), summed over tp once a step. */
static int sum_partial(gradient_sync *g, size_t start, size_t end, status *st) {
    model *m = g->model;
    comm *tp = device_axis(g, AXIS_TP);
    for (int i = 0; i < m->param_count && tp->size > 1; i++) {
        const param_tensor *p = &m->params[i];
        if (!p->tp_partial || g->tp_summed[i] || p->offset < start || p->offset >= end) continue;
        void *x = grad_at(m, p->offset);
        if (comm_all_reduce(tp, x, x, p->count, g->master, COMM_SUM, st) != 0) return -1;
        g->tp_summed[i] = 1;
    }
    return 0;
}

void gradient_sync_layer_final(void *context, size_t offset, size_t count) {
    gradient_sync *g = context;
    if (g->status_failed) return;
    /* tensor-parallel sums first: with ZeRO-1 the bucket's reduce-scatter leaves only this rank's
     * shard valid, and tp ranks' shards cover different parts of their arenas */
    int rc = sum_partial(g, offset, offset + count, &g->hook_status);
    if (rc == 0 && g->dp_ready) rc = dp_grad_ready(&g->dp, offset, count, &g->hook_status);
    g->status_failed = rc != 0;
    g->layers_reported = 1;
}

/* Reports to the buckets what the layers did not: the ranges of the arena outside every
 * layer's ranges (embeddings, final norm, head, ZeRO padding). */
static int report_rest(gradient_sync *g, status *st) {
    const model *m = g->model;
    size_t end = g->dp.count, at = 0;
    while (at < end) {
        /* the next layer range at or after `at` */
        size_t next = end, next_end = end;
        for (int i = 0; i < m->shard.layers; i++)
            for (int pass = 0; pass < 2; pass++) {
                const size_t *r = m->layers[i].range[pass];
                if (r[1] > r[0] && r[0] >= at && r[0] < next) {
                    next = r[0];
                    next_end = r[1];
                }
            }
        if (next > at && dp_grad_ready(&g->dp, at, next - at, st) != 0) return -1;
        at = next_end;
    }
    return 0;
}

int gradient_sync_reduce(gradient_sync *g, status *st) {
    model *m = g->model;
    m->ops->synchronize();
    int reported = g->layers_reported;
    g->layers_reported = 0;
    if (g->status_failed) {
        g->status_failed = 0;
        return status_fail(st, "%s", g->hook_status.message);
    }
    if (sum_tied_embeddings(g, st) != 0 || sum_partial(g, 0, m->total_params, st) != 0) return -1;
    memset(g->tp_summed, 0, m->param_count ? m->param_count : 1);
    if (g->dp_ready) {
        g->buckets = g->dp.bucket_count;
        g->early_buckets = reported ? dp_started_buckets(&g->dp) : 0;
        if (reported && report_rest(g, st) != 0) return -1;
        return dp_finish(&g->dp, st);
    }
    comm *dp = device_axis(g, AXIS_DP), *expert_dp = device_axis(g, AXIS_EXPERT_DP);
    for (int i = 0; i < m->param_count && dp->size > 1; i++) {
        const param_tensor *p = &m->params[i];
        comm *group = p->expert ? expert_dp : dp;
        if (group->size == 1) continue;
        void *x = grad_at(m, p->offset);
        if (comm_all_reduce(group, x, x, p->count, g->master, COMM_SUM, st) != 0) return -1;
    }
    return 0;
}

/* Σ g² of the counted tensors (dense or experts) within [start, end) of the arena */
static double local_sum(const model *m, int experts, size_t start, size_t end) {
    double sum = 0;
    for (int i = 0; i < m->param_count; i++) {
        const param_tensor *p = &m->params[i];
        if (!p->counts_in_norm || p->expert != experts) continue;
        size_t a = p->offset > start ? p->offset : start;
        size_t b = p->offset + p->count < end ? p->offset + p->count : end;
        if (a < b) sum += m->ops->sum_squares(grad_at(m, a), b - a);
    }
    return sum;
}

int gradient_sync_norm(gradient_sync *g, double *norm, status *st) {
    model *m = g->model;
    size_t start = 0, end = m->total_params;
    if (g->zero) {
        start = g->zero->start;
        end = g->zero->start + g->zero->real;
    }
    double sums[2] = {local_sum(m, 0, start, end), local_sum(m, 1, start, end)};
    comm *model_group = axis(g, AXIS_MODEL), *ep = axis(g, AXIS_EP), *dp = axis(g, AXIS_DP);
    if (g->zero && dp->size > 1 && comm_all_reduce(dp, sums, sums, 2, COMM_FLOAT64, COMM_SUM, st))
        return -1;
    if (model_group->size > 1 &&
        comm_all_reduce(model_group, sums, sums, 2, COMM_FLOAT64, COMM_SUM, st) != 0)
        return -1;
    /* each expert-parallel rank holds other experts */
    if (ep->size > 1 && comm_all_reduce(ep, &sums[1], &sums[1], 1, COMM_FLOAT64, COMM_SUM, st))
        return -1;
    *norm = sqrt(sums[0] + sums[1]);
    return 0;
}
