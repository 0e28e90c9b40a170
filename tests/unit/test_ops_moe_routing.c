/* The CPU backends' MoE routing (moe_route_forward / moe_route_backward) on cases worked out by
 * hand: ties between experts (to the lower index), capacity drops (the highest gates kept, ties
 * to the earlier token), rows grouped by expert in token order, the softmax and sigmoid gates
 * (k = 1 unnormalised, k > 1 normalised), the aux and z losses (accumulated, skipped when the
 * buffer is NULL), and the backward pass of a token whose gates take no gradient (only the
 * auxiliary losses remain). Expected values are evaluated here from the formulas of ops.h. The
 * gradients themselves are checked against finite differences in test_ops_gradcheck.c, and fp32
 * against fp64 and thread-count determinism in test_ops_cpu.c. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "tests/unit/check.h"

enum { MAX_TOKENS = 8, MAX_EXPERTS = 8, MAX_K = 3, MAX_SLOTS = MAX_TOKENS * MAX_K };

/* One routing call's outputs on the host; gates and losses as doubles. */
typedef struct routed {
    int32_t choice[MAX_SLOTS], assigned[MAX_EXPERTS], slot[MAX_SLOTS], row_token[MAX_SLOTS];
    int32_t expert_offset[MAX_EXPERTS + 1];
    double gates[MAX_SLOTS], losses[2];
} routed;

/* Values at full precision: doubles of cpu64 as they are, floats widened. */
static void read_values(const ops *o, const void *device, size_t n, int master, double *dst) {
    float single[MAX_TOKENS * MAX_EXPERTS];
    if ((master ? o->master_bytes : o->act_bytes) == sizeof(double)) {
        o->copy_to_host(dst, device, n * sizeof(double));
        return;
    }
    (master ? o->master_to_float : o->act_to_float)(single, device, n);
    for (size_t i = 0; i < n; i++) dst[i] = single[i];
}

/* Routes logits [N][E]; the losses start from `prior` (NULL: the op gets no losses buffer). */
static void route(const ops *o, const moe_router *router, int N, const float *logits,
                  const float *prior, routed *out) {
    int E = router->experts, slots = N * router->top_k;
    memset(out, 0, sizeof *out);
    void *d_logits = o->alloc((size_t)N * E * o->act_bytes);
    void *d_gates = o->alloc((size_t)slots * o->master_bytes);
    void *d_losses = o->alloc(2 * o->master_bytes);
    int32_t *d_ints = o->alloc(sizeof(int32_t) * (3 * (size_t)slots + 2 * E + 1));
    int32_t *d_choice = d_ints, *d_slot = d_ints + slots, *d_rows = d_ints + 2 * slots;
    int32_t *d_assigned = d_ints + 3 * slots, *d_offset = d_ints + 3 * slots + E;
    o->float_to_act(d_logits, logits, (size_t)N * E);
    if (prior) o->float_to_master(d_losses, prior, 2);
    o->moe_route_forward(d_choice, d_gates, d_assigned, d_slot, d_rows, d_offset,
                         prior ? d_losses : NULL, d_logits, router, N);
    o->copy_to_host(out->choice, d_choice, sizeof(int32_t) * slots);
    o->copy_to_host(out->slot, d_slot, sizeof(int32_t) * slots);
    o->copy_to_host(out->assigned, d_assigned, sizeof(int32_t) * E);
    o->copy_to_host(out->expert_offset, d_offset, sizeof(int32_t) * (E + 1));
    o->copy_to_host(out->row_token, d_rows, sizeof(int32_t) * out->expert_offset[E]);
    read_values(o, d_gates, slots, 1, out->gates);
    read_values(o, d_losses, 2, 1, out->losses);
    o->free(d_logits);
    o->free(d_gates);
    o->free(d_losses);
    o->free(d_ints);
}

