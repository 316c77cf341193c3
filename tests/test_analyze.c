/* test_analyze.c — lorac analyze's numbers (src/lora/analyze.c) against NumPy (tools/analyze_ref.py,
 * tests/fixtures/analyze: the explicit ΔW = s·B·A and numpy's full SVDs, float64):
 *  - singular values, energies, effective rank, ||ΔW||_F, ||W||_F, ||Uᵀ·W·Vᵀ||_F for ΔW's and W's
 *    own top-r singular vectors, the amplification factor, φ from A (Eq. 4) and from B (footnote 7):
 *    on a Llama-style pair (W (out, in), r 4 vs r 6: a rank mismatch; a LoRA on the token
 *    embedding, ΔW = (B·A)ᵀ against W (vocab, dim); a planted spectrum 5, 3, 2, 0.5 and a planted
 *    shared 2-D subspace: φ = 1 where min(i, j) <= 2) and on a GPT-2
 *    pair (fan_in_fan_out: W (in, out), c_attn with lorac's q,v split analysed per slice, r 2 vs 3);
 *    |diff| <= 1e-10 + 1e-9·|ref| (both sides double; measured ~1e-14);
 *  - the low-rank SVD's singular vectors equal numpy's full SVD of the explicit ΔW (same sign
 *    convention), and U·Σ·Vt rebuilds ΔW formed here;
 *  - φ's properties: φ(A, A, i, i) = 1, φ(A1, A2, i, j) = φ(A2, A1, j, i), all values in [0, 1];
 *  - the random baselines' means over 300 seeds: E||UᵀWV||_F² = (k/out)(k/in)·||W||_F² for random
 *    orthonormal U, V, and E φ = max(i, j)/in for Gaussian A1, A2 (within 8% / 0.03);
 *    and a module's draws do not depend on the filters;
 *  - analyze_projection with given U, V; W not available; filters (--targets, --layers) and their
 *    errors; mismatched adapters; a base of the wrong shape; the JSON report's keys. */
#include <stdlib.h>

#include "check.h"
#include "lorac.h"
#include "lorac/analyze.h"

#define FIX LORAC_SOURCE_DIR "/tests/fixtures/analyze"

static st_file ref;

/* The F64 reference tensor name as a malloc'd double array (*n elements), or NULL. */
static double *ref_get(const char *name, size_t *n) {
    const st_tensor *t = st_find(&ref, name);
    CHECK(t && t->dtype == ST_F64, "reference %s missing", name);
    if (!t || t->dtype != ST_F64) return NULL;
    double *v = malloc(t->numel * sizeof(double) + 1);
    memcpy(v, t->data, t->numel * sizeof(double));
    if (n) *n = t->numel;
    return v;
}

static void close_arrays(const double *got, const double *want, size_t n, const char *what) {
    size_t bad = n;
    for (size_t i = 0; i < n && bad == n; i++)
        if (!(fabs(got[i] - want[i]) <= 1e-10 + 1e-9 * fabs(want[i]))) bad = i;
    CHECK(bad == n, "%s: element %zu got %.12g want %.12g", what, bad, bad < n ? got[bad] : 0, bad < n ? want[bad] : 0);
}

/* ---------------------------------------------------------------- W from a safetensors file */

typedef struct wctx {
    st_file f;
    analyze_layout layout;
    int not_available;        /* say "not available" for every module */
    float *buf;               /* the last matrix handed out (analyze uses W only while at that module) */
} wctx;

static int weight_cb(void *ctx, const char *module, int embedding, analyze_weight *w, lorac_err *err) {
    wctx *c = ctx;
    if (c->not_available) {
        snprintf(w->why, sizeof w->why, "test: no W");
        return LORAC_OK;
    }
    char name[300];
    snprintf(name, sizeof name, "%s.weight", module);
    const st_tensor *t = st_find(&c->f, name);
    if (!t) return lorac_fail(err, LORAC_ENOTFOUND, "test: no %s", name);
    float *b = malloc(t->numel * sizeof(float));
    if (!b || st_read_f32(&c->f, t, b, err)) {
        free(b);
        return lorac_fail(err, LORAC_EIO, "test: cannot read %s", name);
    }
    free(c->buf);
    c->buf = b;
    w->data = b;
    w->rows = t->shape[0];
    w->cols = t->shape[1];
    w->layout = embedding ? ANALYZE_IN_OUT : c->layout; /* embeddings are (vocab, dim) */
    return LORAC_OK;
}

