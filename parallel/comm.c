/* The backend-independent half of the comm interface: argument checks, byte accounting, and the
 * bounded wait. */
#include "parallel/comm.h"

#include <assert.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

size_t comm_dtype_bytes(comm_dtype type) {
    switch (type) {
    case COMM_FLOAT32:
        return 4;
    case COMM_FLOAT64:
        return 8;
    case COMM_INT64:
        return 8;
    case COMM_BFLOAT16:
        return 2;
    }
    return 0;
}

int comm_float_dtype(size_t element_bytes, comm_dtype *type) {
    switch (element_bytes) {
    case 2:
        *type = COMM_BFLOAT16;
        return 0;
    case 4:
        *type = COMM_FLOAT32;
        return 0;
    case 8:
        *type = COMM_FLOAT64;
        return 0;
    }
    return -1;
}

const char *comm_operation_name(comm_operation operation) {
    static const char *const names[COMM_OPERATION_COUNT] = {
        "all_reduce", "reduce_scatter", "all_gather", "broadcast",
        "send",       "recv",           "all_to_all", "barrier"};
    return operation < COMM_OPERATION_COUNT ? names[operation] : "?";
}

double comm_bytes_moved(comm_operation operation, int size, double total_bytes, double own_bytes) {
    if (size <= 1) return 0;
    switch (operation) {
    case COMM_ALL_REDUCE:
        return 2.0 * (size - 1) / size * total_bytes;
    case COMM_REDUCE_SCATTER:
    case COMM_ALL_GATHER:
        return total_bytes - own_bytes;
    case COMM_BROADCAST:
    case COMM_SEND:
    case COMM_RECV:
    case COMM_ALL_TO_ALL:
        return total_bytes;
    case COMM_BARRIER:
    case COMM_OPERATION_COUNT:
        break;
    }
    return 0;
}

static void prepare(comm *c, comm_request *request, comm_operation operation) {
    memset(request, 0, sizeof *request);
    request->comm = c;
    request->operation = operation;
}

/* Counts an operation the backend started (rc 0). */
static int account(int rc, comm_request *request, double total_bytes, double own_bytes) {
    if (rc != 0) return rc;
    comm *c = request->comm;
    c->counters.calls[request->operation]++;
    c->counters.bytes[request->operation] +=
        comm_bytes_moved(request->operation, c->size, total_bytes, own_bytes);
    return 0;
}

static size_t sum_counts(const size_t *counts, int size) {
    size_t total = 0;
    for (int i = 0; i < size; i++)
        total += counts[i];
    return total;
}

static int check_peer(const comm *c, const char *operation, int peer, status *st) {
    if (peer < 0 || peer >= c->size)
        return status_fail(st, "comm %s: %s: rank %d is outside the communicator of %d ranks",
                           c->name, operation, peer, c->size);
    return 0;
}

int comm_all_reduce_start(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                          comm_reduction op, comm_request *request, status *st) {
    double bytes = (double)count * comm_dtype_bytes(type);
    prepare(c, request, COMM_ALL_REDUCE);
    return account(c->ops->all_reduce(c, send, recv, count, type, op, request, st), request, bytes,
                   bytes);
}

int comm_reduce_scatter_start(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                              comm_reduction op, comm_request *request, status *st) {
    double block = (double)count * comm_dtype_bytes(type);
    prepare(c, request, COMM_REDUCE_SCATTER);
    return account(c->ops->reduce_scatter(c, send, recv, count, NULL, type, op, request, st),
                   request, block * c->size, block);
}

int comm_reduce_scatter_v_start(comm *c, const void *send, void *recv, const size_t *counts,
                                comm_dtype type, comm_reduction op, comm_request *request,
                                status *st) {
    size_t element = comm_dtype_bytes(type), own = counts[c->rank];
    prepare(c, request, COMM_REDUCE_SCATTER);
    return account(c->ops->reduce_scatter(c, send, recv, own, counts, type, op, request, st),
                   request, (double)(sum_counts(counts, c->size) * element),
                   (double)(own * element));
}

int comm_all_gather_start(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                          comm_request *request, status *st) {
    double block = (double)count * comm_dtype_bytes(type);
    prepare(c, request, COMM_ALL_GATHER);
    return account(c->ops->all_gather(c, send, recv, count, NULL, type, request, st), request,
                   block * c->size, block);
}

int comm_all_gather_v_start(comm *c, const void *send, void *recv, const size_t *counts,
                            comm_dtype type, comm_request *request, status *st) {
    size_t element = comm_dtype_bytes(type), own = counts[c->rank];
    prepare(c, request, COMM_ALL_GATHER);
    return account(c->ops->all_gather(c, send, recv, own, counts, type, request, st), request,
                   (double)(sum_counts(counts, c->size) * element), (double)(own * element));
}

