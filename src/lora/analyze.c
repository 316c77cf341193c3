/* Section 7 of the LoRA paper on a PEFT adapter (lorac/analyze.h): the spectrum of ΔW = s·B·A from
 * its thin factors, the subspace similarity φ of two adapters (Eq. 4) and ΔW against W (Table 7). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "lora/lora_internal.h"
#include "lorac/analyze.h"

#define SPLIT_KEY "lorac.c_attn_split" /* lorac's q/k/v split of GPT-2's c_attn (src/models/gpt2_peft.c) */

/* One analysed matrix of an adapter: a PEFT module, or one q/k/v slice of a split c_attn. */
typedef struct entry {
    const peft_module *m;
    char slice;                  /* 0 or 'q', 'k', 'v' */
    int64_t row_off, out, out_total, in; /* B's rows row_off .. row_off+out-1 of out_total */
    int col_off, r;              /* B's columns / A's rows col_off .. col_off+r-1 */
    char match[240];             /* module, or module.slice: what --targets compares */
} entry;

typedef struct entries {
    peft_adapter *view;          /* the adapter's LoRA A/B tensors only (shallow: data borrowed) */
    peft_module *mods;
    entry *e;
    size_t n;
    size_t ignored;              /* tensors left out: trained biases, modules_to_save copies */
} entries;

static void entries_free(entries *es) {
    if (es->view) free(es->view->t);
    free(es->view);
    free(es->mods);
    free(es->e);
}

/* A PEFT LoRA tensor name: base_model.model.<module>.lora_A.weight / lora_B.weight / lora_embedding_A|B. */
static int is_lora_tensor(const char *name) {
    static const char *sfx[] = {".lora_A.weight", ".lora_B.weight", ".lora_embedding_A", ".lora_embedding_B"};
    size_t n = strlen(name);
    if (strncmp(name, "base_model.model.", 17)) return 0;
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        size_t k = strlen(sfx[i]);
        if (n > 17 + k && !strcmp(name + n - k, sfx[i])) return 1;
    }
    return 0;
}

static const char *src_of(const peft_adapter *a) { return a->source[0] ? a->source : "adapter"; }

/* 1 when item is name or a dotted suffix of it. */
static int suffix_match(const char *name, const char *item, size_t n) {
    size_t len = strlen(name);
    if (len == n) return !strncmp(name, item, n);
    return len > n && name[len - n - 1] == '.' && !strncmp(name + len - n, item, n);
}

/* The first ".N." component of a module name, or -1. */
static int layer_of(const char *name) {
    for (const char *p = strchr(name, '.'); p; p = strchr(p + 1, '.')) {
        const char *q = p + 1;
        long v = 0;
        while (*q >= '0' && *q <= '9' && v < 100000000) v = v * 10 + (*q++ - '0');
        if (q > p + 1 && (*q == '.' || !*q)) return (int)v;
    }
    return -1;
}

/* Whether B (out_total, R) of a split c_attn is block diagonal as lorac writes it: slice g (enabled,
 * the j-th enabled one) uses only columns j·rs .. (j+1)·rs-1, a disabled slice's rows are zero. */
static int split_ok(const peft_module *m, const int *on, int rs) {
    int64_t C = m->B->shape[0] / 3, R = m->B->shape[1];
    for (int g = 0, j = 0; g < 3; g++) {
        for (int64_t row = g * C; row < (g + 1) * C; row++)
            for (int64_t col = 0; col < R; col++) {
                int inside = on[g] && col >= (int64_t)j * rs && col < (int64_t)(j + 1) * rs;
                if (!inside && m->B->data[row * R + col] != 0.0f) return 0;
            }
        if (on[g]) j++;
    }
    return 1;
}

