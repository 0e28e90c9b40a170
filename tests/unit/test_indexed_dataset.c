/* Megatron .bin/.idx: exact bytes of a hand-computed index, round trips in
 * both writer dtypes, every dtype of the table on read, multi-sequence
 * documents, atomic writes, and one message per kind of corrupt file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/indexed_dataset.h"
#include "temp_dir.h"

static void path_of(char *out, const char *name, const char *suffix) {
    sprintf(out, "%s/%s%s", temp_dir, name, suffix);
}

static long read_file(const char *path, uint8_t *buffer, long capacity) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    long n = (long)fread(buffer, 1, (size_t)capacity, f);
    fclose(f);
    return n;
}

static void write_file(const char *path, const uint8_t *bytes, long size) {
    FILE *f = fopen(path, "wb");
    fwrite(bytes, 1, (size_t)size, f);
    fclose(f);
}

static int exists(const char *name, const char *suffix) {
    char path[512];
    path_of(path, name, suffix);
    return access(path, F_OK) == 0;
}

/* Little-endian field writer for hand-made index files. */
static uint8_t *put(uint8_t *p, uint64_t value, int bytes) {
    for (int i = 0; i < bytes; i++) *p++ = (uint8_t)(value >> (8 * i));
    return p;
}

static void write_dataset(const char *name, int vocab, const int32_t *tokens,
                          const size_t *lengths, int documents) {
    char prefix[512];
    path_of(prefix, name, "");
    indexed_dataset_writer *w;
    status st;
    CHECK(indexed_dataset_writer_open(prefix, vocab, &w, &st) == 0);
    for (int i = 0; i < documents; i++) {
        CHECK(indexed_dataset_writer_add(w, tokens, lengths[i], &st) == 0);
        tokens += lengths[i];
    }
    CHECK(indexed_dataset_writer_close(w, &st) == 0);
}

static void test_exact_bytes(void) {
    const int32_t tokens[] = {5, 6, 7, 256};
    const size_t lengths[] = {3, 1, 0};
    write_dataset("tiny", 258, tokens, lengths, 3);

    uint8_t expected[102], *p = expected;
    memcpy(p, "MMIDIDX\0\0", 9);
    p = put(p + 9, 1, 8);       /* version */
    p = put(p, 8, 1);           /* dtype: uint16 */
    p = put(p, 3, 8);           /* sequence_count */
    p = put(p, 4, 8);           /* document_count = documents + 1 */
    p = put(p, 3, 4);           /* sequence_lengths */
    p = put(p, 1, 4);
    p = put(p, 0, 4);
    p = put(p, 0, 8);           /* sequence_pointers (bytes) */
    p = put(p, 6, 8);
    p = put(p, 8, 8);
    for (int i = 0; i < 4; i++) p = put(p, (uint64_t)i, 8); /* document_indices */
    CHECK(p - expected == 102);

    uint8_t got[256];
    char path[512];
    path_of(path, "tiny", ".idx");
    long n = read_file(path, got, sizeof got);
    CHECK(n == 102);
    CHECK(n == 102 && memcmp(got, expected, 102) == 0);
    const uint8_t expected_bin[] = {5, 0, 6, 0, 7, 0, 0, 1};
    path_of(path, "tiny", ".bin");
    CHECK(read_file(path, got, sizeof got) == 8);
    CHECK(memcmp(got, expected_bin, 8) == 0);
    CHECK(!exists("tiny", ".bin.tmp") && !exists("tiny", ".idx.tmp"));
}

static void test_round_trip(int vocab, int expected_code) {
    int32_t tokens[40];
    for (int i = 0; i < 40; i++) tokens[i] = (int32_t)((i * 7919) % vocab);
    const size_t lengths[] = {10, 1, 0, 29};
    write_dataset("trip", vocab, tokens, lengths, 4);
    char prefix[512];
    path_of(prefix, "trip", "");
    indexed_dataset *d;
    status st;
    CHECK(indexed_dataset_open(prefix, &d, &st) == 0);
    CHECK(indexed_dataset_dtype_code(d) == expected_code);
    CHECK(indexed_dataset_documents(d) == 4);
    CHECK(indexed_dataset_tokens(d) == 40);
    CHECK(indexed_dataset_document_length(d, 0) == 10);
    CHECK(indexed_dataset_document_length(d, 2) == 0);
    CHECK(indexed_dataset_document_length(d, 3) == 29);
    CHECK(indexed_dataset_document_start(d, 3) == 11);
    CHECK(strcmp(indexed_dataset_prefix(d), prefix) == 0);
    int32_t out[40];
    indexed_dataset_read(d, 3, 4, 25, out);
    CHECK(memcmp(out, tokens + 15, 25 * sizeof *out) == 0);
    indexed_dataset_read_stream(d, 0, 40, out);
    CHECK(memcmp(out, tokens, sizeof out) == 0);
    indexed_dataset_close(d);
}

