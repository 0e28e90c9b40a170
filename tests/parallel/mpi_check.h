/* The start and end every MPI test shares: MPI initialised through parallel_init (with the
 * launcher cross-check), and an exit status that fails on every rank as soon as any rank failed a
 * CHECK (so mpirun's status does not depend on which rank failed). */
#ifndef CAIRN_TESTS_MPI_CHECK_H
#define CAIRN_TESTS_MPI_CHECK_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "parallel/launch.h"
#include "tests/unit/check.h"

static inline void mpi_test_init(int *argc, char ***argv, parallel_process *p, const char *name) {
    status st = {{0}};
    if (parallel_init(argc, argv, p, &st) != 0) {
        fprintf(stderr, "%s: %s\n", name, st.message);
        exit(1);
    }
}

static inline int mpi_test_summary(parallel_process *p, const char *name) {
    int failed = check_failed;
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int rc = check_summary(name);
    parallel_finalize(p);
    return rc || failed ? 1 : 0;
}

#endif
