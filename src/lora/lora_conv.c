/* loralib's ConvLoRA (Conv1d, Conv2d): conv(x, W0 + s·view(B·A, W0.shape)) + bias.
 * The low-rank update is a reshaped matrix, so the LoRA gradients come from the gradient of the
 * effective kernel: dB = s·dWeff·Aᵀ, dA = s·Bᵀ·dWeff (dWeff viewed as (b_rows, a_cols)). */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora_internal.h"

int lora_conv_init(lora_conv *L, int dims, const op_conv_cfg *conv, const lora_config *cfg,
                   float *weight, float *bias, lorac_rng *rng, lorac_err *err) {
    memset(L, 0, sizeof *L);
    int rc = lora_cfg_check(cfg, "lora_conv", err);
    if (rc) return rc;
    if (!conv || !weight || !rng) return lorac_fail(err, LORAC_EINVAL, "lora_conv: needs a geometry, a weight and an rng");
    int OH, OW;
    rc = op_conv_out_size(conv, conv->KH * conv->dil_h, conv->KW * conv->dil_w, &OH, &OW, err);
    if (rc) return rc;
    if (dims == 1) {
        if (conv->KH != 1 || conv->stride_h != 1 || conv->pad_h != 0 || conv->dil_h != 1)
            return lorac_fail(err, LORAC_EINVAL, "lora_conv: a 1-D convolution has KH 1, stride_h 1, pad_h 0 (use op_conv1d_cfg)");
    } else if (dims == 2) {
        if (conv->KH != conv->KW)
            return lorac_fail(err, LORAC_EINVAL, "lora_conv: loralib's ConvLoRA takes a square kernel (got %dx%d)", conv->KH, conv->KW);
    } else {
        return lorac_fail(err, LORAC_EINVAL, "lora_conv: dims must be 1 or 2 (got %d)", dims);
    }
    int k = conv->KW, r = cfg->r;
    L->dims = dims;
    L->k = k;
    L->conv = *conv;
    L->cfg = *cfg;
    L->scaling = lora_config_scaling(cfg);
    L->weight = weight;
    L->bias = bias;
    /* loralib: A (r·k, C·k), B (OC/groups·k, r·k) for 2-D; C·k^(dims-1) columns fit 1-D kernels too */
    L->a_rows = r * k;
    L->a_cols = conv->C * (dims == 2 ? k : 1);
    L->b_rows = conv->OC / conv->groups * k;
    if (!(L->lora_A = lora_alloc_floats((size_t)L->a_rows, (size_t)L->a_cols, err)) ||
        !(L->lora_B = lora_alloc_floats((size_t)L->b_rows, (size_t)L->a_rows, err)) ||
        !(L->grad_A = lora_alloc_floats((size_t)L->a_rows, (size_t)L->a_cols, err)) ||
        !(L->grad_B = lora_alloc_floats((size_t)L->b_rows, (size_t)L->a_rows, err)) ||
        (bias && !(L->grad_bias = lora_alloc_floats((size_t)conv->OC, 1, err)))) {
        lora_conv_free(L);
        return err ? err->code : LORAC_ENOMEM;
    }
    lora_init_A(L->lora_A, L->a_rows, L->a_cols, cfg, rng);
    L->training = 1;
    L->train_A = L->train_B = L->train_bias = 1;
    return LORAC_OK;
}

void lora_conv_free(lora_conv *L) {
    if (!L) return;
    free(L->lora_A);
    free(L->lora_B);
    free(L->grad_A);
    free(L->grad_B);
    free(L->grad_bias);
    free(L->merged_w);
    memset(L, 0, sizeof *L);
}

int lora_conv_act_init(lora_act *act, const lora_conv *L, lorac_err *err) {
    memset(act, 0, sizeof *act);
    size_t n = op_conv_weight_numel(&L->conv);
    if (!(act->w_eff = lora_alloc_floats(n, 1, err)) || !(act->dw_eff = lora_alloc_floats(n, 1, err))) {
        lora_act_free(act);
        return err ? err->code : LORAC_ENOMEM;
    }
    return LORAC_OK;
}

static int conv_check_input(const lora_conv *L, int B, int H, int W, lorac_err *err) {
    int OH, OW;
    if (B < 0) return lorac_fail(err, LORAC_EINVAL, "lora_conv: batch %d < 0", B);
    if (L->dims == 1 && H != 1) return lorac_fail(err, LORAC_ESHAPE, "lora_conv: a 1-D input has H = 1 (got %d)", H);
    return op_conv_out_size(&L->conv, H, W, &OH, &OW, err);
}

