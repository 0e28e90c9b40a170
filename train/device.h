/* Chooses the backend for `device: auto|cpu|cuda`: auto takes CUDA when this
 * binary has it and a GPU answers, else the CPU; `cuda` without a usable GPU
 * is an error that says why. A rank takes the GPU `local_rank % visible GPUs`
 * (one rank per GPU; local_rank is its place among its node's ranks).
 * `description` names the device for run.json and the progress output. */
#ifndef CAIRN_DEVICE_H
#define CAIRN_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "kernels/ops.h"
#include "parallel/comm.h"
#include "train/config.h"

int device_select(device_kind kind, int local_rank, const ops **out, char *description,
                  size_t description_size, status *st);

/* This machine, as a hash of its host name and boot id (what NCCL tells hosts apart by). */
uint64_t device_host_hash(void);

/* How many distinct devices the ranks of `world` compute on: the backend's device_identity on
 * each rank's `host` (device_host_hash; a rank on host memory, or whose driver does not name its
 * GPU, counts none). Every rank of `world` calls it and gets the same answer, so every rank then
 * makes the same choice. Counting devices rather than the GPUs a process sees is what holds
 * under Slurm's --gpus-per-task and per-rank CUDA_VISIBLE_DEVICES, where each rank sees one GPU
 * of its own. */
int device_count_distinct(comm *world, const ops *o, uint64_t host, int *devices, status *st);

/* The communicator for the backend's buffers under `parallel.comm: auto|mpi|nccl`, for `ranks`
 * ranks that compute on `devices` distinct devices: MPI when the backend computes in host memory
 * (nccl is then an error); with GPUs, auto takes NCCL when each rank has a GPU of its own (NCCL
 * refuses two ranks on one GPU) and MPI through host buffers otherwise, and nccl with fewer GPUs
 * than ranks is an error that says so. */
int device_comm_choose(comm_kind requested, const ops *o, int ranks, int devices, comm_kind *chosen,
                       status *st);

#endif
