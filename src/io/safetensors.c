/* safetensors reader: maps the file, validates the whole header before anything is returned.
 *
 * Checks, in order: the 8-byte header length fits the file and a sane limit; the header is a JSON
 * object; each tensor entry has a known dtype, a shape of at most ST_MAX_DIMS non-negative integers
 * whose product (times the item size) does not overflow, and data_offsets [begin, end] inside the
 * data area that hold exactly that many bytes; no two non-empty tensors overlap; __metadata__ maps
 * strings to strings. Tensor data is little-endian, as the format specifies.
 */
#include "lorac/safetensors.h"

#include <stdlib.h>
#include <string.h>

#include "lorac/json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "lorac's safetensors reader assumes a little-endian host"
#endif

#define ST_MAX_HEADER ((uint64_t)100 << 20) /* the Python library's limit is 100 MB too */

typedef struct st_name_ix {
    const char *name;
    size_t index;
} st_name_ix;

typedef struct st_priv {
    json_doc *doc;       /* owns the names and metadata strings */
    st_name_ix *by_name; /* tensors sorted by name, for st_find */
} st_priv;

static const char *const dtype_names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"};
static const size_t dtype_sizes[] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};
#define ST_N_DTYPES (sizeof dtype_sizes / sizeof dtype_sizes[0])

const char *st_dtype_name(st_dtype t) { return (unsigned)t < ST_N_DTYPES ? dtype_names[t] : "?"; }
size_t st_dtype_size(st_dtype t) { return (unsigned)t < ST_N_DTYPES ? dtype_sizes[t] : 0; }

static int dtype_from_name(const char *s, st_dtype *out) {
    for (size_t k = 0; k < ST_N_DTYPES; k++)
        if (!strcmp(s, dtype_names[k])) {
            *out = (st_dtype)k;
            return 0;
        }
    return -1;
}

/* dtypes other safetensors writers produce that lorac does not read */
static int dtype_is_known_unsupported(const char *s) {
    static const char *const other[] = {"U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3",
                                        "F6_E3M2", "F4", "C64"};
    for (size_t k = 0; k < sizeof other / sizeof other[0]; k++)
        if (!strcmp(s, other[k])) return 1;
    return 0;
}

/* "[2, 3]" into buf, for messages. */
static const char *shape_str(const int64_t *shape, int ndim, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && n < cap; d++) n += (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}

/* Reads one tensor entry; data_size is the data area's size. Fills t and its byte range. */
static int parse_tensor(const char *path, const char *name, const json_value *v, const uint8_t *data_area,
                        size_t data_size, st_tensor *t, size_t *begin_out, size_t *end_out, lorac_err *err) {
    if (json_kind(v) != JSON_OBJECT) return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s': entry is not a JSON object", path, name);
    const json_value *dt = json_get(v, "dtype");
    if (json_kind(dt) != JSON_STRING)
        return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s': dtype is missing or not a string", path, name);
    if (dtype_from_name(json_str(dt), &t->dtype)) {
        if (dtype_is_known_unsupported(json_str(dt)))
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: tensor '%s': dtype '%s' is not supported", path, name, json_str(dt));
        return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s': unknown dtype '%.64s'", path, name, json_str(dt));
    }
    const json_value *sh = json_get(v, "shape");
    if (json_kind(sh) != JSON_ARRAY)
        return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s': shape is missing or not an array", path, name);
    if (json_len(sh) > ST_MAX_DIMS)
        return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s': shape has %zu dimensions (at most %d)", path, name,
                          json_len(sh), ST_MAX_DIMS);
    t->ndim = (int)json_len(sh);
    int has_zero = 0;
    for (int d = 0; d < t->ndim; d++) {
        long long x;
        if (!json_int_exact(json_at(sh, (size_t)d), &x) || x < 0)
            return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s': shape must hold non-negative integers", path, name);
        t->shape[d] = x;
        has_zero |= x == 0;
    }
    size_t numel = has_zero ? 0 : 1, nbytes = 0; /* a zero dimension makes the product 0 */
    int overflow = 0;
    for (int d = 0; d < t->ndim && !has_zero; d++) overflow |= lorac_size_mul(numel, (size_t)t->shape[d], &numel);
    char sbuf[256];
    if (overflow || lorac_size_mul(numel, st_dtype_size(t->dtype), &nbytes))
        return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s': shape %s is too large (its size overflows)", path, name,
                          shape_str(t->shape, t->ndim, sbuf, sizeof sbuf));
    const json_value *off = json_get(v, "data_offsets");
    long long b, e;
    if (json_kind(off) != JSON_ARRAY || json_len(off) != 2 || !json_int_exact(json_at(off, 0), &b) ||
        !json_int_exact(json_at(off, 1), &e) || b < 0 || e < 0)
        return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s': data_offsets must be [begin, end], two non-negative integers",
                          path, name);
    if (b > e)
        return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] end before they begin", path, name, b, e);
    if ((unsigned long long)e > data_size)
        return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] past the end of the data area (%zu bytes)",
                          path, name, b, e, data_size);
    if ((size_t)(e - b) != nbytes)
        return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] hold %lld bytes but %s shape %s needs %zu",
                          path, name, b, e, e - b, st_dtype_name(t->dtype), shape_str(t->shape, t->ndim, sbuf, sizeof sbuf), nbytes);
    t->numel = numel;
    t->data = data_area + b;
    *begin_out = (size_t)b;
    *end_out = (size_t)e;
    return LORAC_OK;
}

