/* llm.c shard validation and document boundaries. The whole token array is scanned once on
 * open (for EOT positions, and for the range of uint32 tokens), which costs about as much as
 * reading the file once. */
#include "data/llmc_shard.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct shard_kind {
    int32_t magic, version, eot;
    int token_bytes;
    const char *name;
} shard_kind;

static const shard_kind kinds[] = {
    {20240520, 1, 50256, 2, "GPT-2"},
    {20240801, 7, 128000, 4, "Llama-3"},
};
enum { KIND_COUNT = sizeof kinds / sizeof kinds[0] };

static int32_t header_field(const uint8_t *data, int index) {
    const uint8_t *p = data + 4 * index;
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

static const shard_kind *kind_of_magic(int32_t magic) {
    for (int i = 0; i < KIND_COUNT; i++)
        if (kinds[i].magic == magic) return &kinds[i];
    return NULL;
}

int llmc_shard_probe(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint8_t magic[4];
    int found = fread(magic, 1, sizeof magic, f) == sizeof magic &&
                kind_of_magic(header_field(magic, 0)) != NULL;
    fclose(f);
    return found;
}

static int64_t token_at(const llmc_shard *s, int64_t i) {
    const uint8_t *p = s->tokens + i * s->token_bytes;
    uint32_t value = (uint32_t)p[0] | (uint32_t)p[1] << 8;
    if (s->token_bytes == 4) value |= (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return value;
}

/* Fills document_starts (when not NULL) and returns the number of documents. */
static int64_t find_documents(const llmc_shard *s, int64_t *document_starts) {
    int64_t documents = 0;
    for (int64_t i = 0; i < s->token_count; i++) {
        if (i > 0 && token_at(s, i) != s->eot) continue;
        if (document_starts) document_starts[documents] = i;
        documents++;
    }
    if (document_starts) document_starts[documents] = s->token_count;
    return documents;
}

static int check_token_range(const char *path, const llmc_shard *s, status *st) {
    if (s->token_bytes != 4) return 0;
    for (int64_t i = 0; i < s->token_count; i++)
        if (token_at(s, i) > INT32_MAX)
            return status_fail(st, "%s: token %" PRId64 " is %" PRId64 ", above the int32 range",
                               path, i, token_at(s, i));
    return 0;
}

int llmc_shard_parse(const char *path, const uint8_t *data, size_t size, llmc_shard *out,
                     status *st) {
    memset(out, 0, sizeof *out);
    if (size < LLMC_HEADER_BYTES)
        return status_fail(st, "%s: file too short (%zu bytes, the llm.c header alone is %d)", path,
                           size, LLMC_HEADER_BYTES);
    int32_t magic = header_field(data, 0), version = header_field(data, 1);
    int32_t token_count = header_field(data, 2);
    const shard_kind *kind = kind_of_magic(magic);
    if (!kind)
        return status_fail(st,
                           "%s: bad magic %" PRId32 " (not an llm.c token shard: expected %" PRId32
                           " for GPT-2 or %" PRId32 " for Llama-3)",
                           path, magic, kinds[0].magic, kinds[1].magic);
    if (version != kind->version)
        return status_fail(st,
                           "%s: version %" PRId32 " is not supported for magic %" PRId32
                           " (expected %" PRId32 ")",
                           path, version, magic, kind->version);
    if (token_count < 0)
        return status_fail(st, "%s: token count %" PRId32 " is negative", path, token_count);
    uint64_t expected = LLMC_HEADER_BYTES + (uint64_t)token_count * (uint64_t)kind->token_bytes;
    if (expected != size)
        return status_fail(st,
                           "%s: token count %" PRId32 " needs %" PRIu64 " bytes, the file has %zu",
                           path, token_count, expected, size);
    out->magic = magic;
    out->version = version;
    out->eot = kind->eot;
    out->token_bytes = kind->token_bytes;
    out->tokens = data + LLMC_HEADER_BYTES;
    out->token_count = token_count;
    if (check_token_range(path, out, st) != 0) return -1;
    out->document_count = find_documents(out, NULL);
    out->document_starts = malloc((size_t)(out->document_count + 1) * sizeof(int64_t));
    if (!out->document_starts)
        return status_fail(st, "%s: out of memory for %" PRId64 " documents", path,
                           out->document_count);
    find_documents(out, out->document_starts);
    return 0;
}

void llmc_shard_free(llmc_shard *s) {
    free(s->document_starts);
    s->document_starts = NULL;
}

const char *llmc_shard_kind(const llmc_shard *s) {
    const shard_kind *kind = kind_of_magic(s->magic);
    return kind ? kind->name : "unknown";
}
