#include "parallel/comm_mpi.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bf16.h"

_Static_assert(sizeof(MPI_Request) <= sizeof(void *), "comm_request.handle holds an MPI_Request");

/* The communicator, and the bf16 reductions MPI does not have (user operations, which belong to
 * the communicator that uses them so that nothing process-wide needs setting up). */
typedef struct mpi_backend {
    MPI_Comm comm;
    MPI_Op bf16_sum, bf16_max;
} mpi_backend;

static MPI_Comm handle_of(const comm *c) { return ((const mpi_backend *)c->backend)->comm; }

MPI_Comm comm_mpi_handle(const comm *c) { return handle_of(c); }

static MPI_Datatype datatype(comm_dtype type) {
    switch (type) {
    case COMM_FLOAT32:
        return MPI_FLOAT;
    case COMM_FLOAT64:
        return MPI_DOUBLE;
    case COMM_INT64:
        return MPI_INT64_T;
    case COMM_BFLOAT16:
        return MPI_UINT16_T;
    }
    return MPI_DATATYPE_NULL;
}

static void bf16_sum(void *in, void *inout, int *count, MPI_Datatype *type) {
    (void)type;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *count; i++) b[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}

static void bf16_max(void *in, void *inout, int *count, MPI_Datatype *type) {
    (void)type;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *count; i++)
        if (bf16_to_float(a[i]) > bf16_to_float(b[i])) b[i] = a[i];
}

static MPI_Op reduction(const comm *c, comm_dtype type, comm_reduction op) {
    const mpi_backend *backend = c->backend;
    if (type == COMM_BFLOAT16) return op == COMM_MAX ? backend->bf16_max : backend->bf16_sum;
    return op == COMM_MAX ? MPI_MAX : MPI_SUM;
}

static int mpi_failed(const comm *c, const char *function, int rc, status *st) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(rc, text, &length);
    return status_fail(st, "comm %s: %s: %s", c->name, function, text);
}

/* Records a started MPI request (rc: the MPI call's return code). */
static int started(const comm *c, const char *function, int rc, MPI_Request mpi,
                   comm_request *request, status *st) {
    if (rc != MPI_SUCCESS) {
        free(request->scratch);
        request->scratch = NULL;
        return mpi_failed(c, function, rc, st);
    }
    memcpy(&request->handle, &mpi, sizeof mpi);
    request->active = 1;
    return 0;
}

static int fits_int(const comm *c, const char *function, size_t value, status *st) {
    if (value <= INT_MAX) return 0;
    return status_fail(st,
                       "comm %s: %s: %zu elements exceed the %d an MPI-3 call can address; use "
                       "smaller buckets",
                       c->name, function, value, INT_MAX);
}

/* Writes counts[] and their displacements (offsets[], or the prefix sums) as the int arrays MPI
 * wants: ints[0..n) counts, ints[n..2n) displacements. */
static int fill_ints(const comm *c, const char *function, const size_t *counts,
                     const size_t *offsets, int *ints, status *st) {
    int n = c->size;
    size_t running = 0;
    for (int i = 0; i < n; i++) {
        size_t offset = offsets ? offsets[i] : running;
        if (fits_int(c, function, counts[i], st) != 0 || fits_int(c, function, offset, st) != 0)
            return -1;
        ints[i] = (int)counts[i];
        ints[n + i] = (int)offset;
        running += counts[i];
    }
    return offsets ? 0 : fits_int(c, function, running, st);
}

/* Int arrays that must live until the request completes (MPI reads them while in flight). */
static int *request_ints(const comm *c, const char *function, comm_request *request, size_t count,
                         status *st) {
    request->scratch = malloc(count * sizeof(int));
    if (!request->scratch) status_fail(st, "comm %s: %s: out of memory", c->name, function);
    return request->scratch;
}

/* Builds the count arrays of one v operation; on failure the scratch is released. */
static int *v_counts(const comm *c, const char *function, const size_t *counts,
                     comm_request *request, status *st) {
    int *ints = request_ints(c, function, request, 2 * (size_t)c->size, st);
    if (ints && fill_ints(c, function, counts, NULL, ints, st) == 0) return ints;
    free(request->scratch);
    request->scratch = NULL;
    return NULL;
}

static size_t block_offset(const comm *c, size_t count, const size_t *counts) {
    if (!counts) return count * (size_t)c->rank;
    size_t offset = 0;
    for (int i = 0; i < c->rank; i++)
        offset += counts[i];
    return offset;
}

