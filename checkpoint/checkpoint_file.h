/* One checkpoint file: HDF5 with the layout of docs/checkpoints.md.
 *
 * Contract: tensors are fp32 datasets under absolute names ("/model/layers.0.attn.wq",
 * "/optim/layers.0.attn.wq/m"); intermediate groups are created as needed. Datasets are
 * chunked with HDF5's Fletcher-32 checksum filter, so a flipped bit is a read error naming
 * the file and dataset. Root attributes (`format` = "cairn", `version`, `step`, `tokens`,
 * `config`) are strings or int64. `checkpoint_file_open` refuses a file that is not HDF5 or
 * whose `format` attribute is not "cairn". Reads check the stored shape against the expected
 * one. Errors are one line naming the file and the dataset or attribute. This module knows
 * nothing about models or training: see checkpoint.h for what a checkpoint contains. */
#ifndef CAIRN_CHECKPOINT_FILE_H
#define CAIRN_CHECKPOINT_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define CHECKPOINT_MAX_DIMS 8

typedef struct checkpoint_file checkpoint_file;

/* Creates (truncates) `path` for writing and sets format = "cairn" and version. */
int checkpoint_file_create(const char *path, checkpoint_file **out, status *st);
/* Opens a file made by checkpoint_file_create for writing more into it (one rank after another
 * when several write their slices of the same checkpoint). */
int checkpoint_file_open_write(const char *path, checkpoint_file **out, status *st);
/* Opens an existing checkpoint read-only. */
int checkpoint_file_open(const char *path, checkpoint_file **out, status *st);
/* 1 when `path` is an HDF5 file (of any kind), else 0. */
int checkpoint_file_is_hdf5(const char *path);
/* Flushes and closes; fails (naming the file) if anything could not be written. Frees f. */
int checkpoint_file_close(checkpoint_file *f, status *st);
const char *checkpoint_file_path(const checkpoint_file *f);

int checkpoint_file_write_tensor(checkpoint_file *f, const char *name, const float *data, int ndim,
                                 const int64_t *shape, status *st);
/* The dataset must exist with exactly this shape. */
int checkpoint_file_read_tensor(checkpoint_file *f, const char *name, float *data, int ndim,
                                const int64_t *shape, status *st);
int checkpoint_file_tensor_shape(checkpoint_file *f, const char *name, int *ndim,
                                 int64_t shape[CHECKPOINT_MAX_DIMS], status *st);
/* "6 x 5": a shape for messages and listings. */
void checkpoint_file_describe_shape(int ndim, const int64_t *shape, char *out, size_t size);
/* 1 if `name` (dataset or group) exists, else 0. */
int checkpoint_file_has(checkpoint_file *f, const char *name);
/* Tensors produced or consumed in pieces, so that no tensor-sized copy is needed (a device's
 * memory staged through a chunk-sized host buffer): fill() writes elements [first, first +
 * count) of the tensor (row-major) into `out`, take() receives them; pieces are in order and at
 * most a chunk (4 MiB), except for files of other writers, read in one piece. */
typedef void (*checkpoint_fill)(void *context, int64_t first, int64_t count, float *out);
typedef void (*checkpoint_take)(void *context, int64_t first, int64_t count, const float *values);
int checkpoint_file_write_tensor_from(checkpoint_file *f, const char *name, int ndim,
                                      const int64_t *shape, checkpoint_fill fill, void *context,
                                      status *st);
int checkpoint_file_read_tensor_into(checkpoint_file *f, const char *name, int ndim,
                                     const int64_t *shape, checkpoint_take take, void *context,
                                     status *st);
/* Row slices, for writers that hold a tensor in pieces (a rank's shard, a device staged through a
 * bounded host buffer): create the dataset with its global shape, then write rows
 * [first_row, first_row + rows) of dimension 0 (data holds rows x the other dimensions). */
int checkpoint_file_create_tensor(checkpoint_file *f, const char *name, int ndim,
                                  const int64_t *shape, status *st);
int checkpoint_file_write_rows(checkpoint_file *f, const char *name, int64_t first_row,
                               int64_t rows, const float *data, status *st);
int checkpoint_file_read_rows(checkpoint_file *f, const char *name, int64_t first_row, int64_t rows,
                              float *data, status *st);
/* The same along any dimension: indices [first, first + count) of dimension `dim` and all of
 * the others (data row-major, count in place of the dimension's extent). */
int checkpoint_file_write_slice(checkpoint_file *f, const char *name, int dim, int64_t first,
                                int64_t count, const float *data, status *st);
int checkpoint_file_read_slice(checkpoint_file *f, const char *name, int dim, int64_t first,
                               int64_t count, float *data, status *st);
/* Whole int64 / byte arrays (data cursor, RNG state). */
int checkpoint_file_write_int64s(checkpoint_file *f, const char *name, const int64_t *data,
                                 int64_t count, status *st);
int checkpoint_file_read_int64s(checkpoint_file *f, const char *name, int64_t *data, int64_t count,
                                status *st);

/* Attributes of the root group. get_string returns a malloc'd copy. */
int checkpoint_file_set_string(checkpoint_file *f, const char *attribute, const char *value,
                               status *st);
int checkpoint_file_set_int64(checkpoint_file *f, const char *attribute, int64_t value, status *st);
int checkpoint_file_get_string(checkpoint_file *f, const char *attribute, char **value, status *st);
int checkpoint_file_get_int64(checkpoint_file *f, const char *attribute, int64_t *value,
                              status *st);

/* Names (without the group prefix) of the datasets directly under `group` ("/model"), in
 * name order; *names is a malloc'd array of malloc'd strings (free with
 * checkpoint_file_free_names). */
int checkpoint_file_list(checkpoint_file *f, const char *group, char ***names, int *count,
                         status *st);
void checkpoint_file_free_names(char **names, int count);

#endif
