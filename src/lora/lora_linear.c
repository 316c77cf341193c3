/* loralib's lora.Linear: y = x·W0ᵀ + b + s·(dropout(x)·Aᵀ)·Bᵀ, as two thin GEMMs beside the base one. */
#include <stdlib.h>
#include <string.h>

#include "lora/lora_internal.h"
#include "lorac/ops.h"

int lora_linear_init(lora_linear *L, int C, int OC, const lora_config *cfg, float *weight, float *bias,
                     lorac_rng *rng, lorac_err *err) {
    memset(L, 0, sizeof *L);
    int rc = lora_cfg_check(cfg, "lora_linear", err);
    if (rc) return rc;
    /* weight may be NULL: the caller computes the base product (e.g. a quantized GEMM) and adds
     * the low-rank path with lora_linear_delta_forward; such a layer never merges. */
    if (C < 1 || OC < 1 || !rng)
        return lorac_fail(err, LORAC_EINVAL, "lora_linear: needs C, OC >= 1 (got %d, %d) and an rng", C, OC);
    L->C = C;
    L->OC = OC;
    L->cfg = *cfg;
    L->scaling = lora_config_scaling(cfg);
    L->weight = weight;
    L->bias = bias;
    int r = cfg->r;
    if (!(L->lora_A = lora_alloc_floats((size_t)r, (size_t)C, err)) ||
        !(L->lora_B = lora_alloc_floats((size_t)OC, (size_t)r, err)) ||
        !(L->grad_A = lora_alloc_floats((size_t)r, (size_t)C, err)) ||
        !(L->grad_B = lora_alloc_floats((size_t)OC, (size_t)r, err)) ||
        (bias && !(L->grad_bias = lora_alloc_floats((size_t)OC, 1, err)))) {
        lora_linear_free(L);
        return err ? err->code : LORAC_ENOMEM;
    }
    lora_init_A(L->lora_A, r, C, cfg, rng); /* B stays zero */
    L->training = 1;
    L->train_A = L->train_B = L->train_bias = 1;
    return LORAC_OK;
}

void lora_linear_free(lora_linear *L) {
    if (!L) return;
    free(L->lora_A);
    free(L->lora_B);
    free(L->grad_A);
    free(L->grad_B);
    free(L->grad_bias);
    if (!L->merged_borrowed) free(L->merged_w);
    memset(L, 0, sizeof *L);
}

int lora_linear_act_init(lora_act *act, const lora_linear *L, int N, lorac_err *err) {
    return lora_act_alloc(act, N, L->C, L->cfg.r, L->cfg.lora_dropout > 0.0f, err);
}

static op_wlayout linear_layout(int fan_in_fan_out) { return fan_in_fan_out ? OP_W_IN_OUT : OP_W_OUT_IN; }

int lora_linear_forward(lora_linear *L, lora_act *act, float *out, const float *inp, int N,
                        lorac_rng *rng, lorac_err *err) {
    // inp is (N,C), out is (N,OC); act->h is (N,r)
    int C = L->C, OC = L->OC, r = L->cfg.r;
    op_wlayout lay = linear_layout(L->cfg.fan_in_fan_out);
    if (!L->weight)
        return lorac_fail(err, LORAC_EINVAL, "lora_linear: no base weight (use lora_linear_delta_forward)");
    if (L->merged) { /* inference: one GEMM with W0 + s·BA */
        if (N < 0) return lorac_fail(err, LORAC_EINVAL, "lora_linear: %d rows", N);
        op_matmul_forward(out, inp, L->merged_w, L->bias, N, C, OC, lay);
        if (act) { act->N = N; act->dropped = 0; }
        return LORAC_OK;
    }
    if (!act) return lorac_fail(err, LORAC_EINVAL, "lora_linear: the unmerged forward needs an activation");
    int rc = lora_act_dropout(act, inp, N, C, L->cfg.lora_dropout, L->training, rng, "lora_linear", err);
    if (rc) return rc;
    const float *xd = act->dropped ? act->xd : inp;
    op_matmul_forward(out, inp, L->weight, L->bias, N, C, OC, lay);
    op_matmul_forward(act->h, xd, L->lora_A, NULL, N, C, r, OP_W_OUT_IN); /* h = xd·Aᵀ */
    op_matmul_forward_acc(out, act->h, L->lora_B, L->scaling, N, r, OC, OP_W_OUT_IN); /* out += s·h·Bᵀ */
    act->x = xd;
    return LORAC_OK;
}

