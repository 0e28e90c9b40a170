/* Text -> dataset: SHA-256 vectors, the bytes tokenizer, `prepare` on .txt,
 * .jsonl (every escape) and .jsonl.gz, its error messages and exit codes, the
 * fortune corpus on a fake fortune tree, and `inspect_dataset`'s report. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "common/sha256.h"
#include "data/fortune_corpus.h"
#include "data/indexed_dataset.h"
#include "data/inspect.h"
#include "data/prepare.h"
#include "data/tokenizer.h"
#include "temp_dir.h"
#include "train/cli.h"

static int exists(const char *name) { return access(in_dir(name), F_OK) == 0; }

/* The dataset at `name` holds exactly `count` documents equal to texts[i] + EOD. */
static void expect_documents(const char *name, const char *const *texts, int count) {
    indexed_dataset *d;
    status st;
    int opened = indexed_dataset_open(in_dir(name), &d, &st);
    CHECK_MSG(opened == 0, "%s", st.message);
    if (opened != 0) return;
    CHECK(indexed_dataset_documents(d) == count);
    for (int i = 0; i < count && i < indexed_dataset_documents(d); i++) {
        int64_t length = indexed_dataset_document_length(d, i);
        int64_t expected = (int64_t)strlen(texts[i]) + 1;
        CHECK_MSG(length == expected, "%s document %d: %lld tokens, expected %lld", name, i,
                  (long long)length, (long long)expected);
        if (length != expected) continue;
        int32_t *ids = malloc((size_t)length * sizeof *ids);
        indexed_dataset_read(d, i, 0, length, ids);
        int same = ids[length - 1] == 256;
        for (int64_t t = 0; t + 1 < length; t++) same &= ids[t] == (unsigned char)texts[i][t];
        CHECK_MSG(same, "%s document %d differs from \"%s\"", name, i, texts[i]);
        free(ids);
    }
    indexed_dataset_close(d);
}

