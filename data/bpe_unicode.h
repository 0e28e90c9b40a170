/* The few Unicode facts the BPE tokenizer needs outside its regex engine:
 * UTF-8 decoding, the White_Space property, and GPT-2's byte-level alphabet.
 *
 * Contract: `utf8_decode` reads one code point at s (length > 0) and returns
 * its byte count; an ill-formed sequence counts as one byte and gives
 * UTF8_INVALID. The byte-level alphabet maps bytes 33-126, 161-172 and
 * 174-255 to the same code point and the other 68 bytes, in increasing
 * order, to U+0100 + n (so ' ' is U+0120 'Ġ'). `byte_level_to_bytes` converts
 * a token written in that alphabet back to raw bytes (out needs `length`
 * bytes; returns the byte count, or -1 if a character is outside the
 * alphabet or the text is not UTF-8); `byte_level_decode` is Hugging Face's
 * ByteLevel decoder for one token: those bytes, or the token's own UTF-8 when
 * any character is outside the alphabet. */
#ifndef CAIRN_BPE_UNICODE_H
#define CAIRN_BPE_UNICODE_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_INVALID 0xFFFFFFFFu

size_t utf8_decode(const unsigned char *s, size_t length, uint32_t *code_point);
/* Writes the UTF-8 bytes of a code point (< 0x110000); returns their count. */
size_t utf8_encode(uint32_t code_point, char out[4]);
/* Offset of the code point that ends at s[length - 1] (length > 0). */
size_t utf8_last_start(const unsigned char *s, size_t length);
int unicode_is_white_space(uint32_t code_point);

uint32_t byte_level_char(unsigned char byte);
long byte_level_to_bytes(const char *text, size_t length, unsigned char *out);
size_t byte_level_decode(const char *text, size_t length, unsigned char *out);

#endif
