/* Shard readers and the prepare pipeline: llm.c shards (both kinds, documents split at EOT,
 * every corruption refused with its message), how indexed_dataset_open resolves a path, int64
 * and float Megatron tokens checked on open, the chunk reader's records, and `prepare_run`
 * (byte-identical output for 1, 2 and 4 threads, globs, first error in input order, progress). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "data/chunk_reader.h"
#include "data/indexed_dataset.h"
#include "data/prepare.h"
#include "temp_dir.h"

static uint8_t *put(uint8_t *p, uint64_t value, int bytes) {
    for (int i = 0; i < bytes; i++)
        *p++ = (uint8_t)(value >> (8 * i));
    return p;
}

/* An llm.c shard as data_common.py writes it; header fields can be overridden. */
static void write_llmc(const char *name, int32_t magic, int32_t version, int64_t header_count,
                       const uint32_t *tokens, int count, int token_bytes) {
    uint8_t *data = calloc(1, 1024 + (size_t)count * 4), *p = data;
    p = put(p, (uint32_t)magic, 4);
    p = put(p, (uint32_t)version, 4);
    put(p, (uint32_t)header_count, 4);
    for (int i = 0; i < count; i++)
        put(data + 1024 + i * token_bytes, tokens[i], token_bytes);
    write_bytes(name, data, 1024 + (size_t)count * token_bytes);
    free(data);
}

static void expect_documents(indexed_dataset *d, const int64_t *starts, int documents) {
    CHECK(indexed_dataset_documents(d) == documents);
    for (int i = 0; i < documents && i < indexed_dataset_documents(d); i++)
        CHECK_MSG(indexed_dataset_document_start(d, i) == starts[i], "document %d starts at %lld",
                  i, (long long)indexed_dataset_document_start(d, i));
}

/* Opens in_dir(name), counting a failure (with its message) when it does not open. */
static indexed_dataset *open_checked(const char *name) {
    indexed_dataset *d = NULL;
    status st;
    int opened = indexed_dataset_open(in_dir(name), &d, &st);
    CHECK_MSG(opened == 0, "%s", st.message);
    return d;
}

static void test_llmc_gpt2(void) {
    const uint32_t tokens[] = {7, 8, 50256, 1, 2, 3, 50256, 50256, 65535};
    write_llmc("gpt2.bin", 20240520, 1, 9, tokens, 9, 2);
    indexed_dataset *d = open_checked("gpt2.bin");
    if (!d) return;
    CHECK(strcmp(indexed_dataset_format(d), "llm.c") == 0);
    CHECK(strcmp(indexed_dataset_dtype(d), "uint16") == 0);
    CHECK(indexed_dataset_dtype_code(d) == 8);
    CHECK(indexed_dataset_tokens(d) == 9);
    /* the tokens before the first EOT continue a document of the previous shard */
    const int64_t starts[] = {0, 2, 6, 7};
    expect_documents(d, starts, 4);
    CHECK(indexed_dataset_document_length(d, 3) == 2);
    int32_t out[9];
    indexed_dataset_read(d, 1, 1, 3, out);
    CHECK(out[0] == 1 && out[1] == 2 && out[2] == 3);
    indexed_dataset_read_stream(d, 0, 9, out);
    CHECK(out[2] == 50256 && out[8] == 65535);
    CHECK(indexed_dataset_file_count(d) == 1);
    CHECK(strcmp(indexed_dataset_file(d, 0), in_dir("gpt2.bin")) == 0);
    const llmc_shard *shard = indexed_dataset_llmc_shard(d);
    CHECK(shard && shard->version == 1 && shard->eot == 50256);
    indexed_dataset_close(d);

    /* the prefix form: PATH.bin is an llm.c shard and there is no PATH.idx */
    if (!(d = open_checked("gpt2"))) return;
    CHECK(indexed_dataset_tokens(d) == 9);
    CHECK(strcmp(indexed_dataset_prefix(d), in_dir("gpt2.bin")) == 0);
    indexed_dataset_close(d);
}

