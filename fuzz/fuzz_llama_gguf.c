/* libFuzzer target for loading a Llama-family model from GGUF: any input must be rejected with a
 * one-line message or give a model whose every weight is inside the file (a forward over two
 * tokens then reads them all, so ASan sees any bad offset). The loader maps a path, so each input
 * is written to a private temporary file first. Seeds: fuzz/corpus/fuzz_llama_gguf/ (the tiny
 * GGUF models of tests/fixtures/llama/gguf/). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lorac.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_llama_gguf.%ld.gguf", (long)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    size_t wrote = size ? fwrite(data, 1, size, fp) : 0;
    if (fclose(fp) != 0 || wrote != size) return 0;
    model *m = NULL;
    lorac_err err = {0};
    model_load_opts lo = {0, 0, 1};
    if (model_load(path, &lo, &m, &err) != LORAC_OK) {
        if (!err.msg[0] || strchr(err.msg, '\n')) __builtin_trap(); /* errors are one line */
        return 0;
    }
    /* small models only: a fuzzed header may describe a huge one, which the loader accepts when
     * the file really holds its tensors; skip running those */
    const model_config *c = model_cfg(m);
    if ((double)c->n_embd * c->vocab_size < 1e7 && c->n_layer <= 8) {
        model_acts *a = NULL;
        int32_t ids[2] = {0, c->vocab_size - 1};
        model_batch b = {1, 2, ids, NULL, NULL, NULL, NULL, NULL};
        if (model_acts_alloc(m, 1, 2, &a, &err) == LORAC_OK) {
            (void)model_forward(m, a, &b, 0.0f, 0, NULL, NULL, NULL, &err);
            model_acts_free(a);
        }
    }
    model_free(m);
    return 0;
}
