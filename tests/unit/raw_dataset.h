/* Writes a Megatron .idx directly, without fsync, so tests and benchmarks can create thousands of
 * shards quickly (data/indexed_dataset.h's writer syncs every dataset). One sequence per
 * document; dtype_code from Megatron's table (4 = int32, 8 = uint16). The caller writes PREFIX.bin
 * (sum of lengths tokens of the dtype). Returns 0, or -1 when the file cannot be written. */
#ifndef CAIRN_TEST_RAW_DATASET_H
#define CAIRN_TEST_RAW_DATASET_H

#include <stdint.h>
#include <stdio.h>

static inline int raw_dataset_write_index(const char *prefix, uint8_t dtype_code, int itemsize,
                                          const int32_t *lengths, int documents) {
    char path[4200];
    snprintf(path, sizeof path, "%s.idx", prefix);
    FILE *idx = fopen(path, "wb");
    if (!idx) return -1;
    uint64_t version = 1, count = (uint64_t)documents, entries = count + 1;
    fwrite("MMIDIDX\0\0", 1, 9, idx);
    fwrite(&version, 8, 1, idx);
    fwrite(&dtype_code, 1, 1, idx);
    fwrite(&count, 8, 1, idx);
    fwrite(&entries, 8, 1, idx);
    fwrite(lengths, 4, (size_t)documents, idx);
    int64_t pointer = 0;
    for (int i = 0; i < documents; i++) {
        fwrite(&pointer, 8, 1, idx);
        pointer += (int64_t)itemsize * lengths[i];
    }
    for (int64_t i = 0; i <= documents; i++) fwrite(&i, 8, 1, idx);
    return fclose(idx) == 0 ? 0 : -1;
}

#endif
