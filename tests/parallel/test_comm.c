/* Every collective of the MPI comm backend on every axis communicator of every grid that np ranks
 * allow (np = 2, 4, 8 under mpirun): the members of each communicator against the grid formula
 * written out here by hand, every operation's result against values computed by hand from the
 * members' world ranks, and the byte counters against the accounting formulas. Then the same
 * checks on the topology's device communicators staged through host buffers
 * (parallel/comm_staged.h), with a stand-in "device" whose copies are counted: every result must
 * come back through to_device, and the bytes must be counted on the staged comm only. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"

#include "parallel/comm.h"
#include "parallel/topology.h"
#include "tests/parallel/mpi_check.h"

#define COUNT 37 /* odd: no operation gets a count that happens to divide nicely */

/* The stand-in device: host memory, with its copies counted (one process, one test). */
static long copies_to_host, copies_to_device;

static void count_to_host(void *host, const void *device, size_t bytes) {
    memcpy(host, device, bytes);
    copies_to_host++;
}

static void count_to_device(void *device, const void *host, size_t bytes) {
    memcpy(device, host, bytes);
    copies_to_device++;
}

/* world = tp_rank + tp · (dp_rank + dp · pp_rank), dp_rank = ep_rank + ep · expert_dp_rank */
typedef struct hand_grid {
    int tp, pp, dp, ep;
    int tp_rank, pp_rank, dp_rank, ep_rank, expert_dp_rank;
} hand_grid;

static int hand_world(const hand_grid *h, int tp_rank, int dp_rank, int pp_rank) {
    return tp_rank + h->tp * (dp_rank + h->dp * pp_rank);
}

static void hand_place(hand_grid *h, int world) {
    h->tp_rank = world % h->tp;
    h->dp_rank = world / h->tp % h->dp;
    h->pp_rank = world / (h->tp * h->dp);
    h->ep_rank = h->dp_rank % h->ep;
    h->expert_dp_rank = h->dp_rank / h->ep;
}

static int hand_member(const hand_grid *h, parallel_axis axis, int i) {
    switch (axis) {
    case AXIS_WORLD:
        return i;
    case AXIS_TP:
        return hand_world(h, i, h->dp_rank, h->pp_rank);
    case AXIS_PP:
        return hand_world(h, h->tp_rank, h->dp_rank, i);
    case AXIS_DP:
        return hand_world(h, h->tp_rank, i, h->pp_rank);
    case AXIS_EP:
        return hand_world(h, h->tp_rank, i + h->ep * h->expert_dp_rank, h->pp_rank);
    case AXIS_EXPERT_DP:
        return hand_world(h, h->tp_rank, h->ep_rank + h->ep * i, h->pp_rank);
    case AXIS_MODEL:
        return hand_world(h, i % h->tp, h->dp_rank, i / h->tp);
    case AXIS_COUNT:
        break;
    }
    return -1;
}

static int hand_coordinate(const hand_grid *h, parallel_axis axis, int world) {
    int values[AXIS_COUNT] = {world,
                              h->tp_rank,
                              h->pp_rank,
                              h->dp_rank,
                              h->ep_rank,
                              h->expert_dp_rank,
                              h->tp_rank + h->tp * h->pp_rank};
    return values[axis];
}

/* bytes counted for one operation: reset, run, compare */
static void check_bytes(comm *c, comm_operation op, double expected) {
    CHECK_MSG(c->counters.calls[op] == 1 && c->counters.bytes[op] == expected,
              "%s on %s (n=%d): %llu calls, %.3f bytes, expected 1 call, %.3f bytes",
              comm_operation_name(op), c->name, c->size, (unsigned long long)c->counters.calls[op],
              c->counters.bytes[op], expected);
    comm_reset_counters(c);
}

