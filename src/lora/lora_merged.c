/* loralib's lora.MergedLinear: a fused projection (GPT-2's qkv) with LoRA on chosen slices.
 * Slice j (the j-th enabled group g_j) adds s·(xd·A_jᵀ)·B_jᵀ to output columns g_j·OCg.. with
 * A_j = A[j·r:(j+1)·r, :] and B_j = B[j·OCg:(j+1)·OCg, :], which is what loralib's grouped
 * conv1d (merge_AB) followed by zero_pad computes. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora_internal.h"
#include "lorac/ops.h"

static op_wlayout merged_layout(const lora_merged *L) { return L->cfg.fan_in_fan_out ? OP_W_IN_OUT : OP_W_OUT_IN; }

/* The group index of the j-th enabled slice. */
static int merged_group(const lora_merged *L, int j) {
    for (int g = 0; g < L->n_groups; g++)
        if (L->enable_lora[g] && j-- == 0) return g;
    return -1;
}

int lora_merged_init(lora_merged *L, int C, int OC, const int *enable_lora, int n_groups,
                     const lora_config *cfg, float *weight, float *bias, lorac_rng *rng, lorac_err *err) {
    memset(L, 0, sizeof *L);
    int rc = lora_cfg_check(cfg, "lora_merged", err);
    if (rc) return rc;
    if (C < 1 || OC < 1 || !weight || !rng || !enable_lora)
        return lorac_fail(err, LORAC_EINVAL, "lora_merged: needs C, OC >= 1 (got %d, %d), a weight, enable_lora and an rng", C, OC);
    if (n_groups < 1 || n_groups > LORA_MAX_GROUPS || OC % n_groups)
        return lorac_fail(err, LORAC_EINVAL, "lora_merged: the length of enable_lora (%d) must divide out_features (%d) and be at most %d",
                          n_groups, OC, LORA_MAX_GROUPS);
    int k = 0;
    for (int g = 0; g < n_groups; g++) {
        L->enable_lora[g] = enable_lora[g] ? 1 : 0;
        k += L->enable_lora[g];
    }
    if (k == 0) return lorac_fail(err, LORAC_EINVAL, "lora_merged: enable_lora enables no slice (use the base layer)");
    L->C = C;
    L->OC = OC;
    L->n_groups = n_groups;
    L->n_enabled = k;
    L->cfg = *cfg;
    L->scaling = lora_config_scaling(cfg);
    L->weight = weight;
    L->bias = bias;
    int r = cfg->r, OCg = OC / n_groups;
    if (!(L->lora_A = lora_alloc_floats((size_t)r * k, (size_t)C, err)) ||
        !(L->lora_B = lora_alloc_floats((size_t)OCg * k, (size_t)r, err)) ||
        !(L->grad_A = lora_alloc_floats((size_t)r * k, (size_t)C, err)) ||
        !(L->grad_B = lora_alloc_floats((size_t)OCg * k, (size_t)r, err)) ||
        (bias && !(L->grad_bias = lora_alloc_floats((size_t)OC, 1, err)))) {
        lora_merged_free(L);
        return err ? err->code : LORAC_ENOMEM;
    }
    lora_init_A(L->lora_A, r * k, C, cfg, rng);
    L->training = 1;
    L->train_A = L->train_B = L->train_bias = 1;
    return LORAC_OK;
}

void lora_merged_free(lora_merged *L) {
    if (!L) return;
    free(L->lora_A);
    free(L->lora_B);
    free(L->grad_A);
    free(L->grad_B);
    free(L->grad_bias);
    if (!L->merged_borrowed) free(L->merged_w);
    memset(L, 0, sizeof *L);
}

int lora_merged_act_init(lora_act *act, const lora_merged *L, int N, lorac_err *err) {
    return lora_act_alloc(act, N, L->C, L->cfg.r * L->n_enabled, L->cfg.lora_dropout > 0.0f, err);
}