/* The entries of an adapter: one per module, k per c_attn of a q/k/v split (k enabled slices). */
static int list_entries(const peft_adapter *a, entries *es, lorac_err *err) {
    memset(es, 0, sizeof *es);
    size_t nm = 0;
    es->view = malloc(sizeof *es->view);
    if (es->view) {
        *es->view = *a;
        es->view->n = 0;
        es->view->t = malloc((a->n + 1) * sizeof *a->t);
    }
    if (!es->view || !es->view->t) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", src_of(a));
    for (size_t i = 0; i < a->n; i++) {
        if (is_lora_tensor(a->t[i].name)) es->view->t[es->view->n++] = a->t[i];
        else es->ignored++;
    }
    int rc = peft_adapter_modules(es->view, &es->mods, &nm, err);
    if (rc) return rc;
    int on[3] = {0, 0, 0}, k = 0;
    const char *sv = peft_adapter_meta(a, SPLIT_KEY);
    if (sv && sscanf(sv, "%d,%d,%d", &on[0], &on[1], &on[2]) == 3) k = !!on[0] + !!on[1] + !!on[2];
    es->e = calloc(nm * 3 + 1, sizeof *es->e);
    if (!es->e) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", src_of(a));
    for (size_t i = 0; i < nm; i++) {
        const peft_module *m = &es->mods[i];
        int64_t out = m->B->shape[0], in = m->A->shape[1];
        int R = (int)m->A->shape[0];
        int split = k > 0 && !m->embedding && suffix_match(m->module, "attn.c_attn", 11) && out % 3 == 0 &&
                    R % k == 0 && split_ok(m, on, R / k);
        for (int g = 0, j = 0; g < 3; g++) {
            if (split && !on[g]) continue;
            entry *e = &es->e[es->n++];
            e->m = m;
            e->in = in;
            e->out_total = out;
            e->slice = split ? "qkv"[g] : 0;
            e->row_off = split ? g * (out / 3) : 0;
            e->out = split ? out / 3 : out;
            e->col_off = split ? j++ * (R / k) : 0;
            e->r = split ? R / k : R;
            snprintf(e->match, sizeof e->match, "%s%s%s", m->module, split ? "." : "", split ? (char[2]){e->slice, 0} : "");
            if (!split) break;
        }
    }
    return LORAC_OK;
}

/* ---------------------------------------------------------------- filters */

/* One --layers item at *p ("N" or "A-B") into [*a, *b]; *p moves past it and its comma. */
static int parse_layer_item(const char **p, const char *all, long *a, long *b, lorac_err *err) {
    char *end;
    const char *s = *p;
    if (*s < '0' || *s > '9') goto bad;
    *a = *b = strtol(s, &end, 10);
    if (*end == '-') {
        s = end + 1;
        if (*s < '0' || *s > '9') goto bad;
        *b = strtol(s, &end, 10);
    }
    if ((*end && *end != ',') || *b < *a || *b > 1000000) goto bad;
    *p = *end ? end + 1 : NULL;
    return LORAC_OK;
bad:
    return lorac_fail(err, LORAC_EINVAL, "--layers '%s': expected layer numbers such as 0,2,4-7", all);
}

/* keep[i] = 1 for the entries that --targets and --layers select; every item must select one. */
static int apply_filters(const entries *es, const analyze_opts *o, char *keep, lorac_err *err) {
    const char *t = o && o->targets && o->targets[0] ? o->targets : NULL;
    const char *l = o && o->layers && o->layers[0] ? o->layers : NULL;
    for (size_t i = 0; i < es->n; i++) keep[i] = (t ? 0 : 1) | (l ? 0 : 2); /* bit 0: a target, bit 1: a layer */
    for (const char *p = t; p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (!n) return lorac_fail(err, LORAC_EINVAL, "--targets '%s': empty item", t);
        int any = 0;
        for (size_t i = 0; i < es->n; i++)
            if (suffix_match(es->e[i].match, p, n) || suffix_match(es->e[i].m->module, p, n)) keep[i] |= 1, any = 1;
        if (!any) return lorac_fail(err, LORAC_EINVAL, "--targets: '%.*s' matches no module of the adapter", (int)n, p);
        p = c ? c + 1 : NULL;
    }
    for (const char *p = l; p;) {
        long a = 0, b = 0;
        int rc = parse_layer_item(&p, l, &a, &b, err), any = 0;
        if (rc) return rc;
        for (size_t i = 0; i < es->n; i++) {
            int ly = layer_of(es->e[i].m->module);
            if (ly >= a && ly <= b) keep[i] |= 2, any = 1;
        }
        if (!any && b > a) return lorac_fail(err, LORAC_EINVAL, "--layers: the adapter has no module in layers %ld-%ld", a, b);
        if (!any) return lorac_fail(err, LORAC_EINVAL, "--layers: the adapter has no module in layer %ld", a);
    }
    int left = 0;
    for (size_t i = 0; i < es->n; i++) left += keep[i] = keep[i] == 3;
    if (!left) return lorac_fail(err, LORAC_EINVAL, "--targets and --layers together select no module");
    return LORAC_OK;
}

