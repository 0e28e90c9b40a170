/* Collective and point-to-point communication on one communicator (one axis of the grid).
 *
 * Contract:
 * - A `comm` is a group of ranks (the tp, pp, dp, ep, expert_dp, model or world group of this
 *   rank) served by one backend: a table of function pointers (`comm_ops`, like kernels/ops.h)
 *   per implementation: MPI on host memory (parallel/comm_mpi.c), NCCL on device memory.
 * - Every operation has a non-blocking form (`..._start`, completed by `comm_wait`) and a
 *   blocking form (start + wait). Operations on one communicator must be started in the same
 *   order on every member; buffers stay untouched until the request completes.
 * - Messages: a backend may run a communicator's operations one after the other in the order
 *   started (NCCL: one stream), so a send may not complete before its receiver has reached the
 *   matching receive. Two ranks that each send to the other before receiving would then wait for
 *   ever: such an exchange is one `comm_send_recv_start` on each side, which the backend runs as
 *   one unit (MPI's sends and receives progress independently, so there it is the two starts).
 *   A receive asks for exactly the count its sender sends (NCCL requires it; MPI would accept a
 *   shorter message).
 * - In place: all-reduce with send == recv; reduce-scatter with recv == send + this rank's block
 *   offset (the rest of send is undefined afterwards); all-gather with send == recv + this rank's
 *   block offset; broadcast always works in place. Counts and offsets are in elements.
 * - Every start adds the bytes the operation moves per rank to the communicator's counters (see
 *   `comm_bytes_moved`), whatever the backend.
 * - Bounded waits: a wait that has not completed `timeout_s` seconds after it began prints one
 *   line naming the operation, the communicator and the timeout on stderr and aborts the whole
 *   job with exit code COMM_TIMEOUT_EXIT_CODE: a peer that died or hangs leaves the collective
 *   unusable, so no caller could recover, and the alternative is hanging forever.
 * - Other failures (a count the backend cannot express, a backend error) return -1 with a
 *   one-line status. */
#ifndef CAIRN_COMM_H
#define CAIRN_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* EX_TEMPFAIL: the job failed for a reason outside it, and a requeue may succeed. */
#define COMM_TIMEOUT_EXIT_CODE 75

/* COMM_BFLOAT16: the CUDA backend's activations (the upper half of an fp32; sums round to
 * nearest even after each addition, as NCCL's do). */
typedef enum { COMM_FLOAT32, COMM_FLOAT64, COMM_INT64, COMM_BFLOAT16 } comm_dtype;
typedef enum { COMM_SUM, COMM_MAX } comm_reduction;
typedef enum {
    COMM_ALL_REDUCE,
    COMM_REDUCE_SCATTER,
    COMM_ALL_GATHER,
    COMM_BROADCAST,
    COMM_SEND,
    COMM_RECV,
    COMM_ALL_TO_ALL,
    COMM_BARRIER,
    COMM_OPERATION_COUNT
} comm_operation;

/* Per operation kind: calls started and bytes moved by this rank (see comm_bytes_moved). */
typedef struct comm_counters {
    uint64_t calls[COMM_OPERATION_COUNT];
    double bytes[COMM_OPERATION_COUNT];
} comm_counters;

typedef struct comm comm;
typedef struct comm_ops comm_ops;

/* One operation in flight. The fields after `active` belong to the backend. */
typedef struct comm_request {
    comm *comm;
    comm_operation operation;
    int active;
    void *handle;  /* MPI_Request / CUDA event */
    void *scratch; /* freed when the request completes */
    void *move_to; /* on completion, move_bytes are moved from move_from to move_to */
    const void *move_from;
    size_t move_bytes;
} comm_request;

struct comm {
    const comm_ops *ops;
    char name[16]; /* the axis: "world", "tp", "pp", "dp", "ep", "expert_dp", "model" */
    int rank, size;
    double timeout_s;
    comm_counters counters;
    void *backend; /* the backend's communicator */
};

/* The backend table. `counts` (reduce-scatter, all-gather, all-to-all) is NULL when every block
 * holds `count` elements, else one count per rank (and `offsets` the block starts). Each start
 * fills `request`; `test` completes it (moves, frees scratch, clears `active`) once done. */
struct comm_ops {
    const char *name; /* "mpi", "nccl" */
    int (*all_reduce)(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                      comm_reduction op, comm_request *request, status *st);
    int (*reduce_scatter)(comm *c, const void *send, void *recv, size_t count, const size_t *counts,
                          comm_dtype type, comm_reduction op, comm_request *request, status *st);
    int (*all_gather)(comm *c, const void *send, void *recv, size_t count, const size_t *counts,
                      comm_dtype type, comm_request *request, status *st);
    int (*broadcast)(comm *c, void *buffer, size_t count, comm_dtype type, int root,
                     comm_request *request, status *st);
    int (*send)(comm *c, const void *buffer, size_t count, comm_dtype type, int peer,
                comm_request *request, status *st);
    int (*recv)(comm *c, void *buffer, size_t count, comm_dtype type, int peer,
                comm_request *request, status *st);
    /* A send and a receive that progress together; NULL when separately started ones already
     * do (comm.c then starts the send, then the receive). */
    int (*send_recv)(comm *c, const void *send, size_t send_count, int send_peer, void *recv,
                     size_t recv_count, int recv_peer, comm_dtype type, comm_request *send_request,
                     comm_request *recv_request, status *st);
    int (*all_to_all)(comm *c, const void *send, const size_t *send_counts,
                      const size_t *send_offsets, void *recv, const size_t *recv_counts,
                      const size_t *recv_offsets, size_t count, comm_dtype type,
                      comm_request *request, status *st);
    int (*barrier)(comm *c, comm_request *request, status *st);
    int (*test)(comm_request *request, int *done, status *st);
    /* tears the whole job down with this exit code; does not return */
    void (*abort)(comm *c, int exit_code);
    void (*destroy)(comm *c);
};

