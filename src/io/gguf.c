/* GGUF reader: maps the file, validates every count, length, type, shape and offset against the
 * file before allocating or pointing into it, and indexes string arrays for O(1) access. */
#include "lorac/gguf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    uint8_t size; /* bytes of a scalar; 0 for str and arr */
} VTYPES[GGUF_VTYPE_LIMIT] = {
    [GGUF_U8] = {"u8", 1},   [GGUF_I8] = {"i8", 1},     [GGUF_U16] = {"u16", 2}, [GGUF_I16] = {"i16", 2},
    [GGUF_U32] = {"u32", 4}, [GGUF_I32] = {"i32", 4},   [GGUF_F32] = {"f32", 4}, [GGUF_BOOL] = {"bool", 1},
    [GGUF_STR] = {"str", 0}, [GGUF_ARR] = {"arr", 0},   [GGUF_U64] = {"u64", 8}, [GGUF_I64] = {"i64", 8},
    [GGUF_F64] = {"f64", 8},
};

const char *gguf_vtype_name(int t) { return t >= 0 && t < GGUF_VTYPE_LIMIT ? VTYPES[t].name : NULL; }

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- the cursor over the mapped bytes ---- */

typedef struct cursor {
    const uint8_t *p;
    size_t pos, size;
    const char *name;
    lorac_err *err;
} cursor;

static int need(cursor *c, uint64_t n, const char *what, uint64_t index) {
    if (n <= c->size - c->pos) return LORAC_OK;
    return lorac_fail(c->err, LORAC_EFORMAT, "%s: truncated: %s %" PRIu64 " needs %" PRIu64
                      " bytes at offset %zu, %zu left", c->name, what, index, n, c->pos, c->size - c->pos);
}

static int read_u32(cursor *c, uint32_t *v, const char *what, uint64_t index) {
    int rc = need(c, 4, what, index);
    if (rc) return rc;
    *v = le32(c->p + c->pos);
    c->pos += 4;
    return LORAC_OK;
}

static int read_u64(cursor *c, uint64_t *v, const char *what, uint64_t index) {
    int rc = need(c, 8, what, index);
    if (rc) return rc;
    *v = le64(c->p + c->pos);
    c->pos += 8;
    return LORAC_OK;
}

/* A gguf string: u64 length then the bytes. *s points at the bytes. */
static int read_str(cursor *c, const uint8_t **s, uint64_t *len, const char *what, uint64_t index) {
    int rc = read_u64(c, len, what, index);
    if (rc) return rc;
    if (*len > c->size - c->pos)
        return lorac_fail(c->err, LORAC_EFORMAT, "%s: %s %" PRIu64 ": string length %" PRIu64
                          " runs past the end of the file (%zu bytes left)", c->name, what, index, *len,
                          c->size - c->pos);
    *s = c->p + c->pos;
    c->pos += (size_t)*len;
    return LORAC_OK;
}

/* A NUL-terminated copy of a key or tensor name. Control bytes (NUL, newline, ...) are refused:
 * names go into one-line messages and listings. */
static int copy_name(cursor *c, const uint8_t *s, uint64_t len, char **out, const char *what, uint64_t index) {
    if (len == 0) return lorac_fail(c->err, LORAC_EFORMAT, "%s: %s %" PRIu64 " has an empty name", c->name, what, index);
    for (uint64_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] == 0x7f)
            return lorac_fail(c->err, LORAC_EFORMAT, "%s: %s %" PRIu64 " has a control byte 0x%02x in its name", c->name,
                              what, index, s[i]);
    *out = malloc((size_t)len + 1);
    if (!*out) return lorac_fail(c->err, LORAC_ENOMEM, "%s: out of memory", c->name);
    memcpy(*out, s, (size_t)len);
    (*out)[len] = 0;
    return LORAC_OK;
}

