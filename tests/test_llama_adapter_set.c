/* test_llama_adapter_set.c — several PEFT adapters over one tiny Qwen2-style Llama base
 * (tests/fixtures/llama/qwen2/base): two adapters (q,v and every projection, nonzero B) are
 * written by lorac's PEFT writer, then held in one model_adapter_set. Activating each, merged and
 * unmerged, in any order (and with keep_merged), gives the logits of loading that adapter alone:
 * |diff| <= 1e-5 + 1e-4·|ref|; activating none gives W0 back bit for bit and the base's logits
 * exactly; a model with LoRA refuses a set; over a Q8_0 GGUF base merging is a clear error and
 * the adapter stays active unmerged with the logits of loading it alone. With keep_merged, a merged
 * switch back to an adapter is a pointer swap: its resident merged weights are pointed at again,
 * not recomputed (a marker written into them survives), until an unmerged activation marks them
 * stale (the marker is then overwritten by the recomputed merge). */
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"
#include "models/model_internal.h" /* the base weights W0 and the LoRA layers' merged buffers */

#define BASE LORAC_SOURCE_DIR "/tests/fixtures/llama/qwen2/base"

enum { B = 2, T = 5, NA = 2 };
static int32_t ids[B * T];

static float *logits_of(model *m, size_t *numel) {
    lorac_err err = {0};
    float *out = fx_lm_logits(m, ids, B, T, &err);
    CHECK(out != NULL, "forward: %s", err.msg);
    *numel = (size_t)B * T * model_cfg(m)->vocab_size;
    return out;
}

/* Writes adapter i (0: q,v; 1: every projection) with deterministic nonzero A and B to dir. */
static int make_adapter(int i, const char *dir) {
    lorac_err err = {0};
    model_lora_opts o = fx_lora_opts(2 + i, 4.0f + i, 0.0f, i == 1 ? "all-linear" : "q_proj,v_proj");
    int rc = fx_make_adapter(BASE, &o, 7 + (uint64_t)i, 0.05f, dir, &err);
    CHECK(rc == 0, "adapter %d: %s", i, err.msg);
    return rc;
}

/* Logits of the base with the adapter in dir loaded on its own (NULL: none). */
static float *alone(const char *dir, size_t *numel) {
    model *m = NULL;
    lorac_err err = {0};
    if (model_load(BASE, &FX_NO_TOK, &m, &err)) {
        CHECK(0, "%s: %s", BASE, err.msg);
        return NULL;
    }
    float *out = NULL;
    if (dir && model_attach_adapters(m, &dir, 1, NULL, 0, &err)) CHECK(0, "%s: %s", dir, err.msg);
    else out = logits_of(m, numel);
    model_free(m);
    return out;
}

/* The base weight of every linear map (layer l, site s at l·ARCH_N_SITES + s; NULL where the family
 * has no such map). */
static const qmat *site_w(const model *m, int k) {
    const qmat *q = &m->layers[k / ARCH_N_SITES].site[k % ARCH_N_SITES].w;
    return q->data ? q : NULL;
}