static void check_all_reduce(comm *c, const int *members, status *st) {
    int n = c->size, r = c->rank;
    double member_sum = 0;
    int member_max = 0;
    for (int j = 0; j < n; j++) {
        member_sum += members[j] + 1;
        if (members[j] > member_max) member_max = members[j];
    }
    float send[COUNT], recv[COUNT];
    for (int i = 0; i < COUNT; i++)
        send[i] = (float)((members[r] + 1) * (i + 1));
    CHECK(comm_all_reduce(c, send, recv, COUNT, COMM_FLOAT32, COMM_SUM, st) == 0);
    int good = 1;
    for (int i = 0; i < COUNT; i++)
        good &= recv[i] == (float)(member_sum * (i + 1));
    CHECK_MSG(good, "all_reduce sum fp32 on %s", c->name);
    check_bytes(c, COMM_ALL_REDUCE, 2.0 * (n - 1) / n * COUNT * 4);

    double d[COUNT];
    for (int i = 0; i < COUNT; i++)
        d[i] = members[r] * 1000.0 + i;
    CHECK(comm_all_reduce(c, d, d, COUNT, COMM_FLOAT64, COMM_MAX, st) == 0);
    good = 1;
    for (int i = 0; i < COUNT; i++)
        good &= d[i] == member_max * 1000.0 + i;
    CHECK_MSG(good, "all_reduce max fp64 in place on %s", c->name);
    check_bytes(c, COMM_ALL_REDUCE, 2.0 * (n - 1) / n * COUNT * 8);

    int64_t flags[3] = {members[r] == members[n - 1], -(int64_t)members[r], (int64_t)1 << 40};
    CHECK(comm_all_reduce(c, flags, flags, 3, COMM_INT64, COMM_MAX, st) == 0);
    CHECK(flags[0] == 1 && flags[1] == -(int64_t)members[0] && flags[2] == (int64_t)1 << 40);
    int64_t sum = (int64_t)1 << 40;
    CHECK(comm_all_reduce(c, &sum, &sum, 1, COMM_INT64, COMM_SUM, st) == 0);
    CHECK(sum == ((int64_t)n << 40));
    comm_reset_counters(c);

    /* bf16 (the CUDA backend's activations): small integers, exact in bf16's 8 bits */
    uint16_t h[COUNT];
    for (int i = 0; i < COUNT; i++)
        h[i] = float_to_bf16((float)(members[r] + 1 + i % 4));
    CHECK(comm_all_reduce(c, h, h, COUNT, COMM_BFLOAT16, COMM_SUM, st) == 0);
    good = 1;
    for (int i = 0; i < COUNT; i++)
        good &= bf16_to_float(h[i]) == (float)(member_sum + n * (i % 4));
    CHECK_MSG(good, "all_reduce sum bf16 on %s", c->name);
    check_bytes(c, COMM_ALL_REDUCE, 2.0 * (n - 1) / n * COUNT * 2);
    for (int i = 0; i < COUNT; i++)
        h[i] = float_to_bf16(-(float)members[r] - 0.5f * (float)(i % 4));
    CHECK(comm_all_reduce(c, h, h, COUNT, COMM_BFLOAT16, COMM_MAX, st) == 0);
    good = 1;
    int member_min = members[0];
    for (int j = 0; j < n; j++)
        if (members[j] < member_min) member_min = members[j];
    for (int i = 0; i < COUNT; i++)
        good &= bf16_to_float(h[i]) == -(float)member_min - 0.5f * (float)(i % 4);
    CHECK_MSG(good, "all_reduce max bf16 on %s", c->name);
    comm_reset_counters(c);
}

/* send[b][i] = (member_r + 1) · (b + 1) + i, so block r sums to (Σ member + n) · (r + 1) + n · i */
static void check_reduce_scatter(comm *c, const int *members, status *st) {
    int n = c->size, r = c->rank;
    double member_sum = 0;
    for (int j = 0; j < n; j++)
        member_sum += members[j] + 1;
    float *send = malloc((size_t)n * COUNT * sizeof *send), recv[COUNT];
    for (int pass = 0; pass < 2; pass++) {
        for (int b = 0; b < n; b++)
            for (int i = 0; i < COUNT; i++)
                send[b * COUNT + i] = (float)((members[r] + 1) * (b + 1) + i);
        float *out = pass == 0 ? recv : send + r * COUNT; /* pass 1: in place */
        CHECK(comm_reduce_scatter(c, send, out, COUNT, COMM_FLOAT32, COMM_SUM, st) == 0);
        int good = 1;
        for (int i = 0; i < COUNT; i++)
            good &= out[i] == (float)(member_sum * (r + 1) + (double)n * i);
        CHECK_MSG(good, "reduce_scatter%s on %s", pass ? " in place" : "", c->name);
        check_bytes(c, COMM_REDUCE_SCATTER, (double)(n - 1) * COUNT * 4);
    }
    free(send);

    /* v: rank j's block holds j % 3 elements (0 for rank 0); in place */
    size_t counts[8], total = 0, offset = 0;
    for (int j = 0; j < n; j++) {
        counts[j] = (size_t)(j % 3);
        if (j < r) offset += counts[j];
        total += counts[j];
    }
    double *v = calloc(total + 1, sizeof *v);
    for (size_t i = 0; i < total; i++)
        v[i] = members[r] + 0.5 * (double)i;
    comm_request request;
    CHECK(comm_reduce_scatter_v_start(c, v, v + offset, counts, COMM_FLOAT64, COMM_SUM, &request,
                                      st) == 0);
    CHECK(comm_wait(&request, st) == 0);
    int good = 1;
    for (size_t i = 0; i < counts[r]; i++)
        good &= v[offset + i] == member_sum - n + 0.5 * n * (double)(offset + i);
    CHECK_MSG(good, "reduce_scatter_v in place on %s", c->name);
    check_bytes(c, COMM_REDUCE_SCATTER, (double)(total - counts[r]) * 8);
    free(v);
}

