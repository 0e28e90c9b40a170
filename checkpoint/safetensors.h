/* The safetensors file format (huggingface/safetensors): reader and writer.
 *
 * Contract: a file is a u64 little-endian header length N, N bytes of JSON
 * ({"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}, padded
 * with spaces to a multiple of 8 so the data is 8-aligned), then the little-endian row-major
 * data. `safetensors_open` validates the whole header before anything is read: the size bounds,
 * every known dtype, element count × dtype size = byte length, and offsets that cover the data
 * buffer exactly with no hole and no overlap; errors are one line naming the file and the tensor.
 * Tensors are read into fp32 from F32, BF16 or F16 (other dtypes are an error naming the tensor).
 * The writer lays tensors out by descending dtype size, then by name, as the reference writer
 * does, converts from fp32 (BF16 rounds to nearest even, as PyTorch does), and may be fed the
 * tensors in any order; `safetensors_writer_finish` fails unless every tensor was written once. */
#ifndef CAIRN_SAFETENSORS_H
#define CAIRN_SAFETENSORS_H

#include <stdint.h>
#include <stdio.h>

#include "common/status.h"

#define SAFETENSORS_MAX_DIMS 8
#define SAFETENSORS_MAX_HEADER 100000000

typedef enum {
    SAFETENSORS_BOOL,
    SAFETENSORS_F4,
    SAFETENSORS_F6_E2M3,
    SAFETENSORS_F6_E3M2,
    SAFETENSORS_U8,
    SAFETENSORS_I8,
    SAFETENSORS_F8_E5M2,
    SAFETENSORS_F8_E4M3,
    SAFETENSORS_F8_E8M0,
    SAFETENSORS_F8_E4M3FNUZ,
    SAFETENSORS_F8_E5M2FNUZ,
    SAFETENSORS_I16,
    SAFETENSORS_U16,
    SAFETENSORS_F16,
    SAFETENSORS_BF16,
    SAFETENSORS_I32,
    SAFETENSORS_U32,
    SAFETENSORS_F32,
    SAFETENSORS_C64,
    SAFETENSORS_F64,
    SAFETENSORS_I64,
    SAFETENSORS_U64,
    SAFETENSORS_DTYPE_COUNT,
} safetensors_dtype;

const char *safetensors_dtype_name(safetensors_dtype dtype);
/* Size of one element in bits (4 and 6 for the sub-byte float formats). */
int safetensors_dtype_bits(safetensors_dtype dtype);
/* -1 when `name` is not a dtype of the format. */
int safetensors_dtype_from_name(const char *name);

typedef struct safetensors_tensor {
    char *name;
    safetensors_dtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    int64_t elements;
    uint64_t begin, end; /* into the data buffer, end exclusive */
} safetensors_tensor;

typedef struct safetensors_file {
    char *path;
    FILE *stream;
    uint64_t data_start; /* 8 + N */
    int count;
    safetensors_tensor *tensors; /* sorted by name */
    int metadata_count;
    char **metadata_keys, **metadata_values;
} safetensors_file;

int safetensors_open(const char *path, safetensors_file **out, status *st);
void safetensors_close(safetensors_file *f);
/* NULL when the file has no tensor of that name. */
const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name);
/* NULL when the metadata has no such key. */
const char *safetensors_metadata(const safetensors_file *f, const char *key);
/* out holds t->elements floats. */
int safetensors_read_float(safetensors_file *f, const safetensors_tensor *t, float *out,
                           status *st);

typedef struct safetensors_spec {
    const char *name;
    safetensors_dtype dtype; /* F32 or BF16: the writer converts from fp32 */
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
} safetensors_spec;

/* Bytes the data of a tensor takes. */
uint64_t safetensors_spec_bytes(const safetensors_spec *spec);

typedef struct safetensors_writer safetensors_writer;

/* Creates `path` and writes the header. metadata: key, value, key, value, ..., NULL. The specs
 * (and their names) must stay valid until finish or abort. */
int safetensors_writer_create(const char *path, const safetensors_spec *specs, int count,
                              const char *const *metadata, safetensors_writer **out, status *st);
/* data holds the elements of specs[index] in fp32. */
int safetensors_writer_put(safetensors_writer *w, int index, const float *data, status *st);
/* Checks that every tensor was written, flushes and closes. Frees w. */
int safetensors_writer_finish(safetensors_writer *w, status *st);
/* Closes and removes the file. Frees w. */
void safetensors_writer_abort(safetensors_writer *w);

#endif
