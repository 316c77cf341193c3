/* GGUF v3 writer: key/values are serialised as they are added; tensors are recorded (not copied)
 * and written packed in order, each padded to the alignment, through a temporary file. */
#include "lorac/gguf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAX_NAME 63 /* ggml's GGML_MAX_NAME is 64 including the NUL */

typedef struct wtensor {
    char *name;
    int type;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    size_t n_elem, nbytes;
    const void *data; /* bytes already in type */
    const float *f32; /* or f32 values quantized to type on write */
} wtensor;

struct gguf_writer {
    uint8_t *kv; /* serialised key/values */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    char **keys;
    size_t keys_cap;
    wtensor *t;
    size_t n_t, t_cap;
    uint32_t alignment;
    lorac_err err; /* the first error; sticky */
};

gguf_writer *gguf_writer_new(void) {
    gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->keys);
    free(w->t);
    free(w->kv);
    free(w);
}

static int fail_oom(gguf_writer *w) { return lorac_fail(&w->err, LORAC_ENOMEM, "gguf writer: out of memory"); }

static int put(gguf_writer *w, const void *p, size_t n) {
    if (w->err.code) return w->err.code;
    if (n > w->kv_cap - w->kv_len) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap - w->kv_len < n) {
            if (cap > SIZE_MAX / 2) return fail_oom(w);
            cap *= 2;
        }
        uint8_t *q = realloc(w->kv, cap);
        if (!q) return fail_oom(w);
        w->kv = q;
        w->kv_cap = cap;
    }
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
    return LORAC_OK;
}

static int put_u32(gguf_writer *w, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return put(w, b, 4);
}

static int put_u64(gguf_writer *w, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    return put(w, b, 8);
}

static int put_str(gguf_writer *w, const char *s, size_t len) {
    int rc = put_u64(w, len);
    return rc ? rc : put(w, s, len);
}

/* Names must be non-empty and free of control bytes (the reader refuses them). */
static int bad_name(const char *s) {
    if (!s || !s[0]) return 1;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
    return 0;
}

/* Starts a key/value: checks the key, records it, writes key and type. */
static int begin_kv(gguf_writer *w, const char *key, int type) {
    if (w->err.code) return w->err.code;
    if (bad_name(key)) return lorac_fail(&w->err, LORAC_EINVAL, "gguf writer: a key is empty or has control bytes");
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key)) return lorac_fail(&w->err, LORAC_EINVAL, "gguf writer: duplicate key '%s'", key);
    if (w->n_kv == w->keys_cap) {
        size_t cap = w->keys_cap ? 2 * w->keys_cap : 32;
        char **k = realloc(w->keys, cap * sizeof *k);
        if (!k) return fail_oom(w);
        w->keys = k;
        w->keys_cap = cap;
    }
    size_t len = strlen(key);
    char *copy = malloc(len + 1);
    if (!copy) return fail_oom(w);
    memcpy(copy, key, len + 1);
    w->keys[w->n_kv++] = copy;
    int rc = put_str(w, key, len);
    return rc ? rc : put_u32(w, (uint32_t)type);
}

/* general.alignment is both a key and the writer's layout rule. */
static int note_alignment(gguf_writer *w, const char *key, int type, uint64_t v) {
    if (strcmp(key, "general.alignment")) return LORAC_OK;
    if (type != GGUF_U32 || v == 0 || (v & (v - 1)))
        return lorac_fail(&w->err, LORAC_EINVAL, "gguf writer: general.alignment must be a u32 power of two");
    w->alignment = (uint32_t)v;
    return LORAC_OK;
}

static int add_scalar(gguf_writer *w, const char *key, int type, const void *v, size_t size, uint64_t as_int) {
    int rc = begin_kv(w, key, type);
    if (!rc) rc = note_alignment(w, key, type, as_int);
    /* scalars are stored little-endian, as the host holds them */
    return rc ? rc : put(w, v, size);
}

int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v) { return add_scalar(w, key, GGUF_U32, &v, 4, v); }
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v) { return add_scalar(w, key, GGUF_I32, &v, 4, 0); }
int gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v) { return add_scalar(w, key, GGUF_U64, &v, 8, 0); }
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v) { return add_scalar(w, key, GGUF_F32, &v, 4, 0); }