static void check_all_gather(comm *c, const int *members, status *st) {
    int n = c->size, r = c->rank;
    double *recv = malloc((size_t)n * COUNT * sizeof *recv), send[COUNT];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < COUNT; i++)
            send[i] = members[r] * 10.0 + i;
        double *input = send;
        if (pass == 1) { /* in place: this rank's block already sits in recv */
            input = recv + r * COUNT;
            for (int i = 0; i < COUNT; i++)
                input[i] = send[i];
        }
        CHECK(comm_all_gather(c, input, recv, COUNT, COMM_FLOAT64, st) == 0);
        int good = 1;
        for (int b = 0; b < n; b++)
            for (int i = 0; i < COUNT; i++)
                good &= recv[b * COUNT + i] == members[b] * 10.0 + i;
        CHECK_MSG(good, "all_gather%s on %s", pass ? " in place" : "", c->name);
        check_bytes(c, COMM_ALL_GATHER, (double)(n - 1) * COUNT * 8);
    }
    free(recv);

    size_t counts[8], total = 0;
    for (int j = 0; j < n; j++)
        total += counts[j] = (size_t)((j + 1) % 3);
    int64_t mine[3], *all = calloc(total + 1, sizeof *all);
    for (size_t i = 0; i < counts[r]; i++)
        mine[i] = (int64_t)members[r] * 7 + (int64_t)i;
    comm_request request;
    CHECK(comm_all_gather_v_start(c, mine, all, counts, COMM_INT64, &request, st) == 0);
    CHECK(comm_wait(&request, st) == 0);
    int good = 1;
    size_t at = 0;
    for (int j = 0; j < n; j++)
        for (size_t i = 0; i < counts[j]; i++)
            good &= all[at++] == (int64_t)members[j] * 7 + (int64_t)i;
    CHECK_MSG(good, "all_gather_v on %s", c->name);
    check_bytes(c, COMM_ALL_GATHER, (double)(total - counts[r]) * 8);
    free(all);
}

