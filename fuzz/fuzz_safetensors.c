/* libFuzzer target for the safetensors reader, on memory (st_open_memory: no disk).
 * Any input must be rejected with one line that names it, or accepted with every tensor inside
 * the input, findable by name, and (for float dtypes) convertible to f32. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file f;
    lorac_err err = {0};
    if (st_open_memory(data, size, "fuzz", &f, &err)) {
        if (strncmp(err.msg, "fuzz: ", 6) || strchr(err.msg, '\n') || f.tensors || f.priv) abort();
        return 0;
    }
    size_t total = 0;
    for (size_t i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        size_t bytes = t->numel * st_dtype_size(t->dtype);
        if (t->data < data + 8 || t->data + bytes > data + size) abort();
        const st_tensor *found = st_find(&f, t->name);
        if (!found || strcmp(found->name, t->name)) abort();
        total += bytes;
        if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16 || t->dtype == ST_F64) {
            float *out = malloc(t->numel ? t->numel * sizeof *out : 1);
            if (!out) abort();
            if (st_read_f32(&f, t, out, &err)) abort();
            const float *view = st_f32_view(t);
            if (view && t->numel && memcmp(view, out, t->numel * sizeof *out)) abort();
            free(out);
        }
    }
    /* tensors do not overlap, so together they fit in the input */
    if (total > size) abort();
    for (size_t i = 0; i < f.n_meta; i++)
        if (st_meta(&f, f.meta_keys[i]) == NULL) abort();
    st_close(&f);
    return 0;
}