int gguf_writer_add_bool(gguf_writer *w, const char *key, int v) {
    uint8_t b = v != 0;
    return add_scalar(w, key, GGUF_BOOL, &b, 1, 0);
}

int gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment) {
    return gguf_writer_add_u32(w, "general.alignment", alignment);
}

int gguf_writer_add_strn(gguf_writer *w, const char *key, const char *v, size_t len) {
    int rc = begin_kv(w, key, GGUF_STR);
    return rc ? rc : put_str(w, v, len);
}

int gguf_writer_add_str(gguf_writer *w, const char *key, const char *v) {
    return gguf_writer_add_strn(w, key, v, strlen(v));
}

static size_t scalar_size(int t) {
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

int gguf_writer_add_arr(gguf_writer *w, const char *key, int elem_type, const void *data, size_t n) {
    size_t es = scalar_size(elem_type), bytes;
    if (!es && !w->err.code)
        return lorac_fail(&w->err, LORAC_EINVAL, "gguf writer: key '%s': arrays of %s need gguf_writer_add_arr_str",
                          key, gguf_vtype_name(elem_type) ? gguf_vtype_name(elem_type) : "an unknown type");
    if (lorac_size_mul(n, es, &bytes)) return fail_oom(w);
    int rc = begin_kv(w, key, GGUF_ARR);
    if (!rc) rc = put_u32(w, (uint32_t)elem_type);
    if (!rc) rc = put_u64(w, n);
    return rc ? rc : put(w, data, bytes);
}

int gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *v, size_t n) {
    int rc = begin_kv(w, key, GGUF_ARR);
    if (!rc) rc = put_u32(w, GGUF_STR);
    if (!rc) rc = put_u64(w, n);
    for (size_t i = 0; i < n && !rc; i++) rc = put_str(w, v[i], strlen(v[i]));
    return rc;
}

int gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv) {
    int rc = begin_kv(w, kv->key, kv->type);
    if (rc) return rc;
    if (kv->type == GGUF_STR) return put_str(w, (const char *)kv->data, (size_t)kv->str_len);
    if (kv->type != GGUF_ARR) {
        rc = note_alignment(w, kv->key, kv->type, gguf_kv_u64(kv));
        return rc ? rc : put(w, kv->data, scalar_size(kv->type));
    }
    if ((rc = put_u32(w, kv->arr_type)) || (rc = put_u64(w, kv->arr_len))) return rc;
    if (kv->arr_type != GGUF_STR) /* validated at open: the elements lie inside the mapping */
        return put(w, kv->data, (size_t)kv->arr_len * scalar_size(kv->arr_type));
    for (uint64_t i = 0; i < kv->arr_len && !rc; i++) {
        size_t len;
        const char *s = gguf_arr_str(kv, i, &len);
        rc = put_str(w, s, len);
    }
    return rc;
}

static int add_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne, const void *data,
                      const float *f32) {
    if (w->err.code) return w->err.code;
    size_t len = name ? strlen(name) : 0;
    if (bad_name(name)) return lorac_fail(&w->err, LORAC_EINVAL, "gguf writer: a tensor name is empty or has control bytes");
    if (len > GGUF_MAX_NAME)
        return lorac_fail(&w->err, LORAC_EINVAL, "gguf writer: tensor name '%s' must have 1 to %d bytes", name, GGUF_MAX_NAME);
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return lorac_fail(&w->err, LORAC_EINVAL, "gguf writer: duplicate tensor '%s'", name);
    if (!quant_type_name(type)) return lorac_fail(&w->err, LORAC_EINVAL, "gguf writer: tensor '%s': unknown type %d", name, type);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return lorac_fail(&w->err, LORAC_EINVAL, "gguf writer: tensor '%s': %d dims (1 to %d allowed)", name, n_dims, GGUF_MAX_DIMS);
    wtensor t = {.type = type, .n_dims = n_dims, .data = data, .f32 = f32, .n_elem = 1};
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 0 || lorac_size_mul(t.n_elem, (size_t)t.ne[d], &t.n_elem))
            return lorac_fail(&w->err, LORAC_EINVAL, "gguf writer: tensor '%s': bad shape", name);
    }
    size_t row;
    if (t.ne[0] == 0) {
        t.nbytes = 0;
    } else if (quant_row_size(type, (size_t)t.ne[0], &row) ||
               lorac_size_mul(row, t.n_elem / (size_t)t.ne[0], &t.nbytes)) {
        return lorac_fail(&w->err, LORAC_EINVAL, "gguf writer: tensor '%s': row length %" PRId64
                          " does not fit %s's block size %zu", name, t.ne[0], quant_type_name(type), quant_block_size(type));
    }
    if (w->n_t == w->t_cap) {
        size_t cap = w->t_cap ? 2 * w->t_cap : 64;
        wtensor *q = realloc(w->t, cap * sizeof *q);
        if (!q) return fail_oom(w);
        w->t = q;
        w->t_cap = cap;
    }
    t.name = malloc(len + 1);
    if (!t.name) return fail_oom(w);
    memcpy(t.name, name, len + 1);
    w->t[w->n_t++] = t;
    return LORAC_OK;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne, const void *data) {
    return add_tensor(w, name, type, n_dims, ne, data, NULL);
}

