/* The MPI backend of the comm interface: host memory, any MPI-3 library (Open MPI here).
 *
 * Contract: `comm_mpi_create` takes ownership of an MPI communicator (comm_destroy frees it; a
 * failed create frees it too), switches it to MPI_ERRORS_RETURN so MPI errors come back as
 * statuses, and serves every operation with MPI's non-blocking collectives, polled by
 * comm_wait. Counts above INT_MAX elements (MPI-3 counts are int) are an error naming the
 * operation. Aborting tears down MPI_COMM_WORLD. */
#ifndef CAIRN_COMM_MPI_H
#define CAIRN_COMM_MPI_H

#include <mpi.h>

#include "parallel/comm.h"

int comm_mpi_create(comm *c, MPI_Comm mpi, const char *name, double timeout_s, status *st);
/* The MPI communicator behind an MPI comm (to bootstrap another backend on the same group). */
MPI_Comm comm_mpi_handle(const comm *c);

#endif