int comm_broadcast_start(comm *c, void *buffer, size_t count, comm_dtype type, int root,
                         comm_request *request, status *st) {
    if (check_peer(c, "broadcast root", root, st) != 0) return -1;
    prepare(c, request, COMM_BROADCAST);
    return account(c->ops->broadcast(c, buffer, count, type, root, request, st), request,
                   (double)count * comm_dtype_bytes(type), 0);
}

/* Point to point: a message to oneself moves nothing over a link. */
static double message_bytes(const comm *c, int peer, size_t count, comm_dtype type) {
    return peer == c->rank ? 0 : (double)count * comm_dtype_bytes(type);
}

int comm_send_start(comm *c, const void *buffer, size_t count, comm_dtype type, int peer,
                    comm_request *request, status *st) {
    if (check_peer(c, "send", peer, st) != 0) return -1;
    prepare(c, request, COMM_SEND);
    return account(c->ops->send(c, buffer, count, type, peer, request, st), request,
                   message_bytes(c, peer, count, type), 0);
}

int comm_recv_start(comm *c, void *buffer, size_t count, comm_dtype type, int peer,
                    comm_request *request, status *st) {
    if (check_peer(c, "recv", peer, st) != 0) return -1;
    prepare(c, request, COMM_RECV);
    return account(c->ops->recv(c, buffer, count, type, peer, request, st), request,
                   message_bytes(c, peer, count, type), 0);
}

int comm_send_recv_start(comm *c, const void *send, size_t send_count, int send_peer, void *recv,
                         size_t recv_count, int recv_peer, comm_dtype type,
                         comm_request *send_request, comm_request *recv_request, status *st) {
    prepare(c, send_request, COMM_SEND);
    prepare(c, recv_request, COMM_RECV);
    if (!c->ops->send_recv)
        return comm_send_start(c, send, send_count, type, send_peer, send_request, st) != 0
                   ? -1
                   : comm_recv_start(c, recv, recv_count, type, recv_peer, recv_request, st);
    if (check_peer(c, "send", send_peer, st) != 0 || check_peer(c, "recv", recv_peer, st) != 0)
        return -1;
    if (c->ops->send_recv(c, send, send_count, send_peer, recv, recv_count, recv_peer, type,
                          send_request, recv_request, st) != 0)
        return -1;
    account(0, send_request, message_bytes(c, send_peer, send_count, type), 0);
    return account(0, recv_request, message_bytes(c, recv_peer, recv_count, type), 0);
}

int comm_all_to_all_start(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                          comm_request *request, status *st) {
    prepare(c, request, COMM_ALL_TO_ALL);
    return account(
        c->ops->all_to_all(c, send, NULL, NULL, recv, NULL, NULL, count, type, request, st),
        request, (double)count * comm_dtype_bytes(type) * (c->size - 1), 0);
}

int comm_all_to_all_v_start(comm *c, const void *send, const size_t *send_counts,
                            const size_t *send_offsets, void *recv, const size_t *recv_counts,
                            const size_t *recv_offsets, comm_dtype type, comm_request *request,
                            status *st) {
    size_t sent = sum_counts(send_counts, c->size) - send_counts[c->rank];
    size_t received = sum_counts(recv_counts, c->size) - recv_counts[c->rank];
    prepare(c, request, COMM_ALL_TO_ALL);
    return account(c->ops->all_to_all(c, send, send_counts, send_offsets, recv, recv_counts,
                                      recv_offsets, 0, type, request, st),
                   request, (double)((sent > received ? sent : received) * comm_dtype_bytes(type)),
                   0);
}

int comm_barrier_start(comm *c, comm_request *request, status *st) {
    prepare(c, request, COMM_BARRIER);
    return account(c->ops->barrier(c, request, st), request, 0, 0);
}

/* ---- completion ---- */

double comm_clock_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Spin briefly (latency), then yield, then sleep up to 1 ms: ranks oversubscribed on few cores
 * (tests) must leave the CPU to the peer they wait for. */
void comm_back_off(unsigned polls) {
    if (polls < 64) return;
    if (polls < 1024) {
        sched_yield();
        return;
    }
    unsigned shift = polls < 1024 + 6 ? polls - 1024 : 6;
    struct timespec pause = {0, (long)(16000u << shift)};
    nanosleep(&pause, NULL);
}

