/* The NCCL backend of the comm interface (parallel/comm_nccl.h).
 *
 * The communicator is non-blocking (config.blocking = 0): any NCCL call may return
 * ncclInProgress while NCCL finishes it in the background, and NCCL's documentation of
 * ncclCommGetAsyncError forbids further NCCL calls and CUDA work on the communicator's streams
 * until its state is ncclSuccess again. Every enqueue therefore polls that state (bounded by the
 * timeout) before the completion event is recorded, which is what a request's `handle` holds.
 * Any NCCL failure other than ncclInProgress is fatal to the communicator (NCCL's error table:
 * the only recovery is ncclCommAbort): it is aborted, and later operations fail at once. */
#include "parallel/comm_nccl.h"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(ncclUniqueId) == 16 * sizeof(int64_t), "the NCCL id travels as 16 int64");
_Static_assert(sizeof(cudaEvent_t) <= sizeof(void *), "comm_request.handle holds a cudaEvent_t");

/* ncclCommAbort may wait for peers (NVIDIA/nccl issues 863, 992: ranks of a node synchronise
 * even while aborting); past this grace the process ends rather than hang. */
enum { ABORT_GRACE_S = 60 };

/* Completion events are reused: data-parallel buckets keep dozens of operations in flight. */
typedef struct pooled_event {
    cudaEvent_t event;
    int busy;
} pooled_event;

/* A message to oneself: whichever of send and receive starts second enqueues the copy. Both
 * requests point at it (`scratch`); the last one to complete frees it. */
typedef struct self_message {
    struct self_message *next;
    const void *source;
    void *destination;
    size_t send_bytes, receive_bytes;
    int sent, received; /* the sides started so far */
    int open_sides;     /* requests not completed yet */
    cudaEvent_t done;   /* recorded after the copy, once both sides started */
} self_message;

/* One NCCL communicator and one stream: every operation runs in the order started, so two ranks
 * that message each other at the same time exchange through one grouped send and receive
 * (nccl_send_recv; comm.h's contract). A second communicator for one direction would rely on two
 * communicators' kernels running at once, which NCCL does not promise (NVIDIA/nccl#1174, #783)
 * and CUDA_DEVICE_MAX_CONNECTIONS=1 prevents. */
typedef struct nccl_backend {
    ncclComm_t nccl;                 /* NULL once aborted */
    comm *host;                      /* aborts the job; outlives this communicator */
    cudaStream_t stream;             /* every operation's */
    cudaEvent_t default_stream_mark; /* orders the stream after the legacy default stream */
    pooled_event *events;
    int event_count;
    self_message *self_messages; /* oldest first */
    float *barrier_value;        /* one zero on the device: a barrier all-reduces it */
} nccl_backend;

static nccl_backend *backend_of(const comm *c) { return c->backend; }

static ncclDataType_t nccl_type(comm_dtype type) {
    switch (type) {
    case COMM_FLOAT32:
        return ncclFloat32;
    case COMM_FLOAT64:
        return ncclFloat64;
    case COMM_INT64:
        return ncclInt64;
    case COMM_BFLOAT16:
        return ncclBfloat16;
    }
    return ncclNumTypes;
}

static ncclRedOp_t nccl_reduction(comm_reduction op) { return op == COMM_MAX ? ncclMax : ncclSum; }

/* ---- failures ---- */

static int is_failure(ncclResult_t rc) { return rc != ncclSuccess && rc != ncclInProgress; }

/* NCCL's words for a failure: the result and, when NCCL kept one, its last message (one line). */
static const char *nccl_text(ncclResult_t rc, ncclComm_t nccl, char *text, size_t size) {
    const char *last = ncclGetLastError(nccl);
    int detail = last && *last;
    snprintf(text, size, "%s%s%s%s", ncclGetErrorString(rc), detail ? " (" : "", detail ? last : "",
             detail ? ")" : "");
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return text;
}

static void *end_process_after_grace(void *exit_code) {
    struct timespec grace = {ABORT_GRACE_S, 0};
    while (nanosleep(&grace, &grace) != 0)
        continue;
    fprintf(stderr, "cairn: ncclCommAbort did not return within %d s; exiting\n", ABORT_GRACE_S);
    _exit((int)(intptr_t)exit_code);
}

