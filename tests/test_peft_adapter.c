/* test_peft_adapter.c — PEFT adapters in memory (peft_adapter), several adapters over one base,
 * and adapter arithmetic (PEFT's add_weighted_adapter: cat, svd, linear), on a tiny random GPT-2:
 *  - read/write round trip keeps every tensor and the q,v split bit for bit; attaching it gives
 *    the logits of the model that wrote it bit for bit; F16/BF16 files read as the rounded values;
 *  - --adapter DIR:SCALE lists: the attached weighted sum (cat) gives the logits of base weights
 *    W0 + Σ scale_i·ΔW_i formed explicitly from each adapter's merged weights (|diff| <= 2e-5 +
 *    1e-4·|ref|: two float roundings of the deltas); one adapter without a scale is the adapter;
 *  - svd at full rank equals cat (same tolerance) with energy 1; truncated, the energy kept is
 *    σ1²/Σσ² (σ1 from power iteration, rel 1e-4) and ||D - D_k||² = (1 - kept)·||D||² (rel 1e-3);
 *  - linear follows PEFT's rule A = Σ √(w·s)·A_i, B = Σ √(w·s)·B_i (exact to float rounding);
 *  - bad input: non-numeric scales, duplicate names, another base's shapes, a rank that
 *    disagrees with the config, NaN tensors, legacy .bin: one-line errors, nothing half-loaded. */
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"

enum { B = 2, T = 8 };

static model_config tiny(void) { return fx_gpt2_config(2, 16, 2, 64, 16, 40); }

static int32_t ids[B * T];

/* A random base (seed 7) with fresh LoRA from o, B randomised, written as a PEFT dir. */
static void make_adapter(const char *dir, const model_lora_opts *o, uint64_t seed) {
    model_config c = tiny();
    model *m = NULL;
    lorac_err err = {0};
    CHECK(model_random(&c, 7, &m, &err) == 0, "random: %s", err.msg);
    if (!m) return;
    CHECK(model_add_lora(m, o, seed, &err) == 0, "lora: %s", err.msg);
    fx_lora_randomize(m, 0.2f, seed + 100);
    CHECK(model_save_adapter(m, dir, &err) == 0, "save %s: %s", dir, err.msg);
    model_free(m);
}

/* Logits (B,T,V) of the base with adapter a attached (a NULL: the base as it is). */
static float *logits_of(model *m, const peft_adapter *a) {
    lorac_err err = {0};
    if (a) CHECK(model_peft_attach(m, a, &err) == 0, "attach: %s", err.msg);
    float *out = fx_lm_logits(m, ids, B, T, &err);
    CHECK(out != NULL, "fwd: %s", err.msg);
    return out ? out : calloc((size_t)B * T * model_cfg(m)->vocab_size, sizeof(float));
}

static float *logits_attached(const peft_adapter *a) {
    model_config c = tiny();
    model *m = NULL;
    lorac_err err = {0};
    CHECK(model_random(&c, 7, &m, &err) == 0, "random");
    float *l = logits_of(m, a);
    model_free(m);
    return l;
}

/* The base (seed 7) with the adapter in dir (NULL: none) saved merged, W0 + s·BA, as an HF dir. */
static void save_merged(const char *dir, const char *out) {
    model_config c = tiny();
    model *m = NULL;
    lorac_err err = {0};
    CHECK(model_random(&c, 7, &m, &err) == 0, "random");
    if (dir) CHECK(model_attach_adapters(m, &dir, 1, NULL, 0, &err) == 0, "load %s: %s", dir, err.msg);
    CHECK(model_save_merged(m, out, -1, &err) == 0, "merged: %s", err.msg);
    model_free(m);
}

/* The model of base weights W0 + Σ scale_i·(merged_i - W0), formed explicitly tensor by tensor from
 * the merged checkpoints of the adapters in dirs (written under root). */
