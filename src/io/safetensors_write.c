/* safetensors writer: validates the entries, builds the header in memory, then streams the data
 * through a temporary file that is renamed into place. The header is padded with spaces so the
 * data area starts 8-byte aligned, as the Python library does. */
#include "lorac/safetensors.h"

#include <stdlib.h>
#include <string.h>

#include "io/json_internal.h"
#include "lorac/json.h"

typedef struct st_plan {
    size_t nbytes; /* bytes in the file */
    size_t numel;
} st_plan;

/* Names and metadata go into the JSON header, which must be UTF-8. */
static int is_utf8(const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = json_utf8_seq_len((const unsigned char *)s + i, n - i))) return 0;
    return 1;
}

static int cmp_str_ptr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Non-NULL keys, unique. what is "tensor name" or "metadata key". */
static int check_unique(const char *path, const char **names, size_t n, const char *what, lorac_err *err) {
    qsort(names, n, sizeof *names, cmp_str_ptr);
    for (size_t k = 1; k < n; k++)
        if (!strcmp(names[k], names[k - 1]))
            return lorac_fail(err, LORAC_EINVAL, "%s: %s '%s' given twice", path, what, names[k]);
    return LORAC_OK;
}

static int check_entries(const char *path, const st_entry *e, size_t n, const char *const *mk, const char *const *mv,
                         size_t n_meta, st_plan *plan, lorac_err *err) {
    for (size_t k = 0; k < n; k++) {
        if (!e[k].name || !e[k].name[0] || !strcmp(e[k].name, "__metadata__"))
            return lorac_fail(err, LORAC_EINVAL, "%s: tensor %zu has no usable name", path, k);
        const char *name = e[k].name;
        if (!is_utf8(name)) return lorac_fail(err, LORAC_EINVAL, "%s: tensor %zu: name is not valid UTF-8", path, k);
        if (!st_dtype_size(e[k].dtype) || !st_dtype_size(e[k].out_dtype))
            return lorac_fail(err, LORAC_EINVAL, "%s: tensor '%s': unknown dtype", path, name);
        if (e[k].out_dtype != e[k].dtype && !(e[k].dtype == ST_F32 && (e[k].out_dtype == ST_F16 || e[k].out_dtype == ST_BF16)))
            return lorac_fail(err, LORAC_EINVAL, "%s: tensor '%s': cannot convert %s to %s", path, name,
                              st_dtype_name(e[k].dtype), st_dtype_name(e[k].out_dtype));
        if (e[k].ndim < 0 || e[k].ndim > ST_MAX_DIMS)
            return lorac_fail(err, LORAC_EINVAL, "%s: tensor '%s': %d dimensions (at most %d)", path, name, e[k].ndim, ST_MAX_DIMS);
        size_t numel = 1;
        for (int d = 0; d < e[k].ndim; d++) {
            if (e[k].shape[d] < 0) return lorac_fail(err, LORAC_EINVAL, "%s: tensor '%s': negative dimension", path, name);
            if (lorac_size_mul(numel, (size_t)e[k].shape[d], &numel))
                return lorac_fail(err, LORAC_ENOMEM, "%s: tensor '%s': shape too large", path, name);
        }
        size_t in_bytes; /* the source buffer's size must be representable too */
        if (lorac_size_mul(numel, st_dtype_size(e[k].out_dtype), &plan[k].nbytes) ||
            lorac_size_mul(numel, st_dtype_size(e[k].dtype), &in_bytes))
            return lorac_fail(err, LORAC_ENOMEM, "%s: tensor '%s': shape too large", path, name);
        if (numel && !e[k].data) return lorac_fail(err, LORAC_EINVAL, "%s: tensor '%s': no data", path, name);
        plan[k].numel = numel;
    }
    for (size_t k = 0; k < n_meta; k++) {
        if (!mk[k] || !mv[k]) return lorac_fail(err, LORAC_EINVAL, "%s: metadata entry %zu is NULL", path, k);
        if (!is_utf8(mk[k]) || !is_utf8(mv[k]))
            return lorac_fail(err, LORAC_EINVAL, "%s: metadata entry %zu is not valid UTF-8", path, k);
    }
    size_t most = n > n_meta ? n : n_meta;
    const char **names = malloc((most ? most : 1) * sizeof *names);
    if (!names) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    for (size_t k = 0; k < n; k++) names[k] = e[k].name;
    int rc = check_unique(path, names, n, "tensor name", err);
    for (size_t k = 0; k < n_meta && !rc; k++) names[k] = mk[k];
    if (!rc) rc = check_unique(path, names, n_meta, "metadata key", err);
    free(names);
    return rc;
}