static int read_value(cursor *c, gguf_kv *kv) {
    const char *key = kv->key;
    if (kv->type == GGUF_STR) {
        const uint8_t *s;
        int rc = read_str(c, &s, &kv->str_len, "value of key", 0);
        if (rc) return lorac_fail(c->err, rc, "%s: key '%s': string value runs past the end of the file", c->name, key);
        kv->data = s;
        return LORAC_OK;
    }
    if (kv->type != GGUF_ARR) {
        if (need(c, VTYPES[kv->type].size, "value", 0))
            return lorac_fail(c->err, LORAC_EFORMAT, "%s: truncated: value of key '%s'", c->name, key);
        kv->data = c->p + c->pos;
        c->pos += VTYPES[kv->type].size;
        return LORAC_OK;
    }
    uint32_t et;
    if (read_u32(c, &et, "array type", 0) || read_u64(c, &kv->arr_len, "array length", 0))
        return lorac_fail(c->err, LORAC_EFORMAT, "%s: truncated: array header of key '%s'", c->name, key);
    if (et >= GGUF_VTYPE_LIMIT)
        return lorac_fail(c->err, LORAC_EFORMAT, "%s: key '%s': unknown array element type %" PRIu32, c->name, key, et);
    if (et == GGUF_ARR)
        return lorac_fail(c->err, LORAC_EUNSUPPORTED, "%s: key '%s': arrays of arrays are not supported", c->name, key);
    kv->arr_type = (gguf_vtype)et;
    size_t left = c->size - c->pos;
    kv->data = c->p + c->pos;
    if (et != GGUF_STR) {
        size_t bytes;
        if (lorac_size_mul((size_t)kv->arr_len, VTYPES[et].size, &bytes) || kv->arr_len > SIZE_MAX || bytes > left)
            return lorac_fail(c->err, LORAC_EFORMAT, "%s: key '%s': array of %" PRIu64 " %s runs past the end of the file",
                              c->name, key, kv->arr_len, VTYPES[et].name);
        c->pos += bytes;
        return LORAC_OK;
    }
    /* every string takes at least its 8-byte length, which bounds the index before allocating it */
    if (kv->arr_len > left / 8)
        return lorac_fail(c->err, LORAC_EFORMAT, "%s: key '%s': array of %" PRIu64 " strings runs past the end of the file",
                          c->name, key, kv->arr_len);
    kv->arr_strs = malloc(kv->arr_len ? (size_t)kv->arr_len * sizeof *kv->arr_strs : 1);
    if (!kv->arr_strs) return lorac_fail(c->err, LORAC_ENOMEM, "%s: out of memory", c->name);
    for (uint64_t i = 0; i < kv->arr_len; i++) {
        const uint8_t *s;
        uint64_t len;
        kv->arr_strs[i] = c->p + c->pos;
        if (read_str(c, &s, &len, "string", i))
            return lorac_fail(c->err, LORAC_EFORMAT, "%s: key '%s': string %" PRIu64 " runs past the end of the file",
                              c->name, key, i);
    }
    return LORAC_OK;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Finds a repeated name in O(n log n) (a quadratic scan would let a crafted file stall us). */
static int check_unique(cursor *c, char **names, size_t n, const char *what) {
    if (n < 2) return LORAC_OK;
    char **s = malloc(n * sizeof *s);
    if (!s) return lorac_fail(c->err, LORAC_ENOMEM, "%s: out of memory", c->name);
    memcpy(s, names, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_names);
    int rc = LORAC_OK;
    for (size_t i = 1; i < n && !rc; i++)
        if (!strcmp(s[i - 1], s[i])) rc = lorac_fail(c->err, LORAC_EFORMAT, "%s: duplicate %s '%s'", c->name, what, s[i]);
    free(s);
    return rc;
}

typedef struct span {
    uint64_t offset;
    size_t index;
} span;
static int cmp_spans(const void *a, const void *b) {
    uint64_t x = ((const span *)a)->offset, y = ((const span *)b)->offset;
    return x < y ? -1 : x > y;
}

static int parse_kvs(cursor *c, gguf_file *f, uint64_t n_kv) {
    /* each kv takes at least 8 (key length) + 1 (key) + 4 (type) + 1 (value) bytes */
    if (n_kv > (c->size - c->pos) / 14)
        return lorac_fail(c->err, LORAC_EFORMAT, "%s: truncated or corrupt: kv_count %" PRIu64
                          " needs more than the %zu bytes left", c->name, n_kv, c->size - c->pos);
    f->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof *f->kvs);
    char **keys = malloc((n_kv ? (size_t)n_kv : 1) * sizeof *keys);
    if (!f->kvs || !keys) {
        free(keys);
        return lorac_fail(c->err, LORAC_ENOMEM, "%s: out of memory", c->name);
    }
    int rc = LORAC_OK;
    for (uint64_t i = 0; i < n_kv && !rc; i++) {
        gguf_kv *kv = &f->kvs[i];
        const uint8_t *s;
        uint64_t len;
        uint32_t t;
        if ((rc = read_str(c, &s, &len, "key", i)) || (rc = copy_name(c, s, len, &kv->key, "key", i))) break;
        f->n_kv = (size_t)i + 1;
        keys[i] = kv->key;
        if ((rc = read_u32(c, &t, "value type of key", i))) break;
        if (t >= GGUF_VTYPE_LIMIT) {
            rc = lorac_fail(c->err, LORAC_EFORMAT, "%s: key '%s' has unknown value type %" PRIu32, c->name, kv->key, t);
            break;
        }
        kv->type = (gguf_vtype)t;
        rc = read_value(c, kv);
    }
    if (!rc) rc = check_unique(c, keys, f->n_kv, "key");
    free(keys);
    if (rc) return rc;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *a = gguf_find_key(f, "general.alignment");
    if (a) {
        uint32_t v = a->type == GGUF_U32 ? le32(a->data) : 0;
        if (a->type != GGUF_U32 || v == 0 || (v & (v - 1)))
            return lorac_fail(c->err, LORAC_EFORMAT, "%s: general.alignment must be a u32 power of two", c->name);
        f->alignment = v;
    }
    return LORAC_OK;
}

