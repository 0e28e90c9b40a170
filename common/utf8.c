#include "common/utf8.h"

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
