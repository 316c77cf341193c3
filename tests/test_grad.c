/* test_grad.c — one table-driven harness for every core op (lorac/ops.h).
 *
 * Each table entry is one op (or one configuration of it) given as four functions:
 *   setup  sizes and inputs (random, from a fixed seed); `big` picks sizes above the OpenMP
 *          thresholds for the thread check;
 *   fwd    the float forward, writing out (nout) and any saved statistics;
 *   bwd    the float backward of L = Σ R·out (dout = R), accumulating into each non-NULL g[i];
 *   ref    an independent forward in DOUBLE precision from the same inputs.
 * For every entry the harness checks:
 *   1. forward: float out against the double reference (fwd_atol, fwd_rtol);
 *   2. gradients: analytic (float) against central differences (L(x+h) - L(x-h)) / 2h of the
 *      double reference, h = 1e-5 (truncation ~h² and rounding ~1e-16/h, both far below the
 *      tolerances), on every element or an even subset of at most MAX_PROBES per tensor
 *      (grad_atol, grad_rtol: |analytic - numeric| <= atol + rtol·|numeric|);
 *   3. NULL gradients: the backward with only g[i] set gives g[i] bit for bit as with all set,
 *      and with every pointer NULL it runs (nothing written, nothing dereferenced);
 *   4. accumulation: from a prefilled buffer P, two backward calls give P + 2·G;
 *   5. threads: forward + backward run twice with 1 thread and twice with 2 agree bit for bit for
 *      the same thread count; 1 and 2 threads agree bit for bit where lorac's own loops and
 *      kernels do every sum, and within the bound of two summation orders where OpenBLAS does
 *      (blas_k > 0); at the small sizes and again at the big ones.
 *   6. kernel levels: at every level below the CPU's (lorac_isa_set_cap), the AVX2 kernels give the
 *      AVX-512 kernels' bits, and the generic ones agree within the forward/gradient tolerances.
 * Op-specific behaviour (dropout statistics, ignored rows, fused cross-entropy, fully masked
 * attention rows) is checked by an optional `extra` function.
 */
#include "lorac/ops.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define MAX_TENSORS 4
#define MAX_PROBES 96
#define FD_H 1e-5

typedef struct gcase gcase;
typedef struct tensor {
    const char *name;
    size_t n;
    int grad; /* differentiable: has an analytic gradient and is probed */
    float *x;
} tensor;

struct gcase {
    const char *name;
    int variant;
    void (*setup)(gcase *c, int big);
    void (*fwd)(gcase *c, float *out);
    void (*bwd)(gcase *c, const float *dout, float **g);
    void (*ref)(const gcase *c, double *const *x, double *out);
    void (*extra)(gcase *c);
    double fwd_atol, fwd_rtol, grad_atol, grad_rtol;
    /* filled by setup */
    int nt;
    tensor t[MAX_TENSORS];
    size_t nout;
    int N, C, OC, B, T, NH, NKV, HS, V, flag;
    int blas_k;     /* OpenBLAS does the op's sums, the longest of K terms (bias included); 0: lorac does */
    float f;        /* eps, alpha, theta, p or label smoothing */
    int *ids;       /* token ids, targets or positions */
    uint8_t *mask;  /* padding mask or dropout mask */
    float *s1, *s2; /* saved statistics */
    lorac_rng rng;
};

static float *rand_floats(lorac_rng *r, size_t n, float scale) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = scale * lorac_rng_normal(r);
    return x;
}

static void add_tensor(gcase *c, const char *name, size_t n, int grad, float scale) {
    tensor *t = &c->t[c->nt++];
    t->name = name;
    t->n = n;
    t->grad = grad;
    t->x = rand_floats(&c->rng, n, scale);
}

static float *gx(gcase *c, int i) { return c->t[i].x; }

/* ---- matmul: t0 inp (N,C), t1 w, t2 bias (OC); variant bit0 IN_OUT, bit1 bias, bit2 alpha ---- */
static void setup_matmul(gcase *c, int big) {
    c->N = big ? 96 : 5, c->C = big ? 256 : 7, c->OC = big ? 192 : 6;
    c->f = (c->variant & 4) ? 0.5f : 1.0f;
    add_tensor(c, "inp", (size_t)c->N * c->C, 1, 1.0f);
    add_tensor(c, "w", (size_t)c->OC * c->C, 1, 0.5f);
    if (c->variant & 2) add_tensor(c, "bias", (size_t)c->OC, 1, 1.0f);
    c->nout = (size_t)c->N * c->OC;
    /* out sums C products, dinp OC, dw N; plus the bias or the accumulated value */
    c->blas_k = 1 + (c->N > c->C ? (c->N > c->OC ? c->N : c->OC) : (c->C > c->OC ? c->C : c->OC));
}
static op_wlayout mm_layout(const gcase *c) { return (c->variant & 1) ? OP_W_IN_OUT : OP_W_OUT_IN; }
static void fwd_matmul(gcase *c, float *out) {
    const float *bias = (c->variant & 2) ? gx(c, 2) : NULL;
    if (c->variant & 4) { /* out = bias + alpha·inp·Wᵀ via the accumulating form */
        for (size_t i = 0; i < c->nout; i++) out[i] = bias ? bias[i % c->OC] : 0.0f;
        op_matmul_forward_acc(out, gx(c, 0), gx(c, 1), c->f, c->N, c->C, c->OC, mm_layout(c));
    } else {
        op_matmul_forward(out, gx(c, 0), gx(c, 1), bias, c->N, c->C, c->OC, mm_layout(c));
    }
}
static void bwd_matmul(gcase *c, const float *dout, float **g) {
    op_matmul_backward(g[0], g[1], (c->variant & 2) ? g[2] : NULL, dout, gx(c, 0), gx(c, 1), c->f,
                       c->N, c->C, c->OC, mm_layout(c));
}
static void ref_matmul(const gcase *c, double *const *x, double *out) {
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double s = 0.0;
            for (int i = 0; i < c->C; i++) {
                double w = (c->variant & 1) ? x[1][(size_t)i * c->OC + o] : x[1][(size_t)o * c->C + i];
                s += x[0][(size_t)n * c->C + i] * w;
            }
            out[(size_t)n * c->OC + o] = c->f * s + ((c->variant & 2) ? x[2][o] : 0.0);
        }
}

/* ---- bias add: t0 inp (N,C), t1 bias (C) ---- */
static void setup_bias(gcase *c, int big) {
    c->N = big ? 128 : 4, c->C = big ? 600 : 9;
    add_tensor(c, "inp", (size_t)c->N * c->C, 1, 1.0f);
    add_tensor(c, "bias", (size_t)c->C, 1, 1.0f);
    c->nout = (size_t)c->N * c->C;
}
static void fwd_bias(gcase *c, float *out) { op_bias_add_forward(out, gx(c, 0), gx(c, 1), c->N, c->C); }
static void bwd_bias(gcase *c, const float *dout, float **g) { op_bias_add_backward(g[0], g[1], dout, c->N, c->C); }
static void ref_bias(const gcase *c, double *const *x, double *out) {
    for (size_t i = 0; i < c->nout; i++) out[i] = x[0][i] + x[1][i % c->C];
}

