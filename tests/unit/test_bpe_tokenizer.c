/* Byte-level BPE from a tiny hand-written tokenizer.json whose merges are
 * worked out by hand below, in both `merges` forms and with ignore_merges;
 * added tokens, pre-tokenizer splits, NFC, decoding, the EOD rule, the
 * checksum, the exact one-line errors for broken files, and the JSON document
 * parser underneath. Hugging Face parity on real-sized tokenizers is
 * tests/python/test_tokenizer_parity.py. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/json_parse.h"
#include "common/sha256.h"
#include "data/bpe_nfc.h"
#include "data/tokenizer.h"
#include "temp_dir.h"

/* Vocabulary in GPT-2's byte-level alphabet: "Ġ" (U+0120) is the space byte. Merge ranks:
 * 0 a+b, 1 b+c, 2 ab+c, 3 Ġ+a, 4 Ġa+b, 5 a+a. "Ġab" (8) is in the vocabulary, but the merge loop
 * never builds it from " ab": a+b (rank 0) comes before Ġ+a (rank 3), and there is no Ġ+ab. */
static const char vocab[] =
    "{\"a\": 0, \"b\": 1, \"c\": 2, \"\xc4\xa0\": 3, \"ab\": 4, \"bc\": 5, \"abc\": 6, "
    "\"\xc4\xa0"
    "a\": 7, \"\xc4\xa0"
    "ab\": 8, \"<|endoftext|>\": 9, \"aa\": 10}";
static const char legacy_merges[] =
    "[\"#version: 0.2\", \"a b\", \"b c\", \"ab c\", \"\xc4\xa0 a\", \"\xc4\xa0"
    "a b\", \"a a\"]";
static const char pair_merges[] =
    "[[\"a\", \"b\"], [\"b\", \"c\"], [\"ab\", \"c\"], [\"\xc4\xa0\", \"a\"], "
    "[\"\xc4\xa0"
    "a\", \"b\"], [\"a\", \"a\"]]";
static const char added_eod[] =
    "[{\"id\": 9, \"content\": \"<|endoftext|>\", \"single_word\": false, \"lstrip\": false, "
    "\"rstrip\": false, \"normalized\": false, \"special\": true}]";
static const char byte_level[] =
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "
    "\"use_regex\": true}";

static void write_tokenizer(const char *name, const char *added, const char *normalizer,
                            const char *pre_tokenizer, const char *model_type, const char *merges,
                            const char *extra_model_fields) {
    char json[4096];
    snprintf(json, sizeof json,
             "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, "
             "\"added_tokens\": %s, \"normalizer\": %s, \"pre_tokenizer\": %s, "
             "\"post_processor\": null, \"decoder\": {\"type\": \"ByteLevel\"}, "
             "\"model\": {\"type\": \"%s\", \"dropout\": null, \"unk_token\": null, "
             "\"fuse_unk\": false, \"byte_fallback\": false, %s\"vocab\": %s, \"merges\": %s}}",
             added, normalizer, pre_tokenizer, model_type, extra_model_fields, vocab, merges);
    write_text(name, json);
}

static void write_good(const char *name, const char *merges, const char *extra_model_fields) {
    write_tokenizer(name, added_eod, "null", byte_level, "BPE", merges, extra_model_fields);
}

/* Encodes text and compares with the expected ids (terminated by -1). */
static void expect_ids(tokenizer *t, const char *text, const int32_t *expected) {
    int32_t *ids = NULL;
    size_t count = 0, capacity = 0, n = 0;
    status st;
    int result = tokenizer_encode(t, text, strlen(text), &ids, &count, &capacity, &st);
    CHECK_MSG(result == 0, "%s", st.message);
    while (expected[n] >= 0)
        n++;
    int same = count == n;
    for (size_t i = 0; same && i < n; i++)
        same = ids[i] == expected[i];
    CHECK_MSG(same, "\"%s\": %zu ids, first %d; expected %zu, first %d", text, count,
              count ? ids[0] : -1, n, n ? expected[0] : -1);
    char *decoded;
    size_t length;
    CHECK(tokenizer_decode_bytes(t, ids, count, &decoded, &length, &st) == 0);
    free(ids);
    if (result == 0) free(decoded);
}

static tokenizer *open_ok(const char *name) {
    tokenizer *t = NULL;
    status st;
    int opened = tokenizer_open(in_dir(name), &t, &st);
    CHECK_MSG(opened == 0, "%s", st.message);
    return opened == 0 ? t : NULL;
}

