/* The whole model's analytic gradients against finite differences, in fp64.
 *
 * For each tiny configuration (llama with SwiGLU, qk-norm and document masking; llama with xIELU,
 * untied, GQA; gpt2; MoE with a softmax router and a shared expert; MoE with a sigmoid router; MoE
 * with capacity 1.0 so that tokens are dropped) the objective
 *   J = Σ_t w_t·CE_t + moe_scale·(aux + z)
 * is differentiated by model_forward + model_backward on ops_cpu64() and by a fourth-order central
 * difference of J on ~30 sampled entries of EVERY parameter tensor. Routing is discrete: every
 * evaluation must take the same routing decisions as the unperturbed model, which is checked.
 * A second backward without zeroing must double the gradients (they accumulate), and the fp32
 * backend must give bit-identical losses and gradients for the same seed. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/random.h"
#include "kernels/ops.h"
#include "tests/unit/check.h"
#include "tests/unit/model_configs.h"
#include "train/config.h"
#include "train/model.h"

enum { VOCAB = TINY_VOCAB, EOD = TINY_EOD, SEQ = TINY_SEQ, BATCH = TINY_BATCH, SAMPLES = 30 };

/* FD step on the master weights, and the bound on the per-tensor error
 * max|analytic - fd| / max(max|analytic|, max|fd|, GRADIENT_FLOOR). */
static const double STEP = 1e-4;
static const double TOLERANCE = 1e-6;
static const double GRADIENT_FLOOR = 1e-4;

typedef struct gradcheck_case {
    const char *name;
    void (*edit)(config *c);
    double moe_scale;
    int expect_drops;  /* capacity must drop some tokens in the unperturbed model */
} gradcheck_case;

static void edit_llama_xielu(config *c) {
    c->model.activation = ACTIVATION_XIELU;
    c->model.tie_embeddings = 0;
    c->model.document_masking = 0;
}

static void edit_moe_sigmoid(config *c) {
    edit_moe_softmax(c);
    c->model.moe.router = ROUTER_SIGMOID;
    c->model.moe.shared_experts = 0;
    c->model.moe.ffn = 12;
}

static void edit_moe_sigmoid_top1(config *c) {
    edit_moe_sigmoid(c);
    c->model.moe.top_k = 1;
    c->model.moe.shared_experts = 1;
}

static void edit_moe_capacity(config *c) {
    edit_moe_softmax(c);
    c->model.moe.shared_experts = 0;
    c->model.moe.capacity_factor = 1.0;
}

/* gpt2's GELU in the experts: the shared expert's linear layers fused with it (matmul_gelu_*),
 * the routed experts' grouped ones around a separate GELU pass */
static void edit_moe_gelu(config *c) {
    edit_gpt2(c);
    edit_moe_softmax(c);
}

static const gradcheck_case cases[] = {
    {"llama swiglu qk_norm doc-masking tied", edit_llama_swiglu, 1.0, 0},
    {"llama xielu untied gqa", edit_llama_xielu, 1.0, 0},
    {"gpt2 layernorm gelu biases positions", edit_gpt2, 1.0, 0},
    {"moe softmax top-2 shared expert", edit_moe_softmax, 0.5, 0},
    {"moe sigmoid top-2", edit_moe_sigmoid, 1.0, 0},
    {"moe sigmoid top-1 shared expert", edit_moe_sigmoid_top1, 1.0, 0},
    {"moe softmax capacity 1.0", edit_moe_capacity, 1.0, 1},
    {"moe gpt2 gelu shared expert", edit_moe_gelu, 0.5, 0},
};

static int make_config(const gradcheck_case *gc, config *c) {
    status st = {{0}};
    int result = tiny_model_config(c, 2, BATCH, gc->edit, &st);
    CHECK_MSG(result == 0, "%s: %s", gc->name, st.message);
    return result;
}