/* ---- layernorm: t0 inp (N,C), t1 gamma, t2 beta; variant 1: no affine ---- */
static void setup_layernorm(gcase *c, int big) {
    c->N = big ? 128 : 5, c->C = big ? 256 : 8, c->f = 1e-5f;
    add_tensor(c, "inp", (size_t)c->N * c->C, 1, 1.5f);
    if (c->variant == 0) {
        add_tensor(c, "gamma", (size_t)c->C, 1, 1.0f);
        add_tensor(c, "beta", (size_t)c->C, 1, 1.0f);
    }
    for (size_t i = 0; i < c->t[0].n; i++) c->t[0].x[i] += 0.7f; /* a non-zero mean */
    c->s1 = malloc((size_t)c->N * sizeof(float));
    c->s2 = malloc((size_t)c->N * sizeof(float));
    c->nout = (size_t)c->N * c->C;
}
static void fwd_layernorm(gcase *c, float *out) {
    op_layernorm_forward(out, c->s1, c->s2, gx(c, 0), c->nt > 1 ? gx(c, 1) : NULL,
                         c->nt > 1 ? gx(c, 2) : NULL, c->N, c->C, c->f);
}
static void bwd_layernorm(gcase *c, const float *dout, float **g) {
    op_layernorm_backward(g[0], c->nt > 1 ? g[1] : NULL, c->nt > 1 ? g[2] : NULL, dout, gx(c, 0),
                          c->nt > 1 ? gx(c, 1) : NULL, c->s1, c->s2, c->N, c->C);
}
static void ref_layernorm(const gcase *c, double *const *x, double *out) {
    for (int n = 0; n < c->N; n++) {
        const double *r = x[0] + (size_t)n * c->C;
        double m = 0, v = 0;
        for (int i = 0; i < c->C; i++) m += r[i];
        m /= c->C;
        for (int i = 0; i < c->C; i++) v += (r[i] - m) * (r[i] - m);
        v /= c->C;
        for (int i = 0; i < c->C; i++) {
            double y = (r[i] - m) / sqrt(v + (double)c->f);
            out[(size_t)n * c->C + i] = c->nt > 1 ? y * x[1][i] + x[2][i] : y;
        }
    }
}

/* ---- rmsnorm: t0 inp (N,C), t1 w (C) ---- */
static void setup_rmsnorm(gcase *c, int big) {
    c->N = big ? 128 : 5, c->C = big ? 256 : 8, c->f = 1e-6f;
    add_tensor(c, "inp", (size_t)c->N * c->C, 1, 1.0f);
    add_tensor(c, "w", (size_t)c->C, 1, 1.0f);
    c->s1 = malloc((size_t)c->N * sizeof(float));
    c->nout = (size_t)c->N * c->C;
}
static void fwd_rmsnorm(gcase *c, float *out) { op_rmsnorm_forward(out, c->s1, gx(c, 0), gx(c, 1), c->N, c->C, c->f); }
static void bwd_rmsnorm(gcase *c, const float *dout, float **g) {
    op_rmsnorm_backward(g[0], g[1], dout, gx(c, 0), gx(c, 1), c->s1, c->N, c->C);
}
static void ref_rmsnorm(const gcase *c, double *const *x, double *out) {
    for (int n = 0; n < c->N; n++) {
        const double *r = x[0] + (size_t)n * c->C;
        double ss = 0;
        for (int i = 0; i < c->C; i++) ss += r[i] * r[i];
        double s = 1.0 / sqrt(ss / c->C + (double)c->f);
        for (int i = 0; i < c->C; i++) out[(size_t)n * c->C + i] = r[i] * s * x[1][i];
    }
}

/* ---- elementwise activations: t0 inp (n); variant 0 gelu tanh, 1 gelu erf, 2 silu ---- */
static void setup_act(gcase *c, int big) {
    c->N = big ? 128 : 4, c->C = big ? 300 : 10;
    add_tensor(c, "inp", (size_t)c->N * c->C, 1, 2.0f);
    c->nout = (size_t)c->N * c->C;
}
static void fwd_act(gcase *c, float *out) {
    if (c->variant == 0) op_gelu_tanh_forward(out, gx(c, 0), c->nout);
    if (c->variant == 1) op_gelu_erf_forward(out, gx(c, 0), c->nout);
    if (c->variant == 2) op_silu_forward(out, gx(c, 0), c->nout);
}
static void bwd_act(gcase *c, const float *dout, float **g) {
    if (!g[0]) return; /* dinp is required by these ops */
    if (c->variant == 0) op_gelu_tanh_backward(g[0], dout, gx(c, 0), c->nout);
    if (c->variant == 1) op_gelu_erf_backward(g[0], dout, gx(c, 0), c->nout);
    if (c->variant == 2) op_silu_backward(g[0], dout, gx(c, 0), c->nout);
}
static void ref_act(const gcase *c, double *const *x, double *out) {
    for (size_t i = 0; i < c->nout; i++) {
        double v = x[0][i];
        if (c->variant == 0) out[i] = 0.5 * v * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)));
        if (c->variant == 1) out[i] = 0.5 * v * (1 + erf(v / sqrt(2.0)));
        if (c->variant == 2) out[i] = v / (1 + exp(-v));
    }
}

/* ---- swiglu: t0 gate (N,C), t1 up (N,C) ---- */
static void setup_swiglu(gcase *c, int big) {
    c->N = big ? 128 : 4, c->C = big ? 300 : 9;
    add_tensor(c, "gate", (size_t)c->N * c->C, 1, 2.0f);
    add_tensor(c, "up", (size_t)c->N * c->C, 1, 1.0f);
    c->nout = (size_t)c->N * c->C;
}
static void fwd_swiglu(gcase *c, float *out) { op_swiglu_forward(out, gx(c, 0), gx(c, 1), c->N, c->C); }
static void bwd_swiglu(gcase *c, const float *dout, float **g) {
    op_swiglu_backward(g[0], g[1], dout, gx(c, 0), gx(c, 1), c->N, c->C);
}
static void ref_swiglu(const gcase *c, double *const *x, double *out) {
    for (size_t i = 0; i < c->nout; i++) out[i] = x[0][i] / (1 + exp(-x[0][i])) * x[1][i];
}

/* ---- softmax: t0 inp (N,C); s1 keeps out for the backward ---- */
static void setup_softmax(gcase *c, int big) {
    c->N = big ? 128 : 4, c->C = big ? 300 : 11;
    add_tensor(c, "inp", (size_t)c->N * c->C, 1, 2.0f);
    c->nout = (size_t)c->N * c->C;
    c->s1 = malloc(c->nout * sizeof(float));
}
static void fwd_softmax(gcase *c, float *out) {
    op_softmax_forward(out, gx(c, 0), c->N, c->C);
    memcpy(c->s1, out, c->nout * sizeof(float));
}
static void bwd_softmax(gcase *c, const float *dout, float **g) {
    if (g[0]) op_softmax_backward(g[0], dout, c->s1, c->N, c->C);
}
static void ref_softmax(const gcase *c, double *const *x, double *out) {
    for (int n = 0; n < c->N; n++) {
        const double *r = x[0] + (size_t)n * c->C;
        double m = -INFINITY, s = 0;
        for (int i = 0; i < c->C; i++) m = r[i] > m ? r[i] : m;
        for (int i = 0; i < c->C; i++) s += exp(r[i] - m);
        for (int i = 0; i < c->C; i++) out[(size_t)n * c->C + i] = exp(r[i] - m) / s;
    }
}

/* ---- attention: t0 q (B,T,NH*HS), t1 k, t2 v (B,T,NKV*HS); s1 lse (B,NH,T), s2 out ----
 * variant bit0 causal, bit1 grouped-query (NH=4, NKV=2), bit2 padding mask (left padding in
 * batch row 1, so with causal its first rows see no key at all), bit3 long: T spans several
 * 64 x 64 tiles with a partial last one, and the padding covers a whole first key tile */
