/* Model shards against the whole model: tensor-parallel slices, pipeline stages and
 * expert-parallel groups.
 *
 * Run under mpirun with TP × EP × PP ranks (`test_model_shards TP PP EP [recompute]`; ranks in
 * Megatron's order: tensor-parallel rank fastest, then the expert/data-parallel rank, then the
 * stage).
 * The EP ranks are data-parallel ranks with their own micro-batches that share out the routed
 * experts. Every rank builds the whole model (the reference, which runs the micro-batches of
 * every data-parallel rank) and its own shard, with the tensor- and expert-parallel exchanges
 * over MPI. Both take the same weights
 * (model_init_weights draws the whole model's stream) and run M micro-batches in the 1F1B
 * order (parallel/pipeline.h), one activation slot per micro-batch in flight; activations
 * and their gradients cross stage boundaries with MPI_Send/MPI_Recv. Checked, for several
 * architectures: every micro-batch's per-token losses on the last stage, and every gradient
 * slice the shard holds (partial gradients summed over the tensor-parallel group, the last
 * stage's copy of tied embeddings summed with the first stage's), against the whole model's.
 * With `recompute` the shard runs with train.recompute full (the whole model without), and
 * dense models run with EP > 1 too (their EP ranks are plain data-parallel ranks). */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/random.h"
#include "kernels/ops.h"
#include "parallel/pipeline.h"
#include "tests/unit/check.h"
#include "tests/unit/model_configs.h"
#include "train/config.h"
#include "train/model.h"

enum { VOCAB = TINY_VOCAB, EOD = TINY_EOD, SEQ = TINY_SEQ, BATCH = TINY_BATCH, MICRO = 3 };

static const double LOSS_TOLERANCE = 1e-5;     /* relative */
static const double GRADIENT_TOLERANCE = 1e-4; /* relative to the tensor's largest entry */

typedef struct shard_case {
    const char *name;
    void (*edit)(config *c);
} shard_case;

static void edit_llama_xielu(config *c) {
    c->model.activation = ACTIVATION_XIELU;
    c->model.tie_embeddings = 0;
}
static void edit_moe(config *c) {
    edit_moe_softmax(c);
    c->model.tie_embeddings = 0;
}
static void edit_moe_sigmoid(config *c) {
    edit_moe(c);
    c->model.moe.router = ROUTER_SIGMOID;
    c->model.moe.shared_experts = 0;
    c->model.tie_embeddings = 1;
}

static const shard_case cases[] = {
    {"llama swiglu qk_norm tied", edit_llama_swiglu},
    {"llama xielu untied", edit_llama_xielu},
    {"gpt2", edit_gpt2},
    {"moe softmax shared expert", edit_moe},
    {"moe sigmoid tied", edit_moe_sigmoid},
};

/* ---- the tensor-parallel group over MPI (fp32 CPU buffers) ---- */

static void sum_floats(void *context, void *buffer, size_t count) {
    MPI_Allreduce(MPI_IN_PLACE, buffer, (int)count, MPI_FLOAT, MPI_SUM, *(MPI_Comm *)context);
}
static void max_floats(void *context, void *buffer, size_t count) {
    MPI_Allreduce(MPI_IN_PLACE, buffer, (int)count, MPI_FLOAT, MPI_MAX, *(MPI_Comm *)context);
}

/* ---- the expert-parallel group over MPI ---- */

static void exchange_counts(void *context, const int *send, int *recv, int per_peer) {
    MPI_Alltoall(send, per_peer, MPI_INT, recv, per_peer, MPI_INT, *(MPI_Comm *)context);
}

static void exchange_rows(void *context, const void *send, const int *send_rows, void *recv,
                          const int *recv_rows, size_t row_bytes) {
    MPI_Comm comm = *(MPI_Comm *)context;
    int size;
    MPI_Comm_size(comm, &size);
    int send_bytes[64], send_at[64], recv_bytes[64], recv_at[64];
    for (int q = 0, s = 0, r = 0; q < size; q++) {
        send_bytes[q] = send_rows[q] * (int)row_bytes;
        recv_bytes[q] = recv_rows[q] * (int)row_bytes;
        send_at[q] = s;
        recv_at[q] = r;
        s += send_bytes[q];
        r += recv_bytes[q];
    }
    MPI_Alltoallv(send, send_bytes, send_at, MPI_BYTE, recv, recv_bytes, recv_at, MPI_BYTE, comm);
}

static void make_config(const shard_case *sc, config *c) {
    status st = {{0}};
    CHECK_MSG(tiny_model_config(c, 3, BATCH * MICRO, sc->edit, &st) == 0, "%s: %s", sc->name,
              st.message);
}

static void make_tokens(int32_t *tokens, int micro) {
    random_state rng;
    random_seed(&rng, 11 + (uint64_t)micro); /* micro: over every data-parallel rank */
    for (int i = 0; i < BATCH * (SEQ + 1); i++) tokens[i] = (int32_t)random_below(&rng, VOCAB);
    tokens[3] = EOD;
    tokens[(SEQ + 1) + 5] = EOD;
}