/* Aborts the NCCL communicator (its kernels quit), guarded against an abort that never returns. */
static void abort_communicator(nccl_backend *b, int exit_code) {
    if (!b->nccl) return;
    pthread_t guard;
    int guarded =
        pthread_create(&guard, NULL, end_process_after_grace, (void *)(intptr_t)exit_code) == 0;
    ncclCommAbort(b->nccl);
    b->nccl = NULL;
    if (guarded) {
        pthread_cancel(guard);
        pthread_join(guard, NULL);
    }
}

/* A failed NCCL call: aborts the communicator; the message names it when `named`. */
static int nccl_failed(comm *c, int named, const char *call, ncclResult_t rc, status *st) {
    nccl_backend *b = backend_of(c);
    char text[512];
    nccl_text(rc, b->nccl, text, sizeof text);
    abort_communicator(b, COMM_TIMEOUT_EXIT_CODE);
    return status_fail(st, "%s%s%s%s: %s", named ? "comm " : "", named ? c->name : "",
                       named ? ": " : "", call, text);
}

static int cuda_failed(const comm *c, const char *call, cudaError_t e, status *st) {
    return status_fail(st, "comm %s: %s: %s", c->name, call, cudaGetErrorString(e));
}

static int check_alive(const comm *c, status *st) {
    if (backend_of(c)->nccl) return 0;
    return status_fail(st, "comm %s: the NCCL communicator was aborted after an earlier failure",
                       c->name);
}

/* One NCCL communicator's state: ncclSuccess, ncclInProgress, or the error it met. */
static ncclResult_t nccl_state(ncclComm_t nccl) {
    ncclResult_t state = ncclSuccess;
    ncclResult_t rc = ncclCommGetAsyncError(nccl, &state);
    return rc != ncclSuccess ? rc : state;
}

/* 1 when the stream has drained, 0 while it has work, -1 (and st) on a CUDA error. */
static int stream_idle(comm *c, status *st) {
    cudaError_t e = cudaStreamQuery(backend_of(c)->stream);
    if (e == cudaErrorNotReady) return 0;
    return e == cudaSuccess ? 1 : cuda_failed(c, "cudaStreamQuery", e, st);
}

/* What a wait past the timeout does: return -1 (the communicator aborted: creation and teardown,
 * whose callers report it), or abort the job as comm_wait does (an operation's start: its peers
 * are already waiting in it). */
typedef enum { TIMEOUT_RETURNS, TIMEOUT_ABORTS_JOB } timeout_action;

/* Waits until NCCL's background work (`what`) has settled and, with `with_stream`, the stream
 * has drained. */
static int settle(comm *c, const char *what, int with_stream, timeout_action on_timeout,
                  status *st) {
    nccl_backend *b = backend_of(c);
    double start = comm_clock_seconds();
    for (unsigned polls = 0;; polls++) {
        ncclResult_t state = nccl_state(b->nccl);
        if (is_failure(state)) return nccl_failed(c, 1, what, state, st);
        if (state == ncclSuccess) {
            if (!with_stream) return 0;
            int idle = stream_idle(c, st);
            if (idle != 0) return idle > 0 ? 0 : -1;
        }
        if (comm_clock_seconds() - start > c->timeout_s) {
            if (on_timeout == TIMEOUT_ABORTS_JOB) comm_abort_timed_out(c, what);
            abort_communicator(b, COMM_TIMEOUT_EXIT_CODE);
            return status_fail(st,
                               "comm %s: %s did not finish within %g s (a peer rank may have died)",
                               c->name, what, c->timeout_s);
        }
        comm_back_off(polls);
    }
}

/* ---- events ---- */