int lora_linear_delta_forward(lora_linear *L, lora_act *act, float *out, const float *inp, int N,
                              lorac_rng *rng, lorac_err *err) {
    // inp is (N,C); out (N,OC) += s·(dropout(inp)·Aᵀ)·Bᵀ; act->h is (N,r)
    if (!act) return lorac_fail(err, LORAC_EINVAL, "lora_linear: the delta forward needs an activation");
    int rc = lora_act_dropout(act, inp, N, L->C, L->cfg.lora_dropout, L->training, rng, "lora_linear", err);
    if (rc) return rc;
    const float *xd = act->dropped ? act->xd : inp;
    op_matmul_forward(act->h, xd, L->lora_A, NULL, N, L->C, L->cfg.r, OP_W_OUT_IN);
    op_matmul_forward_acc(out, act->h, L->lora_B, L->scaling, N, L->cfg.r, L->OC, OP_W_OUT_IN);
    act->x = xd; /* borrowed: inp must outlive the backward when no dropout was applied */
    return LORAC_OK;
}

/* The low-rank half of the backward: dh = s·dout·B, grad_B += s·doutᵀ·h, grad_A += dhᵀ·xd and
 * dinp += dropout'(dh·A). xd is the low-rank path's input of the forward. */
static void linear_lowrank_backward(lora_linear *L, lora_act *act, float *dinp, const float *dout,
                                    const float *xd) {
    int N = act->N, C = L->C, OC = L->OC, r = L->cfg.r;
    memset(act->dh, 0, (size_t)N * r * sizeof(float));
    op_matmul_backward(act->dh, L->train_B ? L->grad_B : NULL, NULL, dout, act->h, L->lora_B, L->scaling, N, r,
                       OC, OP_W_OUT_IN);
    float *dxd = NULL;
    if (dinp) {
        if (act->dropped) {
            dxd = act->dxd;
            memset(dxd, 0, (size_t)N * C * sizeof(float));
        } else {
            dxd = dinp;
        }
    }
    if (dxd || L->train_A)
        op_matmul_backward(dxd, L->train_A ? L->grad_A : NULL, NULL, act->dh, xd, L->lora_A, 1.0f, N, C, r,
                           OP_W_OUT_IN);
    if (dinp && act->dropped) op_dropout_backward(dinp, act->dxd, act->mask, L->cfg.lora_dropout, (size_t)N * C);
}

int lora_linear_delta_backward(lora_linear *L, lora_act *act, float *dinp, const float *dout, lorac_err *err) {
    if (!act || !act->x)
        return lorac_fail(err, LORAC_EINVAL, "lora_linear: delta backward needs the delta forward's activation");
    linear_lowrank_backward(L, act, dinp, dout, act->x);
    return LORAC_OK;
}

int lora_linear_backward(lora_linear *L, lora_act *act, float *dinp, const float *dout,
                         const float *inp, lorac_err *err) {
    // out = inp·W0ᵀ + b + s·(xd·Aᵀ)·Bᵀ with xd = dropout(inp); dout is (N,OC)
    if (L->merged || !act)
        return lorac_fail(err, LORAC_EINVAL, "lora_linear: backward needs the unmerged (training) forward");
    int N = act->N, C = L->C, OC = L->OC;
    const float *xd = act->dropped ? act->xd : inp;
    if (!L->weight) return lorac_fail(err, LORAC_EINVAL, "lora_linear: no base weight (use lora_linear_delta_backward)");
    linear_lowrank_backward(L, act, dinp, dout, xd);
    /* dinp += dout·W0, grad_bias += Σ dout; never dW0 */
    float *db = (L->bias && L->train_bias) ? L->grad_bias : NULL;
    if (dinp || db)
        op_matmul_backward(dinp, NULL, db, dout, inp, L->weight, 1.0f, N, C, OC, linear_layout(L->cfg.fan_in_fan_out));
    return LORAC_OK;
}