/* ---------------------------------------------------------------- the pieces */

/* s·B (out, r) and A (r, in) of an entry, as row-major doubles. */
static void entry_factors(const entry *e, double *Bd, double *Ad) {
    const peft_module *m = e->m;
    int64_t R = m->B->shape[1];
    for (int64_t i = 0; i < e->out; i++)
        for (int t = 0; t < e->r; t++) Bd[i * e->r + t] = m->scaling * m->B->data[(e->row_off + i) * R + e->col_off + t];
    for (int t = 0; t < e->r; t++)
        for (int64_t j = 0; j < e->in; j++) Ad[t * e->in + j] = m->A->data[(e->col_off + t) * e->in + j];
}

double analyze_effective_rank(const double *sv, int n) {
    double sum = 0, h = 0;
    for (int i = 0; i < n; i++) sum += fabs(sv[i]);
    if (!(sum > 0)) return 0;
    for (int i = 0; i < n; i++) {
        double p = fabs(sv[i]) / sum;
        if (p > 0) h -= p * log(p);
    }
    return exp(h);
}

int analyze_delta_svd(const float *B, const float *A, int64_t out, int r, int64_t in, double s, double *sv, double *U,
                      double *Vt, lorac_err *err) {
    if (out < 1 || in < 1 || r < 1 || out > INT32_MAX || in > INT32_MAX)
        return lorac_fail(err, LORAC_EINVAL, "analyze: bad ΔW shape (%lld, %d, %lld)", (long long)out, r, (long long)in);
    double *Bd = malloc((size_t)out * r * sizeof(double)), *Ad = malloc((size_t)r * in * sizeof(double));
    int rc = (!Bd || !Ad) ? lorac_fail(err, LORAC_ENOMEM, "analyze: out of memory") : LORAC_OK;
    for (size_t i = 0; !rc && i < (size_t)out * r; i++) Bd[i] = s * B[i];
    for (size_t i = 0; !rc && i < (size_t)r * in; i++) Ad[i] = A[i];
    if (!rc) rc = lora_lowrank_svd_triplets(Bd, Ad, (int)out, r, (int)in, U, sv, Vt, "analyze", err);
    free(Bd);
    free(Ad);
    return rc;
}

/* The right-singular vectors of X (rows, n) row-major, k = min(rows, n) of them, as V (k, n): the
 * low-rank SVD of Id·X with Id the (rows, rows) identity. */
static int right_vectors(const double *X, int rows, int n, double *V, const char *what, lorac_err *err) {
    int k = rows < n ? rows : n;
    double *Id = calloc((size_t)rows * rows, sizeof(double)), *sv = malloc((size_t)k * sizeof(double));
    int rc = (!Id || !sv) ? lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", what) : LORAC_OK;
    for (int i = 0; !rc && i < rows; i++) Id[(size_t)i * rows + i] = 1;
    if (!rc) rc = lora_lowrank_svd_triplets(Id, X, rows, rows, n, NULL, sv, V, what, err);
    free(Id);
    free(sv);
    return rc;
}