static void wctx_close(wctx *c) {
    free(c->buf);
    st_close(&c->f);
}

/* ---------------------------------------------------------------- reference comparisons */

static void check_delta(const analyze_module *m, const analyze_delta *d, const char *ad) {
    char key[400], what[500];
    snprintf(key, sizeof key, "%s.%s%s%c", ad, m->name, m->slice ? "." : "", m->slice);
    size_t n = 0;
    double *sv = ref_get(strcat(strcpy(what, key), ".sv"), &n);
    if (!sv) return;
    CHECK((size_t)d->n_sv == n, "%s: %d singular values, numpy %zu", key, d->n_sv, n);
    close_arrays(d->sv, sv, n, what);
    double *en = ref_get(strcat(strcpy(what, key), ".energy"), NULL);
    if (en) close_arrays(d->energy, en, n, what);
    double *sc = ref_get(strcat(strcpy(what, key), ".scalars"), NULL);
    if (sc) {
        double got[6] = {d->effective_rank, d->norm_delta, m->norm_weight, d->proj_delta, d->proj_weight, d->amplification};
        close_arrays(got, sc, m->has_weight ? 6 : 2, what); /* eff. rank, ||ΔW||, ||W||, projections, amplification */
    }
    free(sv);
    free(en);
    free(sc);
}

static void check_phi(const analyze_module *m, const char *cas) {
    char key[400], what[500];
    snprintf(key, sizeof key, "%s.%s%s%c", cas, m->name, m->slice ? "." : "", m->slice);
    size_t n = 0;
    double *p = ref_get(strcat(strcpy(what, key), ".phi"), &n);
    if (p) {
        CHECK(n == (size_t)m->phi_rows * m->phi_cols, "%s: φ is %dx%d", key, m->phi_rows, m->phi_cols);
        if (n == (size_t)m->phi_rows * m->phi_cols) close_arrays(m->phi, p, n, what);
    }
    free(p);
    p = ref_get(strcat(strcpy(what, key), ".phi_b"), &n);
    if (p && n == (size_t)m->phi_rows * m->phi_cols) close_arrays(m->phi_b, p, n, what);
    free(p);
    for (size_t i = 0; i < (size_t)m->phi_rows * m->phi_cols; i++)
        CHECK(m->phi[i] >= 0 && m->phi[i] <= 1 && m->phi_b[i] >= 0 && m->phi_b[i] <= 1 && m->phi_random[i] >= 0 &&
              m->phi_random[i] <= 1, "%s: φ in [0, 1]", key);
}

static analyze_report *run(const char *d1, const char *d2, const char *targets, const char *layers, wctx *w,
                           lorac_err *err) {
    peft_adapter *a1 = NULL, *a2 = NULL;
    analyze_report *r = NULL;
    analyze_opts o = {targets, layers, 0};
    int rc = peft_adapter_read(d1, &a1, NULL, 0, err);
    if (!rc && d2) rc = peft_adapter_read(d2, &a2, NULL, 0, err);
    if (!rc) analyze_run(a1, a2, &o, w ? weight_cb : NULL, w, &r, err);
    peft_adapter_free(a1);
    peft_adapter_free(a2);
    return r;
}

