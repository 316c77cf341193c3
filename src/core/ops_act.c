/* Elementwise activations (GELU tanh/erf, SiLU, SwiGLU) and the row-wise softmax. */
#include "lorac/ops.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define INV_SQRT2 0.7071067811865476f
#define INV_SQRT_2PI 0.3989422804014327f
/* below this many values a parallel region costs more than it saves */
#define OPS_PAR_MIN 32768

/* The GELUs work in blocks of GELU_BLK values: a block of inputs (widened first when stored as
 * bf16), u for the block, then one vector tanh call. */
#define GELU_BLK 512

static inline float bf16_widen_(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* round to nearest even; a NaN stays a (quiet) NaN instead of carrying into the exponent */
static inline uint16_t bf16_round_(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : r);
}

void op_f32_to_bf16(uint16_t *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = bf16_round_(inp[i]);
}

void op_bf16_to_f32(float *out, const uint16_t *inp, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > OPS_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = bf16_widen_(inp[i]);
}

/* the block [i0, i0+m) of the input: x itself, or its bf16 copy widened into buf */
static const float *gelu_in_(float *buf, const float *x, const uint16_t *x16, size_t i0, size_t m) {
    if (x) return x + i0;
#pragma omp simd
    for (size_t i = 0; i < m; i++) buf[i] = bf16_widen_(x16[i0 + i]);
    return buf;
}

/* th = tanh(√(2/π)·(x + 0.044715·x³)) */
static void gelu_tanh_u_(float *th, const float *x, size_t m) {
    float u[GELU_BLK];
#pragma omp simd
    for (size_t i = 0; i < GELU_BLK; i++) /* whole block: the tail's u is computed, never used */
        u[i] = i < m ? GELU_K * (x[i] + 0.044715f * x[i] * x[i] * x[i]) : 0.0f;
    op_vtanh(th, u, m);
}

static void gelu_tanh_fwd_blk_(float *out, const float *x, size_t m) {
    float th[GELU_BLK];
    gelu_tanh_u_(th, x, m);
#pragma omp simd
    for (size_t i = 0; i < m; i++) out[i] = 0.5f * x[i] * (1.0f + th[i]);
}

static void gelu_tanh_bwd_blk_(float *dinp, const float *dout, const float *x, size_t m) {
    float th[GELU_BLK];
    gelu_tanh_u_(th, x, m);
#pragma omp simd
    for (size_t i = 0; i < m; i++) {
        float t = th[i], sech2 = 1.0f - t * t;
        // out = 0.5·x·(1 + tanh(u)), du/dx = K·(1 + 3·0.044715·x²)
        float d = 0.5f * (1.0f + t) + 0.5f * x[i] * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * x[i] * x[i]);
        dinp[i] += d * dout[i];
    }
}

/* er = erf(x/√2) for the block, one vector call */
static void gelu_erf_phi_(float *er, const float *x, size_t m) {
    float u[GELU_BLK];
#pragma omp simd
    for (size_t i = 0; i < GELU_BLK; i++) /* whole block: the tail's u is computed, never used */
        u[i] = i < m ? x[i] * INV_SQRT2 : 0.0f;
    op_verf(er, u, m);
}

static void gelu_erf_fwd_blk_(float *out, const float *x, size_t m) {
    float er[GELU_BLK];
    gelu_erf_phi_(er, x, m);
#pragma omp simd
    for (size_t i = 0; i < m; i++) out[i] = 0.5f * x[i] * (1.0f + er[i]);
}

static void gelu_erf_bwd_blk_(float *dinp, const float *dout, const float *x, size_t m) {
    float er[GELU_BLK], g[GELU_BLK];
    gelu_erf_phi_(er, x, m);
#pragma omp simd
    for (size_t i = 0; i < GELU_BLK; i++) g[i] = i < m ? x[i] * x[i] : 0.0f;
    op_vexp_sum(g, g, -0.5f, 0.0f, m); /* g = exp(-x²/2) */
#pragma omp simd
    for (size_t i = 0; i < m; i++) {
        // out = x·Φ(x): d = Φ(x) + x·φ(x)
        float d = 0.5f * (1.0f + er[i]) + x[i] * INV_SQRT_2PI * g[i];
        dinp[i] += d * dout[i];
    }
}

/* out = gelu(x) (fwd) or dinp += gelu'(x)·dout (bwd), x = inp or its bf16 copy inp16 */
static void gelu_run_(int erf, int bwd, float *o, const float *dout, const float *inp, const uint16_t *inp16,
                      size_t n) {
    size_t nblk = (n + GELU_BLK - 1) / GELU_BLK;
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN)
    for (size_t b = 0; b < nblk; b++) {
        float buf[GELU_BLK];
        size_t i0 = b * GELU_BLK, m = n - i0 < GELU_BLK ? n - i0 : GELU_BLK;
        const float *x = gelu_in_(buf, inp, inp16, i0, m);
        if (bwd) (erf ? gelu_erf_bwd_blk_ : gelu_tanh_bwd_blk_)(o + i0, dout + i0, x, m);
        else (erf ? gelu_erf_fwd_blk_ : gelu_tanh_fwd_blk_)(o + i0, x, m);
    }
}

