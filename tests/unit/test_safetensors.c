/* safetensors reader and writer, and the JSON parser under them: layout and padding of written
 * files, exact F32 round trips, BF16 rounding, F16 decoding, and one-line errors naming the file
 * and tensor for every kind of corrupt header. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint/hf_json.h"
#include "checkpoint/safetensors.h"

static char dir[64];

static const char *path_in_dir(const char *name) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

/* A file whose header is `header` (not padded) followed by `data_bytes` bytes of `data`. */
static void write_raw(const char *path, const char *header, const void *data, size_t data_bytes) {
    FILE *f = fopen(path, "wb");
    uint64_t n = strlen(header);
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++)
        prefix[i] = (unsigned char)(n >> 8 * i);
    fwrite(prefix, 1, 8, f);
    fwrite(header, 1, n, f);
    if (data_bytes) fwrite(data, 1, data_bytes, f);
    fclose(f);
}

static void test_json(void) {
    hf_json *v = NULL;
    char error[256];
    const char *text = "{\"b\": [1, -2.5e3, true, null], \"a\": \"x\\u00e9\\ud83d\\ude00\\n\", "
                       "\"big\": 9007199254740993}";
    CHECK(hf_json_parse(text, strlen(text), &v, error, sizeof error) == 0);
    const hf_json *b = hf_json_get(v, "b"), *a = hf_json_get(v, "a"), *big = hf_json_get(v, "big");
    CHECK(b && b->kind == HF_JSON_ARRAY && b->count == 4);
    CHECK(b && b->items[0].is_integer && b->items[0].integer == 1);
    CHECK(b && !b->items[1].is_integer && b->items[1].number == -2500.0);
    CHECK(b && b->items[2].kind == HF_JSON_BOOL && b->items[2].boolean);
    CHECK(b && b->items[3].kind == HF_JSON_NULL);
    CHECK(a && strcmp(a->string, "x\xc3\xa9\xf0\x9f\x98\x80\n") == 0);
    CHECK(big && big->is_integer && big->integer == 9007199254740993LL);
    CHECK(hf_json_get(v, "missing") == NULL);
    hf_json_free(v);

    const char *bad[] = {"{\"a\": 1, \"a\": 2}",   "{\"a\": 1,}", "[1 2]",
                         "{\"a\": \"\\u0000\"}",   "{\"a\": 01}", "{} x",
                         "{\"a\": \"unterminated}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        v = NULL;
        CHECK_MSG(hf_json_parse(bad[i], strlen(bad[i]), &v, error, sizeof error) != 0,
                  "accepted %s", bad[i]);
        hf_json_free(v);
    }
    CHECK(hf_json_parse(bad[0], strlen(bad[0]), &v, error, sizeof error) != 0);
    CHECK_STR_CONTAINS(error, "duplicate key \"a\"");
}

