#include "data/bpe_unicode.h"

#include <string.h>

int unicode_is_white_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static int maps_to_itself(unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
}

uint32_t byte_level_char(unsigned char byte) {
    if (maps_to_itself(byte)) return byte;
    unsigned n = byte <= 32 ? byte : byte <= 160 ? 33 + (byte - 127u) : 67;
    return 256 + n;
}

/* The byte behind an alphabet character, or -1. */
static int byte_level_byte(uint32_t cp) {
    if (cp < 256) return maps_to_itself(cp) ? (int)cp : -1;
    if (cp > 256 + 67) return -1;
    unsigned n = cp - 256;
    return n <= 32 ? (int)n : n <= 66 ? (int)(127 + n - 33) : 173;
}

long byte_level_to_bytes(const char *text, size_t length, unsigned char *out) {
    const unsigned char *s = (const unsigned char *)text;
    long count = 0;
    for (size_t i = 0; i < length;) {
        uint32_t cp;
        i += utf8_decode(s + i, length - i, &cp);
        int byte = cp == UTF8_INVALID ? -1 : byte_level_byte(cp);
        if (byte < 0) return -1;
        out[count++] = (unsigned char)byte;
    }
    return count;
}

size_t byte_level_decode(const char *text, size_t length, unsigned char *out) {
    long count = byte_level_to_bytes(text, length, out);
    if (count >= 0) return (size_t)count;
    memcpy(out, text, length);
    return length;
}
