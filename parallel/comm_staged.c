#include "parallel/comm_staged.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Host buffers kept for reuse: data-parallel buckets keep a few operations in flight at once; an
 * operation that finds every one busy gets a buffer of its own, freed when it completes. */
enum { POOL_BUFFERS = 8 };

typedef struct pool_buffer {
    unsigned char *data;
    size_t bytes;
    int busy;
} pool_buffer;

typedef struct staged_backend {
    comm *host;
    comm_device_memory memory;
    pool_buffer pool[POOL_BUFFERS];
} staged_backend;

/* One operation in flight: the host operation, its buffer, and where its result goes. */
typedef struct staged_operation {
    comm_request inner;
    int pool_index;         /* -1: `buffer` belongs to this operation alone */
    unsigned char *buffer;
    void *result;           /* device destination of the result, NULL when there is none */
    size_t result_offset;   /* the result's place in the host buffer (bytes) */
    size_t result_bytes;
    /* all-to-all-v: the result goes back block by block (gaps between blocks stay untouched) */
    const size_t *block_counts, *block_offsets;
    size_t element_bytes;
} staged_operation;

static staged_backend *backend_of(const comm *c) { return c->backend; }

static unsigned char *acquire(staged_backend *b, size_t bytes, int *index) {
    if (!bytes) bytes = 1;
    int candidate = -1;
    for (int i = 0; i < POOL_BUFFERS; i++) {
        if (b->pool[i].busy) continue;
        if (b->pool[i].bytes >= bytes) {
            candidate = i;
            break;
        }
        if (candidate < 0) candidate = i;
    }
    if (candidate >= 0) {
        pool_buffer *p = &b->pool[candidate];
        if (p->bytes < bytes) {
            unsigned char *grown = realloc(p->data, bytes);
            if (!grown) return NULL;
            p->data = grown;
            p->bytes = bytes;
        }
        p->busy = 1;
        *index = candidate;
        return p->data;
    }
    *index = -1;
    return malloc(bytes);
}

static void release(staged_backend *b, staged_operation *s) {
    if (s->pool_index >= 0) b->pool[s->pool_index].busy = 0;
    else free(s->buffer);
    free(s);
}

/* A new operation with a host buffer of `bytes`; NULL (and st) when memory runs out. */
static staged_operation *begin(comm *c, comm_request *request, size_t bytes, status *st) {
    staged_backend *b = backend_of(c);
    staged_operation *s = calloc(1, sizeof *s);
    if (s) s->buffer = acquire(b, bytes, &s->pool_index);
    if (!s || !s->buffer) {
        free(s);
        status_fail(st, "comm %s: out of host memory for %zu staging bytes", c->name, bytes);
        return NULL;
    }
    s->inner.comm = b->host;
    s->inner.operation = request->operation;
    return s;
}

static void expect_result(staged_operation *s, void *device, size_t offset, size_t bytes) {
    s->result = device;
    s->result_offset = offset;
    s->result_bytes = bytes;
}

/* The host operation started (rc 0) or not: the request owns `s` from here on. */
static int started(comm *c, int rc, staged_operation *s, comm_request *request) {
    if (rc != 0) {
        release(backend_of(c), s);
        return -1;
    }
    request->scratch = s;
    request->active = 1;
    return 0;
}

static size_t total_count(const comm *c, size_t count, const size_t *counts) {
    if (!counts) return count * (size_t)c->size;
    size_t total = 0;
    for (int i = 0; i < c->size; i++) total += counts[i];
    return total;
}

static size_t own_offset(const comm *c, size_t count, const size_t *counts) {
    if (!counts) return count * (size_t)c->rank;
    size_t offset = 0;
    for (int i = 0; i < c->rank; i++) offset += counts[i];
    return offset;
}

/* Elements spanned by blocks at offsets (NULL: packed in rank order) with counts (NULL: `count`
 * each). */