static int w0_same(const model *m, float **w0) {
    for (int k = 0; k < m->cfg.n_layer * ARCH_N_SITES; k++) {
        const qmat *q = site_w(m, k);
        if (q && memcmp(q->data, w0[k], (size_t)q->rows * q->cols * sizeof(float))) return 0;
    }
    return 1;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* keep_merged: merged switches back to an adapter reuse its resident weights (a pointer swap). */
static void test_keep_merged_swap(model *m, model_adapter_set *s, float **w0, float *const *ref) {
    lorac_err err = {0};
    int nk = m->cfg.n_layer * ARCH_N_SITES, k0 = -1;
    CHECK(model_adapter_set_keep_merged(s, 1, &err) == 0 && model_adapter_set_activate(s, 1, 1, &err) == 0, "%s", err.msg);
    float **p1 = calloc((size_t)nk, sizeof *p1);
    for (int k = 0; k < nk && m->lora; k++)
        if (m->lora[k].lin) {
            p1[k] = m->lora[k].lin->merged_w;
            if (k0 < 0) k0 = k;
        }
    if (k0 < 0 || !p1[k0]) {
        CHECK(0, "adapter 1 merged has merged weights");
        free(p1);
        return;
    }
    float v = p1[k0][0], marker = v + 1000.0f;
    p1[k0][0] = marker; /* a recomputed merge would overwrite it */
    for (int rep = 0; rep < 3; rep++) {
        int merged = -1;
        CHECK(model_adapter_set_activate(s, 0, 1, &err) == 0 && model_adapter_set_activate(s, -1, 0, &err) == 0 &&
                  w0_same(m, w0) && model_adapter_set_activate(s, 1, 1, &err) == 0,
              "switch 1 -> 0 -> none -> 1: %s", err.msg);
        CHECK(model_adapter_set_active(s, &merged) == 1 && merged == 1, "adapter 1 active merged");
        int same = m->lora != NULL;
        for (int k = 0; same && k < nk; k++) same &= !m->lora[k].lin || m->lora[k].lin->merged_w == p1[k];
        CHECK(same && p1[k0][0] == marker, "switch %d back to adapter 1 points at its resident weights, not recomputed", rep);
    }
    CHECK(model_adapter_set_activate(s, 1, 0, &err) == 0 && model_adapter_set_activate(s, 1, 1, &err) == 0, "%s", err.msg);
    CHECK(p1[k0][0] == v, "after an unmerged activation the resident copy is recomputed (%g, want %g)", p1[k0][0], v);
    size_t n = 0;
    float *got = logits_of(m, &n);
    if (got) check_arrays_close(got, ref[1], n, 1e-5, 1e-4, "adapter 1 merged after the recompute");
    free(got);
    /* switch cost (not asserted: a shared machine): merged 0 <-> 1 with and without resident copies */
    double t[2];
    for (int keep = 0; keep < 2; keep++) {
        CHECK(model_adapter_set_keep_merged(s, keep, &err) == 0, "%s", err.msg);
        double t0 = now_s();
        for (int i = 0; i < 50; i++)
            if (model_adapter_set_activate(s, i & 1, 1, &err)) CHECK(0, "switch: %s", err.msg);
        t[keep] = (now_s() - t0) / 50;
    }
    printf("merged switch: %.1f us recomputing, %.1f us with keep_merged\n", 1e6 * t[0], 1e6 * t[1]);
    CHECK(model_adapter_set_activate(s, -1, 0, &err) == 0 && w0_same(m, w0), "none after the swaps: W0 bit for bit");
    free(p1);
}

/* Over a Q8_0 GGUF base (tests/fixtures/llama/gguf/gqa.q8_0.gguf) a q,v adapter merges nowhere:
 * merge=1 is an error and leaves it active unmerged, with the logits of loading it alone. */
static void test_quantized(const char *tmp) {
    const char *hf = LORAC_SOURCE_DIR "/tests/fixtures/llama/gqa/base", *gg = LORAC_SOURCE_DIR "/tests/fixtures/llama/gguf/gqa.q8_0.gguf";
    char dir[96];
    snprintf(dir, sizeof dir, "%s/q", tmp);
    const char *spec = dir;
    model *q = NULL;
    lorac_err err = {0};
    model_lora_opts o = fx_lora_opts(0, 0, 0.0f, NULL); /* the family's r, alpha and q_proj, v_proj */
    o.gaussian_init = 1;
    if (fx_make_adapter(hf, &o, 3, 0.03f, dir, &err)) {
        CHECK(0, "%s: %s", hf, err.msg);
        return;
    }
    size_t n = 0, n2 = 0;
    float *ref = NULL, *got = NULL;
    peft_adapter *a = NULL;
    model_adapter_set *s = NULL;
    if (!model_load(gg, &FX_NO_TOK, &q, &err) && !model_attach_adapters(q, &spec, 1, NULL, 0, &err)) ref = logits_of(q, &n);
    CHECK(ref != NULL, "%s alone: %s", gg, err.msg);
    model_free(q);
    if (model_load(gg, &FX_NO_TOK, &q, &err)) {
        CHECK(0, "%s: %s", gg, err.msg);
        free(ref);
        return;
    }
    CHECK(q->layers[0].site[ARCH_Q].w.type != QUANT_F32, "q_proj is quantized in %s", gg);
    int id = -1;
    if (!peft_adapter_read(dir, &a, NULL, 0, &err) && !model_adapter_set_new(q, &s, &err) && !model_adapter_set_add(s, a, &id, &err)) {
        CHECK(model_adapter_set_activate(s, id, 1, &err) != 0 && strstr(err.msg, "quantized"), "merge over Q8_0 is an error: %s", err.msg);
        got = logits_of(q, &n2);
        if (got && ref && n2 == n) check_arrays_close(got, ref, n, 1e-5, 1e-4, "Q8_0: active unmerged after the refused merge");
        CHECK(model_adapter_set_activate(s, id, 0, &err) == 0, "unmerged over Q8_0: %s", err.msg);
    } else {
        CHECK(0, "set over %s: %s", gg, err.msg);
    }
    model_adapter_set_free(s);
    peft_adapter_free(a);
    model_free(q);
    free(ref);
    free(got);
    fx_rm_adapter(dir);
}

int main(void) {
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 37 + 11) % 50);
    char tmp[] = "/tmp/lorac_llsetXXXXXX", dirs[NA][64];
    if (!mkdtemp(tmp)) {
        CHECK(0, "mkdtemp");
        return check_summary();
    }
    size_t n = 0;
    float *ref[NA + 1] = {0};
    for (int i = 0; i < NA; i++) {
        snprintf(dirs[i], sizeof dirs[i], "%s/a%d", tmp, i);
        if (make_adapter(i, dirs[i])) return check_summary();
        ref[i] = alone(dirs[i], &n);
    }
    ref[NA] = alone(NULL, &n);
    model *m = NULL;
    lorac_err err = {0};
    if (!ref[0] || !ref[1] || !ref[NA] || model_load(BASE, &FX_NO_TOK, &m, &err)) {
        CHECK(0, "setup: %s", err.msg);
        return check_summary();
    }
    for (int i = 0; i < NA; i++) /* the adapters change the logits, and differently: a swap is visible */
        CHECK(memcmp(ref[i], ref[NA], n * sizeof(float)) && memcmp(ref[i], ref[1 - i], n * sizeof(float)), "adapter %d changes the logits", i);
    int nk = m->cfg.n_layer * ARCH_N_SITES, nw = 0;
    float **w0 = calloc((size_t)nk, sizeof *w0);
    for (int k = 0; k < nk; k++) {
        const qmat *q = site_w(m, k);
        if (!q) continue;
        CHECK(q->type == QUANT_F32, "fixture site %d is f32", k);
        w0[k] = malloc((size_t)q->rows * q->cols * sizeof(float));
        memcpy(w0[k], q->data, (size_t)q->rows * q->cols * sizeof(float));
        nw++;
    }
    CHECK(nw == 7 * m->cfg.n_layer, "%d linear maps", nw);
    model_adapter_set *s = NULL;
    CHECK(model_adapter_set_new(m, &s, &err) == 0, "set: %s", err.msg);
    peft_adapter *a[NA] = {0};
    for (int i = 0; i < NA; i++) {
        int id = -1;
        CHECK(peft_adapter_read(dirs[i], &a[i], NULL, 0, &err) == 0, "read %s: %s", dirs[i], err.msg);
        CHECK(model_adapter_set_add(s, a[i], &id, &err) == 0 && id == i, "add %d: %s", i, err.msg);
    }
    CHECK(model_adapter_set_count(s) == NA, "count");
    CHECK(model_adapter_set_activate(s, NA, 0, &err) != 0, "activating a missing id fails");
    /* every switch, merged or not, with and without resident merged copies */
    const int order[] = {0, 1, -1, 1, 0, 0, -1};
    for (int keep = 0; keep < 2; keep++) {
        CHECK(model_adapter_set_keep_merged(s, keep, &err) == 0, "keep_merged: %s", err.msg);
        for (size_t j = 0; j < sizeof order / sizeof *order; j++)
            for (int merge = 0; merge < 2; merge++) {
                int id = order[j];
                char what[96];
                snprintf(what, sizeof what, "adapter %d %s keep %d step %zu", id, merge ? "merged" : "unmerged", keep, j);
                if (model_adapter_set_activate(s, id, merge, &err)) {
                    CHECK(0, "%s: %s", what, err.msg);
                    continue;
                }
                size_t got_n = 0;
                float *got = logits_of(m, &got_n);
                if (got && id < 0) CHECK(memcmp(got, ref[NA], n * sizeof(float)) == 0, "%s: base logits exactly", what);
                else if (got) check_arrays_close(got, ref[id], n, 1e-5, 1e-4, what);
                free(got);
                CHECK(w0_same(m, w0), "%s: W0 untouched", what);
            }
    }
    test_keep_merged_swap(m, s, w0, ref);
    CHECK(model_adapter_set_keep_merged(s, 0, &err) == 0, "keep_merged off: %s", err.msg);
    CHECK(model_adapter_set_activate(s, -1, 0, &err) == 0 && !model_has_lora(m) && w0_same(m, w0), "none: W0 bit for bit");
    model_adapter_set_free(s);
    /* a set needs a model without LoRA */
    const char *spec = dirs[0];
    CHECK(model_attach_adapters(m, &spec, 1, NULL, 0, &err) == 0, "load: %s", err.msg);
    CHECK(model_adapter_set_new(m, &s, &err) != 0 && s == NULL, "a model with LoRA refuses a set");
    model_free(m);
    for (int i = 0; i < NA; i++) peft_adapter_free(a[i]);
    for (int k = 0; k < nk; k++) free(w0[k]);
    free(w0);
    for (int i = 0; i <= NA; i++) free(ref[i]);
    for (int i = 0; i < NA; i++) fx_rm_adapter(dirs[i]);
    test_quantized(tmp);
    rmdir(tmp);
    return check_summary();
}