static int mpi_all_reduce(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                          comm_reduction op, comm_request *request, status *st) {
    if (fits_int(c, "all_reduce", count, st) != 0) return -1;
    MPI_Request mpi;
    int rc = MPI_Iallreduce(send == recv ? MPI_IN_PLACE : send, recv, (int)count, datatype(type),
                            reduction(c, type, op), handle_of(c), &mpi);
    return started(c, "MPI_Iallreduce", rc, mpi, request, st);
}

/* In place, MPI leaves this rank's block at the start of the buffer: it moves to recv when the
 * request completes. */
static int mpi_reduce_scatter(comm *c, const void *send, void *recv, size_t count,
                              const size_t *counts, comm_dtype type, comm_reduction op,
                              comm_request *request, status *st) {
    size_t element = comm_dtype_bytes(type), offset = block_offset(c, count, counts);
    int in_place = (const char *)send + offset * element == (const char *)recv;
    void *output = in_place ? (void *)send : recv;
    if (in_place && offset) {
        request->move_to = recv;
        request->move_from = send;
        request->move_bytes = count * element;
    }
    MPI_Request mpi;
    if (!counts) {
        if (fits_int(c, "reduce_scatter", count, st) != 0) return -1;
        int rc = MPI_Ireduce_scatter_block(in_place ? MPI_IN_PLACE : send, output, (int)count,
                                           datatype(type), reduction(c, type, op), handle_of(c), &mpi);
        return started(c, "MPI_Ireduce_scatter_block", rc, mpi, request, st);
    }
    int *ints = v_counts(c, "reduce_scatter", counts, request, st);
    if (!ints) return -1;
    int rc = MPI_Ireduce_scatter(in_place ? MPI_IN_PLACE : send, output, ints, datatype(type),
                                 reduction(c, type, op), handle_of(c), &mpi);
    return started(c, "MPI_Ireduce_scatter", rc, mpi, request, st);
}

static int mpi_all_gather(comm *c, const void *send, void *recv, size_t count, const size_t *counts,
                          comm_dtype type, comm_request *request, status *st) {
    size_t element = comm_dtype_bytes(type), offset = block_offset(c, count, counts);
    const void *input =
        (const char *)recv + offset * element == (const char *)send ? MPI_IN_PLACE : send;
    MPI_Datatype t = datatype(type);
    if (fits_int(c, "all_gather", count, st) != 0) return -1;
    MPI_Request mpi;
    if (!counts) {
        int rc = MPI_Iallgather(input, (int)count, t, recv, (int)count, t, handle_of(c), &mpi);
        return started(c, "MPI_Iallgather", rc, mpi, request, st);
    }
    int *ints = v_counts(c, "all_gather", counts, request, st);
    if (!ints) return -1;
    int rc =
        MPI_Iallgatherv(input, (int)count, t, recv, ints, ints + c->size, t, handle_of(c), &mpi);
    return started(c, "MPI_Iallgatherv", rc, mpi, request, st);
}

static int mpi_broadcast(comm *c, void *buffer, size_t count, comm_dtype type, int root,
                         comm_request *request, status *st) {
    if (fits_int(c, "broadcast", count, st) != 0) return -1;
    MPI_Request mpi;
    int rc = MPI_Ibcast(buffer, (int)count, datatype(type), root, handle_of(c), &mpi);
    return started(c, "MPI_Ibcast", rc, mpi, request, st);
}

static int mpi_send(comm *c, const void *buffer, size_t count, comm_dtype type, int peer,
                    comm_request *request, status *st) {
    if (fits_int(c, "send", count, st) != 0) return -1;
    MPI_Request mpi;
    int rc = MPI_Isend(buffer, (int)count, datatype(type), peer, 0, handle_of(c), &mpi);
    return started(c, "MPI_Isend", rc, mpi, request, st);
}

static int mpi_recv(comm *c, void *buffer, size_t count, comm_dtype type, int peer,
                    comm_request *request, status *st) {
    if (fits_int(c, "recv", count, st) != 0) return -1;
    MPI_Request mpi;
    int rc = MPI_Irecv(buffer, (int)count, datatype(type), peer, 0, handle_of(c), &mpi);
    return started(c, "MPI_Irecv", rc, mpi, request, st);
}

