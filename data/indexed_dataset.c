/* Megatron indexed dataset writer, and the validating memory-mapped reader of Megatron datasets
 * and llm.c shards (the llm.c header and documents come from data/llmc_shard.c; here both
 * formats become one token stream plus document starts).
 *
 * The .idx arrays start at byte 34, so they are unaligned: every field is read
 * through byte-wise loads, never through a cast pointer. Files are written
 * little-endian byte by byte so the output does not depend on the host. */
#include "data/indexed_dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/path.h"
#include "data/llmc_shard.h"

enum { HEADER_BYTES = 34, VERSION = 1, DTYPE_UINT16 = 8, DTYPE_INT32 = 4 };
static const char magic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};

/* Megatron's `DType.optimal_dtype` boundary (tools/preprocess_data.py). */
enum { UINT16_VOCAB_LIMIT = 65500 };

static int dtype_itemsize(int code) {
    switch (code) {
    case 1: case 2: return 1;              /* uint8, int8 */
    case 3: case 8: return 2;              /* int16, uint16 */
    case 4: case 7: return 4;              /* int32, float32 */
    case 5: case 6: return 8;              /* int64, float64 */
    default: return 0;
    }
}

const char *indexed_dataset_dtype_name(int code) {
    static const char *names[] = {"unknown", "uint8", "int8",    "int16",
                                  "int32",   "int64", "float64", "float32", "uint16"};
    return code >= 1 && code <= 8 ? names[code] : names[0];
}

static char *path_with_suffix(const char *prefix, const char *suffix) {
    size_t length = strlen(prefix) + strlen(suffix) + 1;
    char *path = malloc(length);
    if (path) snprintf(path, length, "%s%s", prefix, suffix);
    return path;
}

static void store_le(uint8_t *p, uint64_t value, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(value >> (8 * i));
}

static uint64_t load_le(const uint8_t *p, int bytes) {
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++) value |= (uint64_t)p[i] << (8 * i);
    return value;
}

static int32_t load_i32(const uint8_t *array, int64_t i) {
    return (int32_t)(uint32_t)load_le(array + 4 * i, 4);
}

static int64_t load_i64(const uint8_t *array, int64_t i) {
    return (int64_t)load_le(array + 8 * i, 8);
}

/* ---- writer ---- */

static int make_parent_folders(const char *prefix, status *st) {
    char *path = strdup(prefix);
    if (!path) return status_fail(st, "%s: out of memory", prefix);
    int result = 0;
    for (char *p = path + 1; *p && result == 0; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            result = status_fail(st, "%s: cannot create folder: %s", path, strerror(errno));
        *p = '/';
    }
    free(path);
    return result;
}

struct indexed_dataset_writer {
    char *prefix, *bin_tmp, *idx_tmp;
    FILE *bin;
    int vocab_size, dtype_code, itemsize;
    int32_t *lengths;
    size_t count, capacity;
    uint8_t *encoded;
    size_t encoded_capacity;
};

static void writer_free(indexed_dataset_writer *w) {
    if (w->bin) fclose(w->bin);
    free(w->prefix);
    free(w->bin_tmp);
    free(w->idx_tmp);
    free(w->lengths);
    free(w->encoded);
    free(w);
}

void indexed_dataset_writer_abort(indexed_dataset_writer *w) {
    if (!w) return;
    if (w->bin) fclose(w->bin);
    w->bin = NULL;
    unlink(w->bin_tmp);
    unlink(w->idx_tmp);
    writer_free(w);
}

