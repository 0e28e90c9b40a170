/* safetensors reader and writer, and the JSON parser under them: layout and padding of written
 * files, exact F32 round trips, BF16 rounding, F16 decoding, and one-line errors naming the file
 * and tensor for every kind of corrupt header. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint/safetensors.h"
#include "common/json_parse.h"
#include "temp_dir.h"

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

/* The parser with the flags every Hugging Face file is read with. */
static int parse_strict(const char *text, json_document **d, json_error *error) {
    return json_parse(text, strlen(text), JSON_UNIQUE_KEYS | JSON_NO_NUL, d, error);
}

static void test_json(void) {
    json_document *d = NULL;
    json_error error;
    const char *text = "{\"b\": [1, -2.5e3, true, null], \"a\": \"x\\u00e9\\ud83d\\ude00\\n\", "
                       "\"big\": 9007199254740993, \"huge\": 9223372036854775808}";
    CHECK(parse_strict(text, &d, &error) == 0);
    const json_value *root = d ? json_document_root(d) : NULL;
    const json_value *b = json_find(root, "b"), *a = json_find(root, "a");
    const json_value *big = json_find(root, "big"), *huge = json_find(root, "huge");
    CHECK(b && b->type == JSON_ARRAY && b->length == 4);
    CHECK(b && b->as.items[0].is_integer && b->as.items[0].as.integer == 1);
    CHECK(b && !b->as.items[1].is_integer && b->as.items[1].as.number == -2500.0);
    CHECK(b && b->as.items[2].type == JSON_TRUE);
    CHECK(b && b->as.items[3].type == JSON_NULL);
    CHECK(a && strcmp(a->as.string, "x\xc3\xa9\xf0\x9f\x98\x80\n") == 0);
    CHECK(big && big->is_integer && big->as.integer == 9007199254740993LL);
    CHECK(huge && !huge->is_integer && huge->as.number == 9223372036854775808.0);
    CHECK(json_find(root, "missing") == NULL);
    json_document_free(d);

    const char *bad[] = {"{\"a\": 1, \"a\": 2}",   "{\"a\": 1,}", "[1 2]",
                         "{\"a\": \"\\u0000\"}",   "{\"a\": 01}", "{} x",
                         "{\"a\": \"unterminated}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        d = NULL;
        CHECK_MSG(parse_strict(bad[i], &d, &error) != 0, "accepted %s", bad[i]);
        json_document_free(d);
    }
    CHECK(parse_strict(bad[0], &d, &error) != 0);
    CHECK_STR_CONTAINS(error.reason, "duplicate key \"a\"");
    /* without the flags, the last of repeated keys wins and U+0000 is kept */
    CHECK(json_parse(bad[0], strlen(bad[0]), 0, &d, &error) == 0);
    CHECK(json_find(json_document_root(d), "a")->as.number == 2);
    json_document_free(d);
    CHECK(json_parse(bad[3], strlen(bad[3]), 0, &d, &error) == 0);
    CHECK(json_find(json_document_root(d), "a")->length == 1);
    json_document_free(d);
}

static void test_write_read(void) {
    const char *path = in_dir("model.safetensors");
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
    const char *path = in_dir("half.safetensors");
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
    const char *path = in_dir("corrupt.safetensors");
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
    const char *path = in_dir("corrupt.safetensors");
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
    const char *path = in_dir("partial.safetensors");
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
    if (temp_dir_create("safetensors") != 0) return 1;
    test_json();
    test_write_read();
    test_f16();
    test_corrupt();
    test_writer_errors();
    temp_dir_remove();
    return check_summary("test_safetensors");
}
