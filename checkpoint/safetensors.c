#include "checkpoint/safetensors.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bf16.h"
#include "common/json.h"
#include "common/json_parse.h"

enum { CHUNK_ELEMENTS = 1 << 16 };

static const struct {
    const char *name;
    int bits;
} dtypes[SAFETENSORS_DTYPE_COUNT] = {
    {"BOOL", 8},        {"F4", 4},      {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"U8", 8},
    {"I8", 8},          {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8},
    {"F8_E5M2FNUZ", 8}, {"I16", 16},    {"U16", 16},    {"F16", 16},    {"BF16", 16},
    {"I32", 32},        {"U32", 32},    {"F32", 32},    {"C64", 64},    {"F64", 64},
    {"I64", 64},        {"U64", 64},
};

const char *safetensors_dtype_name(safetensors_dtype dtype) { return dtypes[dtype].name; }

int safetensors_dtype_bits(safetensors_dtype dtype) { return dtypes[dtype].bits; }

int safetensors_dtype_from_name(const char *name) {
    for (int i = 0; i < SAFETENSORS_DTYPE_COUNT; i++)
        if (strcmp(dtypes[i].name, name) == 0) return i;
    return -1;
}

/* ------------------------------------------------------------ conversions -- */

static uint32_t float_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float bits_float(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = h >> 10 & 0x1F, mantissa = h & 0x3FF;
    if (exponent == 0x1F) return bits_float(sign | 0x7F800000 | mantissa << 13);
    if (exponent == 0) /* zero and subnormals: mantissa · 2^-24, exact in fp32 */
        return sign ? -ldexpf((float)mantissa, -24) : ldexpf((float)mantissa, -24);
    return bits_float(sign | (exponent + 112) << 23 | mantissa << 13);
}

static uint64_t read_le(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void write_le(unsigned char *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> 8 * i);
}

/* ----------------------------------------------------------------- reader -- */

static void free_file(safetensors_file *f) {
    if (!f) return;
    if (f->stream) fclose(f->stream);
    for (int i = 0; i < f->count; i++)
        free(f->tensors[i].name);
    for (int i = 0; i < f->metadata_count; i++) {
        free(f->metadata_keys[i]);
        free(f->metadata_values[i]);
    }
    free(f->tensors);
    free(f->metadata_keys);
    free(f->metadata_values);
    free(f->path);
    free(f);
}

void safetensors_close(safetensors_file *f) { free_file(f); }

static int by_begin(const void *a, const void *b) {
    const safetensors_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const safetensors_tensor *)a)->name, ((const safetensors_tensor *)b)->name);
}

static int read_metadata(safetensors_file *f, const json_value *m, status *st) {
    if (m->type != JSON_OBJECT)
        return status_fail(st, "%s: __metadata__ is not an object", f->path);
    f->metadata_keys = calloc(m->length + 1, sizeof *f->metadata_keys);
    f->metadata_values = calloc(m->length + 1, sizeof *f->metadata_values);
    if (!f->metadata_keys || !f->metadata_values) return status_fail(st, "out of memory");
    for (size_t i = 0; i < m->length; i++) {
        const json_member *entry = &m->as.members[i];
        if (entry->value.type != JSON_STRING)
            return status_fail(st, "%s: __metadata__.%s is not a string", f->path, entry->key);
        f->metadata_keys[i] = strdup(entry->key);
        f->metadata_values[i] = strdup(entry->value.as.string);
        f->metadata_count++;
        if (!f->metadata_keys[i] || !f->metadata_values[i]) return status_fail(st, "out of memory");
    }
    return 0;
}

static int non_negative_integer(const json_value *v) {
    return v && v->type == JSON_NUMBER && v->is_integer && v->as.integer >= 0;
}