static void check_point_to_point(comm *c, const int *members, status *st) {
    int n = c->size, r = c->rank, root = n - 1;
    float buffer[COUNT];
    for (int i = 0; i < COUNT; i++)
        buffer[i] = r == root ? (float)(members[root] + i) : -1.0f;
    CHECK(comm_broadcast(c, buffer, COUNT, COMM_FLOAT32, root, st) == 0);
    int good = 1;
    for (int i = 0; i < COUNT; i++)
        good &= buffer[i] == (float)(members[root] + i);
    CHECK_MSG(good, "broadcast from %d on %s", root, c->name);
    check_bytes(c, COMM_BROADCAST, n > 1 ? COUNT * 4.0 : 0.0);

    /* a ring: send to the next, receive from the previous, both in flight at once */
    int64_t out[COUNT], in[COUNT];
    for (int i = 0; i < COUNT; i++)
        out[i] = (int64_t)members[r] * 100 + i;
    comm_request requests[2];
    CHECK(comm_recv_start(c, in, COUNT, COMM_INT64, (r + n - 1) % n, &requests[0], st) == 0);
    CHECK(comm_send_start(c, out, COUNT, COMM_INT64, (r + 1) % n, &requests[1], st) == 0);
    CHECK(comm_wait_all(requests, 2, st) == 0);
    good = 1;
    for (int i = 0; i < COUNT; i++)
        good &= in[i] == (int64_t)members[(r + n - 1) % n] * 100 + i;
    CHECK_MSG(good, "send/recv ring on %s", c->name);
    double message = n > 1 ? COUNT * 8.0 : 0.0;
    CHECK(c->counters.bytes[COMM_SEND] == message && c->counters.bytes[COMM_RECV] == message);
    comm_reset_counters(c);

    /* the same ring as one exchange per rank */
    for (int i = 0; i < COUNT; i++)
        in[i] = -1;
    CHECK(comm_send_recv(c, out, COUNT, (r + 1) % n, in, COUNT, (r + n - 1) % n, COMM_INT64, st) ==
          0);
    good = 1;
    for (int i = 0; i < COUNT; i++)
        good &= in[i] == (int64_t)members[(r + n - 1) % n] * 100 + i;
    CHECK_MSG(good, "send_recv ring on %s", c->name);
    CHECK(c->counters.calls[COMM_SEND] == 1 && c->counters.calls[COMM_RECV] == 1);
    CHECK(c->counters.bytes[COMM_SEND] == message && c->counters.bytes[COMM_RECV] == message);
    comm_reset_counters(c);

    /* pairs of ranks messaging each other at once (1F1B's steady state), past MPI's eager size;
     * an odd rank out exchanges with itself */
    enum { LARGE = 1 << 18 };
    int partner = (r ^ 1) < n ? r ^ 1 : r;
    float *mine = malloc(LARGE * sizeof *mine), *theirs = malloc(LARGE * sizeof *theirs);
    for (int i = 0; i < LARGE; i++) {
        mine[i] = (float)(members[r] * LARGE + i);
        theirs[i] = -1.0f;
    }
    CHECK(comm_send_recv_start(c, mine, LARGE, partner, theirs, LARGE, partner, COMM_FLOAT32,
                               &requests[0], &requests[1], st) == 0);
    CHECK(requests[0].operation == COMM_SEND && requests[1].operation == COMM_RECV);
    CHECK(comm_wait_all(requests, 2, st) == 0);
    good = 1;
    for (int i = 0; i < LARGE; i++)
        good &= theirs[i] == (float)(members[partner] * LARGE + i);
    CHECK_MSG(good, "send_recv with rank %d on %s", partner, c->name);
    free(mine);
    free(theirs);
    comm_reset_counters(c);

    CHECK(comm_barrier(c, st) == 0);
    check_bytes(c, COMM_BARRIER, 0);
}

static void check_all_to_all(comm *c, const int *members, status *st) {
    int n = c->size, r = c->rank;
    int64_t *send = malloc((size_t)n * COUNT * sizeof *send);
    int64_t *recv = malloc((size_t)n * COUNT * sizeof *recv);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < COUNT; i++)
            send[j * COUNT + i] = members[r] * 1000 + j * 100 + i;
    CHECK(comm_all_to_all(c, send, recv, COUNT, COMM_INT64, st) == 0);
    int good = 1;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < COUNT; i++)
            good &= recv[j * COUNT + i] == members[j] * 1000 + r * 100 + i;
    CHECK_MSG(good, "all_to_all on %s", c->name);
    check_bytes(c, COMM_ALL_TO_ALL, (double)(n - 1) * COUNT * 8);

    /* v: rank a sends (a + b) % 3 elements to rank b, each block placed in reverse order */
    size_t send_counts[8], send_offsets[8], recv_counts[8], recv_offsets[8], s = 0, q = 0;
    for (int j = n - 1; j >= 0; j--) {
        send_counts[j] = (size_t)((r + j) % 3);
        recv_counts[j] = (size_t)((j + r) % 3);
        send_offsets[j] = s;
        recv_offsets[j] = q;
        s += send_counts[j];
        q += recv_counts[j];
    }
    for (int j = 0; j < n; j++)
        for (size_t i = 0; i < send_counts[j]; i++)
            send[send_offsets[j] + i] = members[r] * 1000 + j * 100 + (int64_t)i;
    CHECK(comm_all_to_all_v(c, send, send_counts, send_offsets, recv, recv_counts, recv_offsets,
                            COMM_INT64, st) == 0);
    good = 1;
    for (int j = 0; j < n; j++)
        for (size_t i = 0; i < recv_counts[j]; i++)
            good &= recv[recv_offsets[j] + i] == members[j] * 1000 + r * 100 + (int64_t)i;
    CHECK_MSG(good, "all_to_all_v on %s", c->name);
    size_t out = s - send_counts[r], in = q - recv_counts[r];
    check_bytes(c, COMM_ALL_TO_ALL, (double)(out > in ? out : in) * 8);

    /* received blocks with a gap after each: the gaps keep what they held */
    int64_t *spaced = malloc(((size_t)n * COUNT + (size_t)n) * sizeof *spaced);
    for (int j = 0, at = 0; j < n; j++) {
        recv_offsets[j] = (size_t)at;
        at += (int)recv_counts[j] + 1;
    }
    for (int i = 0; i < n * COUNT + n; i++)
        spaced[i] = -7;
    CHECK(comm_all_to_all_v(c, send, send_counts, send_offsets, spaced, recv_counts, recv_offsets,
                            COMM_INT64, st) == 0);
    good = 1;
    for (int j = 0; j < n; j++) {
        for (size_t i = 0; i < recv_counts[j]; i++)
            good &= spaced[recv_offsets[j] + i] == members[j] * 1000 + r * 100 + (int64_t)i;
        good &= spaced[recv_offsets[j] + recv_counts[j]] == -7;
    }
    CHECK_MSG(good, "all_to_all_v into blocks with gaps on %s", c->name);
    comm_reset_counters(c);
    free(spaced);
    free(send);
    free(recv);
}

