/* Attention of new queries against a KV cache (inference only: no backward is needed, as nothing
 * is trained through a cache). Ragged: each sequence reads its own cache slot and continues at its
 * own length, so a continuous-batching step mixes sequences of any lengths (and prefill chunks). */
#include <math.h>
#include <stddef.h>

#include "lorac/ops.h"

/* q·k in 16 independent partial sums (lane l: elements l, l+16, ...), added in one fixed order: the
 * compiler keeps them in vector registers (one chain of HS dependent adds cost a decode step's
 * attention as much as its products), and the result is the same on every CPU and thread count. */
static inline float dot_(const float *q, const float *k, int n) {
    float acc[16] = {0};
    int e = 0;
    for (; e + 16 <= n; e += 16)
        for (int l = 0; l < 16; l++) acc[l] += q[e + l] * k[e + l];
    for (int l = 0; e < n; e++, l++) acc[l] += q[e] * k[e];
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

/* o += p·v, 16 elements at a time (a fixed trip count and restrict: the compiler vectorizes it at
 * -O2; the element-wise operations are a scalar loop's, so the bits are too) */
static inline void axpy_(float *restrict o, const float *restrict v, float p, int n) {
    int e = 0;
    for (; e + 16 <= n; e += 16)
        for (int l = 0; l < 16; l++) o[e + l] += p * v[e + l];
    for (; e < n; e++) o[e] += p * v[e];
}

void op_attention_cached_forward(float *out, const float *q, const float *kc, const float *vc, int S, int Tq,
                                 const int *slot, const int *offset, int cap, int NH, int NKV, int HS, float *scratch) {
    // q, out (S,Tq,NH*HS); kc, vc (n_slots,cap,NKV*HS): sequence s reads slot[s] (s when slot is NULL),
    // which holds positions [0, offset[s]+Tq); query i of sequence s sits at position offset[s]+i and
    // sees keys 0..offset[s]+i. scratch: (S*NH, cap)
    int C = NH * HS, CK = NKV * HS, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
    size_t work = 0; /* products of the step: a few decode rows' attention is not worth a fork/join */
    for (int s = 0; s < S; s++) work += (size_t)Tq * (size_t)(offset[s] + Tq);
    work *= (size_t)NH * HS;
#pragma omp parallel for collapse(2) schedule(static) if (work > 65536)
    for (int s = 0; s < S; s++)
        for (int h = 0; h < NH; h++) {
            float *sc = scratch + ((size_t)s * NH + h) * cap;
            const float *ks = kc + (size_t)(slot ? slot[s] : s) * cap * CK, *vs = vc + (size_t)(slot ? slot[s] : s) * cap * CK;
            int hk = h / group;
            for (int i = 0; i < Tq; i++) {
                const float *qi = q + ((size_t)s * Tq + i) * C + (size_t)h * HS;
                int last = offset[s] + i;
                float mx = -INFINITY;
                for (int j = 0; j <= last; j++) {
                    const float d = dot_(qi, ks + (size_t)j * CK + (size_t)hk * HS, HS);
                    sc[j] = d * scale;
                    if (sc[j] > mx) mx = sc[j];
                }
                float sum = 0.0f;
                for (int j = 0; j <= last; j++) {
                    sc[j] = expf(sc[j] - mx);
                    sum += sc[j];
                }
                float *o = out + ((size_t)s * Tq + i) * C + (size_t)h * HS;
                for (int e = 0; e < HS; e++) o[e] = 0.0f;
                for (int j = 0; j <= last; j++) axpy_(o, vs + (size_t)j * CK + (size_t)hk * HS, sc[j] / sum, HS);
            }
        }
}
