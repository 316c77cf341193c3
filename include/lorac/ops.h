/* lorac/ops.h — the core fp32 ops, each a forward/backward pair on plain float arrays.
 *
 * This is the narrow set of functions a GPU backend would implement. Conventions (llm.c style):
 *  - shapes are given in fixed letters: N rows (= B*T tokens), C in-features, OC out-features,
 *    B batch, T time, NH heads, HS head size, V vocabulary;
 *  - every backward ACCUMULATES (+=) into the gradient buffers it is given;
 *  - a gradient pointer that is NULL is not computed (frozen weights never get a dW GEMM);
 *  - results do not depend on the number of threads.
 */
#ifndef LORAC_OPS_H
#define LORAC_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a weight matrix of a linear map is stored. */
typedef enum op_wlayout {
    OP_W_OUT_IN = 0, /* W is (OC, C), as torch.nn.Linear */
    OP_W_IN_OUT = 1, /* W is (C, OC), as GPT-2's Conv1D (fan_in_fan_out) */
} op_wlayout;

/* out (N,OC) = inp (N,C) · Wᵀ + bias (OC, may be NULL). Overwrites out. */
void op_matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                       int N, int C, int OC, op_wlayout layout);
/* out (N,OC) += alpha · inp (N,C) · Wᵀ. For fused low-rank paths. */
void op_matmul_forward_acc(float *out, const float *inp, const float *w, float alpha,
                           int N, int C, int OC, op_wlayout layout);
/* Backward of out = alpha·inp·Wᵀ + bias:
 * dinp (N,C) += alpha·dout·W; dw (stored like w) += alpha·doutᵀ·inp; dbias (OC) += Σ_n dout.
 * Any of dinp, dw, dbias may be NULL. */
void op_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                        const float *w, float alpha, int N, int C, int OC, op_wlayout layout);

/* Inverted dropout on n values: mask[i] ~ Bernoulli(1-p) drawn from rng in index order (so the
 * result does not depend on threads), out = inp * mask / (1-p). p == 0 copies and leaves mask
 * untouched (it may be NULL then). */
void op_dropout_forward(float *out, uint8_t *mask, const float *inp, float p, size_t n, lorac_rng *rng);
/* dinp += dout * mask / (1-p) (dout when p == 0). */
void op_dropout_backward(float *dinp, const float *dout, const uint8_t *mask, float p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
