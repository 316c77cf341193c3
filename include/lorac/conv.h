/* lorac/conv.h — 1-D and 2-D convolution, forward and backward, on plain float arrays (NCHW).
 *
 * What loralib's ConvLoRA needs: stride, zero padding, dilation and groups, as torch.nn.Conv1d /
 * Conv2d compute them (cross-correlation, weight (OC, C/groups, KH, KW)). Conventions as in
 * lorac/ops.h: backward ACCUMULATES into the gradients it is given, a NULL gradient is skipped,
 * and results do not depend on the number of threads (each output element is summed in a fixed
 * order by one thread). The loops are direct (no im2col buffer): convolutions are not on the hot
 * path of a language model, and direct loops need no scratch memory.
 */
#ifndef LORAC_CONV_H
#define LORAC_CONV_H

#include "lorac/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The geometry of a convolution layer. A 1-D convolution is a 2-D one with KH = 1, stride_h = 1,
 * pad_h = 0, dil_h = 1 on inputs of height 1. */
typedef struct op_conv_cfg {
    int C, OC;            /* in and out channels; both divisible by groups */
    int KH, KW;           /* kernel size */
    int stride_h, stride_w;
    int pad_h, pad_w;     /* zero padding on each side */
    int dil_h, dil_w;     /* dilation (1 = dense kernel) */
    int groups;
} op_conv_cfg;

/* A 1-D configuration: kernel K, stride, padding, dilation, groups. */
op_conv_cfg op_conv1d_cfg(int C, int OC, int K, int stride, int pad, int dil, int groups);
/* A 2-D configuration with a square kernel, stride, padding and dilation (torch's int arguments). */
op_conv_cfg op_conv2d_cfg(int C, int OC, int K, int stride, int pad, int dil, int groups);

/* Checks the configuration and an input size; on success sets *OH, *OW (both >= 1). */
int op_conv_out_size(const op_conv_cfg *c, int H, int W, int *OH, int *OW, lorac_err *err);
/* Number of weight elements: OC * (C/groups) * KH * KW. */
size_t op_conv_weight_numel(const op_conv_cfg *c);

/* inp is (B,C,H,W), w is (OC,C/groups,KH,KW), bias (OC) or NULL, out is (B,OC,OH,OW).
 * Overwrites out. The configuration must have passed op_conv_out_size. */
void op_conv_forward(float *out, const float *inp, const float *w, const float *bias, int B, int H,
                     int W, const op_conv_cfg *c);
/* Backward of op_conv_forward: dinp (B,C,H,W) += ∂L/∂inp, dw (like w) += ∂L/∂w,
 * dbias (OC) += Σ dout. Any of them may be NULL. */
void op_conv_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                      const float *w, int B, int H, int W, const op_conv_cfg *c);

#ifdef __cplusplus
}
#endif
#endif