/* Two collectives in flight on one communicator, completed in the reverse order. */
static void check_overlap(comm *c, status *st) {
    int n = c->size;
    double a[COUNT], *b = malloc((size_t)n * COUNT * sizeof *b), out[COUNT];
    for (int i = 0; i < COUNT; i++)
        a[i] = 1.0;
    for (int i = 0; i < n * COUNT; i++)
        b[i] = 2.0;
    comm_request requests[2];
    CHECK(comm_all_reduce_start(c, a, a, COUNT, COMM_FLOAT64, COMM_SUM, &requests[0], st) == 0);
    CHECK(comm_reduce_scatter_start(c, b, out, COUNT, COMM_FLOAT64, COMM_SUM, &requests[1], st) ==
          0);
    CHECK(comm_wait(&requests[1], st) == 0 && comm_wait(&requests[0], st) == 0);
    CHECK(a[0] == n && a[COUNT - 1] == n && out[0] == 2.0 * n && out[COUNT - 1] == 2.0 * n);
    free(b);
    comm_reset_counters(c);
}

static void check_grid(int world_rank, int world_size, int tp, int pp, int ep) {
    status st = {{0}};
    parallel_config cfg = {.tp = tp, .pp = pp, .ep = ep, .comm = COMM_MPI, .timeout_s = 60};
    parallel_topology t;
    if (topology_create(&t, &cfg, &st) != 0) {
        CHECK_MSG(0, "grid %dx%d ep %d: %s", tp, pp, ep, st.message);
        return;
    }
    hand_grid h = {tp, pp, world_size / (tp * pp), ep, 0, 0, 0, 0, 0};
    hand_place(&h, world_rank);
    for (int axis = 0; axis < AXIS_COUNT; axis++) {
        comm *c = &t.comms[axis];
        int members[8], hand[8];
        grid_members(&t.grid, (parallel_axis)axis, members);
        CHECK(c->rank == hand_coordinate(&h, (parallel_axis)axis, world_rank));
        CHECK(t.grid.rank[axis] == c->rank);
        for (int i = 0; i < c->size; i++) {
            hand[i] = hand_member(&h, (parallel_axis)axis, i);
            CHECK_MSG(members[i] == hand[i], "grid %dx%dx%d ep %d: %s member %d is %d, not %d", tp,
                      h.dp, pp, ep, c->name, i, members[i], hand[i]);
        }
        CHECK(hand[c->rank] == world_rank);
        /* every member agrees on who the members are */
        int64_t mine[8] = {0}, seen[8 * 8];
        for (int i = 0; i < c->size; i++)
            mine[i] = hand[i];
        CHECK(comm_all_gather(c, mine, seen, 8, COMM_INT64, &st) == 0);
        for (int j = 0; j < c->size; j++)
            for (int i = 0; i < c->size; i++)
                CHECK(seen[j * 8 + i] == hand[i]);
        comm_reset_counters(c);
        check_all_reduce(c, hand, &st);
        check_reduce_scatter(c, hand, &st);
        check_all_gather(c, hand, &st);
        check_point_to_point(c, hand, &st);
        check_all_to_all(c, hand, &st);
        check_overlap(c, &st);
    }
    CHECK(t.comms[AXIS_WORLD].size == world_size && t.comms[AXIS_DP].size == h.dp &&
          t.comms[AXIS_EXPERT_DP].size == h.dp / ep && t.comms[AXIS_MODEL].size == tp * pp);

    /* the same operations on the device communicators, staged through host buffers */
    comm_device_memory memory = {count_to_host, count_to_device};
    CHECK(topology_attach_device(&t, COMM_MPI, &memory, &st) == 0);
    CHECK(strcmp(t.device_kind, "mpi (host-staged)") == 0);
    for (int axis = 0; axis < AXIS_COUNT; axis++) {
        comm *c = t.device[axis];
        int staged = axis != AXIS_WORLD && axis != AXIS_MODEL;
        CHECK_MSG((c != &t.comms[axis]) == staged, "axis %s staged: %d", c->name, staged);
        if (!staged) continue;
        CHECK(c->size == t.comms[axis].size && c->rank == t.comms[axis].rank &&
              strcmp(c->ops->name, "mpi (host-staged)") == 0);
        int hand[8];
        for (int i = 0; i < c->size; i++)
            hand[i] = hand_member(&h, (parallel_axis)axis, i);
        long to_device_before = copies_to_device, to_host_before = copies_to_host;
        check_all_reduce(c, hand, &st);
        /* fp32, fp64 in place, int64 max and sum, bf16 sum and max: each goes out and back */
        CHECK_MSG(copies_to_device - to_device_before == 6 && copies_to_host - to_host_before == 6,
                  "all_reduce on staged %s: %ld copies to the device, %ld to the host", c->name,
                  copies_to_device - to_device_before, copies_to_host - to_host_before);
        check_reduce_scatter(c, hand, &st);
        check_all_gather(c, hand, &st);
        check_point_to_point(c, hand, &st);
        check_all_to_all(c, hand, &st);
        check_overlap(c, &st);
        CHECK_MSG(comm_bytes_total(&t.comms[axis]) == 0,
                  "staged %s: the host comm counted %.0f bytes", c->name,
                  comm_bytes_total(&t.comms[axis]));
    }
    topology_destroy(&t);
}

