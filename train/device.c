#include "train/device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A rank's device as four int64: whether it has one, its machine, then its 16 bytes */
enum { IDENTITY_WORDS = 4 };

static int compare_identities(const void *a, const void *b) {
    return memcmp(a, b, IDENTITY_WORDS * sizeof(int64_t));
}

static uint64_t fnv1a(uint64_t hash, const char *text) {
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        hash = (hash ^ *p) * 1099511628211ull;
    return hash;
}

uint64_t device_host_hash(void) {
    char name[256] = "";
    gethostname(name, sizeof name - 1);
    uint64_t hash = fnv1a(14695981039346656037ull, name);
    /* containers on different machines may share a host name, but not a boot */
    char boot[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof boot, f)) boot[0] = '\0';
        fclose(f);
    }
    return fnv1a(hash, boot);
}

int device_count_distinct(comm *world, const ops *o, uint64_t host, int *devices, status *st) {
    int64_t mine[IDENTITY_WORDS] = {0, (int64_t)host, 0, 0};
    unsigned char identity[16];
    if (o->device_identity && o->device_identity(identity) == 0) {
        mine[0] = 1;
        memcpy(&mine[2], identity, sizeof identity);
    }
    int64_t *all = malloc((size_t)world->size * sizeof mine);
    if (!all) return status_fail(st, "out of memory for %d ranks' device names", world->size);
    if (comm_all_gather(world, mine, all, IDENTITY_WORDS, COMM_INT64, st) != 0) {
        free(all);
        return -1;
    }
    qsort(all, (size_t)world->size, sizeof mine, compare_identities);
    *devices = 0;
    for (int r = 0; r < world->size; r++) {
        const int64_t *id = all + (size_t)r * IDENTITY_WORDS;
        if (id[0] && (r == 0 || compare_identities(id, id - IDENTITY_WORDS) != 0)) (*devices)++;
    }
    free(all);
    return 0;
}

int device_comm_choose(comm_kind requested, const ops *o, int ranks, int devices, comm_kind *chosen,
                       status *st) {
    if (o->host_memory) {
        if (requested == COMM_NCCL)
            return status_fail(st, "parallel.comm: nccl needs the CUDA backend, but this run "
                               "computes on %s",
                               o->name);
        *chosen = COMM_MPI;
        return 0;
    }
    if (requested == COMM_NCCL && devices < ranks)
        return status_fail(st,
                           "parallel.comm: nccl needs a GPU per rank, but the %d ranks "
                           "compute on %d GPU%s (NCCL refuses two ranks on one GPU); use "
                           "parallel.comm: mpi or auto",
                           ranks, devices, devices == 1 ? "" : "s");
    if (requested == COMM_AUTO) requested = devices >= ranks ? COMM_NCCL : COMM_MPI;
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