static void test_llama(void) {
    lorac_err err = {0};
    wctx w = {.layout = ANALYZE_OUT_IN};
    CHECK(st_open(FIX "/base_llama.safetensors", &w.f, &err) == 0, "%s", err.msg);
    analyze_report *r = run(FIX "/llama_r4", FIX "/llama_r6", NULL, NULL, &w, &err);
    CHECK(r && r->n == 5 && r->two, "llama: %s", r ? "5 modules" : err.msg);
    for (size_t i = 0; r && i < r->n; i++) {
        const analyze_module *m = &r->mods[i];
        int emb = !strcmp(m->name, "model.embed_tokens"); /* first: the tensors are in name order */
        CHECK(m->has_weight && !m->slice && m->embedding == emb && m->layer == (emb ? -1 : (int)(i - 1) / 2),
              "%s: W, no slice, embedding %d, layer %d", m->name, m->embedding, m->layer);
        CHECK(m->d[0].rank == 4 && m->d[1].rank == 6 && m->phi_rows == 4 && m->phi_cols == 6, "%s: ranks", m->name);
        check_delta(m, &m->d[0], "llama_r4");
        check_delta(m, &m->d[1], "llama_r6");
        check_phi(m, "llama");
    }
    if (r && r->n == 5) { /* layer 0 q_proj: the planted spectrum and shared subspace */
        const analyze_module *m = &r->mods[1];
        CHECK(!strcmp(m->name, "model.layers.0.self_attn.q_proj"), "second module %s", m->name);
        const double want[4] = {5, 3, 2, 0.5};
        for (int i = 0; i < 4; i++) CHECK_CLOSE(m->d[0].sv[i], want[i], 1e-5, 1e-5, "planted σ");
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 6; j++)
                if (i < 2 || j < 2) CHECK_CLOSE(m->phi[i * 6 + j], 1.0, 1e-6, 0, "planted shared subspace: φ = 1");
        CHECK(m->phi[2 * 6 + 2] < 0.9, "φ(3, 3) below 1 off the shared subspace: %g", m->phi[14]);
    }
    analyze_report_free(r);
    /* W not available: the spectrum and φ still come, the projections are NaN */
    w.not_available = 1;
    r = run(FIX "/llama_r4", NULL, NULL, "0", &w, &err); /* the embedding has no layer: left out */
    CHECK(r && r->n == 2 && !r->two, "no W: %s", r ? "" : err.msg);
    for (size_t i = 0; r && i < r->n; i++) {
        CHECK(!r->mods[i].has_weight && !strcmp(r->mods[i].weight_why, "test: no W"), "no W: why");
        CHECK(isnan(r->mods[i].d[0].proj_delta) && isnan(r->mods[i].d[0].amplification) && isnan(r->mods[i].norm_weight),
              "no W: NaN projections");
        check_delta(&r->mods[i], &r->mods[i].d[0], "llama_r4");
    }
    analyze_report_free(r);
    wctx_close(&w);
}

static void test_gpt2(void) {
    lorac_err err = {0};
    wctx w = {.layout = ANALYZE_IN_OUT}; /* Conv1D: (in, out) */
    CHECK(st_open(FIX "/base_gpt2.safetensors", &w.f, &err) == 0, "%s", err.msg);
    analyze_report *r = run(FIX "/gpt2_r2", FIX "/gpt2_r3", NULL, NULL, &w, &err);
    CHECK(r && r->n == 3, "gpt2: %s", r ? "3 entries (c_attn.q, c_attn.v, c_fc)" : err.msg);
    const char slices[3] = {'q', 'v', 0};
    for (size_t i = 0; r && i < r->n && i < 3; i++) {
        const analyze_module *m = &r->mods[i];
        CHECK(m->slice == slices[i] && m->out == (i < 2 ? 16 : 64) && m->in == 16, "%s: slice %c, shape", m->name,
              slices[i] ? slices[i] : '-');
        CHECK(m->d[0].rank == 2 && m->d[1].rank == 3, "%s: per-slice ranks 2 and 3", m->name);
        CHECK_CLOSE(m->d[0].scaling, 8.0, 0, 1e-12, "gpt2_r2 scaling alpha/r");
        check_delta(m, &m->d[0], "gpt2_r2");
        check_delta(m, &m->d[1], "gpt2_r3");
        check_phi(m, "gpt2");
    }
    analyze_report_free(r);
    /* (out, in) where the base is (in, out): c_fc (16, 64) is no (64, 16) matrix */
    w.layout = ANALYZE_OUT_IN;
    r = run(FIX "/gpt2_r2", NULL, "c_fc", NULL, &w, &err);
    CHECK(!r && err.code == LORAC_ESHAPE && strstr(err.msg, "another base"), "wrong W shape: %s", err.msg);
    analyze_report_free(r);
    wctx_close(&w);
}

