/* The trainer's pipeline step (train/step_schedule.c) on a communicator that behaves like the
 * NCCL backend at its strictest: each rank's messages run one after the other in the order
 * started (NCCL: one stream), and a send finishes only once its receiver has started the
 * matching receive (MPI_Issend; NCCL's sends larger than its buffers). An exchange
 * (comm_send_recv) runs its send and receive together, as NCCL's group does. Progress happens
 * whenever the rank polls, as a stream's would in the background.
 *
 * Run under mpirun with one pipeline stage per rank and 6 micro-batches. Checked: the step
 * finishes (a deadlock ends in the comm timeout, exit 75); each stage started one exchange per
 * exchange of its plan (parallel/pipeline.h); its loss sum and gradients equal those of the same
 * step over the MPI communicator bit for bit; and the loss sum is the whole model's. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "parallel/comm.h"
#include "parallel/comm_mpi.h"
#include "parallel/pipeline.h"
#include "tests/parallel/mpi_check.h"
#include "tests/unit/model_configs.h"
#include "train/config.h"
#include "train/model.h"
#include "train/step_schedule.h"

enum { MICRO = 6, LAYERS = 4, TIMEOUT_S = 30 };

/* ---- the in-order communicator (point to point only: all the pipeline uses) ---- */

typedef struct queued_message {
    struct queued_message *next; /* the queue, oldest first */
    const void *send;
    void *recv;
    int send_count, recv_count, send_peer, recv_peer; /* a count of 0: no such side */
    MPI_Request requests[2];
    int request_count, started, done;
    int open_requests; /* comm_requests that have not seen it done yet */
} queued_message;

typedef struct in_order_backend {
    MPI_Comm comm;
    queued_message *head, *tail;
    int exchanges; /* send_recv calls */
} in_order_backend;

/* Starts the oldest unfinished message once the one before it has finished. */
static void progress(in_order_backend *b) {
    while (b->head) {
        queued_message *q = b->head;
        if (!q->started) {
            if (q->send_count)
                MPI_Issend(q->send, q->send_count, MPI_FLOAT, q->send_peer, 0, b->comm,
                           &q->requests[q->request_count++]);
            if (q->recv_count)
                MPI_Irecv(q->recv, q->recv_count, MPI_FLOAT, q->recv_peer, 0, b->comm,
                          &q->requests[q->request_count++]);
            q->started = 1;
        }
        int finished = 0;
        MPI_Testall(q->request_count, q->requests, &finished, MPI_STATUSES_IGNORE);
        if (!finished) return;
        q->done = 1;
        b->head = q->next;
        if (!b->head) b->tail = NULL;
    }
}

static int enqueue(comm *c, queued_message *q, comm_request *first, comm_request *second,
                   comm_dtype type, status *st) {
    in_order_backend *b = c->backend;
    if (type != COMM_FLOAT32) {
        free(q);
        return status_fail(st, "the in-order test comm carries fp32 only");
    }
    q->open_requests = second ? 2 : 1;
    if (b->tail)
        b->tail->next = q;
    else
        b->head = q;
    b->tail = q;
    first->scratch = q;
    first->active = 1;
    if (second) {
        second->scratch = q;
        second->active = 1;
    }
    progress(b);
    return 0;
}

static queued_message *message(const void *send, int send_count, int send_peer, void *recv,
                               int recv_count, int recv_peer) {
    queued_message *q = malloc(sizeof *q);
    if (!q) abort();
    *q = (queued_message){.send = send,
                          .recv = recv,
                          .send_count = send_count,
                          .recv_count = recv_count,
                          .send_peer = send_peer,
                          .recv_peer = recv_peer};
    return q;
}

static int in_order_send(comm *c, const void *buffer, size_t count, comm_dtype type, int peer,
                         comm_request *request, status *st) {
    return enqueue(c, message(buffer, (int)count, peer, NULL, 0, 0), request, NULL, type, st);
}

