/* Direct 1-D/2-D convolution (torch.nn.Conv1d/Conv2d semantics) with its backward pass.
 * Every output element is owned by one thread and summed in a fixed order, so the results do not
 * depend on the thread count; the input gradient is gathered (not scattered) for the same reason. */
#include "lorac/conv.h"

#include <stddef.h>

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define CONV_PARALLEL_MIN 65536.0

op_conv_cfg op_conv1d_cfg(int C, int OC, int K, int stride, int pad, int dil, int groups) {
    op_conv_cfg c = {C, OC, 1, K, 1, stride, 0, pad, 1, dil, groups};
    return c;
}

op_conv_cfg op_conv2d_cfg(int C, int OC, int K, int stride, int pad, int dil, int groups) {
    op_conv_cfg c = {C, OC, K, K, stride, stride, pad, pad, dil, dil, groups};
    return c;
}

static int conv_out_dim(int in, int k, int stride, int pad, int dil) {
    /* torch: floor((in + 2*pad - dil*(k-1) - 1) / stride) + 1 */
    long span = (long)dil * (k - 1) + 1;
    long n = (long)in + 2L * pad - span;
    if (n < 0) return 0;
    return (int)(n / stride + 1);
}

int op_conv_out_size(const op_conv_cfg *c, int H, int W, int *OH, int *OW, lorac_err *err) {
    if (c->groups < 1 || c->C < 1 || c->OC < 1 || c->C % c->groups || c->OC % c->groups)
        return lorac_fail(err, LORAC_EINVAL, "conv: channels %d -> %d not divisible by groups %d",
                          c->C, c->OC, c->groups);
    if (c->KH < 1 || c->KW < 1 || c->stride_h < 1 || c->stride_w < 1 || c->dil_h < 1 ||
        c->dil_w < 1 || c->pad_h < 0 || c->pad_w < 0)
        return lorac_fail(err, LORAC_EINVAL, "conv: kernel, stride and dilation must be >= 1, padding >= 0");
    if (H < 1 || W < 1) return lorac_fail(err, LORAC_ESHAPE, "conv: input size %dx%d is empty", H, W);
    int oh = conv_out_dim(H, c->KH, c->stride_h, c->pad_h, c->dil_h);
    int ow = conv_out_dim(W, c->KW, c->stride_w, c->pad_w, c->dil_w);
    if (oh < 1 || ow < 1)
        return lorac_fail(err, LORAC_ESHAPE, "conv: input %dx%d is smaller than the kernel %dx%d",
                          H, W, c->KH, c->KW);
    *OH = oh;
    *OW = ow;
    return LORAC_OK;
}

size_t op_conv_weight_numel(const op_conv_cfg *c) {
    return (size_t)c->OC * (size_t)(c->C / c->groups) * (size_t)c->KH * (size_t)c->KW;
}

void op_conv_forward(float *out, const float *inp, const float *w, const float *bias, int B, int H,
                     int W, const op_conv_cfg *c) {
    // inp is (B,C,H,W), w is (OC,Cg,KH,KW) with Cg = C/groups, out is (B,OC,OH,OW)
    int OH = conv_out_dim(H, c->KH, c->stride_h, c->pad_h, c->dil_h);
    int OW = conv_out_dim(W, c->KW, c->stride_w, c->pad_w, c->dil_w);
    int Cg = c->C / c->groups, OCg = c->OC / c->groups;
    double work = (double)B * c->OC * OH * OW * Cg * c->KH * c->KW;
#pragma omp parallel for collapse(2) schedule(static) if (work > CONV_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        for (int oc = 0; oc < c->OC; oc++) {
            int g = oc / OCg;
            float *o = out + ((size_t)b * c->OC + oc) * OH * OW;
            const float *wo = w + (size_t)oc * Cg * c->KH * c->KW;
            for (int oh = 0; oh < OH; oh++) {
                for (int ow = 0; ow < OW; ow++) {
                    float acc = bias ? bias[oc] : 0.0f;
                    for (int ci = 0; ci < Cg; ci++) {
                        const float *x = inp + ((size_t)b * c->C + (size_t)g * Cg + ci) * H * W;
                        const float *wk = wo + (size_t)ci * c->KH * c->KW;
                        for (int kh = 0; kh < c->KH; kh++) {
                            int ih = oh * c->stride_h - c->pad_h + kh * c->dil_h;
                            if (ih < 0 || ih >= H) continue;
                            for (int kw = 0; kw < c->KW; kw++) {
                                int iw = ow * c->stride_w - c->pad_w + kw * c->dil_w;
                                if (iw < 0 || iw >= W) continue;
                                acc += wk[kh * c->KW + kw] * x[(size_t)ih * W + iw];
                            }
                        }
                    }
                    o[(size_t)oh * OW + ow] = acc;
                }
            }
        }
    }
}