/* analyze_delta_svd's vectors against numpy's full SVD of the explicit ΔW, and U·Σ·Vt = ΔW. */
static void test_lowrank_vs_full(void) {
    lorac_err err = {0};
    peft_adapter *a = NULL;
    CHECK(peft_adapter_read(FIX "/llama_r6", &a, NULL, 0, &err) == 0, "%s", err.msg);
    const peft_tensor *A = a ? peft_adapter_find(a, "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight") : NULL;
    const peft_tensor *B = a ? peft_adapter_find(a, "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight") : NULL;
    CHECK(A && B, "llama_r6 layer 1 q_proj");
    if (!A || !B) return;
    enum { O = 24, R = 6, K = 20 };
    double s = 0.5, sv[R], U[O * R], Vt[R * K];
    CHECK(analyze_delta_svd(B->data, A->data, O, R, K, s, sv, U, Vt, &err) == 0, "%s", err.msg);
    double *ru = ref_get("llama_r6.model.layers.1.self_attn.q_proj.U", NULL);
    double *rv = ref_get("llama_r6.model.layers.1.self_attn.q_proj.Vt", NULL);
    double *rs = ref_get("llama_r6.model.layers.1.self_attn.q_proj.sv", NULL);
    if (ru && rv && rs) {
        close_arrays(sv, rs, R, "σ vs numpy's full SVD");
        close_arrays(U, ru, O * R, "U vs numpy's full SVD");
        close_arrays(Vt, rv, R * K, "Vt vs numpy's full SVD");
    }
    double worst = 0, big = 0;
    for (int i = 0; i < O; i++)
        for (int j = 0; j < K; j++) {
            double d = 0, x = 0;
            for (int t = 0; t < R; t++) d += s * B->data[i * R + t] * (double)A->data[t * K + j];
            for (int t = 0; t < R; t++) x += U[i * R + t] * sv[t] * Vt[t * K + j];
            worst = fmax(worst, fabs(d - x));
            big = fmax(big, fabs(d));
        }
    CHECK(worst <= 1e-12 * big, "U·Σ·Vt rebuilds ΔW: max |diff| %g (max |ΔW| %g)", worst, big);
    free(ru); free(rv); free(rs);
    peft_adapter_free(a);
}

static void test_phi_properties(void) {
    lorac_rng rng;
    lorac_rng_seed(&rng, 7);
    enum { N = 30, R1 = 5, R2 = 8 };
    float X1[R1 * N], X2[R2 * N];
    for (int i = 0; i < R1 * N; i++) X1[i] = lorac_rng_normal(&rng);
    for (int i = 0; i < R2 * N; i++) X2[i] = lorac_rng_normal(&rng);
    double self[R1 * R1], p12[R1 * R2], p21[R2 * R1];
    lorac_err err = {0};
    CHECK(analyze_phi(X1, R1, X1, R1, N, self, &err) == 0, "%s", err.msg);
    for (int i = 0; i < R1; i++) CHECK_CLOSE(self[i * R1 + i], 1.0, 1e-12, 0, "φ(A, A, i, i) = 1");
    CHECK_CLOSE(self[R1 * R1 - 1], 1.0, 1e-12, 0, "φ(A, A, r, r) = 1");
    CHECK(analyze_phi(X1, R1, X2, R2, N, p12, &err) == 0 && analyze_phi(X2, R2, X1, R1, N, p21, &err) == 0, "%s", err.msg);
    for (int i = 0; i < R1; i++)
        for (int j = 0; j < R2; j++) {
            CHECK_CLOSE(p12[i * R2 + j], p21[j * R1 + i], 1e-12, 0, "symmetry φ(A1,A2,i,j) = φ(A2,A1,j,i)");
            CHECK(p12[i * R2 + j] >= 0 && p12[i * R2 + j] <= 1, "φ in [0, 1]");
        }
    CHECK(analyze_phi(X1, R1, X2, R2, 4, p12, &err) == LORAC_EINVAL, "k > n is an error");
    /* analyze_projection with given orthonormal U, V (numpy's value) */
    wctx w = {.layout = ANALYZE_OUT_IN};
    CHECK(st_open(FIX "/base_llama.safetensors", &w.f, &err) == 0, "%s", err.msg);
    analyze_weight W;
    memset(&W, 0, sizeof W);
    CHECK(weight_cb(&w, "model.layers.0.self_attn.q_proj", 0, &W, &err) == 0, "%s", err.msg);
    double *U = ref_get("proj.U", NULL), *Vt = ref_get("proj.Vt", NULL), *want = ref_get("proj.value", NULL), got = 0;
    if (U && Vt && want) {
        CHECK(analyze_projection(&W, 0, 24, 20, U, Vt, 3, &got, &err) == 0, "%s", err.msg);
        close_arrays(&got, want, 1, "||Uᵀ·W·Vᵀ||_F with given U, V");
    }
    free(U); free(Vt); free(want);
    wctx_close(&w);
}

