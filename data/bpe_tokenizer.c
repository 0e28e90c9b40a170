/* tokenizer.json -> model, added tokens, pre-tokenizer and a decoding table;
 * encoding runs Hugging Face's pipeline (TokenizerImpl::encode_single_sequence):
 * added tokens on the raw text, then on what is left, then pre-tokenizers,
 * then BPE on each pre-token. Working memory lives in a bpe_encoder, one per
 * thread or per call, so the tokenizer itself is never written. */
#include "data/bpe_tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json_parse.h"
#include "common/sha256.h"
#include "data/bpe_added_tokens.h"
#include "data/bpe_fields.h"
#include "data/bpe_nfc.h"
#include "data/bpe_unicode.h"
#include "data/pretokenizer.h"

static const char *const eod_names[] = {"<|endoftext|>", "<|end_of_text|>", "</s>", "<|eot_id|>",
                                        "<eos>"};

struct bpe_tokenizer {
    int nfc; /* normalizer NFC */
    bpe_model model;
    added_tokens added;
    pretokenizer *pretokenizer;
    int32_t vocab_size, eod_id;
    char checksum[65];
    unsigned char *decoded;    /* the bytes of every id, back to back */
    uint64_t *decoded_offsets; /* id -> start in decoded; vocab_size + 1 entries */
    uint8_t *has_token;        /* ids with neither a vocab entry nor an added token are 0 */
};

static int read_file(const char *path, char **data, size_t *length, status *st) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return status_fail(st, "%s: cannot open tokenizer: %s", path, strerror(errno));
    size_t capacity = 1 << 16, used = 0;
    char *buffer = malloc(capacity);
    for (;;) {
        if (!buffer) break;
        used += fread(buffer + used, 1, capacity - used, f);
        if (used < capacity) break;
        char *bigger = realloc(buffer, capacity * 2);
        if (!bigger) {
            free(buffer);
            buffer = NULL;
            break;
        }
        buffer = bigger;
        capacity *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (!buffer) return status_fail(st, "%s: out of memory reading the tokenizer", path);
    if (failed) {
        free(buffer);
        return status_fail(st, "%s: read error", path);
    }
    *data = buffer;
    *length = used;
    return 0;
}

typedef struct normalizer_loading {
    const field_context *c;
    int *nfc;
} normalizer_loading;

/* NFC, or a Sequence of them (NFC twice is NFC once), or none. */
static int load_normalizer(void *context, const json_value *normalizer, const char *where) {
    const normalizer_loading *l = context;
    if (!normalizer || normalizer->type == JSON_NULL) return 0;
    const char *type;
    if (field_expect(l->c, normalizer, JSON_OBJECT, where, NULL) != 0 ||
        field_type(l->c, normalizer, where, &type) != 0)
        return -1;
    if (strcmp(type, "NFC") == 0) {
        *l->nfc = 1;
        return 0;
    }
    if (strcmp(type, "Sequence") != 0)
        return field_error(l->c, where, "type", "\"%s\" is not supported (NFC and Sequence are)",
                           type);
    return field_list(l->c, normalizer, where, "normalizers", load_normalizer, context);
}

static int check_decoder(const field_context *c, const json_value *root) {
    const json_value *decoder = json_find(root, "decoder");
    if (!decoder || decoder->type == JSON_NULL) return 0;
    const char *type;
    if (field_expect(c, decoder, JSON_OBJECT, "", "decoder") != 0 ||
        field_type(c, decoder, "decoder", &type) != 0)
        return -1;
    if (strcmp(type, "ByteLevel") == 0) return 0;
    return field_error(c, "decoder", "type", "\"%s\" is not supported (only \"ByteLevel\")", type);
}

/* Every id's bytes: its added token's content, else its vocab token, through the ByteLevel
 * decoder (an added token shadows a vocab entry with the same id, as in Hugging Face). */