/* One header entry into t (t->name already set). */
static int read_entry(const safetensors_file *f, const json_value *e, safetensors_tensor *t,
                      status *st) {
    const char *name = t->name;
    if (e->type != JSON_OBJECT)
        return status_fail(st, "%s: tensor %s: header entry is not an object", f->path, name);
    const json_value *dtype = json_find(e, "dtype"), *shape = json_find(e, "shape");
    const json_value *offsets = json_find(e, "data_offsets");
    int named = dtype && dtype->type == JSON_STRING;
    int d = named ? safetensors_dtype_from_name(dtype->as.string) : -1;
    if (d < 0)
        return status_fail(st, "%s: tensor %s: missing or unknown dtype%s%s", f->path, name,
                           named ? " " : "", named ? dtype->as.string : "");
    t->dtype = (safetensors_dtype)d;
    if (!shape || shape->type != JSON_ARRAY || shape->length > SAFETENSORS_MAX_DIMS)
        return status_fail(st, "%s: tensor %s: shape must be a list of at most %d sizes", f->path,
                           name, SAFETENSORS_MAX_DIMS);
    uint64_t elements = 1;
    t->ndim = (int)shape->length;
    for (int i = 0; i < t->ndim; i++) {
        if (!non_negative_integer(&shape->as.items[i]))
            return status_fail(st, "%s: tensor %s: shape[%d] is not a non-negative integer",
                               f->path, name, i);
        t->shape[i] = shape->as.items[i].as.integer;
        if (__builtin_mul_overflow(elements, (uint64_t)t->shape[i], &elements) ||
            elements > (uint64_t)INT64_MAX / 64)
            return status_fail(st, "%s: tensor %s: shape is too large", f->path, name);
    }
    t->elements = (int64_t)elements;
    const json_value *range = offsets && offsets->type == JSON_ARRAY ? offsets->as.items : NULL;
    if (!range || offsets->length != 2 || !non_negative_integer(&range[0]) ||
        !non_negative_integer(&range[1]) || range[0].as.integer > range[1].as.integer)
        return status_fail(st,
                           "%s: tensor %s: data_offsets must be [begin, end] with "
                           "0 <= begin <= end",
                           f->path, name);
    t->begin = (uint64_t)range[0].as.integer;
    t->end = (uint64_t)range[1].as.integer;
    uint64_t bits = elements * (uint64_t)dtypes[d].bits;
    if (bits % 8)
        return status_fail(st, "%s: tensor %s: %llu elements of %s do not fill whole bytes",
                           f->path, name, (unsigned long long)elements, dtypes[d].name);
    if (bits / 8 != t->end - t->begin)
        return status_fail(st,
                           "%s: tensor %s: %llu elements of %s take %llu bytes but "
                           "data_offsets [%llu, %llu] span %llu",
                           f->path, name, (unsigned long long)elements, dtypes[d].name,
                           (unsigned long long)(bits / 8), (unsigned long long)t->begin,
                           (unsigned long long)t->end, (unsigned long long)(t->end - t->begin));
    return 0;
}

/* The data buffer must be covered exactly: no hole, no overlap, nothing after the last tensor. */
static int check_coverage(safetensors_file *f, uint64_t buffer_bytes, status *st) {
    qsort(f->tensors, (size_t)f->count, sizeof *f->tensors, by_begin);
    uint64_t covered = 0;
    for (int i = 0; i < f->count; i++) {
        const safetensors_tensor *t = &f->tensors[i];
        if (t->begin < covered)
            return status_fail(st, "%s: tensor %s: data_offsets [%llu, %llu] overlap tensor %s",
                               f->path, t->name, (unsigned long long)t->begin,
                               (unsigned long long)t->end, f->tensors[i - 1].name);
        if (t->begin > covered)
            return status_fail(st,
                               "%s: tensor %s: data_offsets [%llu, %llu] leave a hole of "
                               "%llu bytes before it",
                               f->path, t->name, (unsigned long long)t->begin,
                               (unsigned long long)t->end,
                               (unsigned long long)(t->begin - covered));
        covered = t->end;
    }
    if (covered != buffer_bytes)
        return status_fail(st, "%s: tensors cover %llu bytes of a %llu-byte data buffer", f->path,
                           (unsigned long long)covered, (unsigned long long)buffer_bytes);
    return 0;
}