/* The random baselines' means over many seeds against their expectations. */
static void test_random_baselines(void) {
    lorac_err err = {0};
    wctx w = {.layout = ANALYZE_OUT_IN};
    CHECK(st_open(FIX "/base_llama.safetensors", &w.f, &err) == 0, "%s", err.msg);
    peft_adapter *a1 = NULL, *a2 = NULL;
    CHECK(peft_adapter_read(FIX "/llama_r4", &a1, NULL, 0, &err) == 0 &&
          peft_adapter_read(FIX "/llama_r6", &a2, NULL, 0, &err) == 0, "%s", err.msg);
    enum { SEEDS = 300 };
    double p2 = 0, phi[4 * 6] = {0}, nw = 0;
    int ok = a1 && a2;
    for (int s = 0; s < SEEDS && ok; s++) {
        analyze_opts o = {"v_proj", "1", (uint64_t)s};
        analyze_report *r = NULL;
        ok = analyze_run(a1, a2, &o, weight_cb, &w, &r, &err) == 0 && r->n == 1;
        if (!ok) break;
        p2 += r->mods[0].d[0].proj_random * r->mods[0].d[0].proj_random / SEEDS;
        nw = r->mods[0].norm_weight;
        for (int i = 0; i < 24; i++) phi[i] += r->mods[0].phi_random[i] / SEEDS;
        analyze_report_free(r);
    }
    CHECK(ok, "runs: %s", err.msg);
    if (ok) { /* v_proj (12, 20), k = 4: E||UᵀWV||² = (4/12)(4/20)||W||² */
        double e = (4.0 / 12) * (4.0 / 20) * nw * nw;
        CHECK(fabs(p2 - e) <= 0.08 * e, "mean random projection² %g, expected %g", p2, e);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 6; j++)
                CHECK_CLOSE(phi[i * 6 + j], (i > j ? i + 1 : j + 1) / 20.0, 0.03, 0, "mean random φ = max(i, j)/n");
    }
    /* a module's random draws depend on the seed and its name, not on which other modules the filters keep */
    analyze_opts all = {NULL, NULL, 5}, one = {"v_proj", "1", 5};
    analyze_report *ra = NULL, *r1 = NULL;
    CHECK(ok && analyze_run(a1, a2, &all, weight_cb, &w, &ra, &err) == 0 &&
          analyze_run(a1, a2, &one, weight_cb, &w, &r1, &err) == 0, "%s", err.msg);
    if (ra && r1) {
        const analyze_module *x = &ra->mods[ra->n - 1], *y = &r1->mods[0];
        CHECK(!strcmp(x->name, y->name) && x->d[0].proj_random == y->d[0].proj_random &&
              x->d[1].proj_random == y->d[1].proj_random && x->phi_random[5] == y->phi_random[5],
              "the random baselines of %s do not depend on the filters", y->name);
    }
    analyze_report_free(ra);
    analyze_report_free(r1);
    peft_adapter_free(a1);
    peft_adapter_free(a2);
    wctx_close(&w);
}