static size_t extent(const comm *c, size_t count, const size_t *counts, const size_t *offsets) {
    if (!offsets) return total_count(c, count, counts);
    size_t end = 0;
    for (int i = 0; i < c->size; i++)
        if (counts[i] && offsets[i] + counts[i] > end) end = offsets[i] + counts[i];
    return end;
}

static int staged_all_reduce(comm *c, const void *send, void *recv, size_t count, comm_dtype type,
                             comm_reduction op, comm_request *request, status *st) {
    staged_backend *b = backend_of(c);
    size_t bytes = count * comm_dtype_bytes(type);
    staged_operation *s = begin(c, request, bytes, st);
    if (!s) return -1;
    b->memory.to_host(s->buffer, send, bytes);
    expect_result(s, recv, 0, bytes);
    return started(c,
                   b->host->ops->all_reduce(b->host, s->buffer, s->buffer, count, type, op,
                                            &s->inner, st),
                   s, request);
}

static int staged_reduce_scatter(comm *c, const void *send, void *recv, size_t count,
                                 const size_t *counts, comm_dtype type, comm_reduction op,
                                 comm_request *request, status *st) {
    staged_backend *b = backend_of(c);
    size_t element = comm_dtype_bytes(type), total = total_count(c, count, counts) * element;
    size_t offset = own_offset(c, count, counts) * element;
    staged_operation *s = begin(c, request, total, st);
    if (!s) return -1;
    b->memory.to_host(s->buffer, send, total);
    expect_result(s, recv, offset, count * element);
    return started(c,
                   b->host->ops->reduce_scatter(b->host, s->buffer, s->buffer + offset, count,
                                                counts, type, op, &s->inner, st),
                   s, request);
}

static int staged_all_gather(comm *c, const void *send, void *recv, size_t count,
                             const size_t *counts, comm_dtype type, comm_request *request,
                             status *st) {
    staged_backend *b = backend_of(c);
    size_t element = comm_dtype_bytes(type), total = total_count(c, count, counts) * element;
    size_t offset = own_offset(c, count, counts) * element;
    staged_operation *s = begin(c, request, total, st);
    if (!s) return -1;
    b->memory.to_host(s->buffer + offset, send, count * element);
    expect_result(s, recv, 0, total);
    return started(c,
                   b->host->ops->all_gather(b->host, s->buffer + offset, s->buffer, count, counts,
                                            type, &s->inner, st),
                   s, request);
}

static int staged_broadcast(comm *c, void *buffer, size_t count, comm_dtype type, int root,
                            comm_request *request, status *st) {
    staged_backend *b = backend_of(c);
    size_t bytes = count * comm_dtype_bytes(type);
    staged_operation *s = begin(c, request, bytes, st);
    if (!s) return -1;
    if (c->rank == root) b->memory.to_host(s->buffer, buffer, bytes);
    else expect_result(s, buffer, 0, bytes);
    return started(
        c, b->host->ops->broadcast(b->host, s->buffer, count, type, root, &s->inner, st), s,
        request);
}

static int staged_send(comm *c, const void *buffer, size_t count, comm_dtype type, int peer,
                       comm_request *request, status *st) {
    staged_backend *b = backend_of(c);
    size_t bytes = count * comm_dtype_bytes(type);
    staged_operation *s = begin(c, request, bytes, st);
    if (!s) return -1;
    b->memory.to_host(s->buffer, buffer, bytes);
    return started(c, b->host->ops->send(b->host, s->buffer, count, type, peer, &s->inner, st),
                   s, request);
}

static int staged_recv(comm *c, void *buffer, size_t count, comm_dtype type, int peer,
                       comm_request *request, status *st) {
    staged_backend *b = backend_of(c);
    size_t bytes = count * comm_dtype_bytes(type);
    staged_operation *s = begin(c, request, bytes, st);
    if (!s) return -1;
    expect_result(s, buffer, 0, bytes);
    return started(c, b->host->ops->recv(b->host, s->buffer, count, type, peer, &s->inner, st),
                   s, request);
}

