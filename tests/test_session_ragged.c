/* test_session_ragged.c — continuous batching in the KV-cache session (model_session_step_slots,
 * model_session_reset_slot): sequences admitted at different times, prefilled in chunks beside
 * others' decoding, stepped in any slot order, and a finished sequence's slot reused by a new one
 * with another adapter. Each sequence's logits after its prompt and after each decoded token equal
 * running it alone in a 1-slot session (its adapter activated unmerged, the prompt in one step):
 * |diff| <= 1e-5 + 1e-5·|ref|. Bases: the tiny Qwen2 fixture (rotary, grouped kv heads; two lorac
 * adapters, mixed per slot) and a random GPT-2 (learned positions, fused qkv; no adapters).
 * Refusals change nothing: a slot twice in one step, a slot out of range, a step past a slot's
 * capacity, a reset of a slot that does not exist. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"

#define FIX LORAC_SOURCE_DIR "/tests/fixtures/llama"

enum { NQ = 4, MAXL = 10, CAP = 12 };
/* sequence q: prompt P[q] tokens then decoded tokens up to L[q] in all; adapter ids[q] */
static const int P[NQ] = {5, 6, 3, 4}, L[NQ] = {10, 8, 8, 7};
static int ids[NQ] = {0, -1, 1, 0};
static int32_t seqtok[NQ][MAXL];

/* ((L-P+1), V) logits of sequence q alone: after its prompt, then after each later token. */
static float *alone(model *m, model_adapter_set *set, int q) {
    lorac_err err = {0};
    model_session *s = NULL;
    size_t V = (size_t)model_cfg(m)->vocab_size;
    float *out = malloc((size_t)(L[q] - P[q] + 1) * V * sizeof(float));
    int rc = set ? model_adapter_set_activate(set, ids[q], 0, &err) : 0;
    if (!rc) rc = model_session_new(m, &s, &err);
    if (!rc) rc = model_session_begin(s, 1, CAP, &err);
    if (!rc) rc = model_session_step(s, seqtok[q], 1, P[q], out, &err);
    for (int t = P[q]; !rc && t < L[q]; t++) rc = model_session_step(s, &seqtok[q][t], 1, 1, out + (t - P[q] + 1) * V, &err);
    model_session_free(s);
    if (!rc && set) rc = model_adapter_set_activate(set, -1, 0, &err);
    CHECK(rc == 0, "sequence %d alone: %s", q, err.msg);
    if (rc) free(out);
    return rc ? NULL : out;
}

/* One ragged step: sequences qs (n) in slots sl, n_new tokens each from where each one is (done[q]). */
static int ragged(model_session *s, const int *sl, const int *qs, int n, int n_new, int *done, float **ref, size_t V,
                  const char *what) {
    lorac_err err = {0};
    int32_t in[NQ * MAXL] = {0};
    float *got = malloc((size_t)n * V * sizeof(float));
    for (int i = 0; i < n; i++) memcpy(in + i * n_new, &seqtok[qs[i]][done[qs[i]]], (size_t)n_new * sizeof(int32_t));
    int rc = model_session_step_slots(s, sl, in, n, n_new, got, &err);
    CHECK(rc == 0, "%s: step: %s", what, err.msg);
    for (int i = 0; !rc && i < n; i++) {
        int q = qs[i], at = (done[q] += n_new);
        CHECK(model_session_slot_len(s, sl[i]) == at, "%s: slot %d holds %d", what, sl[i], model_session_slot_len(s, sl[i]));
        if (at < P[q]) continue; /* inside a chunked prompt: nothing to compare */
        char w[96];
        snprintf(w, sizeof w, "%s: sequence %d at %d tokens", what, q, at);
        check_arrays_close(got + i * V, ref[q] + (size_t)(at - P[q]) * V, V, 1e-5, 1e-5, w);
    }
    free(got);
    return rc;
}

static void refusals(model_session *s, size_t V) {
    lorac_err err = {0};
    int32_t t2[2] = {1, 2};
    float *lg = malloc(2 * V * sizeof(float));
    int twice[2] = {0, 0}, out_of[1] = {3}, one[1] = {2};
    int len0 = model_session_slot_len(s, 0);
    CHECK(model_session_step_slots(s, twice, t2, 2, 1, lg, &err) != 0 && strstr(err.msg, "twice"), "slot twice: %s", err.msg);
    CHECK(model_session_step_slots(s, out_of, t2, 1, 1, lg, &err) != 0, "slot 3 of 3 refused");
    int32_t many[CAP + 1] = {0};
    float *big = malloc(V * sizeof(float));
    CHECK(model_session_step_slots(s, one, many, 1, CAP + 1 - model_session_slot_len(s, 2) + 1, big, &err) != 0 &&
              strstr(err.msg, "exceed"), "past the capacity: %s", err.msg);
    CHECK(model_session_reset_slot(s, 3, &err) != 0 && model_session_slot_len(s, 3) == -1, "reset of slot 3 refused");
    CHECK(model_session_slot_len(s, 0) == len0, "refusals changed nothing");
    free(big);
    free(lg);
}

