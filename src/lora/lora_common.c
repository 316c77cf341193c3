/* LoRA configuration, initialisation, activation buffers and merging shared by every layer. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora_internal.h"
#include "lorac/ops.h"

lora_config lora_config_default(int r, float lora_alpha) {
    lora_config c;
    memset(&c, 0, sizeof c);
    c.r = r;
    c.lora_alpha = lora_alpha;
    c.merge_weights = 1;
    c.init = LORA_INIT_KAIMING;
    return c;
}

float lora_config_scaling(const lora_config *cfg) {
    if (cfg->use_rslora) return cfg->lora_alpha / sqrtf((float)cfg->r);
    return cfg->lora_alpha / (float)cfg->r;
}

int lora_cfg_check(const lora_config *cfg, const char *what, lorac_err *err) {
    if (!cfg) return lorac_fail(err, LORAC_EINVAL, "%s: no LoRA config given", what);
    if (cfg->r < 1) return lorac_fail(err, LORAC_EINVAL, "%s: LoRA rank r = %d must be >= 1", what, cfg->r);
    if (!isfinite(cfg->lora_alpha))
        return lorac_fail(err, LORAC_EINVAL, "%s: lora_alpha must be a finite number", what);
    if (!(cfg->lora_dropout >= 0.0f && cfg->lora_dropout < 1.0f))
        return lorac_fail(err, LORAC_EINVAL, "%s: lora_dropout %g must be in [0, 1)", what,
                          (double)cfg->lora_dropout);
    if (cfg->init != LORA_INIT_KAIMING && cfg->init != LORA_INIT_GAUSSIAN)
        return lorac_fail(err, LORAC_EINVAL, "%s: unknown LoRA init %d", what, (int)cfg->init);
    return LORAC_OK;
}

float *lora_alloc_floats(size_t a, size_t b, lorac_err *err) {
    size_t n, bytes;
    if (lorac_size_mul(a, b, &n) || lorac_size_mul(n, sizeof(float), &bytes)) {
        lorac_fail(err, LORAC_ENOMEM, "lora: buffer of %zu x %zu floats overflows", a, b);
        return NULL;
    }
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) lorac_fail(err, LORAC_ENOMEM, "lora: out of memory for %zu floats", n);
    return p;
}

void lora_init_A(float *A, int rows, int cols, const lora_config *cfg, lorac_rng *rng) {
    size_t n = (size_t)rows * cols;
    if (cfg->init == LORA_INIT_GAUSSIAN) {
        float std = 1.0f / (float)cfg->r; /* PEFT's init_lora_weights="gaussian" */
        for (size_t i = 0; i < n; i++) A[i] = std * lorac_rng_normal(rng);
    } else {
        /* kaiming_uniform_(a=√5): gain √(2/(1+5)), bound = gain·√3/√fan_in = 1/√fan_in */
        float bound = 1.0f / sqrtf((float)cols);
        for (size_t i = 0; i < n; i++) A[i] = bound * (2.0f * lorac_rng_uniform(rng) - 1.0f);
    }
}

void lora_act_free(lora_act *act) {
    if (!act) return;
    free(act->xd);
    free(act->mask);
    free(act->dxd);
    free(act->h);
    free(act->dh);
    free(act->w_eff);
    free(act->dw_eff);
    memset(act, 0, sizeof *act);
}

int lora_act_alloc(lora_act *act, int N, int C, int R, int with_dropout, lorac_err *err) {
    memset(act, 0, sizeof *act);
    if (N < 0) return lorac_fail(err, LORAC_EINVAL, "lora: activation rows %d < 0", N);
    act->cap_N = N;
    if (!(act->h = lora_alloc_floats((size_t)N, (size_t)R, err))) goto fail;
    if (!(act->dh = lora_alloc_floats((size_t)N, (size_t)R, err))) goto fail;
    if (with_dropout) {
        if (!(act->xd = lora_alloc_floats((size_t)N, (size_t)C, err))) goto fail;
        if (!(act->dxd = lora_alloc_floats((size_t)N, (size_t)C, err))) goto fail;
        size_t nm = (size_t)N * (size_t)C; /* already overflow-checked by the xd allocation */
        act->mask = calloc(nm > 0 ? nm : 1, 1);
        if (!act->mask) {
            lorac_fail(err, LORAC_ENOMEM, "lora: out of memory for a dropout mask");
            goto fail;
        }
    }
    return LORAC_OK;
fail:
    lora_act_free(act);
    return err ? err->code : LORAC_ENOMEM;
}

