/* One checkpoint file on HDF5 (serial). See checkpoint_file.h for the contract.
 *
 * Why these HDF5 settings:
 * - file format 1.8 to 1.10 (superblock v2+, object header v2): metadata carries checksums too,
 *   so a flipped bit outside the tensor data is also an error rather than garbage;
 * - chunked datasets with the Fletcher-32 filter: raw data is checksummed per chunk; chunks are
 *   whole rows of at most CHUNK_BYTES, so a row-slice write touches whole chunks where possible,
 *   and every chunk is a contiguous block of the tensor (see "direct chunk I/O" below);
 * - the chunk cache is off: every chunk is written or read once, and a cache would only add a copy;
 * - HDF5's file locking is off: a checkpoint is written under a temporary name and renamed when
 *   complete (checkpoint.c), which is the only concurrency protocol, and locks fail on some
 *   parallel file systems;
 * - HDF5's automatic error printing is off; errors become one line from the innermost entry of
 *   HDF5's error stack. */
#include "checkpoint/checkpoint_file.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint/fletcher32.h"

#define CHECKPOINT_FORMAT "cairn"
#define CHECKPOINT_FORMAT_VERSION 1
#define CHUNK_BYTES ((int64_t)4 << 20)
#define WRITEBACK_BYTES ((size_t)32 << 20)
#define READAHEAD_BYTES ((hsize_t)64 << 20)

struct checkpoint_file {
    hid_t file;
    char path[4096];
    char reason[256]; /* HDF5's reason for the last failure, kept before cleanup calls reset it */
    unsigned char *scratch; /* framed chunks (data + checksum) of the direct chunk I/O */
    size_t scratch_size;
    size_t unflushed;                     /* bytes written since writeback was last started */
    hsize_t readahead_from, readahead_to; /* the window last asked to be read ahead */
};

const char *checkpoint_file_path(const checkpoint_file *f) { return f->path; }

/* ---- errors ---- */

typedef struct error_walk {
    char text[256];
} error_walk;

/* The file drivers' descriptions span lines and list buffers and offsets: keep "what failed:
 * the system's message"; elsewhere, one line. */
static void one_line_reason(const char *desc, char *out, size_t size) {
    const char *message = strstr(desc, "error message = '");
    if (message) {
        message += strlen("error message = '");
        size_t what = strcspn(desc, ":"), length = strcspn(message, "'");
        snprintf(out, size, "%.*s: %.*s", (int)what, desc, (int)length, message);
    } else {
        snprintf(out, size, "%s", desc);
    }
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

static herr_t remember_innermost(unsigned n, const H5E_error2_t *error, void *data) {
    (void)n;
    error_walk *walk = data;
    if (error->desc && error->desc[0]) one_line_reason(error->desc, walk->text, sizeof walk->text);
    return 0;
}

/* Every HDF5 call clears the error stack, so the reason is kept right after the failing call. */
static void keep_reason(checkpoint_file *f) {
    error_walk walk = {"HDF5 error"};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, remember_innermost, &walk);
    H5Eclear2(H5E_DEFAULT);
    snprintf(f->reason, sizeof f->reason, "%s", walk.text);
}

/* "<file>: <object>: <what>: <HDF5's innermost reason>". */
static int hdf5_fail(status *st, checkpoint_file *f, const char *object, const char *what) {
    if (!f->reason[0]) keep_reason(f);
    if (object)
        status_fail(st, "%s: %s: %s: %s", f->path, object, what, f->reason);
    else
        status_fail(st, "%s: %s: %s", f->path, what, f->reason);
    f->reason[0] = '\0';
    return -1;
}

/* Also keeps HDF5 from closing files at process exit: a file whose close failed (a full disk)
 * stays open in HDF5, and closing it again at exit crashes HDF5 1.10. This must come before
 * any other HDF5 call to take effect, hence in every entry point. */
static void silence_hdf5(void) {
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

int checkpoint_file_is_hdf5(const char *path) {
    silence_hdf5();
    htri_t is_hdf5 = H5Fis_hdf5(path);
    H5Eclear2(H5E_DEFAULT);
    return is_hdf5 > 0;
}

/* ---- files ---- */

static hid_t file_access_list(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    /* at most the 1.10 format: HDF5 1.10 (Ubuntu 24.04's, our GPU hosts') reads every file */
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V110);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 0, 1);
#endif
    return fapl;
}

/* Creates or opens the HDF5 file behind a new checkpoint_file. */
/* create: 1 a new file, 0 read-only, 2 an existing file for writing */
static int file_start(const char *path, int create, checkpoint_file **out, status *st) {
    *out = NULL;
    silence_hdf5();
    if (strlen(path) >= sizeof((checkpoint_file *)0)->path)
        return status_fail(st, "%s: path too long", path);
    checkpoint_file *f = calloc(1, sizeof *f);
    if (!f) return status_fail(st, "%s: out of memory", path);
    snprintf(f->path, sizeof f->path, "%s", path);
    hid_t fapl = file_access_list();
    f->file = create == 1 ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)
                          : H5Fopen(path, create == 2 ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl);
    if (f->file < 0) keep_reason(f);
    H5Pclose(fapl);
    if (f->file < 0) {
        hdf5_fail(st, f, NULL,
                  create ? "cannot create" : "cannot open (damaged or truncated HDF5 file)");
        free(f);
        return -1;
    }
    *out = f;
    return 0;
}