static int read_header(safetensors_file *f, uint64_t file_bytes, status *st) {
    unsigned char prefix[8];
    if (file_bytes < 8 || fread(prefix, 1, 8, f->stream) != 8)
        return status_fail(st, "%s: too short for a safetensors header (%llu bytes)", f->path,
                           (unsigned long long)file_bytes);
    uint64_t n = read_le(prefix, 8);
    if (n > SAFETENSORS_MAX_HEADER)
        return status_fail(st, "%s: header length %llu exceeds the limit of %d bytes", f->path,
                           (unsigned long long)n, SAFETENSORS_MAX_HEADER);
    if (n > file_bytes - 8)
        return status_fail(st, "%s: header length %llu exceeds the file size (%llu bytes)", f->path,
                           (unsigned long long)n, (unsigned long long)file_bytes);
    char *text = malloc(n ? n : 1);
    if (!text)
        return status_fail(st, "%s: out of memory for a %llu-byte header", f->path,
                           (unsigned long long)n);
    if (fread(text, 1, n, f->stream) != n) {
        free(text);
        return status_fail(st, "%s: read error in the header", f->path);
    }
    json_document *document = NULL;
    json_error error;
    int result = 0;
    if (n == 0 || text[0] != '{')
        result = status_fail(st, "%s: header does not start with '{'", f->path);
    else if (json_parse(text, n, JSON_UNIQUE_KEYS | JSON_NO_NUL, &document, &error) != 0)
        result = status_fail(st, "%s: header is not valid JSON: %s at byte %zu", f->path,
                             error.reason, error.offset);
    free(text);
    if (result != 0) return -1;
    const json_value *header = json_document_root(document);
    f->data_start = 8 + n;
    f->tensors = calloc(header->length + 1, sizeof *f->tensors);
    if (!f->tensors) result = status_fail(st, "out of memory");
    for (size_t i = 0; result == 0 && i < header->length; i++) {
        const json_member *entry = &header->as.members[i];
        if (strcmp(entry->key, "__metadata__") == 0) {
            result = read_metadata(f, &entry->value, st);
            continue;
        }
        safetensors_tensor *t = &f->tensors[f->count];
        t->name = strdup(entry->key);
        if (!t->name) {
            result = status_fail(st, "out of memory");
            break;
        }
        f->count++;
        result = read_entry(f, &entry->value, t, st);
    }
    json_document_free(document);
    if (result == 0) result = check_coverage(f, file_bytes - f->data_start, st);
    if (result == 0) qsort(f->tensors, (size_t)f->count, sizeof *f->tensors, by_name);
    return result;
}

int safetensors_open(const char *path, safetensors_file **out, status *st) {
    safetensors_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return status_fail(st, "%s: out of memory", path);
    }
    struct stat info;
    f->stream = fopen(path, "rb");
    if (!f->stream || fstat(fileno(f->stream), &info) != 0) {
        status_fail(st, "%s: cannot open: %s", path, strerror(errno));
        free_file(f);
        return -1;
    }
    if (read_header(f, (uint64_t)info.st_size, st) != 0) {
        free_file(f);
        return -1;
    }
    *out = f;
    return 0;
}

const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name) {
    safetensors_tensor key = {.name = (char *)name};
    return bsearch(&key, f->tensors, (size_t)f->count, sizeof key, by_name);
}

const char *safetensors_metadata(const safetensors_file *f, const char *key) {
    for (int i = 0; i < f->metadata_count; i++)
        if (strcmp(f->metadata_keys[i], key) == 0) return f->metadata_values[i];
    return NULL;
}

int safetensors_read_float(safetensors_file *f, const safetensors_tensor *t, float *out,
                           status *st) {
    if (t->dtype != SAFETENSORS_F32 && t->dtype != SAFETENSORS_BF16 && t->dtype != SAFETENSORS_F16)
        return status_fail(st, "%s: tensor %s: dtype %s is not a weight type (F32, BF16, F16)",
                           f->path, t->name, dtypes[t->dtype].name);
    int bytes = dtypes[t->dtype].bits / 8;
    unsigned char *chunk = malloc((size_t)CHUNK_ELEMENTS * bytes);
    if (!chunk) return status_fail(st, "out of memory");
    int result = 0;
    if (fseeko(f->stream, (off_t)(f->data_start + t->begin), SEEK_SET) != 0)
        result = status_fail(st, "%s: tensor %s: seek failed", f->path, t->name);
    for (int64_t done = 0; result == 0 && done < t->elements; done += CHUNK_ELEMENTS) {
        int64_t n = t->elements - done < CHUNK_ELEMENTS ? t->elements - done : CHUNK_ELEMENTS;
        if (fread(chunk, (size_t)bytes, (size_t)n, f->stream) != (size_t)n) {
            result = status_fail(st, "%s: tensor %s: read error", f->path, t->name);
            break;
        }
        for (int64_t i = 0; i < n; i++) {
            uint64_t v = read_le(chunk + i * bytes, bytes);
            float x = t->dtype == SAFETENSORS_F32    ? bits_float((uint32_t)v)
                      : t->dtype == SAFETENSORS_BF16 ? bf16_to_float((uint16_t)v)
                                                     : half_to_float((uint16_t)v);
            out[done + i] = x;
        }
    }
    free(chunk);
    return result;
}

