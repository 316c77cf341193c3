/* test_peft_ref.c — interoperability with the real PEFT library (fixtures by tools/peft_ref.py,
 * peft 0.10.0 + transformers 4.40.2, on the tiny GPT-2 of tests/fixtures/gpt2/tiny/base):
 *  - PEFT-made adapters (c_attn; c_attn+c_proj+c_fc with rank_pattern/alpha_pattern in an F16
 *    file; a regex target with rsLoRA in a BF16 file; layers_to_transform with a LoRA on the tied
 *    token embedding) load in lorac with PEFT's logits: |diff| <= 2e-5 + 1e-4·|ref|, unmerged and
 *    merged (the merged wte lookup unties the head, which keeps W0 as PEFT's does); so do a
 *    bias "lora_only" adapter (PEFT 0.10 saves no bias for it), one with its c_attn biases in the
 *    file, a bias "all" adapter (every bias trained), and modules_to_save copies of the tied
 *    lm_head / wte (each unties the pair as PEFT does); lorac writes those back under PEFT's names
 *    (same logits again); a bias of the wrong shape, a missing modules_to_save tensor or a bias the
 *    config does not allow is a one-line error with the model left as it was;
 *  - the other direction: tests/fixtures/peft/lorac_written is the adapter this test writes
 *    (q,v split, mlp.c_fc, wte; made deterministically here and checked equal to the committed
 *    copy tensor by tensor, bit for bit), and PEFT's logits with it equal lorac's (same tolerance);
 *    so do the adapters `lorac combine` writes (cat, and svd truncated to rank 3, of two of the
 *    PEFT-made adapters above: per-module ranks in rank_pattern as PEFT 0.10 reads them).
 *  - Llama family (Qwen2 with q/k/v biases and tied embeddings; Llama with attention biases):
 *    bias "all", "lora_only" with its biases in the file, modules_to_save lm_head / embed_tokens
 *    give PEFT's logits unmerged, merged, after lorac's save, from a merged HF checkpoint and over
 *    an F32 GGUF of the same base (same tolerance); bad ones are one-line errors, nothing half-loaded.
 * LORAC_PEFT_WRITE=1 rewrites the committed lorac_written copy (then rerun tools/peft_ref.py). */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"

#define FIX LORAC_SOURCE_DIR "/tests/fixtures/peft"
#define BASE LORAC_SOURCE_DIR "/tests/fixtures/gpt2/tiny/base"

static st_file ref;
static int32_t ids[64];
static int B, T;

/* Logits (B,T,V) of the fixture base with the adapter in dir (merged when merge). */
static float *lorac_logits(const char *dir, int merge, int *V) {
    model *m = NULL;
    lorac_err err = {0};
    if (model_load(BASE, &FX_NO_TOK, &m, &err)) {
        CHECK(0, "base: %s", err.msg);
        return NULL;
    }
    *V = model_cfg(m)->vocab_size;
    float *out = NULL;
    int rc = model_attach_adapters(m, &dir, 1, NULL, 0, &err);
    if (!rc && merge) rc = model_train_mode(m, 0, &err);
    if (!rc) rc = (out = fx_lm_logits(m, ids, B, T, &err)) ? 0 : -1;
    CHECK(rc == 0, "%s: %s", dir, err.msg);
    model_free(m);
    return out;
}

static void compare(const char *name, const char *dir) {
    char key[128];
    snprintf(key, sizeof key, "logits.%s", name);
    const st_tensor *t = st_find(&ref, key);
    CHECK(t && t->dtype == ST_F32 && t->ndim == 3, "ref.safetensors has %s", key);
    if (!t) return;
    for (int merge = 0; merge < 2; merge++) {
        int V = 0;
        float *got = lorac_logits(dir, merge, &V);
        if (!got) continue;
        char what[160];
        snprintf(what, sizeof what, "%s (%s) vs PEFT's logits", name, merge ? "merged" : "unmerged");
        CHECK(t->numel == (size_t)B * T * V, "%s: shape", name);
        if (t->numel == (size_t)B * T * V) check_arrays_close(got, st_f32_view(t), t->numel, 2e-5, 1e-4, what);
        free(got);
    }
}

