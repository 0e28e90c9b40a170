/* bfloat16 on the host: the upper half of an IEEE fp32. Conversion to bf16 rounds to nearest
 * even and keeps NaN a (quiet) NaN, as the GPU's conversions do. Plain C, also included by the
 * CUDA backend's host code. */
#ifndef CAIRN_BF16_H
#define CAIRN_BF16_H

#include <stdint.h>
#include <string.h>

static inline float bf16_to_float(uint16_t value) {
    uint32_t bits = (uint32_t)value << 16;
    float result;
    memcpy(&result, &bits, sizeof result);
    return result;
}

static inline uint16_t float_to_bf16(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu))
        return (uint16_t)((bits >> 16) | 0x0040u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

#endif
