/* One rank of the dp communicator stops taking part in an all-reduce; the others must give up
 * after parallel.timeout_s with one line naming the operation, the communicator and the timeout,
 * and take the job down (tests/parallel/dead_rank.sh runs it and checks the message and the
 * time). Usage: parallel_test_dead_rank ok|hang|kill|exit TIMEOUT_S. The last rank is the
 * victim: `hang` sleeps forever, `kill` raises SIGKILL on itself, `exit` calls exit(1) without
 * MPI_Finalize; `ok` completes normally. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parallel/launch.h"
#include "parallel/topology.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s ok|hang|kill|exit TIMEOUT_S\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    parallel_process p;
    status st = {{0}};
    if (parallel_init(&argc, &argv, &p, &st) != 0) {
        fprintf(stderr, "test_dead_rank: %s\n", st.message);
        return 1;
    }
    parallel_config cfg = {.tp = 1, .pp = 1, .ep = 1, .comm = COMM_MPI, .timeout_s = atof(argv[2])};
    parallel_topology t;
    if (topology_create(&t, &cfg, &st) != 0) {
        fprintf(stderr, "test_dead_rank: %s\n", st.message);
        return 1;
    }
    comm *dp = &t.comms[AXIS_DP];
    double value = 1;
    /* a first collective that everyone joins: the communicator works */
    if (comm_all_reduce(dp, &value, &value, 1, COMM_FLOAT64, COMM_SUM, &st) != 0 ||
        value != dp->size) {
        fprintf(stderr, "test_dead_rank: warm-up all_reduce failed: %s\n", st.message);
        return 1;
    }
    if (dp->rank == dp->size - 1) {
        if (strcmp(mode, "hang") == 0)
            for (;;)
                pause();
        if (strcmp(mode, "kill") == 0) raise(SIGKILL);
        if (strcmp(mode, "exit") == 0) exit(1);
    }
    if (comm_all_reduce(dp, &value, &value, 1, COMM_FLOAT64, COMM_SUM, &st) != 0) {
        fprintf(stderr, "test_dead_rank: %s\n", st.message);
        return 1;
    }
    printf("test_dead_rank: rank %d completed (sum %g)\n", dp->rank, value);
    topology_destroy(&t);
    parallel_finalize(&p);
    return 0;
}
