/* test_multi_adapter.c — several adapters over one GPT-2 base (model_adapter_set) and mixed-adapter
 * batches in the KV-cache session, on a tiny random model:
 *  - activating an adapter merged gives the logits of a model that loaded only that adapter and
 *    merged it (bit for bit: the same fused merge; within 1e-5 + 1e-5·|ref| for an adapter with a
 *    wte LoRA, which a set keeps unmerged), and again after switching away and back; the
 *    unmerged activation agrees within 1e-5 + 1e-5·|ref|; activating none gives the base logits
 *    bit for bit and W0 was never written;
 *  - a mixed batch (slots with adapter 0, none, adapter 1; prefill, then decode steps, then a
 *    beam-style reorder) gives, slot by slot, the logits of running that sequence alone with its
 *    adapter: |diff| <= 1e-5 + 1e-4·|ref| (the base GEMM runs over a different number of rows);
 *  - kept merged weights (model_adapter_set_keep_merged): every merged switch gives the same bits as
 *    the shared buffer, a trained adapter's copy is recomputed, none gives the base bits;
 *  - bad ids, a mixed step while an adapter is active, an adapter with a trained bias: one-line errors. */
#include <unistd.h>

#include "check.h"
#include "fixture.h"

enum { B = 2, T = 8, P = 5, STEPS = 3, SLOTS = 3 };

/* 2 layers, C 16, 2 heads, I 64, 32 positions, V 40 (eos = bos = 39), LayerNorm eps 1e-5, gelu_new */
static model_config tiny(void) { return fx_gpt2_config(2, 16, 2, 64, 32, 40); }

static int32_t ids[B * T];

static peft_adapter *make_adapter(const char *dir, const model_lora_opts *o, uint64_t seed) {
    model_config c = tiny();
    model *m = NULL;
    lorac_err err = {0};
    CHECK(model_random(&c, 7, &m, &err) == 0 && model_add_lora(m, o, seed, &err) == 0, "lora: %s", err.msg);
    CHECK(m && fx_lora_randomize(m, 0.2f, seed + 100) > 0, "nonzero deltas");
    CHECK(m && model_save_adapter(m, dir, &err) == 0, "save: %s", err.msg);
    model_free(m);
    peft_adapter *a = NULL;
    CHECK(peft_adapter_read(dir, &a, NULL, 0, &err) == 0, "read: %s", err.msg);
    return a;
}

static float *logits(model *m) {
    lorac_err err = {0};
    float *out = fx_lm_logits(m, ids, B, T, &err);
    CHECK(out != NULL, "fwd: %s", err.msg);
    return out ? out : calloc((size_t)B * T * model_cfg(m)->vocab_size, sizeof(float));
}

/* Layer 0's c_attn base weight W0 (malloc'd, *n its element count). */
static float *c_attn_w0(const model *m, size_t *n) {
    lorac_err err = {0};
    float *w = NULL;
    int rows = 0, cols = 0;
    CHECK(model_linear_f32(m, "transformer.h.0.attn.c_attn", &w, &rows, &cols, &err) == 0, "W0: %s", err.msg);
    *n = (size_t)rows * cols;
    return w;
}

static int same_bits(const float *x, const float *y, size_t n) { return x && y && !memcmp(x, y, n * sizeof *x); }

/* Logits of a model holding only adapter a, merged (train mode 0). */
static float *reference(const peft_adapter *a) {
    model_config c = tiny();
    model *m = NULL;
    lorac_err err = {0};
    CHECK(model_random(&c, 7, &m, &err) == 0, "random: %s", err.msg);
    CHECK(model_peft_attach(m, a, &err) == 0 && model_train_mode(m, 0, &err) == 0, "ref: %s", err.msg);
    float *l = logits(m);
    model_free(m);
    return l;
}