static void test_merges(const char *merges) {
    write_good("merges.json", merges, "");
    tokenizer *t = open_ok("merges.json");
    if (!t) return;
    /* abc: a+b (rank 0), then ab+c (rank 2) */
    expect_ids(t, "abc", (const int32_t[]){6, -1});
    /* bcab: a+b at 2 (rank 0) before b+c at 0 (rank 1); bc+ab is no merge */
    expect_ids(t, "bcab", (const int32_t[]){5, 4, -1});
    expect_ids(t, "aab", (const int32_t[]){0, 4, -1});
    /* equal ranks: the leftmost pair first */
    expect_ids(t, "aaa", (const int32_t[]){10, 0, -1});
    expect_ids(t, "aaaaa", (const int32_t[]){10, 10, 0, -1});
    /* pre-tokens " ab" and " c": " ab" is Ġ ab although "Ġab" exists */
    expect_ids(t, " ab c", (const int32_t[]){3, 4, 3, 2, -1});
    /* the added token is cut out before pre-tokenization; "z" has no token and is dropped */
    expect_ids(t, "a<|endoftext|>b z", (const int32_t[]){0, 9, 1, 3, -1});
    expect_ids(t, "", (const int32_t[]){-1});
    CHECK(tokenizer_vocab_size(t) == 11);
    CHECK(tokenizer_eod_id(t) == 9);
    char hex[65];
    status st;
    CHECK(sha256_file_hex(in_dir("merges.json"), hex, &st) == 0);
    CHECK(strcmp(tokenizer_checksum(t), hex) == 0);

    int32_t ids[] = {8, 9, 3, 5};
    char *text;
    size_t length;
    CHECK(tokenizer_decode_bytes(t, ids, 4, &text, &length, &st) == 0);
    CHECK(length == 19 && memcmp(text, " ab<|endoftext|> bc", 19) == 0);
    free(text);
    ids[1] = 11;
    CHECK(tokenizer_decode(t, ids, 2, &text, &st) == -1);
    CHECK(strcmp(st.message, "token id 11 at position 1 is outside the vocabulary (11)") == 0);
    tokenizer_close(t);
}

static void test_ignore_merges(void) {
    write_good("ignore.json", pair_merges, "\"ignore_merges\": true, ");
    tokenizer *t = open_ok("ignore.json");
    if (!t) return;
    /* " ab" is in the vocabulary: taken whole */
    expect_ids(t, " ab c", (const int32_t[]){8, 3, 2, -1});
    expect_ids(t, "bcab", (const int32_t[]){5, 4, -1});
    tokenizer_close(t);
}

static void test_pre_tokenizers(void) {
    /* Split on "b" (removed), then ByteLevel without regex and with a prefix space */
    write_tokenizer("split.json", added_eod, "null",
                    "{\"type\": \"Sequence\", \"pretokenizers\": ["
                    "{\"type\": \"Split\", \"pattern\": {\"String\": \"b\"}, "
                    "\"behavior\": \"Removed\", \"invert\": false}, "
                    "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"use_regex\": false}]}",
                    "BPE", legacy_merges, "");
    tokenizer *t = open_ok("split.json");
    if (t) {
        /* "abcab" -> "a", "ca" -> " a", " ca" -> Ġa, Ġ c a */
        expect_ids(t, "abcab", (const int32_t[]){7, 3, 2, 0, -1});
        tokenizer_close(t);
    }
    /* lstrip swallows the spaces before the token; a normalized added token not in the
     * vocabulary takes the next id */
    write_tokenizer("added.json",
                    "[{\"id\": 9, \"content\": \"<|endoftext|>\", \"lstrip\": true, "
                    "\"special\": true, \"normalized\": false}, "
                    "{\"id\": 11, \"content\": \"cc\", \"special\": false, \"normalized\": true}]",
                    "{\"type\": \"Sequence\", \"normalizers\": []}", byte_level, "BPE",
                    legacy_merges, "");
    t = open_ok("added.json");
    if (t) {
        expect_ids(t, "a  <|endoftext|>acca", (const int32_t[]){0, 9, 0, 11, 0, -1});
        CHECK(tokenizer_vocab_size(t) == 12);
        tokenizer_close(t);
    }
}

static void expect_nfc(const char *text, const char *expected) {
    text_buffer out = {0};
    nfc_buffer work = {0};
    CHECK(bpe_nfc((const unsigned char *)text, strlen(text), &out, &work) == 0);
    CHECK_MSG(out.length == strlen(expected) && memcmp(out.data, expected, out.length) == 0,
              "NFC of \"%s\" is \"%s\"", text, out.data);
    CHECK(bpe_nfc_is_stable((const unsigned char *)text, strlen(text)) ==
          (strcmp(text, expected) == 0 && strstr(text, "\xcc") == NULL));
    text_buffer_free(&out);
    nfc_buffer_free(&work);
}

