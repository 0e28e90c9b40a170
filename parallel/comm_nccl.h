/* The NCCL backend of the comm interface: device memory of the current CUDA device, one rank per
 * GPU (NCCL refuses two ranks on one GPU).
 *
 * Contract: `comm_nccl_create` builds an NCCL communicator over the ranks of `host` (an MPI comm
 * of the same group), in the same rank order, with host's name and timeout; host rank 0 makes
 * the NCCL id and broadcasts it over `host`, so every member must call it at the same time, with
 * its own GPU current. `host` must outlive the NCCL comm: aborting (the timeout watchdog of
 * comm_wait) aborts the NCCL communicator, so no kernel stays stuck on the GPU, and then the job
 * through `host` (an NCCL abort still waiting for peers after 60 s ends the process instead).
 * Operations follow comm.h on device buffers, ordered after all work queued on the legacy default
 * stream when they start. Every operation runs on one NCCL communicator and one stream, one after
 * another in the order started, and a send finishes only once its receiver has reached the
 * matching receive: two ranks that message each other at the same time (1F1B's activations up
 * and gradients down) must do it as one comm_send_recv on each side (a grouped ncclSend +
 * ncclRecv), never as a send then a receive, which waits for ever. A receive must ask for exactly
 * the count its sender sends (NCCL matches counts, nccl.h). A message to oneself is a device
 * copy, whichever of send and receive starts first. A start that NCCL keeps busy past the timeout
 * aborts the job as comm_wait does; a create that does aborts the NCCL communicator and returns
 * -1. On a failed create (-1) `c` holds nothing to destroy. */
#ifndef CAIRN_COMM_NCCL_H
#define CAIRN_COMM_NCCL_H

#include "parallel/comm.h"

int comm_nccl_create(comm *c, comm *host, status *st);

#endif