static void test_filters_and_errors(void) {
    lorac_err err = {0};
    struct { const char *t, *l; int n; } keep[] = {
        {"q_proj", NULL, 2}, {NULL, "1", 2}, {"self_attn.v_proj", "0-1", 2}, {"q_proj,v_proj", "0", 2},
        {"model.layers.1.self_attn.q_proj", NULL, 1}, {NULL, "0,1", 4}};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        analyze_report *r = run(FIX "/llama_r4", NULL, keep[i].t, keep[i].l, NULL, &err);
        CHECK(r && (int)r->n == keep[i].n, "--targets %s --layers %s: %zu modules (want %d) %s", keep[i].t ? keep[i].t : "-",
              keep[i].l ? keep[i].l : "-", r ? r->n : 0, keep[i].n, r ? "" : err.msg);
        analyze_report_free(r);
    }
    struct { const char *t; int n; char first; } sl[] = {{"v", 1, 'v'}, {"c_attn", 2, 'q'}, {"c_attn.q,c_fc", 2, 'q'}};
    for (size_t i = 0; i < sizeof sl / sizeof sl[0]; i++) {
        analyze_report *r = run(FIX "/gpt2_r2", NULL, sl[i].t, NULL, NULL, &err);
        CHECK(r && (int)r->n == sl[i].n && r->mods[0].slice == sl[i].first, "gpt2 --targets %s", sl[i].t);
        analyze_report_free(r);
    }
    struct { const char *t, *l, *needle; } bad[] = {
        {"nope", NULL, "'nope' matches no module"}, {NULL, "x", "--layers 'x'"}, {NULL, "7", "no module in layer 7"},
        {NULL, "3-1", "--layers '3-1'"}, {"q_proj,", NULL, "empty item"}, {NULL, "1,", "--layers '1,'"},
        {"roj", NULL, "matches no module"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        analyze_report *r = run(FIX "/llama_r4", NULL, bad[i].t, bad[i].l, NULL, &err);
        CHECK(!r && strstr(err.msg, bad[i].needle), "bad filter %s/%s: %s", bad[i].t ? bad[i].t : "-",
              bad[i].l ? bad[i].l : "-", r ? "accepted" : err.msg);
        analyze_report_free(r);
    }
    analyze_report *r = run(FIX "/llama_r4", FIX "/gpt2_r2", NULL, NULL, NULL, &err);
    CHECK(!r && strstr(err.msg, "has no module model."), "mismatched adapters: %s", err.msg);
    analyze_report_free(r);
    /* a modules_to_save copy (PEFT's mts_wte fixture) is left out and counted; its c_fc LoRA is analysed */
    r = run(LORAC_SOURCE_DIR "/tests/fixtures/peft/mts_wte", NULL, NULL, NULL, NULL, &err);
    CHECK(r && r->n >= 1 && r->ignored[0] == 1, "mts_wte: %s", r ? "one tensor left out" : err.msg);
    analyze_report_free(r);
}

/* The JSON report parses and has the keys. */
static void test_json(void) {
    lorac_err err = {0};
    analyze_report *r = run(FIX "/llama_r4", FIX "/llama_r6", "q_proj", "0", NULL, &err);
    CHECK(r != NULL, "%s", err.msg);
    if (!r) return;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(analyze_write_json(r, f, &err) == 0, "%s", err.msg);
    fclose(f);
    json_doc *doc = NULL;
    CHECK(json_parse(buf, len, "report", 1, &doc, &err) == 0, "JSON: %s", err.msg);
    const json_value *mods = doc ? json_get(json_root(doc), "modules") : NULL;
    CHECK(json_len(mods) == 1, "one module");
    const json_value *m = json_at(mods, 0);
    static const char *keys[] = {"name", "rank", "singular_values", "effective_rank", "norm_delta", "projection",
                                 "amplification", "phi", "energy", "phi_b", "phi_random", "second", "weight_note"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) CHECK(json_get(m, keys[i]) != NULL, "key %s", keys[i]);
    CHECK(!strcmp(json_str(json_get(m, "name")), "model.layers.0.self_attn.q_proj"), "name");
    CHECK(json_get_num(m, "rank", 0, NULL) == 4 && json_len(json_get(m, "singular_values")) == 4, "rank 4");
    const json_value *phi = json_get(m, "phi");
    CHECK(json_len(phi) == 4 && json_len(json_at(phi, 0)) == 6, "phi is r1 x r2 = 4 x 6");
    const json_value *pr = json_get(m, "projection");
    CHECK(json_get(pr, "delta") && json_kind(json_get(pr, "delta")) == JSON_NULL && json_get(pr, "weight") &&
          json_get(pr, "random"), "projection without W: delta/weight/random null");
    json_free(doc);
    free(buf);
    analyze_report_free(r);
}

int main(void) {
    lorac_err err = {0};
    if (st_open(FIX "/ref.safetensors", &ref, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_llama();
    test_gpt2();
    test_lowrank_vs_full();
    test_phi_properties();
    test_random_baselines();
    test_filters_and_errors();
    test_json();
    st_close(&ref);
    return check_summary();
}