static void setup_attention(gcase *c, int big) {
    /* HS 10: the dot products take both their 8-wide and their tail paths */
    int lng = c->variant & 8;
    c->B = 2, c->T = lng ? (big ? 200 : 130) : (big ? 64 : 5), c->HS = big ? 16 : 10;
    c->NH = (c->variant & 2) ? 4 : 2, c->NKV = 2, c->flag = c->variant & 1;
    size_t nq = (size_t)c->B * c->T * c->NH * c->HS, nk = (size_t)c->B * c->T * c->NKV * c->HS;
    add_tensor(c, "q", nq, 1, 1.0f);
    add_tensor(c, "k", nk, 1, 1.0f);
    add_tensor(c, "v", nk, 1, 1.0f);
    if (c->variant & 4) {
        c->mask = malloc((size_t)c->B * c->T);
        for (int b = 0; b < c->B; b++)
            for (int t = 0; t < c->T; t++) c->mask[b * c->T + t] = b == 0 ? (t < c->T - 1) : (t >= (lng ? 70 : 2));
    }
    c->s1 = malloc((size_t)c->B * c->NH * c->T * sizeof(float));
    c->s2 = malloc(nq * sizeof(float));
    c->nout = nq;
}
static void fwd_attention(gcase *c, float *out) {
    op_attention_forward(out, c->s1, gx(c, 0), gx(c, 1), gx(c, 2), c->mask, c->B, c->T, c->NH, c->NKV,
                         c->HS, c->flag);
    memcpy(c->s2, out, c->nout * sizeof(float));
}
static void bwd_attention(gcase *c, const float *dout, float **g) {
    op_attention_backward(g[0], g[1], g[2], dout, c->s2, c->s1, gx(c, 0), gx(c, 1), gx(c, 2), c->mask,
                          c->B, c->T, c->NH, c->NKV, c->HS, c->flag);
}
static void ref_attention(const gcase *c, double *const *x, double *out) {
    int B = c->B, T = c->T, NH = c->NH, NKV = c->NKV, HS = c->HS;
    double sc[256];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                int g = h / (NH / NKV);
                const double *q = x[0] + ((size_t)(b * T + t) * NH + h) * HS;
                double m = -INFINITY, s = 0;
                for (int j = 0; j < T; j++) {
                    int vis = (!c->flag || j <= t) && (!c->mask || c->mask[b * T + j]);
                    sc[j] = -INFINITY;
                    if (!vis) continue;
                    const double *k = x[1] + ((size_t)(b * T + j) * NKV + g) * HS;
                    double d = 0;
                    for (int i = 0; i < HS; i++) d += q[i] * k[i];
                    sc[j] = d / sqrt((double)HS);
                    m = sc[j] > m ? sc[j] : m;
                }
                double *o = out + ((size_t)(b * T + t) * NH + h) * HS;
                for (int i = 0; i < HS; i++) o[i] = 0;
                if (m == -INFINITY) continue; /* no visible key: 0 */
                for (int j = 0; j < T; j++) s += exp(sc[j] - m);
                for (int j = 0; j < T; j++) {
                    double p = exp(sc[j] - m) / s;
                    const double *v = x[2] + ((size_t)(b * T + j) * NKV + g) * HS;
                    for (int i = 0; i < HS; i++) o[i] += p * v[i];
                }
            }
}
/* The packed-qkv entry points give the same bits as the three-array ones. */
static void check_attention_qkv(gcase *c) {
    int B = c->B, T = c->T, NH = c->NH, NKV = c->NKV, HS = c->HS, W = (NH + 2 * NKV) * HS;
    size_t rows = (size_t)B * T, nq = rows * NH * HS, nk = rows * NKV * HS, nl = (size_t)B * NH * T;
    float *qkv = malloc(rows * W * sizeof(float)), *dqkv = malloc(rows * W * sizeof(float));
    float *out = malloc(nq * sizeof(float)), *out2 = malloc(nq * sizeof(float)), *lse2 = malloc(nl * sizeof(float));
    float *R = malloc(nq * sizeof(float)), *g[3];
    for (size_t i = 0; i < nq; i++) R[i] = (float)((int)(i % 7) - 3) * 0.25f;
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < W; j++) {
            int in_q = j < NH * HS, in_k = !in_q && j < (NH + NKV) * HS;
            const float *src = in_q ? gx(c, 0) + r * NH * HS + j
                                    : gx(c, in_k ? 1 : 2) + r * NKV * HS + (j - (in_k ? NH : NH + NKV) * HS);
            qkv[r * W + j] = *src;
            dqkv[r * W + j] = 0.5f; /* the backward accumulates onto this */
        }
    fwd_attention(c, out);
    op_attention_qkv_forward(out2, lse2, qkv, c->mask, B, T, NH, NKV, HS, c->flag);
    CHECK(memcmp(out, out2, nq * sizeof(float)) == 0 && memcmp(c->s1, lse2, nl * sizeof(float)) == 0,
          "%s: packed qkv forward differs", c->name);
    for (int i = 0; i < 3; i++) {
        size_t n = i ? nk : nq;
        g[i] = malloc(n * sizeof(float));
        for (size_t j = 0; j < n; j++) g[i][j] = 0.5f;
    }
    bwd_attention(c, R, g);
    op_attention_qkv_backward(dqkv, R, out2, lse2, qkv, c->mask, B, T, NH, NKV, HS, c->flag);
    int same = 1;
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < W; j++) {
            int in_q = j < NH * HS, in_k = !in_q && j < (NH + NKV) * HS;
            float want = in_q ? g[0][r * NH * HS + j] : g[in_k ? 1 : 2][r * NKV * HS + (j - (in_k ? NH : NH + NKV) * HS)];
            same &= dqkv[r * W + j] == want;
        }
    CHECK(same, "%s: packed qkv backward differs", c->name);
    op_attention_qkv_backward(NULL, R, out2, lse2, qkv, c->mask, B, T, NH, NKV, HS, c->flag); /* no-op */
    for (int i = 0; i < 3; i++) free(g[i]);
    free(qkv), free(dqkv), free(out), free(out2), free(lse2), free(R);
}

static void extra_attention(gcase *c) {
    check_attention_qkv(c);
    /* rows that see no key: out exactly 0 and lse -inf (batch row 1, t = 0 and 1, when causal) */
    if (!(c->variant & 4) || !c->flag) return;
    float *out = malloc(c->nout * sizeof(float));
    fwd_attention(c, out);
    int zero = 1, finite = 1;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < c->NH * c->HS; i++) zero &= out[((size_t)c->T + t) * c->NH * c->HS + i] == 0.0f;
    for (size_t i = 0; i < c->nout; i++) finite &= isfinite(out[i]) != 0;
    CHECK(zero && finite, "%s: fully masked rows must be 0 and nothing NaN", c->name);
    CHECK(c->s1[(size_t)(1 * c->NH + 0) * c->T + 0] == -INFINITY, "%s: lse of a masked row", c->name);
    free(out);
}

/* ---- rope: t0 inp (B,T,NH*HS); variant 1 gives positions (B,T), else NULL ---- */
static void setup_rope(gcase *c, int big) {
    c->B = 2, c->T = big ? 80 : 4, c->NH = big ? 4 : 2, c->HS = big ? 32 : 6, c->f = 10000.0f;
    add_tensor(c, "inp", (size_t)c->B * c->T * c->NH * c->HS, 1, 1.0f);
    if (c->variant == 1) {
        c->ids = malloc((size_t)c->B * c->T * sizeof(int));
        for (int i = 0; i < c->B * c->T; i++) c->ids[i] = 7 + 13 * i; /* up to a few hundred */
    }
    c->nout = c->t[0].n;
}
static void fwd_rope(gcase *c, float *out) { op_rope_forward(out, gx(c, 0), c->ids, c->B, c->T, c->NH, c->HS, c->f); }
static void bwd_rope(gcase *c, const float *dout, float **g) {
    if (g[0]) op_rope_backward(g[0], dout, c->ids, c->B, c->T, c->NH, c->HS, c->f);
}
static void ref_rope(const gcase *c, double *const *x, double *out) {
    int half = c->HS / 2;
    for (int bt = 0; bt < c->B * c->T; bt++) {
        double p = c->ids ? c->ids[bt] : bt % c->T;
        for (int h = 0; h < c->NH; h++) {
            const double *r = x[0] + ((size_t)bt * c->NH + h) * c->HS;
            double *o = out + ((size_t)bt * c->NH + h) * c->HS;
            for (int i = 0; i < half; i++) {
                double a = p / pow((double)c->f, 2.0 * i / c->HS);
                o[i] = r[i] * cos(a) - r[i + half] * sin(a);
                o[i + half] = r[i + half] * cos(a) + r[i] * sin(a);
            }
        }
    }
}