int indexed_dataset_writer_open(const char *prefix, int vocab_size, indexed_dataset_writer **out,
                                status *st) {
    *out = NULL;
    if (vocab_size <= 0) return status_fail(st, "%s: vocabulary size %d", prefix, vocab_size);
    indexed_dataset_writer *w = calloc(1, sizeof *w);
    if (!w) return status_fail(st, "%s: out of memory", prefix);
    w->prefix = strdup(prefix);
    w->bin_tmp = path_with_suffix(prefix, ".bin.tmp");
    w->idx_tmp = path_with_suffix(prefix, ".idx.tmp");
    if (!w->prefix || !w->bin_tmp || !w->idx_tmp) {
        writer_free(w);
        return status_fail(st, "%s: out of memory", prefix);
    }
    w->vocab_size = vocab_size;
    w->dtype_code = vocab_size < UINT16_VOCAB_LIMIT ? DTYPE_UINT16 : DTYPE_INT32;
    w->itemsize = dtype_itemsize(w->dtype_code);
    if (make_parent_folders(prefix, st) != 0) {
        writer_free(w);
        return -1;
    }
    w->bin = fopen(w->bin_tmp, "wb");
    if (!w->bin) {
        status_fail(st, "%s: cannot create: %s", w->bin_tmp, strerror(errno));
        writer_free(w);
        return -1;
    }
    *out = w;
    return 0;
}

int indexed_dataset_writer_add(indexed_dataset_writer *w, const int32_t *tokens, size_t count,
                               status *st) {
    if (count > INT32_MAX)
        return status_fail(st, "%s: document of %zu tokens exceeds the int32 sequence length",
                           w->prefix, count);
    if (w->count == w->capacity) {
        size_t grown = w->capacity ? 2 * w->capacity : 1024;
        int32_t *bigger = realloc(w->lengths, grown * sizeof *bigger);
        if (!bigger) return status_fail(st, "%s: out of memory for the index", w->prefix);
        w->lengths = bigger;
        w->capacity = grown;
    }
    if (count * w->itemsize > w->encoded_capacity) {
        uint8_t *bigger = realloc(w->encoded, count * w->itemsize);
        if (!bigger) return status_fail(st, "%s: out of memory for %zu tokens", w->prefix, count);
        w->encoded = bigger;
        w->encoded_capacity = count * w->itemsize;
    }
    /* One branch-free pass finds the largest id (negative ids compare as huge), so the
     * common case costs a vectorised scan and a store loop. */
    uint32_t largest = 0;
    for (size_t i = 0; i < count; i++)
        largest = (uint32_t)tokens[i] > largest ? (uint32_t)tokens[i] : largest;
    if (count && largest >= (uint32_t)w->vocab_size) {
        size_t i = 0;
        while (tokens[i] >= 0 && tokens[i] < w->vocab_size) i++;
        return status_fail(st, "%s: token id %d outside the vocabulary of %d", w->prefix,
                           tokens[i], w->vocab_size);
    }
    uint8_t *p = w->encoded;
    if (w->itemsize == 2)
        for (size_t i = 0; i < count; i++) store_le(p + 2 * i, (uint32_t)tokens[i], 2);
    else
        for (size_t i = 0; i < count; i++) store_le(p + 4 * i, (uint32_t)tokens[i], 4);
    if (count && fwrite(w->encoded, w->itemsize, count, w->bin) != count)
        return status_fail(st, "%s: write error: %s", w->bin_tmp, strerror(errno));
    w->lengths[w->count++] = (int32_t)count;
    return 0;
}

/* Flushes f to the disk and closes it; 0 or -1 (errno set). */
static int close_synced(FILE *f) {
    int failed = fflush(f) != 0 || fsync(fileno(f)) != 0;
    return fclose(f) != 0 || failed ? -1 : 0;
}

static int write_index(const indexed_dataset_writer *w, status *st) {
    FILE *f = fopen(w->idx_tmp, "wb");
    if (!f) return status_fail(st, "%s: cannot create: %s", w->idx_tmp, strerror(errno));
    uint8_t header[HEADER_BYTES];
    memcpy(header, magic, sizeof magic);
    store_le(header + 9, VERSION, 8);
    header[17] = (uint8_t)w->dtype_code;
    store_le(header + 18, w->count, 8);
    store_le(header + 26, w->count + 1, 8);
    int ok = fwrite(header, 1, sizeof header, f) == sizeof header;
    uint8_t field[8];
    for (size_t i = 0; ok && i < w->count; i++) {
        store_le(field, (uint32_t)w->lengths[i], 4);
        ok = fwrite(field, 1, 4, f) == 4;
    }
    int64_t pointer = 0;
    for (size_t i = 0; ok && i < w->count; i++) {
        store_le(field, (uint64_t)pointer, 8);
        ok = fwrite(field, 1, 8, f) == 8;
        pointer += (int64_t)w->lengths[i] * w->itemsize;
    }
    /* One sequence per document: document_indices = 0, 1, ..., S. */
    for (size_t i = 0; ok && i <= w->count; i++) {
        store_le(field, i, 8);
        ok = fwrite(field, 1, 8, f) == 8;
    }
    if (close_synced(f) != 0) ok = 0;
    if (!ok) return status_fail(st, "%s: write error: %s", w->idx_tmp, strerror(errno));
    return 0;
}