void op_gelu_tanh_forward(float *out, const float *inp, size_t n) { gelu_run_(0, 0, out, NULL, inp, NULL, n); }
void op_gelu_tanh_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    gelu_run_(0, 1, dinp, dout, inp, NULL, n);
}
void op_gelu_erf_forward(float *out, const float *inp, size_t n) { gelu_run_(1, 0, out, NULL, inp, NULL, n); }
void op_gelu_erf_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    gelu_run_(1, 1, dinp, dout, inp, NULL, n);
}
void op_gelu_tanh_forward_bf16(float *out, const uint16_t *inp, size_t n) { gelu_run_(0, 0, out, NULL, NULL, inp, n); }
void op_gelu_tanh_backward_bf16(float *dinp, const float *dout, const uint16_t *inp, size_t n) {
    gelu_run_(0, 1, dinp, dout, NULL, inp, n);
}
void op_gelu_erf_forward_bf16(float *out, const uint16_t *inp, size_t n) { gelu_run_(1, 0, out, NULL, NULL, inp, n); }
void op_gelu_erf_backward_bf16(float *dinp, const float *dout, const uint16_t *inp, size_t n) {
    gelu_run_(1, 1, dinp, dout, NULL, inp, n);
}

/* s = σ(x) for a block of m <= GELU_BLK values: one vector exp(-x), then 1/(1 + e) (exp(-x) = inf
 * gives 0, as libm's sigmoid does) */
static void sigmoid_blk_(float *s, const float *x, size_t m) {
    op_vexp_sum(s, x, -1.0f, 0.0f, m);
#pragma omp simd
    for (size_t i = 0; i < m; i++) s[i] = 1.0f / (1.0f + s[i]);
}

/* One block [i0, i0+m) of a SiLU-family op; g is the SiLU input (x, or the gate), u the up
 * projection (NULL for plain SiLU). fwd: o = silu(g)·u (or silu(g)); bwd: do = dout, dg and du
 * accumulate (either may be NULL). */
static void silu_blk_(int bwd, float *o, float *dg, float *du, const float *d, const float *g, const float *u,
                      size_t i0, size_t m) {
    float s[GELU_BLK], su[GELU_BLK]; /* σ(g), and σ(g)·u */
    sigmoid_blk_(s, g + i0, m);
    g += i0, d = d ? d + i0 : NULL;
#pragma omp simd
    for (size_t i = 0; i < m; i++) su[i] = u ? s[i] * u[i0 + i] : s[i];
    if (!bwd) {
#pragma omp simd
        for (size_t i = 0; i < m; i++) o[i0 + i] = g[i] * su[i];
        return;
    }
    // out = x·σ(x)·u: d/dx = u·σ·(1 + x·(1-σ)), d/du = x·σ
    if (dg) {
#pragma omp simd
        for (size_t i = 0; i < m; i++) dg[i0 + i] += d[i] * su[i] * (1.0f + g[i] * (1.0f - s[i]));
    }
    if (du) {
#pragma omp simd
        for (size_t i = 0; i < m; i++) du[i0 + i] += d[i] * g[i] * s[i];
    }
}

/* blocks of GELU_BLK values (one vector σ per block), blocks on all threads */
static void silu_run_(int bwd, float *o, float *dg, float *du, const float *d, const float *g, const float *u,
                      size_t n) {
    size_t nblk = (n + GELU_BLK - 1) / GELU_BLK;
#pragma omp parallel for schedule(static) if (n > OPS_PAR_MIN)
    for (size_t b = 0; b < nblk; b++) {
        size_t i0 = b * GELU_BLK, m = n - i0 < GELU_BLK ? n - i0 : GELU_BLK;
        silu_blk_(bwd, o, dg, du, d, g, u, i0, m);
    }
}

void op_silu_forward(float *out, const float *inp, size_t n) { silu_run_(0, out, NULL, NULL, NULL, inp, NULL, n); }

void op_silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    silu_run_(1, NULL, dinp, NULL, dout, inp, NULL, n);
}

void op_swiglu_forward(float *out, const float *gate, const float *up, int N, int C) {
    // gate, up, out are (N,C)
    silu_run_(0, out, NULL, NULL, NULL, gate, up, (size_t)N * C);
}

void op_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                        const float *up, int N, int C) {
    silu_run_(1, NULL, dgate, dup, dout, gate, up, (size_t)N * C);
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