/* The output index o along one axis that reads input position i through kernel tap k, or -1. */
static inline int conv_src(int i, int k, int stride, int pad, int dil, int O) {
    int t = i + pad - k * dil;
    if (t < 0 || t % stride) return -1;
    t /= stride;
    return t < O ? t : -1;
}

void op_conv_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                      const float *w, int B, int H, int W, const op_conv_cfg *c) {
    // forward: out[b,oc,oh,ow] = bias[oc] + Σ_{ci,kh,kw} w[oc,ci,kh,kw] · inp[b,g·Cg+ci,ih,iw]
    int OH = conv_out_dim(H, c->KH, c->stride_h, c->pad_h, c->dil_h);
    int OW = conv_out_dim(W, c->KW, c->stride_w, c->pad_w, c->dil_w);
    int Cg = c->C / c->groups, OCg = c->OC / c->groups;
    size_t KK = (size_t)c->KH * c->KW;
    double work = (double)B * c->OC * OH * OW * Cg * KK;
    if (dinp) {
        /* dinp[b,ci,ih,iw] += Σ_{oc in group, kh, kw} dout[b,oc,oh,ow] · w[oc,ci',kh,kw] (gathered) */
#pragma omp parallel for collapse(2) schedule(static) if (work > CONV_PARALLEL_MIN)
        for (int b = 0; b < B; b++) {
            for (int ci = 0; ci < c->C; ci++) {
                int g = ci / Cg, cl = ci % Cg;
                float *dx = dinp + ((size_t)b * c->C + ci) * H * W;
                for (int ih = 0; ih < H; ih++) {
                    for (int iw = 0; iw < W; iw++) {
                        float acc = 0.0f;
                        for (int ocl = 0; ocl < OCg; ocl++) {
                            int oc = g * OCg + ocl;
                            const float *dy = dout + ((size_t)b * c->OC + oc) * OH * OW;
                            const float *wk = w + ((size_t)oc * Cg + cl) * KK;
                            for (int kh = 0; kh < c->KH; kh++) {
                                int oh = conv_src(ih, kh, c->stride_h, c->pad_h, c->dil_h, OH);
                                if (oh < 0) continue;
                                for (int kw = 0; kw < c->KW; kw++) {
                                    int ow = conv_src(iw, kw, c->stride_w, c->pad_w, c->dil_w, OW);
                                    if (ow < 0) continue;
                                    acc += dy[(size_t)oh * OW + ow] * wk[kh * c->KW + kw];
                                }
                            }
                        }
                        dx[(size_t)ih * W + iw] += acc;
                    }
                }
            }
        }
    }
    if (dw) {
        /* dw[oc,ci,kh,kw] += Σ_{b,oh,ow} dout[b,oc,oh,ow] · inp[b,g·Cg+ci,ih,iw] */
#pragma omp parallel for schedule(static) if (work > CONV_PARALLEL_MIN)
        for (int oc = 0; oc < c->OC; oc++) {
            int g = oc / OCg;
            for (int ci = 0; ci < Cg; ci++) {
                for (int kh = 0; kh < c->KH; kh++) {
                    for (int kw = 0; kw < c->KW; kw++) {
                        float acc = 0.0f;
                        for (int b = 0; b < B; b++) {
                            const float *dy = dout + ((size_t)b * c->OC + oc) * OH * OW;
                            const float *x = inp + ((size_t)b * c->C + (size_t)g * Cg + ci) * H * W;
                            for (int oh = 0; oh < OH; oh++) {
                                int ih = oh * c->stride_h - c->pad_h + kh * c->dil_h;
                                if (ih < 0 || ih >= H) continue;
                                for (int ow = 0; ow < OW; ow++) {
                                    int iw = ow * c->stride_w - c->pad_w + kw * c->dil_w;
                                    if (iw < 0 || iw >= W) continue;
                                    acc += dy[(size_t)oh * OW + ow] * x[(size_t)ih * W + iw];
                                }
                            }
                        }
                        dw[(((size_t)oc * Cg + ci) * c->KH + kh) * c->KW + kw] += acc;
                    }
                }
            }
        }
    }
    if (dbias) {
        for (int oc = 0; oc < c->OC; oc++) {
            float acc = 0.0f;
            for (int b = 0; b < B; b++) {
                const float *dy = dout + ((size_t)b * c->OC + oc) * OH * OW;
                for (size_t i = 0; i < (size_t)OH * OW; i++) acc += dy[i];
            }
            dbias[oc] += acc;
        }
    }
}
