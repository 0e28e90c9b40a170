/* checkpoint_file: round trip of tensors, int64 arrays and root attributes; shapes; listing;
 * row slices; and the errors: wrong shape, missing dataset, a flipped byte in tensor data (the
 * Fletcher-32 checksum names the dataset), a truncated file, a file that is not HDF5, an HDF5
 * file whose format attribute is not "cairn", and a write over the file size limit (a full disk)
 * that fails in one line and leaves the library usable (and the process exiting cleanly). The
 * writer checksums chunks itself: its Fletcher-32 is checked against HDF5's algorithm, and data
 * written directly is read through HDF5's filter (row slices) and the other way round. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint/checkpoint_file.h"
#include "checkpoint/fletcher32.h"
#include "temp_dir.h"

/* A recognisable pattern, so the test can find the tensor's bytes in the file. */
static float pattern(int64_t i) { return 1000.0f + (float)i * 0.25f; }

static void write_sample(const char *path) {
    status st;
    checkpoint_file *f;
    CHECK(checkpoint_file_create(path, &f, &st) == 0);
    float weights[6 * 5];
    for (int i = 0; i < 30; i++)
        weights[i] = pattern(i);
    int64_t shape2[2] = {6, 5}, shape1[1] = {3}, shape3[3] = {2, 3, 4};
    float bias[3] = {-1.5f, 0.0f, 2.5f}, experts[24];
    for (int i = 0; i < 24; i++)
        experts[i] = (float)-i;
    CHECK(checkpoint_file_write_tensor(f, "/model/layers.0.attn.wq", weights, 2, shape2, &st) == 0);
    CHECK(checkpoint_file_write_tensor(f, "/model/layers.0.attn.bq", bias, 1, shape1, &st) == 0);
    CHECK(checkpoint_file_write_tensor(f, "/model/layers.0.mlp.experts", experts, 3, shape3, &st) ==
          0);
    CHECK(checkpoint_file_write_tensor(f, "/optim/layers.0.attn.bq/m", bias, 1, shape1, &st) == 0);
    int64_t cursor[4] = {7, -2, 1LL << 40, 0};
    CHECK(checkpoint_file_write_int64s(f, "/data/cursor", cursor, 4, &st) == 0);
    CHECK(checkpoint_file_set_int64(f, "step", 42, &st) == 0);
    CHECK(checkpoint_file_set_int64(f, "step", 43, &st) == 0); /* replaces */
    CHECK(checkpoint_file_set_int64(f, "tokens", 1LL << 35, &st) == 0);
    CHECK(checkpoint_file_set_string(f, "config", "run:\n  name: test\n", &st) == 0);
    CHECK_MSG(checkpoint_file_close(f, &st) == 0, "%s", st.message);
}

