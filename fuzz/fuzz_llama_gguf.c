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
    llama_model m;
    lorac_err err = {0};
    if (llama_model_load_gguf(path, &m, &err) != LORAC_OK) {
        if (!err.msg[0] || strchr(err.msg, '\n')) __builtin_trap(); /* errors are one line */
        return 0;
    }
    /* small models only: a fuzzed header may describe a huge one, which the loader accepts when
     * the file really holds its tensors; skip running those */
    if ((double)m.cfg.n_embd * m.cfg.vocab_size < 1e7 && m.cfg.n_layer <= 8) {
        llama_acts *a = NULL;
        int32_t ids[2] = {0, m.cfg.vocab_size - 1};
        float loss;
        int count;
        if (llama_acts_alloc(&m, 1, 2, &a, &err) == LORAC_OK) {
            (void)llama_forward(&m, a, ids, NULL, 1, 2, 0.0f, 0, NULL, &loss, &count, &err);
            llama_acts_free(a);
        }
    }
    llama_model_free(&m);
    return 0;
}
