/* The NCCL comm backend (parallel/comm_nccl.h) under mpirun, one rank per GPU: every operation
 * of comm.h on device buffers against values computed here on the host, in fp32, fp64, int64
 * and bf16 (values chosen so that every sum is exact in the type), SUM and MAX, the in-place
 * forms, the v-forms with unequal and zero blocks, messages to oneself in both orders, 64
 * operations in flight at once, a ring of exchanges and 1F1B's message plan, ordering
 * after work queued on the legacy default stream, the byte counters against comm.h's table, and a
 * second communicator whose ranks are ordered backwards. Outputs start poisoned (0xFF bytes: NaN,
 * or -1 in int64), so an element never written fails, and gaps that must stay untouched are checked
 * to be poison still. Exit 0 all passed, 1 any failed, 77 no CUDA device. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"
#include "parallel/comm.h"
#include "parallel/comm_mpi.h"
#include "parallel/comm_nccl.h"
#include "parallel/pipeline.h"
#include "tests/parallel/mpi_check.h"

#define COUNT 1001 /* odd: no block size that happens to divide nicely */
#define BLOCK 37
#define IN_FLIGHT 64

static const comm_dtype all_types[] = {COMM_FLOAT32, COMM_FLOAT64, COMM_INT64, COMM_BFLOAT16};

static const char *type_name(comm_dtype type) {
    static const char *const names[] = {"fp32", "fp64", "int64", "bf16"};
    return names[type];
}

static void fail_hard(const char *what, cudaError_t e) {
    fprintf(stderr, "test_comm_nccl: %s: %s\n", what, cudaGetErrorString(e));
    MPI_Abort(MPI_COMM_WORLD, 1);
}

/* poisoned; at least one element of any type, so that an empty output can be checked too */
static void *device_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes < 8) bytes = 8;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) fail_hard("cudaMalloc", e);
    e = cudaMemset(p, 0xFF, bytes);
    if (e != cudaSuccess) fail_hard("cudaMemset", e);
    return p;
}

static void *host_alloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "test_comm_nccl: out of host memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return p;
}

static void *at(void *device, comm_dtype type, size_t element) {
    return (char *)device + element * comm_dtype_bytes(type);
}

/* values (exact in `type`) to `count` device elements */
static void to_device(void *device, comm_dtype type, const double *values, size_t count) {
    size_t element = comm_dtype_bytes(type);
    unsigned char *raw = host_alloc(count * element);
    for (size_t i = 0; i < count; i++) {
        if (type == COMM_FLOAT32) ((float *)raw)[i] = (float)values[i];
        if (type == COMM_FLOAT64) ((double *)raw)[i] = values[i];
        if (type == COMM_INT64) ((int64_t *)raw)[i] = (int64_t)values[i];
        if (type == COMM_BFLOAT16) ((uint16_t *)raw)[i] = float_to_bf16((float)values[i]);
    }
    cudaError_t e = cudaMemcpy(device, raw, count * element, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) fail_hard("cudaMemcpy to the device", e);
    free(raw);
}

static void from_device(double *values, comm_dtype type, const void *device, size_t count) {
    size_t element = comm_dtype_bytes(type);
    unsigned char *raw = host_alloc(count * element);
    cudaError_t e = cudaMemcpy(raw, device, count * element, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) fail_hard("cudaMemcpy to the host", e);
    for (size_t i = 0; i < count; i++) {
        if (type == COMM_FLOAT32) values[i] = ((float *)raw)[i];
        if (type == COMM_FLOAT64) values[i] = ((double *)raw)[i];
        if (type == COMM_INT64) values[i] = (double)((int64_t *)raw)[i];
        if (type == COMM_BFLOAT16) values[i] = bf16_to_float(((uint16_t *)raw)[i]);
    }
    free(raw);
}

/* what 0xFF bytes read as */
static double poison(comm_dtype type) { return type == COMM_INT64 ? -1.0 : NAN; }

