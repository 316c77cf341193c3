/* test_conv.c — op_conv_forward/backward: a hand-computed case, an independent double-precision
 * reference (scatter form) for the forward, and central finite differences for dinp, dw and dbias
 * over stride, padding, dilation, groups, 1-D and 2-D.
 * The loss L = Σ dy·out is linear in inp, in w and in bias separately, so central differences have
 * no truncation error: the only error is float rounding of the forward, hence eps = 0.25 and a
 * tolerance of 1e-4·(1 + |grad|) on a loss summed in double. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lorac.h"

static void fill(float *x, size_t n, lorac_rng *rng) {
    for (size_t i = 0; i < n; i++) x[i] = 2.0f * lorac_rng_uniform(rng) - 1.0f;
}

/* out = Σ contributions, computed input-major (scatter) in double: a different loop order from the op. */
static void ref_forward(double *out, const float *inp, const float *w, const float *bias, int B, int H, int W,
                        const op_conv_cfg *c, int OH, int OW) {
    int Cg = c->C / c->groups, OCg = c->OC / c->groups;
    for (int b = 0; b < B; b++)
        for (int oc = 0; oc < c->OC; oc++)
            for (int i = 0; i < OH * OW; i++) out[((size_t)b * c->OC + oc) * OH * OW + i] = bias ? bias[oc] : 0.0;
    for (int b = 0; b < B; b++)
        for (int ci = 0; ci < c->C; ci++)
            for (int ih = 0; ih < H; ih++)
                for (int iw = 0; iw < W; iw++) {
                    double xv = inp[(((size_t)b * c->C + ci) * H + ih) * W + iw];
                    int g = ci / Cg;
                    for (int ocl = 0; ocl < OCg; ocl++) {
                        int oc = g * OCg + ocl;
                        for (int kh = 0; kh < c->KH; kh++)
                            for (int kw = 0; kw < c->KW; kw++) {
                                int th = ih + c->pad_h - kh * c->dil_h, tw = iw + c->pad_w - kw * c->dil_w;
                                if (th < 0 || tw < 0 || th % c->stride_h || tw % c->stride_w) continue;
                                int oh = th / c->stride_h, ow = tw / c->stride_w;
                                if (oh >= OH || ow >= OW) continue;
                                out[(((size_t)b * c->OC + oc) * OH + oh) * OW + ow] +=
                                    xv * w[(((size_t)oc * Cg + ci % Cg) * c->KH + kh) * c->KW + kw];
                            }
                    }
                }
}

static double loss(const float *inp, const float *w, const float *bias, const float *dy, float *out, int B, int H,
                   int W, const op_conv_cfg *c, size_t nout) {
    op_conv_forward(out, inp, w, bias, B, H, W, c);
    double s = 0;
    for (size_t i = 0; i < nout; i++) s += (double)dy[i] * out[i];
    return s;
}

static void fd_check(float *x, const float *g, size_t n, const char *what, const float *inp, const float *w,
                     const float *bias, const float *dy, float *out, int B, int H, int W, const op_conv_cfg *c,
                     size_t nout) {
    const float eps = 0.25f;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + eps;
        double lp = loss(inp, w, bias, dy, out, B, H, W, c, nout);
        x[i] = keep - eps;
        double lm = loss(inp, w, bias, dy, out, B, H, W, c, nout);
        x[i] = keep;
        double fd = (lp - lm) / (2.0 * eps), e = fabs(fd - g[i]) / (1.0 + fabs(fd));
        if (e > worst) worst = e;
    }
    CHECK(worst < 1e-4, "%s: worst finite-difference error %.3g", what, worst);
}

