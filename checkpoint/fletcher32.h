/* HDF5's Fletcher-32 checksum (H5_checksum_fletcher32: 16-bit big-endian words, sums folded every
 * 360 words), bit for bit, computed block-wise so that the compiler vectorizes it. The checkpoint
 * writer checksums chunks itself and hands HDF5 the filtered bytes, so this must equal what
 * HDF5's filter computes: tests/unit/test_checkpoint_file.c checks both directions. */
#ifndef CAIRN_FLETCHER32_H
#define CAIRN_FLETCHER32_H

#include <stddef.h>
#include <stdint.h>

uint32_t fletcher32(const void *bytes, size_t length);

#endif