/* φ(i, j), i <= k1, j <= k2, from the top right-singular vectors of X1 (rows1, n) and X2 (rows2, n)
 * (row-major doubles; k <= min(rows, n)): G = V1·V2ᵀ (k1, k2), φ(i, j) = Σ_{a<=i, b<=j} G_ab² / min(i, j). */
static int phi_dense(const double *X1, int rows1, int k1, const double *X2, int rows2, int k2, int n, double *phi,
                     const char *what, lorac_err *err) {
    double *V1 = malloc((size_t)rows1 * n * sizeof(double)), *V2 = malloc((size_t)rows2 * n * sizeof(double));
    double *G = malloc((size_t)k1 * k2 * sizeof(double));
    int rc = (!V1 || !V2 || !G) ? lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", what) : LORAC_OK;
    if (!rc) rc = right_vectors(X1, rows1, n, V1, what, err);
    if (!rc) rc = right_vectors(X2, rows2, n, V2, what, err);
    if (!rc) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k1, k2, n, 1.0, V1, n, V2, n, 0.0, G, k2);
        for (int i = 0; i < k1; i++) /* 2-D prefix sums of G², divided by min(i, j) below */
            for (int j = 0; j < k2; j++) {
                double g = G[(size_t)i * k2 + j], s = g * g;
                if (i) s += phi[(size_t)(i - 1) * k2 + j];
                if (j) s += phi[(size_t)i * k2 + j - 1];
                if (i && j) s -= phi[(size_t)(i - 1) * k2 + j - 1];
                phi[(size_t)i * k2 + j] = s;
            }
        for (int i = 0; i < k1; i++)
            for (int j = 0; j < k2; j++) {
                double v = phi[(size_t)i * k2 + j] / (i < j ? i + 1 : j + 1);
                phi[(size_t)i * k2 + j] = v < 0 ? 0 : v > 1 ? 1 : v; /* rounding can step outside [0, 1] */
            }
    }
    free(V1);
    free(V2);
    free(G);
    return rc;
}

int analyze_phi(const float *X1, int k1, const float *X2, int k2, int64_t n, double *phi, lorac_err *err) {
    if (k1 < 1 || k2 < 1 || n < k1 || n < k2 || n > INT32_MAX)
        return lorac_fail(err, LORAC_EINVAL, "analyze: φ needs 1 <= k1, k2 <= n (%d, %d, %lld)", k1, k2, (long long)n);
    double *D1 = malloc((size_t)k1 * n * sizeof(double)), *D2 = malloc((size_t)k2 * n * sizeof(double));
    int rc = (!D1 || !D2) ? lorac_fail(err, LORAC_ENOMEM, "analyze: out of memory") : LORAC_OK;
    for (size_t i = 0; !rc && i < (size_t)k1 * n; i++) D1[i] = X1[i];
    for (size_t i = 0; !rc && i < (size_t)k2 * n; i++) D2[i] = X2[i];
    if (!rc) rc = phi_dense(D1, k1, k1, D2, k2, k2, (int)n, phi, "analyze", err);
    free(D1);
    free(D2);
    return rc;
}

/* W's (out, in) block at rows row_off.. as a row-major double copy (*Wd, malloc'd). */
static int weight_dense(const analyze_weight *w, int64_t row_off, int64_t out, int64_t in, double **Wd, const char *what,
                        lorac_err *err) {
    int t = w->layout == ANALYZE_IN_OUT;
    int64_t need_out = t ? w->cols : w->rows, need_in = t ? w->rows : w->cols;
    if (need_in != in || need_out < row_off + out)
        return lorac_fail(err, LORAC_ESHAPE, "%s: the base matrix is [%lld, %lld] (%s), ΔW is [%lld, %lld] (adapter for "
                          "another base?)", what, (long long)w->rows, (long long)w->cols, t ? "in, out" : "out, in",
                          (long long)(row_off + out), (long long)in);
    size_t n;
    if (lorac_size_mul((size_t)out, (size_t)in, &n) || lorac_size_mul(n, sizeof(double), &n) || !(*Wd = malloc(n)))
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for W (%lld x %lld doubles)", what, (long long)out,
                          (long long)in);
    for (int64_t i = 0; i < out; i++)
        for (int64_t j = 0; j < in; j++)
            (*Wd)[i * in + j] = t ? w->data[j * w->cols + row_off + i] : w->data[(row_off + i) * w->cols + j];
    return LORAC_OK;
}