/* Closes and frees a file that failed a check after it was opened; returns -1. */
static int file_abandon(checkpoint_file *f, checkpoint_file **out) {
    H5Fclose(f->file);
    H5Eclear2(H5E_DEFAULT);
    free(f);
    *out = NULL;
    return -1;
}

int checkpoint_file_create(const char *path, checkpoint_file **out, status *st) {
    if (file_start(path, 1, out, st) != 0) return -1;
    if (checkpoint_file_set_string(*out, "format", CHECKPOINT_FORMAT, st) != 0 ||
        checkpoint_file_set_int64(*out, "version", CHECKPOINT_FORMAT_VERSION, st) != 0)
        return file_abandon(*out, out);
    return 0;
}

int checkpoint_file_open_write(const char *path, checkpoint_file **out, status *st) {
    return file_start(path, 2, out, st);
}

int checkpoint_file_open(const char *path, checkpoint_file **out, status *st) {
    *out = NULL;
    silence_hdf5();
    struct stat info;
    if (stat(path, &info) != 0)
        return status_fail(st, "%s: cannot open: %s", path, strerror(errno));
    if (H5Fis_hdf5(path) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return status_fail(st, "%s: not an HDF5 file", path);
    }
    if (file_start(path, 0, out, st) != 0) return -1;
    char *format = NULL;
    status ignored;
    if (checkpoint_file_get_string(*out, "format", &format, &ignored) != 0 ||
        strcmp(format, CHECKPOINT_FORMAT) != 0) {
        if (format)
            status_fail(st, "%s: format attribute is '%s', not '%s'", path, format,
                        CHECKPOINT_FORMAT);
        else
            status_fail(st, "%s: not a cairn checkpoint (no format attribute)", path);
        free(format);
        return file_abandon(*out, out);
    }
    free(format);
    return 0;
}

int checkpoint_file_close(checkpoint_file *f, status *st) {
    if (!f) return 0;
    int rc = 0;
    if (f->file >= 0) {
        if (H5Fflush(f->file, H5F_SCOPE_LOCAL) < 0) rc = hdf5_fail(st, f, NULL, "cannot flush");
        if (H5Fclose(f->file) < 0 && rc == 0) rc = hdf5_fail(st, f, NULL, "cannot close");
    }
    free(f->scratch);
    free(f);
    return rc;
}

/* ---- datasets ---- */

void checkpoint_file_describe_shape(int ndim, const int64_t *shape, char *out, size_t size) {
    out[0] = '\0';
    for (int d = 0; d < ndim; d++) {
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%lld", d ? " x " : "", (long long)shape[d]);
    }
}

int checkpoint_file_has(checkpoint_file *f, const char *name) {
    if (strcmp(name, "/") == 0) return 1;
    char prefix[1024];
    if (strlen(name) >= sizeof prefix) return 0;
    /* H5Lexists needs every intermediate link to exist, so test each prefix in turn */
    for (size_t i = 1;; i++) {
        if (name[i] != '/' && name[i] != '\0') continue;
        memcpy(prefix, name, i);
        prefix[i] = '\0';
        htri_t exists = H5Lexists(f->file, prefix, H5P_DEFAULT);
        if (exists <= 0) {
            H5Eclear2(H5E_DEFAULT);
            return 0;
        }
        if (name[i] == '\0') return 1;
    }
}

/* Whole rows of the tensor, at most CHUNK_BYTES per chunk (a single row larger than that is cut
 * along the next dimensions the same way). */
static void chunk_shape(int ndim, const int64_t *shape, size_t element_bytes, hsize_t *chunk) {
    int64_t budget = CHUNK_BYTES / (int64_t)element_bytes;
    for (int d = ndim - 1; d >= 0; d--)
        chunk[d] = shape[d] > 0 ? (hsize_t)shape[d] : 1;
    for (int d = 0; d < ndim; d++) {
        int64_t inner = 1;
        for (int e = d + 1; e < ndim; e++)
            inner *= (int64_t)chunk[e];
        if ((int64_t)chunk[d] * inner <= budget) break;
        int64_t fit = budget / inner;
        chunk[d] = fit >= 1 ? (hsize_t)fit : 1;
        if (fit >= 1) break;
    }
}

