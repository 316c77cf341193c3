/* test_llama_adapter_set.c — several PEFT adapters over one tiny Qwen2-style Llama base
 * (tests/fixtures/llama/qwen2/base): two adapters (q,v and every projection, nonzero B) are
 * written by lorac's PEFT writer, then held in one llama_adapter_set. Activating each, merged and
 * unmerged, in any order (and with keep_merged), gives the logits of loading that adapter alone:
 * |diff| <= 1e-5 + 1e-4·|ref|; activating none gives W0 back bit for bit and the base's logits
 * exactly; a model with LoRA refuses a set; over a Q8_0 GGUF base merging is a clear error and
 * the adapter stays active unmerged with the logits of loading it alone. With keep_merged, a merged
 * switch back to an adapter is a pointer swap: its resident merged weights are pointed at again,
 * not recomputed (a marker written into them survives), until an unmerged activation marks them
 * stale (the marker is then overwritten by the recomputed merge). */
#include <time.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "lorac/llama.h"
#include "lorac/peft.h"

#define BASE LORAC_SOURCE_DIR "/tests/fixtures/llama/qwen2/base"

enum { B = 2, T = 5, NA = 2 };
static int32_t ids[B * T];

static float *logits_of(llama_model *m, size_t *numel) {
    lorac_err err = {0};
    llama_acts *a = NULL;
    float *out = NULL;
    int rc = llama_acts_alloc(m, B, T, &a, &err);
    if (!rc) rc = llama_forward(m, a, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, &err);
    CHECK(rc == 0, "forward: %s", err.msg);
    if (!rc) {
        *numel = (size_t)B * T * m->cfg.vocab_size;
        out = malloc(*numel * sizeof(float));
        memcpy(out, llama_acts_logits(a), *numel * sizeof(float));
    }
    llama_acts_free(a);
    return out;
}

/* Writes adapter i (0: q,v; 1: every projection) with deterministic nonzero A and B to dir. */
static int make_adapter(int i, const char *dir) {
    llama_model m;
    lorac_err err = {0};
    if (llama_model_load(BASE, &m, &err)) {
        CHECK(0, "%s: %s", BASE, err.msg);
        return 1;
    }
    llama_lora_opts o;
    llama_lora_opts_default(&o);
    o.r = 2 + i;
    o.alpha = 4.0f + i;
    o.dropout = 0.0f;
    for (int s = 0; s < LLAMA_N_SITES; s++) o.sites[s] = i == 1 || s == LLAMA_SITE_Q || s == LLAMA_SITE_V;
    int rc = llama_model_add_lora(&m, &o, 7 + (uint64_t)i, &err);
    for (int l = 0; !rc && l < m.cfg.n_layer; l++)
        for (int s = 0; s < LLAMA_N_SITES; s++) {
            lora_linear *L = llama_model_lora(&m, l, s);
            if (!L) continue;
            for (size_t k = 0; k < (size_t)L->OC * L->cfg.r; k++) L->lora_B[k] = 0.05f * sinf((float)(k * 7 + l * 3 + s + i));
        }
    if (!rc) rc = llama_peft_save(&m, dir, &err);
    CHECK(rc == 0, "adapter %d: %s", i, err.msg);
    llama_model_free(&m);
    return rc;
}

/* Logits of the base with the adapter in dir loaded on its own (NULL: none). */
static float *alone(const char *dir, size_t *numel) {
    llama_model m;
    lorac_err err = {0};
    if (llama_model_load(BASE, &m, &err)) {
        CHECK(0, "%s: %s", BASE, err.msg);
        return NULL;
    }
    float *out = NULL;
    if (dir && llama_peft_load(&m, dir, NULL, 0, &err)) CHECK(0, "%s: %s", dir, err.msg);
    else out = logits_of(&m, numel);
    llama_model_free(&m);
    return out;
}

