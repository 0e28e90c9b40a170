#include "train/device.h"

#include <omp.h>
#include <stdio.h>

int device_select(device_kind kind, const ops **out, char *description, size_t description_size,
                  double *peak_flops, status *st) {
    *peak_flops = 0;
#ifdef CAIRN_HAVE_CUDA
    if (kind != DEVICE_CPU) {
        char why[512] = "";
        const ops *cuda = ops_cuda(why, sizeof why);
        if (cuda) {
            *out = cuda;
            snprintf(description, description_size, "cuda");
            /* H100 SXM dense bf16 peak, the denominator the peers use */
            *peak_flops = 989e12;
            return 0;
        }
        if (kind == DEVICE_CUDA) return status_fail(st, "device: cuda requested but %s", why);
    }
#else
    if (kind == DEVICE_CUDA)
        return status_fail(st, "device: cuda requested but this cairn was built without CUDA");
#endif
    *out = ops_cpu();
    snprintf(description, description_size, "cpu (%d OpenMP threads)", omp_get_max_threads());
    return 0;
}