static void test_llmc_llama3(void) {
    const uint32_t tokens[] = {128000, 5, 128255, 128000, 70000};
    write_llmc("llama.bin", 20240801, 7, 5, tokens, 5, 4);
    indexed_dataset *d = open_checked("llama.bin");
    if (!d) return;
    CHECK(strcmp(indexed_dataset_dtype(d), "uint32") == 0);
    CHECK(indexed_dataset_dtype_code(d) == 0);
    const int64_t starts[] = {0, 3};
    expect_documents(d, starts, 2);
    int32_t out[5];
    indexed_dataset_read_stream(d, 0, 5, out);
    CHECK(out[0] == 128000 && out[2] == 128255 && out[4] == 70000);
    indexed_dataset_close(d);

    write_llmc("empty.bin", 20240520, 1, 0, tokens, 0, 2);
    if (!(d = open_checked("empty.bin"))) return;
    CHECK(indexed_dataset_documents(d) == 0 && indexed_dataset_tokens(d) == 0);
    indexed_dataset_close(d);
}

static void expect_refused(const char *name, const char *message) {
    indexed_dataset *d = NULL;
    status st;
    CHECK(indexed_dataset_open(in_dir(name), &d, &st) == -1);
    CHECK(d == NULL);
    char expected[1024];
    snprintf(expected, sizeof expected, "%s: %s", in_dir(name), message);
    CHECK_MSG(strcmp(st.message, expected) == 0, "\"%s\" != \"%s\"", st.message, expected);
}

static void test_llmc_corrupt(void) {
    const uint32_t tokens[] = {50256, 1, 2, 3};
    write_bytes("short.bin", "\xb8\xd6\x34\x01", 4);
    expect_refused("short.bin", "file too short (4 bytes, the llm.c header alone is 1024)");
    write_llmc("magic.bin", 12345, 1, 4, tokens, 4, 2);
    expect_refused("magic.bin", "bad magic 12345 (not an llm.c token shard: expected 20240520 "
                                "for GPT-2 or 20240801 for Llama-3)");
    write_llmc("version.bin", 20240520, 2, 4, tokens, 4, 2);
    expect_refused("version.bin", "version 2 is not supported for magic 20240520 (expected 1)");
    write_llmc("version7.bin", 20240801, 1, 4, tokens, 4, 4);
    expect_refused("version7.bin", "version 1 is not supported for magic 20240801 (expected 7)");
    write_llmc("count.bin", 20240520, 1, 5, tokens, 4, 2);
    expect_refused("count.bin", "token count 5 needs 1034 bytes, the file has 1032");
    write_llmc("negative.bin", 20240520, 1, -1, tokens, 4, 2);
    expect_refused("negative.bin", "token count -1 is negative");
    const uint32_t huge[] = {128000, 0x80000000u};
    write_llmc("huge.bin", 20240801, 7, 2, huge, 2, 4);
    expect_refused("huge.bin", "token 1 is 2147483648, above the int32 range");
}

static void write_megatron(const char *name, int dtype, int itemsize, const uint8_t *bin,
                           int tokens) {
    uint8_t idx[34 + 12 + 16], *p = idx;
    memcpy(p, "MMIDIDX\0\0", 9);
    p = put(p + 9, 1, 8);
    p = put(p, (uint64_t)dtype, 1);
    p = put(p, 1, 8);
    p = put(p, 2, 8);
    p = put(p, (uint64_t)tokens, 4);
    p = put(p, 0, 8);
    p = put(p, 0, 8);
    put(p, 1, 8);
    char name_idx[256], name_bin[256];
    snprintf(name_idx, sizeof name_idx, "%s.idx", name);
    snprintf(name_bin, sizeof name_bin, "%s.bin", name);
    write_bytes(name_idx, idx, sizeof idx);
    write_bytes(name_bin, bin, (size_t)tokens * itemsize);
}