/* ----------------------------------------------------------------- writer -- */

struct safetensors_writer {
    char *path;
    FILE *stream;
    const safetensors_spec *specs;
    int count;
    uint64_t *begin; /* per spec, into the data buffer */
    uint64_t data_start;
    char *written;
    unsigned char *chunk;
};

uint64_t safetensors_spec_bytes(const safetensors_spec *spec) {
    uint64_t elements = 1;
    for (int i = 0; i < spec->ndim; i++)
        elements *= (uint64_t)spec->shape[i];
    return elements * (uint64_t)dtypes[spec->dtype].bits / 8;
}

static int layout_order(const void *a, const void *b, void *specs_) {
    const safetensors_spec *specs = specs_;
    const safetensors_spec *x = &specs[*(const int *)a], *y = &specs[*(const int *)b];
    if (dtypes[x->dtype].bits != dtypes[y->dtype].bits)
        return dtypes[y->dtype].bits - dtypes[x->dtype].bits;
    return strcmp(x->name, y->name);
}

static void free_writer(safetensors_writer *w) {
    if (w->stream) fclose(w->stream);
    free(w->path);
    free(w->begin);
    free(w->written);
    free(w->chunk);
    free(w);
}

/* The JSON header, unpadded, in layout order. */
static char *header_text(const safetensors_spec *specs, const int *order, int count,
                         const uint64_t *begin, const char *const *metadata, size_t *length) {
    char *text = NULL;
    FILE *out = open_memstream(&text, length);
    if (!out) return NULL;
    fputc('{', out);
    if (metadata && metadata[0]) {
        fputs("\"__metadata__\":{", out);
        for (int i = 0; metadata[i]; i += 2) {
            if (i) fputc(',', out);
            json_write_string(out, metadata[i]);
            fputc(':', out);
            json_write_string(out, metadata[i + 1]);
        }
        fputc('}', out);
    }
    for (int j = 0; j < count; j++) {
        const safetensors_spec *s = &specs[order[j]];
        if (j || (metadata && metadata[0])) fputc(',', out);
        json_write_string(out, s->name);
        fprintf(out, ":{\"dtype\":\"%s\",\"shape\":[", dtypes[s->dtype].name);
        for (int d = 0; d < s->ndim; d++)
            fprintf(out, "%s%lld", d ? "," : "", (long long)s->shape[d]);
        fprintf(out, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)begin[order[j]],
                (unsigned long long)(begin[order[j]] + safetensors_spec_bytes(s)));
    }
    fputc('}', out);
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static int name_order(const void *a, const void *b, void *specs_) {
    const safetensors_spec *specs = specs_;
    return strcmp(specs[*(const int *)a].name, specs[*(const int *)b].name);
}

/* order: scratch of count ints */
static int check_specs(const char *path, const safetensors_spec *specs, int *order, int count,
                       status *st) {
    for (int i = 0; i < count; i++) {
        const safetensors_spec *s = &specs[i];
        order[i] = i;
        if (s->dtype != SAFETENSORS_F32 && s->dtype != SAFETENSORS_BF16)
            return status_fail(st, "%s: tensor %s: the writer converts to F32 or BF16 only", path,
                               s->name);
        if (s->ndim < 0 || s->ndim > SAFETENSORS_MAX_DIMS || strcmp(s->name, "__metadata__") == 0)
            return status_fail(st, "%s: tensor %s: invalid name or rank", path, s->name);
    }
    qsort_r(order, (size_t)count, sizeof *order, name_order, (void *)specs);
    for (int j = 1; j < count; j++)
        if (strcmp(specs[order[j]].name, specs[order[j - 1]].name) == 0)
            return status_fail(st, "%s: tensor %s: given twice", path, specs[order[j]].name);
    return 0;
}

