/* Bytes moved per rank per step by the data-parallel gradient reduction of the default tiny
 * model, plain all-reduce versus ZeRO-1 (reduce-scatter + all-gather), against the theoretical
 * minimum of the collectives. Run under mpirun; tests/bench/comm_bytes.sh runs 2/4/8 ranks and
 * adds what Open MPI actually sent (its pml monitoring).
 * Usage: bench_comm_bytes dp|zero|none STEPS [BUCKET_ELEMENTS]
 * Prints (rank 0) one line: RESULT mode ranks params padded buckets accounted minimum ms_per_step
 * (bytes per rank per step; accounted = the comm counters' mean over ranks). `none` sets up and
 * moves nothing: the baseline for the monitoring's setup traffic. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parallel/data_parallel.h"
#include "parallel/grad_norm.h"
#include "parallel/launch.h"
#include "parallel/topology.h"
#include "parallel/zero.h"
#include "train/config.h"
#include "train/model.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(const char *what, const status *st) {
    fprintf(stderr, "bench_comm_bytes: %s: %s\n", what, st->message);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
}

/* Reports the model's tensors from the last to the first, as the backward pass finishes them. */
static int report_tensors(data_parallel *d, const model *m, status *st) {
    for (int i = m->param_count - 1; i >= 0; i--)
        if (dp_grad_ready(d, m->params[i].offset, m->params[i].count, st) != 0) return -1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s dp|zero|none STEPS [BUCKET_ELEMENTS]\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    int steps = atoi(argv[2]), zero = strcmp(mode, "zero") == 0, none = strcmp(mode, "none") == 0;
    size_t bucket = argc > 3 ? (size_t)atoll(argv[3]) : 0;
    parallel_process p;
    status st = {{0}};
    if (parallel_init(&argc, &argv, &p, &st) != 0) return fail("init", &st);

    config c;
    config_defaults(&c);
    c.model.vocab = 258; /* the built-in byte tokenizer: 256 bytes + <|endoftext|> + <|pad|> */
    c.train.global_batch = c.train.micro_batch * p.size;
    if (config_resolve(&c, p.size, &st) != 0) return fail("config", &st);
    const ops *o = ops_cpu();
    model m;
    if (model_create(&m, o, &c, 256, &st) != 0) return fail("model", &st);
    parallel_topology t;
    if (topology_create(&t, &c.parallel, &st) != 0) return fail("topology", &st);
    comm *dp = &t.comms[AXIS_DP];
    if (bucket == 0) bucket = dp_bucket_elements(dp->size);

    zero_optimizer z;
    size_t count = m.total_params;
    if (zero_create(&z, dp, o, &c.optim, m.total_params, m.decayed_params, ZERO_ALIGN, &st) != 0)
        return fail("zero", &st);
    if (zero) count = z.layout.padded;
    float *master = calloc(count, sizeof *master), *grads = calloc(count, sizeof *grads);
    data_parallel d;
    if (dp_create(&d, dp, grads, count, COMM_FLOAT32, bucket, zero ? &z.layout : NULL, &st) != 0)
        return fail("data_parallel", &st);

    double start = now_seconds();
    for (int step = 0; step < steps && !none; step++) {
        for (size_t i = 0; i < m.total_params; i++)
            grads[i] = 1e-3f * (float)((i + step) % 17);
        if (report_tensors(&d, &m, &st) != 0 || dp_finish(&d, &st) != 0) return fail("reduce", &st);
        if (zero) {
            double norm;
            comm *groups[1] = {dp};
            if (grad_norm_reduce(zero_shard_sum_squares(&z, grads), groups, 1, &norm, &st) != 0)
                return fail("norm", &st);
            zero_step(&z, master, grads, 1e-3, norm, 1.0);
            if (zero_all_gather(&z, master, &st) != 0) return fail("all_gather", &st);
        }
    }
    double seconds = now_seconds() - start;
    /* the norm's 8-byte all-reduce is not gradient traffic: count what the arena moved */
    double accounted = dp->counters.bytes[COMM_ALL_REDUCE] * !zero +
                       dp->counters.bytes[COMM_REDUCE_SCATTER] +
                       dp->counters.bytes[COMM_ALL_GATHER];
    MPI_Allreduce(MPI_IN_PLACE, &accounted, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    int n = p.size, per_step = steps > 0 && !none;
    double minimum = 2.0 * (n - 1) / n * 4.0 * (double)m.total_params;
    if (p.rank == 0)
        printf("RESULT %s %d %zu %zu %d %.0f %.0f %.3f\n", mode, n, m.total_params,
               zero ? z.layout.padded : m.total_params, d.bucket_count,
               per_step ? accounted / n / steps : 0.0, minimum,
               per_step ? 1e3 * seconds / steps : 0.0);
    dp_destroy(&d);
    free(master);
    free(grads);
    zero_destroy(&z);
    topology_destroy(&t);
    model_destroy(&m);
    parallel_finalize(&p);
    return 0;
}
