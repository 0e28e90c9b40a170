#include "train/shard_comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed collective leaves its group unusable: report and take the job down. */
static void fail(shard_comm_context *x, const status *st) {
    fprintf(stderr, "cairn: %s\n", st->message);
    x->comm->ops->abort(x->comm, 1);
}

static void all_reduce(shard_comm_context *x, void *buffer, size_t count, comm_dtype type,
                       comm_reduction op) {
    status st;
    if (comm_all_reduce(x->comm, buffer, buffer, count, type, op, &st) != 0) fail(x, &st);
}

static void sum_act(void *context, void *buffer, size_t count) {
    shard_comm_context *x = context;
    all_reduce(x, buffer, count, x->act, COMM_SUM);
}
static void sum_master(void *context, void *buffer, size_t count) {
    shard_comm_context *x = context;
    all_reduce(x, buffer, count, x->master, COMM_SUM);
}
static void max_master(void *context, void *buffer, size_t count) {
    shard_comm_context *x = context;
    all_reduce(x, buffer, count, x->master, COMM_MAX);
}

static void exchange_counts(void *context, const int *send, int *recv, int per_peer) {
    shard_comm_context *x = context;
    int size = x->comm->size;
    if (per_peer > x->capacity) {
        free(x->counts);
        x->counts = malloc(sizeof *x->counts * 2 * (size_t)size * per_peer);
        x->capacity = x->counts ? per_peer : 0;
        if (!x->counts) {
            status st;
            snprintf(st.message, sizeof st.message, "expert parallelism: out of host memory");
            fail(x, &st);
        }
    }
    int64_t *out = x->counts, *in = x->counts + (size_t)size * per_peer;
    for (int i = 0; i < size * per_peer; i++) out[i] = send[i];
    status st;
    if (comm_all_to_all(x->host, out, in, (size_t)per_peer, COMM_INT64, &st) != 0) fail(x, &st);
    for (int i = 0; i < size * per_peer; i++) recv[i] = (int)in[i];
}

static void exchange_rows(void *context, const void *send, const int *send_rows, void *recv,
                          const int *recv_rows, size_t row_bytes) {
    shard_comm_context *x = context;
    int size = x->comm->size;
    size_t element_bytes = comm_dtype_bytes(x->act), row = row_bytes / element_bytes;
    size_t *send_counts = x->row_counts, *send_offsets = send_counts + size;
    size_t *recv_counts = send_offsets + size, *recv_offsets = recv_counts + size;
    for (int q = 0, s = 0, r = 0; q < size; q++) {
        send_counts[q] = (size_t)send_rows[q] * row;
        recv_counts[q] = (size_t)recv_rows[q] * row;
        send_offsets[q] = (size_t)s * row;
        recv_offsets[q] = (size_t)r * row;
        s += send_rows[q];
        r += recv_rows[q];
    }
    status st;
    if (comm_all_to_all_v(x->comm, send, send_counts, send_offsets, recv, recv_counts,
                          recv_offsets, x->act, &st) != 0)
        fail(x, &st);
}

static int context_init(shard_comm_context *x, comm *c, comm *host, const ops *o, status *st) {
    memset(x, 0, sizeof *x);
    x->comm = c;
    x->host = host;
    if (comm_float_dtype(o->act_bytes, &x->act) != 0 ||
        comm_float_dtype(o->master_bytes, &x->master) != 0)
        return status_fail(st, "parallel: the %s backend's %zu-byte activations cannot go through "
                           "the %s communicator",
                           o->name, o->act_bytes, c->ops->name);
    x->row_counts = malloc(sizeof *x->row_counts * 4 * (size_t)c->size);
    if (!x->row_counts) return status_fail(st, "parallel: out of host memory");
    return 0;
}

int shard_comm_bind(shard_comm *sc, model_shard *shard, parallel_topology *t, const ops *o,
                    status *st) {
    memset(sc, 0, sizeof *sc);
    comm *tp = t->device[AXIS_TP], *ep = t->device[AXIS_EP];
    shard->tp = (tensor_parallel){tp->rank, tp->size, &sc->tp, sum_act, sum_master, max_master};
    shard->ep = (expert_parallel){ep->rank, ep->size, &sc->ep, exchange_counts, exchange_rows};
    if (tp->size > 1 && context_init(&sc->tp, tp, &t->comms[AXIS_TP], o, st) != 0) return -1;
    if (ep->size > 1 && context_init(&sc->ep, ep, &t->comms[AXIS_EP], o, st) != 0) return -1;
    return 0;
}

void shard_comm_release(shard_comm *sc) {
    free(sc->tp.counts);
    free(sc->tp.row_counts);
    free(sc->ep.counts);
    free(sc->ep.row_counts);
    memset(sc, 0, sizeof *sc);
}
