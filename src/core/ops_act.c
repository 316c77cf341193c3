/* Elementwise activations (GELU tanh/erf, SiLU, SwiGLU) and the row-wise softmax. */
#include "lorac/ops.h"

#include <math.h>
#include <stddef.h>

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define INV_SQRT2 0.7071067811865476f
#define INV_SQRT_2PI 0.3989422804014327f
/* below this many values a parallel region costs more than it saves */
#define OPS_PAR_MIN 32768

static inline float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

/* GELU (tanh) works in blocks of GELU_BLK values: u for the block, then one vector tanh call. */
#define GELU_BLK 512

static void gelu_tanh_u_(float *th, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) th[i] = GELU_K * (x[i] + 0.044715f * x[i] * x[i] * x[i]);
    op_vtanh(th, th, n);
}

void op_gelu_tanh_forward(float *out, const float *inp, size_t n) {
    // inp, out are (n)
    size_t nblk = (n + GELU_BLK - 1) / GELU_BLK;
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN)
    for (size_t b = 0; b < nblk; b++) {
        float th[GELU_BLK];
        size_t i0 = b * GELU_BLK, m = n - i0 < GELU_BLK ? n - i0 : GELU_BLK;
        gelu_tanh_u_(th, inp + i0, m);
        for (size_t i = 0; i < m; i++) out[i0 + i] = 0.5f * inp[i0 + i] * (1.0f + th[i]);
    }
}

void op_gelu_tanh_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    size_t nblk = (n + GELU_BLK - 1) / GELU_BLK;
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN)
    for (size_t b = 0; b < nblk; b++) {
        float th[GELU_BLK];
        size_t i0 = b * GELU_BLK, m = n - i0 < GELU_BLK ? n - i0 : GELU_BLK;
        gelu_tanh_u_(th, inp + i0, m);
        for (size_t i = 0; i < m; i++) {
            float x = inp[i0 + i], t = th[i];
            float sech2 = 1.0f - t * t;
            // out = 0.5·x·(1 + tanh(u)), du/dx = K·(1 + 3·0.044715·x²)
            float d = 0.5f * (1.0f + t) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
            dinp[i0 + i] += d * dout[i0 + i];
        }
    }
}

void op_gelu_erf_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * INV_SQRT2));
    }
}

void op_gelu_erf_backward(float *dinp, const float *dout, const float *inp, size_t n) {
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        // out = x·Φ(x): d = Φ(x) + x·φ(x)
        float d = 0.5f * (1.0f + erff(x * INV_SQRT2)) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
        dinp[i] += d * dout[i];
    }
}

void op_silu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] * sigmoidf_(inp[i]);
}

void op_silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], s = sigmoidf_(x);
        // out = x·σ(x): d = σ·(1 + x·(1-σ))
        dinp[i] += dout[i] * s * (1.0f + x * (1.0f - s));
    }
}

void op_swiglu_forward(float *out, const float *gate, const float *up, int N, int C) {
    // gate, up, out are (N,C)
    size_t n = (size_t)N * C;
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g * sigmoidf_(g) * up[i];
    }
}

void op_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                        const float *up, int N, int C) {
    size_t n = (size_t)N * C;
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], s = sigmoidf_(g);
        // out = silu(g)·u
        if (dgate) dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        if (dup) dup[i] += dout[i] * g * s;
    }
}

void op_softmax_forward(float *out, const float *inp, int N, int C) {
    // inp, out are (N,C); softmax over C for each row
#pragma omp parallel for schedule(static) if ((size_t)N * C > OPS_PAR_MIN)
    for (int r = 0; r < N; r++) {
        const float *x = inp + (size_t)r * C;
        float *o = out + (size_t)r * C;
        float m = -INFINITY;
        for (int c = 0; c < C; c++) m = x[c] > m ? x[c] : m;
        double sum = 0.0;
        for (int c = 0; c < C; c++) {
            float e = expf(x[c] - m);
            o[c] = e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
        for (int c = 0; c < C; c++) o[c] *= inv;
    }
}

void op_softmax_backward(float *dinp, const float *dout, const float *out, int N, int C) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > OPS_PAR_MIN)
    for (int r = 0; r < N; r++) {
        const float *dy = dout + (size_t)r * C;
        const float *y = out + (size_t)r * C;
        float *dx = dinp + (size_t)r * C;
        // dx = y·(dy - Σ dy·y)
        double dot = 0.0;
        for (int c = 0; c < C; c++) dot += (double)dy[c] * y[c];
        float d = (float)dot;
        for (int c = 0; c < C; c++) dx[c] += y[c] * (dy[c] - d);
    }
}