int lora_merged_forward(lora_merged *L, lora_act *act, float *out, const float *inp, int N,
                        lorac_rng *rng, lorac_err *err) {
    // inp is (N,C), out is (N,OC); act->h is (N, r·k)
    int C = L->C, OC = L->OC, r = L->cfg.r, k = L->n_enabled, OCg = OC / L->n_groups;
    if (L->merged) {
        if (N < 0) return lorac_fail(err, LORAC_EINVAL, "lora_merged: %d rows", N);
        op_matmul_forward(out, inp, L->merged_w, L->bias, N, C, OC, merged_layout(L));
        if (act) { act->N = N; act->dropped = 0; }
        return LORAC_OK;
    }
    if (!act) return lorac_fail(err, LORAC_EINVAL, "lora_merged: the unmerged forward needs an activation");
    int rc = lora_act_dropout(act, inp, N, C, L->cfg.lora_dropout, L->training, rng, "lora_merged", err);
    if (rc) return rc;
    const float *xd = act->dropped ? act->xd : inp;
    op_matmul_forward(out, inp, L->weight, L->bias, N, C, OC, merged_layout(L));
    op_matmul_forward(act->h, xd, L->lora_A, NULL, N, C, r * k, OP_W_OUT_IN); /* h = xd·Aᵀ */
    if (N == 0) return LORAC_OK;
    for (int j = 0; j < k; j++) { /* out[:, g·OCg..] += s·h_j·B_jᵀ */
        int g = merged_group(L, j);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OCg, r, L->scaling, act->h + (size_t)j * r,
                    r * k, L->lora_B + (size_t)j * OCg * r, r, 1.0f, out + (size_t)g * OCg, OC);
    }
    return LORAC_OK;
}

int lora_merged_backward(lora_merged *L, lora_act *act, float *dinp, const float *dout,
                         const float *inp, lorac_err *err) {
    // out[:, g_j·OCg..] += s·(xd·A_jᵀ)·B_jᵀ; dout is (N,OC)
    if (L->merged || !act)
        return lorac_fail(err, LORAC_EINVAL, "lora_merged: backward needs the unmerged (training) forward");
    int N = act->N, C = L->C, OC = L->OC, r = L->cfg.r, k = L->n_enabled, OCg = OC / L->n_groups;
    float s = L->scaling;
    const float *xd = act->dropped ? act->xd : inp;
    memset(act->dh, 0, (size_t)N * r * k * sizeof(float));
    for (int j = 0; N > 0 && j < k; j++) {
        int g = merged_group(L, j);
        const float *dy = dout + (size_t)g * OCg;
        const float *Bj = L->lora_B + (size_t)j * OCg * r;
        /* dh_j (N,r) = s·dout_g·B_j */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, OCg, s, dy, OC, Bj, r, 1.0f,
                    act->dh + (size_t)j * r, r * k);
        /* grad_B_j (OCg,r) += s·dout_gᵀ·h_j */
        if (L->train_B)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OCg, r, N, s, dy, OC, act->h + (size_t)j * r,
                        r * k, 1.0f, L->grad_B + (size_t)j * OCg * r, r);
    }
    float *dxd = NULL;
    if (dinp) {
        if (act->dropped) {
            dxd = act->dxd;
            memset(dxd, 0, (size_t)N * C * sizeof(float));
        } else {
            dxd = dinp;
        }
    }
    if (dxd || L->train_A) /* d(xd) += dh·A; grad_A += dhᵀ·xd */
        op_matmul_backward(dxd, L->train_A ? L->grad_A : NULL, NULL, act->dh, xd, L->lora_A, 1.0f, N, C, r * k,
                           OP_W_OUT_IN);
    if (dinp && act->dropped) op_dropout_backward(dinp, act->dxd, act->mask, L->cfg.lora_dropout, (size_t)N * C);
    float *db = (L->bias && L->train_bias) ? L->grad_bias : NULL;
    if (dinp || db) op_matmul_backward(dinp, NULL, db, dout, inp, L->weight, 1.0f, N, C, OC, merged_layout(L));
    return LORAC_OK;
}