int gguf_writer_add_tensor_f32(gguf_writer *w, const char *name, int out_type, int n_dims, const int64_t *ne,
                               const float *data) {
    if (!w->err.code && !quant_can_quantize(out_type))
        return lorac_fail(&w->err, LORAC_EUNSUPPORTED, "gguf writer: tensor '%s': lorac cannot quantize to %s", name,
                          quant_type_name(out_type) ? quant_type_name(out_type) : "an unknown type");
    return add_tensor(w, name, out_type, n_dims, ne, NULL, data);
}

static size_t pad_to(size_t n, uint32_t a) { return (a - n % a) % a; }

static void write_u32(FILE *f, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    fwrite(b, 1, 4, f);
}

static void write_u64(FILE *f, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    fwrite(b, 1, 8, f);
}

static void write_zeros(FILE *f, size_t n) {
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        fwrite(zeros, 1, k, f);
        n -= k;
    }
}

/* One tensor's bytes: as given, or quantized from f32 a row at a time through scratch. */
static int write_tensor_data(FILE *f, const wtensor *t, const char *path, lorac_err *err) {
    if (!t->f32) {
        if (t->nbytes) fwrite(t->data, 1, t->nbytes, f);
        return LORAC_OK;
    }
    if (!t->nbytes) return LORAC_OK;
    size_t cols = (size_t)t->ne[0], rows = t->n_elem / cols, row = t->nbytes / rows;
    uint8_t *scratch = malloc(row);
    if (!scratch) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    for (size_t r = 0; r < rows; r++) {
        quant_row_from_f32(t->type, t->f32 + r * cols, scratch, cols);
        fwrite(scratch, 1, row, f);
    }
    free(scratch);
    return LORAC_OK;
}

int gguf_writer_write(gguf_writer *w, const char *path, lorac_err *err) {
    if (w->err.code) return lorac_fail(err, w->err.code, "%s: %s", path, w->err.msg);
    lorac_out o;
    int rc = lorac_out_open(&o, path, err);
    if (rc) return rc;
    FILE *f = o.f;
    fwrite("GGUF", 1, 4, f);
    write_u32(f, 3);
    write_u64(f, w->n_t);
    write_u64(f, w->n_kv);
    if (w->kv_len) fwrite(w->kv, 1, w->kv_len, f);
    size_t pos = 24 + w->kv_len, offset = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        size_t len = strlen(t->name);
        write_u64(f, len);
        fwrite(t->name, 1, len, f);
        write_u32(f, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) write_u64(f, (uint64_t)t->ne[d]);
        write_u32(f, (uint32_t)t->type);
        write_u64(f, offset);
        pos += 8 + len + 4 + 8 * (size_t)t->n_dims + 4 + 8;
        offset += t->nbytes + pad_to(t->nbytes, w->alignment);
    }
    write_zeros(f, pad_to(pos, w->alignment));
    for (size_t i = 0; i < w->n_t && !rc; i++) {
        rc = write_tensor_data(f, &w->t[i], path, err);
        write_zeros(f, pad_to(w->t[i].nbytes, w->alignment));
    }
    if (rc) {
        lorac_out_abort(&o);
        return rc;
    }
    return lorac_out_commit(&o, err);
}
