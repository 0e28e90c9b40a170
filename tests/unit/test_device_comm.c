/* device_comm_choose: which communicator carries the backend's buffers for each
 * parallel.comm value, backend kind, and number of ranks and distinct GPUs,
 * and the one-line errors for the combinations that cannot work. A backend
 * with device memory is stood in for by a copy of the CPU table with
 * host_memory cleared (the choice reads nothing else), so every branch runs
 * without a GPU. */
#include "kernels/ops.h"
#include "tests/unit/check.h"
#include "train/device.h"

static int choose(comm_kind requested, const ops *o, int ranks, int gpus, comm_kind *chosen,
                  status *st) {
    *chosen = (comm_kind)-1;
    st->message[0] = '\0';
    return device_comm_choose(requested, o, ranks, gpus, chosen, st);
}

int main(void) {
    const ops *cpu = ops_cpu();
    ops device = *cpu;
    device.host_memory = 0;
    device.name = "cuda";
    status st;
    comm_kind chosen;

    /* host memory: MPI for auto and mpi, whatever the GPUs; nccl refused */
    CHECK(choose(COMM_AUTO, cpu, 4, 8, &chosen, &st) == 0 && chosen == COMM_MPI);
    CHECK(choose(COMM_MPI, cpu, 1, 0, &chosen, &st) == 0 && chosen == COMM_MPI);
    CHECK(choose(COMM_NCCL, cpu, 2, 2, &chosen, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "parallel.comm: nccl needs the CUDA backend");
    CHECK_STR_CONTAINS(st.message, "computes on cpu");

    /* device memory, a GPU per rank: auto takes NCCL, mpi stays MPI (host-staged) */
    CHECK(choose(COMM_AUTO, &device, 4, 4, &chosen, &st) == 0 && chosen == COMM_NCCL);
    CHECK(choose(COMM_AUTO, &device, 2, 8, &chosen, &st) == 0 && chosen == COMM_NCCL);
    CHECK(choose(COMM_NCCL, &device, 4, 4, &chosen, &st) == 0 && chosen == COMM_NCCL);
    CHECK(choose(COMM_MPI, &device, 4, 4, &chosen, &st) == 0 && chosen == COMM_MPI);

    /* ranks sharing GPUs: auto falls back to MPI; nccl is refused with the counts */
    CHECK(choose(COMM_AUTO, &device, 4, 1, &chosen, &st) == 0 && chosen == COMM_MPI);
    CHECK(choose(COMM_AUTO, &device, 2, 0, &chosen, &st) == 0 && chosen == COMM_MPI);
    CHECK(choose(COMM_MPI, &device, 8, 1, &chosen, &st) == 0 && chosen == COMM_MPI);
    CHECK(choose(COMM_NCCL, &device, 4, 1, &chosen, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "the 4 ranks compute on 1 GPU ");
    CHECK_STR_CONTAINS(st.message, "use parallel.comm: mpi or auto");
    CHECK(choose(COMM_NCCL, &device, 3, 2, &chosen, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "the 3 ranks compute on 2 GPUs");

    return check_summary("test_device_comm");
}
