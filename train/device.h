/* Chooses the backend for `device: auto|cpu|cuda`: auto takes CUDA when this
 * binary has it and a GPU answers, else the CPU; `cuda` without a usable GPU
 * is an error that says why. A rank takes the GPU `local_rank % visible GPUs`
 * (one rank per GPU; local_rank is its place among its node's ranks).
 * `description` names the device for run.json and the progress output. */
#ifndef CAIRN_DEVICE_H
#define CAIRN_DEVICE_H

#include <stddef.h>

#include "common/status.h"
#include "kernels/ops.h"
#include "train/config.h"

int device_select(device_kind kind, int local_rank, const ops **out, char *description,
                  size_t description_size, status *st);

/* GPUs visible to this process (0 without CUDA in the build or a working driver). */
int device_visible_gpus(void);

/* The communicator for the backend's buffers under `parallel.comm: auto|mpi|nccl`, for a rank
 * whose node runs `ranks_on_node` ranks on `gpus` visible GPUs: MPI when the backend computes in
 * host memory (nccl is then an error); with GPUs, auto takes NCCL when each rank of the node has
 * a GPU of its own (NCCL refuses two ranks on one GPU) and MPI through host buffers otherwise,
 * and nccl with fewer GPUs than ranks on the node is an error that says so. */
int device_comm_choose(comm_kind requested, const ops *o, int ranks_on_node, int gpus,
                       comm_kind *chosen, status *st);

#endif
