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
                                float ls, model_fwd mode, lorac_rng *rng, float *loss, int *count, lorac_err *err) {
    model_batch b = {B, T, ids, NULL, NULL, targets, NULL, NULL};
    return model_forward(m, a, &b, ls, mode, rng, loss, count, err);
}

/* A GPT-2 config of these sizes for model_random (n_kv_head = n_head, head_dim = n_embd / n_head,
 * eos = bos = vocab - 1; the family's defaults otherwise). */
static inline model_config fx_gpt2_config(int n_layer, int n_embd, int n_head, int n_inner, int n_positions, int vocab) {
    model_config c;
    lorac_err err = {0};
    if (model_config_default("gpt2", &c, &err)) {
        fprintf(stderr, "gpt2 config: %s\n", err.msg);
        exit(1);
    }
    c.n_layer = n_layer, c.n_embd = n_embd, c.n_head = c.n_kv_head = n_head, c.head_dim = n_embd / n_head;
    c.n_inner = n_inner, c.n_positions = n_positions, c.vocab_size = vocab;
    c.eos_token_id = c.bos_token_id = vocab - 1;
    return c;
}

/* LoRA options: r, alpha, dropout and a --targets list (NULL: the family's default). */
static inline model_lora_opts fx_lora_opts(int r, float alpha, float dropout, const char *targets) {
    model_lora_opts o;
    model_lora_opts_init(&o);
    o.r = r, o.alpha = alpha, o.dropout = dropout;
    if (targets) snprintf(o.targets, sizeof o.targets, "%s", targets);
    return o;
}

/* The logits of an LM forward over ids (B,T), copied (malloc'd); NULL (with err) on failure. */
static inline float *fx_lm_logits(model *m, const int32_t *ids, int B, int T, lorac_err *err) {
    model_acts *a = NULL;
    float *out = NULL;
    int rc = model_acts_alloc(m, B, T, &a, err);
    if (!rc) rc = fx_lm_forward(m, a, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, err);
    size_t n = (size_t)B * T * model_cfg(m)->vocab_size;
    if (!rc && (out = malloc(n * sizeof(float)))) memcpy(out, model_acts_logits(a), n * sizeof(float));
    model_acts_free(a);
    return out;
}

/* The LoRA tensors of the model's registry (name "<module>.lora_A"/"lora_B"), in registry order. */
static inline int fx_lora_params(model *m, lora_param **out, int max) {
    lora_registry *reg = model_registry(m);
    int n = 0;
    for (size_t i = 0; i < reg->n && n < max; i++)
        if (strstr(reg->params[i].name, ".lora_")) out[n++] = &reg->params[i];
    return n;
}

/* Gives fresh LoRA layers the nonzero deltas training would: every lora_B, and every LoRA tensor still
 * all zero (an embedding's lora_A, loralib's init), gets scale·normal(0, 1) values drawn from seed.
 * Returns how many tensors were filled. The layers must be unmerged (training mode). */
static inline int fx_lora_randomize(model *m, float scale, uint64_t seed) {
    lora_registry *reg = model_registry(m);
    lorac_rng rng;
    lorac_rng_seed(&rng, seed);
    int n = 0;
    for (size_t i = 0; i < reg->n; i++) {
        lora_param *p = &reg->params[i];
        if (!strstr(p->name, ".lora_")) continue;
        int zero = 1;
        for (size_t j = 0; j < p->numel && zero; j++) zero = p->data[j] == 0.0f;
        if (!zero && !strstr(p->name, ".lora_B")) continue;
        for (size_t j = 0; j < p->numel; j++) p->data[j] = scale * lorac_rng_normal(&rng);
        n++;
    }
    return n;
}

/* An adapter made in memory: the model at base (weights only) with fresh LoRA layers (o; A from seed)
 * given nonzero deltas (fx_lora_randomize(scale)), written to path by model_save_adapter (a PEFT
 * directory, or a GGUF adapter for a path ending in .gguf). */
static inline int fx_make_adapter(const char *base, const model_lora_opts *o, uint64_t seed, float scale, const char *path,
                                  lorac_err *err) {
    model *m = NULL;
    int rc = model_load(base, &FX_NO_TOK, &m, err);
    if (!rc) rc = model_add_lora(m, o, seed, err);
    if (!rc && fx_lora_randomize(m, scale, seed + 100) == 0) rc = lorac_fail(err, LORAC_EINVAL, "%s: no LoRA tensors", base);
    if (!rc) rc = model_save_adapter(m, path, err);
    model_free(m);
    return rc;
}

/* Adapter i of the mixed-adapter tests over the HF base hf (i 0: q,v r 2; i 1: every projection r 3),
 * Gaussian A and nonzero B, written to dir. */
static inline int fx_make_mixed_adapter(const char *hf, int i, const char *dir, lorac_err *err) {
    model_lora_opts o = fx_lora_opts(2 + i, 4.0f + i, 0.0f, i == 1 ? "all-linear" : "q_proj,v_proj");
    o.gaussian_init = 1;
    return fx_make_adapter(hf, &o, 5 + (uint64_t)i, 0.05f, dir, err);
}

/* Removes a PEFT adapter directory that model_save_adapter wrote. */
static inline void fx_rm_adapter(const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    remove(p);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    remove(p);
    remove(dir);
}

/* Where tools/fetch_smollm2.sh puts SmolLM2-135M-Instruct Q4_1: $LORAC_SMOLLM2, else $LORAC_CACHE/,
 * $XDG_CACHE_HOME/lorac/ or ~/.cache/lorac/ + the file name. The tests that use it skip without it. */
static inline char *fx_smollm2_path(char *buf, size_t n) {
    const char *env = getenv("LORAC_SMOLLM2"), *cache = getenv("LORAC_CACHE"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME"), *file = "SmolLM2-135M-Instruct.Q4_1.gguf";
    if (env) snprintf(buf, n, "%s", env);
    else if (cache) snprintf(buf, n, "%s/%s", cache, file);
    else if (xdg) snprintf(buf, n, "%s/lorac/%s", xdg, file);
    else snprintf(buf, n, "%s/.cache/lorac/%s", home ? home : "", file);
    return buf;
}

#endif