static int parse_tensor_info(cursor *c, gguf_file *f, gguf_tensor *t, uint64_t i) {
    const uint8_t *s;
    uint64_t len, ne;
    uint32_t n_dims, type;
    int rc;
    if ((rc = read_str(c, &s, &len, "tensor info", i)) || (rc = copy_name(c, s, len, &t->name, "tensor", i)))
        return rc;
    f->n_tensors = (size_t)i + 1;
    if ((rc = read_u32(c, &n_dims, "tensor info", i))) return rc;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return lorac_fail(c->err, LORAC_EFORMAT, "%s: tensor '%s' has %" PRIu32 " dims (1 to %d allowed)", c->name,
                          t->name, n_dims, GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    size_t n_elem = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        ne = 1;
        if (d < t->n_dims && (rc = read_u64(c, &ne, "tensor info", i))) return rc;
        if (ne > INT64_MAX || lorac_size_mul(n_elem, (size_t)ne, &n_elem) || ne > SIZE_MAX)
            return lorac_fail(c->err, LORAC_EFORMAT, "%s: tensor '%s': shape overflows", c->name, t->name);
        t->ne[d] = (int64_t)ne;
    }
    t->n_elem = n_elem;
    if ((rc = read_u32(c, &type, "tensor info", i)) || (rc = read_u64(c, &t->offset, "tensor info", i))) return rc;
    if (type >= QUANT_TYPE_LIMIT || !quant_type_name((int)type))
        return lorac_fail(c->err, LORAC_EFORMAT, "%s: tensor '%s' has unknown type %" PRIu32, c->name, t->name, type);
    t->type = (int)type;
    size_t row;
    rc = quant_row_size(t->type, (size_t)t->ne[0], &row);
    if (rc == LORAC_EINVAL)
        return lorac_fail(c->err, LORAC_EFORMAT, "%s: tensor '%s': row length %" PRId64 " is not a multiple of %s's block size %zu",
                          c->name, t->name, t->ne[0], quant_type_name(t->type), quant_block_size(t->type));
    if (rc || lorac_size_mul(row, n_elem / (t->ne[0] ? (size_t)t->ne[0] : 1), &t->nbytes))
        return lorac_fail(c->err, LORAC_EFORMAT, "%s: tensor '%s': size overflows", c->name, t->name);
    if (t->ne[0] == 0) t->nbytes = 0;
    if (t->offset % f->alignment)
        return lorac_fail(c->err, LORAC_EFORMAT, "%s: tensor '%s': offset %" PRIu64 " is not a multiple of the alignment %" PRIu32,
                          c->name, t->name, t->offset, f->alignment);
    return LORAC_OK;
}

