/* UTF-8 encoding and decoding of single code points.
 *
 * Contract: `utf8_decode` reads one code point at s (length > 0) and returns its byte count; an
 * ill-formed sequence (overlong, surrogate, above U+10FFFF, truncated) counts as one byte and
 * gives UTF8_INVALID. `utf8_encode` writes the bytes of a code point below 0x110000 and returns
 * their count. `utf8_last_start` is the offset of the code point that ends at s[length - 1]
 * (length > 0), or length - 1 when those bytes are not one well-formed code point. */
#ifndef CAIRN_UTF8_H
#define CAIRN_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_INVALID 0xFFFFFFFFu

size_t utf8_decode(const unsigned char *s, size_t length, uint32_t *code_point);
size_t utf8_encode(uint32_t code_point, char out[4]);
size_t utf8_last_start(const unsigned char *s, size_t length);

#endif