static int acquire_event(comm *c, cudaEvent_t *event, status *st) {
    nccl_backend *b = backend_of(c);
    for (int i = 0; i < b->event_count; i++)
        if (!b->events[i].busy) {
            b->events[i].busy = 1;
            *event = b->events[i].event;
            return 0;
        }
    pooled_event *grown = realloc(b->events, (size_t)(b->event_count + 1) * sizeof *grown);
    if (!grown) return status_fail(st, "comm %s: out of memory for events", c->name);
    b->events = grown;
    cudaError_t e = cudaEventCreateWithFlags(event, cudaEventDisableTiming);
    if (e != cudaSuccess) return cuda_failed(c, "cudaEventCreateWithFlags", e, st);
    b->events[b->event_count++] = (pooled_event){*event, 1};
    return 0;
}

static void release_event(nccl_backend *b, cudaEvent_t event) {
    for (int i = 0; i < b->event_count; i++)
        if (b->events[i].event == event) b->events[i].busy = 0;
}

/* Records a completion event on `stream`; the request holds it. */
static int record_completion(comm *c, cudaStream_t stream, cudaEvent_t *event, status *st) {
    if (acquire_event(c, event, st) != 0) return -1;
    cudaError_t e = cudaEventRecord(*event, stream);
    if (e == cudaSuccess) return 0;
    release_event(backend_of(c), *event);
    return cuda_failed(c, "cudaEventRecord", e, st);
}

/* ---- enqueueing ---- */

/* Orders the stream after the work queued so far on the legacy default stream (cairn's kernels
 * run there; the stream is non-blocking, so nothing else orders the two). */
static int begin(comm *c, status *st) {
    if (check_alive(c, st) != 0) return -1;
    nccl_backend *b = backend_of(c);
    cudaError_t e = cudaEventRecord(b->default_stream_mark, cudaStreamLegacy);
    if (e != cudaSuccess) return cuda_failed(c, "cudaEventRecord", e, st);
    e = cudaStreamWaitEvent(b->stream, b->default_stream_mark, 0);
    return e == cudaSuccess ? 0 : cuda_failed(c, "cudaStreamWaitEvent", e, st);
}

/* The request completes with the work queued on the stream so far. */
static int hold_completion(comm *c, comm_request *request, status *st) {
    cudaEvent_t event;
    if (record_completion(c, backend_of(c)->stream, &event, st) != 0) return -1;
    request->handle = (void *)event;
    request->active = 1;
    return 0;
}

/* Completes a start once NCCL returned `rc` for `call`. */
static int enqueued(comm *c, const char *call, ncclResult_t rc, comm_request *request, status *st) {
    if (is_failure(rc)) return nccl_failed(c, 1, call, rc, st);
    if (rc == ncclInProgress && settle(c, call, 0, TIMEOUT_ABORTS_JOB, st) != 0) return -1;
    return hold_completion(c, request, st);
}

/* Two results as one: the first failure, else ncclInProgress if either is, else ncclSuccess.
 * (Calls inside a group report the communicator's state, which may be ncclInProgress.) */
static ncclResult_t combine(ncclResult_t a, ncclResult_t b) {
    if (is_failure(a)) return a;
    if (is_failure(b)) return b;
    return a == ncclInProgress || b == ncclInProgress ? ncclInProgress : ncclSuccess;
}

/* Ends a group whose calls so far combine to `calls`; the group ends even after a failure. */
static ncclResult_t end_group(ncclResult_t calls) { return combine(calls, ncclGroupEnd()); }

static int device_copy(comm *c, void *destination, const void *source, size_t bytes, status *st) {
    if (!bytes) return 0;
    cudaError_t e = cudaMemcpyAsync(destination, source, bytes, cudaMemcpyDeviceToDevice,
                                    backend_of(c)->stream);
    return e == cudaSuccess ? 0 : cuda_failed(c, "cudaMemcpyAsync", e, st);
}

/* ---- messages to oneself ---- */

