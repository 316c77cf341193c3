/* fixture.h — reading reference fixtures (safetensors that the tools/ reference scripts write) and running a
 * model on token batches; shared by the model tests. */
#ifndef LORAC_FIXTURE_H
#define LORAC_FIXTURE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorac.h"

/* Loading a fixture model's weights alone (fixtures carry no tokenizer files). */
static const model_load_opts FX_NO_TOK = {0, 0, 1};

static inline const st_tensor *fx_need(const st_file *f, const char *name) {
    const st_tensor *t = st_find(f, name);
    if (!t) {
        fprintf(stderr, "fixture %s lacks %s\n", f->path, name);
        exit(1);
    }
    return t;
}

/* A tensor as f32 (malloc'd); *n its element count when n is non-NULL. */
static inline float *fx_f32(const st_file *f, const char *name, size_t *n) {
    const st_tensor *t = fx_need(f, name);
    float *x = malloc(t->numel * sizeof(float) + 1);
    if (!x || st_read_f32(f, t, x, NULL)) exit(1);
    if (n) *n = t->numel;
    return x;
}

/* An I64 tensor as int32 (malloc'd). */
static inline int32_t *fx_i64(const st_file *f, const char *name, size_t *n) {
    const st_tensor *t = fx_need(f, name);
    int32_t *x = malloc(t->numel * sizeof(int32_t) + 1);
    for (size_t i = 0; i < t->numel; i++) {
        int64_t v;
        memcpy(&v, t->data + 8 * i, 8);
        x[i] = (int32_t)v;
    }
    if (n) *n = t->numel;
    return x;
}

/* relative L2 distance ||a - b|| / ||b|| */
static inline double fx_rel_l2(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return r > 0 ? sqrt(d / r) : sqrt(d);
}

/* A causal LM's forward over ids (B,T) with targets (or NULL). */
static inline int fx_lm_forward(model *m, model_acts *a, const int32_t *ids, const int32_t *targets, int B, int T,
                                float ls, int for_backward, lorac_rng *rng, float *loss, int *count, lorac_err *err) {
    model_batch b = {B, T, ids, NULL, NULL, targets, NULL, NULL};
    return model_forward(m, a, &b, ls, for_backward, rng, loss, count, err);
}

/* The LoRA tensors of the model's registry (name "<module>.lora_A"/"lora_B"), in registry order. */
static inline int fx_lora_params(model *m, lora_param **out, int max) {
    lora_registry *reg = model_registry(m);
    int n = 0;
    for (size_t i = 0; i < reg->n && n < max; i++)
        if (strstr(reg->params[i].name, ".lora_")) out[n++] = &reg->params[i];
    return n;
}

#endif