/* ||Uᵀ·W·Vtᵀ||_F, W (out, in), U (out, r), Vt (r, in), all row-major doubles. */
static int proj_dense(const double *Wd, int out, int in, const double *U, const double *Vt, int r, double *proj,
                      const char *what, lorac_err *err) {
    double *T = malloc((size_t)r * in * sizeof(double)), *P = malloc((size_t)r * r * sizeof(double));
    if (!T || !P) {
        free(T);
        free(P);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", what);
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, out, 1.0, U, r, Wd, in, 0.0, T, in);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, r, in, 1.0, T, in, Vt, in, 0.0, P, r);
    double s = 0;
    for (size_t i = 0; i < (size_t)r * r; i++) s += P[i] * P[i];
    *proj = sqrt(s);
    free(T);
    free(P);
    return LORAC_OK;
}

int analyze_projection(const analyze_weight *w, int64_t row_off, int64_t out, int64_t in, const double *U,
                       const double *Vt, int r, double *proj, lorac_err *err) {
    if (!w->data || out < 1 || in < 1 || r < 1 || out > INT32_MAX || in > INT32_MAX)
        return lorac_fail(err, LORAC_EINVAL, "analyze: projection needs W and a non-empty shape");
    double *Wd = NULL;
    int rc = weight_dense(w, row_off, out, in, &Wd, "analyze", err);
    if (!rc) rc = proj_dense(Wd, (int)out, (int)in, U, Vt, r, proj, "analyze", err);
    free(Wd);
    return rc;
}

/* Q (m, k) column-major: an orthonormal basis of a Gaussian (m, k) matrix (QR), Haar-distributed. */
static int random_orthonormal(lorac_rng *rng, int m, int k, double *Q, const char *what, lorac_err *err) {
    double *tau = malloc((size_t)k * sizeof(double));
    if (!tau) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < (size_t)m * k; i++) Q[i] = lorac_rng_normal(rng);
    int rc = lora_qr_thin(Q, m, k, NULL, tau, what, err);
    free(tau);
    return rc;
}

/* ---------------------------------------------------------------- one module */

/* One adapter's spectrum at an entry; U (out, k) and Vt (k, in) are kept for the projections. */
static int delta_fill(const entry *e, analyze_delta *d, double **U, double **Vt, const char *what, lorac_err *err) {
    int k = e->r;
    if (k > e->out) k = (int)e->out;
    if (k > e->in) k = (int)e->in;
    d->rank = e->r;
    d->scaling = e->m->scaling;
    d->n_sv = k;
    d->proj_delta = d->proj_weight = d->proj_random = d->amplification = NAN;
    d->sv = malloc((size_t)k * sizeof(double));
    d->energy = malloc((size_t)k * sizeof(double));
    *U = malloc((size_t)e->out * k * sizeof(double));
    *Vt = malloc((size_t)k * e->in * sizeof(double));
    double *Bd = malloc((size_t)e->out * e->r * sizeof(double)), *Ad = malloc((size_t)e->r * e->in * sizeof(double));
    int rc = (!d->sv || !d->energy || !*U || !*Vt || !Bd || !Ad) ? lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", what)
                                                                  : LORAC_OK;
    if (!rc) {
        entry_factors(e, Bd, Ad);
        rc = lora_lowrank_svd_triplets(Bd, Ad, (int)e->out, e->r, (int)e->in, *U, d->sv, *Vt, what, err);
    }
    if (!rc) {
        double total = 0, run = 0;
        for (int i = 0; i < k; i++) total += d->sv[i] * d->sv[i];
        for (int i = 0; i < k; i++) {
            run += d->sv[i] * d->sv[i];
            d->energy[i] = total > 0 ? run / total : 0;
        }
        d->norm_delta = sqrt(total);
        d->effective_rank = analyze_effective_rank(d->sv, k);
    }
    free(Bd);
    free(Ad);
    return rc;
}

