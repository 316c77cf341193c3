/* Multi-head self-attention (causal or bidirectional, grouped-query, padding mask), tiled as in
 * FlashAttention-2: a tile of AT_BQ queries meets a tile of AT_BK keys through small cblas GEMMs
 * (scores, then probabilities · values) with an online softmax, so at most one AT_BQ x AT_BK tile
 * of scores exists per thread; causal tiles above the diagonal are skipped. Only a log-sum-exp
 * per query row is kept for the backward, which recomputes the scores tile by tile.
 * Called inside an OpenMP region, OpenBLAS (OpenMP build) runs each tile GEMM single-threaded. */
#include "lorac/ops.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>

#define AT_BQ 64
#define AT_BK 64

/* Sets the scores of keys that query row t0+i cannot see to -inf; a tile wholly visible is left
 * alone. s is (nq, AT_BK). */
static void mask_tile_(float *s, const uint8_t *pad, int t0, int nq, int j0, int nk, int causal) {
    int diag = causal && j0 + nk - 1 > t0;
    int padded = 0;
    if (pad)
        for (int j = 0; j < nk; j++) padded |= pad[j0 + j] == 0;
    if (!diag && !padded) return;
    for (int i = 0; i < nq; i++) {
        float *row = s + (size_t)i * AT_BK;
        for (int j = 0; j < nk; j++)
            if ((causal && j0 + j > t0 + i) || (pad && pad[j0 + j] == 0)) row[j] = -INFINITY;
    }
}

/* Keys [0, end) are what query rows t0..t0+nq-1 can see at most. */
static int key_end_(int t0, int nq, int T, int causal) { return causal ? t0 + nq : T; }

/* Row strides: QC for q (and dq), OC for out (and dout), KC for k and v (and dk, dv). */
static void attention_forward_(float *out, float *lse, const float *q, const float *k, const float *v,
                               const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS, int causal, int QC,
                               int OC, int KC) {
    const int group = NH / NKV, NQT = (T + AT_BQ - 1) / AT_BQ;
    const float scale = 1.0f / sqrtf((float)HS);
    /* tasks (b, h, query tile) are independent; causal tiles differ in work, hence dynamic */
#pragma omp parallel for collapse(3) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int qi = 0; qi < NQT; qi++) {
                float s[AT_BQ * AT_BK], m[AT_BQ], l[AT_BQ];
                const int g = h / group, t0 = qi * AT_BQ, nq = T - t0 < AT_BQ ? T - t0 : AT_BQ;
                const uint8_t *pad = pad_mask ? pad_mask + (size_t)b * T : NULL;
                const float *qp = q + ((size_t)b * T + t0) * QC + (size_t)h * HS;
                float *op = out + ((size_t)b * T + t0) * OC + (size_t)h * HS;
                for (int i = 0; i < nq; i++) {
                    for (int d = 0; d < HS; d++) op[(size_t)i * OC + d] = 0.0f;
                    m[i] = -INFINITY;
                    l[i] = 0.0f;
                }
                const int jend = key_end_(t0, nq, T, causal);
                for (int j0 = 0; j0 < jend; j0 += AT_BK) {
                    const int nk = jend - j0 < AT_BK ? jend - j0 : AT_BK;
                    const float *kp = k + ((size_t)b * T + j0) * KC + (size_t)g * HS;
                    const float *vp = v + ((size_t)b * T + j0) * KC + (size_t)g * HS;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, HS, scale, qp, QC, kp, KC, 0.0f, s,
                                AT_BK);
                    mask_tile_(s, pad, t0, nq, j0, nk, causal);
                    /* online softmax: o accumulates Σ exp(s_j - m)·v_j and l = Σ exp(s_j - m) */
                    for (int i = 0; i < nq; i++) {
                        float *row = s + (size_t)i * AT_BK;
                        float mx = op_vmax(row, (size_t)nk), mnew = mx > m[i] ? mx : m[i];
                        if (mnew == -INFINITY) { /* nothing visible yet */
                            for (int j = 0; j < nk; j++) row[j] = 0.0f;
                            continue;
                        }
                        float r = expf(m[i] - mnew); /* 0 when m was -inf */
                        l[i] = l[i] * r + op_vexp_sum(row, row, 1.0f, mnew, (size_t)nk);
                        if (r != 1.0f)
                            for (int d = 0; d < HS; d++) op[(size_t)i * OC + d] *= r;
                        m[i] = mnew;
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, HS, nk, 1.0f, s, AT_BK, vp, KC, 1.0f, op,
                                OC);
                }
                float *ls = lse + ((size_t)b * NH + h) * T + t0;
                for (int i = 0; i < nq; i++) {
                    if (l[i] > 0.0f) {
                        float inv = 1.0f / l[i];
                        for (int d = 0; d < HS; d++) op[(size_t)i * OC + d] *= inv;
                        ls[i] = m[i] + logf(l[i]);
                    } else {
                        ls[i] = -INFINITY; /* no visible key: out stays 0 */
                    }
                }
            }
        }
    }
}

