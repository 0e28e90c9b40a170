#include "train/moe_routing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

moe_routing *moe_routing_create(int N, const moe_config *cfg) {
    moe_routing *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->N = N;
    r->E = cfg->experts;
    r->k = cfg->top_k;
    r->router = cfg->router;
    r->aux_coef = cfg->aux_loss_coef;
    r->z_coef = cfg->z_loss_coef;
    r->capacity_factor = cfg->capacity_factor;
    size_t nk = (size_t)N * r->k;
    r->logits = calloc((size_t)N * r->E, sizeof *r->logits);
    r->choice = calloc(nk, sizeof *r->choice);
    r->gates = calloc(nk, sizeof *r->gates);
    r->used_gates = calloc(nk, sizeof *r->used_gates);
    r->slot = calloc(nk, sizeof *r->slot);
    r->row_token = calloc(nk, sizeof *r->row_token);
    r->expert_offset = calloc((size_t)r->E + 1, sizeof *r->expert_offset);
    r->assigned = calloc((size_t)r->E, sizeof *r->assigned);
    if (!r->logits || !r->choice || !r->gates || !r->used_gates || !r->slot || !r->row_token ||
        !r->expert_offset || !r->assigned) {
        moe_routing_destroy(r);
        return NULL;
    }
    return r;
}