/* The header JSON (unpadded) into a malloc'd buffer. */
static int build_header(const char *path, const st_entry *e, const st_plan *plan, size_t n, const char *const *mk,
                        const char *const *mv, size_t n_meta, char **out, size_t *out_len, lorac_err *err) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    json_writer w;
    jw_init(&w, f, 0);
    jw_object_begin(&w);
    if (n_meta) {
        jw_key(&w, "__metadata__");
        jw_object_begin(&w);
        for (size_t k = 0; k < n_meta; k++) {
            jw_key(&w, mk[k]);
            jw_string(&w, mv[k]);
        }
        jw_object_end(&w);
    }
    size_t offset = 0;
    for (size_t k = 0; k < n; k++) {
        jw_key(&w, e[k].name);
        jw_object_begin(&w);
        jw_key(&w, "dtype");
        jw_string(&w, st_dtype_name(e[k].out_dtype));
        jw_key(&w, "shape");
        jw_array_begin(&w);
        for (int d = 0; d < e[k].ndim; d++) jw_int(&w, (long long)e[k].shape[d]);
        jw_array_end(&w);
        jw_key(&w, "data_offsets");
        jw_array_begin(&w);
        jw_int(&w, (long long)offset);
        if (lorac_size_add(offset, plan[k].nbytes, &offset) || offset > (size_t)INT64_MAX) w.error = 1;
        jw_int(&w, (long long)offset);
        jw_array_end(&w);
        jw_object_end(&w);
    }
    jw_object_end(&w);
    int bad = w.error || ferror(f);
    if (fclose(f) != 0 || bad) {
        free(buf);
        return lorac_fail(err, LORAC_ENOMEM, "%s: cannot build the header (too large?)", path);
    }
    *out = buf;
    *out_len = len;
    return LORAC_OK;
}

/* Writes one tensor's data, converting F32 to F16/BF16 in chunks. */
static int write_data(FILE *f, const st_entry *e, const st_plan *p) {
    if (e->dtype == e->out_dtype) return p->nbytes && fwrite(e->data, 1, p->nbytes, f) != p->nbytes ? -1 : 0;
    const float *src = e->data;
    uint16_t chunk[4096];
    for (size_t i = 0; i < p->numel; i += 4096) {
        size_t m = p->numel - i < 4096 ? p->numel - i : 4096;
        for (size_t j = 0; j < m; j++)
            chunk[j] = e->out_dtype == ST_F16 ? lorac_f32_to_f16(src[i + j]) : lorac_f32_to_bf16(src[i + j]);
        if (fwrite(chunk, 2, m, f) != m) return -1;
    }
    return 0;
}

int st_write(const char *path, const st_entry *entries, size_t n, const char *const *meta_keys,
             const char *const *meta_values, size_t n_meta, lorac_err *err) {
    if (!path) return lorac_fail(err, LORAC_EINVAL, "st_write: no path");
    if ((n && !entries) || (n_meta && (!meta_keys || !meta_values)))
        return lorac_fail(err, LORAC_EINVAL, "%s: st_write given no entries or metadata arrays", path);
    st_plan *plan = calloc(n ? n : 1, sizeof *plan);
    if (!plan) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    char *header = NULL;
    size_t hlen = 0;
    int rc = check_entries(path, entries, n, meta_keys, meta_values, n_meta, plan, err);
    if (!rc) rc = build_header(path, entries, plan, n, meta_keys, meta_values, n_meta, &header, &hlen, err);
    lorac_out o;
    if (!rc) rc = lorac_out_open(&o, path, err);
    if (!rc) {
        size_t padded = hlen + (8 - hlen % 8) % 8;
        uint8_t len8[8];
        for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)padded >> (8 * k));
        int bad = fwrite(len8, 1, 8, o.f) != 8 || fwrite(header, 1, hlen, o.f) != hlen;
        for (size_t k = hlen; k < padded && !bad; k++) bad = fputc(' ', o.f) == EOF;
        for (size_t k = 0; k < n && !bad; k++) bad = write_data(o.f, &entries[k], &plan[k]);
        if (bad) {
            lorac_out_abort(&o);
            rc = lorac_fail(err, LORAC_EIO, "%s: write failed", path);
        } else {
            rc = lorac_out_commit(&o, err);
        }
    }
    free(header);
    free(plan);
    return rc;
}

st_entry st_entry_f32(const char *name, int ndim, int64_t d0, int64_t d1, const float *data) {
    st_entry e;
    memset(&e, 0, sizeof e);
    e.name = name;
    e.dtype = e.out_dtype = ST_F32;
    e.ndim = ndim;
    e.shape[0] = d0;
    e.shape[1] = ndim > 1 ? d1 : 0;
    e.data = data;
    return e;
}