static int in_order_recv(comm *c, void *buffer, size_t count, comm_dtype type, int peer,
                         comm_request *request, status *st) {
    return enqueue(c, message(NULL, 0, 0, buffer, (int)count, peer), request, NULL, type, st);
}

static int in_order_send_recv(comm *c, const void *send, size_t send_count, int send_peer,
                              void *recv, size_t recv_count, int recv_peer, comm_dtype type,
                              comm_request *send_request, comm_request *recv_request, status *st) {
    ((in_order_backend *)c->backend)->exchanges++;
    return enqueue(c, message(send, (int)send_count, send_peer, recv, (int)recv_count, recv_peer),
                   send_request, recv_request, type, st);
}

static int in_order_test(comm_request *request, int *done, status *st) {
    (void)st;
    queued_message *q = request->scratch;
    progress(request->comm->backend);
    *done = q->done;
    if (!q->done) return 0;
    if (--q->open_requests == 0) free(q);
    request->scratch = NULL;
    request->active = 0;
    return 0;
}

static void in_order_abort(comm *c, int exit_code) {
    (void)c;
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    exit(exit_code);
}

static void in_order_destroy(comm *c) {
    in_order_backend *b = c->backend;
    MPI_Comm_free(&b->comm);
    free(b);
}

/* Collectives stay NULL: the pipeline step never calls them. */
static const comm_ops in_order_ops = {
    .name = "in-order (test)",
    .send = in_order_send,
    .recv = in_order_recv,
    .send_recv = in_order_send_recv,
    .test = in_order_test,
    .abort = in_order_abort,
    .destroy = in_order_destroy,
};

static void in_order_create(comm *c) {
    in_order_backend *b = calloc(1, sizeof *b);
    if (!b) abort();
    MPI_Comm_dup(MPI_COMM_WORLD, &b->comm);
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "pp");
    c->ops = &in_order_ops;
    c->backend = b;
    c->timeout_s = TIMEOUT_S;
    MPI_Comm_rank(b->comm, &c->rank);
    MPI_Comm_size(b->comm, &c->size);
}

/* ---- the step ---- */

typedef struct step_result {
    double loss_sum;
    float *grads;
    size_t count;
} step_result;

/* One step of this rank's stage over `pp`: its loss sum and a copy of its gradients. */
static step_result run_step(const config *c, comm *pp, const int32_t *tokens, const float *weights,
                            const uint8_t *mask) {
    int stage = pp->rank, stages = pp->size;
    model_shard shard = {.tp = {.size = 1},
                         .ep = {.size = 1},
                         .stage = stage,
                         .stages = stages,
                         .slots = pipeline_slots(stage, stages, MICRO)};
    model_stage_layers(c->model.layers, stage, stages, &shard.first_layer, &shard.layers);
    model part;
    step_schedule s;
    step_losses losses = {0};
    status st = {{0}};
    int rc = model_create_shard(&part, ops_cpu(), c, TINY_EOD, &shard, &st);
    CHECK_MSG(rc == 0, "stage %d: %s", stage, st.message);
    if (rc != 0) return (step_result){0};
    model_init_weights(&part, c->run.seed);
    model_zero_grads(&part);
    rc = step_schedule_init(&s, &part, pp, MICRO, &st);
    if (rc == 0) rc = step_schedule_run(&s, tokens, weights, mask, 1.0 / MICRO, &losses, &st);
    CHECK_MSG(rc == 0, "stage %d over %s: %s", stage, pp->ops->name, st.message);
    step_result r = {losses.loss_sum, malloc(part.total_params * sizeof(float)), part.total_params};
    memcpy(r.grads, part.grads, r.count * sizeof(float));
    step_schedule_release(&s);
    model_destroy(&part);
    return r;
}

