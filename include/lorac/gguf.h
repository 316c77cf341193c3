/* lorac/gguf.h — the GGUF file format (llama.cpp's): a mapped, validated reader and a writer.
 *
 * Layout (little-endian): "GGUF", u32 version (3; 2 is read too), u64 tensor_count, u64 kv_count;
 * kv_count key/values: key (string = u64 length + bytes), u32 value type, value (arrays: u32 element
 * type, u64 count, elements); tensor_count tensor infos: name, u32 n_dims, u64 ne[n_dims] (ggml
 * order: ne[0] is the contiguous row length), u32 ggml type, u64 offset relative to the data area;
 * the data area starts at the end of the infos rounded up to general.alignment (default 32).
 *
 * gguf_open maps the file and validates everything before returning, checking every count and
 * length against the bytes left and every size product for overflow before it allocates: known
 * value and tensor types, no duplicate keys or tensor names, 1..4 dims, ne[0] a multiple of the
 * type's block size, offsets aligned, each tensor's bytes inside the file and no two overlapping,
 * general.alignment a power of two. Errors are one line: "PATH: what is wrong".
 * Strings in the file are not NUL-terminated: string values come back as pointer + length.
 * Keys and tensor names are copied (NUL-terminated). Arrays of strings are indexed at open, so
 * gguf_arr_str(kv, i) is O(1). Multi-byte values in the mapping may be unaligned: read them only
 * through these accessors. Requires a little-endian host.
 */
#ifndef LORAC_GGUF_H
#define LORAC_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"
#include "lorac/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

typedef enum gguf_vtype {
    GGUF_U8 = 0,
    GGUF_I8 = 1,
    GGUF_U16 = 2,
    GGUF_I16 = 3,
    GGUF_U32 = 4,
    GGUF_I32 = 5,
    GGUF_F32 = 6,
    GGUF_BOOL = 7,
    GGUF_STR = 8,
    GGUF_ARR = 9,
    GGUF_U64 = 10,
    GGUF_I64 = 11,
    GGUF_F64 = 12,
    GGUF_VTYPE_LIMIT = 13,
} gguf_vtype;

const char *gguf_vtype_name(int t); /* "u32", "str", "arr", ...; NULL if unknown */

typedef struct gguf_kv {
    char *key;                  /* NUL-terminated copy */
    gguf_vtype type;
    gguf_vtype arr_type;        /* element type when type == GGUF_ARR */
    uint64_t arr_len;           /* element count when type == GGUF_ARR */
    uint64_t str_len;           /* byte length when type == GGUF_STR */
    const uint8_t *data;        /* in the mapping: the value, the string's bytes, the first element */
    const uint8_t **arr_strs;   /* arrays of strings: each element's u64 length prefix */
} gguf_kv;

typedef struct gguf_tensor {
    char *name;                 /* NUL-terminated copy */
    int type;                   /* a quant_type */
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];  /* ggml order; dims past n_dims are 1 */
    uint64_t offset;            /* relative to the data area */
    size_t n_elem;
    size_t nbytes;
    const uint8_t *data;        /* in the mapping */
} gguf_tensor;

typedef struct gguf_file {
    char *path;                 /* or the name given to gguf_open_buffer */
    lorac_map map;              /* unmapped by gguf_close (empty for gguf_open_buffer) */
    const uint8_t *base;
    size_t size;
    uint32_t version;
    uint32_t alignment;
    size_t data_offset;         /* start of the data area */
    gguf_kv *kvs;               /* in file order */
    size_t n_kv;
    gguf_tensor *tensors;       /* in file order */
    size_t n_tensors;
} gguf_file;

int gguf_open(const char *path, gguf_file *f, lorac_err *err);
/* 1 when path is a readable file that starts with the GGUF magic (what it is, whatever its name). */
int gguf_is_file(const char *path);
/* Parses SIZE bytes at DATA (which must outlive f) with NAME in messages. */
int gguf_open_buffer(const void *data, size_t size, const char *name, gguf_file *f, lorac_err *err);
void gguf_close(gguf_file *f);

const gguf_kv *gguf_find_key(const gguf_file *f, const char *key); /* NULL if absent */
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Typed getters. An absent key is LORAC_ENOTFOUND ("PATH: missing key 'KEY'") when required is
 * GGUF_REQUIRED; with GGUF_OPTIONAL it returns LORAC_OK and leaves *out as the caller set it (the
 * default). A present key of the wrong type is LORAC_EFORMAT. Integer getters accept any integer
 * type whose value fits; gguf_get_f32 accepts f32 and f64. */