static model *model_with_deltas(const char *root, const char *const *dirs, const float *scale, int n) {
    char base[600], path[700], mdir[600];
    lorac_err err = {0};
    snprintf(base, sizeof base, "%s/ref_base", root);
    save_merged(NULL, base);
    st_file w0;
    snprintf(path, sizeof path, "%s/model.safetensors", base);
    if (st_open(path, &w0, &err)) {
        CHECK(0, "%s", err.msg);
        return NULL;
    }
    float **sum = calloc(w0.n_tensors, sizeof *sum);
    for (size_t i = 0; i < w0.n_tensors; i++) {
        sum[i] = malloc(w0.tensors[i].numel * sizeof(float));
        memcpy(sum[i], st_f32_view(&w0.tensors[i]), w0.tensors[i].numel * sizeof(float));
    }
    for (int k = 0; k < n; k++) {
        snprintf(mdir, sizeof mdir, "%s/ref_merged%d", root, k);
        save_merged(dirs[k], mdir);
        st_file mk;
        snprintf(path, sizeof path, "%s/model.safetensors", mdir);
        if (st_open(path, &mk, &err)) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        CHECK(mk.n_tensors == w0.n_tensors, "merged %d: %zu tensors, the base has %zu", k, mk.n_tensors, w0.n_tensors);
        for (size_t i = 0; i < w0.n_tensors && i < mk.n_tensors; i++) {
            const st_tensor *t = &w0.tensors[i], *u = st_find(&mk, t->name);
            CHECK(u && u->numel == t->numel, "merged %d lacks %s", k, t->name);
            if (!u || u->numel != t->numel) continue;
            const float *wm = st_f32_view(u), *wb = st_f32_view(t);
            for (size_t j = 0; j < t->numel; j++) sum[i][j] += scale[k] * (wm[j] - wb[j]);
        }
        st_close(&mk);
    }
    st_entry *e = calloc(w0.n_tensors, sizeof *e);
    for (size_t i = 0; i < w0.n_tensors; i++) {
        e[i].name = w0.tensors[i].name;
        e[i].dtype = e[i].out_dtype = ST_F32;
        e[i].ndim = w0.tensors[i].ndim;
        memcpy(e[i].shape, w0.tensors[i].shape, sizeof e[i].shape);
        e[i].data = sum[i];
    }
    snprintf(path, sizeof path, "%s/model.safetensors", base);
    char tmp[720];
    snprintf(tmp, sizeof tmp, "%s.sum", path);
    CHECK(st_write(tmp, e, w0.n_tensors, NULL, NULL, 0, &err) == 0, "write sum: %s", err.msg);
    for (size_t i = 0; i < w0.n_tensors; i++) free(sum[i]);
    free(sum);
    free(e);
    st_close(&w0);
    CHECK(rename(tmp, path) == 0, "rename");
    model *m = NULL;
    CHECK(model_load(base, &FX_NO_TOK, &m, &err) == 0, "load the sum: %s", err.msg);
    return m;
}