/* ---- embedding: t0 wte (V,C); ids (N) with repeats ---- */
static void setup_embedding(gcase *c, int big) {
    c->N = big ? 256 : 7, c->C = big ? 300 : 5, c->V = big ? 40 : 6;
    add_tensor(c, "wte", (size_t)c->V * c->C, 1, 1.0f);
    c->ids = malloc((size_t)c->N * sizeof(int));
    for (int n = 0; n < c->N; n++) c->ids[n] = (int)(lorac_rng_u64(&c->rng) % (uint64_t)(c->V - 1));
    c->ids[c->N - 1] = c->ids[0]; /* a repeated id; id V-1 never occurs (its gradient stays 0) */
    c->nout = (size_t)c->N * c->C;
}
static void fwd_embedding(gcase *c, float *out) { op_embedding_forward(out, c->ids, gx(c, 0), c->N, c->C, c->V); }
static void bwd_embedding(gcase *c, const float *dout, float **g) {
    if (g[0]) op_embedding_backward(g[0], dout, c->ids, c->N, c->C);
}
static void ref_embedding(const gcase *c, double *const *x, double *out) {
    for (int n = 0; n < c->N; n++)
        for (int i = 0; i < c->C; i++) out[(size_t)n * c->C + i] = x[0][(size_t)c->ids[n] * c->C + i];
}

/* ---- dropout: t0 inp (n); p = 0.25 with a fixed seed, so the mask is the same on every call ---- */
static void setup_dropout(gcase *c, int big) {
    c->N = big ? 100 : 6, c->C = big ? 100 : 8, c->f = 0.25f;
    add_tensor(c, "inp", (size_t)c->N * c->C, 1, 1.0f);
    c->nout = (size_t)c->N * c->C;
    c->mask = malloc(c->nout);
}
static void fwd_dropout(gcase *c, float *out) {
    lorac_rng r;
    lorac_rng_seed(&r, 1234);
    op_dropout_forward(out, c->mask, gx(c, 0), c->f, c->nout, &r);
}
static void bwd_dropout(gcase *c, const float *dout, float **g) {
    if (g[0]) op_dropout_backward(g[0], dout, c->mask, c->f, c->nout);
}
static void ref_dropout(const gcase *c, double *const *x, double *out) {
    for (size_t i = 0; i < c->nout; i++) out[i] = c->mask[i] ? x[0][i] / (1.0 - c->f) : 0.0;
}
static void extra_dropout(gcase *c) {
    size_t n = 200000;
    float *x = malloc(n * sizeof(float)), *y1 = malloc(n * sizeof(float)), *y2 = malloc(n * sizeof(float));
    uint8_t *m1 = malloc(n), *m2 = malloc(n);
    for (size_t i = 0; i < n; i++) x[i] = 1.0f + (float)(i % 7);
    lorac_rng r;
    lorac_rng_seed(&r, 42);
    op_dropout_forward(y1, m1, x, 0.1f, n, &r);
    lorac_rng_seed(&r, 42);
    op_dropout_forward(y2, m2, x, 0.1f, n, &r);
    CHECK(memcmp(m1, m2, n) == 0 && memcmp(y1, y2, n * sizeof(float)) == 0, "dropout: same seed, same result");
    size_t kept = 0;
    int exact = 1;
    for (size_t i = 0; i < n; i++) {
        kept += m1[i];
        exact &= m1[i] ? y1[i] == x[i] * (1.0f / 0.9f) : y1[i] == 0.0f;
    }
    /* Binomial(n, 0.9): sd = sqrt(n·0.09)/n ≈ 0.00067, so 0.004 is 6 sd */
    CHECK(fabs((double)kept / n - 0.9) < 0.004, "dropout: kept fraction %g, want 0.9", (double)kept / n);
    CHECK(exact, "dropout: kept values scaled by 1/(1-p), dropped values 0");
    lorac_rng_seed(&r, 43);
    op_dropout_forward(y2, m2, x, 0.1f, n, &r);
    CHECK(memcmp(m1, m2, n) != 0, "dropout: another seed, another mask");
    /* every kernel level gives the scalar stream's bits (n odd: vector tails; several chunks) */
    const lorac_isa top = lorac_isa_active();
    for (int l = LORAC_ISA_GENERIC; l <= (int)top && l <= LORAC_ISA_AVX512; l++) {
        lorac_isa_set_cap((lorac_isa)l);
        size_t nl = n - 13;
        lorac_rng_seed(&r, 42);
        op_dropout_forward(y2, m2, x, 0.1f, nl, &r);
        CHECK(memcmp(m1, m2, nl) == 0 && memcmp(y1, y2, nl * sizeof(float)) == 0, "dropout (%s): not the bits of %s",
              lorac_isa_name((lorac_isa)l), lorac_isa_name(top));
    }
    lorac_isa_set_cap(top);
    /* p = 0: a copy, mask untouched (NULL), backward passes dout through */
    op_dropout_forward(y2, NULL, x, 0.0f, n, &r);
    CHECK(memcmp(x, y2, n * sizeof(float)) == 0, "dropout: p = 0 copies");
    memset(y2, 0, n * sizeof(float));
    op_dropout_backward(y2, x, NULL, 0.0f, n);
    CHECK(memcmp(x, y2, n * sizeof(float)) == 0, "dropout: p = 0 backward is dout");
    free(x), free(y1), free(y2), free(m1), free(m2);
    (void)c;
}

/* ---- cross-entropy: t0 logits (N,V); targets with ignored rows; variant 0 smoothing 0.1, 1 none;
 * out is the per-row losses (N); s1 lse (N) ---- */
static void setup_ce(gcase *c, int big) {
    c->N = big ? 64 : 6, c->V = big ? 2000 : 11, c->f = c->variant == 0 ? 0.1f : 0.0f;
    add_tensor(c, "logits", (size_t)c->N * c->V, 1, 2.0f);
    c->ids = malloc((size_t)c->N * sizeof(int));
    for (int n = 0; n < c->N; n++)
        c->ids[n] = n % 3 == 1 ? OP_IGNORE_INDEX : (int)(lorac_rng_u64(&c->rng) % (uint64_t)c->V);
    c->s1 = malloc((size_t)c->N * sizeof(float));
    c->nout = (size_t)c->N;
}
static void fwd_ce(gcase *c, float *out) { op_crossentropy_forward(out, c->s1, gx(c, 0), c->ids, c->N, c->V, c->f); }
static void bwd_ce(gcase *c, const float *dout, float **g) {
    if (g[0]) op_crossentropy_backward(g[0], dout, gx(c, 0), c->s1, c->ids, c->N, c->V, c->f);
}
static void ref_ce(const gcase *c, double *const *x, double *out) {
    for (int n = 0; n < c->N; n++) {
        const double *z = x[0] + (size_t)n * c->V;
        double m = -INFINITY, s = 0, mlp = 0;
        for (int v = 0; v < c->V; v++) m = z[v] > m ? z[v] : m;
        for (int v = 0; v < c->V; v++) s += exp(z[v] - m);
        double lse = m + log(s);
        for (int v = 0; v < c->V; v++) mlp += (lse - z[v]) / c->V;
        int y = c->ids[n];
        out[n] = y < 0 ? 0.0 : (1.0 - c->f) * (lse - z[y]) + c->f * mlp;
    }
}
static void extra_ce(gcase *c) {
    int N = c->N, V = c->V, cnt = op_crossentropy_count(c->ids, N);
    CHECK(cnt == N - N / 3, "ce: count %d", cnt);
    float *loss = malloc((size_t)N * sizeof(float)), *lse = malloc((size_t)N * sizeof(float));
    float *dl = malloc((size_t)N * sizeof(float)), *g = calloc((size_t)N * V, sizeof(float));
    float *fz = malloc((size_t)N * V * sizeof(float)), *floss = malloc((size_t)N * sizeof(float));
    double *xd = malloc((size_t)N * V * sizeof(double)), *ref = malloc((size_t)N * sizeof(double));
    float mean = op_crossentropy_forward(loss, lse, gx(c, 0), c->ids, N, V, c->f);
    for (size_t i = 0; i < (size_t)N * V; i++) xd[i] = gx(c, 0)[i];
    ref_ce(c, &xd, ref);
    double rmean = 0;
    for (int n = 0; n < N; n++) rmean += ref[n] / cnt;
    CHECK_CLOSE(mean, rmean, 1e-6, 1e-6, "ce: mean over non-ignored rows");
    /* the mean loss's gradient: dlosses = 1/count; ignored rows get nothing */
    for (int n = 0; n < N; n++) dl[n] = 1.0f / cnt;
    op_crossentropy_backward(g, dl, gx(c, 0), lse, c->ids, N, V, c->f);
    int ignored_zero = 1;
    for (int n = 1; n < N; n += 3)
        for (int v = 0; v < V; v++) ignored_zero &= g[(size_t)n * V + v] == 0.0f && loss[n] == 0.0f;
    CHECK(ignored_zero, "ce: ignored rows have loss 0 and no gradient");
    memcpy(fz, gx(c, 0), (size_t)N * V * sizeof(float));
    float fmean = op_crossentropy_fused(fz, floss, c->ids, N, V, c->f, 1.0f / cnt);
    CHECK(fmean == mean && memcmp(floss, loss, (size_t)N * sizeof(float)) == 0, "ce: fused loss");
    CHECK(memcmp(fz, g, (size_t)N * V * sizeof(float)) == 0, "ce: fused dlogits equal forward+backward");
    int *none = malloc((size_t)N * sizeof(int));
    for (int n = 0; n < N; n++) none[n] = OP_IGNORE_INDEX;
    CHECK(op_crossentropy_forward(loss, lse, gx(c, 0), none, N, V, c->f) == 0.0f, "ce: all rows ignored");
    free(loss), free(lse), free(dl), free(g), free(fz), free(floss), free(xd), free(ref), free(none);
}