static void test_switching(model *m, model_adapter_set *set, peft_adapter *const *ads) {
    lorac_err err = {0};
    size_t n = (size_t)B * T * model_cfg(m)->vocab_size, nw = 0;
    float *w0 = c_attn_w0(m, &nw), *base = logits(m), *w1;
    float *r0 = reference(ads[0]), *r1 = reference(ads[1]);
    CHECK(model_adapter_set_activate(set, 0, 1, &err) == 0, "activate 0: %s", err.msg);
    float *a0 = logits(m);
    CHECK(!memcmp(a0, r0, n * sizeof(float)), "adapter 0 merged == a model with only adapter 0, merged");
    CHECK(model_adapter_set_activate(set, 1, 1, &err) == 0, "activate 1: %s", err.msg);
    float *a1 = logits(m);
    /* (adapter 1's wte LoRA stays unmerged in a set: a lookup needs no merged (V,C) copy) */
    check_arrays_close(a1, r1, n, 1e-5, 1e-5, "adapter 1 merged (after 0) vs only adapter 1");
    CHECK(model_adapter_set_activate(set, 0, 1, &err) == 0, "activate 0 again");
    float *a0b = logits(m);
    CHECK(!memcmp(a0b, a0, n * sizeof(float)), "switching back gives the same bits");
    CHECK(model_adapter_set_activate(set, 1, 0, &err) == 0, "activate 1 unmerged");
    float *a1u = logits(m);
    check_arrays_close(a1u, r1, n, 1e-5, 1e-5, "adapter 1 unmerged vs merged");
    CHECK(model_adapter_set_activate(set, -1, 0, &err) == 0 && !model_has_lora(m), "none");
    float *b2 = logits(m);
    CHECK(!memcmp(b2, base, n * sizeof(float)), "no adapter: the base logits bit for bit");
    w1 = c_attn_w0(m, &nw);
    CHECK(nw == (size_t)16 * 3 * 16 && same_bits(w0, w1, nw), "W0 never written");
    free(w1);
    CHECK(model_adapter_set_activate(set, 2, 1, &err) == LORAC_EINVAL && !strchr(err.msg, '\n'), "bad id: %s", err.msg);
    free(w0); free(base); free(r0); free(r1); free(a0); free(a1); free(a0b); free(a1u); free(b2);
}

/* Runs sequence q alone (its adapter activated unmerged) for prompt + steps, logits per call. */
/* model_adapter_set_keep_merged: each adapter's own merged weights, kept: every merged switch (first,
 * pointer-swap, after an unmerged activation, after turning it off) gives the bits of the shared
 * reused buffer; none gives the base bits and W0 was never written. A set refuses an adapter
 * with a trained bias (it swaps LoRA layers only). */