static int staged_all_to_all(comm *c, const void *send, const size_t *send_counts,
                             const size_t *send_offsets, void *recv, const size_t *recv_counts,
                             const size_t *recv_offsets, size_t count, comm_dtype type,
                             comm_request *request, status *st) {
    staged_backend *b = backend_of(c);
    size_t element = comm_dtype_bytes(type);
    size_t send_bytes = extent(c, count, send_counts, send_offsets) * element;
    size_t recv_bytes = extent(c, count, recv_counts, recv_offsets) * element;
    staged_operation *s = begin(c, request, send_bytes + recv_bytes, st);
    if (!s) return -1;
    b->memory.to_host(s->buffer, send, send_bytes);
    expect_result(s, recv, send_bytes, recv_bytes);
    if (recv_offsets) {
        s->block_counts = recv_counts;
        s->block_offsets = recv_offsets;
        s->element_bytes = element;
    }
    return started(c,
                   b->host->ops->all_to_all(b->host, s->buffer, send_counts, send_offsets,
                                            s->buffer + send_bytes, recv_counts, recv_offsets,
                                            count, type, &s->inner, st),
                   s, request);
}

static int staged_barrier(comm *c, comm_request *request, status *st) {
    staged_backend *b = backend_of(c);
    staged_operation *s = begin(c, request, 0, st);
    if (!s) return -1;
    return started(c, b->host->ops->barrier(b->host, &s->inner, st), s, request);
}

static void copy_result(staged_backend *b, const comm *c, const staged_operation *s) {
    const unsigned char *from = s->buffer + s->result_offset;
    if (!s->block_offsets) {
        if (s->result_bytes) b->memory.to_device(s->result, from, s->result_bytes);
        return;
    }
    for (int i = 0; i < c->size; i++)
        if (s->block_counts[i])
            b->memory.to_device((unsigned char *)s->result + s->block_offsets[i] * s->element_bytes,
                                from + s->block_offsets[i] * s->element_bytes,
                                s->block_counts[i] * s->element_bytes);
}

static int staged_test(comm_request *request, int *done, status *st) {
    comm *c = request->comm;
    staged_backend *b = backend_of(c);
    staged_operation *s = request->scratch;
    if (b->host->ops->test(&s->inner, done, st) != 0) return -1;
    if (!*done) return 0;
    if (s->result) copy_result(b, c, s);
    release(b, s);
    request->scratch = NULL;
    request->active = 0;
    return 0;
}

static void staged_abort(comm *c, int exit_code) {
    comm *host = backend_of(c)->host;
    host->ops->abort(host, exit_code);
}

static void staged_destroy(comm *c) {
    staged_backend *b = backend_of(c);
    if (!b) return;
    for (int i = 0; i < POOL_BUFFERS; i++) free(b->pool[i].data);
    free(b);
}

static const comm_ops staged_ops = {
    .name = "mpi (host-staged)",
    .all_reduce = staged_all_reduce,
    .reduce_scatter = staged_reduce_scatter,
    .all_gather = staged_all_gather,
    .broadcast = staged_broadcast,
    .send = staged_send,
    .recv = staged_recv,
    .all_to_all = staged_all_to_all,
    .barrier = staged_barrier,
    .test = staged_test,
    .abort = staged_abort,
    .destroy = staged_destroy,
};

int comm_staged_create(comm *c, comm *host, const comm_device_memory *memory, status *st) {
    memset(c, 0, sizeof *c);
    staged_backend *b = calloc(1, sizeof *b);
    if (!b) return status_fail(st, "comm %s: out of host memory", host->name);
    b->host = host;
    b->memory = *memory;
    c->ops = &staged_ops;
    c->backend = b;
    snprintf(c->name, sizeof c->name, "%s", host->name);
    c->rank = host->rank;
    c->size = host->size;
    c->timeout_s = host->timeout_s;
    return 0;
}