size_t comm_dtype_bytes(comm_dtype type);
/* The floating-point type of `element_bytes` bytes (2: bf16, 4: fp32, 8: fp64); -1 for others. */
int comm_float_dtype(size_t element_bytes, comm_dtype *type);
const char *comm_operation_name(comm_operation operation);

/* Bytes one rank moves for an operation: the per-rank volume of the bandwidth-optimal algorithm
 * (ring all-reduce = reduce-scatter + all-gather, pipelined broadcast), which is also the lower
 * bound for any algorithm. S = bytes of the whole buffer, b_r = this rank's block, n = size:
 *   all-reduce      2 (n-1)/n · S        reduce-scatter, all-gather   S - b_r  ((n-1)/n · S)
 *   broadcast       S                    send, recv                   S (0 to oneself)
 *   all-to-all      max(bytes sent to others, bytes received from others)
 *   barrier         0                    any operation with n = 1     0 */
double comm_bytes_moved(comm_operation operation, int size, double total_bytes, double own_bytes);

/* ---- operations (count: elements; see the contract above for in-place use) ---- */
int comm_all_reduce(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                    comm_reduction op, status *st);
int comm_all_reduce_start(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                          comm_reduction op, comm_request *request, status *st);
/* send: size × count elements, recv: count */
int comm_reduce_scatter(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                        comm_reduction op, status *st);
int comm_reduce_scatter_start(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                              comm_reduction op, comm_request *request, status *st);
/* Blocks of counts[i] elements, contiguous in rank order in send; counts[i] may be 0. */
int comm_reduce_scatter_v_start(comm *c, const void *send, void *recv, const size_t *counts,
                                comm_dtype type, comm_reduction op, comm_request *request,
                                status *st);
/* send: count elements, recv: size × count */
int comm_all_gather(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                    status *st);
int comm_all_gather_start(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                          comm_request *request, status *st);
int comm_all_gather_v_start(comm *c, const void *send, void *recv, const size_t *counts,
                            comm_dtype type, comm_request *request, status *st);
int comm_broadcast(comm *c, void *buffer, size_t count, comm_dtype type, int root, status *st);
int comm_broadcast_start(comm *c, void *buffer, size_t count, comm_dtype type, int root,
                         comm_request *request, status *st);
int comm_send(comm *c, const void *buffer, size_t count, comm_dtype type, int peer, status *st);
int comm_send_start(comm *c, const void *buffer, size_t count, comm_dtype type, int peer,
                    comm_request *request, status *st);
int comm_recv(comm *c, void *buffer, size_t count, comm_dtype type, int peer, status *st);
int comm_recv_start(comm *c, void *buffer, size_t count, comm_dtype type, int peer,
                    comm_request *request, status *st);
/* A message to `send_peer` and one from `recv_peer` (the same rank or not) as one unit, for
 * exchanges where the peer may be sending at the same time (see the contract): send_request
 * completes the send, recv_request the receive. */
int comm_send_recv(comm *c, const void *send, size_t send_count, int send_peer, void *recv,
                   size_t recv_count, int recv_peer, comm_dtype type, status *st);
int comm_send_recv_start(comm *c, const void *send, size_t send_count, int send_peer, void *recv,
                         size_t recv_count, int recv_peer, comm_dtype type,
                         comm_request *send_request, comm_request *recv_request, status *st);
/* count elements to and from every rank (send and recv: size × count) */
int comm_all_to_all(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                    status *st);
int comm_all_to_all_start(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                          comm_request *request, status *st);
/* The count and offset arrays must stay valid until the request completes. */
int comm_all_to_all_v(comm *c, const void *send, const size_t *send_counts,
                      const size_t *send_offsets, void *recv, const size_t *recv_counts,
                      const size_t *recv_offsets, comm_dtype type, status *st);
int comm_all_to_all_v_start(comm *c, const void *send, const size_t *send_counts,
                            const size_t *send_offsets, void *recv, const size_t *recv_counts,
                            const size_t *recv_offsets, comm_dtype type, comm_request *request,
                            status *st);
int comm_barrier(comm *c, status *st);
int comm_barrier_start(comm *c, comm_request *request, status *st);

/* Completes a request (no-op when not active), aborting the job after the timeout. */
int comm_wait(comm_request *request, status *st);
int comm_wait_all(comm_request *requests, int count, status *st);

/* Advances a request without blocking: *done = 1 once complete. */
int comm_test(comm_request *request, int *done, status *st);

/* The end of a bounded wait past c's timeout (the contract above): prints the one line, naming
 * `operation`, the communicator, rank, host and pid, and aborts the job with
 * COMM_TIMEOUT_EXIT_CODE. For comm_wait and for a backend whose starts can wait too. */
_Noreturn void comm_abort_timed_out(comm *c, const char *operation);

/* For the backends' own bounded waits, paced like comm_wait: a monotonic clock in seconds, and
 * the pause after the polls-th unsuccessful poll (spin, then yield, then sleep up to 1 ms, so
 * ranks oversubscribed on few cores leave the CPU to the peer they wait for). */
double comm_clock_seconds(void);
void comm_back_off(unsigned polls);

void comm_set_timeout(comm *c, double seconds);
double comm_bytes_total(const comm *c);
void comm_reset_counters(comm *c);
void comm_destroy(comm *c);

#endif