/* Section 7.3 for every adapter of the module: W from the caller, projections, σ(W). */
static int weight_part(analyze_module *am, const entry *e, int n_ad, analyze_weight_fn fn, void *ctx, double *const *U,
                       double *const *Vt, lorac_rng *rng, const char *what, lorac_err *err) {
    analyze_weight w;
    memset(&w, 0, sizeof w);
    am->norm_weight = NAN;
    int rc = fn ? fn(ctx, e->m->module, e->m->embedding, &w, err) : LORAC_OK;
    if (rc || !w.data) {
        snprintf(am->weight_why, sizeof am->weight_why, "%s", fn ? w.why : "no base model given");
        return rc;
    }
    int t = w.layout == ANALYZE_IN_OUT;
    if ((t ? w.cols : w.rows) != e->out_total || (t ? w.rows : w.cols) != e->in)
        return lorac_fail(err, LORAC_ESHAPE, "%s: the base matrix is [%lld, %lld] (%s), the adapter's ΔW [%lld, %lld] "
                          "(out, in): an adapter for another base?", what, (long long)w.rows, (long long)w.cols,
                          t ? "in, out" : "out, in", (long long)e->out_total, (long long)e->in);
    int out = (int)e->out, in = (int)e->in, mn = out < in ? out : in, kmax = 0;
    for (int a = 0; a < n_ad; a++) kmax = am->d[a].n_sv > kmax ? am->d[a].n_sv : kmax;
    double *Wd = NULL, *Ur = malloc((size_t)out * kmax * sizeof(double)), *Uc = malloc((size_t)out * kmax * sizeof(double));
    double *Vr = malloc((size_t)in * kmax * sizeof(double)), *sw = malloc((size_t)mn * sizeof(double));
    rc = (!Ur || !Uc || !Vr || !sw) ? lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", what) : LORAC_OK;
    if (!rc) rc = weight_dense(&w, e->row_off, e->out, e->in, &Wd, what, err);
    if (!rc) {
        double s = 0;
        for (size_t i = 0; i < (size_t)out * in; i++) s += Wd[i] * Wd[i];
        am->norm_weight = sqrt(s);
        am->has_weight = 1;
    }
    for (int a = 0; a < n_ad && !rc; a++) {
        analyze_delta *d = &am->d[a];
        int k = d->n_sv;
        rc = proj_dense(Wd, out, in, U[a], Vt[a], k, &d->proj_delta, what, err);
        d->amplification = d->norm_delta / d->proj_delta;
        /* random: Ur (out, k) and Vr (in, k) column-major; Vr is Vt (k, in) row-major, Ur needs a transpose */
        if (!rc) rc = random_orthonormal(rng, out, k, Uc, what, err);
        if (!rc) rc = random_orthonormal(rng, in, k, Vr, what, err);
        for (int i = 0; !rc && i < out; i++)
            for (int j = 0; j < k; j++) Ur[(size_t)i * k + j] = Uc[i + (size_t)j * out];
        if (!rc) rc = proj_dense(Wd, out, in, Ur, Vr, k, &d->proj_random, what, err);
    }
    if (!rc) { /* σ(W): Wd (out, in) row-major is Wᵀ column-major, with the same singular values */
        lapack_int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', in, out, Wd, in, sw, NULL, 1, NULL, 1);
        if (info) rc = lorac_fail(err, LORAC_EINVAL, "%s: LAPACK dgesdd on W did not converge (info %d)", what, (int)info);
    }
    for (int a = 0; a < n_ad && !rc; a++) {
        double s = 0;
        for (int i = 0; i < am->d[a].n_sv; i++) s += sw[i] * sw[i];
        am->d[a].proj_weight = sqrt(s); /* ||U_Wᵀ·W·V_Wᵀ||_F = sqrt(Σ_{i<=r} σ_i(W)²) */
    }
    free(Wd); free(Ur); free(Uc); free(Vr); free(sw);
    return rc;
}

