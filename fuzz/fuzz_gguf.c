/* libFuzzer target for the GGUF reader: any input must be rejected with a one-line message or
 * parsed into infos whose every access (values, string arrays, the first row of each tensor) stays
 * inside the input. Seeds: fuzz/corpus/fuzz_gguf/ (from tools/gguf_fixtures.py). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lorac.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* an exact-size copy, so ASan catches any read past the end */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    gguf_file f;
    lorac_err err = {0};
    if (gguf_open_buffer(copy, size, "fuzz", &f, &err) != LORAC_OK) {
        if (!err.msg[0] || strchr(err.msg, '\n')) __builtin_trap(); /* errors are one line */
        free(copy);
        return 0;
    }
    char buf[1024];
    for (size_t i = 0; i < f.n_kv; i++) {
        const gguf_kv *kv = &f.kvs[i];
        gguf_kv_format(kv, buf, sizeof buf, 16, 64);
        if (kv->type == GGUF_ARR && kv->arr_len) {
            size_t len;
            const char *s = gguf_arr_str(kv, kv->arr_len - 1, &len);
            if (s && len) buf[0] = s[len - 1];
            (void)gguf_arr_int(kv, kv->arr_len - 1);
            (void)gguf_arr_float(kv, kv->arr_len - 1);
        } else {
            (void)gguf_kv_int(kv);
            (void)gguf_kv_float(kv);
        }
    }
    uint32_t u32 = 0;
    float f32 = 0;
    const char *s;
    size_t len;
    gguf_get_u32(&f, "llama.context_length", GGUF_OPTIONAL, &u32, &err);
    gguf_get_f32(&f, "llama.rope.freq_base", GGUF_OPTIONAL, &f32, &err);
    gguf_get_str(&f, "general.architecture", GGUF_OPTIONAL, &s, &len, &err);
    for (size_t i = 0; i < f.n_tensors; i++) {
        const gguf_tensor *t = &f.tensors[i];
        if (t->n_elem == 0 || t->ne[0] > 4096 || !quant_can_dequantize(t->type)) continue;
        size_t n = (size_t)t->ne[0];
        float *row = malloc(n * sizeof *row), *x = calloc(n, sizeof *x), dot;
        if (row && x) {
            quant_row_to_f32(t->type, t->data, row, n);
            quant_row_dot(t->type, t->data, x, n, &dot);
        }
        free(row);
        free(x);
    }
    gguf_close(&f);
    free(copy);
    return 0;
}
