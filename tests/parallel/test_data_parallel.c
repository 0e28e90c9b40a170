/* Data-parallel gradient buckets and ZeRO-1 under mpirun (np 2, 3, 4):
 * - bucketed all-reduce equals the plain sum over ranks for odd arena sizes and several bucket
 *   sizes, whatever order the ranges are reported in (bit-exact on integer-valued gradients,
 *   1e-6 on random ones), and buckets start as soon as they are complete;
 * - the ZeRO-1 layout (aligned, balanced, covering) for many sizes;
 * - ZeRO-1 steps (bucketed reduce-scatter, shard norm, shard update, all-gather) against the
 *   unsharded optimizer on the summed gradients, AdamW and AdEMAMix, with clipping;
 * - the gradient-norm hook (replicated tensors counted once, windows). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parallel/data_parallel.h"
#include "parallel/grad_norm.h"
#include "parallel/topology.h"
#include "parallel/zero.h"
#include "tests/parallel/mpi_check.h"
#include "train/config.h"

/* A deterministic uniform(-1, 1) from (seed, index). */
static float uniform(uint64_t seed, uint64_t i) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull + 1;
    x ^= x >> 31;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 29;
    return (float)((double)(x >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

/* Integer-valued gradient element of a rank: any summation order gives the same float. */
static float integer_grad(int rank, size_t i) {
    return (float)((long)((rank + 1) * (i * 7 + 3) % 97) - 48);
}

/* Reports [0, count) from the end backwards in ranges of varying length, as a backward pass
 * produces gradients; stops once `limit` elements are reported. */
static int report_backwards(data_parallel *d, size_t count, size_t limit, status *st) {
    size_t end = count, reported = 0, piece = 0;
    while (end > 0 && reported < limit) {
        size_t length = (piece++ * 13) % 50 + 1;
        if (length > end) length = end;
        if (length > limit - reported) length = limit - reported;
        if (dp_grad_ready(d, end - length, length, st) != 0) return -1;
        end -= length;
        reported += length;
    }
    return 0;
}

static void check_all_reduce_buckets(comm *c) {
    status st = {{0}};
    const size_t sizes[] = {1, 7, 1000, 4097}, buckets[] = {1, 3, 64, 1000, (size_t)1 << 20};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (size_t bi = 0; bi < sizeof buckets / sizeof buckets[0]; bi++) {
            size_t n = sizes[si], bucket = buckets[bi];
            float *grads = malloc(n * sizeof *grads);
            data_parallel d;
            CHECK(dp_create(&d, c, grads, n, COMM_FLOAT32, bucket, NULL, &st) == 0);
            int expected_buckets = (int)((n + bucket - 1) / bucket);
            CHECK(d.bucket_count == expected_buckets);
            for (int step = 0; step < 3; step++) {
                int random = step == 2;
                for (size_t i = 0; i < n; i++)
                    grads[i] = random ? uniform((uint64_t)c->rank, i) : integer_grad(c->rank, i);
                comm_reset_counters(c);
                if (step == 0) {
                    /* half reported: exactly the buckets entirely inside the reported tail start */
                    size_t half = n / 2, tail_start = n - half;
                    CHECK(report_backwards(&d, n, half, &st) == 0);
                    size_t first_full = (tail_start + bucket - 1) / bucket;
                    CHECK(dp_started_buckets(&d) == expected_buckets - (int)first_full);
                } else if (step == 1) {
                    CHECK(report_backwards(&d, n, n, &st) == 0);
                    CHECK(dp_started_buckets(&d) == expected_buckets);
                }
                CHECK(dp_finish(&d, &st) == 0);
                CHECK(dp_started_buckets(&d) == 0);
                double worst = 0;
                int exact = 1;
                for (size_t i = 0; i < n; i++) {
                    double sum = 0;
                    for (int r = 0; r < c->size; r++)
                        sum += random ? uniform((uint64_t)r, i) : integer_grad(r, i);
                    exact &= grads[i] == (float)sum;
                    worst = fmax(worst, fabs(grads[i] - sum));
                }
                if (random)
                    CHECK_MSG(worst <= 1e-6, "n=%zu bucket=%zu: %g", n, bucket, worst);
                else
                    CHECK_MSG(exact, "n=%zu bucket=%zu step %d", n, bucket, step);
                /* the buckets together move what one all-reduce of the arena moves */
                CHECK_NEAR(comm_bytes_total(c), 2.0 * (c->size - 1) / c->size * n * 4, 1e-6 * n);
                CHECK(c->counters.calls[COMM_ALL_REDUCE] == (uint64_t)expected_buckets);
            }
            dp_destroy(&d);
            free(grads);
        }

    float grads[10] = {0};
    data_parallel d;
    CHECK(dp_create(&d, c, grads, 10, COMM_FLOAT32, 4, NULL, &st) == 0);
    /* a double report is caught once it overfills a bucket */
    CHECK(dp_grad_ready(&d, 0, 4, &st) == 0 && dp_grad_ready(&d, 3, 1, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "bucket 0 [0, 4) got more ready elements than it holds");
    CHECK(dp_grad_ready(&d, 8, 3, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "range [8, 11) outside the arena of 10");
    CHECK(dp_finish(&d, &st) == 0);
    dp_destroy(&d);
    CHECK(dp_bucket_elements(1) == (size_t)1 << 25 && dp_bucket_elements(32) == (size_t)1 << 25);
    CHECK(dp_bucket_elements(512) == (size_t)512 << 20);
}

static void check_layouts(void) {
    const size_t totals[] = {0, 1, 100, 1001, 4099};
    const int dps[] = {1, 2, 3, 4, 8};
    const size_t aligns[] = {1, 8, 64};
    int good = 1;
    for (size_t t = 0; t < 5; t++)
        for (size_t d = 0; d < 5; d++)
            for (size_t a = 0; a < 3; a++) {
                size_t total = totals[t], decayed = total * 3 / 5, real = 0, real_decayed = 0;
                for (int r = 0; r < dps[d]; r++) {
                    zero_layout z;
                    zero_layout_init(&z, total, decayed, dps[d], r, aligns[a]);
                    size_t unit = (size_t)dps[d] * aligns[a];
                    good &= z.padded % unit == 0 && z.padded >= total && z.padded > 0;
                    good &= z.padded - total < unit || total == 0;
                    good &= z.shard * (size_t)dps[d] == z.padded && z.start % aligns[a] == 0;
                    good &= z.start == z.shard * (size_t)r && z.real <= z.shard;
                    real += z.real;
                    real_decayed += z.real_decayed;
                }
                good &= real == total && real_decayed == decayed;
            }
    CHECK(good);
    /* 1001 parameters, 600 decayed, 3 ranks, align 8: padded 1008, shards of 336; rank 1 holds
     * [336, 672) and straddles the decay boundary with 264 decayed elements. */
    zero_layout z;
    zero_layout_init(&z, 1001, 600, 3, 1, 8);
    CHECK(z.padded == 1008 && z.shard == 336 && z.start == 336 && z.real == 336);
    CHECK(z.real_decayed == 264);
    zero_layout_init(&z, 1001, 600, 3, 2, 8);
    CHECK(z.real == 329 && z.real_decayed == 0);
}

static void fill_step_grads(float *grads, size_t total, int step, int rank) {
    for (size_t i = 0; i < total; i++)
        grads[i] = uniform((uint64_t)(1000 * step + rank), i) * (i < 600 ? 1.0f : 0.1f);
}

/* ZeRO-1 against the unsharded optimizer on the summed gradients. */
static void check_zero_steps(comm *dp, optimizer_kind kind) {
    status st = {{0}};
    const size_t total = 1001, decayed = 600, align = 8;
    const ops *o = ops_cpu();
    config c;
    config_defaults(&c);
    optim_config cfg = c.optim;
    cfg.name = kind;
    cfg.ademamix_warmup = 2;

    zero_optimizer z;
    CHECK(zero_create(&z, dp, o, &cfg, total, decayed, align, &st) == 0);
    size_t padded = z.layout.padded;
    float *master = calloc(padded, sizeof *master), *grads = calloc(padded, sizeof *grads);
    float *ref_master = calloc(total, sizeof *ref_master),
          *ref_grads = calloc(total, sizeof *ref_grads);
    for (size_t i = 0; i < total; i++)
        master[i] = ref_master[i] = 0.02f * uniform(7, i);
    optimizer ref;
    CHECK(optimizer_create(&ref, o, &cfg, total, decayed, &st) == 0);
    data_parallel d;
    CHECK(dp_create(&d, dp, grads, padded, COMM_FLOAT32, 100, &z.layout, &st) == 0);

    double worst_param = 0, worst_norm = 0;
    for (int step = 1; step <= 3; step++) {
        memset(ref_grads, 0, total * sizeof *ref_grads);
        for (int r = 0; r < dp->size; r++) {
            fill_step_grads(grads, total, step, r);
            for (size_t i = 0; i < total; i++)
                ref_grads[i] += grads[i];
        }
        fill_step_grads(grads, total, step, dp->rank);
        comm_reset_counters(dp);
        CHECK(report_backwards(&d, padded, padded, &st) == 0);
        CHECK(dp_finish(&d, &st) == 0);
        /* the bucketed reduce-scatter moves what one reduce-scatter of the padded arena does */
        CHECK_NEAR(dp->counters.bytes[COMM_REDUCE_SCATTER], (double)(padded - z.layout.shard) * 4,
                   1e-9);
        double norm, ref_norm = sqrt(o->sum_squares(ref_grads, total));
        comm *groups[1] = {dp};
        CHECK(grad_norm_reduce(zero_shard_sum_squares(&z, grads), groups, 1, &norm, &st) == 0);
        worst_norm = fmax(worst_norm, fabs(norm - ref_norm) / ref_norm);
        CHECK(norm > 0.5); /* so that clipping is exercised */
        double lr = 0.01 * step;
        double clip = zero_step(&z, master, grads, lr, norm, 0.5);
        double ref_clip = optimizer_step(&ref, ref_master, ref_grads, lr, ref_norm, 0.5);
        CHECK_NEAR(clip, ref_clip, 1e-6 * ref_clip);
        CHECK(zero_all_gather(&z, master, &st) == 0);
        for (size_t i = 0; i < total; i++)
            worst_param = fmax(worst_param, fabs(master[i] - ref_master[i]));
        int padding_zero = 1;
        for (size_t i = total; i < padded; i++)
            padding_zero &= master[i] == 0.0f;
        CHECK(padding_zero);
    }
    if (dp->rank == 0)
        printf("ZeRO-1 %s, %d ranks, 3 steps: max |param - unsharded| = %.3g, grad norm relative "
               "difference %.3g\n",
               kind == OPTIM_ADEMAMIX ? "AdEMAMix" : "AdamW", dp->size, worst_param, worst_norm);
    CHECK_MSG(worst_param <= 1e-6, "%s: params differ by %g", kind ? "ademamix" : "adamw",
              worst_param);
    CHECK_MSG(worst_norm <= 1e-6, "grad norm differs by %g (relative)", worst_norm);
    if (dp->size == 2)
        CHECK_MSG(worst_param == 0, "2 ranks: expected bit-identical, %g", worst_param);

    /* global moments: gathered from the shards, then loaded back into a fresh sharded optimizer */
    optimizer full;
    CHECK(optimizer_create(&full, o, &cfg, total, decayed, &st) == 0);
    CHECK(zero_gather_moments(&z, &full, &st) == 0);
    CHECK(full.step == 3);
    double worst_moment = 0;
    for (size_t i = 0; i < total; i++) {
        worst_moment = fmax(worst_moment, fabs(((float *)full.m)[i] - ((float *)ref.m)[i]));
        worst_moment = fmax(worst_moment, fabs(((float *)full.v)[i] - ((float *)ref.v)[i]));
        if (kind == OPTIM_ADEMAMIX)
            worst_moment = fmax(worst_moment, fabs(((float *)full.m2)[i] - ((float *)ref.m2)[i]));
    }
    CHECK_MSG(worst_moment <= 1e-6, "moments differ by %g", worst_moment);
    zero_optimizer again;
    CHECK(zero_create(&again, dp, o, &cfg, total, decayed, align, &st) == 0);
    zero_load_moments(&again, &full);
    CHECK(again.opt.step == 3);
    CHECK(memcmp(again.opt.v, z.opt.v, z.layout.real * sizeof(float)) == 0);
    zero_destroy(&again);
    optimizer_destroy(&full);

    dp_destroy(&d);
    optimizer_destroy(&ref);
    zero_destroy(&z);
    free(master);
    free(grads);
    free(ref_master);
    free(ref_grads);
}

static void check_grad_norm_hook(void) {
    status st = {{0}};
    parallel_grid g;
    CHECK(grid_init(&g, 8, 2, 2, 1, &st) == 0);
    float grads[10];
    for (int i = 0; i < 10; i++)
        grads[i] = (float)(i + 1);
    /* [0, 4) sharded over tp (counted everywhere), [4, 6) replicated over tp (a norm weight),
     * [6, 10) replicated over pp (a tied embedding) */
    grad_norm_part parts[3] = {{0, 4, 0}, {4, 2, REPLICATED_TP}, {6, 4, REPLICATED_PP}};
    const ops *o = ops_cpu();
    double first_four = 1 + 4 + 9 + 16, norm_part = 25 + 36, tied = 49 + 64 + 81 + 100;
    grid_place(&g, 0); /* tp 0, pp 0 */
    CHECK(grad_norm_counts_here(&g, REPLICATED_TP | REPLICATED_PP));
    CHECK(grad_norm_local(o, grads, parts, 3, &g, 0, 10) == first_four + norm_part + tied);
    grid_place(&g, 1); /* tp 1, pp 0 */
    CHECK(!grad_norm_counts_here(&g, REPLICATED_TP));
    CHECK(grad_norm_local(o, grads, parts, 3, &g, 0, 10) == first_four + tied);
    grid_place(&g, 5); /* tp 1, pp 1 */
    CHECK(grad_norm_local(o, grads, parts, 3, &g, 0, 10) == first_four);
    grid_place(&g, 0);
    CHECK(grad_norm_local(o, grads, parts, 3, &g, 3, 4) == 16 + norm_part + 49);
    double norm;
    CHECK(grad_norm_reduce(9.0, NULL, 0, &norm, &st) == 0 && norm == 3.0);
}

int main(int argc, char **argv) {
    parallel_process p;
    status st = {{0}};
    mpi_test_init(&argc, &argv, &p, "test_data_parallel");
    parallel_config cfg = {.tp = 1, .pp = 1, .ep = 1, .comm = COMM_MPI, .timeout_s = 60};
    parallel_topology t;
    CHECK_MSG(topology_create(&t, &cfg, &st) == 0, "%s", st.message);
    comm *dp = &t.comms[AXIS_DP];
    check_all_reduce_buckets(dp);
    check_layouts();
    check_zero_steps(dp, OPTIM_ADAMW);
    check_zero_steps(dp, OPTIM_ADEMAMIX);
    check_grad_norm_hook();
    topology_destroy(&t);

    return mpi_test_summary(&p, "test_data_parallel");
}