/* The schedule: admissions, chunked prefills beside decoding, slot reuse with another adapter. */
static void run(model *m, model_adapter_set *set, const char *what) {
    lorac_err err = {0};
    size_t V = (size_t)model_cfg(m)->vocab_size;
    float *ref[NQ];
    int ok = 1, done[NQ] = {0}, slot_ids[3] = {ids[0], ids[1], ids[2]};
    for (int q = 0; q < NQ; q++) ok &= (ref[q] = alone(m, set, q)) != NULL;
    model_session *s = NULL;
    int rc = ok ? model_session_new(m, &s, &err) : 1;
    if (!rc) rc = model_session_begin(s, 3, CAP, &err);
    if (!rc && set) rc = model_session_use_adapters(s, set, slot_ids, 3, &err);
    CHECK(rc == 0, "%s: session: %s", what, err.msg);
    if (!rc) {
        int s0[1] = {0}, s12[2] = {1, 2}, s02[2] = {0, 2}, s1[1] = {1}, s210[3] = {2, 1, 0}, s012[3] = {0, 1, 2};
        int q0[1] = {0}, q12[2] = {1, 2}, q02[2] = {0, 2}, q1[1] = {1}, q210[3] = {2, 1, 0}, q032[3] = {0, 3, 2};
        rc = ragged(s, s0, q0, 1, 5, done, ref, V, what);                 /* A's prompt */
        if (!rc) rc = ragged(s, s12, q12, 2, 3, done, ref, V, what);      /* B's first half, C's whole prompt */
        if (!rc) rc = ragged(s, s02, q02, 2, 1, done, ref, V, what);      /* A and C decode */
        if (!rc) rc = ragged(s, s1, q1, 1, 3, done, ref, V, what);        /* B's second half */
        if (!rc) rc = ragged(s, s210, q210, 3, 1, done, ref, V, what);    /* all three, slots in another order */
        if (!rc) rc = ragged(s, s1, q1, 1, 1, done, ref, V, what);        /* B's last token: B is done */
        if (!rc) refusals(s, V);
        /* D takes B's slot, with adapter ids[3] */
        slot_ids[1] = ids[3];
        if (!rc) rc = model_session_reset_slot(s, 1, &err) || (set && model_session_use_adapters(s, set, slot_ids, 3, &err));
        CHECK(rc == 0 && model_session_slot_len(s, 1) == 0, "%s: reuse slot 1: %s", what, err.msg);
        if (!rc) rc = ragged(s, s1, (int[]){3}, 1, 4, done, ref, V, what);
        for (int k = 0; !rc && k < 3; k++) rc = ragged(s, s012, q032, 3, 1, done, ref, V, what);
        CHECK(done[0] == L[0] && done[3] == L[3] && done[2] == L[2], "%s: every sequence ran to its end", what);
    }
    model_session_free(s);
    for (int q = 0; q < NQ; q++) free(ref[q]);
}

static int make_adapter(const char *hf, int i, const char *dir) {
    lorac_err err = {0};
    int rc = fx_make_mixed_adapter(hf, i, dir, &err);
    CHECK(rc == 0, "adapter %d over %s: %s", i, hf, err.msg);
    return rc;
}

int main(void) {
    for (int q = 0; q < NQ; q++)
        for (int t = 0; t < MAXL; t++) seqtok[q][t] = (int32_t)((q * 17 + t * 5 + 3) % 60);
    char tmp[] = "/tmp/lorac_raggedXXXXXX", d[2][64];
    if (!mkdtemp(tmp)) {
        CHECK(0, "mkdtemp");
        return check_summary();
    }
    lorac_err err = {0};
    model *m = NULL;
    peft_adapter *a[2] = {0};
    model_adapter_set *set = NULL;
    for (int i = 0; i < 2; i++) snprintf(d[i], sizeof d[i], "%s/a%d", tmp, i);
    if (!make_adapter(FIX "/qwen2/base", 0, d[0]) && !make_adapter(FIX "/qwen2/base", 1, d[1])) {
        int rc = model_load(FIX "/qwen2/base", &FX_NO_TOK, &m, &err);
        if (!rc) rc = model_adapter_set_new(m, &set, &err);
        for (int i = 0; !rc && i < 2; i++)
            if (!(rc = peft_adapter_read(d[i], &a[i], NULL, 0, &err))) rc = model_adapter_set_add(set, a[i], NULL, &err);
        CHECK(rc == 0, "qwen2 and its adapters: %s", err.msg);
        if (!rc) run(m, set, "qwen2 mixed");
        model_adapter_set_free(set);
        model_free(m);
    }
    for (int i = 0; i < 2; i++) peft_adapter_free(a[i]), fx_rm_adapter(d[i]);
    rmdir(tmp);
    model_config c = fx_gpt2_config(2, 32, 4, 64, 16, 64);
    for (int q = 0; q < NQ; q++) ids[q] = -1;
    if (model_random(&c, 7, &m, &err) == 0) {
        run(m, NULL, "gpt2 learned positions");
        model_free(m);
    } else {
        CHECK(0, "gpt2: %s", err.msg);
    }
    return check_summary();
}
