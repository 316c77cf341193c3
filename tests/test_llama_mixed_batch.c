/* test_llama_mixed_batch.c — mixed-adapter batches in the Llama KV-cache session
 * (model_session_use_adapters): S = 4 slots, slot i running adapter ids[i] of one set (0, none, 1,
 * 0), prefill of 5 tokens then single tokens, a reorder between steps (each slot keeps its
 * sequence's adapter). Every slot's logits at every step equal running that sequence alone in a
 * 1-slot session with its adapter activated unmerged (or none): |diff| <= 1e-5 + 1e-5·|ref|.
 * Bases: the tiny Qwen2 fixture (f32; adapters written by lorac: q,v r 2 and every projection
 * r 3) and the GQA Llama fixture as Q8_0 GGUF (the PEFT-made tests/fixtures/llama/gqa/adapter and
 * a lorac q,v adapter). Bad input, each one error that leaves the session as it was (the batch
 * after them still matches): ids out of range, n above the session's slots, n = 0, a set over
 * another model, a set with an active adapter (refused at use and at step), an adapter made for
 * another base refused by the set. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"
#include "models/model_internal.h" /* a site's stored type */

#define FIX LORAC_SOURCE_DIR "/tests/fixtures/llama"

enum { S = 4, P = 5, ND = 3, NA = 2 };
static const int slot_ids[S] = {0, -1, 1, 0};
static const int32_t src[S] = {2, 0, 0, 3}; /* the reorder after the first decode step */
static int32_t prompt[S][P], dec[S][ND];

/* fx_make_mixed_adapter, checked */
static int make_adapter(const char *hf, int i, const char *dir) {
    lorac_err err = {0};
    int rc = fx_make_mixed_adapter(hf, i, dir, &err);
    CHECK(rc == 0, "adapter %d over %s: %s", i, hf, err.msg);
    return rc;
}

/* (1 + ND, V) logits of one sequence alone: adapter id of set activated unmerged (-1: none), the
 * prompt pr, then the single tokens d[0..ND-1] (the last one's logits are not needed). */
static float *alone(model *m, model_adapter_set *set, int id, const int32_t *pr, const int32_t *d) {
    lorac_err err = {0};
    model_session *s = NULL;
    size_t V = (size_t)model_cfg(m)->vocab_size;
    float *out = malloc((1 + ND) * V * sizeof(float));
    int rc = model_adapter_set_activate(set, id, 0, &err);
    if (!rc) rc = model_session_new(m, &s, &err);
    if (!rc) rc = model_session_begin(s, 1, P + ND, &err);
    if (!rc) rc = model_session_step(s, pr, 1, P, out, &err);
    for (int j = 0; !rc && j < ND; j++) rc = model_session_step(s, &d[j], 1, 1, out + (1 + j) * V, &err);
    CHECK(rc == 0, "alone with adapter %d: %s", id, err.msg);
    model_session_free(s);
    if (!rc) rc = model_adapter_set_activate(set, -1, 0, &err);
    if (rc) {
        free(out);
        return NULL;
    }
    return out;
}

/* The mixed batch against every sequence alone; reorders after the first decode step. */
static void check_mixed(model *m, model_adapter_set *set, model_session *ses, const char *what) {
    lorac_err err = {0};
    size_t V = (size_t)model_cfg(m)->vocab_size;
    float *ref[S] = {0}, *reo[S] = {0}, *got = malloc(S * V * sizeof(float));
    int ok = 1;
    for (int i = 0; i < S; i++) {
        int32_t hist[ND]; /* what final slot i holds after the reorder: src[i]'s first token, its own after */
        hist[0] = dec[src[i]][0];
        for (int j = 1; j < ND; j++) hist[j] = dec[i][j];
        ref[i] = alone(m, set, slot_ids[i], prompt[i], dec[i]);
        reo[i] = alone(m, set, slot_ids[src[i]], prompt[src[i]], hist);
        ok &= ref[i] && reo[i];
    }
    int32_t toks[S * P];
    for (int i = 0; i < S; i++) memcpy(toks + i * P, prompt[i], sizeof prompt[i]);
    int rc = ok ? model_session_begin(ses, S, P + ND, &err) : 1;
    if (!rc) rc = model_session_step(ses, toks, S, P, got, &err);
    for (int j = 0; !rc && j < ND; j++) {
        char w[128];
        for (int i = 0; i < S; i++) {
            const float *want = j < 2 ? ref[i] + (size_t)j * V : reo[i] + (size_t)j * V;
            snprintf(w, sizeof w, "%s: slot %d (adapter %d) step %d", what, i, j < 2 ? slot_ids[i] : slot_ids[src[i]], j);
            check_arrays_close(got + i * V, want, V, 1e-5, 1e-5, w);
        }
        for (int i = 0; i < S; i++) toks[i] = dec[i][j];
        if (j == 1 && (rc = model_session_reorder(ses, src, S, &err))) break;
        rc = model_session_step(ses, toks, S, 1, got, &err);
    }
    CHECK(rc == 0, "%s: mixed batch: %s", what, err.msg);
    /* the adapters matter: adapter 0 alone differs from the base alone on the same tokens */
    float *base = ok ? alone(m, set, -1, prompt[0], dec[0]) : NULL;
    if (base) CHECK(memcmp(base, ref[0], (1 + ND) * V * sizeof(float)) != 0, "%s: adapter 0 changes the logits", what);
    free(base);
    for (int i = 0; i < S; i++) {
        free(ref[i]);
        free(reo[i]);
    }
    free(got);
}