enum { GGUF_OPTIONAL = 0, GGUF_REQUIRED = 1 };
int gguf_get_u32(const gguf_file *f, const char *key, int required, uint32_t *out, lorac_err *err);
int gguf_get_i32(const gguf_file *f, const char *key, int required, int32_t *out, lorac_err *err);
int gguf_get_u64(const gguf_file *f, const char *key, int required, uint64_t *out, lorac_err *err);
int gguf_get_f32(const gguf_file *f, const char *key, int required, float *out, lorac_err *err);
int gguf_get_bool(const gguf_file *f, const char *key, int required, int *out, lorac_err *err);
/* *out points into the mapping (not NUL-terminated), *len its bytes. */
int gguf_get_str(const gguf_file *f, const char *key, int required, const char **out, size_t *len,
                 lorac_err *err);
/* An array whose elements have type elem_type (GGUF_VTYPE_LIMIT: any). Absent and optional: *out
 * is NULL. */
int gguf_get_arr(const gguf_file *f, const char *key, int required, int elem_type, const gguf_kv **out,
                 lorac_err *err);

/* Element access for an array kv; i out of range (or the wrong element type) gives 0 / NULL.
 * gguf_arr_int reads any integer or bool type, gguf_arr_float f32/f64 (and integers). */
uint64_t gguf_arr_len(const gguf_kv *kv);
const char *gguf_arr_str(const gguf_kv *kv, uint64_t i, size_t *len);
int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i);
double gguf_arr_float(const gguf_kv *kv, uint64_t i);
/* A scalar kv's value: any integer/bool type as int64 (u64 above INT64_MAX wraps), f32/f64. */
int64_t gguf_kv_int(const gguf_kv *kv);
uint64_t gguf_kv_u64(const gguf_kv *kv);
double gguf_kv_float(const gguf_kv *kv);
/* The value as one line of text into buf (always NUL-terminated): strings quoted and escaped, cut
 * after max_chars bytes; arrays as "[N] [a, b, ...]" with at most max_items elements shown. */
void gguf_kv_format(const gguf_kv *kv, char *buf, size_t n, size_t max_items, size_t max_chars);

/* Converts a tensor to f32: out holds t->n_elem floats (ggml order, row by row). A type lorac
 * cannot dequantize is LORAC_EUNSUPPORTED naming the tensor and type. */
int gguf_tensor_to_f32(const gguf_file *f, const gguf_tensor *t, float *out, lorac_err *err);
/* An F32 tensor's values in place (no copy) when its data is float-aligned; NULL otherwise. */
const float *gguf_tensor_f32_view(const gguf_tensor *t);
/* Bytes per row (ne[0] elements) of a tensor. */
size_t gguf_tensor_row_bytes(const gguf_tensor *t);

/* ---- writer ----
 * Collects key/values and tensors, then writes GGUF v3 to PATH through a temporary file renamed
 * into place: KVs in the order added, tensor infos, padding to the alignment, then each tensor's
 * bytes padded to the alignment (the packed, in-order layout llama.cpp requires). Tensor data is
 * not copied: it must stay valid until gguf_writer_write. The add functions record the first error
 * (duplicate key or name, bad shape, a name of 64+ bytes, out of memory) and gguf_writer_write
 * reports it; they also return it. */
typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void); /* NULL when out of memory */
void gguf_writer_free(gguf_writer *w);
int gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment); /* power of two; writes general.alignment */
int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_add_bool(gguf_writer *w, const char *key, int v);
int gguf_writer_add_str(gguf_writer *w, const char *key, const char *v); /* NUL-terminated */
int gguf_writer_add_strn(gguf_writer *w, const char *key, const char *v, size_t len);
/* Numeric array: n elements of elem_type (any scalar type except str), laid out in memory. */
int gguf_writer_add_arr(gguf_writer *w, const char *key, int elem_type, const void *data, size_t n);
int gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *v, size_t n);
/* Copies a key/value read by gguf_open (e.g. a base model's metadata into a merged file). */
int gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv);
/* A tensor already in TYPE: data holds quant_row_size(type, ne[0]) * ne[1]*ne[2]*ne[3] bytes. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                           const void *data);
/* An f32 tensor written as out_type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K: see
 * quant_can_quantize), quantized row by row
 * during gguf_writer_write. */
int gguf_writer_add_tensor_f32(gguf_writer *w, const char *name, int out_type, int n_dims, const int64_t *ne,
                               const float *data);
int gguf_writer_write(gguf_writer *w, const char *path, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