/* Random tokens with EOD inside both rows; weights 1/counted, 0 where the input is EOD. */
static void make_batch(int32_t *tokens, float *weights) {
    random_state rng;
    random_seed(&rng, 7);
    for (int i = 0; i < BATCH * (SEQ + 1); i++) {
        int32_t token = (int32_t)random_below(&rng, VOCAB - 1);
        tokens[i] = token >= EOD ? token + 1 : token;
    }
    tokens[3] = EOD;                 /* row 0: documents [0,3] and [4,8] */
    tokens[(SEQ + 1) + 1] = EOD;     /* row 1: documents [0,1], [2,5], [6,8] */
    tokens[(SEQ + 1) + 5] = EOD;
    int counted = 0;
    for (int b = 0; b < BATCH; b++)
        for (int t = 0; t < SEQ; t++) counted += tokens[b * (SEQ + 1) + t] != EOD;
    for (int b = 0; b < BATCH; b++)
        for (int t = 0; t < SEQ; t++)
            weights[b * SEQ + t] = tokens[b * (SEQ + 1) + t] == EOD ? 0.0f : 1.0f / counted;
}

/* The routing decisions of every MoE layer, to detect a flip under perturbation: per token, the
 * set of chosen experts and the set of kept ones (the order of the chosen ones does not matter). */
typedef struct routing_snapshot {
    uint32_t *chosen, *kept;  /* [layers][N] bit masks over experts */
} routing_snapshot;

static void routing_masks(const model *m, int layer, uint32_t *chosen, uint32_t *kept) {
    const layer_activations *a = &m->acts[layer];
    int k = m->router.top_k;
    size_t nk = (size_t)m->N * k;
    int32_t *choice = malloc(sizeof *choice * nk), *slot = malloc(sizeof *slot * nk);
    m->ops->copy_to_host(choice, a->choice, sizeof *choice * nk);
    m->ops->copy_to_host(slot, a->slot, sizeof *slot * nk);
    for (int t = 0; t < m->N; t++) {
        chosen[t] = kept[t] = 0;
        for (int j = 0; j < k; j++) {
            size_t s = (size_t)t * k + j;
            chosen[t] |= 1u << choice[s];
            if (slot[s] >= 0) kept[t] |= 1u << choice[s];
        }
    }
    free(choice);
    free(slot);
}

static void routing_take(const model *m, routing_snapshot *s) {
    size_t total = m->is_moe ? (size_t)m->N * m->cfg.layers : 1;
    s->chosen = malloc(sizeof *s->chosen * total);
    s->kept = malloc(sizeof *s->kept * total);
    for (int i = 0; m->is_moe && i < m->cfg.layers; i++)
        routing_masks(m, i, s->chosen + (size_t)i * m->N, s->kept + (size_t)i * m->N);
}

static int routing_same(const model *m, const routing_snapshot *s) {
    int same = 1;
    uint32_t chosen[BATCH * SEQ], kept[BATCH * SEQ];
    for (int i = 0; m->is_moe && i < m->cfg.layers; i++) {
        routing_masks(m, i, chosen, kept);
        same &= !memcmp(chosen, s->chosen + (size_t)i * m->N, sizeof chosen) &&
                !memcmp(kept, s->kept + (size_t)i * m->N, sizeof kept);
    }
    return same;
}

static void routing_free(routing_snapshot *s) {
    free(s->chosen);
    free(s->kept);
}

/* J = Σ w·CE + moe_scale·(aux + z), all in fp64 (the cpu64 master type is double). */
static double objective(model *m, const int32_t *tokens, const float *weights, double moe_scale) {
    double losses[BATCH * SEQ], aux, z;
    model_take_router_losses(m, &aux, &z); /* restart the sums: only this pass counts */
    model_forward(m, tokens, NULL, moe_scale);
    m->ops->copy_to_host(losses, m->losses, sizeof losses);
    model_take_router_losses(m, &aux, &z);
    double sum = 0;
    for (int i = 0; i < BATCH * SEQ; i++) sum += (double)weights[i] * losses[i];
    return sum + moe_scale * (aux + z);
}