int lora_conv_forward(lora_conv *L, lora_act *act, float *out, const float *inp, int B, int H, int W,
                      lorac_err *err) {
    // inp is (B,C,H,W), out is (B,OC,OH,OW); act->w_eff = W0 + s·view(B·A)
    int rc = conv_check_input(L, B, H, W, err);
    if (rc) return rc;
    if (L->merged) {
        op_conv_forward(out, inp, L->merged_w, L->bias, B, H, W, &L->conv);
        return LORAC_OK;
    }
    if (!act || !act->w_eff) return lorac_fail(err, LORAC_EINVAL, "lora_conv: the unmerged forward needs an activation");
    lora_merge_into(act->w_eff, L->weight, L->lora_B, L->lora_A, L->b_rows, L->a_rows, L->a_cols, L->scaling, 0);
    op_conv_forward(out, inp, act->w_eff, L->bias, B, H, W, &L->conv);
    act->N = B;
    act->dropped = 0;
    return LORAC_OK;
}

int lora_conv_backward(lora_conv *L, lora_act *act, float *dinp, const float *dout, const float *inp,
                       int B, int H, int W, lorac_err *err) {
    // w_eff = W0 + s·B·A (viewed); dout is (B,OC,OH,OW)
    if (L->merged || !act || !act->w_eff)
        return lorac_fail(err, LORAC_EINVAL, "lora_conv: backward needs the unmerged (training) forward");
    int rc = conv_check_input(L, B, H, W, err);
    if (rc) return rc;
    int need_w = L->train_A || L->train_B;
    size_t n = op_conv_weight_numel(&L->conv);
    if (need_w) memset(act->dw_eff, 0, n * sizeof(float));
    float *db = (L->bias && L->train_bias) ? L->grad_bias : NULL;
    op_conv_backward(dinp, need_w ? act->dw_eff : NULL, db, dout, inp, act->w_eff, B, H, W, &L->conv);
    int ar = L->a_rows, ac = L->a_cols, br = L->b_rows;
    if (L->train_B) /* grad_B (br,ar) += s·dWeff(br,ac)·Aᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, br, ar, ac, L->scaling, act->dw_eff, ac, L->lora_A, ac,
                    1.0f, L->grad_B, ar);
    if (L->train_A) /* grad_A (ar,ac) += s·Bᵀ·dWeff */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ar, ac, br, L->scaling, L->lora_B, ar, act->dw_eff, ac,
                    1.0f, L->grad_A, ac);
    return LORAC_OK;
}

int lora_conv_train(lora_conv *L, int mode, lorac_err *err) {
    L->training = mode ? 1 : 0;
    if (mode) {
        if (L->merged) {
            free(L->merged_w);
            L->merged_w = NULL;
            L->merged = 0;
        }
    } else if (L->cfg.merge_weights && !L->merged) {
        if (!(L->merged_w = lora_alloc_floats(op_conv_weight_numel(&L->conv), 1, err))) return err ? err->code : LORAC_ENOMEM;
        lora_merge_into(L->merged_w, L->weight, L->lora_B, L->lora_A, L->b_rows, L->a_rows, L->a_cols, L->scaling, 0);
        L->merged = 1;
    }
    return LORAC_OK;
}

void lora_conv_zero_grad(lora_conv *L) {
    memset(L->grad_A, 0, (size_t)L->a_rows * L->a_cols * sizeof(float));
    memset(L->grad_B, 0, (size_t)L->b_rows * L->a_rows * sizeof(float));
    if (L->grad_bias) memset(L->grad_bias, 0, (size_t)L->conv.OC * sizeof(float));
}

int lora_conv_register(lora_conv *L, lora_registry *reg, const char *prefix, lorac_err *err) {
    /* loralib's ConvLoRA: its own lora_A, lora_B first, then the wrapped conv's weight and bias */
    const op_conv_cfg *c = &L->conv;
    int64_t a_shape[2] = {L->a_rows, L->a_cols};
    int64_t b_shape[2] = {L->b_rows, L->a_rows};
    int64_t w_shape[4] = {c->OC, c->C / c->groups, L->k, L->k};
    int64_t bias_shape[1] = {c->OC};
    int rc = lora_register_named(reg, prefix, "lora_A", 2, a_shape, L->lora_A, L->grad_A, &L->train_A, 1, 0, err);
    if (!rc) rc = lora_register_named(reg, prefix, "lora_B", 2, b_shape, L->lora_B, L->grad_B, &L->train_B, 1, 0, err);
    if (!rc) rc = lora_register_named(reg, prefix, "conv.weight", L->dims + 2, w_shape, L->weight, NULL, NULL, 0, 0, err);
    /* the inner conv is not a LoRA layer in loralib, so bias='lora_only' leaves its bias alone */
    if (!rc && L->bias)
        rc = lora_register_named(reg, prefix, "conv.bias", 1, bias_shape, L->bias, L->grad_bias, &L->train_bias, 1, 0, err);
    return rc;
}
