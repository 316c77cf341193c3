/* lorac/safetensors.h — the safetensors format: a mapped, validated reader and an atomic writer.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}},
 * then the data area; offsets are relative to the data area's start.
 * st_open maps the file and validates everything before returning: header JSON well-formed, every
 * dtype known, shape products overflow-checked and equal to (end-begin)/itemsize, every tensor
 * inside the data area, no two tensors overlapping. Errors read "PATH: what is wrong".
 */
#ifndef LORAC_SAFETENSORS_H
#define LORAC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ST_MAX_DIMS 8

typedef enum st_dtype {
    ST_F32 = 0,
    ST_F16,
    ST_BF16,
    ST_F64,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL,
} st_dtype;

const char *st_dtype_name(st_dtype t); /* "F32", ... */
size_t st_dtype_size(st_dtype t);      /* bytes per element */

typedef struct st_tensor {
    const char *name;       /* NUL-terminated, owned by the st_file */
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    const uint8_t *data;    /* points into the mapping; numel * st_dtype_size(dtype) bytes */
} st_tensor;

typedef struct st_file {
    char *path;
    lorac_map map;
    st_tensor *tensors;     /* in header order */
    size_t n_tensors;
    char **meta_keys;       /* __metadata__ (string -> string) */
    char **meta_values;
    size_t n_meta;
    void *priv;             /* parser-owned storage */
} st_file;

int st_open(const char *path, st_file *f, lorac_err *err);
/* The same validation over a safetensors image already in memory (data[0..size) must outlive f);
 * name is used in messages. st_close releases it without unmapping anything. */
int st_open_memory(const void *data, size_t size, const char *name, st_file *f, lorac_err *err);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
const char *st_meta(const st_file *f, const char *key); /* NULL if absent */
/* Converts a float tensor (F32, F16, BF16, and F64 rounded to nearest) to f32 into out (numel
 * floats). Other dtypes: error. */
int st_read_f32(const st_file *f, const st_tensor *t, float *out, lorac_err *err);
/* A tensor's f32 data without a copy when it is F32 and suitably aligned; NULL otherwise. */
const float *st_f32_view(const st_tensor *t);

/* One tensor to write: data holds numel elements of dtype (F32 input may be converted on write by
 * setting out_dtype to F16/BF16; otherwise out_dtype must equal dtype). */
typedef struct st_entry {
    const char *name;
    st_dtype dtype;       /* dtype of data in memory */
    st_dtype out_dtype;   /* dtype written to the file */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} st_entry;

/* An f32 entry written as f32: ndim 1 (d0) or 2 (d0, d1). */
st_entry st_entry_f32(const char *name, int ndim, int64_t d0, int64_t d1, const float *data);

/* Writes entries (names must be unique) and optional string metadata to PATH via a temporary file
 * renamed into place. Tensors are written in the order given. */
int st_write(const char *path, const st_entry *entries, size_t n, const char *const *meta_keys,
             const char *const *meta_values, size_t n_meta, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