static void test_round_trip(const char *root) {
    char d1[512], d2[512], d3[512];
    snprintf(d1, sizeof d1, "%s/rt1", root);
    snprintf(d2, sizeof d2, "%s/rt2", root);
    model_lora_opts o = fx_lora_opts(2, 4, 0, "q,v,attn.c_proj,wte");
    make_adapter(d1, &o, 3);
    lorac_err err = {0};
    peft_adapter *a = NULL, *b = NULL;
    CHECK(peft_adapter_read(d1, &a, NULL, 0, &err) == 0, "read: %s", err.msg);
    if (!a) return;
    CHECK(a->n == 2 * 2 * 2 + 2, "tensors: %zu", a->n);
    CHECK(peft_adapter_meta(a, "lorac.c_attn_split") != NULL, "split metadata kept");
    CHECK(peft_adapter_write(a, d2, &err) == 0, "write: %s", err.msg);
    CHECK(peft_adapter_read(d2, &b, NULL, 0, &err) == 0, "read back: %s", err.msg);
    int same = b && b->n == a->n;
    for (size_t i = 0; same && i < a->n; i++) {
        const peft_tensor *t = peft_adapter_find(b, a->t[i].name);
        same = t && t->shape[0] == a->t[i].shape[0] && t->shape[1] == a->t[i].shape[1] &&
               !memcmp(t->data, a->t[i].data, (size_t)t->shape[0] * t->shape[1] * sizeof(float));
    }
    CHECK(same, "write + read keeps every tensor bit for bit");
    CHECK(b && peft_rank_for(&b->cfg, "transformer.h.1.attn.c_attn") == 4, "rank_pattern kept");
    /* attaching gives the writer's logits bit for bit (the load path is read + attach) */
    model_config c = tiny();
    model *m = NULL;
    const char *spec = d1;
    CHECK(model_random(&c, 7, &m, &err) == 0, "random");
    CHECK(model_attach_adapters(m, &spec, 1, NULL, 0, &err) == 0, "load: %s", err.msg);
    const lora_param *qb = lora_registry_find(model_registry(m), "transformer.h.0.attn.c_attn.lora_B");
    CHECK(qb && qb->shape[0] == 2 * c.n_embd, "the split comes back as a MergedLinear (lora_B of q and v: 2C rows)");
    float *l1 = logits_of(m, NULL), *l2 = logits_attached(b);
    CHECK(!memcmp(l1, l2, (size_t)B * T * c.vocab_size * sizeof(float)), "written adapter: same logits");
    free(l1);
    free(l2);
    model_free(m);

    /* F16 and BF16 files read as the rounded values */
    for (int half = 0; half < 2; half++) {
        snprintf(d3, sizeof d3, "%s/rt_%s", root, half ? "bf16" : "f16");
        mkdir(d3, 0777);
        st_entry *e = calloc(a->n, sizeof *e);
        for (size_t i = 0; i < a->n; i++) {
            e[i].name = a->t[i].name;
            e[i].dtype = ST_F32;
            e[i].out_dtype = half ? ST_BF16 : ST_F16;
            e[i].ndim = 2;
            e[i].shape[0] = a->t[i].shape[0];
            e[i].shape[1] = a->t[i].shape[1];
            e[i].data = a->t[i].data;
        }
        char p[600];
        snprintf(p, sizeof p, "%s/adapter_model.safetensors", d3);
        const char *mk[1] = {"lorac.c_attn_split"}, *mv[1] = {peft_adapter_meta(a, "lorac.c_attn_split")};
        CHECK(st_write(p, e, a->n, mk, mv, 1, &err) == 0, "write half: %s", err.msg);
        snprintf(p, sizeof p, "%s/adapter_config.json", d3);
        CHECK(peft_config_save(&a->cfg, p, &err) == 0, "config: %s", err.msg);
        free(e);
        peft_adapter *h = NULL;
        CHECK(peft_adapter_read(d3, &h, NULL, 0, &err) == 0, "read half: %s", err.msg);
        int ok = h != NULL;
        for (size_t i = 0; ok && i < a->n; i++) {
            const peft_tensor *t = peft_adapter_find(h, a->t[i].name);
            for (size_t j = 0; ok && t && j < (size_t)(t->shape[0] * t->shape[1]); j++) {
                float x = a->t[i].data[j];
                float want = half ? lorac_bf16_to_f32(lorac_f32_to_bf16(x)) : lorac_f16_to_f32(lorac_f32_to_f16(x));
                ok = t->data[j] == want;
            }
            ok = ok && t;
        }
        CHECK(ok, "%s tensors read as rounded f32", half ? "BF16" : "F16");
        peft_adapter_free(h);
    }
    peft_adapter_free(a);
    peft_adapter_free(b);
}