/* A set of NA adapters (dirs) over m, or NULL. */
static model_adapter_set *set_of(model *m, const char *const *dirs, peft_adapter **a) {
    lorac_err err = {0};
    model_adapter_set *s = NULL;
    int rc = model_adapter_set_new(m, &s, &err);
    for (int i = 0; !rc && i < NA; i++) {
        int id = -1;
        rc = peft_adapter_read(dirs[i], &a[i], NULL, 0, &err);
        if (!rc) rc = model_adapter_set_add(s, a[i], &id, &err);
        if (!rc && id != i) rc = 1;
    }
    CHECK(rc == 0, "set over %s: %s", dirs[0], err.msg);
    if (rc) {
        model_adapter_set_free(s);
        return NULL;
    }
    return s;
}

/* Every refusal leaves the session's adapters as they were (check_mixed runs after). */
static void check_bad_input(model *m, model_adapter_set *set, model_session *ses, const char *other_adapter) {
    lorac_err err = {0};
    int bad[S + 1] = {0, -1, 1, 0, 0};
    CHECK(model_session_begin(ses, S, P + ND, &err) == 0, "begin: %s", err.msg);
    CHECK(model_session_use_adapters(ses, set, slot_ids, S, &err) == 0, "use: %s", err.msg);
    /* a 1-token step first: the prefill in check_mixed then grows the scratch (and the gathered
     * rows) from S to S·P rows */
    float *small = malloc((size_t)S * model_cfg(m)->vocab_size * sizeof(float));
    int32_t one[S] = {1, 2, 3, 4};
    CHECK(model_session_step(ses, one, S, 1, small, &err) == 0, "a 1-token mixed step: %s", err.msg);
    free(small);
    CHECK(model_session_begin(ses, S, P + ND, &err) == 0, "begin: %s", err.msg);
    bad[1] = NA;
    CHECK(model_session_use_adapters(ses, set, bad, S, &err) != 0 && strstr(err.msg, "adapter 2"), "id out of range: %s", err.msg);
    bad[1] = -2;
    CHECK(model_session_use_adapters(ses, set, bad, S, &err) != 0 && strstr(err.msg, "adapter -2"), "id -2: %s", err.msg);
    bad[1] = -1;
    CHECK(model_session_use_adapters(ses, set, bad, S + 1, &err) != 0 && strstr(err.msg, "has 4"), "n > slots: %s", err.msg);
    CHECK(model_session_use_adapters(ses, set, bad, 0, &err) != 0, "n = 0 is refused");
    /* a set over another model (the same files, another model) */
    model *m2 = NULL;
    model_adapter_set *s2 = NULL;
    if (!model_load(FIX "/qwen2/base", &FX_NO_TOK, &m2, &err)) {
        if (!model_adapter_set_new(m2, &s2, &err))
            CHECK(model_session_use_adapters(ses, s2, slot_ids, S, &err) != 0 && strstr(err.msg, "another base"),
                  "a set over another model: %s", err.msg);
        model_adapter_set_free(s2);
        model_free(m2);
    }
    /* an active adapter (merged or not) would be applied twice: refused at use and at step */
    float *logits = malloc((size_t)S * P * model_cfg(m)->vocab_size * sizeof(float));
    int32_t toks[S * P] = {0};
    for (int merge = 0; merge < 2; merge++) {
        CHECK(model_adapter_set_activate(set, 0, merge, &err) == 0, "activate: %s", err.msg);
        CHECK(model_session_use_adapters(ses, set, slot_ids, S, &err) != 0 && strstr(err.msg, "no active adapter"),
              "use with adapter 0 active (merge %d): %s", merge, err.msg);
        CHECK(model_session_step(ses, toks, S, P, logits, &err) != 0 && strstr(err.msg, "no active adapter"),
              "step with adapter 0 active (merge %d): %s", merge, err.msg);
        CHECK(model_session_len(ses) == 0, "a refused step appends nothing");
        CHECK(model_adapter_set_activate(set, -1, 0, &err) == 0, "deactivate: %s", err.msg);
    }
    /* more slots stepped than adapters given */
    CHECK(model_session_use_adapters(ses, set, slot_ids, 2, &err) == 0, "use 2: %s", err.msg);
    CHECK(model_session_step(ses, toks, 3, P, logits, &err) != 0 && model_session_len(ses) == 0, "3 slots, 2 ids");
    CHECK(model_session_use_adapters(ses, set, slot_ids, S, &err) == 0, "use: %s", err.msg);
    free(logits);
    /* an adapter made for another base: one error, the set unchanged */
    peft_adapter *a = NULL;
    if (!peft_adapter_read(other_adapter, &a, NULL, 0, &err)) {
        CHECK(model_adapter_set_add(set, a, NULL, &err) != 0, "an adapter for another base is refused");
        fprintf(stderr, "(expected) %s\n", err.msg);
        CHECK(model_adapter_set_count(set) == NA && model_adapter_set_active(set, NULL) == -1 && !model_has_lora(m),
              "the set unchanged after the refused add");
    } else {
        CHECK(0, "%s: %s", other_adapter, err.msg);
    }
    peft_adapter_free(a);
}