static int parse_tensors(cursor *c, gguf_file *f, uint64_t n_t) {
    /* each info takes at least 8 + 1 (name) + 4 (n_dims) + 8 (ne[0]) + 4 (type) + 8 (offset) bytes */
    if (n_t > (c->size - c->pos) / 33)
        return lorac_fail(c->err, LORAC_EFORMAT, "%s: truncated or corrupt: tensor_count %" PRIu64
                          " needs more than the %zu bytes left", c->name, n_t, c->size - c->pos);
    f->tensors = calloc(n_t ? (size_t)n_t : 1, sizeof *f->tensors);
    if (!f->tensors) return lorac_fail(c->err, LORAC_ENOMEM, "%s: out of memory", c->name);
    int rc = LORAC_OK;
    for (uint64_t i = 0; i < n_t && !rc; i++) rc = parse_tensor_info(c, f, &f->tensors[i], i);
    if (rc) return rc;
    char **names = malloc((n_t ? (size_t)n_t : 1) * sizeof *names);
    span *order = malloc((n_t ? (size_t)n_t : 1) * sizeof *order);
    if (!names || !order) {
        free(names);
        free(order);
        return lorac_fail(c->err, LORAC_ENOMEM, "%s: out of memory", c->name);
    }
    for (size_t i = 0; i < n_t; i++) {
        names[i] = f->tensors[i].name;
        order[i] = (span){f->tensors[i].offset, i};
    }
    rc = check_unique(c, names, (size_t)n_t, "tensor");
    free(names);
    /* the data area starts at the end of the infos, rounded up to the alignment */
    size_t pad = (f->alignment - c->pos % f->alignment) % f->alignment;
    f->data_offset = c->pos + pad;
    if (!rc && n_t && pad > c->size - c->pos)
        rc = lorac_fail(c->err, LORAC_EFORMAT, "%s: truncated: the data area would start at offset %zu, past the end (%zu bytes)",
                        c->name, f->data_offset, c->size);
    for (size_t i = 0; i < n_t && !rc; i++) {
        gguf_tensor *t = &f->tensors[i];
        size_t room = c->size - f->data_offset;
        if (t->offset > room || t->nbytes > room - (size_t)t->offset)
            rc = lorac_fail(c->err, LORAC_EFORMAT, "%s: tensor '%s': %zu bytes at data offset %" PRIu64
                            " run past the end of the file (%zu bytes of data)", c->name, t->name, t->nbytes, t->offset, room);
        else
            t->data = c->p + f->data_offset + t->offset;
    }
    if (!rc && n_t > 1) {
        qsort(order, (size_t)n_t, sizeof *order, cmp_spans);
        const gguf_tensor *last = NULL; /* the non-empty tensor before, by offset */
        for (size_t i = 0; i < n_t && !rc; i++) {
            const gguf_tensor *b = &f->tensors[order[i].index];
            if (!b->nbytes) continue;
            if (last && last->offset + last->nbytes > b->offset)
                rc = lorac_fail(c->err, LORAC_EFORMAT, "%s: tensors '%s' and '%s' overlap", c->name, last->name, b->name);
            last = b;
        }
    }
    free(order);
    return rc;
}

/* Parses into f, which is zeroed except perhaps for its mapping; on failure releases everything. */
static int parse_file(const uint8_t *data, size_t size, const char *name, gguf_file *f, lorac_err *err) {
    f->base = data;
    f->size = size;
    f->path = malloc(strlen(name) + 1);
    if (!f->path) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", name);
    strcpy(f->path, name);
    cursor c = {data, 0, size, f->path, err};
    uint64_t n_t, n_kv;
    int rc;
    if (size < 4 || memcmp(data, "GGUF", 4)) {
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: not a GGUF file (bad magic)", name);
    } else if ((c.pos = 4, rc = read_u32(&c, &f->version, "header", 0))) {
    } else if (f->version != 2 && f->version != 3) {
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: GGUF version %" PRIu32 " is not supported (2 and 3 are; big-endian files are not)",
                        name, f->version);
    } else if (!(rc = read_u64(&c, &n_t, "header", 0)) && !(rc = read_u64(&c, &n_kv, "header", 0)) &&
               !(rc = parse_kvs(&c, f, n_kv))) {
        rc = parse_tensors(&c, f, n_t);
    }
    if (rc) gguf_close(f);
    return rc;
}

int gguf_open_buffer(const void *data, size_t size, const char *name, gguf_file *f, lorac_err *err) {
    memset(f, 0, sizeof *f);
    return parse_file(data, size, name, f, err);
}

int gguf_is_file(const char *path) {
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (!f) return 0;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && !memcmp(magic, "GGUF", 4);
}