static void test_write_read(void) {
    const char *path = path_in_dir("model.safetensors");
    float w[6] = {1.5f, -2.25f, 3.0e-8f, 1e30f, -0.0f, 7.0f};
    float bias[3] = {1.0f, 1.00390625f, 1.01171875f}; /* 1 + 2^-8 and 1 + 3·2^-8: ties */
    float scalar = 42.0f;
    safetensors_spec specs[4] = {
        {"z.weight", SAFETENSORS_F32, 2, {2, 3}},
        {"a.bias", SAFETENSORS_BF16, 1, {3}},
        {"scalar", SAFETENSORS_F32, 0, {0}},
        {"empty", SAFETENSORS_F32, 2, {0, 4}},
    };
    const char *metadata[] = {"format", "pt", NULL};
    safetensors_writer *w_ = NULL;
    status st;
    CHECK(safetensors_writer_create(path, specs, 4, metadata, &w_, &st) == 0);
    /* any order */
    CHECK(safetensors_writer_put(w_, 1, bias, &st) == 0);
    CHECK(safetensors_writer_put(w_, 0, w, &st) == 0);
    CHECK(safetensors_writer_put(w_, 3, NULL, &st) == 0);
    CHECK(safetensors_writer_put(w_, 2, &scalar, &st) == 0);
    CHECK(safetensors_writer_put(w_, 2, &scalar, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "scalar: written twice");
    CHECK(safetensors_writer_finish(w_, &st) == 0);

    /* header: u64 length, a multiple of 8, JSON from '{', padded with spaces */
    FILE *f = fopen(path, "rb");
    unsigned char raw[8];
    CHECK(fread(raw, 1, 8, f) == 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | raw[i];
    char *header = calloc(n + 1, 1);
    CHECK(fread(header, 1, n, f) == n);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    CHECK(n % 8 == 0 && header[0] == '{');
    CHECK(strstr(header, "\"__metadata__\":{\"format\":\"pt\"}") == header + 1);
    /* F32 (4 bytes) before BF16, then by name: empty, scalar, z.weight, a.bias */
    CHECK_STR_CONTAINS(header,
                       "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[0,0]}");
    CHECK_STR_CONTAINS(header,
                       "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}");
    CHECK_STR_CONTAINS(header,
                       "\"z.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[4,28]}");
    CHECK_STR_CONTAINS(header,
                       "\"a.bias\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[28,34]}");
    CHECK(size == (long)(8 + n + 34));
    free(header);

    safetensors_file *r = NULL;
    CHECK(safetensors_open(path, &r, &st) == 0);
    if (!r) return;
    CHECK(r->count == 4);
    CHECK(safetensors_metadata(r, "format") &&
          strcmp(safetensors_metadata(r, "format"), "pt") == 0);
    const safetensors_tensor *t = safetensors_find(r, "z.weight");
    float back[6];
    CHECK(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->elements == 6);
    CHECK(t && safetensors_read_float(r, t, back, &st) == 0);
    CHECK(memcmp(back, w, sizeof w) == 0);
    t = safetensors_find(r, "a.bias");
    CHECK(t && t->dtype == SAFETENSORS_BF16 && safetensors_read_float(r, t, back, &st) == 0);
    CHECK(back[0] == 1.0f && back[1] == 1.0f && back[2] == 1.015625f); /* to nearest even */
    t = safetensors_find(r, "scalar");
    CHECK(t && t->ndim == 0 && t->elements == 1 && safetensors_read_float(r, t, back, &st) == 0);
    CHECK(back[0] == 42.0f);
    CHECK(safetensors_find(r, "nope") == NULL);
    safetensors_close(r);
}

static void test_f16(void) {
    const char *path = path_in_dir("half.safetensors");
    uint16_t h[5] = {0x3C00, 0xC000, 0x0001, 0x7C00, 0x3555}; /* 1, -2, 2^-24, inf, ~1/3 */
    write_raw(path, "{\"h\":{\"dtype\":\"F16\",\"shape\":[5],\"data_offsets\":[0,10]}}", h, 10);
    safetensors_file *r = NULL;
    status st;
    float x[5];
    CHECK(safetensors_open(path, &r, &st) == 0);
    if (!r) return;
    CHECK(safetensors_read_float(r, safetensors_find(r, "h"), x, &st) == 0);
    CHECK(x[0] == 1.0f && x[1] == -2.0f && x[2] == ldexpf(1.0f, -24) && isinf(x[3]));
    CHECK(x[4] == 0.333251953125f);
    safetensors_close(r);
    write_raw(path, "{\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", h, 8);
    CHECK(safetensors_open(path, &r, &st) == 0);
    if (!r) return;
    CHECK(safetensors_read_float(r, safetensors_find(r, "i"), x, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "tensor i: dtype I64 is not a weight type");
    safetensors_close(r);
}

static void expect_corrupt(const char *header, size_t data_bytes, const char *message) {
    const char *path = path_in_dir("corrupt.safetensors");
    static const unsigned char zeros[64];
    write_raw(path, header, zeros, data_bytes);
    safetensors_file *r = NULL;
    status st;
    CHECK_MSG(safetensors_open(path, &r, &st) != 0, "accepted %s", header);
    if (r) {
        safetensors_close(r);
        return;
    }
    CHECK_STR_CONTAINS(st.message, path);
    CHECK_STR_CONTAINS(st.message, message);
    CHECK(strchr(st.message, '\n') == NULL);
}

static void test_corrupt(void) {
    expect_corrupt("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                   12, "tensor b: data_offsets [4, 12] overlap tensor a");
    expect_corrupt("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                   "tensor a: data_offsets [4, 8] leave a hole of 4 bytes");
    expect_corrupt("{\"a\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                   "tensor a: 3 elements of BF16 take 6 bytes but data_offsets [0, 8] span 8");
    expect_corrupt("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12,
                   "tensors cover 4 bytes of a 12-byte data buffer");
    expect_corrupt("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                   "tensor a: missing or unknown dtype F33");
    expect_corrupt("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                   "tensor a: shape[0] is not a non-negative integer");
    expect_corrupt("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
                   "tensor a: data_offsets must be [begin, end]");
    expect_corrupt("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                   8, "header is not valid JSON: duplicate key \"a\"");
    expect_corrupt("[1]", 0, "header does not start with '{'");
    expect_corrupt("{\"__metadata__\":{\"format\":1}}", 0, "__metadata__.format is not a string");

    /* a header length beyond the end of the file */
    const char *path = path_in_dir("corrupt.safetensors");
    FILE *f = fopen(path, "wb");
    unsigned char prefix[12] = {0xff, 0x00, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    fwrite(prefix, 1, sizeof prefix, f);
    fclose(f);
    safetensors_file *r = NULL;
    status st;
    CHECK(safetensors_open(path, &r, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "header length 255 exceeds the file size (12 bytes)");
    f = fopen(path, "wb");
    fwrite(prefix, 1, 5, f);
    fclose(f);
    CHECK(safetensors_open(path, &r, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "too short for a safetensors header");
}

static void test_writer_errors(void) {
    const char *path = path_in_dir("partial.safetensors");
    safetensors_spec specs[2] = {{"x", SAFETENSORS_F32, 1, {2}}, {"x", SAFETENSORS_BF16, 1, {2}}};
    safetensors_writer *w = NULL;
    status st;
    CHECK(safetensors_writer_create(path, specs, 2, NULL, &w, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "tensor x: given twice");
    specs[1].name = "y";
    CHECK(safetensors_writer_create(path, specs, 2, NULL, &w, &st) == 0);
    float x[2] = {1, 2};
    CHECK(safetensors_writer_put(w, 0, x, &st) == 0);
    CHECK(safetensors_writer_finish(w, &st) != 0);
    CHECK_STR_CONTAINS(st.message, "tensor y was never written");
    CHECK(access(path, F_OK) != 0); /* no partial file left behind */
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/cairn-safetensors-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_json();
    test_write_read();
    test_f16();
    test_corrupt();
    test_writer_errors();
    const char *names[] = {"model.safetensors", "half.safetensors", "corrupt.safetensors"};
    for (int i = 0; i < 3; i++)
        remove(path_in_dir(names[i]));
    rmdir(dir);
    return check_summary("test_safetensors");
}