int safetensors_writer_create(const char *path, const safetensors_spec *specs, int count,
                              const char *const *metadata, safetensors_writer **out, status *st) {
    safetensors_writer *w = calloc(1, sizeof *w);
    int *order = malloc(sizeof *order * (size_t)(count + 1));
    if (w) {
        w->path = strdup(path);
        w->begin = calloc((size_t)count + 1, sizeof *w->begin);
        w->written = calloc((size_t)count + 1, 1);
        w->chunk = malloc((size_t)CHUNK_ELEMENTS * sizeof(float));
    }
    if (!w || !order || !w->path || !w->begin || !w->written || !w->chunk) {
        if (w) free_writer(w);
        free(order);
        return status_fail(st, "%s: out of memory", path);
    }
    w->specs = specs;
    w->count = count;
    if (check_specs(path, specs, order, count, st) != 0) {
        free_writer(w);
        free(order);
        return -1;
    }
    qsort_r(order, (size_t)count, sizeof *order, layout_order, (void *)specs);
    uint64_t next = 0;
    for (int j = 0; j < count; j++) {
        w->begin[order[j]] = next;
        next += safetensors_spec_bytes(&specs[order[j]]);
    }
    size_t length = 0;
    char *text = header_text(specs, order, count, w->begin, metadata, &length);
    free(order);
    size_t padded = (length + 7) / 8 * 8;
    unsigned char prefix[8];
    write_le(prefix, padded, 8);
    w->data_start = 8 + padded;
    const char *why = text ? NULL : "out of memory";
    w->stream = text ? fopen(path, "wb") : NULL;
    int ok = w->stream && fwrite(prefix, 1, 8, w->stream) == 8 &&
             fwrite(text, 1, length, w->stream) == length &&
             fwrite("       ", 1, padded - length, w->stream) == padded - length;
    if (!ok && !why) why = strerror(errno);
    free(text);
    if (!ok) {
        status_fail(st, "%s: cannot write: %s", path, why);
        safetensors_writer_abort(w);
        return -1;
    }
    *out = w;
    return 0;
}

int safetensors_writer_put(safetensors_writer *w, int index, const float *data, status *st) {
    const safetensors_spec *s = &w->specs[index];
    if (w->written[index]) return status_fail(st, "%s: tensor %s: written twice", w->path, s->name);
    int bytes = dtypes[s->dtype].bits / 8;
    uint64_t elements = safetensors_spec_bytes(s) / (uint64_t)bytes;
    if (fseeko(w->stream, (off_t)(w->data_start + w->begin[index]), SEEK_SET) != 0)
        return status_fail(st, "%s: tensor %s: seek failed", w->path, s->name);
    for (uint64_t done = 0; done < elements; done += CHUNK_ELEMENTS) {
        uint64_t n = elements - done < CHUNK_ELEMENTS ? elements - done : CHUNK_ELEMENTS;
        for (uint64_t i = 0; i < n; i++) {
            float x = data[done + i];
            if (s->dtype == SAFETENSORS_F32)
                write_le(w->chunk + 4 * i, float_bits(x), 4);
            else
                write_le(w->chunk + 2 * i, float_to_bf16(x), 2);
        }
        if (fwrite(w->chunk, (size_t)bytes, (size_t)n, w->stream) != n)
            return status_fail(st, "%s: tensor %s: write failed: %s", w->path, s->name,
                               strerror(errno));
    }
    w->written[index] = 1;
    return 0;
}

int safetensors_writer_finish(safetensors_writer *w, status *st) {
    int result = 0;
    for (int i = 0; i < w->count && result == 0; i++)
        if (!w->written[i])
            result = status_fail(st, "%s: tensor %s was never written", w->path, w->specs[i].name);
    if (result == 0) {
        int failed = fflush(w->stream) != 0 || fsync(fileno(w->stream)) != 0;
        failed |= fclose(w->stream) != 0;
        w->stream = NULL;
        if (failed) result = status_fail(st, "%s: write failed: %s", w->path, strerror(errno));
    }
    if (result != 0) {
        safetensors_writer_abort(w);
        return -1;
    }
    free_writer(w);
    return 0;
}

void safetensors_writer_abort(safetensors_writer *w) {
    if (!w) return;
    if (w->stream) fclose(w->stream);
    w->stream = NULL;
    remove(w->path);
    free_writer(w);
}