static double read_master(const model *m, size_t index) {
    double value;
    m->ops->copy_to_host(&value, (const double *)m->master + index, sizeof value);
    return value;
}

static void write_master(model *m, size_t index, double value) {
    m->ops->copy_to_device((double *)m->master + index, &value, sizeof value);
    model_sync_compute_weights(m);
}

typedef struct fd_context {
    model *m;
    const int32_t *tokens;
    const float *weights;
    double moe_scale;
    const routing_snapshot *routing;
    int flips;
} fd_context;

static double objective_at(fd_context *x, size_t index, double value) {
    write_master(x->m, index, value);
    double j = objective(x->m, x->tokens, x->weights, x->moe_scale);
    x->flips += !routing_same(x->m, x->routing);
    return j;
}

/* dJ/dθ[index] by the fourth-order central difference */
static double finite_difference(fd_context *x, size_t index) {
    double theta = read_master(x->m, index);
    double plus1 = objective_at(x, index, theta + STEP);
    double minus1 = objective_at(x, index, theta - STEP);
    double plus2 = objective_at(x, index, theta + 2 * STEP);
    double minus2 = objective_at(x, index, theta - 2 * STEP);
    write_master(x->m, index, theta);
    return (8 * (plus1 - minus1) - (plus2 - minus2)) / (12 * STEP);
}

/* Checks one tensor; returns its error. */
static double check_tensor(fd_context *x, const param_tensor *p, const double *analytic,
                           random_state *rng, const char *case_name) {
    size_t samples = p->count < SAMPLES ? p->count : SAMPLES;
    double max_diff = 0, max_analytic = 0, max_fd = 0;
    for (size_t s = 0; s < samples; s++) {
        size_t entry = p->count <= SAMPLES ? s : (size_t)random_below(rng, p->count);
        size_t index = p->offset + entry;
        double fd = finite_difference(x, index);
        max_diff = fmax(max_diff, fabs(fd - analytic[index]));
        max_analytic = fmax(max_analytic, fabs(analytic[index]));
        max_fd = fmax(max_fd, fabs(fd));
    }
    double error = max_diff / fmax(fmax(max_analytic, max_fd), GRADIENT_FLOOR);
    CHECK_MSG(error <= TOLERANCE, "%s: %s: error %.3g (max |analytic| %.3g, max |fd| %.3g)",
              case_name, p->name, error, max_analytic, max_fd);
    return error;
}

/* Weight gradients accumulate (+=): a second backward without zeroing doubles them. */
static void check_accumulation(fd_context *x, const double *first, const char *case_name) {
    model *m = x->m;
    model_forward(m, x->tokens, x->weights, x->moe_scale);
    model_backward(m);
    double *twice = malloc(sizeof *twice * m->total_params);
    m->ops->copy_to_host(twice, m->grads, sizeof *twice * m->total_params);
    double max_diff = 0, max_first = 0;
    for (size_t i = 0; i < m->total_params; i++) {
        max_diff = fmax(max_diff, fabs(twice[i] - 2 * first[i]));
        max_first = fmax(max_first, fabs(first[i]));
    }
    CHECK_MSG(max_diff <= 1e-12 * max_first, "%s: second backward: max |g2 - 2g| = %.3g",
              case_name, max_diff);
    free(twice);
}

