/* Mixture-of-experts routing (moe_route_forward / moe_route_backward, kernels/ops.h). Everything
 * is computed in double whatever `real` is, so the fp64 backend's router gradients are exact to
 * fp64 rounding and the fp32 backend decides as it would from the same logits in double. Work per
 * token runs in parallel; every sum over tokens and the row layout are serial, in token order, so
 * results do not depend on the thread count. */
#include "kernels/cpu/cpu_real.h"

#include <stdlib.h>
#include <string.h>

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* What experts are ranked by: the logit for both routers, as the sigmoid keeps the order but,
 * rounded, ties large logits (from about 36.7 in double, 16.75 in the cuda backend's fp32); NaN
 * ranks lowest so the order stays total. */
static double rank_score(double logit) {
    return isnan(logit) ? -INFINITY : logit;
}

/* Expert a with score sa ranks before expert b with score sb. */
static int ranks_before(double sa, int a, double sb, int b) {
    return sa > sb || (sa == sb && a < b);
}

/* The token's k best experts, best first: each pick is the best expert ranked after the one
 * picked before it. */
static void choose_experts(const moe_router *router, const real *row, int32_t *choice) {
    int previous = -1;
    double previous_score = 0;
    for (int j = 0; j < router->top_k; j++) {
        int best = -1;
        double best_score = 0;
        for (int e = 0; e < router->experts; e++) {
            double score = rank_score(row[e]);
            if (previous >= 0 && !ranks_before(previous_score, previous, score, e)) continue;
            if (best < 0 || ranks_before(score, e, best_score, best)) {
                best = e;
                best_score = score;
            }
        }
        choice[j] = best;
        previous = best;
        previous_score = best_score;
    }
}

/* The gates of the token's chosen experts; returns the denominator that normalised them (the
 * sum of the chosen sigmoid scores + 1e-20, or of the shifted exponentials; 1 when k = 1 with
 * a sigmoid router, which leaves the score as it is). */
static double token_gates(const moe_router *router, const real *row, const int32_t *choice,
                          double *gates) {
    int k = router->top_k;
    double sum = 0;
    if (router->sigmoid) {
        for (int j = 0; j < k; j++) sum += gates[j] = sigmoid(row[choice[j]]);
        if (k == 1) return 1.0;
        sum += 1e-20;
    } else {
        double max = row[choice[0]];
        for (int j = 0; j < k; j++) sum += gates[j] = exp(row[choice[j]] - max);
    }
    for (int j = 0; j < k; j++) gates[j] /= sum;
    return sum;
}

/* logsumexp of the row, and in p (when not NULL) the probabilities of the balancing loss; a
 * sigmoid router's normaliser Σ_e sigmoid(logit_e) in *sigmoid_sum (when not NULL). */
static double balance_probabilities(const moe_router *router, const real *row, double *p,
                                    double *sigmoid_sum) {
    int E = router->experts;
    double max = row[0], sum = 0;
    for (int e = 1; e < E; e++) max = fmax(max, row[e]);
    for (int e = 0; e < E; e++) sum += exp(row[e] - max);
    double lse = max + log(sum);
    if (!p) return lse;
    if (router->sigmoid) {
        double total = 0;
        for (int e = 0; e < E; e++) total += p[e] = sigmoid(row[e]);
        for (int e = 0; e < E; e++) p[e] /= total;
        if (sigmoid_sum) *sigmoid_sum = total;
    } else {
        for (int e = 0; e < E; e++) p[e] = exp(row[e] - lse);
    }
    return lse;
}

/* Scratch of any element type (zeroed; freed with CPU_FN(free)). */
static void *scratch_bytes(size_t bytes) {
    return CPU_FN(scratch)(round_up(bytes ? bytes : 1, sizeof(real)) / sizeof(real));
}

/* A slot in the capacity order of its expert. */
typedef struct ranked_slot {
    int32_t expert;
    double gate;
    size_t slot;
} ranked_slot;

/* Expert ascending, then gate descending, then slot (token) ascending: a total order. */
static int capacity_order(const void *a_, const void *b_) {
    const ranked_slot *a = a_, *b = b_;
    if (a->expert != b->expert) return a->expert < b->expert ? -1 : 1;
    if (a->gate != b->gate) return a->gate > b->gate ? -1 : 1;
    return a->slot < b->slot ? -1 : a->slot > b->slot;
}

/* keep[s] = 1 for the slots that capacity keeps: per expert, the `capacity` highest gates. */
static void apply_capacity(const int32_t *choice, const double *gates, const int32_t *assigned,
                           int E, size_t nk, int capacity, unsigned char *keep) {
    ranked_slot *order = scratch_bytes(nk * sizeof *order);
    for (size_t s = 0; s < nk; s++) order[s] = (ranked_slot){choice[s], gates[s], s};
    qsort(order, nk, sizeof *order, capacity_order);
    size_t first = 0;
    for (int e = 0; e < E; e++) {
        for (int i = 0; i < assigned[e]; i++) keep[order[first + i].slot] = i < capacity;
        first += assigned[e];
    }
    CPU_FN(free)(order);
}

void CPU_FN(moe_route_forward)(int32_t *choice, void *gates_, int32_t *assigned, int32_t *slot,
                               int32_t *row_token, int32_t *expert_offset, void *losses_,
                               const void *logits_, const moe_router *router, int N) {
    const real *logits = logits_;
    real *gates = gates_, *losses = losses_;
    int E = router->experts, k = router->top_k;
    size_t nk = (size_t)N * k;
    /* per token: its gates in double (capacity compares them) and its balancing terms */
    double *exact_gates = scratch_bytes(nk * sizeof(double));
    double *p = scratch_bytes((size_t)N * E * sizeof(double));
    double *lse_squared = scratch_bytes((size_t)N * sizeof(double));
#pragma omp parallel for schedule(static) if ((size_t)N * E >= PARALLEL_MIN_ELEMENTS)
    for (int t = 0; t < N; t++) {
        const real *row = logits + (size_t)t * E;
        choose_experts(router, row, choice + (size_t)t * k);
        token_gates(router, row, choice + (size_t)t * k, exact_gates + (size_t)t * k);
        double lse = balance_probabilities(router, row, p + (size_t)t * E, NULL);
        lse_squared[t] = lse * lse;
    }
    for (size_t s = 0; s < nk; s++) gates[s] = (real)exact_gates[s];
    memset(assigned, 0, sizeof *assigned * E);
    for (size_t s = 0; s < nk; s++) assigned[choice[s]]++;

    if (losses && N > 0) { /* no tokens add nothing (0/0 otherwise), as on the GPU */
        double aux = 0, z = 0;
        for (int e = 0; e < E; e++) {
            double p_sum = 0;
            for (int t = 0; t < N; t++) p_sum += p[(size_t)t * E + e];
            aux += p_sum * (double)assigned[e];
        }
        for (int t = 0; t < N; t++) z += lse_squared[t];
        losses[0] += (real)(router->aux_coef * E / ((double)N * N * k) * aux);
        losses[1] += (real)(router->z_coef * z / N);
    }

    unsigned char *keep = scratch_bytes(nk);
    memset(keep, 1, nk);
    int capacity = moe_capacity(router, N);
    if (router->capacity_factor > 0)
        apply_capacity(choice, exact_gates, assigned, E, nk, capacity, keep);
    /* rows grouped by expert, tokens in order inside each expert */
    int32_t *next = scratch_bytes((size_t)E * sizeof *next);
    int rows = 0;
    for (int e = 0; e < E; e++) {
        expert_offset[e] = next[e] = rows;
        rows += assigned[e] < capacity ? assigned[e] : capacity;
    }
    expert_offset[E] = rows;
    for (size_t s = 0; s < nk; s++) {
        slot[s] = keep[s] ? next[choice[s]]++ : -1;
        if (keep[s]) row_token[slot[s]] = (int32_t)(s / k);
    }
    CPU_FN(free)(next);
    CPU_FN(free)(keep);
    CPU_FN(free)(exact_gates);
    CPU_FN(free)(p);
    CPU_FN(free)(lse_squared);
}

void CPU_FN(moe_route_backward)(void *dlogits_, const void *dgates_, const void *logits_,
                                const int32_t *choice, const int32_t *assigned,
                                const moe_router *router, int N, double aux_scale) {
    real *dlogits = dlogits_;
    const real *dgates = dgates_, *logits = logits_;
    int E = router->experts, k = router->top_k;
    double aux_factor = router->aux_coef * E / ((double)N * N * k);
    double z_factor = router->z_coef / N * 2;
    double *all_gates = scratch_bytes((size_t)N * k * sizeof(double));
    double *all_p = scratch_bytes((size_t)N * E * sizeof(double));
#pragma omp parallel for schedule(static) if ((size_t)N * E >= PARALLEL_MIN_ELEMENTS)
    for (int t = 0; t < N; t++) {
        const real *row = logits + (size_t)t * E, *dg = dgates + (size_t)t * k;
        const int32_t *chosen = choice + (size_t)t * k;
        double *gates = all_gates + (size_t)t * k;
        double denominator = token_gates(router, row, chosen, gates);
        double dot = 0; /* Σ_j gate_j · dgate_j */
        for (int j = 0; j < k; j++) dot += gates[j] * dg[j];
        /* the balancing loss, through p_e: softmax, or sigmoid scores over their sum S */
        double *p = all_p + (size_t)t * E, S = 0, pa = 0;
        double lse = balance_probabilities(router, row, p, &S);
        for (int e = 0; e < E; e++) pa += p[e] * aux_factor * (double)assigned[e];
        for (int e = 0; e < E; e++) {
            double s = sigmoid(row[e]), softmax = exp(row[e] - lse);
            double a = aux_factor * (double)assigned[e], g = 0;
            /* the gates: softmax over the chosen logits, or normalised sigmoid scores */
            for (int j = 0; j < k; j++) {
                if (chosen[j] != e) continue;
                if (!router->sigmoid)
                    g += gates[j] * (dg[j] - dot);
                else if (k > 1)
                    g += (dg[j] - dot) / denominator * s * (1 - s);
                else
                    g += dg[j] * s * (1 - s);
            }
            /* dL/dp_e = a_e; softmax: dp/dl = p(δ - p); sigmoid: dp/ds = (δ - p)/S and
             * ds/dl = s(1 - s) */
            if (router->sigmoid)
                g += aux_scale * (a - pa) / S * s * (1 - s);
            else
                g += aux_scale * softmax * (a - pa);
            /* z-loss: d/dl_e (z_coef/N · lse²) = z_coef/N · 2 lse · softmax_e */
            g += aux_scale * z_factor * lse * softmax;
            dlogits[(size_t)t * E + e] = (real)g;
        }
    }
    CPU_FN(free)(all_gates);
    CPU_FN(free)(all_p);
}