static int build_decoding(bpe_tokenizer *t, const json_value *vocab, const char *path, status *st) {
    size_t n = (size_t)t->vocab_size;
    const char **texts = calloc(n + 1, sizeof *texts);
    size_t *lengths = calloc(n + 1, sizeof *lengths);
    t->decoded_offsets = calloc(n + 1, sizeof *t->decoded_offsets);
    t->has_token = calloc(n + 1, 1);
    int result = texts && lengths && t->decoded_offsets && t->has_token ? 0 : -1;
    for (size_t i = 0; result == 0 && i < vocab->length; i++) {
        size_t id = (size_t)vocab->as.members[i].value.as.number;
        texts[id] = vocab->as.members[i].key;
        lengths[id] = vocab->as.members[i].key_length;
        t->has_token[id] = 1;
    }
    for (size_t i = 0; result == 0 && i < t->added.count; i++) {
        const added_token *a = &t->added.tokens[i];
        texts[a->id] = a->content;
        lengths[a->id] = a->length;
        t->has_token[a->id] = 1;
    }
    size_t total = 0;
    for (size_t id = 0; result == 0 && id < n; id++)
        total += lengths[id];
    if (result == 0 && !(t->decoded = malloc(total + 1))) result = -1;
    for (size_t id = 0, used = 0; result == 0 && id < n; id++) {
        t->decoded_offsets[id] = used;
        used += byte_level_decode(texts[id], lengths[id], t->decoded + used);
        t->decoded_offsets[id + 1] = used;
    }
    free(texts);
    free(lengths);
    return result == 0 ? 0 : status_fail(st, "%s: out of memory", path);
}

static void find_eod(bpe_tokenizer *t) {
    t->eod_id = -1;
    for (size_t i = 0; i < sizeof eod_names / sizeof *eod_names && t->eod_id < 0; i++) {
        size_t length = strlen(eod_names[i]);
        t->eod_id = added_tokens_find(&t->added, eod_names[i], length);
        if (t->eod_id < 0) t->eod_id = bpe_model_token_id(&t->model, eod_names[i], length);
        if (t->eod_id < -1) t->eod_id = -1;
    }
}

static int load(bpe_tokenizer *t, const json_value *root, const char *path, status *st) {
    field_context c = {path, st};
    if (root->type != JSON_OBJECT)
        return status_fail(st, "%s: expected a JSON object, got %s", path,
                           json_type_name(root->type));
    const json_value *model = json_find(root, "model");
    if (!model) return field_error(&c, "", "model", "missing");
    normalizer_loading normalizers = {&c, &t->nfc};
    if (load_normalizer(&normalizers, json_find(root, "normalizer"), "normalizer") != 0 ||
        check_decoder(&c, root) != 0 || bpe_model_load(&t->model, model, path, st) != 0 ||
        added_tokens_load(&t->added, json_find(root, "added_tokens"), &t->model, t->nfc, path,
                          st) != 0 ||
        pretokenizer_load(json_find(root, "pre_tokenizer"), path, &t->pretokenizer, st) != 0)
        return -1;
    t->vocab_size = t->model.id_limit;
    for (size_t i = 0; i < t->added.count; i++)
        if (t->added.tokens[i].id >= t->vocab_size) t->vocab_size = t->added.tokens[i].id + 1;
    if (t->vocab_size == 0) return field_error(&c, "model", "vocab", "empty");
    find_eod(t);
    return build_decoding(t, json_find(model, "vocab"), path, st);
}

int bpe_tokenizer_open(const char *path, bpe_tokenizer **out, status *st) {
    *out = NULL;
    char *text;
    size_t length = 0;
    if (read_file(path, &text, &length, st) != 0) return -1;
    bpe_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        free(text);
        return status_fail(st, "%s: out of memory", path);
    }
    sha256_context sha;
    uint8_t digest[32];
    sha256_init(&sha);
    sha256_update(&sha, text, length);
    sha256_final(&sha, digest);
    sha256_hex(digest, t->checksum);
    json_document *document;
    int result = json_parse_file_text(path, text, length, 0, &document, st);
    if (result == 0) {
        result = load(t, json_document_root(document), path, st);
        json_document_free(document);
    }
    free(text);
    if (result != 0) {
        bpe_tokenizer_close(t);
        return -1;
    }
    *out = t;
    return 0;
}

void bpe_tokenizer_close(bpe_tokenizer *t) {
    if (!t) return;
    bpe_model_free(&t->model);
    added_tokens_free(&t->added);
    pretokenizer_free(t->pretokenizer);
    free(t->decoded);
    free(t->decoded_offsets);
    free(t->has_token);
    free(t);
}