static void gradcheck(const gradcheck_case *gc) {
    config c;
    if (make_config(gc, &c)) return;
    const ops *o = ops_cpu64();
    CHECK(o->master_bytes == sizeof(double));
    model m;
    status st = {{0}};
    if (model_create(&m, o, &c, c.data.eod_id, &st)) {
        CHECK_MSG(0, "%s: %s", gc->name, st.message);
        return;
    }
    model_init_weights(&m, 43);
    int32_t tokens[BATCH * (SEQ + 1)];
    float weights[BATCH * SEQ];
    make_batch(tokens, weights);

    model_zero_grads(&m);
    model_forward(&m, tokens, weights, gc->moe_scale);
    model_backward(&m);
    double *analytic = malloc(sizeof *analytic * m.total_params);
    o->copy_to_host(analytic, m.grads, sizeof *analytic * m.total_params);
    routing_snapshot routing;
    routing_take(&m, &routing);
    int dropped = 0;
    for (int i = 0; m.is_moe && i < c.model.layers; i++)
        dropped += m.N * c.model.moe.top_k - m.acts[i].host_expert_offset[c.model.moe.experts];
    if (gc->expect_drops) CHECK_MSG(dropped > 0, "%s: capacity dropped no token", gc->name);

    fd_context x = {&m, tokens, weights, gc->moe_scale, &routing, 0};
    random_state rng;
    random_seed(&rng, 99);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m.param_count; i++) {
        double error = check_tensor(&x, &m.params[i], analytic, &rng, gc->name);
        if (error >= worst) {
            worst = error;
            worst_name = m.params[i].name;
        }
    }
    CHECK_MSG(x.flips == 0, "%s: %d evaluations changed the routing", gc->name, x.flips);
    check_accumulation(&x, analytic, gc->name);
    printf("%-40s %3d tensors  max error %.2e (%s)  dropped slots %d\n", gc->name, m.param_count,
           worst, worst_name, dropped);
    routing_free(&routing);
    free(analytic);
    model_destroy(&m);
}

/* One forward + backward on the fp32 backend from scratch: host copies of losses and gradients. */
static int fp32_step(const config *c, double moe_scale, float *losses, float **grads,
                     double *aux, size_t *count) {
    model m;
    status st = {{0}};
    if (model_create(&m, ops_cpu(), c, c->data.eod_id, &st)) {
        CHECK_MSG(0, "%s", st.message);
        return -1;
    }
    model_init_weights(&m, 43);
    int32_t tokens[BATCH * (SEQ + 1)];
    float weights[BATCH * SEQ];
    make_batch(tokens, weights);
    model_zero_grads(&m);
    model_forward(&m, tokens, weights, moe_scale);
    model_backward(&m);
    memcpy(losses, m.host_losses, sizeof *losses * BATCH * SEQ);
    *count = m.total_params;
    *grads = malloc(sizeof **grads * m.total_params);
    m.ops->master_to_float(*grads, m.grads, m.total_params);
    double z;
    model_take_router_losses(&m, aux, &z);
    *aux += z;
    model_destroy(&m);
    return 0;
}

static void check_fp32_deterministic(const gradcheck_case *gc) {
    config c;
    if (make_config(gc, &c)) return;
    float losses[2][BATCH * SEQ];
    float *grads[2] = {NULL, NULL};
    double aux[2];
    size_t count[2];
    if (fp32_step(&c, gc->moe_scale, losses[0], &grads[0], &aux[0], &count[0]) == 0 &&
        fp32_step(&c, gc->moe_scale, losses[1], &grads[1], &aux[1], &count[1]) == 0) {
        CHECK_MSG(memcmp(losses[0], losses[1], sizeof losses[0]) == 0, "%s: fp32 losses differ",
                  gc->name);
        CHECK_MSG(count[0] == count[1] &&
                      memcmp(grads[0], grads[1], sizeof *grads[0] * count[0]) == 0,
                  "%s: fp32 gradients differ", gc->name);
        CHECK_MSG(aux[0] == aux[1], "%s: fp32 router losses differ", gc->name);
    }
    free(grads[0]);
    free(grads[1]);
}

int main(void) {
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        gradcheck(&cases[i]);
        check_fp32_deterministic(&cases[i]);
    }
    return check_summary("test_model_gradcheck");
}