static void test_weighted(const char *root) {
    char d1[512], d2[512], s1[600], s2[600];
    snprintf(d1, sizeof d1, "%s/w1", root);
    snprintf(d2, sizeof d2, "%s/w2", root);
    model_lora_opts o = fx_lora_opts(2, 4, 0, "q,v,mlp.c_fc");
    make_adapter(d1, &o, 5);
    o = fx_lora_opts(3, 6, 0, "c_attn,mlp.c_proj");
    o.use_rslora = 1;
    make_adapter(d2, &o, 6);
    lorac_err err = {0};
    model_config c = tiny();
    size_t nl = (size_t)B * T * c.vocab_size;

    /* one adapter, no scale: the adapter itself */
    const char *one[1] = {d1};
    peft_adapter *w = NULL;
    CHECK(peft_adapters_load_weighted(one, 1, &w, NULL, 0, &err) == 0, "weighted 1: %s", err.msg);
    model *m = NULL;
    CHECK(model_random(&c, 7, &m, &err) == 0, "random");
    CHECK(model_attach_adapters(m, one, 1, NULL, 0, &err) == 0, "load: %s", err.msg);
    float *la = logits_of(m, NULL), *lb = logits_attached(w);
    CHECK(!memcmp(la, lb, nl * sizeof(float)), "DIR alone == the adapter");
    model_free(m);
    free(la);
    free(lb);
    peft_adapter_free(w);

    /* DIR:0.5 + DIR:-1.5 == W0 + 0.5·ΔW1 - 1.5·ΔW2 */
    snprintf(s1, sizeof s1, "%s:0.5", d1);
    snprintf(s2, sizeof s2, "%s:-1.5", d2);
    const char *two[2] = {s1, s2};
    CHECK(peft_adapters_load_weighted(two, 2, &w, NULL, 0, &err) == 0, "weighted 2: %s", err.msg);
    const char *dirs[2] = {d1, d2};
    float scales[2] = {0.5f, -1.5f};
    model *ref = model_with_deltas(root, dirs, scales, 2);
    if (!ref) {
        peft_adapter_free(w);
        return;
    }
    float *lref = logits_of(ref, NULL), *lw = logits_attached(w);
    check_arrays_close(lw, lref, nl, 2e-5, 1e-4, "weighted sum (cat) vs explicit W0 + sum of deltas");

    /* svd at full rank is the same sum; energy 1 */
    peft_adapter *ads[2] = {NULL, NULL}, *sv = NULL;
    CHECK(peft_adapter_read(d1, &ads[0], NULL, 0, &err) == 0 && peft_adapter_read(d2, &ads[1], NULL, 0, &err) == 0, "read");
    float wts[2] = {0.5f, -1.5f};
    double energy = 0;
    CHECK(peft_adapter_combine(ads, wts, 2, PEFT_COMBINE_SVD, 7, &sv, &energy, &err) == 0, "svd: %s", err.msg);
    if (sv) {
        float *ls = logits_attached(sv);
        check_arrays_close(ls, lref, nl, 2e-5, 1e-4, "svd at full rank vs explicit sum");
        CHECK_CLOSE(energy, 1.0, 1e-9, 0, "full-rank energy");
        CHECK(sv->cfg.r == 7 && sv->cfg.lora_alpha == 7 && !sv->cfg.use_rslora, "svd rank 7, scaling 1");
        /* the combined adapter survives write + read */
        char d3[512];
        snprintf(d3, sizeof d3, "%s/w_svd", root);
        peft_adapter *back = NULL;
        CHECK(peft_adapter_write(sv, d3, &err) == 0 && peft_adapter_read(d3, &back, NULL, 0, &err) == 0, "svd io: %s", err.msg);
        if (back) {
            float *lback = logits_attached(back);
            CHECK(!memcmp(lback, ls, nl * sizeof(float)), "a combined adapter written and read back: same logits");
            free(lback);
        }
        free(ls);
        peft_adapter_free(back);
        peft_adapter_free(sv);
    }
    /* cat: ranks add; modules only in one adapter keep their rank through rank_pattern */
    CHECK(w->cfg.lora_alpha == w->cfg.r && peft_scaling_for(&w->cfg, "transformer.h.0.attn.c_attn") == 1.0, "cat scaling 1");
    CHECK(peft_rank_for(&w->cfg, "transformer.h.0.attn.c_attn") == 4 + 3, "c_attn ranks add: %d",
          peft_rank_for(&w->cfg, "transformer.h.0.attn.c_attn"));
    CHECK(peft_rank_for(&w->cfg, "transformer.h.1.mlp.c_fc") == 2, "c_fc keeps rank 2");
    /* linear needs equal ranks */
    peft_adapter *lin = NULL;
    CHECK(peft_adapter_combine(ads, wts, 2, PEFT_COMBINE_LINEAR, 0, &lin, NULL, &err) == LORAC_EINVAL && !lin &&
          strstr(err.msg, "equal ranks"), "linear with unequal ranks: %s", err.msg);
    peft_adapter_free(ads[0]);
    peft_adapter_free(ads[1]);
    free(lref);
    free(lw);
    model_free(ref);
    peft_adapter_free(w);
}