/* ---- the table: one entry per op configuration ----
 * Tolerances: forwards are float against double, so a few float ulps of the output scale
 * (1e-5 abs + 1e-4 rel; 2e-5/2e-4 where a sum of C or T products feeds the output). Gradients
 * are float analytic against double central differences: 5e-5 abs + 1e-3 rel, 2e-4 abs for
 * attention and cross-entropy (longer float chains through exp and two dot products). */
#define OP(fn) setup_##fn, fwd_##fn, bwd_##fn, ref_##fn
#define CASE(...) CASE_(__VA_ARGS__) /* expands OP() first */
#define CASE_(nm, var, su, fw, bw, rf, ex, fa, fr, ga, gr)                                         \
    {.name = nm, .variant = var, .setup = su, .fwd = fw, .bwd = bw, .ref = rf, .extra = ex,          \
     .fwd_atol = fa, .fwd_rtol = fr, .grad_atol = ga, .grad_rtol = gr}
static gcase cases[] = {
    CASE("matmul out_in", 0, OP(matmul), NULL, 2e-5, 2e-4, 5e-5, 1e-3),
    CASE("matmul in_out", 1, OP(matmul), NULL, 2e-5, 2e-4, 5e-5, 1e-3),
    CASE("matmul out_in bias", 2, OP(matmul), NULL, 2e-5, 2e-4, 5e-5, 1e-3),
    CASE("matmul in_out bias", 3, OP(matmul), NULL, 2e-5, 2e-4, 5e-5, 1e-3),
    CASE("matmul out_in bias alpha", 6, OP(matmul), NULL, 2e-5, 2e-4, 5e-5, 1e-3),
    CASE("matmul in_out alpha", 5, OP(matmul), NULL, 2e-5, 2e-4, 5e-5, 1e-3),
    CASE("bias add", 0, OP(bias), NULL, 1e-5, 1e-4, 5e-5, 1e-3),
    CASE("layernorm", 0, OP(layernorm), NULL, 2e-5, 2e-4, 5e-5, 1e-3),
    CASE("layernorm no affine", 1, OP(layernorm), NULL, 2e-5, 2e-4, 5e-5, 1e-3),
    CASE("rmsnorm", 0, OP(rmsnorm), NULL, 2e-5, 2e-4, 5e-5, 1e-3),
    CASE("gelu tanh", 0, OP(act), NULL, 1e-5, 1e-4, 5e-5, 1e-3),
    CASE("gelu erf", 1, OP(act), NULL, 1e-5, 1e-4, 5e-5, 1e-3),
    CASE("silu", 2, OP(act), NULL, 1e-5, 1e-4, 5e-5, 1e-3),
    CASE("swiglu", 0, OP(swiglu), NULL, 1e-5, 1e-4, 5e-5, 1e-3),
    CASE("softmax", 0, OP(softmax), NULL, 1e-5, 1e-4, 5e-5, 1e-3),
    CASE("attention causal mha", 1, OP(attention), extra_attention, 2e-5, 2e-4, 2e-4, 1e-3),
    CASE("attention causal gqa", 3, OP(attention), extra_attention, 2e-5, 2e-4, 2e-4, 1e-3),
    CASE("attention causal gqa pad", 7, OP(attention), extra_attention, 2e-5, 2e-4, 2e-4, 1e-3),
    CASE("attention bidirectional pad", 4, OP(attention), extra_attention, 2e-5, 2e-4, 2e-4, 1e-3),
    CASE("attention bidirectional gqa", 2, OP(attention), extra_attention, 2e-5, 2e-4, 2e-4, 1e-3),
    CASE("attention causal gqa pad long", 15, OP(attention), extra_attention, 2e-5, 2e-4, 2e-4, 1e-3),
    CASE("attention bidirectional pad long", 12, OP(attention), extra_attention, 2e-5, 2e-4, 2e-4, 1e-3),
    CASE("attention causal mha long", 9, OP(attention), extra_attention, 2e-5, 2e-4, 2e-4, 1e-3),
    CASE("rope", 0, OP(rope), NULL, 1e-5, 1e-4, 5e-5, 1e-3),
    CASE("rope positions", 1, OP(rope), NULL, 2e-5, 1e-4, 5e-5, 1e-3),
    CASE("embedding", 0, OP(embedding), NULL, 0, 0, 5e-5, 1e-3),
    CASE("dropout", 0, OP(dropout), extra_dropout, 1e-6, 1e-6, 5e-5, 1e-3),
    CASE("crossentropy smoothing", 0, OP(ce), extra_ce, 2e-5, 2e-4, 2e-4, 1e-3),
    CASE("crossentropy", 1, OP(ce), extra_ce, 2e-5, 2e-4, 2e-4, 1e-3),
};

static void case_init(gcase *c, int big) {
    const char *name = c->name;
    int variant = c->variant;
    lorac_rng_seed(&c->rng, 1000 + (uint64_t)variant + 17 * (uint64_t)strlen(name));
    c->nt = 0, c->ids = NULL, c->mask = NULL, c->s1 = c->s2 = NULL, c->blas_k = 0;
    c->setup(c, big);
}

static void case_free(gcase *c) {
    for (int i = 0; i < c->nt; i++) free(c->t[i].x);
    free(c->ids), free(c->mask), free(c->s1), free(c->s2);
}

/* L = Σ R·out of the double reference, with tensor i's element j moved by d */
static double ref_loss(const gcase *c, double **xd, const float *R, double *outd) {
    c->ref(c, xd, outd);
    double L = 0;
    for (size_t i = 0; i < c->nout; i++) L += (double)R[i] * outd[i];
    return L;
}

/* forward then backward (dout = R) into fresh zeroed gradients; returns them in g */
static void run_fwd_bwd(gcase *c, const float *R, float *out, float **g) {
    c->fwd(c, out);
    for (int i = 0; i < c->nt; i++)
        if (g[i]) memset(g[i], 0, c->t[i].n * sizeof(float));
    c->bwd(c, R, g);
}