/* A merged checkpoint dir (no adapter) against PEFT's logits for name. */
static void compare_model(const char *name, const char *dir) {
    char key[128];
    snprintf(key, sizeof key, "logits.%s", name);
    const st_tensor *t = st_find(&ref, key);
    model *m = NULL;
    lorac_err err = {0};
    if (!t || model_load(dir, &FX_NO_TOK, &m, &err)) {
        CHECK(0, "%s: %s", dir, err.msg);
        return;
    }
    float *got = fx_lm_logits(m, ids, B, T, &err);
    size_t V = (size_t)model_cfg(m)->vocab_size;
    CHECK(got && t->numel == (size_t)B * T * V, "%s: %s", dir, err.msg);
    char what[160];
    snprintf(what, sizeof what, "%s (merged checkpoint) vs PEFT's logits", name);
    if (got && t->numel == (size_t)B * T * V) check_arrays_close(got, st_f32_view(t), t->numel, 2e-5, 1e-4, what);
    free(got);
    model_free(m);
}

/* The adapter lorac writes for the other direction, deterministically, into dir. */
static int write_lorac_adapter(const char *dir, lorac_err *err) {
    model *m = NULL;
    int rc = model_load(BASE, &FX_NO_TOK, &m, err);
    if (rc) return rc;
    model_lora_opts o = fx_lora_opts(2, 5, 0, "q,v,mlp.c_fc,wte");
    rc = model_add_lora(m, &o, 21, err);
    if (!rc) fx_lora_randomize(m, 0.25f, 22);
    if (!rc) rc = model_save_adapter(m, dir, err);
    model_free(m);
    return rc;
}

/* What an attach that fails must leave as it was: every registered tensor (name, shape and where
 * its values live: no tensor replaced), the tied head, no LoRA layers, and no adapter tensors held
 * (model_remove_lora refuses while an adapter's trained biases / modules_to_save are in place). */
typedef struct model_snap {
    size_t n;
    char **name;
    const float **data;
    int64_t (*shape)[2];
    int tie;
} model_snap;

static void snap_take(model *m, model_snap *s) {
    const lora_registry *reg = model_registry(m);
    s->n = reg->n;
    s->name = calloc(reg->n, sizeof *s->name);
    s->data = calloc(reg->n, sizeof *s->data);
    s->shape = calloc(reg->n, sizeof *s->shape);
    for (size_t i = 0; i < reg->n; i++) {
        s->name[i] = strdup(reg->params[i].name);
        s->data[i] = reg->params[i].data;
        s->shape[i][0] = reg->params[i].shape[0];
        s->shape[i][1] = reg->params[i].ndim > 1 ? reg->params[i].shape[1] : 0;
    }
    s->tie = model_cfg(m)->tie_word_embeddings;
}

static int snap_same(model *m, model_snap *s) {
    const lora_registry *reg = model_registry(m);
    int same = reg->n == s->n && model_cfg(m)->tie_word_embeddings == s->tie && !model_has_lora(m);
    for (size_t i = 0; same && i < reg->n; i++)
        same = !strcmp(reg->params[i].name, s->name[i]) && reg->params[i].data == s->data[i] &&
               reg->params[i].shape[0] == s->shape[i][0] &&
               (reg->params[i].ndim > 1 ? reg->params[i].shape[1] : 0) == s->shape[i][1];
    lorac_err err = {0};
    same = same && model_remove_lora(m, &err) == 0;
    for (size_t i = 0; i < s->n; i++) free(s->name[i]);
    free(s->name);
    free(s->data);
    free(s->shape);
    return same;
}