/* One module "base_model.model.m.lora_A.weight" (r,K) / lora_B (M,r) with config r, alpha. */
static peft_adapter *one_module(int M, int K, int r, double alpha, uint64_t seed) {
    peft_config pc;
    peft_config_init(&pc);
    pc.r = r;
    pc.lora_alpha = alpha;
    snprintf(pc.target_modules[pc.n_targets++], 64, "m");
    peft_adapter *a = NULL;
    lorac_err err = {0};
    peft_adapter_new(&pc, &a, &err);
    lorac_rng rng;
    lorac_rng_seed(&rng, seed);
    float *A = malloc(sizeof(float) * r * K), *Bm = malloc(sizeof(float) * M * r);
    for (int i = 0; i < r * K; i++) A[i] = lorac_rng_normal(&rng);
    for (int i = 0; i < M * r; i++) Bm[i] = lorac_rng_normal(&rng);
    CHECK(peft_adapter_add(a, "base_model.model.m.lora_A.weight", r, K, A, &err) == 0, "add A");
    CHECK(peft_adapter_add(a, "base_model.model.m.lora_B.weight", M, r, Bm, &err) == 0, "add B");
    CHECK(peft_adapter_add(a, "base_model.model.m.lora_B.weight", M, r, Bm, &err) == LORAC_EFORMAT &&
          strstr(err.msg, "duplicate"), "duplicate name: %s", err.msg);
    free(A);
    free(Bm);
    return a;
}

/* D (M,K) = s·B·A of the single module of a, in double. */
static double *delta_of(const peft_adapter *a, int M, int K) {
    const peft_tensor *A = peft_adapter_find(a, "base_model.model.m.lora_A.weight");
    const peft_tensor *Bt = peft_adapter_find(a, "base_model.model.m.lora_B.weight");
    double s = peft_scaling_for(&a->cfg, "m"), *D = calloc((size_t)M * K, sizeof(double));
    int r = (int)A->shape[0];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < K; j++) {
            double x = 0;
            for (int t = 0; t < r; t++) x += (double)Bt->data[i * r + t] * A->data[t * K + j];
            D[i * K + j] = s * x;
        }
    return D;
}