static void test_megatron_token_values(void) {
    const double good[] = {3.0, 65536.0};
    write_megatron("f64", 6, 8, (const uint8_t *)good, 2);
    indexed_dataset *d;
    status st;
    CHECK(indexed_dataset_open(in_dir("f64"), &d, &st) == 0);
    int32_t out[2];
    indexed_dataset_read_stream(d, 0, 2, out);
    CHECK(out[0] == 3 && out[1] == 65536);
    /* the .bin and .idx paths name the same dataset */
    CHECK(strcmp(indexed_dataset_format(d), "megatron") == 0);
    CHECK(indexed_dataset_file_count(d) == 2);
    CHECK(strcmp(indexed_dataset_file(d, 1), in_dir("f64.bin")) == 0);
    indexed_dataset_close(d);
    CHECK(indexed_dataset_open(in_dir("f64.bin"), &d, &st) == 0);
    CHECK(strcmp(indexed_dataset_prefix(d), in_dir("f64")) == 0);
    indexed_dataset_close(d);
    CHECK(indexed_dataset_open(in_dir("f64.idx"), &d, &st) == 0);
    indexed_dataset_close(d);

    const float fraction[] = {1.0f, 2.5f};
    write_megatron("f32", 7, 4, (const uint8_t *)fraction, 2);
    char wanted[600];
    snprintf(wanted, sizeof wanted, "%s: token 1 is 2.5, not an integer token id (float32)",
             in_dir("f32.bin"));
    CHECK(indexed_dataset_open(in_dir("f32"), &d, &st) == -1);
    CHECK_MSG(strcmp(st.message, wanted) == 0, "%s", st.message);

    uint8_t wide[16];
    put(put(wide, 1, 8), 1ull << 40, 8);
    write_megatron("i64", 5, 8, wide, 2);
    snprintf(wanted, sizeof wanted, "%s: token 1 is 1099511627776, outside the int32 range",
             in_dir("i64.bin"));
    CHECK(indexed_dataset_open(in_dir("i64"), &d, &st) == -1);
    CHECK_MSG(strcmp(st.message, wanted) == 0, "%s", st.message);

    /* a .bin without its .idx is taken for an llm.c shard, and refused as one */
    unlink(in_dir("f64.idx"));
    CHECK(indexed_dataset_open(in_dir("f64.bin"), &d, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "f64.bin: file too short");
    CHECK(indexed_dataset_open(in_dir("f64"), &d, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "f64.idx: cannot open");
}

static void test_chunk_reader(void) {
    write_text("r.txt", "one\r\ntwo\n \t\n\nthree\n");
    write_text("r.jsonl", "\n{\"text\": \"a\"}\r\n\n{\"text\": \"b\"}");
    gzFile gz = gzopen(in_dir("r.txt.gz"), "wb");
    for (int i = 0; i < 3000; i++)
        gzprintf(gz, "document %d\n\n", i);
    gzclose(gz);
    const char *paths[] = {in_dir("r.txt"), in_dir("r.jsonl"), in_dir("r.txt.gz")};
    chunk_reader *r;
    status st;
    CHECK(chunk_reader_open(paths, 3, 1000, &r, &st) == 0);
    text_chunk c = {0};
    CHECK(chunk_reader_next(r, &c, &st) == 1);
    CHECK(c.records == 2 && !c.json && c.path == paths[0]);
    CHECK(c.ends[0] == 7 && memcmp(c.text.data, "one\ntwothree", 12) == 0);
    CHECK(c.lines[0] == 1 && c.lines[1] == 5);
    CHECK(c.input_bytes == 19);
    CHECK(chunk_reader_next(r, &c, &st) == 1);
    CHECK(c.records == 2 && c.json && c.lines[0] == 2 && c.lines[1] == 4);
    CHECK(c.text.length == 26);
    int64_t records = 0, chunks = 0, last_line = 0;
    while (chunk_reader_next(r, &c, &st) == 1) {
        CHECK(c.text.length < 1000 + 20);
        records += (int64_t)c.records;
        chunks++;
        last_line = c.lines[c.records - 1];
    }
    CHECK(records == 3000 && chunks > 20);
    CHECK(last_line == 5999);
    chunk_reader_close(r);

    gz = gzopen(in_dir("cut.txt.gz"), "wb");
    for (int i = 0; i < 1000; i++)
        gzprintf(gz, "line %d\n", i);
    gzclose(gz);
    CHECK(truncate(in_dir("cut.txt.gz"), 200) == 0);
    const char *cut[] = {in_dir("cut.txt.gz")};
    CHECK(chunk_reader_open(cut, 1, 1 << 20, &r, &st) == 0);
    CHECK(chunk_reader_next(r, &c, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "cut.txt.gz: read error after line ");
    CHECK_STR_CONTAINS(st.message, ": gzip data cut short");
    chunk_reader_close(r);

    write_text("plain.jsonl.gz", "{\"text\": \"not compressed\"}\n");
    const char *plain[] = {in_dir("plain.jsonl.gz")};
    CHECK(chunk_reader_open(plain, 1, 1000, &r, &st) == 0);
    CHECK(chunk_reader_next(r, &c, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "plain.jsonl.gz: not gzip data");
    chunk_reader_close(r);
    text_chunk_free(&c);
}

static int same_file(const char *a, const char *b) {
    FILE *f = fopen(a, "rb"), *g = fopen(b, "rb");
    int same = f && g;
    while (same) {
        int x = fgetc(f), y = fgetc(g);
        same = x == y;
        if (x == EOF) break;
    }
    if (f) fclose(f);
    if (g) fclose(g);
    return same;
}

static void count_progress(const prepare_summary *so_far, void *context) {
    int64_t *calls = context;
    CHECK(so_far->documents >= calls[1]);
    calls[1] = so_far->documents;
    calls[0]++;
}

static int prepare_with(int threads, const char *output, const char *const *inputs, int count,
                        prepare_summary *summary, status *st, int64_t *progress_calls) {
    prepare_options o = {.tokenizer_spec = "bytes",
                         .output_prefix = in_dir(output),
                         .inputs = inputs,
                         .input_count = count,
                         .threads = threads};
    if (progress_calls) {
        o.progress = count_progress;
        o.progress_context = progress_calls;
    }
    return prepare_run(&o, summary, st);
}

/* About 1.5 MB over three files, so that every thread count sees many chunks. */
static void test_prepare_threads(void) {
    FILE *a = fopen(in_dir("in-a.txt"), "w");
    gzFile b = gzopen(in_dir("in-b.jsonl.gz"), "wb");
    FILE *c = fopen(in_dir("in-c.jsonl"), "w");
    int64_t expected_documents = 0;
    char padding[100];
    memset(padding, 'x', sizeof padding);
    for (int i = 0; i < 6000; i++) {
        fprintf(a, "text document %d %.*s\nsecond line\n\n", i, i % 97, padding);
        gzprintf(b, "{\"id\": %d, \"text\": \"json \\u00e9 %d\\n%0*d\"}\n", i, i, i % 113, 0);
        fprintf(c, "{\"text\": \"%s\"}\n", i % 10 ? "plain" : "");
        expected_documents += 2 + (i % 10 != 0);
    }
    fclose(a);
    gzclose(b);
    fclose(c);
    const char *inputs[] = {in_dir("in-*.txt"), in_dir("in-b.jsonl.gz"), in_dir("in-c.json[l]")};
    prepare_summary summary;
    status st;
    int64_t progress[2] = {0, 0};
    int prepared = prepare_with(1, "t1", inputs, 3, &summary, &st, progress);
    CHECK_MSG(prepared == 0, "%s", st.message);
    CHECK(summary.documents == expected_documents);
    CHECK(summary.input_files == 3);
    CHECK(progress[0] > 3 && progress[1] == expected_documents);
    CHECK(prepare_with(2, "t2", inputs, 3, &summary, &st, NULL) == 0);
    CHECK(prepare_with(4, "t4", inputs, 3, &summary, &st, NULL) == 0);
    CHECK(file_size(in_dir("t1.bin")) > 1000000);
    char first[512], other[512];
    for (int t = 2; t <= 4; t += 2)
        for (int k = 0; k < 2; k++) {
            snprintf(first, sizeof first, "%s%s", in_dir("t1"), k ? ".idx" : ".bin");
            snprintf(other, sizeof other, "%s/t%d%s", temp_dir, t, k ? ".idx" : ".bin");
            CHECK_MSG(same_file(first, other), "%s differs from %s", other, first);
        }

    /* the first bad input in input order is reported, whatever the threads do */
    write_text("bad-1.jsonl", "{\"text\": \"fine\"}\n{\"text\" 1}\n");
    write_text("bad-2.jsonl", "{\"other\": \"x\"}\n");
    const char *bad[] = {in_dir("in-a.txt"), in_dir("bad-*.jsonl")};
    for (int threads = 1; threads <= 4; threads++) {
        CHECK(prepare_with(threads, "t1", bad, 2, &summary, &st, NULL) == -1);
        CHECK_STR_CONTAINS(st.message, "bad-1.jsonl:2: invalid JSON (expected ':' at column 9)");
    }
    CHECK(same_file(in_dir("t1.bin"), in_dir("t2.bin")));

    const char *nothing[] = {in_dir("in-a.txt"), in_dir("none-*.txt")};
    CHECK(prepare_with(2, "t1", nothing, 2, &summary, &st, NULL) == -1);
    char wanted[600];
    snprintf(wanted, sizeof wanted, "%s: no input file matches this pattern", in_dir("none-*.txt"));
    CHECK_MSG(strcmp(st.message, wanted) == 0, "%s", st.message);
}

int main(void) {
    if (temp_dir_create("shards") != 0) return 1;
    test_llmc_gpt2();
    test_llmc_llama3();
    test_llmc_corrupt();
    test_megatron_token_values();
    test_chunk_reader();
    test_prepare_threads();
    temp_dir_remove();
    return check_summary("test_shard_readers");
}
