/* Attention of new queries against a KV cache (inference only: no backward is needed, as nothing
 * is trained through a cache). Ragged: each sequence reads its own cache slot and continues at its
 * own length, so a continuous-batching step mixes sequences of any lengths (and prefill chunks). */
#include <math.h>
#include <stddef.h>

#include "lorac/ops.h"

void op_attention_cached_forward(float *out, const float *q, const float *kc, const float *vc, int S, int Tq,
                                 const int *slot, const int *offset, int cap, int NH, int NKV, int HS, float *scratch) {
    // q, out (S,Tq,NH*HS); kc, vc (n_slots,cap,NKV*HS): sequence s reads slot[s] (s when slot is NULL),
    // which holds positions [0, offset[s]+Tq); query i of sequence s sits at position offset[s]+i and
    // sees keys 0..offset[s]+i. scratch: (S*NH, cap)
    int C = NH * HS, CK = NKV * HS, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2) schedule(static)
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
                    const float *kj = ks + (size_t)j * CK + (size_t)hk * HS;
                    float d = 0.0f;
                    for (int e = 0; e < HS; e++) d += qi[e] * kj[e];
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
                for (int j = 0; j <= last; j++) {
                    const float *vj = vs + (size_t)j * CK + (size_t)hk * HS;
                    float p = sc[j] / sum;
                    for (int e = 0; e < HS; e++) o[e] += p * vj[e];
                }
            }
        }
}