void lora_merged_delta(const lora_merged *L, float *delta) {
    // delta is (OC,C), or (C,OC) with fan_in_fan_out; rows of disabled slices stay zero
    int C = L->C, OC = L->OC, r = L->cfg.r, OCg = OC / L->n_groups;
    memset(delta, 0, (size_t)OC * C * sizeof(float));
    for (int j = 0; j < L->n_enabled; j++) {
        int g = merged_group(L, j);
        const float *Aj = L->lora_A + (size_t)j * r * C, *Bj = L->lora_B + (size_t)j * OCg * r;
        if (!L->cfg.fan_in_fan_out) /* delta[g·OCg.., :] = B_j·A_j */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OCg, C, r, 1.0f, Bj, r, Aj, C, 0.0f,
                        delta + (size_t)g * OCg * C, C);
        else /* delta[:, g·OCg..] = A_jᵀ·B_jᵀ */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, C, OCg, r, 1.0f, Aj, C, Bj, r, 0.0f,
                        delta + (size_t)g * OCg, OC);
    }
}

int lora_merged_train(lora_merged *L, int mode, lorac_err *err) {
    L->training = mode ? 1 : 0;
    if (mode) {
        if (L->merged) { /* W0 was never written */
            if (!L->merged_borrowed) free(L->merged_w);
            L->merged_w = NULL;
            L->merged = L->merged_borrowed = 0;
        }
    } else if (L->cfg.merge_weights && !L->merged) {
        size_t n = (size_t)L->OC * L->C;
        float *buf = lora_alloc_floats(n, 1, err);
        if (!buf) return err ? err->code : LORAC_ENOMEM;
        int rc = lora_merged_merge_to(L, buf, 0, err);
        if (rc) {
            free(buf);
            return rc;
        }
        L->merged_borrowed = 0; /* the layer owns this copy */
    }
    return LORAC_OK;
}

int lora_merged_merge_to(lora_merged *L, float *buf, int keep_disabled, lorac_err *err) {
    // weight (C,OC) with fan_in_fan_out, else (OC,C); slice g is OCg columns (rows) of it
    int C = L->C, OC = L->OC, r = L->cfg.r, OCg = OC / L->n_groups, k = L->n_enabled;
    if (!buf) return lorac_fail(err, LORAC_EINVAL, "lora_merged: merge_to needs a buffer");
    if (L->merged) lora_merged_train(L, 1, NULL);
    if (!L->cfg.fan_in_fan_out) { /* each slice is a contiguous block of rows */
        for (int g = 0, j = 0; g < L->n_groups; g++) {
            size_t off = (size_t)g * OCg * C;
            if (L->enable_lora[g]) {
                lora_merge_fused(buf + off, (size_t)C, L->weight + off, (size_t)C, L->lora_B + (size_t)j * OCg * r,
                                 L->lora_A + (size_t)j * r * C, OCg, r, C, L->scaling, 0, NULL);
                j++;
            } else if (!keep_disabled) {
                memcpy(buf + off, L->weight + off, (size_t)OCg * C * sizeof(float));
            }
        }
    } else {
        /* (C,OC): every input row holds a segment of each slice. One pass over the rows writes the
         * whole row in order (streaming), each enabled segment from its Bᵀ_j (r,OCg). */
        float *bt = malloc((size_t)r * OCg * (k ? k : 1) * sizeof(float));
        if (!bt) return lorac_fail(err, LORAC_ENOMEM, "lora_merged: out of memory merging");
        for (int j = 0; j < k; j++)
            for (int o = 0; o < OCg; o++)
                for (int t = 0; t < r; t++)
                    bt[((size_t)j * r + t) * OCg + o] = L->lora_B[((size_t)j * OCg + o) * r + t];
#pragma omp parallel for schedule(static) if ((size_t)C * OC > 65536)
        for (int i = 0; i < C; i++) {
            for (int g = 0, j = 0; g < L->n_groups; g++) {
                size_t off = (size_t)i * OC + (size_t)g * OCg;
                if (L->enable_lora[g]) {
                    lora_merge_row(buf + off, L->weight + off, bt + (size_t)j * r * OCg, L->lora_A + (size_t)j * r * C, NULL,
                                   i, r, C, OCg, L->scaling, 1);
                    j++;
                } else if (!keep_disabled) {
                    memcpy(buf + off, L->weight + off, (size_t)OCg * sizeof(float));
                }
            }
        }
        free(bt);
    }
    L->merged_w = buf;
    L->merged = L->merged_borrowed = 1;
    L->training = 0;
    return LORAC_OK;
}

