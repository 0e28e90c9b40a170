/* The grid mapping (worked examples and, for every layout of up to 64 ranks, a bijection whose
 * groups partition the world), the size errors, the launcher variables and their cross-check
 * with MPI (the mismatch messages), parallel_init under mpirun (np 1 and 4), and the count of
 * distinct devices behind the communicator choice (ranks on GPUs of their own, sharing, none).
 * With --expect-launch-mismatch (run as a singleton with SLURM_* saying 4 tasks) parallel_init
 * must fail with the srun --mpi=pmix hint. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parallel/topology.h"
#include "tests/parallel/mpi_check.h"
#include "train/device.h"

static void check_examples(void) {
    status st = {{0}};
    parallel_grid g;
    /* 16 ranks, tp 2, pp 2 → dp 4, ep 2 → expert_dp 2. Rank 13 = 1 + 2 · (2 + 4 · 1). */
    CHECK(grid_init(&g, 16, 2, 2, 2, &st) == 0);
    CHECK(g.size[AXIS_DP] == 4 && g.size[AXIS_EXPERT_DP] == 2 && g.size[AXIS_MODEL] == 4);
    grid_place(&g, 13);
    CHECK(g.rank[AXIS_TP] == 1 && g.rank[AXIS_DP] == 2 && g.rank[AXIS_PP] == 1);
    CHECK(g.rank[AXIS_EP] == 0 && g.rank[AXIS_EXPERT_DP] == 1 && g.rank[AXIS_MODEL] == 3);
    int m[16];
    grid_members(&g, AXIS_TP, m);
    CHECK(m[0] == 12 && m[1] == 13);
    grid_members(&g, AXIS_DP, m);
    CHECK(m[0] == 9 && m[1] == 11 && m[2] == 13 && m[3] == 15);
    grid_members(&g, AXIS_PP, m);
    CHECK(m[0] == 5 && m[1] == 13);
    grid_members(&g, AXIS_EP, m);
    CHECK(m[0] == 13 && m[1] == 15);
    grid_members(&g, AXIS_EXPERT_DP, m);
    CHECK(m[0] == 9 && m[1] == 13);
    grid_members(&g, AXIS_MODEL, m);
    CHECK(m[0] == 4 && m[1] == 5 && m[2] == 12 && m[3] == 13);
    /* Apertus 8B on 1024 GPUs: tp 2, pp 1 → dp 512 */
    CHECK(grid_init(&g, 1024, 2, 1, 1, &st) == 0 && g.size[AXIS_DP] == 512);
    grid_place(&g, 1023);
    CHECK(g.rank[AXIS_TP] == 1 && g.rank[AXIS_DP] == 511 && g.rank[AXIS_PP] == 0);

    CHECK(grid_init(&g, 6, 4, 1, 1, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "tp*pp (=4*1) must divide the number of ranks (6)");
    CHECK(grid_init(&g, 8, 2, 1, 3, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "ep (=3) must divide the data-parallel size (dp=4)");
    CHECK(grid_init(&g, 8, 0, 1, 1, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "sizes must be >= 1");
}

/* Every layout of `world` ranks: world rank ↔ coordinates is a bijection, and on each axis the
 * groups partition the ranks, each rank sitting at its coordinate in its group. */
static void check_all_layouts(int world) {
    status st = {{0}};
    for (int tp = 1; tp <= world; tp++)
        for (int pp = 1; tp * pp <= world; pp++) {
            if (world % (tp * pp)) continue;
            int dp = world / (tp * pp);
            for (int ep = 1; ep <= dp; ep++) {
                if (dp % ep) continue;
                parallel_grid g;
                CHECK(grid_init(&g, world, tp, pp, ep, &st) == 0);
                int good = 1;
                for (int axis = 1; axis < AXIS_COUNT; axis++) {
                    int *owner = calloc((size_t)world, sizeof *owner), members[64];
                    for (int w = 0; w < world; w++) {
                        grid_place(&g, w);
                        good &= g.rank[AXIS_WORLD] == w;
                        grid_members(&g, (parallel_axis)axis, members);
                        good &= members[g.rank[axis]] == w;
                        /* the group's first member names it; every member agrees */
                        for (int i = 0; i < g.size[axis]; i++) {
                            int first = members[0] + 1;
                            good &= owner[members[i]] == 0 || owner[members[i]] == first;
                            owner[members[i]] = first;
                        }
                    }
                    free(owner);
                }
                CHECK_MSG(good, "layout world=%d tp=%d pp=%d ep=%d", world, tp, pp, ep);
            }
        }
}

static void set_launcher(const char *const *pairs) {
    const char *all[] = {
        "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
        "SLURM_PROCID",         "SLURM_NTASKS",         "SLURM_STEP_NUM_TASKS",
        "SLURM_LOCALID",        "SLURM_STEP_ID",        "PMIX_RANK"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        unsetenv(all[i]);
    for (; pairs[0]; pairs += 2)
        setenv(pairs[0], pairs[1], 1);
}

/* Runs in-process with the environment rewritten; restored by the caller. */
static void check_launch_variables(void) {
    status st = {{0}};
    launch_env env;
    set_launcher((const char *[]){NULL});
    launch_env_read(&env);
    CHECK(strcmp(env.launcher, "none") == 0 && env.rank == -1 && env.size == -1);
    CHECK(launch_env_check(&env, 0, 1, &st) == 0);

    set_launcher((const char *[]){"SLURM_PROCID", "3", "SLURM_NTASKS", "4", "SLURM_STEP_ID", "0",
                                  "SLURM_LOCALID", "1", NULL});
    launch_env_read(&env);
    CHECK(strcmp(env.launcher, "srun") == 0 && env.rank == 3 && env.size == 4 &&
          env.local_rank == 1);
    CHECK(launch_env_check(&env, 3, 4, &st) == 0);
    CHECK(launch_env_check(&env, 0, 1, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "SLURM_NTASKS=4 but MPI sees a single rank");
    CHECK_STR_CONTAINS(st.message, "--mpi=pmix");
    CHECK(launch_env_check(&env, 3, 8, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "SLURM_NTASKS=4 but MPI has 8 ranks");
    CHECK(launch_env_check(&env, 2, 4, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "SLURM_PROCID=3 but this is MPI rank 2");

    /* a batch script, not an srun step: no step id, the SLURM_* describe the allocation */
    set_launcher((const char *[]){"SLURM_PROCID", "0", "SLURM_NTASKS", "8", NULL});
    launch_env_read(&env);
    CHECK(strcmp(env.launcher, "none") == 0);
    CHECK(launch_env_check(&env, 0, 1, &st) == 0);

    /* the step's own task count wins over the allocation's */
    set_launcher((const char *[]){"SLURM_PROCID", "1", "SLURM_NTASKS", "8", "SLURM_STEP_ID", "2",
                                  "SLURM_STEP_NUM_TASKS", "2", NULL});
    launch_env_read(&env);
    CHECK(env.size == 2 && strcmp(env.size_variable, "SLURM_STEP_NUM_TASKS") == 0);

    /* mpirun inside an allocation: OMPI_* describe the rank even though SLURM_* are there */
    set_launcher((const char *[]){"OMPI_COMM_WORLD_RANK", "1", "OMPI_COMM_WORLD_SIZE", "2",
                                  "OMPI_COMM_WORLD_LOCAL_RANK", "1", "SLURM_PROCID", "0",
                                  "SLURM_NTASKS", "4", "SLURM_STEP_ID", "0", NULL});
    launch_env_read(&env);
    CHECK(strcmp(env.launcher, "mpirun") == 0 && env.rank == 1 && env.size == 2);
    CHECK(launch_env_check(&env, 1, 2, &st) == 0);

    set_launcher((const char *[]){"PMIX_RANK", "5", NULL});
    launch_env_read(&env);
    CHECK(strcmp(env.launcher, "pmix") == 0 && env.rank == 5 && env.size == -1);
    CHECK(launch_env_check(&env, 4, 8, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "PMIX_RANK=5 but this is MPI rank 4");

    set_launcher(
        (const char *[]){"SLURM_PROCID", "x1", "SLURM_NTASKS", "4", "SLURM_STEP_ID", "0", NULL});
    launch_env_read(&env);
    CHECK(env.rank == -1 && env.size == 4);
}

/* Saves the launcher variables of this process so the in-process rewrites can be undone. */
typedef struct saved_env {
    char *pairs[32];
    int count;
} saved_env;

static void save_env(saved_env *s) {
    const char *names[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                           "OMPI_COMM_WORLD_LOCAL_RANK", "PMIX_RANK"};
    s->count = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *value = getenv(names[i]);
        if (!value) continue;
        s->pairs[s->count++] = strdup(names[i]);
        s->pairs[s->count++] = strdup(value);
    }
    s->pairs[s->count] = NULL;
}

static void restore_env(saved_env *s) {
    set_launcher((const char *const *)s->pairs);
    for (int i = 0; i < s->count; i++)
        free(s->pairs[i]);
}

static int expect_launch_mismatch(int argc, char **argv) {
    parallel_process p;
    status st = {{0}};
    CHECK(parallel_init(&argc, &argv, &p, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "launched by srun: SLURM_NTASKS=4 but MPI sees a single rank");
    printf("the expected error: %s\n", st.message);
    parallel_finalize(&p);
    return check_summary("test_topology --expect-launch-mismatch");
}

/* The device this test's rank pretends to compute on: 0 none, else a name (among its host's
 * devices) whose only non-zero byte is the last (so the count must compare all 16 bytes). */
static int pretend_device;

static int pretend_identity(unsigned char identity[16]) {
    memset(identity, 0, 16);
    identity[15] = (unsigned char)pretend_device;
    return pretend_device ? 0 : -1;
}

/* Every rank must get the same count, and auto must take NCCL exactly when it equals the ranks.
 * `host`: the machine the rank pretends to run on. */
static void check_device_count(parallel_topology *t, int rank, int size, uint64_t host, int device,
                               int expected) {
    ops backend = *ops_cpu();
    backend.host_memory = 0;
    backend.device_identity = pretend_identity;
    pretend_device = device;
    status st = {{0}};
    int devices = -1;
    CHECK_MSG(device_count_distinct(&t->comms[AXIS_WORLD], &backend, host, &devices, &st) == 0,
              "%s", st.message);
    CHECK_MSG(devices == expected, "rank %d: %d devices, expected %d", rank, devices, expected);
    comm_kind chosen;
    CHECK(device_comm_choose(COMM_AUTO, &backend, size, devices, &chosen, &st) == 0);
    CHECK(chosen == (expected == size ? COMM_NCCL : COMM_MPI));
}

static void check_device_counts(parallel_topology *t, int rank, int size) {
    uint64_t here = device_host_hash();
    check_device_count(t, rank, size, here, rank + 1, size); /* a GPU each (--gpus-per-task=1) */
    check_device_count(t, rank, size, here, rank / 2 + 1, (size + 1) / 2); /* two ranks per GPU */
    check_device_count(t, rank, size, here, rank == 0 ? 0 : rank + 1, size - 1); /* one without */
    check_device_count(t, rank, size, here, 7, 1); /* all on one GPU */
    /* the same place on different machines is a different GPU */
    check_device_count(t, rank, size, (uint64_t)rank, 7, size);
    check_device_count(t, rank, size, (uint64_t)(rank / 2), 7, (size + 1) / 2);
    ops host_memory = *ops_cpu();
    int devices = -1;
    status st = {{0}};
    CHECK(device_count_distinct(&t->comms[AXIS_WORLD], &host_memory, here, &devices, &st) == 0 &&
          devices == 0);
    CHECK(device_host_hash() == here); /* the same machine hashes alike every time */
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--expect-launch-mismatch") == 0)
        return expect_launch_mismatch(argc, argv);
    parallel_process p;
    status st = {{0}};
    mpi_test_init(&argc, &argv, &p, "test_topology");
    CHECK(strcmp(p.env.launcher, "mpirun") == 0 && p.env.rank == p.rank && p.env.size == p.size);
    CHECK(p.nodes == 1 && p.local_size == p.size && p.local_rank == p.rank);
    CHECK(p.env.local_rank == p.local_rank);
    if (p.rank == 0) {
        check_examples();
        for (int world = 1; world <= 64; world++)
            check_all_layouts(world);
        saved_env saved;
        save_env(&saved);
        check_launch_variables();
        restore_env(&saved);
    }
    /* the configured timeout reaches every communicator */
    parallel_config cfg = {.tp = 1, .pp = 1, .ep = 1, .comm = COMM_MPI, .timeout_s = 12.5};
    parallel_topology t;
    CHECK_MSG(topology_create(&t, &cfg, &st) == 0, "%s", st.message);
    for (int axis = 0; axis < AXIS_COUNT; axis++) {
        CHECK(t.comms[axis].timeout_s == 12.5 && strcmp(t.comms[axis].ops->name, "mpi") == 0);
        CHECK(strcmp(t.comms[axis].name, parallel_axis_name((parallel_axis)axis)) == 0);
    }
    CHECK(t.comms[AXIS_DP].size == p.size && t.comms[AXIS_TP].size == 1);
    check_device_counts(&t, p.rank, p.size);
    topology_destroy(&t);
    cfg.tp = 3;
    CHECK(topology_create(&t, &cfg, &st) == (p.size % 3 ? -1 : 0));
    if (p.size % 3)
        CHECK_STR_CONTAINS(st.message, "must divide the number of ranks");
    else
        topology_destroy(&t);

    return mpi_test_summary(&p, "test_topology");
}