static void test_resident(model *m, model_adapter_set *set, const peft_adapter *a0) {
    lorac_err err = {0};
    size_t n = (size_t)B * T * model_cfg(m)->vocab_size, nw = 0;
    float *w0 = c_attn_w0(m, &nw), *base = logits(m), *x[2], *y, *w1;
    for (int id = 0; id < 2; id++) {
        CHECK(model_adapter_set_activate(set, id, 1, &err) == 0, "activate %d: %s", id, err.msg);
        x[id] = logits(m);
    }
    CHECK(model_adapter_set_keep_merged(set, 1, &err) == 0, "keep merged: %s", err.msg);
    static const int seq[][2] = {{0, 1}, {1, 1}, {0, 1}, {1, 1}, {1, 0}, {0, 1}, {1, 1}};
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        CHECK(model_adapter_set_activate(set, seq[i][0], seq[i][1], &err) == 0, "activate: %s", err.msg);
        y = logits(m);
        if (seq[i][1]) CHECK(!memcmp(y, x[seq[i][0]], n * sizeof(float)), "resident switch %zu: the same bits", i);
        free(y);
    }
    /* training the active adapter unmerges it: its kept copy is recomputed on the next merge */
    CHECK(model_train_mode(m, 1, &err) == 0, "train mode");
    lora_registry *reg = model_registry(m);
    const lora_param *fcB = lora_registry_find(reg, "transformer.h.0.mlp.c_fc.lora_B");
    CHECK(fcB != NULL, "adapter 1 has LoRA on layer 0's c_fc");
    if (!fcB) goto out;
    float *fcB0 = fcB->data, keep = fcB0[0];
    fcB0[0] += 0.5f;
    CHECK(model_adapter_set_activate(set, 0, 1, &err) == 0 && model_adapter_set_activate(set, 1, 1, &err) == 0, "switch");
    y = logits(m);
    CHECK(memcmp(y, x[1], n * sizeof(float)) != 0, "the trained adapter's kept copy was not reused");
    free(y);
    fcB0[0] = keep;
    CHECK(model_train_mode(m, 1, &err) == 0 && model_adapter_set_activate(set, 1, 1, &err) == 0, "switch");
    y = logits(m);
    CHECK(!memcmp(y, x[1], n * sizeof(float)), "restored: the same bits again");
    free(y);
    CHECK(model_adapter_set_keep_merged(set, 0, &err) == 0, "keep merged off: %s", err.msg);
    y = logits(m);
    CHECK(!memcmp(y, x[1], n * sizeof(float)), "turning it off keeps the active adapter, same bits");
    free(y);
    CHECK(model_adapter_set_activate(set, -1, 0, &err) == 0, "none");
    y = logits(m);
    w1 = c_attn_w0(m, &nw);
    CHECK(!memcmp(y, base, n * sizeof(float)) && same_bits(w0, w1, nw), "none: base bits, W0 never written");
    free(y);
    free(w1);
    peft_adapter *bad = NULL;
    CHECK(peft_adapter_new(&a0->cfg, &bad, &err) == 0, "new");
    for (size_t i = 0; bad && i < a0->n; i++)
        peft_adapter_add(bad, a0->t[i].name, a0->t[i].shape[0], a0->t[i].ndim == 2 ? a0->t[i].shape[1] : 0, a0->t[i].data, &err);
    if (bad) bad->cfg.bias = PEFT_BIAS_ALL;
    float zero[64] = {0};
    CHECK(bad && peft_adapter_add(bad, "base_model.model.transformer.h.0.ln_1.bias", model_cfg(m)->n_embd, 0, zero, &err) == 0,
          "add bias");
    int id = -1, nb = model_adapter_set_count(set);
    CHECK(bad && model_adapter_set_add(set, bad, &id, &err) == LORAC_EUNSUPPORTED && !strchr(err.msg, '\n') &&
              model_adapter_set_count(set) == nb && !model_has_lora(m),
          "a set refuses a trained bias: %s", err.msg);
    peft_adapter_free(bad);
out:
    free(w0); free(base); free(x[0]); free(x[1]);
}

static void single_run(model *m, model_adapter_set *set, int id, const int32_t *prompt, const int32_t *next,
                       float *out /* (1 + STEPS, V) */) {
    lorac_err err = {0};
    int V = model_cfg(m)->vocab_size;
    model_session *s = NULL;
    CHECK(model_adapter_set_activate(set, id, 0, &err) == 0, "activate %d: %s", id, err.msg);
    CHECK(model_session_new(m, &s, &err) == 0 && model_session_begin(s, 1, 16, &err) == 0, "session: %s", err.msg);
    CHECK(model_session_step(s, prompt, 1, P, out, &err) == 0, "prefill: %s", err.msg);
    for (int t = 0; t < STEPS; t++) CHECK(model_session_step(s, &next[t], 1, 1, out + (size_t)(t + 1) * V, &err) == 0, "step");
    model_session_free(s);
    model_adapter_set_activate(set, -1, 0, &err);
}