static int same(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

/* Checks `count` device elements against `want`, reporting the first difference. */
static void expect_device(const char *what, comm_dtype type, const void *device, const double *want,
                          size_t count) {
    double *got = host_alloc(count * sizeof *got);
    from_device(got, type, device, count);
    size_t wrong = 0, first = 0;
    for (size_t i = 0; i < count; i++)
        if (!same(got[i], want[i]) && wrong++ == 0) first = i;
    CHECK_MSG(wrong == 0, "%s (%s): %zu of %zu elements differ, first [%zu]: %g, want %g", what,
              type_name(type), wrong, count, first, wrong ? got[first] : 0.0,
              wrong ? want[first] : 0.0);
    free(got);
}

/* Element i of rank r's input: integers small enough that every sum over ranks is exact (bf16
 * holds integers up to 256 exactly). */
static double value(comm_dtype type, comm_reduction op, int rank, size_t i) {
    if (op == COMM_MAX) return (double)((rank * 7 + (int)(i % 1000) * 3) % 23);
    if (type == COMM_BFLOAT16) return (double)(1 + ((size_t)rank + i) % 3);
    return rank * 4096.0 + (double)(i % 4096);
}

static double reduced(comm_dtype type, comm_reduction op, int size, size_t i) {
    double r = value(type, op, 0, i);
    for (int k = 1; k < size; k++) {
        double v = value(type, op, k, i);
        r = op == COMM_MAX ? fmax(r, v) : r + v;
    }
    return r;
}

static void check_rc(const char *what, int rc, const status *st) {
    CHECK_MSG(rc == 0, "%s: %s", what, st->message);
}

/* ---- collectives ---- */

static void test_all_reduce(comm *c) {
    double want[COUNT], mine[COUNT];
    for (size_t t = 0; t < sizeof all_types / sizeof all_types[0]; t++)
        for (int op = COMM_SUM; op <= COMM_MAX; op++)
            for (int in_place = 0; in_place < 2; in_place++) {
                comm_dtype type = all_types[t];
                for (size_t i = 0; i < COUNT; i++) {
                    mine[i] = value(type, op, c->rank, i);
                    want[i] = reduced(type, op, c->size, i);
                }
                void *send = device_alloc(COUNT * comm_dtype_bytes(type));
                void *recv = in_place ? send : device_alloc(COUNT * comm_dtype_bytes(type));
                to_device(send, type, mine, COUNT);
                status st = {{0}};
                check_rc("all_reduce", comm_all_reduce(c, send, recv, COUNT, type, op, &st), &st);
                expect_device(in_place ? "all_reduce in place" : "all_reduce", type, recv, want,
                              COUNT);
                if (!in_place) cudaFree(recv);
                cudaFree(send);
            }
}

/* The blocks of a (v-)operation: counts[i] elements each (NULL: `count`), one after another. */
typedef struct blocks {
    size_t count[64], offset[64], total;
} blocks;

static blocks blocks_of(const comm *c, const size_t *counts, size_t count) {
    blocks b;
    b.total = 0;
    for (int i = 0; i < c->size; i++) {
        b.count[i] = counts ? counts[i] : count;
        b.offset[i] = b.total;
        b.total += b.count[i];
    }
    return b;
}

static void test_reduce_scatter(comm *c, const size_t *counts, comm_dtype type, comm_reduction op,
                                int in_place) {
    blocks b = blocks_of(c, counts, BLOCK);
    size_t own = b.count[c->rank], offset = b.offset[c->rank];
    double *mine = host_alloc((b.total + 1) * sizeof *mine);
    double *want = host_alloc((own + 1) * sizeof *want);
    for (size_t i = 0; i < b.total; i++)
        mine[i] = value(type, op, c->rank, i);
    for (size_t k = 0; k < own; k++)
        want[k] = reduced(type, op, c->size, offset + k);
    void *send = device_alloc(b.total * comm_dtype_bytes(type));
    to_device(send, type, mine, b.total);
    void *recv = in_place ? at(send, type, offset) : device_alloc(own * comm_dtype_bytes(type));
    status st = {{0}};
    int rc;
    if (counts) {
        comm_request r;
        rc = comm_reduce_scatter_v_start(c, send, recv, counts, type, op, &r, &st);
        if (rc == 0) rc = comm_wait(&r, &st);
    } else {
        rc = comm_reduce_scatter(c, send, recv, BLOCK, type, op, &st);
    }
    char what[96];
    snprintf(what, sizeof what, "reduce_scatter%s%s %s", counts ? "_v" : "",
             in_place ? " in place" : "", op == COMM_MAX ? "max" : "sum");
    check_rc(what, rc, &st);
    expect_device(what, type, recv, want, own);
    if (!in_place && own == 0) {
        /* nothing to receive: the (one element) buffer stays untouched */
        double untouched = poison(type);
        expect_device("reduce_scatter_v with an empty own block", type, recv, &untouched, 1);
    }
    if (!in_place) cudaFree(recv);
    cudaFree(send);
    free(mine);
    free(want);
}

static void test_all_gather(comm *c, const size_t *counts, comm_dtype type, int in_place) {
    blocks b = blocks_of(c, counts, BLOCK);
    size_t own = b.count[c->rank], offset = b.offset[c->rank];
    double *want = host_alloc((b.total + 1) * sizeof *want);
    for (int r = 0; r < c->size; r++)
        for (size_t k = 0; k < b.count[r]; k++)
            want[b.offset[r] + k] = value(type, COMM_SUM, r, b.offset[r] + k);
    void *recv = device_alloc(b.total * comm_dtype_bytes(type));
    void *send = in_place ? at(recv, type, offset) : device_alloc(own * comm_dtype_bytes(type));
    to_device(send, type, want + offset, own);
    status st = {{0}};
    int rc;
    if (counts) {
        comm_request r;
        rc = comm_all_gather_v_start(c, send, recv, counts, type, &r, &st);
        if (rc == 0) rc = comm_wait(&r, &st);
    } else {
        rc = comm_all_gather(c, send, recv, BLOCK, type, &st);
    }
    char what[96];
    snprintf(what, sizeof what, "all_gather%s%s", counts ? "_v" : "", in_place ? " in place" : "");
    check_rc(what, rc, &st);
    expect_device(what, type, recv, want, b.total);
    if (!in_place) cudaFree(send);
    cudaFree(recv);
    free(want);
}

static void test_v_forms(comm *c) {
    /* unequal blocks with some empty ones; then every block empty but the others' (3 each) */
    size_t unequal[64], own_empty[64], all_empty[64];
    for (int i = 0; i < c->size; i++) {
        unequal[i] = i % 3 == 1 ? 0 : 5 + 2 * (size_t)i;
        own_empty[i] = i == 0 ? 0 : 3;
        all_empty[i] = 0;
    }
    const size_t *cases[] = {unequal, own_empty, all_empty};
    for (int k = 0; k < 3; k++)
        for (int in_place = 0; in_place < 2; in_place++) {
            test_reduce_scatter(c, cases[k], COMM_FLOAT32, COMM_SUM, in_place);
            test_reduce_scatter(c, cases[k], COMM_BFLOAT16, COMM_SUM, in_place);
            test_reduce_scatter(c, cases[k], COMM_FLOAT64, COMM_MAX, in_place);
            test_all_gather(c, cases[k], COMM_FLOAT32, in_place);
            test_all_gather(c, cases[k], COMM_INT64, in_place);
        }
}

static void test_equal_blocks(comm *c) {
    for (int in_place = 0; in_place < 2; in_place++) {
        test_reduce_scatter(c, NULL, COMM_FLOAT32, COMM_SUM, in_place);
        test_reduce_scatter(c, NULL, COMM_BFLOAT16, COMM_SUM, in_place);
        test_reduce_scatter(c, NULL, COMM_BFLOAT16, COMM_MAX, in_place);
        test_reduce_scatter(c, NULL, COMM_INT64, COMM_SUM, in_place);
        test_all_gather(c, NULL, COMM_FLOAT32, in_place);
        test_all_gather(c, NULL, COMM_BFLOAT16, in_place);
    }
}

static void test_broadcast(comm *c, int root, comm_dtype type) {
    double want[COUNT];
    for (size_t i = 0; i < COUNT; i++)
        want[i] = value(type, COMM_MAX, root, i);
    void *buffer = device_alloc(COUNT * comm_dtype_bytes(type));
    if (c->rank == root) to_device(buffer, type, want, COUNT);
    status st = {{0}};
    check_rc("broadcast", comm_broadcast(c, buffer, COUNT, type, root, &st), &st);
    expect_device("broadcast", type, buffer, want, COUNT);
    cudaFree(buffer);
}

/* ---- point to point ---- */

static double exchanged(int from, int to, size_t k) { return from * 1000.0 + to * 100.0 + k; }

/* Around a ring, every rank sending to its successor while it receives from its predecessor, as
 * one exchange per rank (a send started on its own would wait for the successor's receive, which
 * waits behind the successor's own send: a cycle). With one rank both sides are oneself. */
static void test_ring(comm *c) {
    int next = (c->rank + 1) % c->size, previous = (c->rank + c->size - 1) % c->size;
    double mine[COUNT], want[COUNT];
    for (size_t i = 0; i < COUNT; i++) {
        mine[i] = value(COMM_FLOAT32, COMM_SUM, c->rank, i);
        want[i] = value(COMM_FLOAT32, COMM_SUM, previous, i);
    }
    void *out = device_alloc(COUNT * 4), *in = device_alloc(COUNT * 4);
    to_device(out, COMM_FLOAT32, mine, COUNT);
    status st = {{0}};
    comm_request requests[2];
    int rc = comm_send_recv_start(c, out, COUNT, next, in, COUNT, previous, COMM_FLOAT32,
                                  &requests[0], &requests[1], &st);
    if (rc == 0) rc = comm_wait_all(requests, 2, &st);
    check_rc("send_recv around the ring", rc, &st);
    expect_device("recv from the previous rank", COMM_FLOAT32, in, want, COUNT);
    cudaFree(out);
    cudaFree(in);
}

/* The 1F1B message plan (parallel/pipeline.h) with every rank a stage, run the way
 * train/step_schedule.c runs it, in messages larger than NCCL's buffers (a send finishes only
 * once its receiver has started): the exchanges of the steady state keep it from deadlocking on
 * one communicator. Each message carries its sender, pass and micro-batch. */
enum { PLAN_MICRO = 5, PLAN_COUNT = 4 << 20 };

static double plan_payload(int stage, pipeline_pass pass, int micro, size_t i) {
    return stage * 1000.0 + pass * 100.0 + micro * 10.0 + (double)(i % 8);
}

static void test_pipeline_plan(comm *c) {
    if (c->size < 2) return;
    pipeline_action actions[2 * PLAN_MICRO];
    pipeline_schedule(c->rank, c->size, PLAN_MICRO, actions);
    size_t bytes = (size_t)PLAN_COUNT * 4;
    /* [pass][micro]: what this stage sends, and what it receives */
    void *out[2][PLAN_MICRO], *in[2][PLAN_MICRO];
    double *values = host_alloc(PLAN_COUNT * sizeof *values);
    for (int pass = 0; pass < 2; pass++)
        for (int micro = 0; micro < PLAN_MICRO; micro++) {
            out[pass][micro] = device_alloc(bytes);
            in[pass][micro] = device_alloc(bytes);
            for (size_t i = 0; i < PLAN_COUNT; i++)
                values[i] = plan_payload(c->rank, pass, micro, i);
            to_device(out[pass][micro], COMM_FLOAT32, values, PLAN_COUNT);
        }
    comm_request sends[2 * PLAN_MICRO] = {{0}};
    status st = {{0}};
    int rc = 0;
    for (int i = 0; i < 2 * PLAN_MICRO && rc == 0; i++) {
        const pipeline_action *a = &actions[i];
        if (a->receive_from >= 0)
            rc =
                comm_recv(c, in[a->pass][a->micro], PLAN_COUNT, COMM_FLOAT32, a->receive_from, &st);
        if (rc != 0 || a->send_to < 0) continue;
        if (!a->exchange) {
            rc = comm_send_start(c, out[a->pass][a->micro], PLAN_COUNT, COMM_FLOAT32, a->send_to,
                                 &sends[i], &st);
            continue;
        }
        comm_request receive;
        rc = comm_send_recv_start(c, out[a->pass][a->micro], PLAN_COUNT, a->send_to,
                                  in[a[1].pass][a[1].micro], PLAN_COUNT, a->send_to, COMM_FLOAT32,
                                  &sends[i], &receive, &st);
        if (rc == 0) rc = comm_wait(&receive, &st);
    }
    if (rc == 0) rc = comm_wait_all(sends, 2 * PLAN_MICRO, &st);
    check_rc("the 1F1B message plan", rc, &st);
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        int from = pass == PIPELINE_FORWARD ? c->rank - 1 : c->rank + 1;
        if (from < 0 || from >= c->size) continue;
        for (int micro = 0; micro < PLAN_MICRO; micro++) {
            for (size_t i = 0; i < PLAN_COUNT; i++)
                values[i] = plan_payload(from, pass, micro, i);
            expect_device(pass == PIPELINE_FORWARD ? "activations from the stage below"
                                                   : "gradients from the stage above",
                          COMM_FLOAT32, in[pass][micro], values, PLAN_COUNT);
        }
    }
    for (int pass = 0; pass < 2; pass++)
        for (int micro = 0; micro < PLAN_MICRO; micro++) {
            cudaFree(out[pass][micro]);
            cudaFree(in[pass][micro]);
        }
    free(values);
}