static void check_case(gcase *c) {
    case_init(c, 0);
    size_t nout = c->nout;
    lorac_rng rr;
    lorac_rng_seed(&rr, 99);
    float *R = rand_floats(&rr, nout, 1.0f), *out = malloc(nout * sizeof(float));
    double *outd = malloc(nout * sizeof(double));
    float *outf = malloc(nout * sizeof(float));
    double *xd[MAX_TENSORS] = {0};
    float *G[MAX_TENSORS] = {0}, *G2[MAX_TENSORS] = {0};
    char what[256];
    for (int i = 0; i < c->nt; i++) {
        xd[i] = malloc(c->t[i].n * sizeof(double));
        for (size_t j = 0; j < c->t[i].n; j++) xd[i][j] = c->t[i].x[j];
        G[i] = malloc(c->t[i].n * sizeof(float));
        G2[i] = malloc(c->t[i].n * sizeof(float));
    }
    lorac_set_threads(1);

    /* 1. forward against the double reference */
    run_fwd_bwd(c, R, out, G);
    c->ref(c, xd, outd);
    for (size_t i = 0; i < nout; i++) outf[i] = (float)outd[i];
    snprintf(what, sizeof what, "%s: forward vs double reference", c->name);
    check_arrays_close(out, outf, nout, c->fwd_atol, c->fwd_rtol, what);

    /* 2. analytic gradients against central differences of the double reference */
    for (int i = 0; i < c->nt; i++) {
        size_t n = c->t[i].n, step = n <= MAX_PROBES ? 1 : (n + MAX_PROBES - 1) / MAX_PROBES;
        double worst = 0;
        size_t nprobe = 0, bad = 0, worst_j = 0;
        float worst_num = 0;
        for (size_t j = (n > MAX_PROBES) ? (size_t)(lorac_rng_u64(&rr) % step) : 0; j < n; j += step) {
            double x0 = xd[i][j];
            xd[i][j] = x0 + FD_H;
            double Lp = ref_loss(c, xd, R, outd);
            xd[i][j] = x0 - FD_H;
            double Lm = ref_loss(c, xd, R, outd);
            xd[i][j] = x0;
            double num = (Lp - Lm) / (2 * FD_H), err = fabs(G[i][j] - num);
            double excess = err - (c->grad_atol + c->grad_rtol * fabs(num));
            if (excess > 0) bad++;
            if (nprobe == 0 || excess > worst) worst = excess, worst_j = j, worst_num = (float)num;
            nprobe++;
        }
        CHECK(bad == 0, "%s: d%s: %zu of %zu probes off; worst element %zu analytic %.9g numeric %.9g",
              c->name, c->t[i].name, bad, nprobe, worst_j, G[i][worst_j], worst_num);
    }

    /* 3. NULL gradient pointers: one at a time gives the same bits; all NULL runs */
    for (int i = 0; i < c->nt; i++) {
        float *one[MAX_TENSORS] = {0};
        one[i] = G2[i];
        run_fwd_bwd(c, R, out, one);
        CHECK(memcmp(G2[i], G[i], c->t[i].n * sizeof(float)) == 0, "%s: d%s alone differs from d%s with all",
              c->name, c->t[i].name, c->t[i].name);
    }
    {
        float *none[MAX_TENSORS] = {0};
        run_fwd_bwd(c, R, out, none);
    }

    /* 4. accumulation: P + 2·G after two calls */
    for (int i = 0; i < c->nt; i++)
        for (size_t j = 0; j < c->t[i].n; j++) G2[i][j] = 0.25f * (float)(j % 5) - 0.5f;
    c->bwd(c, R, G2);
    c->bwd(c, R, G2);
    for (int i = 0; i < c->nt; i++) {
        float *want = malloc(c->t[i].n * sizeof(float));
        for (size_t j = 0; j < c->t[i].n; j++) want[j] = (0.25f * (float)(j % 5) - 0.5f) + 2.0f * G[i][j];
        snprintf(what, sizeof what, "%s: d%s accumulates", c->name, c->t[i].name);
        check_arrays_close(G2[i], want, c->t[i].n, 1e-6, 1e-5, what);
        free(want);
    }

    if (c->extra) c->extra(c);
    free(R), free(out), free(outd), free(outf);
    for (int i = 0; i < c->nt; i++) free(xd[i]), free(G[i]), free(G2[i]);
    case_free(c);
}

/* |x| of n values, in a new array */
static float *abs_copy(const float *x, size_t n) {
    float *y = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) y[i] = fabsf(x[i]);
    return y;
}

/* 1 and 2 threads where OpenBLAS does the sums: check_sum_orders' bound (check.h) for the output
 * and each gradient, Σ|terms| of every element being the same op run (1 thread) on the absolute
 * values of the inputs and of dout: the op is bilinear in them, so each result is then its sum of
 * |terms| (computed in float: within gamma_K of the exact one, immaterial against the bound). */
static void check_threads_blas(gcase *c, const float *R, float *const *out, float *const (*g)[MAX_TENSORS], int big) {
    float *saved[MAX_TENSORS], *mg[MAX_TENSORS], *aR = abs_copy(R, c->nout), *mo = malloc(c->nout * sizeof(float));
    for (int i = 0; i < c->nt; i++) {
        saved[i] = c->t[i].x;
        c->t[i].x = abs_copy(saved[i], c->t[i].n);
        mg[i] = malloc(c->t[i].n * sizeof(float));
    }
    lorac_set_threads(1);
    run_fwd_bwd(c, aR, mo, mg);
    char what[256];
    for (int i = -1; i < c->nt; i++) {
        const size_t n = i < 0 ? c->nout : c->t[i].n;
        const float *m = i < 0 ? mo : mg[i];
        double *mag = malloc(n * sizeof(double));
        for (size_t j = 0; j < n; j++) mag[j] = m[j];
        snprintf(what, sizeof what, "%s (%s sizes): %s with 1 and 2 threads", c->name, big ? "big" : "small",
                 i < 0 ? "out" : c->t[i].name);
        check_sum_orders(i < 0 ? out[0] : g[0][i], i < 0 ? out[2] : g[2][i], mag, n, c->blas_k, what);
        free(mag);
    }
    for (int i = 0; i < c->nt; i++) {
        free(c->t[i].x);
        c->t[i].x = saved[i];
        free(mg[i]);
    }
    free(aR), free(mo);
}

/* 5. forward + backward twice with 1 thread and twice with 2: the same bits for the same thread
 * count; across thread counts the same bits, or (OpenBLAS's sums) within the bound above */
static void check_threads(gcase *c, int big) {
    case_init(c, big);
    lorac_rng rr;
    lorac_rng_seed(&rr, 7);
    float *R = rand_floats(&rr, c->nout, 1.0f);
    float *out[4], *g[4][MAX_TENSORS];
    for (int k = 0; k < 4; k++) {
        out[k] = malloc(c->nout * sizeof(float));
        for (int i = 0; i < c->nt; i++) g[k][i] = malloc(c->t[i].n * sizeof(float));
        lorac_set_threads(k < 2 ? 1 : 2);
        run_fwd_bwd(c, R, out[k], g[k]);
    }
    /* pairs (0,1) and (2,3): one thread count twice; (0,2): 1 vs 2 threads */
    for (int p = 0; p < 3; p++) {
        const int a = p < 2 ? 2 * p : 0, b = p < 2 ? 2 * p + 1 : 2;
        if (p == 2 && c->blas_k > 0) {
            check_threads_blas(c, R, out, g, big);
            break;
        }
        int same = memcmp(out[a], out[b], c->nout * sizeof(float)) == 0;
        for (int i = 0; i < c->nt; i++) same &= memcmp(g[a][i], g[b][i], c->t[i].n * sizeof(float)) == 0;
        if (p < 2)
            CHECK(same, "%s (%s sizes): two runs on %d thread(s) differ", c->name, big ? "big" : "small", p + 1);
        else
            CHECK(same, "%s (%s sizes): 1 and 2 threads differ", c->name, big ? "big" : "small");
    }
    for (int k = 0; k < 4; k++) {
        free(out[k]);
        for (int i = 0; i < c->nt; i++) free(g[k][i]);
    }
    free(R);
    case_free(c);
}