/* The probabilities p = exp(s - lse) of a (query tile, key tile) pair into p (nq, AT_BK), and
 * when dp is given, ds = p·(dout·vᵀ - D) into dp, D = rowsum(dout·out) (so dp becomes ds). */
static void probs_tile_(float *p, float *dp, const float *qp, const float *kp, const float *vp, const float *dop,
                        const float *ls, const float *Dv, const uint8_t *pad, int t0, int nq, int j0, int nk, int QC,
                        int OC, int KC, int HS, float scale, int causal) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, HS, 1.0f, qp, QC, kp, KC, 0.0f, p, AT_BK);
    mask_tile_(p, pad, t0, nq, j0, nk, causal);
    for (int i = 0; i < nq; i++) {
        float *row = p + (size_t)i * AT_BK;
        if (ls[i] == -INFINITY) { /* the row saw nothing: out was the constant 0 */
            for (int j = 0; j < nk; j++) row[j] = 0.0f;
            continue;
        }
        op_vexp_sum(row, row, scale, ls[i], (size_t)nk);
    }
    if (!dp) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, HS, 1.0f, dop, OC, vp, KC, 0.0f, dp, AT_BK);
    for (int i = 0; i < nq; i++) {
        const float *pr = p + (size_t)i * AT_BK;
        float *dr = dp + (size_t)i * AT_BK;
        for (int j = 0; j < nk; j++) dr[j] = pr[j] * (dr[j] - Dv[i]);
    }
}

/* D = rowsum(dout · out) for nq rows (the softmax backward's Σ_j p_j·dp_j). */
static void rowdot_(float *Dv, const float *dop, const float *op, int nq, int OC, int HS) {
    for (int i = 0; i < nq; i++) {
        float acc = 0.0f;
        for (int d = 0; d < HS; d++) acc += dop[(size_t)i * OC + d] * op[(size_t)i * OC + d];
        Dv[i] = acc;
    }
}

