/* Host memory of the CPU backend: 64-byte aligned zeroed allocations, plain
 * copies, and conversions between `real` and float. */
#include "kernels/cpu/cpu_real.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ALIGNMENT = 64 };

void *CPU_FN(alloc)(size_t bytes) {
    /* aligned_alloc needs a size that is a non-zero multiple of the alignment */
    size_t size = round_up(bytes ? bytes : 1, ALIGNMENT);
    if (size < bytes) return NULL;
    void *ptr = aligned_alloc(ALIGNMENT, size);
    if (ptr) memset(ptr, 0, size);
    return ptr;
}

void CPU_FN(free)(void *ptr) {
    free(ptr);
}

void CPU_FN(copy)(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}

void CPU_FN(zero)(void *ptr, size_t bytes) {
    if (bytes) memset(ptr, 0, bytes);
}

void CPU_FN(synchronize)(void) {
}

void CPU_FN(real_to_real)(void *dst, const void *src, size_t n) {
    if (n && dst != src) memcpy(dst, src, n * sizeof(real));
}

void CPU_FN(real_to_float)(float *host, const void *src, size_t n) {
    const real *x = src;
    for (size_t i = 0; i < n; i++) host[i] = (float)x[i];
}

void CPU_FN(float_to_real)(void *dst, const float *host, size_t n) {
    real *x = dst;
    for (size_t i = 0; i < n; i++) x[i] = (real)host[i];
}

real *CPU_FN(scratch)(size_t count) {
    real *ptr = CPU_FN(alloc)(count * sizeof(real));
    if (!ptr) {
        fprintf(stderr, "cairn: cpu backend: out of memory for %zu bytes of scratch\n",
                count * sizeof(real));
        abort();
    }
    return ptr;
}
