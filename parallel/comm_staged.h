/* A communicator for device memory carried by a host-memory communicator (MPI): every operation
 * copies its input to host buffers, runs there, and copies the result back to the device when
 * it completes. This is how `parallel.comm: mpi` serves the CUDA backend, and how several ranks
 * share one GPU in tests (NCCL refuses two ranks on one GPU).
 *
 * Contract: the staged comm has the host comm's ranks, name and timeout and the same semantics
 * (comm.h), on buffers that only `memory` can read and write. Copies to the host happen when an
 * operation starts (`to_host` must be ordered after the work that produced the data, as the CUDA
 * backend's synchronous cudaMemcpy is); copies back happen when `comm_test`/`comm_wait` sees
 * the host operation complete. Bytes are counted on the staged comm only (the host comm's
 * counters stay as they were). Host buffers are reused between operations. `host` and `memory`
 * must outlive the staged comm; destroying it leaves the host comm alone. */
#ifndef CAIRN_COMM_STAGED_H
#define CAIRN_COMM_STAGED_H

#include <stddef.h>

#include "parallel/comm.h"

typedef struct comm_device_memory {
    void (*to_host)(void *host, const void *device, size_t bytes);
    void (*to_device)(void *device, const void *host, size_t bytes);
} comm_device_memory;

int comm_staged_create(comm *c, comm *host, const comm_device_memory *memory, status *st);

#endif