static int parse_metadata(const char *path, const json_value *m, st_file *f, lorac_err *err) {
    if (json_kind(m) != JSON_OBJECT) return lorac_fail(err, LORAC_EFORMAT, "%s: __metadata__ is not a JSON object", path);
    size_t n = json_len(m);
    if (!n) return LORAC_OK;
    f->meta_keys = calloc(n, sizeof *f->meta_keys);
    f->meta_values = calloc(n, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    for (size_t k = 0; k < n; k++) {
        const json_value *v = json_at(m, k);
        if (json_kind(v) != JSON_STRING)
            return lorac_fail(err, LORAC_EFORMAT, "%s: __metadata__ value for '%s' is not a string", path, json_key_at(m, k));
        if (strlen(json_key_at(m, k)) != json_key_len_at(m, k) || strlen(json_str(v)) != json_str_len(v))
            return lorac_fail(err, LORAC_EFORMAT, "%s: __metadata__ entry '%s' contains a NUL character", path, json_key_at(m, k));
        f->meta_keys[k] = (char *)json_key_at(m, k);
        f->meta_values[k] = (char *)json_str(v);
    }
    f->n_meta = n;
    return LORAC_OK;
}

/* For sorting tensor indices by name (st_find, duplicates) and by byte range (overlaps). */
typedef struct st_range {
    size_t begin, end, index;
} st_range;

static int cmp_by_name(const void *a, const void *b) {
    return strcmp(((const st_name_ix *)a)->name, ((const st_name_ix *)b)->name);
}
static int cmp_range(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int parse_header(const char *path, const uint8_t *data, size_t size, st_file *f, lorac_err *err) {
    if (size < 8)
        return lorac_fail(err, LORAC_EFORMAT, "%s: truncated: %zu bytes, too short for the 8-byte header length", path, size);
    uint64_t n = 0;
    for (int k = 7; k >= 0; k--) n = n << 8 | data[k];
    if (n > size - 8)
        return lorac_fail(err, LORAC_EFORMAT, "%s: header length %llu is past the end of the file (%zu bytes)", path,
                          (unsigned long long)n, size);
    if (n > ST_MAX_HEADER)
        return lorac_fail(err, LORAC_EFORMAT, "%s: header length %llu exceeds the %llu-byte limit", path,
                          (unsigned long long)n, (unsigned long long)ST_MAX_HEADER);
    st_priv *priv = f->priv;
    char name[4200];
    snprintf(name, sizeof name, "%s: header", path);
    int rc = json_parse((const char *)data + 8, (size_t)n, name, 1, &priv->doc, err);
    if (rc) return rc;
    const json_value *root = json_root(priv->doc);
    if (json_kind(root) != JSON_OBJECT) return lorac_fail(err, LORAC_EFORMAT, "%s: header is not a JSON object", path);
    size_t count = json_len(root), n_tensors = 0;
    const uint8_t *data_area = data + 8 + n;
    size_t data_size = size - 8 - (size_t)n;
    f->tensors = calloc(count ? count : 1, sizeof *f->tensors);
    st_range *ranges = calloc(count ? count : 1, sizeof *ranges);
    priv->by_name = calloc(count ? count : 1, sizeof *priv->by_name);
    if (!f->tensors || !ranges || !priv->by_name) {
        free(ranges);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    }
    int seen_meta = 0;
    for (size_t k = 0; k < count && !rc; k++) {
        const char *key = json_key_at(root, k);
        if (strlen(key) != json_key_len_at(root, k)) {
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: a tensor name contains a NUL character", path);
        } else if (!strcmp(key, "__metadata__")) {
            rc = seen_meta++ ? lorac_fail(err, LORAC_EFORMAT, "%s: __metadata__ appears twice", path)
                             : parse_metadata(path, json_at(root, k), f, err);
        } else {
            st_tensor *t = &f->tensors[n_tensors];
            t->name = key;
            ranges[n_tensors].index = n_tensors;
            rc = parse_tensor(path, key, json_at(root, k), data_area, data_size, t, &ranges[n_tensors].begin,
                              &ranges[n_tensors].end, err);
            n_tensors++;
        }
    }
    if (rc) {
        free(ranges);
        return rc;
    }
    f->n_tensors = n_tensors;
    for (size_t k = 0; k < n_tensors; k++) {
        priv->by_name[k].name = f->tensors[k].name;
        priv->by_name[k].index = k;
    }
    qsort(priv->by_name, n_tensors, sizeof *priv->by_name, cmp_by_name);
    for (size_t k = 1; k < n_tensors && !rc; k++)
        if (!strcmp(priv->by_name[k].name, priv->by_name[k - 1].name))
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s' appears twice in the header", path, priv->by_name[k].name);
    /* empty tensors take no bytes, so they overlap nothing */
    qsort(ranges, n_tensors, sizeof *ranges, cmp_range);
    const st_range *last = NULL;
    for (size_t k = 0; k < n_tensors && !rc; k++) {
        const st_range *r = &ranges[k];
        if (r->begin == r->end) continue;
        if (last && r->begin < last->end)
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: tensors '%s' [%zu, %zu] and '%s' [%zu, %zu] overlap", path,
                            f->tensors[last->index].name, last->begin, last->end, f->tensors[r->index].name, r->begin, r->end);
        if (!last || r->end > last->end) last = r;
    }
    free(ranges);
    return rc;
}

int st_open_memory(const void *data, size_t size, const char *name, st_file *f, lorac_err *err) {
    memset(f, 0, sizeof *f);
    if (!name) name = "<memory>";
    f->path = malloc(strlen(name) + 1);
    f->priv = calloc(1, sizeof(st_priv));
    if (!f->path || !f->priv) {
        st_close(f);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", name);
    }
    strcpy(f->path, name);
    int rc = parse_header(f->path, data, data ? size : 0, f, err);
    if (rc) st_close(f);
    return rc;
}

int st_open(const char *path, st_file *f, lorac_err *err) {
    memset(f, 0, sizeof *f);
    lorac_map map;
    int rc = lorac_map_file(path, &map, err);
    if (rc) return rc;
    rc = st_open_memory(map.data, map.size, path, f, err);
    if (rc) {
        lorac_unmap(&map);
        return rc;
    }
    f->map = map;
    return LORAC_OK;
}

void st_close(st_file *f) {
    if (!f) return;
    st_priv *priv = f->priv;
    if (priv) {
        json_free(priv->doc);
        free(priv->by_name);
        free(priv);
    }
    lorac_unmap(&f->map);
    free(f->path);
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    const st_priv *priv = f ? f->priv : NULL;
    if (!priv || !name) return NULL;
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, priv->by_name[mid].name);
        if (!c) return &f->tensors[priv->by_name[mid].index];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const char *st_meta(const st_file *f, const char *key) {
    for (size_t k = 0; f && key && k < f->n_meta; k++)
        if (!strcmp(f->meta_keys[k], key)) return f->meta_values[k];
    return NULL;
}

int st_read_f32(const st_file *f, const st_tensor *t, float *out, lorac_err *err) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case ST_F32:
        if (t->numel) memcpy(out, p, t->numel * 4);
        return LORAC_OK;
    case ST_F16:
    case ST_BF16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = t->dtype == ST_F16 ? lorac_f16_to_f32(h) : lorac_bf16_to_f32(h);
        }
        return LORAC_OK;
    case ST_F64:
        for (size_t i = 0; i < t->numel; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        return LORAC_OK;
    default:
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: tensor '%s' has dtype %s, not a float type",
                          f && f->path ? f->path : "safetensors", t->name, st_dtype_name(t->dtype));
    }
}

const float *st_f32_view(const st_tensor *t) {
    if (!t || t->dtype != ST_F32 || ((uintptr_t)t->data & 3)) return NULL;
    return (const float *)(const void *)t->data;
}
