/* One linear map of the model, whatever its base and its LoRA: an f32 weight (nn.Linear's (out, in)
 * or Conv1D's (in, out); fp32 or bf16 products as op_set_matmul_precision says) or one kept in a
 * GGUF block type (dequantized tile by tile inside the product), with a LoRA Linear (over an f32
 * base it computes the whole map and merges for inference; over a quantized one it adds its
 * low-rank path after the frozen product), a MergedLinear on fused q/k/v slices, or a trained
 * weight (head, full fine-tuning) that gets its own gradients. */
#include <cblas.h>
#include <stdlib.h>

#include "models/model_internal.h"

int linear_forward(const model_linear *L, const site_lora *lo, lora_act *act, int cap_N, float *out, const float *inp,
                   int N, int decode, lorac_rng *rng, lorac_err *err) {
    lora_linear *lin = lo ? lo->lin : NULL;
    lora_merged *split = lo ? lo->split : NULL;
    int rc = LORAC_OK;
    if (lin && !act->cap_N) rc = lora_linear_act_init(act, lin, cap_N, err);
    if (split && !act->cap_N) rc = lora_merged_act_init(act, split, cap_N, err);
    if (rc) return rc;
    if (lin && lin->weight) return lora_linear_forward(lin, act, out, inp, N, rng, err);
    if (split) return lora_merged_forward(split, act, out, inp, N, rng, err);
    if (L->w.type == QUANT_F32) op_matmul_forward(out, inp, L->w.data, L->b, N, L->C, L->OC, L->layout);
    else rc = (decode ? qmat_matmul_decode : qmat_matmul_forward)(out, inp, &L->w, L->b, N, err);
    /* a decode step: each row's low-rank path alone (an sgemm's bits change with its row count) */
    for (int i = 0, n = decode ? 1 : N; !rc && lin && i < N; i += n)
        rc = lora_linear_delta_forward(lin, act, out + (size_t)i * L->OC, inp + (size_t)i * L->C, n, rng, err);
    return rc;
}

int linear_backward(const model_linear *L, const site_lora *lo, lora_act *act, float *dinp, const float *dout,
                    const float *inp, int N, lorac_err *err) {
    lora_linear *lin = lo ? lo->lin : NULL;
    if (lin && lin->weight) return lora_linear_backward(lin, act, dinp, dout, inp, err);
    if (lo && lo->split) return lora_merged_backward(lo->split, act, dinp, dout, inp, err);
    int rc = LORAC_OK;
    if (L->w.type != QUANT_F32) rc = dinp ? qmat_matmul_backward_input(dinp, dout, &L->w, N, err) : LORAC_OK;
    else if (dinp || L->dw || L->db)
        op_matmul_backward(dinp, L->dw, L->db, dout, inp, L->w.data, 1.0f, N, L->C, L->OC, L->layout);
    if (!rc && lin) rc = lora_linear_delta_backward(lin, act, dinp, dout, err);
    return rc;
}

int linear_reads_input(const model_linear *L, const site_lora *lo) {
    return (lo && (lo->lin || lo->split)) || L->dw != NULL;
}

int linear_weight_f32(const model_linear *L, const site_lora *lo, float *out, lorac_err *err) {
    size_t n = (size_t)L->C * L->OC;
    qmat_to_f32(&L->w, out);
    if (lo && lo->lin) { /* (OC,C) += s·B·A, or (C,OC) += s·Aᵀ·Bᵀ */
        const lora_linear *A = lo->lin;
        int r = A->cfg.r;
        if (L->layout == OP_W_IN_OUT)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, L->C, L->OC, r, A->scaling, A->lora_A, L->C, A->lora_B, r,
                        1.0f, out, L->OC);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L->OC, L->C, r, A->scaling, A->lora_B, r, A->lora_A,
                        L->C, 1.0f, out, L->C);
    } else if (lo && lo->split) { /* ΔW stored like the weight, unscaled */
        float *d = malloc(n * sizeof(float));
        if (!d) return lorac_fail(err, LORAC_ENOMEM, "out of memory merging a LoRA layer");
        lora_merged_delta(lo->split, d);
        for (size_t i = 0; i < n; i++) out[i] += lo->split->scaling * d[i];
        free(d);
    }
    return LORAC_OK;
}