int comm_test(comm_request *request, int *done, status *st) {
    *done = 1;
    if (!request->active) return 0;
    if (request->comm->ops->test(request, done, st) != 0)
        return status_prefix(st, "comm %s: %s", request->comm->name,
                             comm_operation_name(request->operation));
    return 0;
}

void comm_abort_timed_out(comm *c, const char *operation) {
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    fprintf(stderr,
            "cairn: %s on communicator %s (rank %d of %d, host %s, pid %d) did not complete "
            "within the %g s timeout (parallel.timeout_s): a peer died or hangs; aborting the "
            "job\n",
            operation, c->name, c->rank, c->size, host, (int)getpid(), c->timeout_s);
    fflush(stderr);
    c->ops->abort(c, COMM_TIMEOUT_EXIT_CODE);
    _exit(COMM_TIMEOUT_EXIT_CODE); /* abort does not return; this says so to the compiler too */
}

int comm_wait(comm_request *request, status *st) {
    if (!request->active) return 0;
    comm *c = request->comm;
    double start = comm_clock_seconds();
    for (unsigned polls = 0;; polls++) {
        int done = 0;
        if (comm_test(request, &done, st) != 0) return -1;
        if (done) return 0;
        if (comm_clock_seconds() - start > c->timeout_s)
            comm_abort_timed_out(c, comm_operation_name(request->operation));
        comm_back_off(polls);
    }
}

int comm_wait_all(comm_request *requests, int count, status *st) {
    for (int i = 0; i < count; i++)
        if (comm_wait(&requests[i], st) != 0) return -1;
    return 0;
}

/* ---- blocking forms ---- */

static int finish(int started, comm_request *request, status *st) {
    return started != 0 ? -1 : comm_wait(request, st);
}

int comm_all_reduce(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                    comm_reduction op, status *st) {
    comm_request r;
    return finish(comm_all_reduce_start(c, send, recv, count, type, op, &r, st), &r, st);
}

int comm_reduce_scatter(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                        comm_reduction op, status *st) {
    comm_request r;
    return finish(comm_reduce_scatter_start(c, send, recv, count, type, op, &r, st), &r, st);
}

int comm_all_gather(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                    status *st) {
    comm_request r;
    return finish(comm_all_gather_start(c, send, recv, count, type, &r, st), &r, st);
}

int comm_broadcast(comm *c, void *buffer, size_t count, comm_dtype type, int root, status *st) {
    comm_request r;
    return finish(comm_broadcast_start(c, buffer, count, type, root, &r, st), &r, st);
}

int comm_send(comm *c, const void *buffer, size_t count, comm_dtype type, int peer, status *st) {
    comm_request r;
    return finish(comm_send_start(c, buffer, count, type, peer, &r, st), &r, st);
}

int comm_recv(comm *c, void *buffer, size_t count, comm_dtype type, int peer, status *st) {
    comm_request r;
    return finish(comm_recv_start(c, buffer, count, type, peer, &r, st), &r, st);
}

int comm_send_recv(comm *c, const void *send, size_t send_count, int send_peer, void *recv,
                   size_t recv_count, int recv_peer, comm_dtype type, status *st) {
    comm_request requests[2];
    if (comm_send_recv_start(c, send, send_count, send_peer, recv, recv_count, recv_peer, type,
                             &requests[0], &requests[1], st) != 0)
        return -1;
    return comm_wait_all(requests, 2, st);
}

int comm_all_to_all(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                    status *st) {
    comm_request r;
    return finish(comm_all_to_all_start(c, send, recv, count, type, &r, st), &r, st);
}

int comm_all_to_all_v(comm *c, const void *send, const size_t *send_counts,
                      const size_t *send_offsets, void *recv, const size_t *recv_counts,
                      const size_t *recv_offsets, comm_dtype type, status *st) {
    comm_request r;
    return finish(comm_all_to_all_v_start(c, send, send_counts, send_offsets, recv, recv_counts,
                                          recv_offsets, type, &r, st),
                  &r, st);
}

int comm_barrier(comm *c, status *st) {
    comm_request r;
    return finish(comm_barrier_start(c, &r, st), &r, st);
}

/* ---- housekeeping ---- */

void comm_set_timeout(comm *c, double seconds) {
    assert(seconds > 0);
    c->timeout_s = seconds;
}

double comm_bytes_total(const comm *c) {
    double total = 0;
    for (int i = 0; i < COMM_OPERATION_COUNT; i++)
        total += c->counters.bytes[i];
    return total;
}

void comm_reset_counters(comm *c) { memset(&c->counters, 0, sizeof c->counters); }

void comm_destroy(comm *c) {
    if (c->ops) c->ops->destroy(c);
    memset(c, 0, sizeof *c);
}