static void test_round_trip(void) {
    const char *path = in_dir("round.h5");
    write_sample(path);
    status st;
    checkpoint_file *f;
    CHECK_MSG(checkpoint_file_open(path, &f, &st) == 0, "%s", st.message);
    if (!f) return;
    CHECK(strcmp(checkpoint_file_path(f), path) == 0);
    float weights[30] = {0}, experts[24] = {0}, bias[3] = {0};
    int64_t shape2[2] = {6, 5}, shape1[1] = {3}, shape3[3] = {2, 3, 4};
    CHECK(checkpoint_file_read_tensor(f, "/model/layers.0.attn.wq", weights, 2, shape2, &st) == 0);
    int same = 1;
    for (int i = 0; i < 30; i++)
        same &= weights[i] == pattern(i);
    CHECK(same);
    CHECK(checkpoint_file_read_tensor(f, "/model/layers.0.mlp.experts", experts, 3, shape3, &st) ==
          0);
    CHECK(experts[23] == -23.0f && experts[5] == -5.0f);
    CHECK(checkpoint_file_read_tensor(f, "/optim/layers.0.attn.bq/m", bias, 1, shape1, &st) == 0);
    CHECK(bias[0] == -1.5f && bias[2] == 2.5f);

    int ndim = 0;
    int64_t shape[CHECKPOINT_MAX_DIMS];
    CHECK(checkpoint_file_tensor_shape(f, "/model/layers.0.mlp.experts", &ndim, shape, &st) == 0);
    CHECK(ndim == 3 && shape[0] == 2 && shape[1] == 3 && shape[2] == 4);

    int64_t cursor[4] = {0};
    CHECK(checkpoint_file_read_int64s(f, "/data/cursor", cursor, 4, &st) == 0);
    CHECK(cursor[0] == 7 && cursor[1] == -2 && cursor[2] == 1LL << 40 && cursor[3] == 0);

    int64_t step = 0, tokens = 0, version = 0;
    CHECK(checkpoint_file_get_int64(f, "step", &step, &st) == 0 && step == 43);
    CHECK(checkpoint_file_get_int64(f, "tokens", &tokens, &st) == 0 && tokens == 1LL << 35);
    CHECK(checkpoint_file_get_int64(f, "version", &version, &st) == 0 && version >= 1);
    char *text = NULL;
    CHECK(checkpoint_file_get_string(f, "config", &text, &st) == 0);
    CHECK(text && strcmp(text, "run:\n  name: test\n") == 0);
    free(text);
    CHECK(checkpoint_file_get_string(f, "format", &text, &st) == 0);
    CHECK(text && strcmp(text, "cairn") == 0);
    free(text);

    CHECK(checkpoint_file_has(f, "/model"));
    CHECK(checkpoint_file_has(f, "/optim/layers.0.attn.bq/m"));
    CHECK(!checkpoint_file_has(f, "/optim/layers.0.attn.bq/v"));
    CHECK(!checkpoint_file_has(f, "/nothing/here"));

    char **names = NULL;
    int count = 0;
    CHECK(checkpoint_file_list(f, "/model", &names, &count, &st) == 0);
    CHECK(count == 3);
    if (count == 3) {
        CHECK(strcmp(names[0], "layers.0.attn.bq") == 0);
        CHECK(strcmp(names[1], "layers.0.attn.wq") == 0);
        CHECK(strcmp(names[2], "layers.0.mlp.experts") == 0);
    }
    checkpoint_file_free_names(names, count);
    CHECK(checkpoint_file_list(f, "/optim", &names, &count, &st) == 0 && count == 0);
    checkpoint_file_free_names(names, count);

    /* errors name the file and the dataset or attribute */
    int64_t wrong[2] = {5, 6};
    CHECK(checkpoint_file_read_tensor(f, "/model/layers.0.attn.wq", weights, 2, wrong, &st) != 0);
    CHECK_STR_CONTAINS(st.message, path);
    CHECK_STR_CONTAINS(st.message, "/model/layers.0.attn.wq: shape [6 x 5], expected [5 x 6]");
    CHECK(checkpoint_file_read_tensor(f, "/model/layers.0.attn.wq", weights, 1, shape1, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "expected [3]");
    CHECK(checkpoint_file_read_tensor(f, "/model/missing", weights, 1, shape1, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "/model/missing: missing");
    CHECK(checkpoint_file_read_tensor(f, "/data/cursor", weights, 1, (int64_t[]){4}, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "/data/cursor");
    CHECK(checkpoint_file_get_int64(f, "config", &step, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "attribute config: not an integer");
    CHECK(checkpoint_file_get_string(f, "nope", &text, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "attribute nope: missing");
    CHECK_MSG(checkpoint_file_close(f, &st) == 0, "%s", st.message);
}

static void test_rows(void) {
    const char *path = in_dir("rows.h5");
    status st;
    checkpoint_file *f;
    CHECK(checkpoint_file_create(path, &f, &st) == 0);
    int64_t shape[2] = {10, 3};
    float rows[30];
    for (int i = 0; i < 30; i++)
        rows[i] = (float)i;
    CHECK(checkpoint_file_create_tensor(f, "/model/w", 2, shape, &st) == 0);
    CHECK(checkpoint_file_write_rows(f, "/model/w", 4, 6, rows + 12, &st) == 0);
    CHECK(checkpoint_file_write_rows(f, "/model/w", 0, 4, rows, &st) == 0);
    int64_t empty_shape[2] = {0, 5};
    CHECK(checkpoint_file_write_tensor(f, "/model/empty", rows, 2, empty_shape, &st) == 0);
    CHECK(checkpoint_file_write_rows(f, "/model/w", 8, 3, rows, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "/model/w: rows [8, 11) outside the 10 rows");
    CHECK(checkpoint_file_close(f, &st) == 0);
    CHECK(checkpoint_file_open(path, &f, &st) == 0);
    float back[30] = {0}, slice[6] = {0};
    CHECK(checkpoint_file_read_tensor(f, "/model/w", back, 2, shape, &st) == 0);
    CHECK(memcmp(back, rows, sizeof rows) == 0);
    CHECK(checkpoint_file_read_rows(f, "/model/w", 7, 2, slice, &st) == 0);
    CHECK_MSG(checkpoint_file_read_tensor(f, "/model/empty", back, 2, empty_shape, &st) == 0, "%s",
              st.message);
    CHECK(slice[0] == 21.0f && slice[5] == 26.0f);
    CHECK(checkpoint_file_close(f, &st) == 0);
}

static unsigned char *read_all(const char *path, long *size) {
    *size = file_size(path);
    unsigned char *bytes = malloc((size_t)*size);
    FILE *file = fopen(path, "rb");
    CHECK(fread(bytes, 1, (size_t)*size, file) == (size_t)*size);
    fclose(file);
    return bytes;
}

static void write_all(const char *path, const unsigned char *bytes, long size) {
    FILE *file = fopen(path, "wb");
    CHECK(fwrite(bytes, 1, (size_t)size, file) == (size_t)size);
    fclose(file);
}

static void test_flipped_byte(void) {
    const char *path = in_dir("flipped.h5");
    write_sample(path);
    long size;
    unsigned char *bytes = read_all(path, &size);
    float needle[4] = {pattern(8), pattern(9), pattern(10), pattern(11)};
    long at = -1;
    for (long i = 0; i + (long)sizeof needle <= size && at < 0; i++)
        if (memcmp(bytes + i, needle, sizeof needle) == 0) at = i;
    CHECK(at > 0);
    if (at < 0) {
        free(bytes);
        return;
    }
    bytes[at + 5] ^= 0x10;
    write_all(path, bytes, size);
    free(bytes);

    status st;
    checkpoint_file *f;
    CHECK_MSG(checkpoint_file_open(path, &f, &st) == 0, "%s", st.message);
    if (!f) return;
    float weights[30], bias[3];
    int64_t shape2[2] = {6, 5}, shape1[1] = {3};
    CHECK(checkpoint_file_read_tensor(f, "/model/layers.0.attn.wq", weights, 2, shape2, &st) != 0);
    CHECK_STR_CONTAINS(st.message, path);
    CHECK_STR_CONTAINS(st.message, "/model/layers.0.attn.wq: cannot read");
    CHECK_STR_CONTAINS(st.message, "Fletcher32");
    CHECK(strchr(st.message, '\n') == NULL);
    /* the other datasets are intact */
    CHECK(checkpoint_file_read_tensor(f, "/model/layers.0.attn.bq", bias, 1, shape1, &st) == 0);
    CHECK(checkpoint_file_close(f, &st) == 0);
}

static void test_not_checkpoints(void) {
    status st;
    checkpoint_file *f = (checkpoint_file *)1;

    const char *path = in_dir("text.h5");
    write_all(path, (const unsigned char *)"not an HDF5 file at all\n", 24);
    CHECK(checkpoint_file_open(path, &f, &st) != 0 && f == NULL);
    CHECK_STR_CONTAINS(st.message, "text.h5: not an HDF5 file");

    path = in_dir("absent.h5");
    CHECK(checkpoint_file_open(path, &f, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "absent.h5: cannot open");

    /* truncated: the superblock records the end of file, so HDF5 notices */
    path = in_dir("truncated.h5");
    write_sample(path);
    CHECK(truncate(path, file_size(path) / 2) == 0);
    CHECK(checkpoint_file_open(path, &f, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "truncated.h5: cannot open");
    CHECK_STR_CONTAINS(st.message, "truncated file");
    CHECK(strchr(st.message, '\n') == NULL);

    path = in_dir("other.h5");
    CHECK(checkpoint_file_create(path, &f, &st) == 0);
    CHECK(checkpoint_file_set_string(f, "format", "keras", &st) == 0);
    CHECK(checkpoint_file_close(f, &st) == 0);
    CHECK(checkpoint_file_open(path, &f, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "other.h5: format attribute is 'keras', not 'cairn'");

    path = in_dir("no-directory/x.h5");
    CHECK(checkpoint_file_create(path, &f, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "no-directory/x.h5: cannot create");
}

static void test_write_failure(void) {
    const char *path = in_dir("full.h5"), *good = in_dir("after.h5");
    struct rlimit saved, limited;
    CHECK(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    limited = saved;
    limited.rlim_cur = 64 * 1024;
    signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &limited) == 0);
    enum { ROWS = 256, COLUMNS = 256 };
    float *data = calloc(ROWS * COLUMNS, sizeof *data);
    int64_t shape[2] = {ROWS, COLUMNS};
    status st;
    checkpoint_file *f;
    CHECK(checkpoint_file_create(path, &f, &st) == 0);
    int failed = checkpoint_file_write_tensor(f, "/model/big", data, 2, shape, &st) != 0;
    if (!failed)
        failed = checkpoint_file_close(f, &st) != 0;
    else
        checkpoint_file_close(f, NULL);
    CHECK(failed);
    CHECK_STR_CONTAINS(st.message, path);
    CHECK_STR_CONTAINS(st.message, "File too large");
    CHECK(strchr(st.message, '\n') == NULL);
    CHECK(setrlimit(RLIMIT_FSIZE, &saved) == 0);
    signal(SIGXFSZ, SIG_DFL);
    CHECK(checkpoint_file_create(good, &f, &st) == 0);
    CHECK(checkpoint_file_write_tensor(f, "/model/big", data, 2, shape, &st) == 0);
    CHECK(checkpoint_file_close(f, &st) == 0);
    free(data);
}

/* H5_checksum_fletcher32 of HDF5 1.10, as written there. */
static uint32_t hdf5_fletcher32(const void *bytes, size_t length) {
    const uint8_t *data = bytes;
    size_t len = length / 2;
    uint32_t sum1 = 0, sum2 = 0;
    while (len) {
        size_t tlen = len > 360 ? 360 : len;
        len -= tlen;
        do {
            sum1 += (uint32_t)(((uint16_t)data[0]) << 8) | ((uint16_t)data[1]);
            data += 2;
            sum2 += sum1;
        } while (--tlen);
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    if (length % 2) {
        sum1 += (uint32_t)(((uint16_t)*data) << 8);
        sum2 += sum1;
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    return (sum2 << 16) | sum1;
}

static void test_fletcher32(void) {
    enum { SIZE = 100000 };
    unsigned char *bytes = malloc(SIZE);
    unsigned state = 12345;
    for (int i = 0; i < SIZE; i++) {
        state = state * 1103515245u + 12345u;
        bytes[i] = (unsigned char)(state >> 16);
    }
    int same = 1;
    for (int trial = 0; trial < 300; trial++) {
        state = state * 1103515245u + 12345u;
        size_t length = trial < 50 ? (size_t)trial : (state >> 8) % (SIZE - 8);
        size_t start = trial % 7;
        same &= fletcher32(bytes + start, length) == hdf5_fletcher32(bytes + start, length);
    }
    memset(bytes, 0xff, SIZE);
    same &= fletcher32(bytes, SIZE) == hdf5_fletcher32(bytes, SIZE);
    same &= fletcher32(bytes, SIZE - 1) == hdf5_fletcher32(bytes, SIZE - 1);
    memset(bytes, 0, SIZE);
    same &= fletcher32(bytes, SIZE) == hdf5_fletcher32(bytes, SIZE);
    CHECK_MSG(same, "fletcher32 differs from HDF5's algorithm");
    free(bytes);
}

/* Several chunks, edge chunks padded, rows larger than a chunk: written directly, read back both
 * directly and through HDF5's filter (row slices), and a flipped bit in a middle chunk. */
static void test_large(void) {
    const char *path = in_dir("large.h5");
    int64_t shape[3] = {3, 5, 300000}, total = 3 * 5 * 300000;
    float *data = malloc(total * sizeof *data), *back = malloc(total * sizeof *back);
    for (int64_t i = 0; i < total; i++)
        data[i] = (float)i * 0.5f - 7.0f;
    status st;
    checkpoint_file *f;
    CHECK(checkpoint_file_create(path, &f, &st) == 0);
    CHECK(checkpoint_file_write_tensor(f, "/model/experts", data, 3, shape, &st) == 0);
    CHECK(checkpoint_file_create_tensor(f, "/model/by_rows", 3, shape, &st) == 0);
    CHECK(checkpoint_file_write_rows(f, "/model/by_rows", 0, 3, data, &st) == 0);
    CHECK_MSG(checkpoint_file_close(f, &st) == 0, "%s", st.message);
    CHECK(checkpoint_file_open(path, &f, &st) == 0);
    memset(back, 0, total * sizeof *back);
    CHECK(checkpoint_file_read_tensor(f, "/model/experts", back, 3, shape, &st) == 0);
    CHECK(memcmp(back, data, total * sizeof *back) == 0);
    memset(back, 0, total * sizeof *back);
    CHECK_MSG(checkpoint_file_read_rows(f, "/model/experts", 1, 2, back, &st) == 0, "%s",
              st.message);
    CHECK(memcmp(back, data + total / 3, 2 * total / 3 * sizeof *back) == 0);
    memset(back, 0, total * sizeof *back);
    CHECK(checkpoint_file_read_tensor(f, "/model/by_rows", back, 3, shape, &st) == 0);
    CHECK(memcmp(back, data, total * sizeof *back) == 0);
    CHECK(checkpoint_file_close(f, &st) == 0);

    long size;
    unsigned char *bytes = read_all(path, &size);
    float needle[4] = {data[1500000], data[1500001], data[1500002], data[1500003]};
    long at = -1;
    for (long i = 0; i + (long)sizeof needle <= size && at < 0; i++)
        if (memcmp(bytes + i, needle, sizeof needle) == 0) at = i;
    CHECK(at > 0);
    if (at > 0) {
        bytes[at + 2] ^= 0x01;
        write_all(path, bytes, size);
        CHECK(checkpoint_file_open(path, &f, &st) == 0);
        CHECK(checkpoint_file_read_tensor(f, "/model/experts", back, 3, shape, &st) != 0);
        CHECK_STR_CONTAINS(st.message, "/model/experts: cannot read");
        CHECK_STR_CONTAINS(st.message, "Fletcher32");
        CHECK(checkpoint_file_read_rows(f, "/model/experts", 1, 1, back, &st) != 0);
        CHECK_STR_CONTAINS(st.message, "Fletcher32");
        CHECK(checkpoint_file_close(f, &st) == 0);
    }
    free(bytes);
    free(data);
    free(back);
}

int main(void) {
    if (temp_dir_create("checkpoint-file") != 0) return 1;
    test_round_trip();
    test_rows();
    test_flipped_byte();
    test_not_checkpoints();
    test_write_failure();
    test_fletcher32();
    test_large();
    temp_dir_remove();
    return check_summary("test_checkpoint_file");
}