static int rename_into_place(const char *from, const char *prefix, const char *suffix,
                             status *st) {
    char *to = path_with_suffix(prefix, suffix);
    if (!to) return status_fail(st, "%s: out of memory", prefix);
    int failed = rename(from, to) != 0;
    if (failed) status_fail(st, "%s: cannot rename to %s: %s", from, to, strerror(errno));
    free(to);
    return failed ? -1 : 0;
}

/* The old index goes first, so that a crash between the two renames leaves a dataset that
 * reads as missing rather than a new .bin beside the old .idx. */
static int commit_files(const indexed_dataset_writer *w, status *st) {
    char *old_index = path_with_suffix(w->prefix, ".idx");
    if (!old_index) return status_fail(st, "%s: out of memory", w->prefix);
    int failed = unlink(old_index) != 0 && errno != ENOENT;
    if (failed) status_fail(st, "%s: cannot replace: %s", old_index, strerror(errno));
    free(old_index);
    if (failed) return -1;
    return rename_into_place(w->bin_tmp, w->prefix, ".bin", st) != 0 ||
                   rename_into_place(w->idx_tmp, w->prefix, ".idx", st) != 0
               ? -1
               : 0;
}

int indexed_dataset_writer_close(indexed_dataset_writer *w, status *st) {
    int failed = close_synced(w->bin) != 0;
    w->bin = NULL;
    if (failed) {
        status_fail(st, "%s: write error: %s", w->bin_tmp, strerror(errno));
        indexed_dataset_writer_abort(w);
        return -1;
    }
    if (write_index(w, st) != 0 || commit_files(w, st) != 0) {
        indexed_dataset_writer_abort(w);
        return -1;
    }
    writer_free(w);
    return 0;
}

/* ---- reader ---- */

enum { FORMAT_MEGATRON, FORMAT_LLMC };

struct indexed_dataset {
    char *prefix;
    char *files[2];
    int file_count, format;
    const uint8_t *idx, *bin;
    size_t idx_size, bin_size;
    const uint8_t *token_bytes;  /* the first token: the .bin start, or past the llm.c header */
    int dtype_code;              /* as reported; 0 for llm.c uint32 (not in Megatron's table) */
    int decode_code;             /* the Megatron code whose decoding reads the tokens */
    int itemsize;
    int64_t sequences, documents, tokens;
    const uint8_t *lengths, *pointers, *document_indices;
    llmc_shard shard;
};

static int map_file(const char *path, const uint8_t **data, size_t *size, status *st) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return status_fail(st, "%s: cannot open: %s", path, strerror(errno));
    struct stat info;
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        close(fd);
        return status_fail(st, "%s: not a regular file", path);
    }
    *size = (size_t)info.st_size;
    *data = NULL;
    if (*size > 0) {
        void *mapped = mmap(NULL, *size, PROT_READ, MAP_SHARED, fd, 0);
        if (mapped == MAP_FAILED) {
            close(fd);
            return status_fail(st, "%s: cannot map: %s", path, strerror(errno));
        }
        *data = mapped;
    }
    close(fd);
    return 0;
}

void indexed_dataset_close(indexed_dataset *d) {
    if (!d) return;
    if (d->idx) munmap((void *)d->idx, d->idx_size);
    if (d->bin) munmap((void *)d->bin, d->bin_size);
    llmc_shard_free(&d->shard);
    free(d->prefix);
    free(d->files[0]);
    free(d->files[1]);
    free(d);
}

