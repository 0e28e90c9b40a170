#include "train/device.h"

#include <stdio.h>

int device_visible_gpus(void) {
#ifdef CAIRN_HAVE_CUDA
    return ops_cuda_device_count();
#else
    return 0;
#endif
}

int device_comm_choose(comm_kind requested, const ops *o, int ranks_on_node, int gpus,
                       comm_kind *chosen, status *st) {
    if (o->host_memory) {
        if (requested == COMM_NCCL)
            return status_fail(st, "parallel.comm: nccl needs the CUDA backend, but this run "
                               "computes on %s",
                               o->name);
        *chosen = COMM_MPI;
        return 0;
    }
    if (requested == COMM_NCCL && ranks_on_node > gpus)
        return status_fail(st, "parallel.comm: nccl needs a GPU per rank, but %d ranks on this "
                           "node share %d GPU%s (NCCL refuses two ranks on one GPU); use "
                           "parallel.comm: mpi or auto",
                           ranks_on_node, gpus, gpus == 1 ? "" : "s");
    if (requested == COMM_AUTO) requested = ranks_on_node <= gpus ? COMM_NCCL : COMM_MPI;
    *chosen = requested;
    return 0;
}

int device_select(device_kind kind, int local_rank, const ops **out, char *description,
                  size_t description_size, status *st) {
#ifdef CAIRN_HAVE_CUDA
    if (kind != DEVICE_CPU) {
        char why[512] = "";
        const ops *cuda = ops_cuda(local_rank, why, sizeof why);
        if (cuda) {
            *out = cuda;
            cuda->describe(description, description_size);
            return 0;
        }
        if (kind == DEVICE_CUDA) return status_fail(st, "device: cuda requested but %s", why);
    }
#else
    (void)local_rank;
    if (kind == DEVICE_CUDA)
        return status_fail(st, "device: cuda requested but this cairn was built without CUDA");
#endif
    *out = ops_cpu();
    (*out)->describe(description, description_size);
    return 0;
}