/* 6. the op (big sizes, 2 threads) with the kernels capped at avx2 gives the bits of the avx512
 * kernels (attention tiles and vector math agree lane for lane; OpenBLAS is not affected by the
 * cap). The generic level is checked against the references when the suite runs under
 * LORAC_ISA=generic (.ci/run). */
static void check_levels(gcase *c) {
    const lorac_isa top = lorac_isa_active();
    if (top < LORAC_ISA_AVX512) return;
    case_init(c, 1);
    lorac_rng rr;
    lorac_rng_seed(&rr, 13);
    float *R = rand_floats(&rr, c->nout, 1.0f);
    float *out[2], *g[2][MAX_TENSORS];
    lorac_set_threads(2);
    for (int k = 0; k < 2; k++) {
        out[k] = malloc(c->nout * sizeof(float));
        for (int i = 0; i < c->nt; i++) g[k][i] = malloc(c->t[i].n * sizeof(float));
        lorac_isa_set_cap(k ? LORAC_ISA_AVX2 : top);
        run_fwd_bwd(c, R, out[k], g[k]);
    }
    lorac_isa_set_cap(top);
    int same = memcmp(out[0], out[1], c->nout * sizeof(float)) == 0;
    for (int i = 0; i < c->nt; i++) same &= memcmp(g[0][i], g[1][i], c->t[i].n * sizeof(float)) == 0;
    CHECK(same, "%s: the avx2 kernels' bits differ from %s's", c->name, lorac_isa_name(top));
    for (int k = 0; k < 2; k++) {
        free(out[k]);
        for (int i = 0; i < c->nt; i++) free(g[k][i]);
    }
    free(R);
    case_free(c);
}

/* Attention under bf16 matmul precision (bf16 tile products): within 1.5e-2 relative L2 of the
 * fp32 op for the output and each gradient (q, k, v, dout and p are rounded to 8 significant bits;
 * 0.43-0.48% seen), not equal to it (the bf16 tiles ran), and the same bits on 1 and 2 threads. */
static void check_attention_bf16(gcase *c) {
    if (!op_bf16_supported()) return;
    case_init(c, 1);
    lorac_rng rr;
    lorac_rng_seed(&rr, 11);
    float *R = rand_floats(&rr, c->nout, 1.0f);
    float *out[3], *g[3][MAX_TENSORS];
    for (int k = 0; k < 3; k++) { /* fp32; bf16 on 1 thread; bf16 on 2 threads */
        out[k] = malloc(c->nout * sizeof(float));
        for (int i = 0; i < c->nt; i++) g[k][i] = malloc(c->t[i].n * sizeof(float));
        op_set_matmul_precision(k ? OP_PREC_BF16 : OP_PREC_FP32);
        lorac_set_threads(k == 1 ? 1 : 2);
        run_fwd_bwd(c, R, out[k], g[k]);
    }
    op_set_matmul_precision(OP_PREC_FP32);
    int same = memcmp(out[1], out[2], c->nout * sizeof(float)) == 0;
    for (int i = 0; i < c->nt; i++) same &= memcmp(g[1][i], g[2][i], c->t[i].n * sizeof(float)) == 0;
    CHECK(same, "%s bf16: 1 and 2 threads differ", c->name);
    double worst = 0;
    for (int i = -1; i < c->nt; i++) {
        const float *a = i < 0 ? out[0] : g[0][i], *b = i < 0 ? out[1] : g[1][i];
        size_t n = i < 0 ? c->nout : c->t[i].n;
        double num = 0, den = 0;
        for (size_t j = 0; j < n; j++) num += ((double)a[j] - b[j]) * ((double)a[j] - b[j]), den += (double)a[j] * a[j];
        double rel = den > 0 ? sqrt(num / den) : sqrt(num);
        worst = fmax(worst, rel);
        CHECK(rel <= 1.5e-2 && (i >= 0 || rel > 0), "%s bf16 %s: relative L2 error %.3g vs fp32", c->name,
              i < 0 ? "out" : c->t[i].name, rel);
    }
    printf("%s bf16: worst relative L2 error vs fp32 %.3g\n", c->name, worst);
    for (int k = 0; k < 3; k++) {
        free(out[k]);
        for (int i = 0; i < c->nt; i++) free(g[k][i]);
    }
    free(R);
    case_free(c);
}

/* The forwards that ops.h says may run in place (out == inp) give the same bits as out of place. */
static void check_inplace(void) {
    enum { N = 6, C = 40, NH = 2, HS = 20 };
    lorac_rng r;
    lorac_rng_seed(&r, 5);
    float *x = rand_floats(&r, N * C, 1.5f), *w = rand_floats(&r, C, 1.0f), *b = rand_floats(&r, C, 1.0f);
    float want[N * C], got[N * C], s1[N], s2[N];
    const char *names[] = {"bias add", "layernorm", "rmsnorm", "gelu tanh", "gelu erf", "silu",
                           "swiglu", "softmax", "rope"};
    for (int op = 0; op < 9; op++) {
        for (int pass = 0; pass < 2; pass++) {
            float *out = pass ? got : want;
            const float *in = x;
            if (pass) memcpy(got, x, sizeof got), in = got;
            switch (op) {
            case 0: op_bias_add_forward(out, in, b, N, C); break;
            case 1: op_layernorm_forward(out, s1, s2, in, w, b, N, C, 1e-5f); break;
            case 2: op_rmsnorm_forward(out, s1, in, w, N, C, 1e-6f); break;
            case 3: op_gelu_tanh_forward(out, in, N * C); break;
            case 4: op_gelu_erf_forward(out, in, N * C); break;
            case 5: op_silu_forward(out, in, N * C); break;
            case 6: op_swiglu_forward(out, in, x, N, C); break;
            case 7: op_softmax_forward(out, in, N, C); break;
            default: op_rope_forward(out, in, NULL, 1, N, NH, HS, 10000.0f); break;
            }
        }
        CHECK(memcmp(want, got, sizeof got) == 0, "%s: in place differs from out of place", names[op]);
    }
    free(x), free(w), free(b);
}

/* The vector exp/tanh/erf/max (ops_vmath.c) against double libm, at every kernel level up to the
 * active one: exp within 3 float ulps (relative 4e-7, plus 1e-44 absolute where the result is
 * subnormal) including exp(-inf) = 0 and the returned sum; tanh within 3e-7 absolute; erf within
 * 5e-7 absolute (erf(±inf) = ±1, odd, NaN stays NaN; th holds tanh then erf); max over
 * every tail length, skipping NaN. The AVX2 and AVX-512 kernels give the same bits (values over
 * the whole range, subnormal results included, and sums of every tail length). */