static int self_message_start(comm *c, int sending, const void *source, void *destination,
                              size_t bytes, comm_request *request, status *st) {
    nccl_backend *b = backend_of(c);
    self_message **link = &b->self_messages;
    for (; *link; link = &(*link)->next)
        if (sending ? (*link)->received && !(*link)->sent : (*link)->sent && !(*link)->received)
            break;
    self_message *m = *link;
    if (!m) {
        if (check_alive(c, st) != 0) return -1;
        m = calloc(1, sizeof *m);
        if (!m) return status_fail(st, "comm %s: out of memory", c->name);
        m->open_sides = 2;
        *link = m;
    } else {
        size_t sent = sending ? bytes : m->send_bytes;
        size_t room = sending ? m->receive_bytes : bytes;
        if (sent > room)
            return status_fail(st,
                               "comm %s: a message of %zu bytes to itself does not fit the "
                               "receive of %zu bytes",
                               c->name, sent, room);
        if (begin(c, st) != 0 ||
            device_copy(c, sending ? m->destination : destination, sending ? source : m->source,
                        sent, st) != 0 ||
            record_completion(c, backend_of(c)->stream, &m->done, st) != 0)
            return -1;
    }
    if (sending) {
        m->source = source;
        m->send_bytes = bytes;
        m->sent = 1;
    } else {
        m->destination = destination;
        m->receive_bytes = bytes;
        m->received = 1;
    }
    request->scratch = m;
    request->active = 1;
    return 0;
}

static void self_message_close(nccl_backend *b, self_message *m) {
    if (--m->open_sides > 0) return;
    for (self_message **link = &b->self_messages; *link; link = &(*link)->next)
        if (*link == m) {
            *link = m->next;
            break;
        }
    release_event(b, m->done);
    free(m);
}

/* ---- operations ---- */

static int nccl_all_reduce(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                           comm_reduction op, comm_request *request, status *st) {
    if (begin(c, st) != 0) return -1;
    nccl_backend *b = backend_of(c);
    ncclResult_t rc =
        ncclAllReduce(send, recv, count, nccl_type(type), nccl_reduction(op), b->nccl, b->stream);
    return enqueued(c, "ncclAllReduce", rc, request, st);
}

/* NCCL's in-place rule (recv == send + rank · count) is comm.h's. With counts, block i is
 * reduced onto rank i (NCCL ignores recvbuff on the other ranks); blocks of 0 are skipped on
 * every rank alike, since every rank holds the same counts. */
static int nccl_reduce_scatter(comm *c, const void *send, void *recv, size_t count,
                               const size_t *counts, comm_dtype type, comm_reduction op,
                               comm_request *request, status *st) {
    if (begin(c, st) != 0) return -1;
    nccl_backend *b = backend_of(c);
    ncclDataType_t t = nccl_type(type);
    if (!counts)
        return enqueued(
            c, "ncclReduceScatter",
            ncclReduceScatter(send, recv, count, t, nccl_reduction(op), b->nccl, b->stream),
            request, st);
    size_t element = comm_dtype_bytes(type), offset = 0;
    ncclResult_t rc = ncclGroupStart();
    for (int i = 0; i < c->size && !is_failure(rc); offset += counts[i++])
        if (counts[i])
            rc = combine(rc, ncclReduce((const char *)send + offset * element, recv, counts[i], t,
                                        nccl_reduction(op), i, b->nccl, b->stream));
    return enqueued(c, "ncclReduce (group)", end_group(rc), request, st);
}

/* In place (send == recv + rank's block) is NCCL's rule too; with counts every block is
 * broadcast from its owner. */
static int nccl_all_gather(comm *c, const void *send, void *recv, size_t count,
                           const size_t *counts, comm_dtype type, comm_request *request,
                           status *st) {
    if (begin(c, st) != 0) return -1;
    nccl_backend *b = backend_of(c);
    ncclDataType_t t = nccl_type(type);
    if (!counts)
        return enqueued(c, "ncclAllGather", ncclAllGather(send, recv, count, t, b->nccl, b->stream),
                        request, st);
    size_t element = comm_dtype_bytes(type), offset = 0;
    ncclResult_t rc = ncclGroupStart();
    for (int i = 0; i < c->size && !is_failure(rc); offset += counts[i++]) {
        char *block = (char *)recv + offset * element;
        if (counts[i])
            rc = combine(rc, ncclBroadcast(i == c->rank ? send : block, block, counts[i], t, i,
                                           b->nccl, b->stream));
    }
    return enqueued(c, "ncclBroadcast (group)", end_group(rc), request, st);
}