static int same_ints(const int32_t *got, const int32_t *expected, int n) {
    return memcmp(got, expected, sizeof *got * n) == 0;
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* The Switch loss aux_coef·E/(N²k)·Σ_e (Σ_t p_te)·assigned_e and z_coef/N·Σ_t lse_t², from
 * the formulas, for logits [N][E]. */
static void expected_losses(const moe_router *router, int N, const float *logits,
                            const int32_t *assigned, double *aux, double *z) {
    int E = router->experts;
    double p_sum[MAX_EXPERTS] = {0}, lse_squares = 0;
    for (int t = 0; t < N; t++) {
        const float *row = logits + t * E;
        double sum = 0, total = 0;
        for (int e = 0; e < E; e++) sum += exp(row[e]);
        for (int e = 0; e < E; e++) total += sigmoid(row[e]);
        for (int e = 0; e < E; e++)
            p_sum[e] += router->sigmoid ? sigmoid(row[e]) / total : exp(row[e]) / sum;
        lse_squares += log(sum) * log(sum);
    }
    *aux = 0;
    for (int e = 0; e < E; e++) *aux += p_sum[e] * assigned[e];
    *aux *= router->aux_coef * E / ((double)N * N * router->top_k);
    *z = router->z_coef / N * lse_squares;
}

/* Softmax router, top-2 of 4 experts over 3 tokens: ties between experts, then capacity 1. */
static void softmax_ties_and_capacity(const ops *o, double tolerance) {
    const float logits[3 * 4] = {
        1, 3, 3, 0,   /* experts 1 and 2 tie: 1 first; gates 1/2, 1/2 */
        2, 2, 2, 2,   /* all tie: experts 0 and 1 */
        0, -1, 5, 1,  /* experts 2 then 3 */
    };
    moe_router router = {4, 2, 0, 0.1, 0.01, 0};
    routed r;
    route(o, &router, 3, logits, (const float[2]){0, 0}, &r);
    CHECK_MSG(same_ints(r.choice, (const int32_t[]){1, 2, 0, 1, 2, 3}, 6),
              "%s: choice %d %d %d %d %d %d", o->name, r.choice[0], r.choice[1], r.choice[2],
              r.choice[3], r.choice[4], r.choice[5]);
    CHECK(same_ints(r.assigned, (const int32_t[]){1, 2, 2, 1}, 4));
    double high = 1 / (1 + exp(-4.0)); /* softmax of {5, 1} */
    const double gates[6] = {0.5, 0.5, 0.5, 0.5, high, 1 - high};
    for (int s = 0; s < 6; s++) CHECK_NEAR(r.gates[s], gates[s], tolerance);
    /* rows: expert 0 {token 1}, expert 1 {tokens 0, 1}, expert 2 {tokens 0, 2}, expert 3 {2} */
    CHECK(same_ints(r.expert_offset, (const int32_t[]){0, 1, 3, 5, 6}, 5));
    CHECK(same_ints(r.row_token, (const int32_t[]){1, 0, 1, 0, 2, 2}, 6));
    CHECK(same_ints(r.slot, (const int32_t[]){1, 3, 0, 2, 4, 5}, 6));
    double aux, z;
    expected_losses(&router, 3, logits, r.assigned, &aux, &z);
    CHECK_NEAR(r.losses[0], aux, tolerance * aux);
    CHECK_NEAR(r.losses[1], z, tolerance * z);

    /* capacity ceil(3·2/4·0.5) = 1: expert 1 keeps token 0 (tied gates: the earlier token),
     * expert 2 keeps token 2 (the higher gate, though later); counts and losses as before */
    router.capacity_factor = 0.5;
    CHECK(moe_capacity(&router, 3) == 1);
    routed dropped;
    route(o, &router, 3, logits, (const float[2]){0, 0}, &dropped);
    CHECK(same_ints(dropped.choice, r.choice, 6) && same_ints(dropped.assigned, r.assigned, 4));
    CHECK_MSG(same_ints(dropped.slot, (const int32_t[]){1, -1, 0, -1, 2, 3}, 6),
              "%s: capacity slots %d %d %d %d %d %d", o->name, dropped.slot[0], dropped.slot[1],
              dropped.slot[2], dropped.slot[3], dropped.slot[4], dropped.slot[5]);
    CHECK(same_ints(dropped.expert_offset, (const int32_t[]){0, 1, 2, 3, 4}, 5));
    CHECK(same_ints(dropped.row_token, (const int32_t[]){1, 0, 2, 2}, 4));
    /* dropped slots keep their gates (combine skips them by slot) */
    for (int s = 0; s < 6; s++) CHECK_NEAR(dropped.gates[s], gates[s], tolerance);
    CHECK(dropped.losses[0] == r.losses[0] && dropped.losses[1] == r.losses[1]);

    /* losses add to what the buffer holds; without a buffer nothing else changes */
    routed again, unsummed;
    route(o, &router, 3, logits, (const float[2]){1.5f, -2.0f}, &again);
    CHECK_NEAR(again.losses[0], 1.5 + r.losses[0], 4 * tolerance);
    CHECK_NEAR(again.losses[1], -2.0 + r.losses[1], 4 * tolerance);
    route(o, &router, 3, logits, NULL, &unsummed);
    CHECK(same_ints(unsummed.slot, dropped.slot, 6) &&
          same_ints(unsummed.row_token, dropped.row_token, 4));
}

/* Sigmoid router: k = 1 keeps the raw sigmoid score, k = 2 divides by the chosen scores' sum;
 * experts rank by logit, ties to the lower index. */
static void sigmoid_gates(const ops *o, double tolerance) {
    const float logits[2 * 3] = {0.5f, -1, 2, 1, 1, -3};
    moe_router router = {3, 1, 1, 0.2, 0.05, 0};
    routed r;
    route(o, &router, 2, logits, (const float[2]){0, 0}, &r);
    CHECK(same_ints(r.choice, (const int32_t[]){2, 0}, 2));
    CHECK_NEAR(r.gates[0], sigmoid(2), tolerance);
    CHECK_NEAR(r.gates[1], sigmoid(1), tolerance);
    CHECK(same_ints(r.assigned, (const int32_t[]){1, 0, 1}, 3));
    CHECK(same_ints(r.expert_offset, (const int32_t[]){0, 1, 1, 2}, 4));
    CHECK(same_ints(r.row_token, (const int32_t[]){1, 0}, 2));
    CHECK(same_ints(r.slot, (const int32_t[]){1, 0}, 2));
    double aux, z;
    expected_losses(&router, 2, logits, r.assigned, &aux, &z);
    CHECK_NEAR(r.losses[0], aux, tolerance * aux);
    CHECK_NEAR(r.losses[1], z, tolerance * z);

    router.top_k = 2;
    route(o, &router, 2, logits, (const float[2]){0, 0}, &r);
    CHECK(same_ints(r.choice, (const int32_t[]){2, 0, 0, 1}, 4));
    double first = sigmoid(2) + sigmoid(0.5), second = 2 * sigmoid(1);
    CHECK_NEAR(r.gates[0], sigmoid(2) / first, tolerance);
    CHECK_NEAR(r.gates[1], sigmoid(0.5) / first, tolerance);
    CHECK_NEAR(r.gates[2], sigmoid(1) / second, tolerance);
    CHECK_NEAR(r.gates[3], sigmoid(1) / second, tolerance);
    /* rows: expert 0 {tokens 0, 1}, expert 1 {token 1}, expert 2 {token 0} */
    CHECK(same_ints(r.expert_offset, (const int32_t[]){0, 2, 3, 4}, 4));
    CHECK(same_ints(r.row_token, (const int32_t[]){0, 1, 1, 0}, 4));
    CHECK(same_ints(r.slot, (const int32_t[]){3, 0, 1, 2}, 4));
    expected_losses(&router, 2, logits, r.assigned, &aux, &z);
    CHECK_NEAR(r.losses[0], aux, tolerance * aux);

    /* logits whose sigmoids all round to 1 in double: they still rank by logit (40, then 39),
     * not as a three-way tie to experts 0 and 1 */
    const float large[3] = {39, 37, 40};
    route(o, &router, 1, large, (const float[2]){0, 0}, &r);
    CHECK_MSG(same_ints(r.choice, (const int32_t[]){2, 0}, 2), "%s: large logits chose %d %d",
              o->name, r.choice[0], r.choice[1]);
}

/* No tokens (an expert-parallel rank can receive none): nothing routed, the losses untouched
 * (their means over N tokens would be 0/0) */
static void no_tokens(const ops *o) {
    const moe_router routers[2] = {{4, 2, 0, 0.2, 0.05, 0}, {4, 2, 1, 0.2, 0.05, 1.5}};
    for (int i = 0; i < 2; i++) {
        routed r;
        route(o, &routers[i], 0, (const float[1]){0}, (const float[2]){0.5f, 0.25f}, &r);
        CHECK_MSG(r.losses[0] == 0.5 && r.losses[1] == 0.25, "%s router %d: losses %g %g", o->name,
                  i, r.losses[0], r.losses[1]);
        CHECK(same_ints(r.assigned, (const int32_t[4]){0, 0, 0, 0}, 4));
        CHECK(same_ints(r.expert_offset, (const int32_t[5]){0, 0, 0, 0, 0}, 5));
    }
}

/* With dgates = 0 only the auxiliary losses remain: softmax router, token t, expert e:
 * aux_scale·(p_e·(a_e - Σ p·a) + z_coef/N·2·lse·p_e), a_e = aux_coef·E/(N²k)·assigned_e. */
static void backward_auxiliary_only(const ops *o, double tolerance) {
    enum { N = 2, E = 3, K = 1 };
    const float logits[N * E] = {0.5f, -1, 2, 1, 0, -3};
    const double aux_scale = 0.75;
    moe_router router = {E, K, 0, 0.2, 0.05, 0};
    void *d_logits = o->alloc(N * E * o->act_bytes), *d_dlogits = o->alloc(N * E * o->act_bytes);
    void *d_gates = o->alloc(N * K * o->master_bytes);
    void *d_dgates = o->alloc(N * K * o->master_bytes); /* zero-filled: no gate gradient */
    int32_t *d_ints = o->alloc(sizeof(int32_t) * (3 * N * K + 2 * E + 1));
    int32_t *d_choice = d_ints, *d_assigned = d_ints + 3 * N * K;
    o->float_to_act(d_logits, logits, N * E);
    o->moe_route_forward(d_choice, d_gates, d_assigned, d_ints + N * K, d_ints + 2 * N * K,
                         d_assigned + E, NULL, d_logits, &router, N);
    o->moe_route_backward(d_dlogits, d_dgates, d_logits, d_choice, d_assigned, &router, N,
                          aux_scale);
    double got[N * E];
    read_values(o, d_dlogits, N * E, 0, got);
    const int assigned[E] = {1, 0, 1}; /* token 0: expert 2, token 1: expert 0 */
    double a[E], factor = router.aux_coef * E / ((double)N * N * K);
    for (int e = 0; e < E; e++) a[e] = factor * assigned[e];
    for (int t = 0; t < N; t++) {
        const float *row = logits + t * E;
        double sum = 0, pa = 0;
        for (int e = 0; e < E; e++) sum += exp(row[e]);
        for (int e = 0; e < E; e++) pa += exp(row[e]) / sum * a[e];
        for (int e = 0; e < E; e++) {
            double p = exp(row[e]) / sum;
            double expected = aux_scale * (p * (a[e] - pa) + router.z_coef / N * 2 * log(sum) * p);
            CHECK_NEAR(got[t * E + e], expected, tolerance);
        }
    }
    void *buffers[] = {d_logits, d_dlogits, d_gates, d_dgates, d_ints};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++) o->free(buffers[i]);
}

int main(void) {
    const ops *backends[2] = {ops_cpu(), ops_cpu64()};
    const double tolerance[2] = {1e-6, 1e-14};
    for (int i = 0; i < 2; i++) {
        softmax_ties_and_capacity(backends[i], tolerance[i]);
        sigmoid_gates(backends[i], tolerance[i]);
        backward_auxiliary_only(backends[i], tolerance[i]);
        no_tokens(backends[i]);
    }
    return check_summary("test_ops_moe_routing");
}