static void check_vmath_level(lorac_isa isa, float *ex, float *th, float *sums) {
    enum { N = 4099 };
    const char *lv = lorac_isa_name(isa);
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) x[i] = -110.0f + 198.7f * (float)i / (N - 1);
    x[7] = -INFINITY;
    double worst = 0.0, sum = 0.0;
    op_vexp_sum(y, x, 1.0f, 0.0f, N);
    memcpy(ex, y, N * sizeof(float));
    for (int i = 0; i < N; i++) {
        double e = exp((double)x[i]), err = fabs(y[i] - e) - 4e-7 * e - 1e-44;
        worst = err > worst ? err : worst;
    }
    CHECK(worst <= 0.0 && y[7] == 0.0f, "vexp (%s): exceeds 4e-7 relative by %g", lv, worst);
    float s = op_vexp_sum(y, x, 1.0f, 0.0f, 3500); /* x up to ~59: the float sum stays finite */
    for (int i = 0; i < 3500; i++) sum += exp((double)x[i]);
    CHECK(fabs(s - sum) <= 1e-5 * sum, "vexp (%s): sum %g vs %g", lv, (double)s, sum);
    float s2 = op_vexp_sum(y, x + 3000, 0.5f, 1.0f, 37); /* scale, shift and a tail */
    double sum2 = 0.0;
    for (int i = 0; i < 37; i++) sum2 += exp(0.5 * x[3000 + i] - 1.0);
    CHECK(fabs(s2 - sum2) <= 1e-6 * sum2, "vexp (%s): scaled and shifted sum", lv);
    for (int n = 0; n < 40; n++) sums[n] = op_vexp_sum(y, x + 3000, 0.5f, 1.0f, (size_t)n);
    for (int i = 0; i < N; i++) x[i] = -20.0f + 40.0f * (float)i / (N - 1);
    op_vtanh(y, x, N);
    memcpy(th, y, N * sizeof(float));
    worst = 0.0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(y[i] - tanh((double)x[i])));
    CHECK(worst <= 3e-7, "vtanh (%s): error %g", lv, worst);
    for (int i = 0; i < N; i++) x[i] = -6.0f + 12.0f * (float)i / (N - 1);
    x[0] = -INFINITY, x[1] = INFINITY, x[2] = NAN;
    op_verf(th + N, x, N);
    worst = 0.0;
    for (int i = 3; i < N; i++) worst = fmax(worst, fabs(th[N + i] - erf((double)x[i])));
    CHECK(worst <= 5e-7 && th[N] == -1.0f && th[N + 1] == 1.0f && isnan(th[N + 2]), "verf (%s): error %g", lv,
          worst);
    for (int i = 0; i < N; i++) x[i] = -x[i];
    op_verf(y, x, N);
    int odd = 1;
    for (int i = 3; i < N; i++) odd &= y[i] == -th[N + i];
    CHECK(odd, "verf (%s): erf(-x) != -erf(x)", lv);
    int ok = 1;
    for (int n = 1; n <= 40; n++) {
        for (int i = 0; i < n; i++) x[i] = (float)((i * 7) % n);
        x[n / 2] = NAN;
        float want = -INFINITY;
        for (int i = 0; i < n; i++) want = x[i] > want ? x[i] : want;
        ok &= op_vmax(x, (size_t)n) == want;
    }
    CHECK(ok && op_vmax(x, 0) == -INFINITY, "vmax (%s) over tails with a NaN", lv);
    free(x), free(y);
}

static void check_vmath(void) {
    enum { N = 4099 };
    const lorac_isa top = lorac_isa_active();
    float *ex[3], *th[3], sums[3][40];
    for (int l = LORAC_ISA_GENERIC; l <= (int)top && l <= LORAC_ISA_AVX512; l++) {
        ex[l] = malloc(N * sizeof(float)), th[l] = malloc(2 * N * sizeof(float));
        lorac_isa_set_cap((lorac_isa)l);
        check_vmath_level((lorac_isa)l, ex[l], th[l], sums[l]);
    }
    lorac_isa_set_cap(top);
    if (top >= LORAC_ISA_AVX512)
        CHECK(!memcmp(ex[1], ex[2], N * sizeof(float)) && !memcmp(th[1], th[2], 2 * N * sizeof(float)) &&
                  !memcmp(sums[1], sums[2], sizeof sums[1]),
              "vexp, vtanh, verf: the avx2 kernels' bits differ from avx512's");
    for (int l = LORAC_ISA_GENERIC; l <= (int)top && l <= LORAC_ISA_AVX512; l++) free(ex[l]), free(th[l]);
}

/* bf16 storage (op_f32_to_bf16 / op_bf16_to_f32) agrees bit for bit with the scalar conversions of
 * base.h (round to nearest even: ties both ways, NaN, inf, overflow to inf, subnormals), round trips
 * exactly, and the GELUs of a bf16 input give the bits of the fp32 GELUs of its widened values
 * (so their gradients are the FD-checked ones above), over a parallel size with a tail. */
static void check_bf16_storage(void) {
    enum { N = 70001 };
    float *x = malloc(N * sizeof(float)), *w = malloc(N * sizeof(float)), *d = malloc(N * sizeof(float));
    float *y1 = malloc(N * sizeof(float)), *y2 = malloc(N * sizeof(float));
    uint16_t *h = malloc(N * sizeof(uint16_t));
    lorac_rng r;
    lorac_rng_seed(&r, 17);
    for (int i = 0; i < N; i++) x[i] = 4.0f * lorac_rng_normal(&r), d[i] = lorac_rng_normal(&r);
    const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x7f7fffffu, 0x7f800000u, 0xff800000u,
                                0x7fc00000u, 0x7f800001u, 0xffffffffu, 0x00000001u, 0x80400000u, 0x00000000u};
    for (int i = 0; i < (int)(sizeof special / sizeof *special); i++) memcpy(&x[i], &special[i], 4);
    op_f32_to_bf16(h, x, N);
    int same = 1;
    for (int i = 0; i < N; i++) {
        uint16_t want = lorac_f32_to_bf16(x[i]);
        int nan = isnan(x[i]);
        same &= nan ? isnan(lorac_bf16_to_f32(h[i])) : h[i] == want;
    }
    CHECK(same, "op_f32_to_bf16 differs from lorac_f32_to_bf16");
    op_bf16_to_f32(w, h, N);
    same = 1;
    for (int i = 0; i < N; i++) {
        float want = lorac_bf16_to_f32(h[i]);
        same &= isnan(want) ? isnan(w[i]) != 0 : memcmp(&w[i], &want, 4) == 0;
    }
    CHECK(same, "op_bf16_to_f32 is not exact");
    for (int i = 0; i < 12; i++) w[i] = x[i] = 0.5f; /* the GELUs on finite values */
    op_f32_to_bf16(h, x, N);
    op_bf16_to_f32(w, h, N);
    for (int erf = 0; erf < 2; erf++) {
        (erf ? op_gelu_erf_forward : op_gelu_tanh_forward)(y1, w, N);
        (erf ? op_gelu_erf_forward_bf16 : op_gelu_tanh_forward_bf16)(y2, h, N);
        CHECK(!memcmp(y1, y2, N * sizeof(float)), "gelu %s forward of a bf16 input", erf ? "erf" : "tanh");
        for (int i = 0; i < N; i++) y1[i] = y2[i] = 0.25f;
        (erf ? op_gelu_erf_backward : op_gelu_tanh_backward)(y1, d, w, N);
        (erf ? op_gelu_erf_backward_bf16 : op_gelu_tanh_backward_bf16)(y2, d, h, N);
        CHECK(!memcmp(y1, y2, N * sizeof(float)), "gelu %s backward of a bf16 input", erf ? "erf" : "tanh");
    }
    free(x), free(w), free(d), free(y1), free(y2), free(h);
}

/* op_add (in place too) and op_zero over a parallel size with a tail: exact, and nothing past n. */
static void check_add_zero(void) {
    enum { N = 100003 };
    lorac_rng r;
    lorac_rng_seed(&r, 23);
    float *a = rand_floats(&r, N + 1, 1.0f), *b = rand_floats(&r, N, 1.0f), *o = malloc((N + 1) * sizeof(float));
    o[N] = a[N] = 7.0f;
    op_add(o, a, b, N);
    int ok = o[N] == 7.0f;
    for (int i = 0; i < N; i++) ok &= o[i] == a[i] + b[i];
    op_add(a, a, b, N);
    ok &= memcmp(a, o, N * sizeof(float)) == 0;
    CHECK(ok, "op_add");
    op_zero(o, N);
    ok = o[N] == 7.0f;
    for (int i = 0; i < N; i++) ok &= o[i] == 0.0f;
    CHECK(ok, "op_zero");
    free(a), free(b), free(o);
}

int main(void) {
    printf("kernels: %s (cpu: %s)\n", lorac_isa_name(lorac_isa_active()), lorac_isa_name(lorac_isa_detected()));
    check_inplace();
    check_vmath();
    check_bf16_storage();
    check_add_zero();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_case(&cases[i]);
        check_threads(&cases[i], 0);
        check_threads(&cases[i], 1);
        check_levels(&cases[i]);
        if (!strncmp(cases[i].name, "attention", 9)) check_attention_bf16(&cases[i]);
    }
    lorac_set_threads(0);
    return check_summary();
}