/* A (r, in) and Bᵀ (r, out) of an entry as row-major doubles. */
static void entry_bases(const entry *e, double *A, double *Bt) {
    const peft_module *m = e->m;
    int64_t R = m->B->shape[1];
    for (int t = 0; t < e->r; t++) {
        for (int64_t j = 0; j < e->in; j++) A[t * e->in + j] = m->A->data[(e->col_off + t) * e->in + j];
        for (int64_t i = 0; i < e->out; i++) Bt[t * e->out + i] = m->B->data[(e->row_off + i) * R + e->col_off + t];
    }
}

/* φ of A1, A2 (Eq. 4), of B1ᵀ, B2ᵀ (footnote 7), and of two Gaussian matrices shaped as A1, A2. */
static int phi_part(analyze_module *am, const entry *e1, const entry *e2, lorac_rng *rng, const char *what,
                    lorac_err *err) {
    int r1 = e1->r, r2 = e2->r, in = (int)e1->in, out = (int)e1->out;
    int k1 = r1 < in ? r1 : in, k2 = r2 < in ? r2 : in;
    k1 = k1 < out ? k1 : out;
    k2 = k2 < out ? k2 : out;
    size_t big = (size_t)(in > out ? in : out);
    double *X1 = malloc((size_t)r1 * big * sizeof(double)), *X2 = malloc((size_t)r2 * big * sizeof(double));
    double *Y1 = malloc((size_t)r1 * big * sizeof(double)), *Y2 = malloc((size_t)r2 * big * sizeof(double));
    am->phi_rows = k1;
    am->phi_cols = k2;
    am->phi = malloc((size_t)k1 * k2 * sizeof(double));
    am->phi_b = malloc((size_t)k1 * k2 * sizeof(double));
    am->phi_random = malloc((size_t)k1 * k2 * sizeof(double));
    int rc = (!X1 || !X2 || !Y1 || !Y2 || !am->phi || !am->phi_b || !am->phi_random)
                 ? lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", what) : LORAC_OK;
    if (!rc) {
        entry_bases(e1, X1, Y1);
        entry_bases(e2, X2, Y2);
        rc = phi_dense(X1, r1, k1, X2, r2, k2, in, am->phi, what, err);
    }
    if (!rc) rc = phi_dense(Y1, r1, k1, Y2, r2, k2, out, am->phi_b, what, err);
    if (!rc) {
        for (size_t i = 0; i < (size_t)r1 * in; i++) X1[i] = lorac_rng_normal(rng);
        for (size_t i = 0; i < (size_t)r2 * in; i++) X2[i] = lorac_rng_normal(rng);
        rc = phi_dense(X1, r1, k1, X2, r2, k2, in, am->phi_random, what, err);
    }
    free(X1); free(X2); free(Y1); free(Y2);
    return rc;
}

static int analyze_entry(analyze_module *am, const entry *e1, const entry *e2, const peft_adapter *a1,
                         analyze_weight_fn fn, void *ctx, uint64_t seed, lorac_err *err) {
    char what[4400];
    snprintf(what, sizeof what, "%s: module %s", src_of(a1), e1->match);
    snprintf(am->name, sizeof am->name, "%s", e1->m->module);
    am->slice = e1->slice;
    am->layer = layer_of(e1->m->module);
    am->embedding = e1->m->embedding;
    am->out = e1->out;
    am->in = e1->in;
    if (e1->out > INT32_MAX || e1->in > INT32_MAX)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: more than 2^31 rows or columns", what);
    double *U[2] = {NULL, NULL}, *Vt[2] = {NULL, NULL};
    int n_ad = e2 ? 2 : 1, rc = LORAC_OK;
    for (int a = 0; a < n_ad && !rc; a++) rc = delta_fill(a ? e2 : e1, &am->d[a], &U[a], &Vt[a], what, err);
    lorac_rng rng; /* one stream for the random projections, another for the random φ */
    lorac_rng_seed(&rng, seed);
    if (!rc) rc = weight_part(am, e1, n_ad, fn, ctx, U, Vt, &rng, what, err);
    lorac_rng_seed(&rng, seed + 1);
    if (!rc && e2) rc = phi_part(am, e1, e2, &rng, what, err);
    for (int a = 0; a < 2; a++) {
        free(U[a]);
        free(Vt[a]);
    }
    return rc;
}