static int create_dataset(checkpoint_file *f, const char *name, hid_t type, size_t element_bytes,
                          int ndim, const int64_t *shape, hid_t *out, status *st) {
    *out = H5I_INVALID_HID;
    if (ndim < 1 || ndim > CHECKPOINT_MAX_DIMS)
        return status_fail(st, "%s: %s: %d dimensions (1 to %d supported)", f->path, name, ndim,
                           CHECKPOINT_MAX_DIMS);
    hsize_t dims[CHECKPOINT_MAX_DIMS] = {0}, chunk[CHECKPOINT_MAX_DIMS] = {0};
    int empty = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return status_fail(st, "%s: %s: negative dimension %lld", f->path, name,
                               (long long)shape[d]);
        dims[d] = (hsize_t)shape[d];
        empty |= shape[d] == 0;
    }
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    H5Pset_create_intermediate_group(lcpl, 1);
    /* an empty tensor has no data to checksum (and HDF5 cannot chunk a zero extent) */
    if (!empty) {
        chunk_shape(ndim, shape, element_bytes, chunk);
        H5Pset_chunk(dcpl, ndim, chunk);
        H5Pset_fletcher32(dcpl);
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_INCR);
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
        H5Pset_chunk_cache(dapl, 0, 0, 1.0);
    }
    hid_t dataset = H5Dcreate2(f->file, name, type, space, lcpl, dcpl, dapl);
    if (dataset < 0) keep_reason(f);
    H5Pclose(dapl);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(space);
    if (dataset < 0) return hdf5_fail(st, f, name, "cannot create dataset");
    *out = dataset;
    return 0;
}

/* Opens `name` and checks that it holds `type_class` data of exactly `shape`. */
static int open_dataset(checkpoint_file *f, const char *name, H5T_class_t type_class, int ndim,
                        const int64_t *shape, hid_t *out, status *st) {
    *out = H5I_INVALID_HID;
    if (!checkpoint_file_has(f, name)) return status_fail(st, "%s: %s: missing", f->path, name);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    H5Pset_chunk_cache(dapl, 0, 0, 1.0);
    hid_t dataset = H5Dopen2(f->file, name, dapl);
    if (dataset < 0) keep_reason(f);
    H5Pclose(dapl);
    if (dataset < 0) return hdf5_fail(st, f, name, "cannot open dataset");
    hid_t type = H5Dget_type(dataset);
    H5T_class_t stored_class = H5Tget_class(type);
    H5Tclose(type);
    if (stored_class != type_class) {
        H5Dclose(dataset);
        return status_fail(st, "%s: %s: stored as %s, expected %s", f->path, name,
                           stored_class == H5T_FLOAT ? "floating point" : "another type",
                           type_class == H5T_FLOAT ? "floating point" : "integers");
    }
    int stored_ndim;
    int64_t stored[CHECKPOINT_MAX_DIMS];
    if (checkpoint_file_tensor_shape(f, name, &stored_ndim, stored, st) != 0) {
        H5Dclose(dataset);
        return -1;
    }
    int same = stored_ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = stored[d] == shape[d];
    if (!same) {
        char have[160], want[160];
        checkpoint_file_describe_shape(stored_ndim, stored, have, sizeof have);
        checkpoint_file_describe_shape(ndim, shape, want, sizeof want);
        H5Dclose(dataset);
        return status_fail(st, "%s: %s: shape [%s], expected [%s]", f->path, name, have, want);
    }
    *out = dataset;
    return 0;
}

/* Reads or writes indices [first, first + count) along dimension `dim` of an open dataset, all
 * of the other dimensions (the caller checked the range). */
static int transfer_slice(checkpoint_file *f, hid_t dataset, hid_t memory_type, int dim,
                          int64_t first, int64_t count, void *data, int write) {
    hid_t space = H5Dget_space(dataset);
    int ndim = H5Sget_simple_extent_ndims(space);
    hsize_t dims[CHECKPOINT_MAX_DIMS], start[CHECKPOINT_MAX_DIMS] = {0}, extent[CHECKPOINT_MAX_DIMS];
    H5Sget_simple_extent_dims(space, dims, NULL);
    int empty = count == 0;
    for (int d = 0; d < ndim; d++) {
        extent[d] = d == dim ? (hsize_t)count : dims[d];
        empty |= extent[d] == 0;
    }
    start[dim] = (hsize_t)first;
    herr_t rc = 0;
    if (!empty) {
        hid_t memory = H5Screate_simple(ndim, extent, NULL);
        H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, extent, NULL);
        rc = write ? H5Dwrite(dataset, memory_type, memory, space, H5P_DEFAULT, data)
                   : H5Dread(dataset, memory_type, memory, space, H5P_DEFAULT, data);
        if (rc < 0) keep_reason(f);
        H5Sclose(memory);
    }
    H5Sclose(space);
    return rc < 0 ? -1 : 0;
}

static int slice_in_range(checkpoint_file *f, const char *name, hid_t dataset, int dim,
                          int64_t first, int64_t count, status *st) {
    hid_t space = H5Dget_space(dataset);
    hsize_t dims[CHECKPOINT_MAX_DIMS];
    int ndim = H5Sget_simple_extent_ndims(space);
    H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    if (dim < 0 || dim >= ndim)
        return status_fail(st, "%s: %s: no dimension %d in a %d-dimensional tensor", f->path, name,
                           dim, ndim);
    int outside = first < 0 || count < 0 || first + count > (int64_t)dims[dim];
    if (outside && dim == 0)
        return status_fail(st, "%s: %s: rows [%lld, %lld) outside the %llu rows", f->path, name,
                           (long long)first, (long long)(first + count),
                           (unsigned long long)dims[0]);
    if (outside)
        return status_fail(st, "%s: %s: indices [%lld, %lld) of dimension %d outside its %llu",
                           f->path, name, (long long)first, (long long)(first + count), dim,
                           (unsigned long long)dims[dim]);
    return 0;
}