static int nccl_broadcast(comm *c, void *buffer, size_t count, comm_dtype type, int root,
                          comm_request *request, status *st) {
    if (begin(c, st) != 0) return -1;
    nccl_backend *b = backend_of(c);
    ncclResult_t rc =
        ncclBroadcast(buffer, buffer, count, nccl_type(type), root, b->nccl, b->stream);
    return enqueued(c, "ncclBroadcast", rc, request, st);
}

/* One side of a message: `source` when sending, `destination` when receiving. */
static int point_to_point(comm *c, int sending, const void *source, void *destination, size_t count,
                          comm_dtype type, int peer, comm_request *request, status *st) {
    if (peer == c->rank)
        return self_message_start(c, sending, source, destination, count * comm_dtype_bytes(type),
                                  request, st);
    if (begin(c, st) != 0) return -1;
    nccl_backend *b = backend_of(c);
    ncclDataType_t t = nccl_type(type);
    ncclResult_t rc = sending ? ncclSend(source, count, t, peer, b->nccl, b->stream)
                              : ncclRecv(destination, count, t, peer, b->nccl, b->stream);
    return enqueued(c, sending ? "ncclSend" : "ncclRecv", rc, request, st);
}

static int nccl_send(comm *c, const void *buffer, size_t count, comm_dtype type, int peer,
                     comm_request *request, status *st) {
    return point_to_point(c, 1, buffer, NULL, count, type, peer, request, st);
}

static int nccl_recv(comm *c, void *buffer, size_t count, comm_dtype type, int peer,
                     comm_request *request, status *st) {
    return point_to_point(c, 0, NULL, buffer, count, type, peer, request, st);
}

/* One group, so the send and the receive progress together (comm.h's contract); both requests
 * complete with it. A side with oneself is a device copy and needs no group. */
static int nccl_send_recv(comm *c, const void *send, size_t send_count, int send_peer, void *recv,
                          size_t recv_count, int recv_peer, comm_dtype type,
                          comm_request *send_request, comm_request *recv_request, status *st) {
    if (send_peer == c->rank || recv_peer == c->rank)
        return nccl_send(c, send, send_count, type, send_peer, send_request, st) != 0
                   ? -1
                   : nccl_recv(c, recv, recv_count, type, recv_peer, recv_request, st);
    if (begin(c, st) != 0) return -1;
    nccl_backend *b = backend_of(c);
    ncclDataType_t t = nccl_type(type);
    ncclResult_t rc = ncclGroupStart();
    if (!is_failure(rc))
        rc = combine(rc, ncclSend(send, send_count, t, send_peer, b->nccl, b->stream));
    if (!is_failure(rc))
        rc = combine(rc, ncclRecv(recv, recv_count, t, recv_peer, b->nccl, b->stream));
    if (enqueued(c, "ncclSend/ncclRecv (group)", end_group(rc), send_request, st) != 0) return -1;
    return hold_completion(c, recv_request, st);
}

/* Block i of an all-to-all: counts[i] elements at offsets[i] (NULL counts: `count` each; NULL
 * offsets: the blocks follow each other). */
static void block_at(const size_t *counts, const size_t *offsets, size_t count, int i,
                     size_t *block_count, size_t *block_offset) {
    *block_count = counts ? counts[i] : count;
    if (offsets) {
        *block_offset = offsets[i];
        return;
    }
    size_t offset = 0;
    for (int j = 0; j < i; j++)
        offset += counts ? counts[j] : count;
    *block_offset = offset;
}

/* A send and a receive per peer in one group (NCCL has no all-to-all-v of its own); the own
 * block is a device copy queued before the group. */