static void test_self_messages(comm *c) {
    double mine[COUNT];
    for (size_t i = 0; i < COUNT; i++)
        mine[i] = value(COMM_BFLOAT16, COMM_MAX, c->rank, i);
    void *out = device_alloc(COUNT * 2);
    to_device(out, COMM_BFLOAT16, mine, COUNT);
    for (int send_first = 0; send_first < 2; send_first++) {
        void *in = device_alloc(COUNT * 2);
        comm_request send, recv;
        status st = {{0}};
        int rc;
        if (send_first) {
            rc = comm_send_start(c, out, COUNT, COMM_BFLOAT16, c->rank, &send, &st);
            if (rc == 0) rc = comm_recv_start(c, in, COUNT, COMM_BFLOAT16, c->rank, &recv, &st);
        } else {
            rc = comm_recv_start(c, in, COUNT, COMM_BFLOAT16, c->rank, &recv, &st);
            if (rc == 0) rc = comm_send_start(c, out, COUNT, COMM_BFLOAT16, c->rank, &send, &st);
        }
        if (rc == 0) rc = comm_wait(&recv, &st);
        if (rc == 0) rc = comm_wait(&send, &st);
        check_rc(send_first ? "send then recv to oneself" : "recv then send to oneself", rc, &st);
        expect_device("message to oneself", COMM_BFLOAT16, in, mine, COUNT);
        cudaFree(in);
    }
    /* a receive too small for the message fails; a fitting one then takes it */
    void *in = device_alloc(COUNT * 2);
    comm_request send, recv;
    status st = {{0}};
    int rc = comm_send_start(c, out, COUNT, COMM_BFLOAT16, c->rank, &send, &st);
    check_rc("send to oneself", rc, &st);
    CHECK(comm_recv_start(c, in, COUNT - 1, COMM_BFLOAT16, c->rank, &recv, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "does not fit");
    rc = comm_recv_start(c, in, COUNT, COMM_BFLOAT16, c->rank, &recv, &st);
    if (rc == 0) rc = comm_wait(&send, &st);
    if (rc == 0) rc = comm_wait(&recv, &st);
    check_rc("a fitting receive after a failed one", rc, &st);
    expect_device("message to oneself after a failed receive", COMM_BFLOAT16, in, mine, COUNT);
    cudaFree(in);
    cudaFree(out);
}

/* ---- all-to-all ---- */

/* element k of the block rank `from` sends to rank `to` */

static void test_all_to_all(comm *c, comm_dtype type) {
    int n = c->size;
    double *mine = host_alloc((size_t)n * BLOCK * sizeof *mine);
    double *want = host_alloc((size_t)n * BLOCK * sizeof *want);
    for (int j = 0; j < n; j++)
        for (size_t k = 0; k < BLOCK; k++) {
            mine[j * BLOCK + k] = exchanged(c->rank, j, k);
            want[j * BLOCK + k] = exchanged(j, c->rank, k);
        }
    void *send = device_alloc((size_t)n * BLOCK * comm_dtype_bytes(type));
    void *recv = device_alloc((size_t)n * BLOCK * comm_dtype_bytes(type));
    to_device(send, type, mine, (size_t)n * BLOCK);
    status st = {{0}};
    check_rc("all_to_all", comm_all_to_all(c, send, recv, BLOCK, type, &st), &st);
    expect_device("all_to_all", type, recv, want, (size_t)n * BLOCK);
    cudaFree(send);
    cudaFree(recv);
    free(mine);
    free(want);
}

/* Unequal blocks, some empty, one element of gap after each block (it must stay untouched). */
static size_t to_all_count(int from, int to) { return (size_t)(from + 2 * to + 1) % 4; }

static void test_all_to_all_v(comm *c) {
    int n = c->size;
    size_t send_counts[64], send_offsets[64], recv_counts[64], recv_offsets[64];
    size_t sent = 0, received = 0;
    for (int j = 0; j < n; j++) {
        send_counts[j] = to_all_count(c->rank, j);
        recv_counts[j] = to_all_count(j, c->rank);
        send_offsets[j] = sent;
        recv_offsets[j] = received;
        sent += send_counts[j] + 1;
        received += recv_counts[j] + 1;
    }
    double *mine = host_alloc(sent * sizeof *mine), *want = host_alloc(received * sizeof *want);
    for (int j = 0; j < n; j++) {
        for (size_t k = 0; k <= send_counts[j]; k++)
            mine[send_offsets[j] + k] = k < send_counts[j] ? exchanged(c->rank, j, k) : -5;
        for (size_t k = 0; k <= recv_counts[j]; k++)
            want[recv_offsets[j] + k] = k < recv_counts[j] ? exchanged(j, c->rank, k) : NAN;
    }
    void *send = device_alloc(sent * 4), *recv = device_alloc(received * 4);
    to_device(send, COMM_FLOAT32, mine, sent);
    status st = {{0}};
    check_rc("all_to_all_v",
             comm_all_to_all_v(c, send, send_counts, send_offsets, recv, recv_counts, recv_offsets,
                               COMM_FLOAT32, &st),
             &st);
    expect_device("all_to_all_v (gaps untouched)", COMM_FLOAT32, recv, want, received);
    cudaFree(send);
    cudaFree(recv);
    free(mine);
    free(want);
}

/* ---- requests in flight, ordering, barrier ---- */

/* As data-parallel buckets do: many all-reduces started before any wait, twice (the second
 * round reuses the completion events of the first). */
static void test_many_in_flight(comm *c) {
    enum { N = 4097 };
    void *buffers[IN_FLIGHT];
    double *mine = host_alloc(N * sizeof *mine), *want = host_alloc(N * sizeof *want);
    for (int round = 0; round < 2; round++) {
        comm_request requests[IN_FLIGHT];
        status st = {{0}};
        int rc = 0;
        for (int b = 0; b < IN_FLIGHT; b++) {
            for (size_t i = 0; i < N; i++)
                mine[i] = value(COMM_FLOAT32, COMM_SUM, c->rank, i + b);
            buffers[b] = device_alloc(N * 4);
            to_device(buffers[b], COMM_FLOAT32, mine, N);
        }
        for (int b = 0; b < IN_FLIGHT && rc == 0; b++)
            rc = comm_all_reduce_start(c, buffers[b], buffers[b], N, COMM_FLOAT32, COMM_SUM,
                                       &requests[b], &st);
        if (rc == 0) rc = comm_wait_all(requests, IN_FLIGHT, &st);
        check_rc("64 all-reduces in flight", rc, &st);
        for (int b = 0; b < IN_FLIGHT; b++) {
            for (size_t i = 0; i < N; i++)
                want[i] = reduced(COMM_FLOAT32, COMM_SUM, c->size, i + b);
            expect_device("all-reduce among 64 in flight", COMM_FLOAT32, buffers[b], want, N);
            cudaFree(buffers[b]);
        }
    }
    free(mine);
    free(want);
}

/* Memsets queued on the legacy default stream right before an out-of-place all-reduce: the
 * communicator's stream must wait for the last of them (the earlier ones write poison). */
static void test_default_stream_order(comm *c) {
    enum { N = 8 << 20 };
    int64_t *send = device_alloc(N * sizeof *send), *recv = device_alloc(N * sizeof *recv);
    cudaError_t e = cudaSuccess;
    for (int i = 0; i < 16 && e == cudaSuccess; i++)
        e = cudaMemsetAsync(send, i == 15 ? 0x01 : 0xFF, N * sizeof *send, 0);
    if (e != cudaSuccess) fail_hard("cudaMemsetAsync", e);
    status st = {{0}};
    check_rc("all_reduce after memsets on stream 0",
             comm_all_reduce(c, send, recv, N, COMM_INT64, COMM_SUM, &st), &st);
    int64_t *got = host_alloc(N * sizeof *got);
    e = cudaMemcpy(got, recv, N * sizeof *got, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) fail_hard("cudaMemcpy to the host", e);
    int64_t want = (int64_t)0x0101010101010101 * c->size;
    size_t wrong = 0;
    for (size_t i = 0; i < N; i++)
        wrong += got[i] != want;
    CHECK_MSG(wrong == 0, "all_reduce read %zu of %d elements before the memsets finished", wrong,
              N);
    free(got);
    cudaFree(send);
    cudaFree(recv);
}

static void test_barrier(comm *c) {
    status st = {{0}};
    for (int i = 0; i < 3; i++)
        check_rc("barrier", comm_barrier(c, &st), &st);
}

/* ---- byte counters ---- */

static void test_bytes(comm *c, comm *host) {
    comm_reset_counters(c);
    double host_before = comm_bytes_total(host);
    int n = c->size;
    void *buffer = device_alloc((size_t)n * COUNT * 4),
         *other = device_alloc((size_t)n * COUNT * 4);
    status st = {{0}};
    int rc = comm_all_reduce(c, buffer, buffer, COUNT, COMM_FLOAT32, COMM_SUM, &st);
    if (rc == 0) rc = comm_reduce_scatter(c, buffer, other, COUNT, COMM_FLOAT32, COMM_SUM, &st);
    if (rc == 0) rc = comm_all_gather(c, other, buffer, COUNT, COMM_FLOAT32, &st);
    if (rc == 0) rc = comm_broadcast(c, buffer, COUNT, COMM_BFLOAT16, 0, &st);
    if (rc == 0) rc = comm_all_to_all(c, buffer, other, COUNT, COMM_FLOAT32, &st);
    if (rc == 0) rc = comm_barrier(c, &st);
    comm_request send, recv;
    if (rc == 0) rc = comm_send_start(c, buffer, COUNT, COMM_FLOAT32, c->rank, &send, &st);
    if (rc == 0) rc = comm_recv_start(c, other, COUNT, COMM_FLOAT32, c->rank, &recv, &st);
    if (rc == 0) rc = comm_wait(&send, &st);
    if (rc == 0) rc = comm_wait(&recv, &st);
    check_rc("the counted operations", rc, &st);
    /* comm.h's table, written out: S the whole buffer, b_r this rank's block */
    double S = COUNT * 4.0;
    double want[COMM_OPERATION_COUNT] = {0};
    if (n > 1) {
        want[COMM_ALL_REDUCE] = 2.0 * (n - 1) / n * S;
        want[COMM_REDUCE_SCATTER] = (n - 1) * S;
        want[COMM_ALL_GATHER] = (n - 1) * S;
        want[COMM_BROADCAST] = COUNT * 2.0;
        want[COMM_ALL_TO_ALL] = (n - 1) * S;
    }
    double total = 0;
    for (int op = 0; op < COMM_OPERATION_COUNT; op++) {
        CHECK_MSG(c->counters.calls[op] == 1, "%s: %llu calls counted, 1 made",
                  comm_operation_name(op), (unsigned long long)c->counters.calls[op]);
        CHECK_NEAR(c->counters.bytes[op], want[op], 1e-6);
        total += want[op];
    }
    CHECK_NEAR(comm_bytes_total(c), total, 1e-6);
    CHECK_NEAR(comm_bytes_total(host), host_before, 0);
    cudaFree(buffer);
    cudaFree(other);
}

/* ---- a communicator with its ranks backwards ---- */

static void test_reversed_order(int world_rank, int world_size) {
    MPI_Comm reversed;
    MPI_Comm_split(MPI_COMM_WORLD, 0, world_size - 1 - world_rank, &reversed);
    comm host, device;
    status st = {{0}};
    int rc = comm_mpi_create(&host, reversed, "tp", 60, &st);
    check_rc("comm_mpi_create (reversed)", rc, &st);
    if (rc != 0) return;
    rc = comm_nccl_create(&device, &host, &st);
    check_rc("comm_nccl_create (reversed)", rc, &st);
    if (rc == 0) {
        CHECK(device.rank == world_size - 1 - world_rank);
        CHECK(strcmp(device.name, "tp") == 0);
        double mine = world_rank, want[64];
        for (int i = 0; i < world_size; i++)
            want[i] = world_size - 1 - i;
        void *recv = device_alloc((size_t)world_size * 8), *send = device_alloc(8);
        to_device(send, COMM_INT64, &mine, 1);
        check_rc("all_gather (reversed)", comm_all_gather(&device, send, recv, 1, COMM_INT64, &st),
                 &st);
        expect_device("world ranks gathered in reversed order", COMM_INT64, recv, want,
                      (size_t)world_size);
        cudaFree(recv);
        cudaFree(send);
        comm_destroy(&device);
    }
    comm_destroy(&host);
}

int main(int argc, char **argv) {
    /* a row per line even into a pipe: a CUDA error aborts, and rows still in the buffer would
     * be lost with it */
    setvbuf(stdout, NULL, _IOLBF, 0);
    int devices = 0;
    cudaError_t e = cudaGetDeviceCount(&devices);
    if (e != cudaSuccess || devices == 0) {
        printf("test_comm_nccl: skipped: no CUDA device (%s)\n",
               e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount found none");
        return 77;
    }
    parallel_process p;
    mpi_test_init(&argc, &argv, &p, "test_comm_nccl");
    if (p.local_size > devices || p.size > 64) {
        fprintf(stderr,
                "test_comm_nccl: needs one rank per GPU and at most 64 ranks: %d ranks on this "
                "node, %d GPUs, %d ranks in all\n",
                p.local_size, devices, p.size);
        parallel_finalize(&p);
        return 1;
    }
    e = cudaSetDevice(p.local_rank % devices);
    if (e != cudaSuccess) fail_hard("cudaSetDevice", e);

    MPI_Comm world;
    MPI_Comm_dup(MPI_COMM_WORLD, &world);
    comm host, device;
    status st = {{0}};
    if (comm_mpi_create(&host, world, "dp", 60, &st) != 0 ||
        comm_nccl_create(&device, &host, &st) != 0) {
        fprintf(stderr, "test_comm_nccl: %s\n", st.message);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    printf("test_comm_nccl: rank %d of %d on GPU %d of %d\n", p.rank, p.size,
           p.local_rank % devices, devices);
    CHECK(strcmp(device.ops->name, "nccl") == 0);
    CHECK(strcmp(device.name, "dp") == 0);
    CHECK(device.rank == host.rank && device.size == host.size);
    CHECK(device.timeout_s == host.timeout_s);

    test_all_reduce(&device);
    test_equal_blocks(&device);
    test_v_forms(&device);
    for (int root = 0; root<device.size; root += device.size> 1 ? device.size - 1 : 1) {
        test_broadcast(&device, root, COMM_FLOAT32);
        test_broadcast(&device, root, COMM_BFLOAT16);
    }
    test_ring(&device);
    test_pipeline_plan(&device);
    test_self_messages(&device);
    test_all_to_all(&device, COMM_FLOAT32);
    test_all_to_all(&device, COMM_INT64);
    test_all_to_all_v(&device);
    test_many_in_flight(&device);
    test_default_stream_order(&device);
    test_barrier(&device);
    test_bytes(&device, &host);
    test_reversed_order(p.rank, p.size);

    comm_destroy(&device);
    comm_destroy(&host);
    return mpi_test_summary(&p, "test_comm_nccl");
}