static int validate_header(indexed_dataset *d, const char *idx_path, status *st) {
    if (d->idx_size < HEADER_BYTES)
        return status_fail(st, "%s: file too short (%zu bytes, the header alone is %d)",
                           idx_path, d->idx_size, HEADER_BYTES);
    if (memcmp(d->idx, magic, sizeof magic) != 0)
        return status_fail(st, "%s: bad magic (not a Megatron indexed dataset index)", idx_path);
    uint64_t version = load_le(d->idx + 9, 8);
    if (version != VERSION)
        return status_fail(st, "%s: version %" PRIu64 " is not supported (expected 1)", idx_path,
                           version);
    d->dtype_code = d->decode_code = d->idx[17];
    d->itemsize = dtype_itemsize(d->dtype_code);
    if (!d->itemsize) return status_fail(st, "%s: unknown dtype code %d", idx_path, d->dtype_code);
    uint64_t sequences = load_le(d->idx + 18, 8), document_entries = load_le(d->idx + 26, 8);
    uint64_t room = d->idx_size - HEADER_BYTES;
    /* Sizes are checked before multiplying so that huge counts cannot overflow. */
    int fits = sequences <= room / 12 && document_entries <= room / 8;
    uint64_t needed = fits ? 12 * sequences + 8 * document_entries : UINT64_MAX;
    /* Multimodal datasets append one int8 mode per sequence. */
    if (!fits || (room != needed && room != needed + sequences))
        return status_fail(st,
                           "%s: sequence_count %" PRIu64 " and document_count %" PRIu64
                           " do not match the file length (%zu bytes)",
                           idx_path, sequences, document_entries, d->idx_size);
    if (document_entries < 1)
        return status_fail(st, "%s: document_count is 0 (document_indices must start with 0)",
                           idx_path);
    d->sequences = (int64_t)sequences;
    d->documents = (int64_t)document_entries - 1;
    d->lengths = d->idx + HEADER_BYTES;
    d->pointers = d->lengths + 4 * sequences;
    d->document_indices = d->pointers + 8 * sequences;
    return 0;
}

static int validate_arrays(indexed_dataset *d, const char *idx_path, const char *bin_path,
                           status *st) {
    int64_t expected = 0;
    for (int64_t i = 0; i < d->sequences; i++) {
        int32_t length = load_i32(d->lengths, i);
        if (length < 0)
            return status_fail(st, "%s: sequence_lengths[%" PRId64 "] is negative (%d)", idx_path,
                               i, length);
        int64_t pointer = load_i64(d->pointers, i);
        if (pointer != expected)
            return status_fail(st,
                               "%s: sequence_pointers[%" PRId64 "] is %" PRId64
                               ", expected %" PRId64 " from the sequence lengths",
                               idx_path, i, pointer, expected);
        expected += (int64_t)length * d->itemsize;
    }
    if ((uint64_t)expected != d->bin_size)
        return status_fail(st, "%s: file has %zu bytes, the index describes %" PRId64, bin_path,
                           d->bin_size, expected);
    d->tokens = expected / d->itemsize;
    int64_t first = load_i64(d->document_indices, 0);
    if (first != 0)
        return status_fail(st, "%s: document_indices[0] is %" PRId64 ", expected 0", idx_path,
                           first);
    for (int64_t i = 1; i <= d->documents; i++) {
        int64_t previous = load_i64(d->document_indices, i - 1);
        int64_t current = load_i64(d->document_indices, i);
        if (current < previous)
            return status_fail(st,
                               "%s: document_indices[%" PRId64 "] = %" PRId64
                               " is below the previous entry %" PRId64,
                               idx_path, i, current, previous);
    }
    int64_t last = load_i64(d->document_indices, d->documents);
    if (last != d->sequences)
        return status_fail(st,
                           "%s: document_indices ends at %" PRId64
                           ", expected the sequence count %" PRId64,
                           idx_path, last, d->sequences);
    return 0;
}

static double load_float(const uint8_t *p, int itemsize) {
    if (itemsize == 8) {
        double value;
        uint64_t bits = load_le(p, 8);
        memcpy(&value, &bits, sizeof value);
        return value;
    }
    float value;
    uint32_t bits = (uint32_t)load_le(p, 4);
    memcpy(&value, &bits, sizeof value);
    return value;
}