static void test_lorac_written(void) {
    lorac_err err = {0};
    char tmp[] = "/tmp/lorac_peft_ref_XXXXXX", dir[300];
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    snprintf(dir, sizeof dir, "%s/a", tmp);
    CHECK(write_lorac_adapter(dir, &err) == 0, "write: %s", err.msg);
    if (getenv("LORAC_PEFT_WRITE")) CHECK(write_lorac_adapter(FIX "/lorac_written", &err) == 0, "fixture: %s", err.msg);
    peft_adapter *mine = NULL, *committed = NULL;
    CHECK(peft_adapter_read(dir, &mine, NULL, 0, &err) == 0, "read: %s", err.msg);
    CHECK(peft_adapter_read(FIX "/lorac_written", &committed, NULL, 0, &err) == 0, "committed: %s", err.msg);
    int same = mine && committed && mine->n == committed->n;
    for (size_t i = 0; same && i < mine->n; i++) {
        const peft_tensor *c = peft_adapter_find(committed, mine->t[i].name);
        same = c && c->shape[0] == mine->t[i].shape[0] && c->shape[1] == mine->t[i].shape[1] &&
               !memcmp(c->data, mine->t[i].data, sizeof(float) * (size_t)(c->shape[0] * c->shape[1]));
    }
    CHECK(same, "the committed lorac_written adapter is what lorac writes (tensor by tensor)");
    peft_adapter_free(mine);
    peft_adapter_free(committed);
    compare("lorac_written", dir);
    /* lorac combine's output (cat, and svd truncated to rank 3) loads in PEFT with lorac's logits */
    peft_adapter *in[2] = {NULL, NULL}, *out = NULL;
    float w[2] = {0.5f, -1.0f};
    CHECK(peft_adapter_read(FIX "/qv_c_attn", &in[0], NULL, 0, &err) == 0 &&
          peft_adapter_read(FIX "/patterns_f16", &in[1], NULL, 0, &err) == 0, "read: %s", err.msg);
    for (int mode = 0; in[0] && in[1] && mode < 2; mode++) {
        const char *name = mode ? "lorac_svd" : "lorac_cat";
        char fix[512], got[512];
        snprintf(fix, sizeof fix, FIX "/%s", name);
        snprintf(got, sizeof got, "%s/%s", tmp, name);
        CHECK(peft_adapter_combine(in, w, 2, mode ? PEFT_COMBINE_SVD : PEFT_COMBINE_CAT, 3, &out, NULL, &err) == 0, "%s: %s",
              name, err.msg);
        if (!out) continue;
        CHECK(peft_adapter_write(out, got, &err) == 0, "write: %s", err.msg);
        if (getenv("LORAC_PEFT_WRITE")) CHECK(peft_adapter_write(out, fix, &err) == 0, "fixture: %s", err.msg);
        peft_adapter *c = NULL;
        CHECK(peft_adapter_read(fix, &c, NULL, 0, &err) == 0, "committed %s: %s", name, err.msg);
        int eq = c && c->n == out->n;
        for (size_t i = 0; eq && i < out->n; i++) {
            const peft_tensor *t = peft_adapter_find(c, out->t[i].name);
            eq = t && t->shape[0] == out->t[i].shape[0] && t->shape[1] == out->t[i].shape[1] &&
                 !memcmp(t->data, out->t[i].data, sizeof(float) * (size_t)(t->shape[0] * t->shape[1]));
        }
        CHECK(eq, "the committed %s is what lorac combine writes", name);
        peft_adapter_free(c);
        peft_adapter_free(out);
        out = NULL;
        compare(name, got);
    }
    peft_adapter_free(in[0]);
    peft_adapter_free(in[1]);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0, "cleanup");
}

/* Trained biases and modules_to_save copies survive lorac's save: the adapter lorac writes back
 * gives PEFT's logits again (unmerged and merged). */