static void make_weights(float *weights, int dp) {
    for (int i = 0; i < BATCH * SEQ; i++) weights[i] = 1.0f / (BATCH * SEQ * MICRO * dp);
}

/* max |a - b| / max(max |b|, floor); the floor keeps gradients that vanish analytically (a
 * key bias shifts every score of a row equally) from comparing rounding noise */
static double relative_error(const float *a, const float *b, size_t n) {
    double diff = 0, scale = 1e-5;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return diff / scale;
}

static void run_case(const shard_case *sc, int tp, int pp, int ep, int recompute,
                     int world_rank) {
    int tp_rank = world_rank % tp, dp_rank = world_rank / tp % ep, stage = world_rank / (tp * ep);
    int next_stage = world_rank + tp * ep, previous_stage = world_rank - tp * ep;
    MPI_Comm tp_comm, dp_comm, embedding_comm;
    MPI_Comm_split(MPI_COMM_WORLD, stage * ep + dp_rank, tp_rank, &tp_comm);
    MPI_Comm_split(MPI_COMM_WORLD, stage * tp + tp_rank, dp_rank, &dp_comm);
    /* the first and last stage of one tensor- and data-parallel rank share tied embeddings */
    int in_embedding_group = stage == 0 || stage == pp - 1;
    MPI_Comm_split(MPI_COMM_WORLD, in_embedding_group ? dp_rank * tp + tp_rank : MPI_UNDEFINED,
                   stage, &embedding_comm);
    int moe = 0;

    config c;
    make_config(sc, &c);
    moe = c.model.moe.experts > 0;
    /* a dense model's EP ranks are plain data-parallel ranks: only the recompute run, which
     * covers every parallel axis in one layout, checks them */
    if (ep > 1 && !moe && !recompute) {
        MPI_Comm_free(&tp_comm);
        MPI_Comm_free(&dp_comm);
        if (embedding_comm != MPI_COMM_NULL) MPI_Comm_free(&embedding_comm);
        return;
    }
    const ops *o = ops_cpu();
    status st = {{0}};
    model whole, part;
    CHECK_MSG(model_create(&whole, o, &c, EOD, &st) == 0, "%s", st.message);
    model_shard shard = {{tp_rank, tp, &tp_comm, sum_floats, sum_floats, max_floats},
                         {dp_rank, ep, &dp_comm, exchange_counts, exchange_rows},
                         stage, pp, 0, 0, pipeline_slots(stage, pp, MICRO), 0, NULL, NULL};
    model_stage_layers(c.model.layers, stage, pp, &shard.first_layer, &shard.layers);
    c.train.recompute = recompute ? RECOMPUTE_FULL : RECOMPUTE_NONE;
    CHECK_MSG(model_create_shard(&part, o, &c, EOD, &shard, &st) == 0, "%s", st.message);
    /* MFU's numerator is the whole model's, whatever slice a rank holds */
    CHECK_MSG(model_flops_per_token(&part) == model_flops_per_token(&whole),
              "%s tp%d pp%d ep%d: flops per token %.6g on a shard, %.6g on the whole model",
              sc->name, tp, pp, ep, model_flops_per_token(&part), model_flops_per_token(&whole));
    model_init_weights(&whole, c.run.seed);
    model_init_weights(&part, c.run.seed);
    model_zero_grads(&whole);
    model_zero_grads(&part);

    int N = BATCH * SEQ, d = c.model.d_model;
    int32_t tokens[MICRO][BATCH * (SEQ + 1)], other[BATCH * (SEQ + 1)];
    float weights[BATCH * SEQ], expect_losses[MICRO][BATCH * SEQ];
    make_weights(weights, ep);
    /* the whole model runs every data-parallel rank's micro-batches; the moe scale is one over
     * the micro-batches of the global batch, as the trainer sets it */
    double moe_scale = 1.0 / (MICRO * ep);
    for (int rank = 0; rank < ep; rank++)
        for (int micro = 0; micro < MICRO; micro++) {
            int32_t *t = rank == dp_rank ? tokens[micro] : other;
            make_tokens(t, rank * MICRO + micro);
            model_forward(&whole, t, weights, moe_scale);
            if (rank == dp_rank)
                memcpy(expect_losses[micro], whole.host_losses, sizeof expect_losses[micro]);
            model_backward(&whole);
        }

    /* the shard, in the 1F1B order (the last stage's logits live only until its backward) */
    double worst_loss = 0;
    pipeline_action actions[2 * MICRO];
    pipeline_schedule(stage, pp, MICRO, actions);
    int slots = pipeline_slots(stage, pp, MICRO);
    for (int a = 0; a < 2 * MICRO; a++) {
        int micro = actions[a].micro, slot = micro % slots;
        if (actions[a].pass == PIPELINE_FORWARD) {
            if (stage > 0)
                MPI_Recv(model_stage_input(&part, slot), N * d, MPI_FLOAT, previous_stage, micro,
                         MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            model_stage_forward(&part, slot, tokens[micro], weights, moe_scale);
            if (stage < pp - 1)
                MPI_Send(model_stage_output(&part, slot), N * d, MPI_FLOAT, next_stage, micro,
                         MPI_COMM_WORLD);
            else
                worst_loss =
                    fmax(worst_loss, relative_error(part.host_losses, expect_losses[micro], N));
        } else {
            if (stage < pp - 1)
                MPI_Recv(model_stage_grad(&part), N * d, MPI_FLOAT, next_stage, MICRO + micro,
                         MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            model_stage_backward(&part, slot);
            if (stage > 0)
                MPI_Send(model_stage_grad(&part), N * d, MPI_FLOAT, previous_stage, MICRO + micro,
                         MPI_COMM_WORLD);
        }
    }
    if (stage == pp - 1)
        CHECK_MSG(worst_loss <= LOSS_TOLERANCE, "%s tp%d pp%d ep%d rank %d: losses differ by %.2e",
                  sc->name, tp, pp, ep, world_rank, worst_loss);

    /* gradients: partial ones summed over tp, tied copies summed over the embedding group,
     * everything but the routed experts (whose owner saw every rank's rows) summed over dp */
    float *grads = (float *)part.grads, *whole_grads = (float *)whole.grads;
    double worst = 0;
    const char *worst_name = "";
    int checked = 0;
    for (int i = 0; i < part.param_count; i++) {
        const param_tensor *p = &part.params[i];
        float *g = grads + p->offset;
        if (p->tp_partial) sum_floats(&tp_comm, g, p->count);
        if (!p->expert) sum_floats(&dp_comm, g, p->count);
        if (strcmp(p->name, "embed.tokens") == 0 && pp > 1 && c.model.tie_embeddings)
            sum_floats(&embedding_comm, g, p->count);
        const param_tensor *q = model_find_param(&whole, p->name);
        CHECK_MSG(q != NULL, "%s: shard tensor %s missing in the whole model", sc->name, p->name);
        if (!q) continue;
        float *expect = malloc(sizeof *expect * p->count);
        param_tensor_slice(p, whole_grads + q->offset, expect);
        double error = relative_error(g, expect, p->count);
        /* a key bias shifts every score of a softmax row equally: its gradient is zero in exact
         * arithmetic, and both sides hold only rounding noise, which must stay tiny */
        if (strstr(p->name, "attn.bk")) {
            double largest = 0;
            for (size_t j = 0; j < p->count; j++) largest = fmax(largest, fabs(g[j]));
            CHECK_MSG(largest < 1e-6, "%s: %s should vanish, has %.2e", sc->name, p->name, largest);
            error = 0;
        }
        if (error > worst) {
            worst = error;
            worst_name = p->name;
        }
        free(expect);
        checked++;
    }
    CHECK_MSG(worst <= GRADIENT_TOLERANCE, "%s tp%d pp%d ep%d rank %d: gradient of %s differs by %.2e",
              sc->name, tp, pp, ep, world_rank, worst_name, worst);
    CHECK_MSG(checked > 0, "%s: rank %d holds no tensors", sc->name, world_rank);

    /* every whole-model tensor is held by some rank, in full across the tp group: count the
     * experts of every ep rank, the rest once (data-parallel rank 0) */
    int64_t held = 0, total = 0;
    for (int i = 0; i < part.param_count; i++)
        if (part.params[i].counts_in_norm && (part.params[i].expert || dp_rank == 0))
            held += (int64_t)part.params[i].count;
    MPI_Allreduce(MPI_IN_PLACE, &held, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    total = (int64_t)whole.total_params;
    CHECK_MSG(held == total, "%s tp%d pp%d: shards count %lld parameters in the norm, model has %lld",
              sc->name, tp, pp, (long long)held, (long long)total);
    if (world_rank == 0)
        printf("  %-28s tp%d pp%d ep%d%s  loss error %.1e  gradient error %.1e (%s)\n", sc->name,
               tp, pp, ep, recompute ? " recompute" : "", worst_loss, worst, worst_name);

    model_destroy(&part);
    model_destroy(&whole);
    MPI_Comm_free(&tp_comm);
    MPI_Comm_free(&dp_comm);
    if (embedding_comm != MPI_COMM_NULL) MPI_Comm_free(&embedding_comm);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int tp = argc > 2 ? atoi(argv[1]) : 1, pp = argc > 2 ? atoi(argv[2]) : 1;
    int ep = argc > 3 ? atoi(argv[3]) : 1;
    int recompute = argc > 4 && strcmp(argv[4], "recompute") == 0;
    if (tp < 1 || pp < 1 || ep < 1 || tp * pp * ep != size) {
        if (rank == 0) fprintf(stderr, "test_model_shards: run with TP×PP×EP = %d ranks\n", size);
        MPI_Finalize();
        return 2;
    }
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_case(&cases[i], tp, pp, ep, recompute, rank);
    /* one verdict for the whole world */
    int failed = check_failed, passed = check_passed;
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &passed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("test_model_shards tp%d pp%d ep%d: %d passed, %d failed\n", tp, pp, ep, passed, failed);
    MPI_Finalize();
    return failed ? 1 : 0;
}