void lora_merged_zero_grad(lora_merged *L) {
    int r = L->cfg.r, k = L->n_enabled, OCg = L->OC / L->n_groups;
    memset(L->grad_A, 0, (size_t)r * k * L->C * sizeof(float));
    memset(L->grad_B, 0, (size_t)OCg * k * r * sizeof(float));
    if (L->grad_bias) memset(L->grad_bias, 0, (size_t)L->OC * sizeof(float));
}

int lora_merged_register(lora_merged *L, lora_registry *reg, const char *prefix, lorac_err *err) {
    int r = L->cfg.r, k = L->n_enabled, OCg = L->OC / L->n_groups;
    int64_t w_shape[2] = {L->cfg.fan_in_fan_out ? L->C : L->OC, L->cfg.fan_in_fan_out ? L->OC : L->C};
    int64_t b_shape[1] = {L->OC};
    int64_t a_shape[2] = {(int64_t)r * k, L->C};
    int64_t bb_shape[2] = {(int64_t)OCg * k, r};
    int rc = lora_register_named(reg, prefix, "weight", 2, w_shape, L->weight, NULL, NULL, 0, 0, err);
    if (!rc && L->bias)
        rc = lora_register_named(reg, prefix, "bias", 1, b_shape, L->bias, L->grad_bias, &L->train_bias, 1, 1, err);
    if (!rc) rc = lora_register_named(reg, prefix, "lora_A", 2, a_shape, L->lora_A, L->grad_A, &L->train_A, 1, 0, err);
    if (!rc) rc = lora_register_named(reg, prefix, "lora_B", 2, bb_shape, L->lora_B, L->grad_B, &L->train_B, 1, 0, err);
    return rc;
}

void lora_merged_fused_B(const lora_merged *L, float *Bx) {
    int rs = L->cfg.r, r = rs * L->n_enabled, OCg = L->OC / L->n_groups;
    memset(Bx, 0, (size_t)L->OC * r * sizeof(float));
    for (int g = 0, j = 0; g < L->n_groups; g++) {
        if (!L->enable_lora[g]) continue;
        for (int row = 0; row < OCg; row++)
            memcpy(Bx + (size_t)(g * OCg + row) * r + (size_t)j * rs, L->lora_B + (size_t)(j * OCg + row) * rs, rs * sizeof(float));
        j++;
    }
}

int lora_merged_set_fused_B(lora_merged *L, const float *Bx, const char *what, lorac_err *err) {
    int rs = L->cfg.r, r = rs * L->n_enabled, OCg = L->OC / L->n_groups;
    for (int g = 0, j = 0; g < L->n_groups; g++) {
        for (int row = 0; row < OCg; row++) {
            const float *x = Bx + (size_t)(g * OCg + row) * r;
            for (int col = 0; col < r; col++) {
                if (L->enable_lora[g] && col / rs == j) L->lora_B[(size_t)(j * OCg + row) * rs + col % rs] = x[col];
                else if (x[col] != 0.0f)
                    return lorac_fail(err, LORAC_EFORMAT, "%s: a q/k/v split's fused B has a non-zero entry outside its blocks", what);
            }
        }
        if (L->enable_lora[g]) j++;
    }
    return LORAC_OK;
}