static int mpi_all_to_all(comm *c, const void *send, const size_t *send_counts,
                          const size_t *send_offsets, void *recv, const size_t *recv_counts,
                          const size_t *recv_offsets, size_t count, comm_dtype type,
                          comm_request *request, status *st) {
    MPI_Datatype t = datatype(type);
    MPI_Request mpi;
    if (!send_counts) {
        if (fits_int(c, "all_to_all", count, st) != 0) return -1;
        int rc = MPI_Ialltoall(send, (int)count, t, recv, (int)count, t, handle_of(c), &mpi);
        return started(c, "MPI_Ialltoall", rc, mpi, request, st);
    }
    int n = c->size;
    int *ints = request_ints(c, "all_to_all", request, 4 * (size_t)n, st);
    if (!ints || fill_ints(c, "all_to_all", send_counts, send_offsets, ints, st) != 0 ||
        fill_ints(c, "all_to_all", recv_counts, recv_offsets, ints + 2 * n, st) != 0) {
        free(request->scratch);
        request->scratch = NULL;
        return -1;
    }
    int rc = MPI_Ialltoallv(send, ints, ints + n, t, recv, ints + 2 * n, ints + 3 * n, t,
                            handle_of(c), &mpi);
    return started(c, "MPI_Ialltoallv", rc, mpi, request, st);
}

static int mpi_barrier(comm *c, comm_request *request, status *st) {
    MPI_Request mpi;
    int rc = MPI_Ibarrier(handle_of(c), &mpi);
    return started(c, "MPI_Ibarrier", rc, mpi, request, st);
}

static int mpi_test(comm_request *request, int *done, status *st) {
    MPI_Request mpi;
    memcpy(&mpi, &request->handle, sizeof mpi);
    int flag = 0;
    int rc = MPI_Test(&mpi, &flag, MPI_STATUS_IGNORE);
    memcpy(&request->handle, &mpi, sizeof mpi);
    if (rc != MPI_SUCCESS) return mpi_failed(request->comm, "MPI_Test", rc, st);
    *done = flag;
    if (!flag) return 0;
    if (request->move_bytes) memmove(request->move_to, request->move_from, request->move_bytes);
    free(request->scratch);
    request->scratch = NULL;
    request->active = 0;
    return 0;
}

static void mpi_abort(comm *c, int exit_code) {
    (void)c;
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    _exit(exit_code);
}

static void mpi_destroy(comm *c) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    mpi_backend *backend = c->backend;
    if (!backend) return;
    if (!finalized) {
        if (backend->bf16_sum != MPI_OP_NULL) MPI_Op_free(&backend->bf16_sum);
        if (backend->bf16_max != MPI_OP_NULL) MPI_Op_free(&backend->bf16_max);
        MPI_Comm_free(&backend->comm);
    }
    free(backend);
}

static const comm_ops mpi_ops = {
    .name = "mpi",
    .all_reduce = mpi_all_reduce,
    .reduce_scatter = mpi_reduce_scatter,
    .all_gather = mpi_all_gather,
    .broadcast = mpi_broadcast,
    .send = mpi_send,
    .recv = mpi_recv,
    .all_to_all = mpi_all_to_all,
    .barrier = mpi_barrier,
    .test = mpi_test,
    .abort = mpi_abort,
    .destroy = mpi_destroy,
};

int comm_mpi_create(comm *c, MPI_Comm mpi, const char *name, double timeout_s, status *st) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    mpi_backend *box = timeout_s > 0 ? malloc(sizeof *box) : NULL;
    if (!box) {
        MPI_Comm_free(&mpi);
        return timeout_s > 0 ? status_fail(st, "comm %s: out of memory", name)
                             : status_fail(st, "comm %s: timeout must be > 0 s", name);
    }
    *box = (mpi_backend){mpi, MPI_OP_NULL, MPI_OP_NULL};
    c->ops = &mpi_ops;
    c->backend = box;
    c->timeout_s = timeout_s;
    int rc = MPI_Comm_set_errhandler(mpi, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Op_create(bf16_sum, 1, &box->bf16_sum);
    if (rc == MPI_SUCCESS) rc = MPI_Op_create(bf16_max, 1, &box->bf16_max);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(mpi, &c->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(mpi, &c->size);
    if (rc == MPI_SUCCESS) return 0;
    mpi_failed(c, "MPI_Comm_set_errhandler", rc, st);
    comm_destroy(c);
    return -1;
}