static void test_svd_linear(void) {
    enum { M = 30, K = 20 };
    peft_adapter *ads[2] = {one_module(M, K, 4, 8.0, 1), one_module(M, K, 4, 2.0, 2)};
    float w[2] = {0.7f, 0.4f};
    double *D1 = delta_of(ads[0], M, K), *D2 = delta_of(ads[1], M, K), *D = calloc(M * K, sizeof(double));
    double tot = 0;
    for (int i = 0; i < M * K; i++) D[i] = w[0] * D1[i] + w[1] * D2[i], tot += D[i] * D[i];
    lorac_err err = {0};
    peft_adapter *o = NULL;
    double kept = 0;
    CHECK(peft_adapter_combine(ads, w, 2, PEFT_COMBINE_SVD, 1, &o, &kept, &err) == 0, "svd k=1: %s", err.msg);
    /* σ1² by power iteration on DᵀD */
    double v[K], u[M], s1 = 0;
    for (int j = 0; j < K; j++) v[j] = 1.0 + 0.1 * j;
    for (int it = 0; it < 500; it++) {
        for (int i = 0; i < M; i++) { u[i] = 0; for (int j = 0; j < K; j++) u[i] += D[i * K + j] * v[j]; }
        double n = 0;
        for (int j = 0; j < K; j++) { v[j] = 0; for (int i = 0; i < M; i++) v[j] += D[i * K + j] * u[i]; n += v[j] * v[j]; }
        n = sqrt(n);
        for (int j = 0; j < K; j++) v[j] /= n;
        s1 = n; /* ||DᵀD v|| -> σ1² */
    }
    CHECK_CLOSE(kept, s1 / tot, 0, 1e-4, "energy kept = σ1²/Σσ²");
    if (o) {
        double *Dk = delta_of(o, M, K), res = 0;
        for (int i = 0; i < M * K; i++) res += (D[i] - Dk[i]) * (D[i] - Dk[i]);
        CHECK_CLOSE(res, (1 - kept) * tot, 0, 1e-3, "||D - D_1||² = (1 - kept)·||D||²");
        free(Dk);
    }
    peft_adapter_free(o);
    /* linear: PEFT's rule on A and B separately */
    CHECK(peft_adapter_combine(ads, w, 2, PEFT_COMBINE_LINEAR, 0, &o, &kept, &err) == 0, "linear: %s", err.msg);
    if (o) {
        const char *nm[2] = {"base_model.model.m.lora_A.weight", "base_model.model.m.lora_B.weight"};
        double c0 = sqrt(0.7f * 2.0), c1 = sqrt(0.4f * 0.5);
        for (int ab = 0; ab < 2; ab++) {
            const peft_tensor *t = peft_adapter_find(o, nm[ab]), *x = peft_adapter_find(ads[0], nm[ab]), *y = peft_adapter_find(ads[1], nm[ab]);
            size_t n = (size_t)(t->shape[0] * t->shape[1]);
            float *want = malloc(n * sizeof(float));
            for (size_t i = 0; i < n; i++) want[i] = (float)(c0 * x->data[i] + c1 * y->data[i]);
            check_arrays_close(t->data, want, n, 1e-6, 1e-5, ab ? "linear B" : "linear A");
            free(want);
        }
        CHECK(o->cfg.r == 4 && o->cfg.lora_alpha == 4, "linear keeps rank, scaling 1");
        peft_adapter_free(o);
    }
    float neg[2] = {-0.5f, 1.0f};
    CHECK(peft_adapter_combine(ads, neg, 2, PEFT_COMBINE_LINEAR, 0, &o, NULL, &err) == LORAC_EINVAL && !o &&
          strstr(err.msg, "negative"), "linear with a negative weight: %s", err.msg);
    peft_adapter *odd = one_module(M + 1, K, 4, 8.0, 3), *mix[2] = {ads[0], odd};
    CHECK(peft_adapter_combine(mix, w, 2, PEFT_COMBINE_CAT, 0, &o, NULL, &err) == LORAC_ESHAPE && !o, "shapes: %s", err.msg);
    peft_adapter_free(odd);
    free(D1); free(D2); free(D);
    peft_adapter_free(ads[0]);
    peft_adapter_free(ads[1]);
}