static void test_sha256(void) {
    char hex[65];
    uint8_t digest[32];
    sha256_context c;
    sha256_init(&c);
    sha256_final(&c, digest);
    sha256_hex(digest, hex);
    CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_init(&c);
    for (const char *p = two_blocks; *p; p++) sha256_update(&c, p, 1);
    sha256_final(&c, digest);
    sha256_hex(digest, hex);
    CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
    write_text("abc.txt", "abc");
    status st;
    CHECK(sha256_file_hex(in_dir("abc.txt"), hex, &st) == 0);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    CHECK(sha256_file_hex(in_dir("none"), hex, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "/none");
}

static void test_tokenizer(void) {
    tokenizer *t;
    status st;
    CHECK(tokenizer_open("bytes", &t, &st) == 0);
    CHECK(tokenizer_vocab_size(t) == 258);
    CHECK(tokenizer_eod_id(t) == 256);
    /* the checksum is part of run.json provenance: it must never drift */
    CHECK(strcmp(tokenizer_checksum(t),
                 "3c541e888f6a0f79df52df7754366f5a58deb547cddfcd00dc49268df2519dfe") == 0);
    int32_t *ids = NULL;
    size_t count = 0, capacity = 0;
    CHECK(tokenizer_encode(t, "h\xc3\xa9", 3, &ids, &count, &capacity, &st) == 0);
    CHECK(count == 3 && ids[0] == 'h' && ids[1] == 0xC3 && ids[2] == 0xA9);
    ids[count++] = 256;
    ids[count++] = 257;
    char *text;
    CHECK(tokenizer_decode(t, ids, count, &text, &st) == 0);
    CHECK(strcmp(text, "h\xc3\xa9<|endoftext|><|pad|>") == 0);
    free(text);
    ids[0] = 258;
    CHECK(tokenizer_decode(t, ids, 1, &text, &st) == -1);
    free(ids);
    tokenizer_close(t);

    write_text("tokenizer.json", "{}");
    CHECK(tokenizer_open(in_dir("tokenizer.json"), &t, &st) == -1);
    char expected[700];
    snprintf(expected, sizeof expected, "%s: model: missing", in_dir("tokenizer.json"));
    CHECK(strcmp(st.message, expected) == 0);
    CHECK(tokenizer_open(in_dir("absent.json"), &t, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "absent.json");
}

static int prepare(const char *output, const char *field, const char *const *inputs, int count,
                   status *st) {
    const char *paths[4];
    for (int i = 0; i < count; i++) paths[i] = in_dir(inputs[i]);
    prepare_summary summary;
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s", in_dir(output));
    return prepare_dataset("bytes", prefix, field, paths, count, &summary, st);
}

static const char jsonl_lines[] =
    "{\"id\": [1, {\"x\": null, \"y\": [true, false]}], \"n\": -1.5e3, "
    "\"text\": \"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00 \\ud800x\\u0041\"}\n"
    "\n"
    "{\"text\": \"first\", \"text\": \"last wins\", \"content\": \"c2\"}\r\n"
    "  {\"text\": \"\"}  \n"
    "{\"text\": \"no newline at end\", \"content\": \"c4\"}";
static const char *const jsonl_documents[] = {
    "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80 \xef\xbf\xbdx" "A", "last wins",
    "no newline at end"};

static void test_prepare_inputs(void) {
    write_text("a.txt", "Hello\nworld\n\n\n  \t\nSecond doc\r\n\r\nthird\n  indented");
    write_text("b.txt", "\n\nlast one\n");
    const char *txt_inputs[] = {"a.txt", "b.txt"};
    status st;
    int prepared = prepare("txt", NULL, txt_inputs, 2, &st);
    CHECK_MSG(prepared == 0, "%s", st.message);
    const char *const txt_documents[] = {"Hello\nworld", "Second doc", "third\n  indented",
                                         "last one"};
    expect_documents("txt", txt_documents, 4);
    CHECK(!exists("txt.bin.tmp") && !exists("txt.idx.tmp"));

    write_text("j.jsonl", jsonl_lines);
    const char *json_inputs[] = {"j.jsonl"};
    CHECK(prepare("json", NULL, json_inputs, 1, &st) == 0);
    expect_documents("json", jsonl_documents, 3);

    gzFile gz = gzopen(in_dir("j.jsonl.gz"), "wb");
    gzwrite(gz, jsonl_lines, sizeof jsonl_lines - 1);
    gzclose(gz);
    prepare_summary summary;
    const char *gz_path[] = {in_dir("j.jsonl.gz")};
    CHECK(prepare_dataset("bytes", in_dir("gz"), NULL, gz_path, 1, &summary, &st) == 0);
    CHECK(summary.documents == 3);
    CHECK(summary.tokens == (int64_t)strlen(jsonl_documents[0]) + 1 + 10 + 18);
    CHECK(summary.input_bytes == (int64_t)sizeof jsonl_lines - 1);
    expect_documents("gz", jsonl_documents, 3);

    CHECK(prepare("field", "content", json_inputs, 1, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "j.jsonl:1: no \"content\" field");
}

/* Each bad input fails with `message` and leaves an existing dataset at the prefix intact. */
static void expect_prepare_error(const char *name, const char *content, const char *message) {
    write_text(name, content);
    const char *inputs[] = {"a.txt", name};
    status st;
    CHECK(prepare("txt", NULL, inputs, 2, &st) == -1);
    CHECK_STR_CONTAINS(st.message, in_dir(name));
    CHECK_STR_CONTAINS(st.message, message);
    CHECK(!exists("txt.bin.tmp") && !exists("txt.idx.tmp"));
    const char *const txt_documents[] = {"Hello\nworld", "Second doc", "third\n  indented",
                                         "last one"};
    expect_documents("txt", txt_documents, 4);
}

static void test_prepare_errors(void) {
    expect_prepare_error("bad.jsonl", "{\"text\": \"ok\"}\n\n{\"text\" \"x\"}\n",
                         "bad.jsonl:3: invalid JSON (expected ':' at column 9)");
    expect_prepare_error("bad.jsonl", "{\"text\": \"ok\"}\n{\"id\": 3}\n",
                         "bad.jsonl:2: no \"text\" field");
    expect_prepare_error("bad.jsonl", "{\"text\": 42}\n", "bad.jsonl:1: field \"text\" is not");
    expect_prepare_error("bad.jsonl", "{\"text\": \"a\\qb\"}\n", ":1: invalid JSON (bad escape");
    expect_prepare_error("bad.jsonl", "{\"text\": \"tab\there\"}\n", "control character");
    expect_prepare_error("bad.jsonl", "{\"text\": \"x\"} trailing\n", "trailing characters");
    expect_prepare_error("bad.jsonl", "[\"text\"]\n", ":1: expected a JSON object");
    expect_prepare_error("bad.jsonl", "{\"text\": \"x\", \"n\": 01}\n", "invalid JSON");
    expect_prepare_error("bad.jsonl", "{\"text\": \"unterminated}\n", "unterminated string");
    expect_prepare_error("bad.csv", "a,b\n", "unknown input type");

    /* a gzip stream cut in half */
    gzFile gz = gzopen(in_dir("cut.jsonl.gz"), "wb");
    for (int i = 0; i < 2000; i++) gzprintf(gz, "{\"text\": \"line %d of a long file\"}\n", i);
    gzclose(gz);
    struct stat info;
    stat(in_dir("cut.jsonl.gz"), &info);
    CHECK(truncate(in_dir("cut.jsonl.gz"), info.st_size / 2) == 0);
    const char *inputs[] = {"cut.jsonl.gz"};
    status st;
    CHECK(prepare("cut", NULL, inputs, 1, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "cut.jsonl.gz");
    CHECK(!exists("cut.bin") && !exists("cut.bin.tmp"));

    const char *missing[] = {"missing.txt"};
    CHECK(prepare("m", NULL, missing, 1, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "missing.txt: cannot open");
}

static int run_cli(int argc, const char **argv) { return cli_prepare(argc, (char **)argv); }

static void test_cli_exit_codes(void) {
    const char *no_args[] = {"prepare"};
    CHECK(run_cli(1, no_args) == 2);
    const char *no_output[] = {"prepare", "--tokenizer", "bytes", in_dir("a.txt")};
    CHECK(run_cli(4, no_output) == 2);
    const char *unknown[] = {"prepare", "--tokeniser=bytes", "--output", in_dir("o"), "x.txt"};
    CHECK(run_cli(5, unknown) == 2);
    const char *dangling[] = {"prepare", "--output"};
    CHECK(run_cli(2, dangling) == 2);
    const char *bad[] = {"prepare", "--tokenizer", "bytes", "--output", in_dir("o"),
                         in_dir("bad.csv")};
    CHECK(run_cli(6, bad) == 1);
    CHECK(!exists("o.bin") && !exists("o.idx"));
    const char *good[] = {"prepare", "--tokenizer=bytes", "--output=", "--field", "content",
                          in_dir("j.jsonl")};
    char output[600];
    snprintf(output, sizeof output, "--output=%s", in_dir("cli"));
    good[2] = output;
    write_text("j.jsonl", "{\"content\": \"c1\"}\n{\"content\": \"c2\"}\n");
    CHECK(run_cli(6, good) == 0);
    const char *const content_documents[] = {"c1", "c2"};
    expect_documents("cli", content_documents, 2);
}

/* A fake fortune tree: 120 entries over two files plus everything that must be skipped. */
static void test_fortune_corpus(void) {
    CHECK(mkdir(in_dir("fortunes"), 0777) == 0);
    CHECK(mkdir(in_dir("fortunes/sub"), 0777) == 0);
    CHECK(mkdir(in_dir("fortunes/off"), 0777) == 0);
    FILE *a = fopen(in_dir("fortunes/zz-first"), "w"), *b = fopen(in_dir("fortunes/sub/b"), "w");
    /* sorted paths: fortunes/sub/b (entries 1..60) before fortunes/zz-first (61..120) */
    for (int i = 1; i <= 120; i++) {
        FILE *f = i <= 60 ? b : a;
        if (i == 1)
            fprintf(f, "\033[33;1mfortune\033[m 1  \t\n  second line\r\n\n%%\n%%\n   \n%%\n");
        else
            fprintf(f, "fortune %d\n%s", i, i % 60 ? "%\n" : "");
    }
    fclose(a);
    fclose(b);
    write_text("fortunes/zz-first.dat", "index junk");
    write_text("fortunes/off/rude", "rude\n%\nvery rude\n");
    write_text("fortunes/rude.u8", "also skipped\n");
    CHECK(symlink("zz-first", in_dir("fortunes/link")) == 0);

    status st;
    char train[512], valid[512];
    snprintf(train, sizeof train, "%s", in_dir("corpus/deep/train"));
    snprintf(valid, sizeof valid, "%s", in_dir("corpus/valid"));
    int built = fortune_corpus_build(in_dir("fortunes"), train, valid, &st);
    CHECK_MSG(built == 0, "%s", st.message);

    const char *train_documents[118], *valid_documents[2] = {"fortune 50", "fortune 100"};
    static char texts[120][32];
    int n = 0;
    for (int i = 1; i <= 120; i++) {
        if (i % 50 == 0) continue;
        snprintf(texts[i - 1], sizeof texts[i - 1], "fortune %d", i);
        train_documents[n++] = i == 1 ? "fortune 1\n  second line" : texts[i - 1];
    }
    expect_documents("corpus/deep/train", train_documents, 118);
    expect_documents("corpus/valid", valid_documents, 2);

    /* ensure leaves complete datasets alone (the real corpus would be ~17 MB of other text) */
    struct stat before, after;
    stat(in_dir("corpus/valid.bin"), &before);
    CHECK(fortune_corpus_ensure(train, valid, &st) == 0);
    stat(in_dir("corpus/valid.bin"), &after);
    CHECK(before.st_ino == after.st_ino);

    CHECK(fortune_corpus_build(in_dir("no-fortunes"), train, valid, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "no-fortunes");
    CHECK(mkdir(in_dir("empty"), 0777) == 0);
    CHECK(fortune_corpus_build(in_dir("empty"), in_dir("e/train"), in_dir("e/valid"), &st) == -1);
    CHECK_STR_CONTAINS(st.message, "no fortunes found");
    CHECK(!exists("e/train.bin") && !exists("e/train.bin.tmp"));
}

static void test_inspect(void) {
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int capture = open(in_dir("inspect.out"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(capture, STDOUT_FILENO);
    status st;
    char bin_path[600];
    snprintf(bin_path, sizeof bin_path, "%s.bin", in_dir("txt"));
    int result = inspect_dataset(bin_path, "bytes", &st);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    close(capture);
    CHECK(result == 0);
    char report[4096] = {0};
    FILE *f = fopen(in_dir("inspect.out"), "r");
    size_t got = fread(report, 1, sizeof report - 1, f);
    fclose(f);
    CHECK(got > 0);
    CHECK_STR_CONTAINS(report, "documents: 4\n");
    CHECK_STR_CONTAINS(report, "tokens: 49\n");
    CHECK_STR_CONTAINS(report, "dtype: uint16 (code 8)\n");
    CHECK_STR_CONTAINS(report, "document length: min 9, max 17, mean 12.25\n");
    CHECK_STR_CONTAINS(report, "Hello\nworld<|endoftext|>\n");

    CHECK(inspect_dataset(in_dir("nothing"), NULL, &st) == -1);
    CHECK_STR_CONTAINS(st.message, "nothing.idx");
}

int main(void) {
    if (temp_dir_create("prepare") != 0) return 1;
    test_sha256();
    test_tokenizer();
    test_prepare_inputs();
    test_prepare_errors();
    test_cli_exit_codes();
    test_fortune_corpus();
    test_inspect();
    temp_dir_remove();
    return check_summary("test_prepare");
}