static void test_nfc(void) {
    expect_nfc("abc", "abc");
    expect_nfc("e\xcc\x81", "\xc3\xa9");                                /* e + U+0301 -> é */
    expect_nfc("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "\xea\xb0\x81"); /* jamo -> U+AC01 */
    expect_nfc("a\xcc\x81\xcc\xa3", "\xe1\xba\xa1\xcc\x81"); /* marks reordered, then ạ + ◌́ */
    expect_nfc("\xe2\x84\xab", "\xc3\x85");                  /* Ångström sign -> Å */
    expect_nfc("e\xff\xcc\x81", "e\xff\xcc\x81");            /* nothing joins across bad bytes */
    /* a normalized added token written decomposed matches the composed text */
    write_tokenizer("nfc.json",
                    "[{\"id\": 11, \"content\": \"e\\u0301\", \"special\": false, "
                    "\"normalized\": true}]",
                    "{\"type\": \"NFC\"}", byte_level, "BPE", legacy_merges, "");
    tokenizer *t = open_ok("nfc.json");
    if (!t) return;
    expect_ids(t,
               "a\xc3\xa9"
               "b",
               (const int32_t[]){0, 11, 1, -1});
    expect_ids(t,
               "ae\xcc\x81"
               "b",
               (const int32_t[]){0, 11, 1, -1});
    tokenizer_close(t);
}

static void expect_error(const char *name, const char *message) {
    tokenizer *t = NULL;
    status st;
    CHECK(tokenizer_open(in_dir(name), &t, &st) == -1 && t == NULL);
    char expected[1024];
    snprintf(expected, sizeof expected, "%s: %s", in_dir(name), message);
    CHECK_MSG(strcmp(st.message, expected) == 0, "got \"%s\", expected \"%s\"", st.message,
              expected);
}

static void test_errors(void) {
    expect_error("absent.json", "cannot open tokenizer: No such file or directory");
    write_text("bad.json", "{\"model\": }");
    expect_error("bad.json", "invalid JSON (unexpected character at line 1 column 11)");
    write_text("bad.json", "{\n  \"model\": {\"type\": \"BPE\"\n}");
    expect_error("bad.json", "invalid JSON (expected ',' or '}' at line 3 column 2)");
    write_text("bad.json", "[]");
    expect_error("bad.json", "expected a JSON object, got an array");
    write_text("bad.json", "{}");
    expect_error("bad.json", "model: missing");
    write_tokenizer("bad.json", added_eod, "null", byte_level, "WordPiece", legacy_merges, "");
    expect_error("bad.json", "model.type: \"WordPiece\" is not supported (only \"BPE\")");
    write_text("bad.json", "{\"model\": {\"type\": \"BPE\", \"merges\": []}}");
    expect_error("bad.json", "model.vocab: missing");
    write_good("bad.json", "[\"a z\"]", "");
    expect_error("bad.json", "model.merges[0]: token \"z\" is not in model.vocab");
    write_good("bad.json", "[[\"a\", \"b\"], [\"c\", \"a\"]]", "");
    expect_error("bad.json", "model.merges[1]: the merged token \"ca\" is not in model.vocab");
    write_good("bad.json", "[\"a b c\"]", "");
    expect_error("bad.json", "model.merges[0]: \"a b c\" is not two tokens separated by one space");
    write_good("bad.json", "[[\"a\"]]", "");
    expect_error("bad.json",
                 "model.merges[0]: expected \"a b\" or [\"a\", \"b\"], got another array");
    write_good("bad.json", "[]", "\"byte_fallback\": true, ");
    expect_error("bad.json", "model.byte_fallback: true is not supported (byte-level BPE needs no "
                             "byte fallback)");
    write_good("bad.json", "[]", "\"dropout\": 0.1, ");
    expect_error("bad.json", "model.dropout: 0.1 is not supported (BPE dropout makes encoding "
                             "random)");
    write_good("bad.json", "[]", "\"ignore_merges\": 1, ");
    expect_error("bad.json", "model.ignore_merges: expected a boolean, got a number");
    write_good("bad.json", "[]", "\"unk_token\": \"<unk>\", ");
    expect_error("bad.json", "model.unk_token: \"<unk>\" is not in model.vocab");
    write_tokenizer("bad.json", added_eod, "{\"type\": \"Lowercase\"}", byte_level, "BPE",
                    legacy_merges, "");
    expect_error("bad.json", "normalizer.type: \"Lowercase\" is not supported (NFC and Sequence "
                             "are)");
    write_tokenizer("bad.json", added_eod, "null", "null", "BPE", legacy_merges, "");
    expect_error("bad.json", "pre_tokenizer: missing (byte-level BPE needs a ByteLevel "
                             "pre-tokenizer)");
    write_tokenizer("bad.json", added_eod, "null",
                    "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
                    "\"pattern\": {\"Regex\": \"\\\\w+\"}, \"behavior\": \"Isolated\"}, "
                    "{\"type\": \"ByteLevel\"}]}",
                    "BPE", legacy_merges, "");
    expect_error("bad.json", "pre_tokenizer.pretokenizers[0].pattern: \\w is not supported "
                             "(Oniguruma and PCRE2 give it different meanings)");
    write_tokenizer("bad.json", added_eod, "null",
                    "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, "
                    "\"behavior\": \"Isolated\"}",
                    "BPE", legacy_merges, "");
    expect_error("bad.json", "pre_tokenizer.pattern: bad regex at offset 2: missing closing "
                             "parenthesis");
    write_tokenizer("bad.json", added_eod, "null", "{\"type\": \"Whitespace\"}", "BPE",
                    legacy_merges, "");
    expect_error("bad.json", "pre_tokenizer.type: \"Whitespace\" is not supported (ByteLevel, "
                             "Split, Digits and Sequence are)");
    write_tokenizer("bad.json", "[{\"id\": 12, \"content\": \"<|endoftext|>\", \"special\": true}]",
                    "null", byte_level, "BPE", legacy_merges, "");
    expect_error("bad.json", "added_tokens[0].id: 12, but Hugging Face tokenizers gives "
                             "\"<|endoftext|>\" the id 9 (its model.vocab id, else the next free "
                             "one)");
    write_text("bad.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, "
                           "\"merges\": []}}");
    expect_error("bad.json", "model.vocab: id 0 is given to both \"a\" and \"b\"");
    write_text("bad.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\\n\": -1}, "
                           "\"merges\": []}}");
    expect_error("bad.json", "model.vocab[\"a\\x0a\"]: the id must be an integer in [0, 16777216)");
}

static void test_json_document(void) {
    const char text[] =
        " {\"a\": [1, -2.5e1, true, false, null, {}], \"s\": \"x\\u00e9\\ud83d\\ude00\\n\","
        " \"a\": 7} ";
    json_document *d;
    json_error error;
    CHECK(json_parse(text, sizeof text - 1, 0, &d, &error) == 0);
    const json_value *root = json_document_root(d);
    CHECK(root->type == JSON_OBJECT && root->length == 3);
    const json_value *a = json_find(root, "a"), *s = json_find(root, "s");
    CHECK(a && a->type == JSON_NUMBER && a->is_integer && a->as.number == 7);
    CHECK(s && s->length == 8 && memcmp(s->as.string, "x\xc3\xa9\xf0\x9f\x98\x80\n", 8) == 0);
    const json_value *list = &root->as.members[0].value;
    CHECK(list->type == JSON_ARRAY && list->length == 6);
    CHECK(list->as.items[1].as.number == -25 && !list->as.items[1].is_integer);
    CHECK(list->as.items[2].type == JSON_TRUE && list->as.items[4].type == JSON_NULL);
    CHECK(list->as.items[5].type == JSON_OBJECT && list->as.items[5].length == 0);
    CHECK(json_find(root, "missing") == NULL && json_find(list, "a") == NULL);
    json_document_free(d);
    CHECK(json_parse("[01]", 4, 0, &d, &error) == -1);
    CHECK(strcmp(error.reason, "expected ',' or ']'") == 0 && error.offset == 2);
    CHECK(json_parse("[1,]", 4, 0, &d, &error) == -1 && error.offset == 3);
    size_t line, column;
    json_position("{\n\n  x", 5, &line, &column);
    CHECK(line == 3 && column == 3);
}

/* A cairn built without PCRE2 refuses regex pre-tokenizers with a clear error. */
static void test_without_pcre2(void) {
    write_good("regex.json", legacy_merges, "");
    expect_error("regex.json", "pre_tokenizer.pattern: regex pre-tokenizers need PCRE2, which this "
                               "cairn was built without");
}

#ifndef CAIRN_HAVE_PCRE2
#define CAIRN_HAVE_PCRE2 0
#endif

int main(void) {
    if (temp_dir_create("bpe") != 0) return 1;
    if (CAIRN_HAVE_PCRE2) {
        test_merges(legacy_merges);
        test_merges(pair_merges);
        test_ignore_merges();
        test_pre_tokenizers();
        test_nfc();
        test_errors();
    } else {
        test_without_pcre2();
    }
    test_json_document();
    temp_dir_remove();
    return check_summary("test_bpe_tokenizer");
}