static void attention_backward_(float *dq, float *dk, float *dv, const float *dout, const float *out,
                                const float *lse, const float *q, const float *k, const float *v,
                                const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS, int causal, int QC,
                                int OC, int KC) {
    const int group = NH / NKV;
    const int NQT = (T + AT_BQ - 1) / AT_BQ, NKT = (T + AT_BK - 1) / AT_BK;
    const float scale = 1.0f / sqrtf((float)HS);
    /* pass 1, dk and dv: a task per (b, kv head, key tile) owns those rows and walks its query
     * heads and query tiles in order, so every sum has a fixed order (no atomics) */
    if (dk || dv) {
#pragma omp parallel for collapse(3) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int g = 0; g < NKV; g++) {
                for (int kj = 0; kj < NKT; kj++) {
                    float p[AT_BQ * AT_BK], ds[AT_BQ * AT_BK], Dv[AT_BQ];
                    const int j0 = kj * AT_BK, nk = T - j0 < AT_BK ? T - j0 : AT_BK;
                    const uint8_t *pad = pad_mask ? pad_mask + (size_t)b * T : NULL;
                    const size_t koff = ((size_t)b * T + j0) * KC + (size_t)g * HS;
                    for (int h = g * group; h < (g + 1) * group; h++) {
                        /* causal: query tiles that end before key j0 see none of these keys */
                        for (int qi = causal ? j0 / AT_BQ : 0; qi < NQT; qi++) {
                            const int t0 = qi * AT_BQ, nq = T - t0 < AT_BQ ? T - t0 : AT_BQ;
                            const size_t qoff = ((size_t)b * T + t0) * QC + (size_t)h * HS;
                            const size_t ooff = ((size_t)b * T + t0) * OC + (size_t)h * HS;
                            const float *ls = lse + ((size_t)b * NH + h) * T + t0;
                            if (dk) rowdot_(Dv, dout + ooff, out + ooff, nq, OC, HS);
                            probs_tile_(p, dk ? ds : NULL, q + qoff, k + koff, v + koff, dout + ooff, ls, Dv, pad, t0,
                                        nq, j0, nk, QC, OC, KC, HS, scale, causal);
                            if (dv) /* dv += pᵀ · dout */
                                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, HS, nq, 1.0f, p, AT_BK,
                                            dout + ooff, OC, 1.0f, dv + koff, KC);
                            if (dk) /* dk += scale · dsᵀ · q */
                                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, HS, nq, scale, ds, AT_BK,
                                            q + qoff, QC, 1.0f, dk + koff, KC);
                        }
                    }
                }
            }
        }
    }
    /* pass 2, dq: a task per (b, head, query tile) recomputes p and ds over its key tiles */
    if (dq) {
#pragma omp parallel for collapse(3) schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < NH; h++) {
                for (int qi = 0; qi < NQT; qi++) {
                    float p[AT_BQ * AT_BK], ds[AT_BQ * AT_BK], Dv[AT_BQ];
                    const int g = h / group, t0 = qi * AT_BQ, nq = T - t0 < AT_BQ ? T - t0 : AT_BQ;
                    const uint8_t *pad = pad_mask ? pad_mask + (size_t)b * T : NULL;
                    const size_t qoff = ((size_t)b * T + t0) * QC + (size_t)h * HS;
                    const size_t ooff = ((size_t)b * T + t0) * OC + (size_t)h * HS;
                    const float *ls = lse + ((size_t)b * NH + h) * T + t0;
                    rowdot_(Dv, dout + ooff, out + ooff, nq, OC, HS);
                    const int jend = key_end_(t0, nq, T, causal);
                    for (int j0 = 0; j0 < jend; j0 += AT_BK) {
                        const int nk = jend - j0 < AT_BK ? jend - j0 : AT_BK;
                        const size_t koff = ((size_t)b * T + j0) * KC + (size_t)g * HS;
                        probs_tile_(p, ds, q + qoff, k + koff, v + koff, dout + ooff, ls, Dv, pad, t0, nq, j0, nk, QC,
                                    OC, KC, HS, scale, causal);
                        /* dq += scale · ds · k */
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, HS, nk, scale, ds, AT_BK, k + koff,
                                    KC, 1.0f, dq + qoff, QC);
                    }
                }
            }
        }
    }
}

void op_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                          const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS, int causal) {
    // q, out are (B,T,NH*HS); k, v are (B,T,NKV*HS); pad_mask is (B,T) or NULL; lse is (B,NH,T)
    attention_forward_(out, lse, q, k, v, pad_mask, B, T, NH, NKV, HS, causal, NH * HS, NH * HS, NKV * HS);
}

void op_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out,
                           const float *lse, const float *q, const float *k, const float *v,
                           const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS,
                           int causal) {
    // dout, out, q, dq are (B,T,NH*HS); k, v, dk, dv are (B,T,NKV*HS); lse is (B,NH,T)
    attention_backward_(dq, dk, dv, dout, out, lse, q, k, v, pad_mask, B, T, NH, NKV, HS, causal, NH * HS, NH * HS,
                        NKV * HS);
}

void op_attention_qkv_forward(float *out, float *lse, const float *qkv, const uint8_t *pad_mask, int B, int T,
                              int NH, int NKV, int HS, int causal) {
    // qkv is (B,T,(NH+2·NKV)*HS) = [q | k | v] per row; out is (B,T,NH*HS)
    const int W = (NH + 2 * NKV) * HS;
    attention_forward_(out, lse, qkv, qkv + (size_t)NH * HS, qkv + (size_t)(NH + NKV) * HS, pad_mask, B, T, NH, NKV,
                       HS, causal, W, NH * HS, W);
}

void op_attention_qkv_backward(float *dqkv, const float *dout, const float *out, const float *lse, const float *qkv,
                               const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS, int causal) {
    if (!dqkv) return;
    const int W = (NH + 2 * NKV) * HS;
    const size_t ko = (size_t)NH * HS, vo = (size_t)(NH + NKV) * HS;
    attention_backward_(dqkv, dqkv + ko, dqkv + vo, dout, out, lse, qkv, qkv + ko, qkv + vo, pad_mask, B, T, NH, NKV,
                        HS, causal, W, NH * HS, W);
}