static void check_errors(comm *c) {
    status st = {{0}};
    size_t huge = (size_t)INT_MAX + 1;
    CHECK(comm_all_reduce(c, NULL, NULL, huge, COMM_FLOAT32, COMM_SUM, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "comm world: all_reduce: 2147483648 elements exceed");
    CHECK(c->counters.calls[COMM_ALL_REDUCE] == 0);
    int64_t x = 0;
    CHECK(comm_send(c, &x, 1, COMM_INT64, c->size, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "comm world: send: rank");
    CHECK(comm_bytes_moved(COMM_ALL_REDUCE, 1, 100, 100) == 0);
    CHECK(comm_bytes_moved(COMM_ALL_REDUCE, 4, 100, 25) == 150);
    CHECK(comm_bytes_moved(COMM_ALL_GATHER, 4, 100, 25) == 75);
}

int main(int argc, char **argv) {
    parallel_process p;
    status st = {{0}};
    mpi_test_init(&argc, &argv, &p, "test_comm");
    CHECK(p.size == 2 || p.size == 4 || p.size == 8);
    int grids = 0;
    for (int tp = 1; tp <= p.size; tp++)
        for (int pp = 1; tp * pp <= p.size; pp++) {
            if (p.size % (tp * pp)) continue;
            int dp = p.size / (tp * pp);
            for (int ep = 1; ep <= dp; ep++)
                if (dp % ep == 0) {
                    check_grid(p.rank, p.size, tp, pp, ep);
                    grids++;
                }
        }
    CHECK(grids == (p.size == 2 ? 4 : p.size == 4 ? 10 : 20));
    parallel_config cfg = {.tp = 1, .pp = 1, .ep = 1, .comm = COMM_MPI, .timeout_s = 60};
    parallel_topology t;
    CHECK(topology_create(&t, &cfg, &st) == 0);
    check_errors(&t.comms[AXIS_WORLD]);
    topology_destroy(&t);

    if (p.rank == 0) printf("test_comm: %d ranks, %d grids\n", p.size, grids);
    return mpi_test_summary(&p, "test_comm");
}