static void test_case(const char *name, int dims, int B, int C, int OC, int K, int H, int W, int stride, int pad,
                      int dil, int groups) {
    op_conv_cfg c = dims == 1 ? op_conv1d_cfg(C, OC, K, stride, pad, dil, groups) : op_conv2d_cfg(C, OC, K, stride, pad, dil, groups);
    if (dims == 1) H = 1;
    int OH, OW;
    lorac_err err = {0};
    CHECK(op_conv_out_size(&c, H, W, &OH, &OW, &err) == 0, "%s: %s", name, err.msg);
    size_t nin = (size_t)B * C * H * W, nw = op_conv_weight_numel(&c), nout = (size_t)B * OC * OH * OW;
    lorac_rng rng;
    lorac_rng_seed(&rng, 42);
    float *x = malloc(nin * 4), *w = malloc(nw * 4), *bias = malloc((size_t)OC * 4), *dy = malloc(nout * 4), *out = malloc(nout * 4);
    float *dx = calloc(nin, 4), *dw = calloc(nw, 4), *db = calloc((size_t)OC, 4);
    double *ref = malloc(nout * sizeof(double));
    fill(x, nin, &rng);
    fill(w, nw, &rng);
    fill(bias, (size_t)OC, &rng);
    fill(dy, nout, &rng);
    op_conv_forward(out, x, w, bias, B, H, W, &c);
    ref_forward(ref, x, w, bias, B, H, W, &c, OH, OW);
    double worst = 0;
    for (size_t i = 0; i < nout; i++) worst = fmax(worst, fabs(out[i] - ref[i]));
    CHECK(worst < 1e-5, "%s: forward differs from the double reference by %.3g", name, worst);
    op_conv_backward(dx, dw, db, dy, x, w, B, H, W, &c);
    char what[96];
    snprintf(what, sizeof what, "%s dinp", name);
    fd_check(x, dx, nin, what, x, w, bias, dy, out, B, H, W, &c, nout);
    snprintf(what, sizeof what, "%s dw", name);
    fd_check(w, dw, nw, what, x, w, bias, dy, out, B, H, W, &c, nout);
    snprintf(what, sizeof what, "%s dbias", name);
    fd_check(bias, db, (size_t)OC, what, x, w, bias, dy, out, B, H, W, &c, nout);
    /* backward accumulates: a second call doubles the gradients; NULL gradients are skipped */
    float *dx2 = malloc(nin * 4);
    memcpy(dx2, dx, nin * 4);
    op_conv_backward(dx2, NULL, NULL, dy, x, w, B, H, W, &c);
    int doubled = 1;
    for (size_t i = 0; i < nin; i++) doubled &= fabsf(dx2[i] - 2.0f * dx[i]) <= 1e-6f * (1.0f + fabsf(dx[i]));
    CHECK(doubled, "%s: backward accumulates into dinp", name);
    free(x); free(w); free(bias); free(dy); free(out); free(dx); free(dw); free(db); free(ref); free(dx2);
}

int main(void) {
    /* hand case: 1 channel 3x3 input 1..9, 2x2 kernel of ones, no padding: sums of 2x2 windows */
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 1, 1, 1}, b[1] = {0.5f}, out[4];
    op_conv_cfg c = op_conv2d_cfg(1, 1, 2, 1, 0, 1, 1);
    op_conv_forward(out, x, w, b, 1, 3, 3, &c);
    CHECK(out[0] == 12.5f && out[1] == 16.5f && out[2] == 24.5f && out[3] == 28.5f, "hand case %g %g %g %g",
          out[0], out[1], out[2], out[3]);

    test_case("conv2d basic", 2, 2, 3, 4, 3, 5, 5, 1, 1, 1, 1);
    test_case("conv2d stride2 pad1 groups2", 2, 1, 4, 6, 3, 6, 5, 2, 1, 1, 2);
    test_case("conv2d dilation2 pad2", 2, 2, 2, 3, 3, 7, 6, 1, 2, 2, 1);
    test_case("conv2d depthwise", 2, 1, 3, 3, 2, 4, 4, 1, 0, 1, 3);
    test_case("conv1d k3 stride2 pad2", 1, 2, 3, 5, 3, 1, 9, 2, 2, 1, 1);
    test_case("conv1d k1", 1, 2, 4, 6, 1, 1, 7, 1, 0, 1, 1);

    /* geometry errors */
    int OH, OW;
    lorac_err err = {0};
    op_conv_cfg bad = op_conv2d_cfg(3, 4, 3, 1, 0, 1, 2);
    CHECK(op_conv_out_size(&bad, 5, 5, &OH, &OW, &err) == LORAC_EINVAL, "channels not divisible by groups");
    op_conv_cfg big = op_conv2d_cfg(2, 2, 5, 1, 0, 1, 1);
    CHECK(op_conv_out_size(&big, 3, 3, &OH, &OW, &err) == LORAC_ESHAPE, "input smaller than the kernel");
    op_conv_cfg ok = op_conv2d_cfg(2, 2, 3, 2, 1, 1, 1);
    CHECK(op_conv_out_size(&ok, 5, 6, &OH, &OW, &err) == 0 && OH == 3 && OW == 3, "torch's output size (%d, %d)", OH, OW);
    return check_summary();
}
