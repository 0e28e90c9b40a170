/* Host memory of the CPU backend: 64-byte aligned zeroed allocations counted for peak_memory,
 * plain copies, and conversions between `real` and float. */
#include "kernels/cpu/cpu_real.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ALIGNMENT = 64 };

/* Bytes held now and at most: the backend's memory is process-wide, like a device's; atomic
 * because any thread may allocate. */
static size_t held_bytes, peak_bytes;

/* Each allocation starts with one alignment unit that records its size, so free can count it. */
void *CPU_FN(alloc)(size_t bytes) {
    /* aligned_alloc needs a size that is a non-zero multiple of the alignment */
    size_t size = round_up(bytes ? bytes : 1, ALIGNMENT) + ALIGNMENT;
    if (size < bytes) return NULL;
    unsigned char *base = aligned_alloc(ALIGNMENT, size);
    if (!base) return NULL;
    memset(base, 0, size);
    memcpy(base, &size, sizeof size);
    size_t now = __atomic_add_fetch(&held_bytes, size, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&peak_bytes, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&peak_bytes, &peak, now, 1,
                                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return base + ALIGNMENT;
}

void CPU_FN(free)(void *ptr) {
    if (!ptr) return;
    unsigned char *base = (unsigned char *)ptr - ALIGNMENT;
    size_t size;
    memcpy(&size, base, sizeof size);
    __atomic_sub_fetch(&held_bytes, size, __ATOMIC_RELAXED);
    free(base);
}

size_t CPU_FN(peak_memory)(void) {
    return __atomic_load_n(&peak_bytes, __ATOMIC_RELAXED);
}

double CPU_FN(peak_flops)(void) {
    return 0; /* no agreed peak for a CPU: MFU is not reported */
}

void CPU_FN(describe)(char *out, size_t size) {
    snprintf(out, size, "cpu (%d OpenMP threads%s)", omp_get_max_threads(),
             sizeof(real) == 8 ? ", fp64" : "");
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