static void test_mixed(model *m, model_adapter_set *set) {
    lorac_err err = {0};
    int V = model_cfg(m)->vocab_size, slot_ids[SLOTS] = {0, -1, 1};
    int32_t prompt[SLOTS * P], next[SLOTS][STEPS];
    for (int i = 0; i < SLOTS * P; i++) prompt[i] = (i * 11 + 5) % 39;
    for (int q = 0; q < SLOTS; q++)
        for (int t = 0; t < STEPS; t++) next[q][t] = (q * 7 + t * 3 + 1) % 39;
    float *want = malloc(sizeof(float) * SLOTS * (1 + STEPS) * V);
    for (int q = 0; q < SLOTS; q++) single_run(m, set, slot_ids[q], prompt + q * P, next[q], want + (size_t)q * (1 + STEPS) * V);

    model_session *s = NULL;
    float *got = malloc(sizeof(float) * SLOTS * V);
    CHECK(model_session_new(m, &s, &err) == 0 && model_session_begin(s, SLOTS, 16, &err) == 0, "session: %s", err.msg);
    int bad[1] = {7};
    CHECK(model_session_use_adapters(s, set, bad, 1, &err) == LORAC_EINVAL, "bad adapter id: %s", err.msg);
    /* a set made over another model (same shape) is refused, and the session keeps no set */
    model_config c2 = *model_cfg(m);
    model *other = NULL;
    model_adapter_set *oset = NULL;
    CHECK(model_random(&c2, 8, &other, &err) == 0 && model_adapter_set_new(other, &oset, &err) == 0, "other: %s", err.msg);
    err.msg[0] = 0;
    CHECK(model_session_use_adapters(s, oset, slot_ids, 1, &err) == LORAC_EINVAL && strstr(err.msg, "another base model"),
          "another model's set: %s", err.msg);
    model_adapter_set_free(oset);
    model_free(other);
    CHECK(model_session_use_adapters(s, set, slot_ids, SLOTS, &err) == 0, "use: %s", err.msg);
    CHECK(model_session_step(s, prompt, SLOTS, P, got, &err) == 0, "mixed prefill: %s", err.msg);
    char what[64];
    for (int q = 0; q < SLOTS; q++) {
        snprintf(what, sizeof what, "mixed prefill, slot %d (adapter %d)", q, slot_ids[q]);
        check_arrays_close(got + (size_t)q * V, want + (size_t)q * (1 + STEPS) * V, V, 1e-5, 1e-4, what);
    }
    /* one decode step, then a reorder (slot i := old slot src[i]) and the rest */
    int32_t tok[SLOTS];
    for (int q = 0; q < SLOTS; q++) tok[q] = next[q][0];
    CHECK(model_session_step(s, tok, SLOTS, 1, got, &err) == 0, "mixed step: %s", err.msg);
    for (int q = 0; q < SLOTS; q++) {
        snprintf(what, sizeof what, "mixed step 1, slot %d", q);
        check_arrays_close(got + (size_t)q * V, want + ((size_t)q * (1 + STEPS) + 1) * V, V, 1e-5, 1e-4, what);
    }
    int32_t src[SLOTS] = {2, 0, 1};
    CHECK(model_session_reorder(s, src, SLOTS, &err) == 0, "reorder: %s", err.msg);
    for (int t = 1; t < STEPS; t++) {
        for (int i = 0; i < SLOTS; i++) tok[i] = next[src[i]][t];
        CHECK(model_session_step(s, tok, SLOTS, 1, got, &err) == 0, "mixed step: %s", err.msg);
        for (int i = 0; i < SLOTS; i++) {
            snprintf(what, sizeof what, "after reorder, step %d, slot %d (sequence %d)", t + 1, i, src[i]);
            check_arrays_close(got + (size_t)i * V, want + ((size_t)src[i] * (1 + STEPS) + t + 1) * V, V, 1e-5, 1e-4, what);
        }
    }
    /* a step with more rows than any before grows the scratch, low-rank buffer included (it once
     * kept its old size: a heap overflow under ASan); its logits must still be each slot's own */
    int32_t longp[SLOTS * 16];
    for (int i = 0; i < SLOTS * 16; i++) longp[i] = (i * 5 + 3) % 39;
    CHECK(model_session_begin(s, SLOTS, 16, &err) == 0 && model_session_use_adapters(s, set, slot_ids, SLOTS, &err) == 0 &&
              model_session_step(s, longp, SLOTS, 16, got, &err) == 0, "long mixed prefill: %s", err.msg);
    for (int q = 0; q < SLOTS; q++) {
        float *one = malloc(sizeof(float) * V);
        model_session *s1 = NULL;
        CHECK(model_adapter_set_activate(set, slot_ids[q], 0, &err) == 0, "activate %d", slot_ids[q]);
        CHECK(model_session_new(m, &s1, &err) == 0 && model_session_begin(s1, 1, 16, &err) == 0 &&
                  model_session_step(s1, longp + q * 16, 1, 16, one, &err) == 0, "single long run: %s", err.msg);
        model_adapter_set_activate(set, -1, 0, &err);
        snprintf(what, sizeof what, "long mixed prefill, slot %d", q);
        check_arrays_close(got + (size_t)q * V, one, V, 1e-5, 1e-4, what);
        model_session_free(s1);
        free(one);
    }
    CHECK(model_session_begin(s, SLOTS, 16, &err) == 0 && model_session_use_adapters(s, set, slot_ids, SLOTS, &err) == 0,
          "begin again: %s", err.msg);
    /* a mixed step needs no active adapter */
    CHECK(model_adapter_set_activate(set, 0, 1, &err) == 0, "activate");
    CHECK(model_session_step(s, tok, SLOTS, 1, got, &err) == LORAC_EINVAL && strstr(err.msg, "activate -1"), "active: %s", err.msg);
    model_adapter_set_activate(set, -1, 0, &err);
    model_session_free(s);
    free(want);
    free(got);
}