/* Tokens are read as int32: int64 and float files must hold int32-valued integers only. */
static int validate_token_values(const indexed_dataset *d, const char *bin_path, status *st) {
    const uint8_t *p = d->token_bytes;
    for (int64_t i = 0; d->dtype_code == 5 && i < d->tokens; i++) {
        int64_t value = (int64_t)load_le(p + 8 * i, 8);
        if (value < INT32_MIN || value > INT32_MAX)
            return status_fail(st, "%s: token %" PRId64 " is %" PRId64 ", outside the int32 range",
                               bin_path, i, value);
    }
    for (int64_t i = 0; (d->dtype_code == 6 || d->dtype_code == 7) && i < d->tokens; i++) {
        double value = load_float(p + d->itemsize * i, d->itemsize);
        if (!(value >= INT32_MIN && value <= INT32_MAX) || value != (double)(int32_t)value)
            return status_fail(st, "%s: token %" PRId64 " is %.17g, not an integer token id (%s)",
                               bin_path, i, value, indexed_dataset_dtype_name(d->dtype_code));
    }
    return 0;
}

static int open_megatron(indexed_dataset *d, status *st) {
    d->format = FORMAT_MEGATRON;
    d->file_count = 2;
    d->files[0] = path_with_suffix(d->prefix, ".idx");
    d->files[1] = path_with_suffix(d->prefix, ".bin");
    if (!d->files[0] || !d->files[1]) return status_fail(st, "%s: out of memory", d->prefix);
    if (map_file(d->files[0], &d->idx, &d->idx_size, st) != 0 ||
        validate_header(d, d->files[0], st) != 0 ||
        map_file(d->files[1], &d->bin, &d->bin_size, st) != 0)
        return -1;
    d->token_bytes = d->bin;
    return validate_arrays(d, d->files[0], d->files[1], st) != 0 ||
                   validate_token_values(d, d->files[1], st) != 0
               ? -1
               : 0;
}

static int open_llmc(indexed_dataset *d, status *st) {
    d->format = FORMAT_LLMC;
    d->file_count = 1;
    d->files[0] = strdup(d->prefix);
    if (!d->files[0]) return status_fail(st, "%s: out of memory", d->prefix);
    if (map_file(d->files[0], &d->bin, &d->bin_size, st) != 0 ||
        llmc_shard_parse(d->files[0], d->bin, d->bin_size, &d->shard, st) != 0)
        return -1;
    d->token_bytes = d->shard.tokens;
    d->itemsize = d->shard.token_bytes;
    /* uint32 tokens were checked to be below 2^31, so they read as int32 */
    d->decode_code = d->itemsize == 2 ? DTYPE_UINT16 : DTYPE_INT32;
    d->dtype_code = d->itemsize == 2 ? DTYPE_UINT16 : 0;
    d->tokens = d->shard.token_count;
    d->documents = d->shard.document_count;
    return 0;
}

static int is_regular_file(const char *path) {
    struct stat info;
    return stat(path, &info) == 0 && S_ISREG(info.st_mode);
}

/* Which files `path` names: sets d->prefix and returns the format. */
static int resolve_path(indexed_dataset *d, const char *path, status *st) {
    size_t length = strlen(path);
    char *stripped = strdup(path), *index = path_with_suffix(path, ".idx");
    char *data = path_with_suffix(path, ".bin");
    int format = -1;
    if (!stripped || !index || !data) {
        status_fail(st, "%s: out of memory", path);
    } else {
        if (path_has_suffix(path, ".bin") || path_has_suffix(path, ".idx"))
            stripped[length - 4] = '\0';
        char *stripped_index = path_with_suffix(stripped, ".idx");
        int megatron_pair = stripped_index && strcmp(stripped, path) != 0 &&
                            is_regular_file(stripped_index);
        free(stripped_index);
        if (megatron_pair) {
            d->prefix = strdup(stripped);
            format = FORMAT_MEGATRON;
        } else if (is_regular_file(path) && !is_regular_file(index)) {
            d->prefix = strdup(path);
            format = FORMAT_LLMC;
        } else if (!is_regular_file(index) && llmc_shard_probe(data)) {
            d->prefix = data;
            data = NULL;
            format = FORMAT_LLMC;
        } else {
            d->prefix = strdup(path);
            format = FORMAT_MEGATRON;
        }
        if (!d->prefix) format = status_fail(st, "%s: out of memory", path);
    }
    free(stripped);
    free(index);
    free(data);
    return format;
}