static int nccl_all_to_all(comm *c, const void *send, const size_t *send_counts,
                           const size_t *send_offsets, void *recv, const size_t *recv_counts,
                           const size_t *recv_offsets, size_t count, comm_dtype type,
                           comm_request *request, status *st) {
    size_t element = comm_dtype_bytes(type), sent, sent_at, received, received_at;
    block_at(send_counts, send_offsets, count, c->rank, &sent, &sent_at);
    block_at(recv_counts, recv_offsets, count, c->rank, &received, &received_at);
    if (sent != received)
        return status_fail(st,
                           "comm %s: all_to_all: rank %d sends itself %zu elements but expects "
                           "%zu",
                           c->name, c->rank, sent, received);
    if (begin(c, st) != 0 ||
        device_copy(c, (char *)recv + received_at * element, (const char *)send + sent_at * element,
                    sent * element, st) != 0)
        return -1;
    nccl_backend *b = backend_of(c);
    ncclDataType_t t = nccl_type(type);
    ncclResult_t rc = ncclGroupStart();
    for (int peer = 0; peer < c->size && !is_failure(rc); peer++) {
        if (peer == c->rank) continue;
        block_at(send_counts, send_offsets, count, peer, &sent, &sent_at);
        block_at(recv_counts, recv_offsets, count, peer, &received, &received_at);
        if (sent)
            rc = combine(rc, ncclSend((const char *)send + sent_at * element, sent, t, peer,
                                      b->nccl, b->stream));
        if (received && !is_failure(rc))
            rc = combine(rc, ncclRecv((char *)recv + received_at * element, received, t, peer,
                                      b->nccl, b->stream));
    }
    return enqueued(c, "ncclSend/ncclRecv (group)", end_group(rc), request, st);
}

static int nccl_barrier(comm *c, comm_request *request, status *st) {
    if (begin(c, st) != 0) return -1;
    nccl_backend *b = backend_of(c);
    ncclResult_t rc = ncclAllReduce(b->barrier_value, b->barrier_value, 1, ncclFloat32, ncclSum,
                                    b->nccl, b->stream);
    return enqueued(c, "ncclAllReduce (barrier)", rc, request, st);
}

/* comm_test names the communicator and the operation in front of these messages. */
static int nccl_test(comm_request *request, int *done, status *st) {
    comm *c = request->comm;
    nccl_backend *b = backend_of(c);
    self_message *m = request->scratch;
    *done = 0;
    if (!b->nccl) return status_fail(st, "the NCCL communicator was aborted after a failure");
    if (m && !(m->sent && m->received)) return 0;
    cudaEvent_t event = m ? m->done : (cudaEvent_t)request->handle;
    cudaError_t e = cudaEventQuery(event);
    if (e == cudaErrorNotReady) {
        ncclResult_t state = nccl_state(b->nccl);
        if (state == ncclSuccess || state == ncclInProgress) return 0;
        return nccl_failed(c, 0, "asynchronous NCCL error", state, st);
    }
    if (e != cudaSuccess) return status_fail(st, "cudaEventQuery: %s", cudaGetErrorString(e));
    if (m)
        self_message_close(b, m);
    else
        release_event(b, event);
    request->scratch = NULL;
    request->handle = NULL;
    request->active = 0;
    *done = 1;
    return 0;
}

static void nccl_abort(comm *c, int exit_code) {
    nccl_backend *b = backend_of(c);
    if (b) {
        abort_communicator(b, exit_code);
        if (b->host && b->host->ops) b->host->ops->abort(b->host, exit_code);
    }
    _exit(exit_code);
}

/* Frees what the backend holds besides the NCCL communicator. */
static void release_backend(nccl_backend *b) {
    while (b->self_messages) {
        self_message *next = b->self_messages->next;
        free(b->self_messages);
        b->self_messages = next;
    }
    for (int i = 0; i < b->event_count; i++)
        cudaEventDestroy(b->events[i].event);
    free(b->events);
    if (b->default_stream_mark) cudaEventDestroy(b->default_stream_mark);
    if (b->stream) cudaStreamDestroy(b->stream);
    if (b->barrier_value) cudaFree(b->barrier_value);
    free(b);
}

/* NCCL's documented order for a non-blocking communicator: ncclCommFinalize, poll until the
 * state is ncclSuccess, then ncclCommDestroy (a purely local call by then). Anything failing
 * on the way (or a communicator already broken) ends with ncclCommAbort instead. */