int main(int argc, char **argv) {
    parallel_process p;
    mpi_test_init(&argc, &argv, &p, "test_step_schedule");
    config c;
    status st = {{0}};
    if (tiny_model_config(&c, LAYERS, TINY_BATCH * MICRO, edit_llama_swiglu, &st) != 0 ||
        p.size > LAYERS) {
        fprintf(stderr, "test_step_schedule: %s (at most %d ranks)\n", st.message, LAYERS);
        return 1;
    }
    enum { ROWS = TINY_BATCH * MICRO, T = TINY_SEQ };
    int32_t tokens[ROWS * (T + 1)];
    float weights[ROWS * T];
    uint8_t mask[ROWS * T];
    unsigned state = 12345;
    for (int i = 0; i < ROWS * (T + 1); i++) {
        state = state * 1103515245u + 12345u;
        tokens[i] = (int32_t)((state >> 16) % TINY_VOCAB);
    }
    tokens[7] = TINY_EOD; /* a document boundary */
    for (int i = 0; i < ROWS * T; i++) {
        mask[i] = i % 5 != 3; /* some targets not counted */
        weights[i] = mask[i] ? 1.0f / (ROWS * T) : 0.0f;
    }

    /* the whole model on one rank: the loss sum the last stage must report */
    model whole;
    CHECK_MSG(model_create(&whole, ops_cpu(), &c, TINY_EOD, &st) == 0, "%s", st.message);
    model_init_weights(&whole, c.run.seed);
    double expect = 0;
    for (int micro = 0; micro < MICRO; micro++) {
        size_t row = (size_t)micro * TINY_BATCH;
        model_forward(&whole, tokens + row * (T + 1), weights + row * T, 1.0 / MICRO);
        for (int i = 0; i < TINY_BATCH * T; i++)
            if (mask[row * T + i]) expect += whole.host_losses[i];
        model_backward(&whole);
    }
    model_destroy(&whole);

    comm mpi, in_order;
    MPI_Comm dup;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    if (comm_mpi_create(&mpi, dup, "pp", TIMEOUT_S, &st) != 0) {
        fprintf(stderr, "test_step_schedule: %s\n", st.message);
        return 1;
    }
    in_order_create(&in_order);
    step_result reference = run_step(&c, &mpi, tokens, weights, mask);
    step_result strict = run_step(&c, &in_order, tokens, weights, mask);

    pipeline_action plan[2 * MICRO];
    pipeline_schedule(p.rank, p.size, MICRO, plan);
    int planned = 0;
    for (int i = 0; i < 2 * MICRO; i++)
        planned += plan[i].exchange;
    int exchanges = ((in_order_backend *)in_order.backend)->exchanges;
    CHECK_MSG(exchanges == planned && (p.size == 1 || planned > 0),
              "stage %d of %d: %d exchanges started, the plan has %d", p.rank, p.size, exchanges,
              planned);
    CHECK_MSG(strict.loss_sum == reference.loss_sum,
              "stage %d: loss sum %.9g in order, %.9g over MPI", p.rank, strict.loss_sum,
              reference.loss_sum);
    CHECK_MSG(strict.count == reference.count && strict.grads && reference.grads &&
                  memcmp(strict.grads, reference.grads, strict.count * sizeof(float)) == 0,
              "stage %d: gradients differ between the in-order and the MPI communicator", p.rank);
    double nonzero = 0;
    for (size_t i = 0; i < strict.count; i++)
        nonzero += strict.grads[i] != 0;
    CHECK_MSG(nonzero > strict.count / 2, "stage %d: only %.0f of %zu gradients are non-zero",
              p.rank, nonzero, strict.count);
    if (p.rank == p.size - 1)
        CHECK_MSG(fabs(strict.loss_sum - expect) <= 1e-5 * fabs(expect),
                  "last stage: loss sum %.9g, the whole model's %.9g", strict.loss_sum, expect);
    printf("test_step_schedule: stage %d of %d: %d exchanges, loss sum %.6f\n", p.rank, p.size,
           exchanges, strict.loss_sum);
    free(reference.grads);
    free(strict.grads);
    comm_destroy(&in_order);
    comm_destroy(&mpi);
    return mpi_test_summary(&p, "test_step_schedule");
}