int indexed_dataset_open(const char *prefix, indexed_dataset **out, status *st) {
    *out = NULL;
    indexed_dataset *d = calloc(1, sizeof *d);
    if (!d) return status_fail(st, "%s: out of memory", prefix);
    int format = resolve_path(d, prefix, st);
    int failed = format < 0 || (format == FORMAT_LLMC ? open_llmc(d, st) : open_megatron(d, st));
    if (failed) {
        indexed_dataset_close(d);
        return -1;
    }
    *out = d;
    return 0;
}

int64_t indexed_dataset_documents(const indexed_dataset *d) { return d->documents; }

int64_t indexed_dataset_tokens(const indexed_dataset *d) { return d->tokens; }

int indexed_dataset_dtype_code(const indexed_dataset *d) { return d->dtype_code; }

const char *indexed_dataset_dtype(const indexed_dataset *d) {
    return d->dtype_code ? indexed_dataset_dtype_name(d->dtype_code) : "uint32";
}

const char *indexed_dataset_format(const indexed_dataset *d) {
    return d->format == FORMAT_LLMC ? "llm.c" : "megatron";
}

const char *indexed_dataset_prefix(const indexed_dataset *d) { return d->prefix; }

int indexed_dataset_file_count(const indexed_dataset *d) { return d->file_count; }

const char *indexed_dataset_file(const indexed_dataset *d, int i) { return d->files[i]; }

const llmc_shard *indexed_dataset_llmc_shard(const indexed_dataset *d) {
    return d->format == FORMAT_LLMC ? &d->shard : NULL;
}

int64_t indexed_dataset_document_start(const indexed_dataset *d, int64_t doc) {
    if (d->format == FORMAT_LLMC) return d->shard.document_starts[doc];
    int64_t sequence = load_i64(d->document_indices, doc);
    return sequence < d->sequences ? load_i64(d->pointers, sequence) / d->itemsize : d->tokens;
}

int64_t indexed_dataset_document_length(const indexed_dataset *d, int64_t doc) {
    return indexed_dataset_document_start(d, doc + 1) - indexed_dataset_document_start(d, doc);
}

void indexed_dataset_read_stream(const indexed_dataset *d, int64_t first, int64_t count,
                                 int32_t *out) {
    const uint8_t *p = d->token_bytes + first * d->itemsize;
    int64_t i;
    /* int64 and float values were checked on open to be int32 integers */
    switch (d->decode_code) {
    case 8: for (i = 0; i < count; i++) out[i] = (int32_t)(uint16_t)load_le(p + 2 * i, 2); break;
    case 4: for (i = 0; i < count; i++) out[i] = (int32_t)(uint32_t)load_le(p + 4 * i, 4); break;
    case 1: for (i = 0; i < count; i++) out[i] = p[i]; break;
    case 2: for (i = 0; i < count; i++) out[i] = (int8_t)p[i]; break;
    case 3: for (i = 0; i < count; i++) out[i] = (int16_t)(uint16_t)load_le(p + 2 * i, 2); break;
    case 5: for (i = 0; i < count; i++) out[i] = (int32_t)(int64_t)load_le(p + 8 * i, 8); break;
    case 6: case 7:
        for (i = 0; i < count; i++) out[i] = (int32_t)load_float(p + d->itemsize * i, d->itemsize);
        break;
    }
}

void indexed_dataset_read(const indexed_dataset *d, int64_t doc, int64_t offset, int64_t count,
                          int32_t *out) {
    indexed_dataset_read_stream(d, indexed_dataset_document_start(d, doc) + offset, count, out);
}