static void nccl_destroy(comm *c) {
    nccl_backend *b = backend_of(c);
    if (!b) return;
    status ignored;
    if (b->nccl && settle(c, "draining the streams", 1, TIMEOUT_RETURNS, &ignored) == 0) {
        ncclResult_t rc = ncclCommFinalize(b->nccl);
        if (!is_failure(rc) && settle(c, "ncclCommFinalize", 0, TIMEOUT_RETURNS, &ignored) == 0) {
            ncclCommDestroy(b->nccl);
            b->nccl = NULL;
        }
    }
    abort_communicator(b, COMM_TIMEOUT_EXIT_CODE);
    release_backend(b);
    c->backend = NULL;
}

static const comm_ops nccl_ops = {
    .name = "nccl",
    .all_reduce = nccl_all_reduce,
    .reduce_scatter = nccl_reduce_scatter,
    .all_gather = nccl_all_gather,
    .broadcast = nccl_broadcast,
    .send = nccl_send,
    .recv = nccl_recv,
    .send_recv = nccl_send_recv,
    .all_to_all = nccl_all_to_all,
    .barrier = nccl_barrier,
    .test = nccl_test,
    .abort = nccl_abort,
    .destroy = nccl_destroy,
};

/* The stream, the events and the barrier's value, before NCCL (a rank failing here leaves its
 * peers waiting in initialisation, bounded by the timeout). */
static int create_cuda_resources(comm *c, nccl_backend *b, status *st) {
    cudaError_t e = cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) return cuda_failed(c, "cudaStreamCreateWithFlags", e, st);
    e = cudaEventCreateWithFlags(&b->default_stream_mark, cudaEventDisableTiming);
    if (e != cudaSuccess) return cuda_failed(c, "cudaEventCreateWithFlags", e, st);
    e = cudaMalloc((void **)&b->barrier_value, sizeof *b->barrier_value);
    if (e != cudaSuccess) return cuda_failed(c, "cudaMalloc", e, st);
    e = cudaMemset(b->barrier_value, 0, sizeof *b->barrier_value);
    return e == cudaSuccess ? 0 : cuda_failed(c, "cudaMemset", e, st);
}

int comm_nccl_create(comm *c, comm *host, status *st) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", host->name);
    c->rank = host->rank;
    c->size = host->size;
    c->timeout_s = host->timeout_s;
    /* rank 0's ncclGetUniqueId result, then the id: every rank learns of a failure at once
     * (without it the others would wait in the broadcast until the timeout) */
    int64_t bootstrap[1 + sizeof(ncclUniqueId) / sizeof(int64_t)];
    ncclUniqueId id;
    memset(bootstrap, 0, sizeof bootstrap);
    if (host->rank == 0) {
        memset(&id, 0, sizeof id);
        bootstrap[0] = ncclGetUniqueId(&id);
        memcpy(&bootstrap[1], &id, sizeof id);
    }
    if (comm_broadcast(host, bootstrap, sizeof bootstrap / sizeof *bootstrap, COMM_INT64, 0, st) !=
        0)
        return status_prefix(st, "comm %s: broadcasting the NCCL id", c->name);
    if (bootstrap[0] != ncclSuccess) {
        char text[512];
        return status_fail(st, "comm %s: ncclGetUniqueId on rank 0: %s", c->name,
                           nccl_text((ncclResult_t)bootstrap[0], NULL, text, sizeof text));
    }
    memcpy(&id, &bootstrap[1], sizeof id);
    nccl_backend *b = calloc(1, sizeof *b);
    if (!b) return status_fail(st, "comm %s: out of memory", c->name);
    b->host = host;
    c->backend = b;
    int rc = create_cuda_resources(c, b, st);
    if (rc == 0) {
        ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
        config.blocking = 0;
        ncclResult_t init = ncclCommInitRankConfig(&b->nccl, c->size, id, c->rank, &config);
        if (is_failure(init))
            rc = nccl_failed(c, 1, "ncclCommInitRankConfig", init, st);
        else
            rc = settle(c, "NCCL initialisation", 0, TIMEOUT_RETURNS, st);
    }
    if (rc == 0) {
        c->ops = &nccl_ops;
        return 0;
    }
    abort_communicator(b, COMM_TIMEOUT_EXIT_CODE);
    release_backend(b);
    memset(c, 0, sizeof *c);
    return -1;
}