/* The entry of es named as e (module and slice), or NULL. */
static const entry *find_entry(const entries *es, const entry *e) {
    for (size_t i = 0; i < es->n; i++)
        if (!strcmp(es->e[i].match, e->match)) return &es->e[i];
    return NULL;
}

void analyze_report_free(analyze_report *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        analyze_module *m = &r->mods[i];
        for (int a = 0; a < 2; a++) {
            free(m->d[a].sv);
            free(m->d[a].energy);
        }
        free(m->phi);
        free(m->phi_b);
        free(m->phi_random);
    }
    free(r->mods);
    free(r);
}

int analyze_run(const peft_adapter *a1, const peft_adapter *a2, const analyze_opts *o, analyze_weight_fn weight,
                void *ctx, analyze_report **out, lorac_err *err) {
    *out = NULL;
    entries e1, e2;
    memset(&e2, 0, sizeof e2);
    int rc = list_entries(a1, &e1, err);
    if (!rc && a2) rc = list_entries(a2, &e2, err);
    if (!rc && !e1.n) rc = lorac_fail(err, LORAC_EINVAL, "%s: the adapter has no LoRA modules", src_of(a1));
    char *keep = rc ? NULL : calloc(e1.n, 1);
    analyze_report *r = rc ? NULL : calloc(1, sizeof *r);
    if (!rc && (!keep || !r)) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", src_of(a1));
    if (!rc) rc = apply_filters(&e1, o, keep, err);
    if (!rc && !(r->mods = calloc(e1.n, sizeof *r->mods))) rc = lorac_fail(err, LORAC_ENOMEM, "analyze: out of memory");
    for (size_t i = 0; i < e1.n && !rc && a2; i++) { /* every selected module is in a2, shaped alike */
        const entry *x = &e1.e[i], *y = keep[i] ? find_entry(&e2, x) : x;
        if (!y) rc = lorac_fail(err, LORAC_EINVAL, "%s has no module %s, which %s has (analyze compares the same modules; "
                                "pick common ones with --targets/--layers)", src_of(a2), x->match, src_of(a1));
        else if (y->out != x->out || y->in != x->in || y->m->embedding != x->m->embedding)
            rc = lorac_fail(err, LORAC_ESHAPE, "module %s is [%lld, %lld] in %s and [%lld, %lld] in %s (adapters of "
                            "different bases?)", x->match, (long long)x->out, (long long)x->in, src_of(a1),
                            (long long)y->out, (long long)y->in, src_of(a2));
    }
    uint64_t seed = o ? o->seed : 0;
    for (size_t i = 0; i < e1.n && !rc; i++) {
        if (!keep[i]) continue;
        const entry *y = a2 ? find_entry(&e2, &e1.e[i]) : NULL;
        uint64_t h = 1469598103934665603ull; /* FNV-1a of the name: a module's draws do not depend on the filters */
        for (const char *c = e1.e[i].match; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
        size_t q = r->n++;
        rc = analyze_entry(&r->mods[q], &e1.e[i], y, a1, weight, ctx, seed * 0x9E3779B97F4A7C15ull + 2 * h, err);
    }
    if (r) {
        r->two = a2 != NULL;
        r->ignored[0] = e1.ignored;
        r->ignored[1] = e2.ignored;
    }
    free(keep);
    entries_free(&e1);
    entries_free(&e2);
    if (rc) analyze_report_free(r);
    else *out = r;
    return rc;
}
