/* Bias add, LayerNorm and RMSNorm: row-parallel forwards, fixed-order parameter gradients. */
#include "lorac/ops.h"

#include <string.h>

#include <math.h>
#include <stddef.h>

/* Parameter gradients are summed over rows by channel blocks: each block is one task that walks
 * the rows in order, so the sums are the same whatever the thread count. */
#define OPS_CBLOCK 64

void op_bias_add_forward(float *out, const float *inp, const float *bias, int N, int C) {
    // inp, out are (N,C); bias is (C)
#pragma omp parallel for schedule(static) if ((size_t)N * C > 65536)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = x[c] + bias[c];
    }
}

void op_add(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void op_zero(float *x, size_t n) {
    /* chunks of 16 Ki floats, so each thread clears whole cache lines with memset */
    size_t nch = (n + 16383) / 16384;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t c = 0; c < nch; c++) {
        size_t i0 = c * 16384, m = n - i0 < 16384 ? n - i0 : 16384;
        memset(x + i0, 0, m * sizeof(float));
    }
}

void op_bias_add_backward(float *dinp, float *dbias, const float *dout, int N, int C) {
    // dout, dinp are (N,C); dbias is (C)
    if (dinp) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > 65536)
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) dinp[(size_t)n * C + c] += dout[(size_t)n * C + c];
    }
    if (dbias) {
        int nblk = (C + OPS_CBLOCK - 1) / OPS_CBLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C > 65536)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * OPS_CBLOCK, c1 = c0 + OPS_CBLOCK < C ? c0 + OPS_CBLOCK : C;
            for (int n = 0; n < N; n++)
                for (int c = c0; c < c1; c++) dbias[c] += dout[(size_t)n * C + c];
        }
    }
}

void op_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                          const float *beta, int N, int C, float eps) {
    // inp, out are (N,C); gamma, beta are (C) or NULL; mean, rstd are (N), kept for the backward
#pragma omp parallel for schedule(static) if ((size_t)N * C > 16384)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        /* two passes in double: the mean, then the biased variance about it (vector sums: a
         * fixed order for a given C, independent of threads) */
        double m = 0.0;
#pragma omp simd reduction(+ : m)
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        double v = 0.0;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) {
            double d = x[c] - m;
            v += d * d;
        }
        v /= C;
        float s = (float)(1.0 / sqrt(v + (double)eps));
        float mf = (float)m;
#pragma omp simd
        for (int c = 0; c < C; c++) {
            float y = (x[c] - mf) * s;
            if (gamma) y *= gamma[c];
            if (beta) y += beta[c];
            o[c] = y;
        }
        mean[n] = mf;
        rstd[n] = s;
    }
}

void op_layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                           const float *inp, const float *gamma, const float *mean,
                           const float *rstd, int N, int C) {
    // dout, inp, dinp are (N,C); gamma, dgamma, dbeta are (C); mean, rstd are (N)
    if (dinp) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > 16384)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C;
            const float *dy = dout + (size_t)n * C;
            float *dx = dinp + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            /* xhat = (x-m)·s, g = dy·gamma: dx = s·(g - mean(g) - xhat·mean(g·xhat)) */
            double gsum = 0.0, gxsum = 0.0;
#pragma omp simd reduction(+ : gsum, gxsum)
            for (int c = 0; c < C; c++) {
                float g = gamma ? dy[c] * gamma[c] : dy[c];
                gsum += g;
                gxsum += (double)g * ((x[c] - m) * s);
            }
            float gmean = (float)(gsum / C), gxmean = (float)(gxsum / C);
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float g = gamma ? dy[c] * gamma[c] : dy[c];
                float xhat = (x[c] - m) * s;
                dx[c] += s * (g - gmean - xhat * gxmean);
            }
        }
    }
    if (dgamma || dbeta) {
        int nblk = (C + OPS_CBLOCK - 1) / OPS_CBLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C > 16384)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * OPS_CBLOCK, c1 = c0 + OPS_CBLOCK < C ? c0 + OPS_CBLOCK : C;
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C;
                const float *dy = dout + (size_t)n * C;
                float m = mean[n], s = rstd[n];
                for (int c = c0; c < c1; c++) {
                    // out = xhat * gamma + beta
                    if (dgamma) dgamma[c] += dy[c] * ((x[c] - m) * s);
                    if (dbeta) dbeta[c] += dy[c];
                }
            }
        }
    }
}

void op_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                        float eps) {
    // inp, out are (N,C); w is (C) or NULL; rstd is (N), kept for the backward
#pragma omp parallel for schedule(static) if ((size_t)N * C > 16384)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float s = (float)(1.0 / sqrt(ss / C + (double)eps));
        for (int c = 0; c < C; c++) o[c] = w ? x[c] * s * w[c] : x[c] * s;
        rstd[n] = s;
    }
}

void op_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                         const float *w, const float *rstd, int N, int C) {
    // dout, inp, dinp are (N,C); w, dw are (C); rstd is (N)
    if (dinp) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > 16384)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C;
            const float *dy = dout + (size_t)n * C;
            float *dx = dinp + (size_t)n * C;
            float s = rstd[n];
            /* out = x·s·w with s = (mean(x²)+eps)^-1/2: dx = s·g - x·s³·mean(g·x), g = dy·w */
            double gx = 0.0;
            for (int c = 0; c < C; c++) gx += (double)(w ? dy[c] * w[c] : dy[c]) * x[c];
            float k = (float)(gx / C) * s * s * s;
            for (int c = 0; c < C; c++) {
                float g = w ? dy[c] * w[c] : dy[c];
                dx[c] += s * g - x[c] * k;
            }
        }
    }
    if (dw) {
        int nblk = (C + OPS_CBLOCK - 1) / OPS_CBLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C > 16384)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * OPS_CBLOCK, c1 = c0 + OPS_CBLOCK < C ? c0 + OPS_CBLOCK : C;
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C;
                const float *dy = dout + (size_t)n * C;
                float s = rstd[n];
                for (int c = c0; c < c1; c++) dw[c] += dy[c] * (x[c] * s);
            }
        }
    }
}

void op_norm_apply(float *out, const float *inp, const float *mean, const float *rstd, const float *w, const float *b,
                   int N, int C) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > 32768)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float s = rstd[n];
        if (mean) {
            float m = mean[n];
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float y = (x[c] - m) * s;
                if (w) y *= w[c];
                if (b) y += b[c];
                o[c] = y;
            }
        } else {
            for (int c = 0; c < C; c++) o[c] = w ? x[c] * s * w[c] : x[c] * s;
        }
    }
}