int gguf_open(const char *path, gguf_file *f, lorac_err *err) {
    memset(f, 0, sizeof *f);
    int rc = lorac_map_file(path, &f->map, err);
    if (rc) return rc;
    return parse_file(f->map.data, f->map.size, path, f, err);
}

void gguf_close(gguf_file *f) {
    for (size_t i = 0; i < f->n_kv; i++) {
        free(f->kvs[i].key);
        free(f->kvs[i].arr_strs);
    }
    free(f->kvs);
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    lorac_unmap(&f->map);
    memset(f, 0, sizeof *f);
}

/* ---- lookups and typed access ---- */

const gguf_kv *gguf_find_key(const gguf_file *f, const char *key) {
    for (size_t i = 0; i < f->n_kv; i++)
        if (!strcmp(f->kvs[i].key, key)) return &f->kvs[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (size_t i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

static int is_int_type(int t) {
    return t == GGUF_U8 || t == GGUF_I8 || t == GGUF_U16 || t == GGUF_I16 || t == GGUF_U32 || t == GGUF_I32 ||
           t == GGUF_U64 || t == GGUF_I64 || t == GGUF_BOOL;
}

/* An integer of type t at p, as a sign flag and a 64-bit pattern: negative values come back in
 * *s with *neg set, others in *u. */
static void read_int(int t, const uint8_t *p, int *neg, uint64_t *u, int64_t *s) {
    *neg = 0;
    *u = 0;
    *s = 0;
    switch (t) {
    case GGUF_U8: case GGUF_BOOL: *u = p[0]; break;
    case GGUF_I8: *s = (int8_t)p[0]; break;
    case GGUF_U16: *u = (uint16_t)(p[0] | p[1] << 8); break;
    case GGUF_I16: *s = (int16_t)(uint16_t)(p[0] | p[1] << 8); break;
    case GGUF_U32: *u = le32(p); break;
    case GGUF_I32: *s = (int32_t)le32(p); break;
    case GGUF_U64: *u = le64(p); break;
    case GGUF_I64: *s = (int64_t)le64(p); break;
    default: return;
    }
    if (*s < 0) {
        *neg = 1;
    } else if (*s > 0) {
        *u = (uint64_t)*s;
    }
    if (!*neg) *s = *u > INT64_MAX ? INT64_MAX : (int64_t)*u;
}

static double read_float(int t, const uint8_t *p) {
    if (t == GGUF_F32) {
        uint32_t b = le32(p);
        float v;
        memcpy(&v, &b, 4);
        return v;
    }
    if (t == GGUF_F64) {
        uint64_t b = le64(p);
        double v;
        memcpy(&v, &b, 8);
        return v;
    }
    int neg;
    uint64_t u;
    int64_t s;
    read_int(t, p, &neg, &u, &s);
    return neg ? (double)s : (double)u;
}

/* The kv for key, LORAC_OK with *kv NULL when optional and absent. */
static int lookup(const gguf_file *f, const char *key, int required, const gguf_kv **kv, lorac_err *err) {
    *kv = gguf_find_key(f, key);
    if (!*kv && required) return lorac_fail(err, LORAC_ENOTFOUND, "%s: missing key '%s'", f->path, key);
    return LORAC_OK;
}

static int wrong_type(const gguf_file *f, const gguf_kv *kv, const char *want, lorac_err *err) {
    return lorac_fail(err, LORAC_EFORMAT, "%s: key '%s' is %s, expected %s", f->path, kv->key,
                      gguf_vtype_name(kv->type), want);
}

/* Reads an integer key whose value must lie in [lo, hi]. */
static int get_int(const gguf_file *f, const char *key, int required, int64_t lo, uint64_t hi, int *neg,
                   uint64_t *u, int64_t *s, int *found, const char *want, lorac_err *err) {
    const gguf_kv *kv;
    *found = 0;
    int rc = lookup(f, key, required, &kv, err);
    if (rc || !kv) return rc;
    if (!is_int_type(kv->type) || kv->type == GGUF_BOOL) return wrong_type(f, kv, want, err);
    read_int(kv->type, kv->data, neg, u, s);
    if ((*neg && *s < lo) || (!*neg && *u > hi))
        return lorac_fail(err, LORAC_EFORMAT, "%s: key '%s' = %s%" PRIu64 " does not fit %s", f->path, key, *neg ? "-" : "",
                          *neg ? (uint64_t)0 - (uint64_t)*s : *u, want);
    *found = 1;
    return LORAC_OK;
}

int gguf_get_u32(const gguf_file *f, const char *key, int required, uint32_t *out, lorac_err *err) {
    int neg, found;
    uint64_t u;
    int64_t s;
    int rc = get_int(f, key, required, 0, UINT32_MAX, &neg, &u, &s, &found, "u32", err);
    if (!rc && found) *out = (uint32_t)u;
    return rc;
}

int gguf_get_i32(const gguf_file *f, const char *key, int required, int32_t *out, lorac_err *err) {
    int neg, found;
    uint64_t u;
    int64_t s;
    int rc = get_int(f, key, required, INT32_MIN, INT32_MAX, &neg, &u, &s, &found, "i32", err);
    if (!rc && found) *out = (int32_t)s;
    return rc;
}

int gguf_get_u64(const gguf_file *f, const char *key, int required, uint64_t *out, lorac_err *err) {
    int neg, found;
    uint64_t u;
    int64_t s;
    int rc = get_int(f, key, required, 0, UINT64_MAX, &neg, &u, &s, &found, "u64", err);
    if (!rc && found) *out = u;
    return rc;
}

int gguf_get_f32(const gguf_file *f, const char *key, int required, float *out, lorac_err *err) {
    const gguf_kv *kv;
    int rc = lookup(f, key, required, &kv, err);
    if (rc || !kv) return rc;
    if (kv->type != GGUF_F32 && kv->type != GGUF_F64) return wrong_type(f, kv, "f32", err);
    *out = (float)read_float(kv->type, kv->data);
    return LORAC_OK;
}

int gguf_get_bool(const gguf_file *f, const char *key, int required, int *out, lorac_err *err) {
    const gguf_kv *kv;
    int rc = lookup(f, key, required, &kv, err);
    if (rc || !kv) return rc;
    if (kv->type != GGUF_BOOL) return wrong_type(f, kv, "bool", err);
    *out = kv->data[0] != 0;
    return LORAC_OK;
}

int gguf_get_str(const gguf_file *f, const char *key, int required, const char **out, size_t *len,
                 lorac_err *err) {
    const gguf_kv *kv;
    int rc = lookup(f, key, required, &kv, err);
    if (rc || !kv) return rc;
    if (kv->type != GGUF_STR) return wrong_type(f, kv, "str", err);
    *out = (const char *)kv->data;
    *len = (size_t)kv->str_len;
    return LORAC_OK;
}

int gguf_get_arr(const gguf_file *f, const char *key, int required, int elem_type, const gguf_kv **out,
                 lorac_err *err) {
    const gguf_kv *kv;
    *out = NULL;
    int rc = lookup(f, key, required, &kv, err);
    if (rc || !kv) return rc;
    if (kv->type != GGUF_ARR) return wrong_type(f, kv, "an array", err);
    if (elem_type != GGUF_VTYPE_LIMIT && (int)kv->arr_type != elem_type)
        return lorac_fail(err, LORAC_EFORMAT, "%s: key '%s' is an array of %s, expected %s", f->path, key,
                          gguf_vtype_name(kv->arr_type), gguf_vtype_name(elem_type));
    *out = kv;
    return LORAC_OK;
}

uint64_t gguf_arr_len(const gguf_kv *kv) { return kv->type == GGUF_ARR ? kv->arr_len : 0; }

const char *gguf_arr_str(const gguf_kv *kv, uint64_t i, size_t *len) {
    if (kv->type != GGUF_ARR || kv->arr_type != GGUF_STR || i >= kv->arr_len) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = (size_t)le64(kv->arr_strs[i]);
    return (const char *)kv->arr_strs[i] + 8;
}

int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i) {
    if (kv->type != GGUF_ARR || !is_int_type(kv->arr_type) || i >= kv->arr_len) return 0;
    int neg;
    uint64_t u;
    int64_t s;
    read_int(kv->arr_type, kv->data + i * VTYPES[kv->arr_type].size, &neg, &u, &s);
    return neg ? s : (int64_t)u;
}

double gguf_arr_float(const gguf_kv *kv, uint64_t i) {
    if (kv->type != GGUF_ARR || kv->arr_type == GGUF_STR || i >= kv->arr_len) return 0.0;
    return read_float(kv->arr_type, kv->data + i * VTYPES[kv->arr_type].size);
}

int64_t gguf_kv_int(const gguf_kv *kv) {
    if (!is_int_type(kv->type)) return 0;
    int neg;
    uint64_t u;
    int64_t s;
    read_int(kv->type, kv->data, &neg, &u, &s);
    return neg ? s : (int64_t)u;
}

uint64_t gguf_kv_u64(const gguf_kv *kv) { return (uint64_t)gguf_kv_int(kv); }

double gguf_kv_float(const gguf_kv *kv) {
    if (kv->type == GGUF_STR || kv->type == GGUF_ARR) return 0.0;
    return read_float(kv->type, kv->data);
}

/* ---- formatting one value as text ---- */

typedef struct sbuf {
    char *p;
    size_t n, len;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n && b->len + 1 < b->n; i++) b->p[b->len++] = s[i];
    b->p[b->len] = 0;
}

static void putf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void putf(sbuf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0) put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

static void put_str(sbuf *b, const uint8_t *s, uint64_t len, size_t max_chars) {
    put(b, "\"", 1);
    for (uint64_t i = 0; i < len && i < max_chars; i++) {
        uint8_t ch = s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            put(b, e, 2);
        } else if (ch == '\n') {
            put(b, "\\n", 2);
        } else if (ch == '\t') {
            put(b, "\\t", 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            putf(b, "\\x%02x", ch);
        } else {
            put(b, (const char *)&ch, 1);
        }
    }
    put(b, "\"", 1);
    if (len > max_chars) putf(b, "...(%" PRIu64 " bytes)", len);
}

static void put_scalar(sbuf *b, int t, const uint8_t *p) {
    if (t == GGUF_BOOL) {
        put(b, p[0] ? "true" : "false", p[0] ? 4 : 5);
    } else if (t == GGUF_F32 || t == GGUF_F64) {
        putf(b, "%.9g", read_float(t, p));
    } else {
        int neg;
        uint64_t u;
        int64_t s;
        read_int(t, p, &neg, &u, &s);
        if (neg) putf(b, "%" PRId64, s);
        else putf(b, "%" PRIu64, u);
    }
}

void gguf_kv_format(const gguf_kv *kv, char *buf, size_t n, size_t max_items, size_t max_chars) {
    if (!n) return;
    sbuf b = {buf, n, 0};
    buf[0] = 0;
    if (kv->type == GGUF_STR) {
        put_str(&b, kv->data, kv->str_len, max_chars);
    } else if (kv->type != GGUF_ARR) {
        put_scalar(&b, kv->type, kv->data);
    } else {
        putf(&b, "[%" PRIu64 "] [", kv->arr_len);
        for (uint64_t i = 0; i < kv->arr_len && i < max_items; i++) {
            if (i) put(&b, ", ", 2);
            if (kv->arr_type == GGUF_STR) {
                size_t len;
                const char *s = gguf_arr_str(kv, i, &len);
                put_str(&b, (const uint8_t *)s, len, max_chars);
            } else {
                put_scalar(&b, kv->arr_type, kv->data + i * VTYPES[kv->arr_type].size);
            }
        }
        if (kv->arr_len > max_items) put(&b, ", ...", 5);
        put(&b, "]", 1);
    }
}

/* ---- tensor data ---- */

const float *gguf_tensor_f32_view(const gguf_tensor *t) {
    if (t->type != QUANT_F32 || (uintptr_t)t->data % _Alignof(float)) return NULL;
    return (const float *)(const void *)t->data;
}

size_t gguf_tensor_row_bytes(const gguf_tensor *t) {
    size_t row = 0;
    quant_row_size(t->type, (size_t)t->ne[0], &row);
    return row;
}

int gguf_tensor_to_f32(const gguf_file *f, const gguf_tensor *t, float *out, lorac_err *err) {
    if (!quant_can_dequantize(t->type))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: tensor '%s' has type %s, which lorac cannot dequantize", f->path,
                          t->name, quant_type_name(t->type));
    int rc = quant_row_to_f32(t->type, t->data, out, t->n_elem);
    if (rc) return lorac_fail(err, rc, "%s: tensor '%s': cannot convert to f32", f->path, t->name);
    return LORAC_OK;
}