static void test_extras_round_trip(void) {
    static const char *names[] = {"bias_all", "lora_only_saved", "mts_lm_head", "mts_wte"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        lorac_err err = {0};
        char tmp[] = "/tmp/lorac_peft_rt_XXXXXX", src[512], dir[300];
        CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
        snprintf(src, sizeof src, FIX "/%s", names[i]);
        snprintf(dir, sizeof dir, "%s/a", tmp);
        model *m = NULL;
        const char *spec = src;
        if (model_load(BASE, &FX_NO_TOK, &m, &err)) {
            CHECK(0, "base: %s", err.msg);
            return;
        }
        int rc = model_attach_adapters(m, &spec, 1, NULL, 0, &err);
        if (!rc) rc = model_save_adapter(m, dir, &err);
        CHECK(rc == 0, "%s: save: %s", names[i], err.msg);
        model_free(m);
        m = NULL;
        peft_adapter *a = NULL, *b = NULL;
        CHECK(peft_adapter_read(src, &a, NULL, 0, &err) == 0 && peft_adapter_read(dir, &b, NULL, 0, &err) == 0, "%s: %s",
              names[i], err.msg);
        int extras = 0, same = a && b && a->cfg.bias == b->cfg.bias && a->cfg.n_modules_to_save == b->cfg.n_modules_to_save;
        for (size_t j = 0; same && j < a->n; j++) {
            const peft_tensor *t = peft_adapter_find(b, a->t[j].name);
            extras += !strstr(a->t[j].name, ".lora_");
            same = t && t->shape[0] == a->t[j].shape[0] && t->shape[1] == a->t[j].shape[1] &&
                   !memcmp(t->data, a->t[j].data, sizeof(float) * (size_t)(t->shape[0] * t->shape[1]));
        }
        CHECK(same && extras > 0, "%s: lorac writes the trained biases / modules_to_save back under PEFT's names", names[i]);
        peft_adapter_free(a);
        peft_adapter_free(b);
        compare(names[i], dir);
        /* merged into a plain checkpoint (model_save_merged): the replaced tensors go with it */
        char merged[320];
        snprintf(merged, sizeof merged, "%s/merged", tmp);
        if (model_load(BASE, &FX_NO_TOK, &m, &err) == 0) {
            rc = model_attach_adapters(m, &spec, 1, NULL, 0, &err);
            if (!rc) rc = model_save_merged(m, merged, -1, &err);
            CHECK(rc == 0, "%s: merged: %s", names[i], err.msg);
            model_free(m);
            compare_model(names[i], merged);
        }
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
        CHECK(system(cmd) == 0, "cleanup");
    }
}

/* A copy of the adapter in fix without tensor drop (NULL: none), with tensor shrink one row short. */
static peft_adapter *altered(const char *fix, const char *drop, const char *shrink, peft_bias bias) {
    lorac_err err = {0};
    peft_adapter *a = NULL, *b = NULL;
    CHECK(peft_adapter_read(fix, &a, NULL, 0, &err) == 0, "%s: %s", fix, err.msg);
    if (!a) return NULL;
    a->cfg.bias = bias;
    CHECK(peft_adapter_new(&a->cfg, &b, &err) == 0, "new");
    for (size_t i = 0; b && i < a->n; i++) {
        const peft_tensor *t = &a->t[i];
        if (drop && strstr(t->name, drop)) continue;
        int64_t d0 = shrink && strstr(t->name, shrink) ? t->shape[0] - 1 : t->shape[0];
        CHECK(peft_adapter_add(b, t->name, d0, t->ndim == 2 ? t->shape[1] : 0, t->data, &err) == 0, "add: %s", err.msg);
    }
    peft_adapter_free(a);
    return b;
}

