/* Multi-head self-attention (causal or bidirectional, grouped-query, padding mask), one query row
 * at a time with an online softmax: only a log-sum-exp per row is kept, never a (T,T) matrix. */
#include "lorac/ops.h"

#include <math.h>
#include <stddef.h>

/* Eight partial sums (combined in a fixed order) let the compiler use SIMD without -ffast-math;
 * the order depends only on n, never on threads. */
static inline float dot_(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int u = 0; u < 8; u++) acc[u] += a[i + u] * b[i + u];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* key j is visible to query t */
static inline int visible_(const uint8_t *pad, int b, int T, int t, int j, int causal) {
    if (causal && j > t) return 0;
    return pad == NULL || pad[(size_t)b * T + j] != 0;
}

void op_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                          const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS, int causal) {
    // q, out are (B,T,NH*HS); k, v are (B,T,NKV*HS); pad_mask is (B,T) or NULL; lse is (B,NH,T)
    const int QC = NH * HS, KC = NKV * HS, group = NH / NKV;
    const float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const int g = h / group;
            for (int t = 0; t < T; t++) {
                const float *qt = q + ((size_t)b * T + t) * QC + (size_t)h * HS;
                float *o = out + ((size_t)b * T + t) * QC + (size_t)h * HS;
                for (int i = 0; i < HS; i++) o[i] = 0.0f;
                /* online softmax: o accumulates Σ exp(s_j - m)·v_j, l = Σ exp(s_j - m) */
                float m = -INFINITY, l = 0.0f;
                int jend = causal ? t + 1 : T;
                for (int j = 0; j < jend; j++) {
                    if (!visible_(pad_mask, b, T, t, j, causal)) continue;
                    const float *kj = k + ((size_t)b * T + j) * KC + (size_t)g * HS;
                    const float *vj = v + ((size_t)b * T + j) * KC + (size_t)g * HS;
                    float s = dot_(qt, kj, HS) * scale;
                    if (s > m) { /* rescale what was summed under the old max */
                        float r = expf(m - s);
                        l *= r;
                        for (int i = 0; i < HS; i++) o[i] *= r;
                        m = s;
                    }
                    float p = expf(s - m);
                    l += p;
                    for (int i = 0; i < HS; i++) o[i] += p * vj[i];
                }
                float *ls = lse + ((size_t)b * NH + h) * T + t;
                if (l > 0.0f) {
                    float inv = 1.0f / l;
                    for (int i = 0; i < HS; i++) o[i] *= inv;
                    *ls = m + logf(l);
                } else {
                    *ls = -INFINITY; /* no visible key: out stays 0 */
                }
            }
        }
    }
}

void op_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out,
                           const float *lse, const float *q, const float *k, const float *v,
                           const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS,
                           int causal) {
    // dout, out, q, dq are (B,T,NH*HS); k, v, dk, dv are (B,T,NKV*HS); lse is (B,NH,T)
    if (!dq && !dk && !dv) return;
    const int QC = NH * HS, KC = NKV * HS, group = NH / NKV;
    const float scale = 1.0f / sqrtf((float)HS);
    /* one task per (b, kv head): it owns dk/dv of that head and dq of its query heads, and walks
     * heads and rows in order, so every sum has a fixed order */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int g = 0; g < NKV; g++) {
            for (int h = g * group; h < (g + 1) * group; h++) {
                for (int t = 0; t < T; t++) {
                    const float L = lse[((size_t)b * NH + h) * T + t];
                    if (L == -INFINITY) continue; /* out was the constant 0 */
                    size_t qoff = ((size_t)b * T + t) * QC + (size_t)h * HS;
                    const float *qt = q + qoff, *dot = dout + qoff;
                    /* D = Σ_j p_j·dp_j = dout·out */
                    const float D = dot_(dot, out + qoff, HS);
                    int jend = causal ? t + 1 : T;
                    for (int j = 0; j < jend; j++) {
                        if (!visible_(pad_mask, b, T, t, j, causal)) continue;
                        size_t koff = ((size_t)b * T + j) * KC + (size_t)g * HS;
                        const float *kj = k + koff, *vj = v + koff;
                        // p = exp(s - lse); out = Σ_j p_j·v_j
                        float p = expf(dot_(qt, kj, HS) * scale - L);
                        if (dv)
                            for (int i = 0; i < HS; i++) dv[koff + i] += p * dot[i];
                        if (!dq && !dk) continue;
                        // ds = p·(dp - D), s = q·k·scale
                        float ds = p * (dot_(dot, vj, HS) - D) * scale;
                        if (dq)
                            for (int i = 0; i < HS; i++) dq[qoff + i] += ds * kj[i];
                        if (dk)
                            for (int i = 0; i < HS; i++) dk[koff + i] += ds * qt[i];
                    }
                }
            }
        }
    }
}