int main(void) {
    for (int i = 0; i < B * T; i++) ids[i] = (i * 7 + 3) % 39;
    char root[] = "/tmp/lorac_multi_adapter_XXXXXX", d[2][300];
    CHECK(mkdtemp(root) != NULL, "mkdtemp");
    /* the paper's q,v split of c_attn, and attn.c_proj */
    model_lora_opts o = fx_lora_opts(2, 4, 0, "q,v,attn.c_proj");
    snprintf(d[0], sizeof d[0], "%s/a0", root);
    snprintf(d[1], sizeof d[1], "%s/a1", root);
    peft_adapter *ads[2];
    ads[0] = make_adapter(d[0], &o, 3);
    /* rsLoRA: a LoRA Linear on all of c_attn, on mlp.c_fc and on the embedding */
    o = fx_lora_opts(3, 6, 0, "c_attn,c_fc,wte");
    o.use_rslora = 1;
    ads[1] = make_adapter(d[1], &o, 4);
    model_config c = tiny();
    model *m = NULL;
    lorac_err err = {0};
    model_adapter_set *set = NULL;
    CHECK(model_random(&c, 7, &m, &err) == 0 && model_adapter_set_new(m, &set, &err) == 0, "set: %s", err.msg);
    if (!set) return check_summary();
    int id0 = -1, id1 = -1;
    CHECK(ads[0] && ads[1] && model_adapter_set_add(set, ads[0], &id0, &err) == 0 &&
          model_adapter_set_add(set, ads[1], &id1, &err) == 0 && id0 == 0 && id1 == 1, "add: %s", err.msg);
    CHECK(!model_has_lora(m), "adding leaves the model without an active adapter");
    test_switching(m, set, ads);
    test_resident(m, set, ads[0]);
    test_mixed(m, set);
    model_adapter_set_free(set);
    CHECK(!model_has_lora(m), "freeing the set detaches every adapter");
    model_free(m);
    peft_adapter_free(ads[0]);
    peft_adapter_free(ads[1]);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK(system(cmd) == 0, "cleanup");
    return check_summary();
}