/* Bad trained biases / modules_to_save: one-line errors, the model left as it was. */
static void test_extras_bad(void) {
    struct { const char *fix, *drop, *shrink; peft_bias bias; const char *want; } cases[] = {
        {FIX "/bias_all", NULL, "h.1.ln_2.bias", PEFT_BIAS_ALL, "has shape"},
        {FIX "/mts_lm_head", "lm_head.weight", NULL, PEFT_BIAS_NONE, "is missing"},
        {FIX "/mts_wte", NULL, "transformer.wte.weight", PEFT_BIAS_NONE, "has shape"},
        {FIX "/bias_all", NULL, NULL, PEFT_BIAS_LORA_ONLY, "do not account for it"}, /* ln biases: not lora_only's */
        {FIX "/bias_all", NULL, NULL, PEFT_BIAS_NONE, "do not account for it"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lorac_err err = {0};
        peft_adapter *a = altered(cases[i].fix, cases[i].drop, cases[i].shrink, cases[i].bias);
        model *m = NULL;
        if (!a || model_load(BASE, &FX_NO_TOK, &m, &err)) {
            peft_adapter_free(a);
            continue;
        }
        model_snap s;
        snap_take(m, &s);
        int rc = model_peft_attach(m, a, &err);
        CHECK(rc != 0 && strstr(err.msg, cases[i].want) && !strchr(err.msg, '\n'), "bad case %zu: %s", i, err.msg);
        CHECK(snap_same(m, &s) && model_cfg(m)->tie_word_embeddings, "bad case %zu: nothing half-loaded", i);
        model_free(m);
        peft_adapter_free(a);
    }
    /* one bias under both of its names */
    lorac_err err = {0};
    peft_adapter *a = altered(FIX "/lora_only_saved", NULL, NULL, PEFT_BIAS_LORA_ONLY);
    const peft_tensor *b = a ? peft_adapter_find(a, "base_model.model.transformer.h.0.attn.c_attn.base_layer.bias") : NULL;
    model *m = NULL;
    CHECK(b && peft_adapter_add(a, "base_model.model.transformer.h.0.attn.c_attn.bias", b->shape[0], 0, b->data, &err) == 0,
          "add: %s", err.msg);
    if (b && model_load(BASE, &FX_NO_TOK, &m, &err) == 0) {
        model_snap s;
        snap_take(m, &s);
        int rc = model_peft_attach(m, a, &err);
        CHECK(rc != 0 && strstr(err.msg, "replace the same tensor"), "two names: %s", err.msg);
        CHECK(snap_same(m, &s), "two names: nothing half-loaded");
        model_free(m);
    }
    peft_adapter_free(a);
}

/* ---------------------------------------------------------------- Llama family */

static int32_t lids[64];

/* Logits (B,T,V) of the Llama model in dir (with the adapter in adapter when non-NULL; merged when merge). */
static float *llama_logits(const char *dir, const char *adapter, int merge, const char *save_to, const char *merged_to,
                           size_t *numel) {
    model *m = NULL;
    lorac_err err = {0};
    if (model_load(dir, &FX_NO_TOK, &m, &err)) {
        CHECK(0, "%s: %s", dir, err.msg);
        return NULL;
    }
    float *out = NULL;
    int rc = adapter ? model_attach_adapters(m, &adapter, 1, NULL, 0, &err) : 0;
    if (!rc && save_to) rc = model_save_adapter(m, save_to, &err);
    if (!rc && merged_to) rc = model_save_merged(m, merged_to, -1, &err);
    if (!rc && merge) rc = model_train_mode(m, 0, &err);
    if (!rc) rc = (out = fx_lm_logits(m, lids, B, T, &err)) ? 0 : -1;
    CHECK(rc == 0, "%s + %s: %s", dir, adapter ? adapter : "-", err.msg);
    if (!rc) *numel = (size_t)B * T * model_cfg(m)->vocab_size;
    model_free(m);
    return out;
}

static void llama_check(const char *name, float *got, size_t numel, const char *how) {
    char key[128], what[200];
    snprintf(key, sizeof key, "logits.%s", name);
    snprintf(what, sizeof what, "%s (%s) vs PEFT's logits", name, how);
    const st_tensor *t = st_find(&ref, key);
    CHECK(t && t->numel == numel, "ref.safetensors has %s of the right size (%s: %zu)", key, how, numel);
    if (got && t && t->numel == numel) check_arrays_close(got, st_f32_view(t), numel, 2e-5, 1e-4, what);
    free(got);
}

/* Qwen2 / Llama-with-biases adapters with trained biases or modules_to_save (tied head and
 * embedding): PEFT's logits unmerged, merged, after lorac's save (same tensors back), from a
 * merged HF checkpoint, and over the same base read from an F32 GGUF; bad ones fail in one line
 * with the model as it was. */
static void test_llama_extras(void) {
    static const struct { const char *name, *base; } cases[] = {
        {"qwen2_bias_all", "qwen2"}, {"biased_lora_only_saved", "biased"},
        {"qwen2_mts_lm_head", "qwen2"}, {"qwen2_mts_embed", "qwen2"}};
    const st_tensor *ti = st_find(&ref, "llama_input_ids");
    CHECK(ti && ti->dtype == ST_I64 && ti->numel == (size_t)B * T, "llama_input_ids");
    if (!ti || ti->numel != (size_t)B * T) return;
    for (size_t i = 0; i < ti->numel; i++) {
        int64_t v;
        memcpy(&v, ti->data + 8 * i, 8);
        lids[i] = (int32_t)v;
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char base[512], ad[512], tmp[] = "/tmp/lorac_peft_llama_XXXXXX", saved[300], merged[300];
        snprintf(base, sizeof base, LORAC_SOURCE_DIR "/tests/fixtures/llama/%s/base", cases[i].base);
        snprintf(ad, sizeof ad, FIX "/%s", cases[i].name);
        CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
        snprintf(saved, sizeof saved, "%s/a", tmp);
        snprintf(merged, sizeof merged, "%s/m", tmp);
        size_t n = 0;
        float *got = llama_logits(base, ad, 0, saved, merged, &n); /* (n is set by the call) */
        llama_check(cases[i].name, got, n, "unmerged");
        got = llama_logits(base, ad, 1, NULL, NULL, &n);
        llama_check(cases[i].name, got, n, "merged");
        got = llama_logits(base, saved, 0, NULL, NULL, &n);
        llama_check(cases[i].name, got, n, "lorac's save of it");
        got = llama_logits(merged, NULL, 0, NULL, NULL, &n);
        llama_check(cases[i].name, got, n, "merged checkpoint");
        /* the same base as an F32 GGUF (HF row order in memory after lorac's rope un-permutation) */
        char gg[512];
        snprintf(gg, sizeof gg, LORAC_SOURCE_DIR "/tests/fixtures/llama/gguf/%s.f32.gguf", cases[i].base);
        for (int merge = 0; merge < 2; merge++) {
            got = llama_logits(gg, ad, merge, NULL, NULL, &n);
            llama_check(cases[i].name, got, n, merge ? "GGUF base, merged" : "GGUF base");
        }
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
        CHECK(system(cmd) == 0, "cleanup");
    }
    struct { const char *fix, *base, *drop, *shrink; const char *want; } bad[] = {
        {FIX "/qwen2_bias_all", "qwen2", NULL, "k_proj.bias", "has shape"},
        {FIX "/qwen2_mts_lm_head", "qwen2", "lm_head.weight", NULL, "is missing"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lorac_err err = {0};
        char base[512];
        snprintf(base, sizeof base, LORAC_SOURCE_DIR "/tests/fixtures/llama/%s/base", bad[i].base);
        peft_adapter *a = altered(bad[i].fix, bad[i].drop, bad[i].shrink, PEFT_BIAS_ALL);
        model *m = NULL;
        if (!a || model_load(base, &FX_NO_TOK, &m, &err)) {
            peft_adapter_free(a);
            continue;
        }
        model_snap s;
        snap_take(m, &s);
        int rc = model_peft_attach(m, a, &err);
        CHECK(rc != 0 && strstr(err.msg, bad[i].want) && !strchr(err.msg, '\n'), "llama bad case %zu: %s", i, err.msg);
        CHECK(snap_same(m, &s) && model_cfg(m)->tie_word_embeddings, "llama bad case %zu: nothing half-loaded", i);
        model_free(m);
        peft_adapter_free(a);
    }
}

int main(void) {
    lorac_err err = {0};
    if (st_open(FIX "/ref.safetensors", &ref, &err)) {
        CHECK(0, "%s", err.msg);
        return check_summary();
    }
    const st_tensor *ti = st_find(&ref, "input_ids");
    CHECK(ti && ti->dtype == ST_I64 && ti->ndim == 2 && ti->numel <= 64, "input_ids");
    if (!ti) return check_summary();
    B = (int)ti->shape[0];
    T = (int)ti->shape[1];
    for (size_t i = 0; i < ti->numel; i++) {
        int64_t v;
        memcpy(&v, ti->data + 8 * i, 8);
        ids[i] = (int32_t)v;
    }
    static const char *names[] = {"qv_c_attn",   "patterns_f16",    "rslora_bf16", "layers_wte",
                                  "lora_only_bias", "bias_all", "lora_only_saved", "mts_lm_head", "mts_wte"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, FIX "/%s", names[i]);
        compare(names[i], dir);
    }
    test_lorac_written();
    test_extras_round_trip();
    test_extras_bad();
    test_llama_extras();
    st_close(&ref);
    return check_summary();
}