static void test_bad_input(const char *root) {
    lorac_err err = {0};
    char dir[256];
    float s;
    CHECK(peft_adapter_spec_parse("a/b:0.25", dir, sizeof dir, &s, &err) == 0 && !strcmp(dir, "a/b") && s == 0.25f, "spec");
    CHECK(peft_adapter_spec_parse("a/b", dir, sizeof dir, &s, &err) == 0 && s == 1.0f, "spec without scale");
    CHECK(peft_adapter_spec_parse("a/b:x2", dir, sizeof dir, &s, &err) == LORAC_EINVAL && strstr(err.msg, "'x2'") &&
          strstr(err.msg, "not a number"), "bad scale: %s", err.msg);
    CHECK(peft_adapter_spec_parse(":2", dir, sizeof dir, &s, &err) == LORAC_EINVAL, "no dir");
    CHECK(peft_adapter_spec_parse("d:nan", dir, sizeof dir, &s, &err) == LORAC_EINVAL, "nan scale");
    char good[512], spec[600];
    snprintf(good, sizeof good, "%s/w1", root);
    snprintf(spec, sizeof spec, "%s/none:2", root);
    const char *specs[2] = {good, spec};
    peft_adapter *a = (peft_adapter *)1;
    CHECK(peft_adapters_load_weighted(specs, 2, &a, NULL, 0, &err) == LORAC_ENOTFOUND && a == NULL, "missing: %s", err.msg);
    snprintf(spec, sizeof spec, "%s:two", good);
    specs[1] = spec;
    CHECK(peft_adapters_load_weighted(specs, 2, &a, NULL, 0, &err) == LORAC_EINVAL && !a && strstr(err.msg, "two"), "scale: %s", err.msg);
    /* another base's shapes: nothing attached */
    model_config c = fx_gpt2_config(2, 8, 2, 32, 16, 40);
    model *m = NULL;
    CHECK(model_random(&c, 1, &m, &err) == 0, "random");
    CHECK(peft_adapter_read(good, &a, NULL, 0, &err) == 0, "read");
    if (!m || !a) {
        model_free(m);
        peft_adapter_free(a);
        return;
    }
    CHECK(model_peft_attach(m, a, &err) == LORAC_ESHAPE && !model_has_lora(m) && !strchr(err.msg, '\n') &&
          strstr(err.msg, "another base"), "another base: %s", err.msg);
    model_free(m);
    /* a rank that disagrees with the config; NaN values; legacy .bin */
    char bad[512], p[600];
    snprintf(bad, sizeof bad, "%s/bad_rank", root);
    a->cfg.n_rank_pattern = 0; /* c_attn is rank 4 (q,v split of r 2) but the config now says 2 */
    CHECK(peft_adapter_write(a, bad, &err) == 0, "write");
    peft_adapter *b = NULL;
    CHECK(peft_adapter_read(bad, &b, NULL, 0, &err) == LORAC_ESHAPE && !b && strstr(err.msg, "gives it rank 2"), "rank: %s", err.msg);
    snprintf(bad, sizeof bad, "%s/bad_nan", root);
    peft_config_load(good, &a->cfg, &err);
    a->t[0].data[0] = NAN;
    CHECK(peft_adapter_write(a, bad, &err) == 0, "write");
    CHECK(peft_adapter_read(bad, &b, NULL, 0, &err) == LORAC_EFORMAT && !b && strstr(err.msg, "NaN"), "nan: %s", err.msg);
    snprintf(bad, sizeof bad, "%s/legacy", root);
    mkdir(bad, 0777);
    snprintf(p, sizeof p, "%s/adapter_model.bin", bad);
    FILE *f = fopen(p, "wb");
    if (f) fclose(f);
    CHECK(peft_adapter_read(bad, &b, NULL, 0, &err) != 0 && !b && strstr(err.msg, "safe_serialization"), "legacy: %s", err.msg);
    peft_adapter_free(a);
}

int main(void) {
    for (int i = 0; i < B * T; i++) ids[i] = (i * 7 + 3) % 39;
    char root[] = "/tmp/lorac_peft_adapter_XXXXXX";
    CHECK(mkdtemp(root) != NULL, "mkdtemp");
    test_round_trip(root);
    test_weighted(root);
    test_svd_linear();
    test_bad_input(root);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK(system(cmd) == 0, "cleanup");
    return check_summary();
}
