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
 * stream when they start. Collectives and messages to higher ranks run on one NCCL communicator
 * and stream, messages to lower ranks on a second pair, each one after another in the order
 * started (NCCL serialises a communicator's kernels). So two ranks may each send to the other
 * before receiving (1F1B's activations up and gradients down), but the messages of one direction
 * between two ranks must be started in the same order on both. A message to oneself is a device
 * copy, whichever of send and receive starts first. On a failed create (-1) `c` holds nothing to
 * destroy. */
#ifndef CAIRN_COMM_NCCL_H
#define CAIRN_COMM_NCCL_H

#include "parallel/comm.h"

int comm_nccl_create(comm *c, comm *host, status *st);

#endif