static int w0_same(const llama_model *m, float **w0) {
    for (int k = 0; k < m->cfg.n_layer * LLAMA_N_SITES; k++) {
        const qmat *q = &m->w.layers[k / LLAMA_N_SITES].w[k % LLAMA_N_SITES];
        if (memcmp(q->data, w0[k], (size_t)q->rows * q->cols * sizeof(float))) return 0;
    }
    return 1;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* keep_merged: merged switches back to an adapter reuse its resident weights (a pointer swap). */
static void test_keep_merged_swap(llama_model *m, llama_adapter_set *s, float **w0, float *const *ref) {
    lorac_err err = {0};
    int nk = m->cfg.n_layer * LLAMA_N_SITES, k0 = -1;
    CHECK(llama_adapter_set_keep_merged(s, 1, &err) == 0 && llama_adapter_set_activate(s, 1, 1, &err) == 0, "%s", err.msg);
    float **p1 = calloc((size_t)nk, sizeof *p1);
    for (int k = 0; k < nk; k++)
        if (m->lora[k]) {
            p1[k] = m->lora[k]->merged_w;
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
        CHECK(llama_adapter_set_activate(s, 0, 1, &err) == 0 && llama_adapter_set_activate(s, -1, 0, &err) == 0 &&
                  w0_same(m, w0) && llama_adapter_set_activate(s, 1, 1, &err) == 0,
              "switch 1 -> 0 -> none -> 1: %s", err.msg);
        CHECK(llama_adapter_set_active(s, &merged) == 1 && merged == 1, "adapter 1 active merged");
        int same = 1;
        for (int k = 0; k < nk; k++) same &= !m->lora[k] || m->lora[k]->merged_w == p1[k];
        CHECK(same && p1[k0][0] == marker, "switch %d back to adapter 1 points at its resident weights, not recomputed", rep);
    }
    CHECK(llama_adapter_set_activate(s, 1, 0, &err) == 0 && llama_adapter_set_activate(s, 1, 1, &err) == 0, "%s", err.msg);
    CHECK(p1[k0][0] == v, "after an unmerged activation the resident copy is recomputed (%g, want %g)", p1[k0][0], v);
    size_t n = 0;
    float *got = logits_of(m, &n);
    if (got) check_arrays_close(got, ref[1], n, 1e-5, 1e-4, "adapter 1 merged after the recompute");
    free(got);
    /* switch cost (not asserted: a shared machine): merged 0 <-> 1 with and without resident copies */
    double t[2];
    for (int keep = 0; keep < 2; keep++) {
        CHECK(llama_adapter_set_keep_merged(s, keep, &err) == 0, "%s", err.msg);
        double t0 = now_s();
        for (int i = 0; i < 50; i++)
            if (llama_adapter_set_activate(s, i & 1, 1, &err)) CHECK(0, "switch: %s", err.msg);
        t[keep] = (now_s() - t0) / 50;
    }
    printf("merged switch: %.1f us recomputing, %.1f us with keep_merged\n", 1e6 * t[0], 1e6 * t[1]);
    CHECK(llama_adapter_set_activate(s, -1, 0, &err) == 0 && w0_same(m, w0), "none after the swaps: W0 bit for bit");
    free(p1);
}

/* Over a Q8_0 GGUF base (tests/fixtures/llama/gguf/gqa.q8_0.gguf) a q,v adapter merges nowhere:
 * merge=1 is an error and leaves it active unmerged, with the logits of loading it alone. */
static void test_quantized(const char *tmp) {
    const char *hf = LORAC_SOURCE_DIR "/tests/fixtures/llama/gqa/base", *gg = LORAC_SOURCE_DIR "/tests/fixtures/llama/gguf/gqa.q8_0.gguf";
    char dir[96];
    snprintf(dir, sizeof dir, "%s/q", tmp);
    llama_model m, q;
    lorac_err err = {0};
    llama_lora_opts o;
    llama_lora_opts_default(&o);
    o.dropout = 0.0f;
    o.gaussian_init = 1;
    if (llama_model_load(hf, &m, &err) || llama_model_add_lora(&m, &o, 3, &err)) {
        CHECK(0, "%s: %s", hf, err.msg);
        return;
    }
    for (int k = 0; k < m.cfg.n_layer * LLAMA_N_SITES; k++)
        if (m.lora[k])
            for (size_t i = 0; i < (size_t)m.lora[k]->OC * m.lora[k]->cfg.r; i++) m.lora[k]->lora_B[i] = 0.03f * cosf((float)i);
    CHECK(llama_peft_save(&m, dir, &err) == 0, "save: %s", err.msg);
    llama_model_free(&m);
    size_t n = 0, n2 = 0;
    float *ref = NULL, *got = NULL;
    peft_adapter *a = NULL;
    llama_adapter_set *s = NULL;
    if (!llama_model_load_gguf(gg, &q, &err) && !llama_peft_load(&q, dir, NULL, 0, &err)) ref = logits_of(&q, &n);
    CHECK(ref != NULL, "%s alone: %s", gg, err.msg);
    llama_model_free(&q);
    if (llama_model_load_gguf(gg, &q, &err)) {
        CHECK(0, "%s: %s", gg, err.msg);
        free(ref);
        return;
    }
    CHECK(q.w.layers[0].w[LLAMA_SITE_Q].type != QUANT_F32, "q_proj is quantized in %s", gg);
    int id = -1;
    if (!peft_adapter_read(dir, &a, NULL, 0, &err) && !llama_adapter_set_new(&q, &s, &err) && !llama_adapter_set_add(s, a, &id, &err)) {
        CHECK(llama_adapter_set_activate(s, id, 1, &err) != 0 && strstr(err.msg, "quantized"), "merge over Q8_0 is an error: %s", err.msg);
        got = logits_of(&q, &n2);
        if (got && ref && n2 == n) check_arrays_close(got, ref, n, 1e-5, 1e-4, "Q8_0: active unmerged after the refused merge");
        CHECK(llama_adapter_set_activate(s, id, 0, &err) == 0, "unmerged over Q8_0: %s", err.msg);
    } else {
        CHECK(0, "set over %s: %s", gg, err.msg);
    }
    llama_adapter_set_free(s);
    peft_adapter_free(a);
    llama_model_free(&q);
    free(ref);
    free(got);
    char p[160];
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    unlink(p);
    rmdir(dir);
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
    llama_model m;
    lorac_err err = {0};
    if (!ref[0] || !ref[1] || !ref[NA] || llama_model_load(BASE, &m, &err)) {
        CHECK(0, "setup: %s", err.msg);
        return check_summary();
    }
    for (int i = 0; i < NA; i++) /* the adapters change the logits, and differently: a swap is visible */
        CHECK(memcmp(ref[i], ref[NA], n * sizeof(float)) && memcmp(ref[i], ref[1 - i], n * sizeof(float)), "adapter %d changes the logits", i);
    int nk = m.cfg.n_layer * LLAMA_N_SITES;
    float **w0 = calloc((size_t)nk, sizeof *w0);
    for (int k = 0; k < nk; k++) {
        const qmat *q = &m.w.layers[k / LLAMA_N_SITES].w[k % LLAMA_N_SITES];
        CHECK(q->type == QUANT_F32, "fixture site %d is f32", k);
        w0[k] = malloc((size_t)q->rows * q->cols * sizeof(float));
        memcpy(w0[k], q->data, (size_t)q->rows * q->cols * sizeof(float));
    }
    llama_adapter_set *s = NULL;
    CHECK(llama_adapter_set_new(&m, &s, &err) == 0, "set: %s", err.msg);
    peft_adapter *a[NA] = {0};
    for (int i = 0; i < NA; i++) {
        int id = -1;
        CHECK(peft_adapter_read(dirs[i], &a[i], NULL, 0, &err) == 0, "read %s: %s", dirs[i], err.msg);
        CHECK(llama_adapter_set_add(s, a[i], &id, &err) == 0 && id == i, "add %d: %s", i, err.msg);
    }
    CHECK(llama_adapter_set_count(s) == NA, "count");
    CHECK(llama_adapter_set_activate(s, NA, 0, &err) != 0, "activating a missing id fails");
    /* every switch, merged or not, with and without resident merged copies */
    const int order[] = {0, 1, -1, 1, 0, 0, -1};
    for (int keep = 0; keep < 2; keep++) {
        CHECK(llama_adapter_set_keep_merged(s, keep, &err) == 0, "keep_merged: %s", err.msg);
        for (size_t j = 0; j < sizeof order / sizeof *order; j++)
            for (int merge = 0; merge < 2; merge++) {
                int id = order[j];
                char what[96];
                snprintf(what, sizeof what, "adapter %d %s keep %d step %zu", id, merge ? "merged" : "unmerged", keep, j);
                if (llama_adapter_set_activate(s, id, merge, &err)) {
                    CHECK(0, "%s: %s", what, err.msg);
                    continue;
                }
                size_t got_n = 0;
                float *got = logits_of(&m, &got_n);
                if (got && id < 0) CHECK(memcmp(got, ref[NA], n * sizeof(float)) == 0, "%s: base logits exactly", what);
                else if (got) check_arrays_close(got, ref[id], n, 1e-5, 1e-4, what);
                free(got);
                CHECK(w0_same(&m, w0), "%s: W0 untouched", what);
            }
    }
    test_keep_merged_swap(&m, s, w0, ref);
    CHECK(llama_adapter_set_keep_merged(s, 0, &err) == 0, "keep_merged off: %s", err.msg);
    CHECK(llama_adapter_set_activate(s, -1, 0, &err) == 0 && !m.has_lora && w0_same(&m, w0), "none: W0 bit for bit");
    llama_adapter_set_free(s);
    /* a set needs a model without LoRA */
    CHECK(llama_peft_load(&m, dirs[0], NULL, 0, &err) == 0, "load: %s", err.msg);
    CHECK(llama_adapter_set_new(&m, &s, &err) != 0 && s == NULL, "a model with LoRA refuses a set");
    llama_model_free(&m);
    for (int i = 0; i < NA; i++) peft_adapter_free(a[i]);
    for (int k = 0; k < nk; k++) free(w0[k]);
    free(w0);
    for (int i = 0; i <= NA; i++) free(ref[i]);
    for (int i = 0; i < NA; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/adapter_config.json", dirs[i]);
        unlink(p);
        snprintf(p, sizeof p, "%s/adapter_model.safetensors", dirs[i]);
        unlink(p);
        rmdir(dirs[i]);
    }
    test_quantized(tmp);
    rmdir(tmp);
    return check_summary();
}