int checkpoint_file_create_tensor(checkpoint_file *f, const char *name, int ndim,
                                  const int64_t *shape, status *st) {
    hid_t dataset;
    if (create_dataset(f, name, H5T_IEEE_F32LE, sizeof(float), ndim, shape, &dataset, st) != 0)
        return -1;
    H5Dclose(dataset);
    return 0;
}

static int slice_io(checkpoint_file *f, const char *name, int dim, int64_t first, int64_t count,
                    void *data, int write, status *st) {
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    H5Pset_chunk_cache(dapl, 0, 0, 1.0);
    hid_t dataset = checkpoint_file_has(f, name) ? H5Dopen2(f->file, name, dapl) : -1;
    H5Pclose(dapl);
    if (dataset < 0) {
        H5Eclear2(H5E_DEFAULT);
        return status_fail(st, "%s: %s: missing", f->path, name);
    }
    int rc = slice_in_range(f, name, dataset, dim, first, count, st);
    if (rc == 0 &&
        transfer_slice(f, dataset, H5T_NATIVE_FLOAT, dim, first, count, data, write) != 0)
        rc = hdf5_fail(st, f, name, write ? "cannot write" : "cannot read");
    H5Dclose(dataset);
    return rc;
}

int checkpoint_file_write_rows(checkpoint_file *f, const char *name, int64_t first_row,
                               int64_t rows, const float *data, status *st) {
    return slice_io(f, name, 0, first_row, rows, (void *)data, 1, st);
}

int checkpoint_file_read_rows(checkpoint_file *f, const char *name, int64_t first_row, int64_t rows,
                              float *data, status *st) {
    return slice_io(f, name, 0, first_row, rows, data, 0, st);
}

int checkpoint_file_write_slice(checkpoint_file *f, const char *name, int dim, int64_t first,
                                int64_t count, const float *data, status *st) {
    return slice_io(f, name, dim, first, count, (void *)data, 1, st);
}

int checkpoint_file_read_slice(checkpoint_file *f, const char *name, int dim, int64_t first,
                               int64_t count, float *data, status *st) {
    return slice_io(f, name, dim, first, count, data, 0, st);
}

/* ---- direct chunk I/O ----
 * HDF5's Fletcher-32 filter is a slow scalar loop plus a copy in and out of a filter buffer.
 * Instead, fp32 tensors whose chunks are contiguous blocks of the tensor (chunk shape
 * [1, ..., 1, k, full, ...], which chunk_shape makes) are written and read as raw filtered
 * chunks, data followed by its checksum, through one chunk-sized frame: filled by the caller's
 * fill(), checksummed here (vectorized) while in the cache, written; or read, verified, handed to
 * take(). The bytes on disk are exactly what the filter writes, so every HDF5 reader checks them
 * the same way; other layouts go through HDF5's own path. */

typedef struct chunk_grid {
    int ndim, split; /* chunk extent is 1 before dimension `split`, full after it */
    hsize_t dims[CHECKPOINT_MAX_DIMS];
    int64_t block;  /* chunk extent along `split` */
    int64_t inner;  /* elements per index of `split` */
    int64_t blocks; /* chunks along `split` */
    int64_t count;  /* chunks */
    size_t bytes;   /* data bytes of one chunk (edge chunks are padded to it) */
} chunk_grid;

/* 1 when the dataset qualifies: fp32 little endian (as the host), chunked as above, Fletcher-32
 * its only filter. */
static int chunk_grid_of(hid_t dataset, chunk_grid *g) {
#if H5_VERSION_GE(1, 10, 5)
    int ok = H5Tequal(H5T_NATIVE_FLOAT, H5T_IEEE_F32LE) > 0;
    hid_t type = H5Dget_type(dataset), space = H5Dget_space(dataset);
    hid_t dcpl = H5Dget_create_plist(dataset);
    hsize_t chunk[CHECKPOINT_MAX_DIMS];
    ok = ok && H5Tequal(type, H5T_IEEE_F32LE) > 0 && H5Pget_layout(dcpl) == H5D_CHUNKED;
    g->ndim = H5Sget_simple_extent_ndims(space);
    ok = ok && g->ndim >= 1 && g->ndim <= CHECKPOINT_MAX_DIMS &&
         H5Pget_chunk(dcpl, CHECKPOINT_MAX_DIMS, chunk) == g->ndim;
    if (ok) {
        unsigned flags, filter_config;
        size_t values = 0;
        ok = H5Pget_nfilters(dcpl) == 1 && H5Pget_filter2(dcpl, 0, &flags, &values, NULL, 0, NULL,
                                                          &filter_config) == H5Z_FILTER_FLETCHER32;
        H5Sget_simple_extent_dims(space, g->dims, NULL);
    }
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Tclose(type);
    H5Eclear2(H5E_DEFAULT);
    if (!ok) return 0;
    int split = g->ndim - 1;
    while (split > 0 && chunk[split] == g->dims[split])
        split--;
    for (int d = 0; d < split; d++)
        if (chunk[d] != 1) return 0;
    if (chunk[split] > g->dims[split]) return 0;
    g->split = split;
    g->block = (int64_t)chunk[split];
    g->inner = 1;
    for (int d = split + 1; d < g->ndim; d++)
        g->inner *= (int64_t)g->dims[d];
    int64_t outer = 1;
    for (int d = 0; d < split; d++)
        outer *= (int64_t)g->dims[d];
    g->blocks = ((int64_t)g->dims[split] + g->block - 1) / g->block;
    g->count = outer * g->blocks;
    g->bytes = (size_t)(g->block * g->inner) * sizeof(float);
    return g->count > 0;
#else
    (void)dataset;
    (void)g;
    return 0;
#endif
}

