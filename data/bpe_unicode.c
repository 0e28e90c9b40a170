#include "data/bpe_unicode.h"

#include <string.h>

size_t utf8_decode(const unsigned char *s, size_t length, uint32_t *code_point) {
    unsigned char lead = s[0];
    if (lead < 0x80) {
        *code_point = lead;
        return 1;
    }
    size_t need = lead >= 0xC2 && lead <= 0xDF   ? 2
                  : lead >= 0xE0 && lead <= 0xEF ? 3
                  : lead >= 0xF0 && lead <= 0xF4 ? 4
                                                 : 0;
    *code_point = UTF8_INVALID;
    if (!need || length < need) return 1;
    /* the second byte's range excludes overlongs, surrogates and > U+10FFFF */
    unsigned char low = lead == 0xE0 ? 0xA0 : lead == 0xF0 ? 0x90 : 0x80;
    unsigned char high = lead == 0xED ? 0x9F : lead == 0xF4 ? 0x8F : 0xBF;
    if (s[1] < low || s[1] > high) return 1;
    uint32_t cp = lead & (0x7F >> need);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) return 1;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    *code_point = cp;
    return need;
}

size_t utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t utf8_last_start(const unsigned char *s, size_t length) {
    size_t start = length - 1;
    for (size_t back = 0; back < 3 && start > 0 && (s[start] & 0xC0) == 0x80; back++)
        start--;
    uint32_t cp;
    return utf8_decode(s + start, length - start, &cp) == length - start ? start : length - 1;
}

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