static void test_writer_rejects_out_of_vocabulary(void) {
    char prefix[512];
    path_of(prefix, "oov", "");
    indexed_dataset_writer *w;
    status st;
    CHECK(indexed_dataset_writer_open(prefix, 258, &w, &st) == 0);
    const int32_t bad[] = {1, 258};
    CHECK(indexed_dataset_writer_add(w, bad, 2, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "token id 258");
    indexed_dataset_writer_abort(w);
    CHECK(!exists("oov", ".bin.tmp") && !exists("oov", ".bin") && !exists("oov", ".idx"));
}

/* A failed or aborted write never touches a good dataset already at the prefix. */
static void test_atomic_replace(void) {
    const int32_t tokens[] = {1, 2, 3};
    const size_t lengths[] = {3};
    write_dataset("keep", 258, tokens, lengths, 1);
    char prefix[512];
    path_of(prefix, "keep", "");
    indexed_dataset_writer *w;
    status st;
    CHECK(indexed_dataset_writer_open(prefix, 258, &w, &st) == 0);
    CHECK(indexed_dataset_writer_add(w, tokens, 2, &st) == 0);
    CHECK(exists("keep", ".bin.tmp"));
    indexed_dataset_writer_abort(w);
    CHECK(!exists("keep", ".bin.tmp") && !exists("keep", ".idx.tmp"));
    indexed_dataset *d;
    CHECK(indexed_dataset_open(prefix, &d, &st) == 0);
    CHECK(indexed_dataset_tokens(d) == 3);
    indexed_dataset_close(d);

    /* missing parent folders are created; a path through a regular file fails */
    char nested[512];
    path_of(nested, "new/folders/x", "");
    CHECK(indexed_dataset_writer_open(nested, 258, &w, &st) == 0);
    CHECK(indexed_dataset_writer_close(w, &st) == 0);
    CHECK(exists("new/folders/x", ".bin") && exists("new/folders/x", ".idx"));
    path_of(nested, "keep.bin/x", "");
    CHECK(indexed_dataset_writer_open(nested, 258, &w, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "keep.bin/x.bin.tmp");
}

/* Hand-made index: S sequences, document_indices given, tokens of `itemsize` bytes. */
static void write_raw(const char *name, int dtype, int itemsize, int sequences,
                      const int32_t *lengths, int document_entries, const int64_t *documents,
                      const uint8_t *bin, long bin_size) {
    uint8_t idx[1024], *p = idx;
    memcpy(p, "MMIDIDX\0\0", 9);
    p = put(p + 9, 1, 8);
    p = put(p, (uint64_t)dtype, 1);
    p = put(p, (uint64_t)sequences, 8);
    p = put(p, (uint64_t)document_entries, 8);
    for (int i = 0; i < sequences; i++) p = put(p, (uint32_t)lengths[i], 4);
    int64_t pointer = 0;
    for (int i = 0; i < sequences; i++) {
        p = put(p, (uint64_t)pointer, 8);
        pointer += (int64_t)lengths[i] * itemsize;
    }
    for (int i = 0; i < document_entries; i++) p = put(p, (uint64_t)documents[i], 8);
    char path[512];
    path_of(path, name, ".idx");
    write_file(path, idx, p - idx);
    path_of(path, name, ".bin");
    write_file(path, bin, bin_size);
}

static void test_all_dtypes(void) {
    const int32_t lengths[] = {2, 1};
    const int64_t documents[] = {0, 1, 2};
    int32_t out[3];
    char prefix[512];
    indexed_dataset *d;
    status st;
    path_of(prefix, "dtype", "");

    const uint8_t int8_bin[] = {1, 0xFF, 7};
    write_raw("dtype", 2, 1, 2, lengths, 3, documents, int8_bin, 3);
    CHECK(indexed_dataset_open(prefix, &d, &st) == 0);
    indexed_dataset_read_stream(d, 0, 3, out);
    CHECK(out[0] == 1 && out[1] == -1 && out[2] == 7);
    CHECK(strcmp(indexed_dataset_dtype_name(indexed_dataset_dtype_code(d)), "int8") == 0);
    indexed_dataset_close(d);

    uint8_t int64_bin[24], *p = int64_bin;
    p = put(p, 70000, 8);
    p = put(p, 3, 8);
    put(p, 123456789, 8);
    write_raw("dtype", 5, 8, 2, lengths, 3, documents, int64_bin, 24);
    CHECK(indexed_dataset_open(prefix, &d, &st) == 0);
    indexed_dataset_read(d, 1, 0, 1, out);
    CHECK(out[0] == 123456789);
    indexed_dataset_close(d);

    float values[3] = {2.0f, 65535.0f, 9.0f};
    write_raw("dtype", 7, 4, 2, lengths, 3, documents, (const uint8_t *)values, 12);
    CHECK(indexed_dataset_open(prefix, &d, &st) == 0);
    indexed_dataset_read_stream(d, 0, 3, out);
    CHECK(out[0] == 2 && out[1] == 65535 && out[2] == 9);
    indexed_dataset_close(d);
}

/* Megatron sentence-level files: a document spans several sequences. */
static void test_multi_sequence_documents(void) {
    const int32_t lengths[] = {2, 3, 1};
    const int64_t documents[] = {0, 2, 3};
    const uint8_t bin[] = {10, 11, 12, 13, 14, 15};
    write_raw("sentences", 1, 1, 3, lengths, 3, documents, bin, 6);
    char prefix[512];
    path_of(prefix, "sentences", "");
    indexed_dataset *d;
    status st;
    CHECK(indexed_dataset_open(prefix, &d, &st) == 0);
    CHECK(indexed_dataset_documents(d) == 2);
    CHECK(indexed_dataset_document_length(d, 0) == 5);
    CHECK(indexed_dataset_document_length(d, 1) == 1);
    int32_t out[2];
    indexed_dataset_read(d, 0, 3, 2, out);
    CHECK(out[0] == 13 && out[1] == 14);
    indexed_dataset_close(d);
}

/* Rewrites byte range [at, at+bytes) of bad.idx with `value` and expects the open to fail
 * with a message containing both `file` (.idx or .bin) and `field`. */
static void expect_corrupt(long at, int bytes, uint64_t value, long truncate_to,
                           const char *file, const char *field) {
    const int32_t tokens[] = {5, 6, 7, 256, 9};
    const size_t lengths[] = {3, 1, 1};
    write_dataset("bad", 258, tokens, lengths, 3);
    char path[512], prefix[512], wanted[600];
    uint8_t idx[256];
    path_of(path, "bad", ".idx");
    long size = read_file(path, idx, sizeof idx);
    if (at >= 0) put(idx + at, value, bytes);
    write_file(path, idx, truncate_to >= 0 ? truncate_to : size);
    path_of(prefix, "bad", "");
    indexed_dataset *d = NULL;
    status st;
    CHECK(indexed_dataset_open(prefix, &d, &st) == -1);
    CHECK(d == NULL);
    path_of(wanted, "bad", file);
    CHECK_STR_CONTAINS(st.message, wanted);
    CHECK_STR_CONTAINS(st.message, field);
}

static void test_corrupt_files(void) {
    /* layout for S=3, D'=4: lengths at 34, pointers at 46, document_indices at 70 */
    expect_corrupt(-1, 0, 0, 20, ".idx", "file too short");
    expect_corrupt(0, 1, 'X', -1, ".idx", "bad magic");
    expect_corrupt(9, 8, 2, -1, ".idx", "version 2");
    expect_corrupt(17, 1, 9, -1, ".idx", "unknown dtype code 9");
    expect_corrupt(18, 8, 100, -1, ".idx", "sequence_count 100");
    expect_corrupt(26, 8, 3, -1, ".idx", "document_count 3");
    expect_corrupt(-1, 0, 0, 101, ".idx", "do not match the file length");
    expect_corrupt(34, 4, 0xFFFFFFFF, -1, ".idx", "sequence_lengths[0] is negative");
    expect_corrupt(54, 8, 4, -1, ".idx", "sequence_pointers[1] is 4, expected 6");
    expect_corrupt(38, 4, 2, -1, ".idx", "sequence_pointers[2]");
    expect_corrupt(42, 4, 2, -1, ".bin", "file has 10 bytes, the index describes 12");
    expect_corrupt(70, 8, 1, -1, ".idx", "document_indices[0] is 1");
    expect_corrupt(78, 8, 3, -1, ".idx", "document_indices[2] = 2 is below");
    expect_corrupt(94, 8, 2, -1, ".idx", "document_indices ends at 2");

    char path[512], prefix[512];
    path_of(path, "bad", ".bin");
    unlink(path);
    path_of(prefix, "bad", "");
    indexed_dataset *d;
    status st;
    CHECK(indexed_dataset_open(prefix, &d, &st) == -1);
    CHECK_STR_CONTAINS(st.message, path);
    CHECK_STR_CONTAINS(st.message, "cannot open");
}

int main(void) {
    if (temp_dir_create("indexed") != 0) return 1;
    test_exact_bytes();
    test_round_trip(258, 8);
    test_round_trip(70000, 4);
    test_writer_rejects_out_of_vocabulary();
    test_atomic_replace();
    test_all_dtypes();
    test_multi_sequence_documents();
    test_corrupt_files();
    temp_dir_remove();
    return check_summary("test_indexed_dataset");
}