/* Chunk i: its offset in the dataset, and its elements [*first, *first + *count) of the tensor. */
static void chunk_locate(const chunk_grid *g, int64_t i, hsize_t *offset, int64_t *first,
                         int64_t *count) {
    int64_t outer = i / g->blocks, start = i % g->blocks * g->block;
    int64_t extent = (int64_t)g->dims[g->split];
    for (int d = g->ndim - 1; d >= 0; d--)
        offset[d] = 0;
    for (int d = g->split - 1; d >= 0; d--) {
        offset[d] = (hsize_t)(outer % (int64_t)g->dims[d]);
        outer /= (int64_t)g->dims[d];
    }
    offset[g->split] = (hsize_t)start;
    *first = (i / g->blocks * extent + start) * g->inner;
    *count = (extent - start < g->block ? extent - start : g->block) * g->inner;
}

static void put_le32(unsigned char *out, uint32_t value) {
    for (int b = 0; b < 4; b++)
        out[b] = (unsigned char)(value >> (8 * b));
}

static uint32_t get_le32(const unsigned char *in) {
    return (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
}

/* Asks the kernel to start writing dirty pages of the file every WRITEBACK_BYTES, so that the
 * disk works while the next chunks are checksummed and the final fsync has little left to wait
 * for. Only a hint: errors show up at that fsync. */
static void start_writeback(checkpoint_file *f, size_t bytes) {
    f->unflushed += bytes;
    if (f->unflushed < WRITEBACK_BYTES) return;
    f->unflushed = 0;
    int *fd = NULL;
    if (H5Fget_vfd_handle(f->file, H5P_DEFAULT, (void **)&fd) >= 0 && fd)
        sync_file_range(*fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    H5Eclear2(H5E_DEFAULT);
}

/* Before reading the chunk at [address, address + size): asks the kernel to read ahead the
 * next READAHEAD_BYTES of the file when the current window is half consumed, so that the disk
 * works while chunks are verified and converted. Only a hint. */
static void start_readahead(checkpoint_file *f, haddr_t address, hsize_t size) {
    if (address == HADDR_UNDEF ||
        (address >= f->readahead_from && address + size + READAHEAD_BYTES / 2 <= f->readahead_to))
        return;
    int *fd = NULL;
    if (H5Fget_vfd_handle(f->file, H5P_DEFAULT, (void **)&fd) >= 0 && fd)
        posix_fadvise(*fd, (off_t)address, READAHEAD_BYTES, POSIX_FADV_WILLNEED);
    H5Eclear2(H5E_DEFAULT);
    f->readahead_from = address;
    f->readahead_to = address + READAHEAD_BYTES;
}

/* Room for one framed chunk (data + checksum); NULL when out of memory. */
static unsigned char *chunk_scratch(checkpoint_file *f, const chunk_grid *g) {
    if (g->bytes + 4 > f->scratch_size) {
        unsigned char *grown = realloc(f->scratch, g->bytes + 4);
        if (!grown) return NULL;
        f->scratch = grown;
        f->scratch_size = g->bytes + 4;
    }
    return f->scratch;
}

/* 1: written; 0: the dataset does not qualify (nothing written); -1: failed (st filled).
 * fill() puts each chunk's elements straight into the frame, which stays in the cache for the
 * checksum and the write. */
static int write_chunks(checkpoint_file *f, const char *name, hid_t dataset, checkpoint_fill fill,
                        void *context, status *st) {
    chunk_grid g;
    if (!chunk_grid_of(dataset, &g)) return 0;
    unsigned char *frame = chunk_scratch(f, &g);
    if (!frame) return status_fail(st, "%s: %s: out of memory", f->path, name);
    for (int64_t i = 0; i < g.count; i++) {
        hsize_t offset[CHECKPOINT_MAX_DIMS];
        int64_t start, count;
        chunk_locate(&g, i, offset, &start, &count);
        size_t bytes = (size_t)count * sizeof(float);
        fill(context, start, count, (float *)frame);
        memset(frame + bytes, 0, g.bytes - bytes);
        put_le32(frame + g.bytes, fletcher32(frame, g.bytes));
        if (H5Dwrite_chunk(dataset, H5P_DEFAULT, 0, offset, g.bytes + 4, frame) < 0)
            return hdf5_fail(st, f, name, "cannot write");
        start_writeback(f, g.bytes + 4);
    }
    return 1;
}

static int checksum_matches(uint32_t sum, const unsigned char *stored_bytes) {
    uint32_t stored = get_le32(stored_bytes);
    /* HDF5 before 1.6.3 stored it byte-swapped; HDF5 accepts both, so do we */
    uint32_t swapped = (sum >> 24) | (sum >> 8 & 0xff00) | (sum << 8 & 0xff0000) | sum << 24;
    return stored == sum || stored == swapped;
}

/* 1: read and verified; 0: the dataset does not qualify or a chunk is not stored as write_chunks
 * stores it (nothing reported; the caller reads through HDF5); -1: failed (st filled).
 * Each chunk is read into the frame, checksummed there while it is in the cache, and handed to
 * take(). */
static int read_chunks(checkpoint_file *f, const char *name, hid_t dataset, checkpoint_take take,
                       void *context, status *st) {
    chunk_grid g;
    if (!chunk_grid_of(dataset, &g)) return 0;
    unsigned char *frame = chunk_scratch(f, &g);
    if (!frame) return status_fail(st, "%s: %s: out of memory", f->path, name);
    for (int64_t i = 0; i < g.count; i++) {
        hsize_t offset[CHECKPOINT_MAX_DIMS], stored = 0;
        int64_t start, count;
        uint32_t filter_mask = 1;
        unsigned stored_mask = 1;
        haddr_t address = HADDR_UNDEF;
        chunk_locate(&g, i, offset, &start, &count);
        if (H5Dget_chunk_info_by_coord(dataset, offset, &stored_mask, &address, &stored) < 0 ||
            stored != g.bytes + 4 || stored_mask != 0) {
            H5Eclear2(H5E_DEFAULT);
            return 0;
        }
        start_readahead(f, address, stored);
        if (H5Dread_chunk(dataset, H5P_DEFAULT, offset, &filter_mask, frame) < 0)
            return hdf5_fail(st, f, name, "cannot read");
        if (filter_mask != 0) return 0;
        if (!checksum_matches(fletcher32(frame, g.bytes), frame + g.bytes))
            return status_fail(st,
                               "%s: %s: cannot read: data error detected by Fletcher32 checksum "
                               "(chunk at element %lld)",
                               f->path, name, (long long)start);
        take(context, start, count, (const float *)frame);
    }
    return 1;
}

/* Creates `name` and writes all of it. */
static int write_whole(checkpoint_file *f, const char *name, hid_t file_type, hid_t memory_type,
                       size_t element_bytes, int ndim, const int64_t *shape, const void *data,
                       status *st) {
    hid_t dataset;
    if (create_dataset(f, name, file_type, element_bytes, ndim, shape, &dataset, st) != 0)
        return -1;
    int rc = 0;
    if (transfer_slice(f, dataset, memory_type, 0, 0, shape[0], (void *)data, 1) != 0)
        rc = hdf5_fail(st, f, name, "cannot write");
    H5Dclose(dataset);
    return rc;
}

static int read_whole(checkpoint_file *f, const char *name, H5T_class_t type_class,
                      hid_t memory_type, int ndim, const int64_t *shape, void *data, status *st) {
    hid_t dataset;
    if (open_dataset(f, name, type_class, ndim, shape, &dataset, st) != 0) return -1;
    int rc = 0;
    if (transfer_slice(f, dataset, memory_type, 0, 0, shape[0], data, 0) != 0)
        rc = hdf5_fail(st, f, name, "cannot read");
    H5Dclose(dataset);
    return rc;
}

static int64_t element_count(int ndim, const int64_t *shape) {
    int64_t count = 1;
    for (int d = 0; d < ndim; d++)
        count *= shape[d];
    return count;
}

/* The direct path's fallback: the whole tensor through HDF5 and one host buffer, written from
 * fill() or read into take() (the other one NULL). */
static int transfer_whole(checkpoint_file *f, const char *name, hid_t dataset, int ndim,
                          const int64_t *shape, checkpoint_fill fill, checkpoint_take take,
                          void *context, status *st) {
    int64_t count = element_count(ndim, shape);
    float *all = malloc((size_t)(count ? count : 1) * sizeof *all);
    if (!all) return status_fail(st, "%s: %s: out of memory", f->path, name);
    int rc = 0;
    if (fill && count) fill(context, 0, count, all);
    if (transfer_slice(f, dataset, H5T_NATIVE_FLOAT, 0, 0, shape[0], all, fill != NULL) != 0)
        rc = hdf5_fail(st, f, name, fill ? "cannot write" : "cannot read");
    else if (take && count)
        take(context, 0, count, all);
    free(all);
    return rc;
}

int checkpoint_file_write_tensor_from(checkpoint_file *f, const char *name, int ndim,
                                      const int64_t *shape, checkpoint_fill fill, void *context,
                                      status *st) {
    hid_t dataset;
    if (create_dataset(f, name, H5T_IEEE_F32LE, sizeof(float), ndim, shape, &dataset, st) != 0)
        return -1;
    int rc = write_chunks(f, name, dataset, fill, context, st);
    /* a layout the direct path does not take: an empty tensor */
    if (rc == 0) rc = transfer_whole(f, name, dataset, ndim, shape, fill, NULL, context, st);
    H5Dclose(dataset);
    return rc < 0 ? -1 : 0;
}

int checkpoint_file_read_tensor_into(checkpoint_file *f, const char *name, int ndim,
                                     const int64_t *shape, checkpoint_take take, void *context,
                                     status *st) {
    hid_t dataset;
    if (open_dataset(f, name, H5T_FLOAT, ndim, shape, &dataset, st) != 0) return -1;
    int rc = read_chunks(f, name, dataset, take, context, st);
    /* a layout of another writer (h5py, an older HDF5) */
    if (rc == 0) rc = transfer_whole(f, name, dataset, ndim, shape, NULL, take, context, st);
    H5Dclose(dataset);
    return rc < 0 ? -1 : 0;
}

static void fill_from_array(void *context, int64_t first, int64_t count, float *out) {
    memcpy(out, (const float *)context + first, (size_t)count * sizeof *out);
}

static void take_into_array(void *context, int64_t first, int64_t count, const float *values) {
    memcpy((float *)context + first, values, (size_t)count * sizeof *values);
}

int checkpoint_file_write_tensor(checkpoint_file *f, const char *name, const float *data, int ndim,
                                 const int64_t *shape, status *st) {
    return checkpoint_file_write_tensor_from(f, name, ndim, shape, fill_from_array, (void *)data,
                                             st);
}

int checkpoint_file_read_tensor(checkpoint_file *f, const char *name, float *data, int ndim,
                                const int64_t *shape, status *st) {
    return checkpoint_file_read_tensor_into(f, name, ndim, shape, take_into_array, data, st);
}

int checkpoint_file_write_int64s(checkpoint_file *f, const char *name, const int64_t *data,
                                 int64_t count, status *st) {
    return write_whole(f, name, H5T_STD_I64LE, H5T_NATIVE_INT64, sizeof(int64_t), 1, &count, data,
                       st);
}

int checkpoint_file_read_int64s(checkpoint_file *f, const char *name, int64_t *data, int64_t count,
                                status *st) {
    return read_whole(f, name, H5T_INTEGER, H5T_NATIVE_INT64, 1, &count, data, st);
}

int checkpoint_file_tensor_shape(checkpoint_file *f, const char *name, int *ndim,
                                 int64_t shape[CHECKPOINT_MAX_DIMS], status *st) {
    if (!checkpoint_file_has(f, name)) return status_fail(st, "%s: %s: missing", f->path, name);
    hid_t dataset = H5Dopen2(f->file, name, H5P_DEFAULT);
    if (dataset < 0) return hdf5_fail(st, f, name, "cannot open dataset");
    hid_t space = H5Dget_space(dataset);
    int n = H5Sget_simple_extent_ndims(space);
    int rc = 0;
    if (n < 0 || n > CHECKPOINT_MAX_DIMS) {
        rc = status_fail(st, "%s: %s: %d dimensions (at most %d supported)", f->path, name, n,
                         CHECKPOINT_MAX_DIMS);
    } else {
        hsize_t dims[CHECKPOINT_MAX_DIMS];
        H5Sget_simple_extent_dims(space, dims, NULL);
        *ndim = n;
        for (int d = 0; d < n; d++)
            shape[d] = (int64_t)dims[d];
    }
    H5Sclose(space);
    H5Dclose(dataset);
    return rc;
}

/* ---- listing ---- */

typedef struct name_list {
    hid_t group;
    char **names;
    int count, capacity;
    int failed;
} name_list;

static herr_t collect_dataset(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)group;
    name_list *list = data;
    if (info->type != H5L_TYPE_HARD) return 0;
    hid_t object = H5Oopen(list->group, name, H5P_DEFAULT);
    if (object < 0) return -1;
    H5I_type_t type = H5Iget_type(object);
    H5Oclose(object);
    if (type != H5I_DATASET) return 0;
    if (list->count == list->capacity) {
        int capacity = list->capacity ? 2 * list->capacity : 64;
        char **grown = realloc(list->names, (size_t)capacity * sizeof *grown);
        if (!grown) {
            list->failed = 1;
            return -1;
        }
        list->names = grown;
        list->capacity = capacity;
    }
    list->names[list->count] = strdup(name);
    if (!list->names[list->count]) {
        list->failed = 1;
        return -1;
    }
    list->count++;
    return 0;
}

int checkpoint_file_list(checkpoint_file *f, const char *group, char ***names, int *count,
                         status *st) {
    *names = NULL;
    *count = 0;
    if (!checkpoint_file_has(f, group)) return status_fail(st, "%s: %s: missing", f->path, group);
    name_list list = {0};
    list.group = H5Gopen2(f->file, group, H5P_DEFAULT);
    if (list.group < 0) return hdf5_fail(st, f, group, "not a group");
    hsize_t index = 0;
    herr_t rc = H5Literate(list.group, H5_INDEX_NAME, H5_ITER_INC, &index, collect_dataset, &list);
    if (rc < 0) keep_reason(f);
    H5Gclose(list.group);
    if (rc < 0) {
        checkpoint_file_free_names(list.names, list.count);
        if (list.failed) {
            f->reason[0] = '\0';
            return status_fail(st, "%s: %s: out of memory", f->path, group);
        }
        return hdf5_fail(st, f, group, "cannot list");
    }
    *names = list.names;
    *count = list.count;
    return 0;
}

void checkpoint_file_free_names(char **names, int count) {
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* ---- root attributes ---- */

/* Replaces the attribute: deletes an old one of the same name first. */
static hid_t attribute_create(checkpoint_file *f, const char *attribute, hid_t type) {
    if (H5Aexists(f->file, attribute) > 0) H5Adelete(f->file, attribute);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t id = H5Acreate2(f->file, attribute, type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(space);
    return id;
}

int checkpoint_file_set_string(checkpoint_file *f, const char *attribute, const char *value,
                               status *st) {
    /* variable length: no limit from the 64 KiB object header (the config can be long) */
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t id = attribute_create(f, attribute, type);
    herr_t rc = id < 0 ? -1 : H5Awrite(id, type, &value);
    if (rc < 0) keep_reason(f);
    if (id >= 0) H5Aclose(id);
    H5Tclose(type);
    return rc < 0 ? hdf5_fail(st, f, attribute, "cannot write attribute") : 0;
}

int checkpoint_file_set_int64(checkpoint_file *f, const char *attribute, int64_t value,
                              status *st) {
    hid_t id = attribute_create(f, attribute, H5T_STD_I64LE);
    herr_t rc = id < 0 ? -1 : H5Awrite(id, H5T_NATIVE_INT64, &value);
    if (rc < 0) keep_reason(f);
    if (id >= 0) H5Aclose(id);
    return rc < 0 ? hdf5_fail(st, f, attribute, "cannot write attribute") : 0;
}

static hid_t attribute_open(checkpoint_file *f, const char *attribute, status *st) {
    htri_t exists = H5Aexists(f->file, attribute);
    if (exists <= 0) {
        H5Eclear2(H5E_DEFAULT);
        status_fail(st, "%s: attribute %s: missing", f->path, attribute);
        return H5I_INVALID_HID;
    }
    hid_t id = H5Aopen(f->file, attribute, H5P_DEFAULT);
    if (id < 0) hdf5_fail(st, f, attribute, "cannot open attribute");
    return id;
}

int checkpoint_file_get_string(checkpoint_file *f, const char *attribute, char **value,
                               status *st) {
    *value = NULL;
    hid_t id = attribute_open(f, attribute, st);
    if (id < 0) return -1;
    hid_t type = H5Aget_type(id);
    int rc = 0;
    if (H5Tget_class(type) != H5T_STRING) {
        rc = status_fail(st, "%s: attribute %s: not a string", f->path, attribute);
    } else if (H5Tis_variable_str(type) > 0) {
        hid_t memory = H5Tcopy(H5T_C_S1);
        H5Tset_size(memory, H5T_VARIABLE);
        H5Tset_cset(memory, H5Tget_cset(type));
        char *stored = NULL;
        if (H5Aread(id, memory, &stored) < 0) {
            rc = hdf5_fail(st, f, attribute, "cannot read attribute");
        } else {
            *value = strdup(stored ? stored : "");
            H5free_memory(stored);
        }
        H5Tclose(memory);
    } else {
        size_t size = H5Tget_size(type);
        *value = calloc(size + 1, 1);
        if (*value && H5Aread(id, type, *value) < 0) {
            free(*value);
            *value = NULL;
            rc = hdf5_fail(st, f, attribute, "cannot read attribute");
        }
    }
    if (rc == 0 && !*value)
        rc = status_fail(st, "%s: attribute %s: out of memory", f->path, attribute);
    H5Tclose(type);
    H5Aclose(id);
    return rc;
}

int checkpoint_file_get_int64(checkpoint_file *f, const char *attribute, int64_t *value,
                              status *st) {
    hid_t id = attribute_open(f, attribute, st);
    if (id < 0) return -1;
    hid_t type = H5Aget_type(id);
    int rc = 0;
    if (H5Tget_class(type) != H5T_INTEGER)
        rc = status_fail(st, "%s: attribute %s: not an integer", f->path, attribute);
    else if (H5Aread(id, H5T_NATIVE_INT64, value) < 0)
        rc = hdf5_fail(st, f, attribute, "cannot read attribute");
    H5Tclose(type);
    H5Aclose(id);
    return rc;
}