int bpe_tokenizer_vocab_size(const bpe_tokenizer *t) { return t->vocab_size; }

int bpe_tokenizer_eod_id(const bpe_tokenizer *t) { return t->eod_id; }

const char *bpe_tokenizer_checksum(const bpe_tokenizer *t) { return t->checksum; }

struct bpe_encoder {
    const bpe_tokenizer *t;
    pretokenizer_state *pretokenizer;
    bpe_scratch scratch;
    text_buffer normalized; /* NFC of the text between added tokens */
    nfc_buffer nfc_work;
    /* of the call running now */
    id_list *out;
    const unsigned char *text; /* of the added-token pass running now */
    status *st;
};

int bpe_encoder_open(const bpe_tokenizer *t, int use_cache, bpe_encoder **out, status *st) {
    *out = NULL;
    bpe_encoder *e = calloc(1, sizeof *e);
    if (e) e->pretokenizer = pretokenizer_state_new(t->pretokenizer);
    if (!e || !e->pretokenizer) {
        free(e);
        return status_fail(st, "tokenizer: out of memory");
    }
    e->t = t;
    e->scratch.use_cache = use_cache;
    *out = e;
    return 0;
}

void bpe_encoder_close(bpe_encoder *e) {
    if (!e) return;
    pretokenizer_state_free(e->pretokenizer);
    bpe_scratch_free(&e->scratch);
    text_buffer_free(&e->normalized);
    nfc_buffer_free(&e->nfc_work);
    free(e);
}

static int encode_pre_token(void *context, const unsigned char *piece, size_t length) {
    bpe_encoder *e = context;
    if (bpe_model_encode(&e->t->model, piece, length, e->out, &e->scratch) != 0)
        return status_fail(e->st, "tokenizer: out of memory");
    return 0;
}

static int push_added(bpe_encoder *e, int32_t id) {
    return id_list_push(e->out, id) == 0 ? 0 : status_fail(e->st, "tokenizer: out of memory");
}

/* Pieces of the second added-token pass (normalized tokens) */
static int encode_normalized_piece(void *context, size_t start, size_t end, int32_t id) {
    bpe_encoder *e = context;
    if (id >= 0) return push_added(e, id);
    return pretokenizer_run(e->t->pretokenizer, e->pretokenizer, e->text + start, end - start,
                            encode_pre_token, e, e->st);
}

/* Pieces of the first pass (tokens matched on the raw text): normalized, then cut at the
 * normalized added tokens. */
static int encode_raw_piece(void *context, size_t start, size_t end, int32_t id) {
    bpe_encoder *e = context;
    if (id >= 0) return push_added(e, id);
    const unsigned char *outer = e->text, *piece = outer + start;
    size_t length = end - start;
    if (e->t->nfc && !bpe_nfc_is_stable(piece, length)) {
        if (bpe_nfc(piece, length, &e->normalized, &e->nfc_work) != 0)
            return status_fail(e->st, "tokenizer: out of memory");
        piece = (const unsigned char *)e->normalized.data;
        length = e->normalized.length;
    }
    e->text = piece;
    int result =
        added_tokens_split(&e->t->added, 1, piece, length, encode_normalized_piece, e, e->st);
    e->text = outer;
    return result;
}

int bpe_encoder_encode(bpe_encoder *e, const char *text, size_t length, id_list *out, status *st) {
    e->out = out;
    e->text = (const unsigned char *)text;
    e->st = st;
    return added_tokens_split(&e->t->added, 0, e->text, length, encode_raw_piece, e, st);
}

int bpe_tokenizer_encode(const bpe_tokenizer *t, const char *text, size_t length, id_list *out,
                         status *st) {
    bpe_encoder *e = NULL;
    if (bpe_encoder_open(t, 0, &e, st) != 0) return -1;
    int result = bpe_encoder_encode(e, text, length, out, st);
    bpe_encoder_close(e);
    return result;
}

const unsigned char *bpe_tokenizer_token_bytes(const bpe_tokenizer *t, int32_t id, size_t *length) {
    if (id < 0 || id >= t->vocab_size || !t->has_token[id]) return NULL;
    *length = t->decoded_offsets[id + 1] - t->decoded_offsets[id];
    return t->decoded + t->decoded_offsets[id];
}