static void run_base(model *m, const char *const *dirs, const char *what, const char *other_adapter) {
    lorac_err err = {0};
    peft_adapter *a[NA] = {0};
    model_adapter_set *set = set_of(m, dirs, a);
    model_session *ses = NULL;
    if (set && !model_session_new(m, &ses, &err)) {
        if (other_adapter) check_bad_input(m, set, ses, other_adapter);
        else CHECK(model_session_use_adapters(ses, set, slot_ids, S, &err) == 0, "use: %s", err.msg);
        check_mixed(m, set, ses, what);
        /* back to the model's own LoRA (none here) */
        CHECK(model_session_use_adapters(ses, NULL, NULL, 0, &err) == 0, "set NULL");
    }
    model_session_free(ses);
    model_adapter_set_free(set);
    for (int i = 0; i < NA; i++) peft_adapter_free(a[i]);
}

int main(void) {
    /* one product path for every batch size: a 1-slot prefill (5 rows) would otherwise take the
     * direct int8 decode kernels and the 4-slot one (20 rows) the fp32 GEMM (test_qdot tests those) */
    qmat_set_direct(0);
    for (int i = 0; i < S; i++) {
        for (int t = 0; t < P; t++) prompt[i][t] = (int32_t)((i * 17 + t * 5 + 3) % 60);
        for (int t = 0; t < ND; t++) dec[i][t] = (int32_t)((i * 11 + t * 13 + 7) % 60);
    }
    char tmp[] = "/tmp/lorac_llmixXXXXXX", d[3][64];
    if (!mkdtemp(tmp)) {
        CHECK(0, "mkdtemp");
        return check_summary();
    }
    for (int i = 0; i < 3; i++) snprintf(d[i], sizeof d[i], "%s/a%d", tmp, i);
    lorac_err err = {0};
    model *m = NULL;
    /* f32 Qwen2 base, lorac-written adapters; the GQA fixture's PEFT adapter is for another base */
    if (!make_adapter(FIX "/qwen2/base", 0, d[0]) && !make_adapter(FIX "/qwen2/base", 1, d[1])) {
        if (!model_load(FIX "/qwen2/base", &FX_NO_TOK, &m, &err)) {
            const char *dirs[NA] = {d[0], d[1]};
            run_base(m, dirs, "qwen2 f32", FIX "/gqa/adapter");
            model_free(m);
        } else {
            CHECK(0, "qwen2: %s", err.msg);
        }
    }
    /* Q8_0 GGUF base: PEFT's own adapter and a lorac q,v one, both unmerged over quantized sites */
    if (!make_adapter(FIX "/gqa/base", 0, d[2])) {
        if (!model_load(FIX "/gguf/gqa.q8_0.gguf", &FX_NO_TOK, &m, &err)) {
            CHECK(m->layers[0].site[ARCH_Q].w.type == QUANT_Q8_0, "the GGUF base is Q8_0");
            const char *dirs[NA] = {d[2], FIX "/gqa/adapter"};
            run_base(m, dirs, "gqa Q8_0", NULL);
            model_free(m);
        } else {
            CHECK(0, "gqa Q8_0: %s", err.msg);
        }
    }
    for (int i = 0; i < 3; i++) fx_rm_adapter(d[i]);
    rmdir(tmp);
    return check_summary();
}
