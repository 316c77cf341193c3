/* test_peft_ref.c — interoperability with the real PEFT library (fixtures by tools/peft_ref.py,
 * peft 0.10.0 + transformers 4.40.2, on the tiny GPT-2 of tests/fixtures/gpt2/tiny/base):
 *  - PEFT-made adapters (c_attn; c_attn+c_proj+c_fc with rank_pattern/alpha_pattern in an F16
 *    file; a regex target with rsLoRA in a BF16 file; layers_to_transform with a LoRA on the tied
 *    token embedding) load in lorac with PEFT's logits: |diff| <= 2e-5 + 1e-4·|ref|, unmerged and
 *    merged (the merged wte lookup unties the head, which keeps W0 as PEFT's does); so does a
 *    bias "lora_only" adapter (PEFT 0.10 saves no bias for it); bias "all" is refused cleanly;
 *  - the other direction: tests/fixtures/peft/lorac_written is the adapter this test writes
 *    (q,v split, mlp.c_fc, wte; made deterministically here and checked equal to the committed
 *    copy tensor by tensor, bit for bit), and PEFT's logits with it equal lorac's (same tolerance);
 *    so do the adapters `lorac combine` writes (cat, and svd truncated to rank 3, of two of the
 *    PEFT-made adapters above: per-module ranks in rank_pattern as PEFT 0.10 reads them).
 * LORAC_PEFT_WRITE=1 rewrites the committed lorac_written copy (then rerun tools/peft_ref.py). */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "lorac.h"
#include "lorac/gpt2.h"
#include "lorac/peft.h"
#include "lorac/safetensors.h"

#define FIX LORAC_SOURCE_DIR "/tests/fixtures/peft"
#define BASE LORAC_SOURCE_DIR "/tests/fixtures/gpt2/tiny/base"

static st_file ref;
static int32_t ids[64];
static int B, T;

/* Logits (B,T,V) of the fixture base with the adapter in dir (merged when merge). */
static float *lorac_logits(const char *dir, int merge, int *V) {
    gpt2_model m;
    lorac_err err = {0};
    if (gpt2_model_load(BASE, &m, &err)) {
        CHECK(0, "base: %s", err.msg);
        return NULL;
    }
    *V = m.cfg.vocab_size;
    float *out = NULL;
    gpt2_acts *a = NULL;
    int rc = gpt2_peft_load(&m, dir, NULL, 0, &err);
    if (!rc && merge) rc = gpt2_model_train_mode(&m, 0, &err);
    if (!rc) rc = gpt2_acts_alloc(&m, B, T, &a, &err);
    if (!rc) rc = gpt2_forward(&m, a, ids, NULL, B, T, 0, 0, NULL, NULL, NULL, &err);
    CHECK(rc == 0, "%s: %s", dir, err.msg);
    if (!rc) {
        out = malloc(sizeof(float) * (size_t)B * T * *V);
        memcpy(out, gpt2_acts_logits(a), sizeof(float) * (size_t)B * T * *V);
    }
    gpt2_acts_free(a);
    gpt2_model_free(&m);
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

/* The adapter lorac writes for the other direction, deterministically, into dir. */
static int write_lorac_adapter(const char *dir, lorac_err *err) {
    gpt2_model m;
    int rc = gpt2_model_load(BASE, &m, err);
    if (rc) return rc;
    gpt2_lora_opts o;
    gpt2_lora_opts_default(&o);
    o.r = 2, o.alpha = 5, o.dropout = 0, o.mlp_fc = 1, o.wte = 1;
    rc = gpt2_model_add_lora(&m, &o, 21, err);
    lorac_rng rng;
    lorac_rng_seed(&rng, 22);
    for (size_t i = 0; !rc && i < m.reg.n; i++) {
        lora_param *p = &m.reg.params[i];
        if (strstr(p->name, "lora_B") || strstr(p->name, "wte.lora_A"))
            for (size_t j = 0; j < p->numel; j++) p->data[j] = 0.25f * lorac_rng_normal(&rng);
    }
    if (!rc) rc = gpt2_peft_save(&m, dir, err);
    gpt2_model_free(&m);
    return rc;
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
    static const char *names[] = {"qv_c_attn", "patterns_f16", "rslora_bf16", "layers_wte", "lora_only_bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, FIX "/%s", names[i]);
        compare(names[i], dir);
    }
    test_lorac_written();
    /* bias "all": PEFT saved every bias of the model; lorac refuses it and attaches nothing */
    gpt2_model m;
    if (gpt2_model_load(BASE, &m, &err) == 0) {
        int rc = gpt2_peft_load(&m, FIX "/bias_all", NULL, 0, &err);
        CHECK(rc == LORAC_EUNSUPPORTED && strstr(err.msg, "bias \"all\"") && !strchr(err.msg, '\n') && !m.has_lora,
              "bias all: %s", err.msg);
        gpt2_model_free(&m);
    }
    st_close(&ref);
    return check_summary();
}