int lora_linear_train(lora_linear *L, int mode, lorac_err *err) {
    L->training = mode ? 1 : 0;
    if (mode) {
        if (L->merged) { /* unmerge: W0 was never written, so dropping the merged copy restores it */
            if (!L->merged_borrowed) free(L->merged_w);
            L->merged_w = NULL;
            L->merged = L->merged_borrowed = 0;
        }
    } else if (L->cfg.merge_weights && !L->merged && L->weight) { /* no base weight: stays unmerged */
        size_t n = (size_t)L->OC * L->C;
        if (!(L->merged_w = lora_alloc_floats(n, 1, err))) return err ? err->code : LORAC_ENOMEM;
        lora_merge_into(L->merged_w, L->weight, L->lora_B, L->lora_A, L->OC, L->cfg.r, L->C, L->scaling,
                        L->cfg.fan_in_fan_out);
        L->merged = 1;
    }
    return LORAC_OK;
}

int lora_linear_merge_to(lora_linear *L, float *buf, lorac_err *err) {
    if (!L->weight || !buf) return lorac_fail(err, LORAC_EINVAL, "lora_linear: merge_to needs a base weight and a buffer");
    if (L->merged) lora_linear_train(L, 1, NULL); /* drop an older merged copy */
    float *bt = L->cfg.fan_in_fan_out ? malloc((size_t)L->cfg.r * L->OC * sizeof(float)) : NULL;
    if (L->cfg.fan_in_fan_out && !bt) return lorac_fail(err, LORAC_ENOMEM, "lora_linear: out of memory merging");
    size_t ld = L->cfg.fan_in_fan_out ? (size_t)L->OC : (size_t)L->C;
    lora_merge_fused(buf, ld, L->weight, ld, L->lora_B, L->lora_A, L->OC, L->cfg.r, L->C, L->scaling,
                     L->cfg.fan_in_fan_out, bt);
    free(bt);
    L->merged_w = buf;
    L->merged = L->merged_borrowed = 1;
    L->training = 0;
    return LORAC_OK;
}

void lora_linear_zero_grad(lora_linear *L) {
    memset(L->grad_A, 0, (size_t)L->cfg.r * L->C * sizeof(float));
    memset(L->grad_B, 0, (size_t)L->OC * L->cfg.r * sizeof(float));
    if (L->grad_bias) memset(L->grad_bias, 0, (size_t)L->OC * sizeof(float));
}

int lora_linear_register(lora_linear *L, lora_registry *reg, const char *prefix, lorac_err *err) {
    int64_t w_shape[2] = {L->cfg.fan_in_fan_out ? L->C : L->OC, L->cfg.fan_in_fan_out ? L->OC : L->C};
    int64_t b_shape[1] = {L->OC};
    int64_t a_shape[2] = {L->cfg.r, L->C};
    int64_t bb_shape[2] = {L->OC, L->cfg.r};
    int rc = L->weight ? lora_register_named(reg, prefix, "weight", 2, w_shape, L->weight, NULL, NULL, 0, 0, err)
                       : LORAC_OK;
    if (!rc && L->bias)
        rc = lora_register_named(reg, prefix, "bias", 1, b_shape, L->bias, L->grad_bias, &L->train_bias, 1, 1, err);
    if (!rc) rc = lora_register_named(reg, prefix, "lora_A", 2, a_shape, L->lora_A, L->grad_A, &L->train_A, 1, 0, err);
    if (!rc) rc = lora_register_named(reg, prefix, "lora_B", 2, bb_shape, L->lora_B, L->grad_B, &L->train_B, 1, 0, err);
    return rc;
}