void moe_routing_destroy(moe_routing *r) {
    if (!r) return;
    free(r->logits);
    free(r->choice);
    free(r->gates);
    free(r->used_gates);
    free(r->slot);
    free(r->row_token);
    free(r->expert_offset);
    free(r->assigned);
    free(r);
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* Scores that rank experts for token t (softmax: logits; sigmoid: sigmoid). */
static double router_score(const moe_routing *r, const double *row, int e) {
    return r->router == ROUTER_SIGMOID ? sigmoid(row[e]) : (double)row[e];
}

/* Probabilities used by the load-balancing loss, and the logsumexp of the row. */
static double balance_probs(const moe_routing *r, const double *row, double *p) {
    double max = row[0];
    for (int e = 1; e < r->E; e++) max = fmax(max, row[e]);
    double sum = 0;
    for (int e = 0; e < r->E; e++) sum += exp(row[e] - max);
    double lse = max + log(sum);
    if (r->router == ROUTER_SIGMOID) {
        double total = 0;
        for (int e = 0; e < r->E; e++) total += p[e] = sigmoid(row[e]);
        for (int e = 0; e < r->E; e++) p[e] /= total;
    } else {
        for (int e = 0; e < r->E; e++) p[e] = exp(row[e] - lse);
    }
    return lse;
}

static void select_top_k(const moe_routing *r, int t) {
    const double *row = r->logits + (size_t)t * r->E;
    int32_t *choice = r->choice + (size_t)t * r->k;
    double *gates = r->gates + (size_t)t * r->k;
    /* ties go to the lower expert index, deterministically */
    for (int j = 0; j < r->k; j++) {
        int best = -1;
        for (int e = 0; e < r->E; e++) {
            int taken = 0;
            for (int i = 0; i < j; i++) taken |= choice[i] == e;
            if (taken) continue;
            if (best < 0 || router_score(r, row, e) > router_score(r, row, best)) best = e;
        }
        choice[j] = best;
    }
    if (r->router == ROUTER_SIGMOID) {
        double sum = 0;
        for (int j = 0; j < r->k; j++) sum += gates[j] = sigmoid(row[choice[j]]);
        if (r->k > 1)
            for (int j = 0; j < r->k; j++) gates[j] /= sum + 1e-20;
    } else {
        double max = row[choice[0]], sum = 0;
        for (int j = 0; j < r->k; j++) sum += gates[j] = exp(row[choice[j]] - max);
        for (int j = 0; j < r->k; j++) gates[j] /= sum;
    }
}

/* Capacity: per expert keep the `capacity` slots with the highest gates
 * (ties: earlier token first); the rest are dropped. */
static void apply_capacity(moe_routing *r, int *keep) {
    size_t nk = (size_t)r->N * r->k;
    for (size_t s = 0; s < nk; s++) keep[s] = 1;
    if (r->capacity_factor <= 0) return;
    int capacity = (int)ceil((double)r->N * r->k / r->E * r->capacity_factor);
    for (int e = 0; e < r->E; e++) {
        if (r->assigned[e] <= capacity) continue;
        int kept = 0;
        while (kept < capacity) {
            size_t best = nk;
            for (size_t s = 0; s < nk; s++)
                if (r->choice[s] == e && keep[s] == 1 && (best == nk || r->gates[s] > r->gates[best]))
                    best = s;
            keep[best] = 2;  /* chosen */
            kept++;
        }
        for (size_t s = 0; s < nk; s++)
            if (r->choice[s] == e) keep[s] = keep[s] == 2;
    }
    for (size_t s = 0; s < nk; s++) keep[s] = keep[s] != 0;
}

void moe_route(moe_routing *r) {
    int N = r->N, E = r->E, k = r->k;
    size_t nk = (size_t)N * k;
    memset(r->assigned, 0, sizeof *r->assigned * E);
    double *p = malloc(sizeof *p * E), *p_sum = calloc(E, sizeof *p_sum);
    int *keep = malloc(sizeof *keep * nk);
    double z = 0;
    for (int t = 0; t < N; t++) {
        select_top_k(r, t);
        for (int j = 0; j < k; j++) r->assigned[r->choice[(size_t)t * k + j]]++;
        double lse = balance_probs(r, r->logits + (size_t)t * E, p);
        for (int e = 0; e < E; e++) p_sum[e] += p[e];
        z += lse * lse;
    }
    double aux = 0;
    for (int e = 0; e < E; e++) aux += p_sum[e] * (double)r->assigned[e];
    r->aux_loss = r->aux_coef * E / ((double)N * N * k) * aux;
    r->z_loss = r->z_coef * z / N;

    apply_capacity(r, keep);
    /* rows grouped by expert, tokens in order inside each expert */
    int rows = 0;
    for (int e = 0; e < E; e++) {
        r->expert_offset[e] = rows;
        for (size_t s = 0; s < nk; s++) {
            if (r->choice[s] != e) continue;
            if (keep[s]) {
                r->slot[s] = rows;
                r->row_token[rows++] = (int32_t)(s / k);
            } else {
                r->slot[s] = -1;
            }
        }
    }
    r->expert_offset[E] = rows;
    r->rows = rows;
    for (size_t s = 0; s < nk; s++) r->used_gates[s] = keep[s] ? r->gates[s] : 0.0;
    free(p);
    free(p_sum);
    free(keep);
}

void moe_router_backward(const moe_routing *r, const double *dgates, double aux_scale,
                         double *dlogits) {
    int N = r->N, E = r->E, k = r->k;
    double *p = malloc(sizeof *p * E), *g = malloc(sizeof *g * E);
    double aux_factor = r->aux_coef * E / ((double)N * N * k);
    for (int t = 0; t < N; t++) {
        const double *row = r->logits + (size_t)t * E;
        double *drow = dlogits + (size_t)t * E;
        const int32_t *choice = r->choice + (size_t)t * k;
        const double *gates = r->gates + (size_t)t * k;
        const double *dg = dgates + (size_t)t * k;
        for (int e = 0; e < E; e++) g[e] = 0;
        /* gates: softmax over the k selected logits, or normalised sigmoid scores */
        double dot = 0;
        for (int j = 0; j < k; j++) dot += gates[j] * dg[j];
        for (int j = 0; j < k; j++) {
            int e = choice[j];
            if (r->router == ROUTER_SIGMOID) {
                double s = sigmoid(row[e]);
                double sum = r->k > 1 ? s / gates[j] : 1.0; /* Σ selected scores */
                double ds = r->k > 1 ? (dg[j] - dot) / sum : dg[j];
                g[e] += ds * s * (1 - s);
            } else {
                g[e] += gates[j] * (dg[j] - dot);
            }
        }
        /* load-balancing and z-loss, both functions of all E logits */
        double lse = balance_probs(r, row, p);
        if (r->router == ROUTER_SIGMOID) {
            /* p_e = s_e / S; dL/dp_e = a_e; dL/ds_e = (a_e - Σ p a) / S; ds/dl = s(1-s) */
            double S = 0, pa = 0;
            for (int e = 0; e < E; e++) S += sigmoid(row[e]);
            for (int e = 0; e < E; e++) pa += p[e] * aux_factor * (double)r->assigned[e];
            for (int e = 0; e < E; e++) {
                double s = sigmoid(row[e]);
                double a = aux_factor * (double)r->assigned[e];
                g[e] += aux_scale * (a - pa) / S * s * (1 - s);
            }
        } else {
            double pa = 0;
            for (int e = 0; e < E; e++) pa += p[e] * aux_factor * (double)r->assigned[e];
            for (int e = 0; e < E; e++)
                g[e] += aux_scale * p[e] * (aux_factor * (double)r->assigned[e] - pa);
        }
        /* z-loss: d/dl_e (z_coef/N · lse²) = z_coef/N · 2 lse · softmax_e */
        for (int e = 0; e < E; e++)
            g[e] += aux_scale * r->z_coef / N * 2 * lse * exp(row[e] - lse);
        for (int e = 0; e < E; e++) drow[e] = g[e];
    }
    free(p);
    free(g);
}
