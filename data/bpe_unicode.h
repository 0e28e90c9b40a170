/* The few Unicode facts the BPE tokenizer needs outside its regex engine:
 * UTF-8 (common/utf8.h), the White_Space property, and GPT-2's byte-level
 * alphabet.
 *
 * Contract: the byte-level alphabet maps bytes 33-126, 161-172 and
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

#include "common/utf8.h"

int unicode_is_white_space(uint32_t code_point);

uint32_t byte_level_char(unsigned char byte);
long byte_level_to_bytes(const char *text, size_t length, unsigned char *out);
size_t byte_level_decode(const char *text, size_t length, unsigned char *out);

#endif