int lora_act_dropout(lora_act *act, const float *inp, int N, int C, float p, int training,
                     lorac_rng *rng, const char *what, lorac_err *err) {
    if (N < 0 || N > act->cap_N)
        return lorac_fail(err, LORAC_EINVAL, "%s: %d rows, but the activation holds %d", what, N,
                          act->cap_N);
    act->N = N;
    act->dropped = 0;
    if (!(training && p > 0.0f)) return LORAC_OK;
    if (!act->xd)
        return lorac_fail(err, LORAC_EINVAL, "%s: activation was made without dropout buffers", what);
    if (!rng) return lorac_fail(err, LORAC_EINVAL, "%s: dropout in training mode needs an rng", what);
    op_dropout_forward(act->xd, act->mask, inp, p, (size_t)N * C, rng);
    act->dropped = 1;
    return LORAC_OK;
}

int lora_register_named(lora_registry *reg, const char *prefix, const char *suffix, int ndim,
                        const int64_t *shape, float *data, float *grad, int *flag, int flag_init,
                        int lora_layer_bias, lorac_err *err) {
    size_t a = strlen(prefix), b = strlen(suffix);
    char *name = malloc(a + b + 2);
    if (!name) return lorac_fail(err, LORAC_ENOMEM, "lora: out of memory for a parameter name");
    memcpy(name, prefix, a);
    size_t k = a;
    if (a) name[k++] = '.';
    memcpy(name + k, suffix, b + 1);
    int rc = lora_registry_add(reg, name, ndim, shape, data, grad, flag, flag_init, lora_layer_bias, err);
    free(name);
    return rc;
}

void lora_merge_into(float *merged, const float *w0, const float *B, const float *A, int M, int r,
                     int K2, float s, int transpose) {
    // B is (M,r), A is (r,K2); merged is (M,K2), or (K2,M) when transpose
    float *bt = transpose ? malloc((size_t)r * M * sizeof(float)) : NULL;
    if (!transpose || bt) {
        lora_merge_fused(merged, transpose ? (size_t)M : (size_t)K2, w0, transpose ? (size_t)M : (size_t)K2, B, A, M, r,
                         K2, s, transpose, bt);
        free(bt);
        return;
    }
    /* no memory for the r·M scratch: one GEMM into merged, then the add */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, K2, M, r, 1.0f, A, K2, B, r, 0.0f, merged, M);
    size_t n = (size_t)M * K2;
    for (size_t i = 0; i < n; i++) {
        float d = merged[i] * s;
        merged[i] = w0[i] + d;
    }
}

/* d = w0 + s·Σ_t c_t·x_t over one row (x is (r, cols)), in chunks accumulated in an L1 buffer so
 * that W0 is read and d written exactly once each, streaming. */
void lora_merge_row(float *restrict d, const float *restrict w, const float *restrict x, const float *A, const float *B,
                    int i, int r, int K, int cols, float s, int transpose) {
    enum { CH = 512 };
    float acc[CH];
    for (int j0 = 0; j0 < cols; j0 += CH) {
        int n = cols - j0 < CH ? cols - j0 : CH;
        for (int t = 0; t < r; t++) {
            const float *restrict xt = x + (size_t)t * cols + j0;
            float c = transpose ? A[(size_t)t * K + i] : B[(size_t)i * r + t];
            if (t == 0) {
#pragma omp simd
                for (int j = 0; j < n; j++) acc[j] = c * xt[j];
            } else {
#pragma omp simd
                for (int j = 0; j < n; j++) acc[j] += c * xt[j];
            }
        }
#pragma omp simd
        for (int j = 0; j < n; j++) { /* loralib's two roundings: W += (B@A)*s */
            float dd = acc[j] * s;
            d[j0 + j] = w[j0 + j] + dd;
        }
    }
}

void lora_merge_fused(float *dst, size_t ldd, const float *w0, size_t ldw, const float *B, const float *A, int M, int r,
                      int K, float s, int transpose, float *bt) {
    // B (M,r), A (r,K). dst (M,K) row stride ldd = w0 + s·(B·A); transposed: dst (K,M) = w0 + s·(B·A)ᵀ.
    // One pass over W0 (read) and dst (write), rows in parallel: memory-bound, no temporary of W's size.
    int rows = transpose ? K : M, cols = transpose ? M : K;
    if (transpose) /* bt (r,M) = Bᵀ, so each output row is a contiguous combination of r rows */
        for (int j = 0; j < M; j++)
            for (int t = 0; t < r; t++) bt[(size_t)t * M + j] = B[(size_t)j * r + t];
    const float *x = transpose ? bt : A; /* (r, cols) */
#pragma omp parallel for schedule(static) if ((size_t)rows * cols > 65536)
    for (int i = 0; i < rows; i++)
        lora_merge_row(dst + (size_t)i * ldd, w0 + (size_t)i * ldw, x, A, B, i, r, K, cols, s, transpose);
}
