/* Attention of new queries against a KV cache (inference only: no backward is needed, as nothing
 * is trained through a cache). Ragged: each sequence reads its own cache slot and continues at its
 * own length, so a continuous-batching step mixes sequences of any lengths (and prefill chunks).
 *
 * One arithmetic at every kernel level (the same bits on every CPU and thread count):
 *   score_j = q·k_j in 16 lane sums (lane l: elements l, l+16, ...; each product rounded, then
 *             added), reduced by halving (lanes l and l+8, then l and l+4, l+2, l+1), times 1/sqrt(HS);
 *   p_j = expf(score_j - max) (libm), sum in key order; out = sum over j, in order, of
 *   (p_j / sum)·v_j, each product rounded, then added.
 * The AVX-512 and AVX2 kernels keep the lane sums and the output row in registers (the halving
 * reduction is a horizontal add in that order); heads whose size is not a multiple of 16 (or above
 * AC_MAXHS) take the plain C loop. */
#include <math.h>
#include <stddef.h>

#include "lorac/ops.h"

#include "core/simd_avx2.h"
#include "core/simd_avx512.h"

#define AC_MAXHS 256

/* products are rounded before they are added (no FMA contraction: the levels' bits) */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

static float dot_(const float *q, const float *k, int n) {
    float acc[16] = {0};
    int e = 0;
    for (; e + 16 <= n; e += 16)
        for (int l = 0; l < 16; l++) acc[l] += q[e + l] * k[e + l];
    for (int l = 0; e < n; e++, l++) acc[l] += q[e] * k[e];
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

/* scores of one query against keys 0..n-1 (rows ld floats apart) */
static void scores_c_(float *sc, const float *q, const float *k, size_t ld, int n, int HS, float scale) {
    for (int j = 0; j < n; j++) sc[j] = dot_(q, k + (size_t)j * ld, HS) * scale;
}

/* o = sum_j p[j]·v_j, in key order */
static void mix_c_(float *restrict o, const float *p, const float *restrict v, size_t ld, int n, int HS) {
    for (int e = 0; e < HS; e++) o[e] = 0.0f;
    for (int j = 0; j < n; j++)
        for (int e = 0; e < HS; e++) o[e] += p[j] * v[(size_t)j * ld + e];
}

#ifdef LORAC_X86_KERNELS
/* the halving reduction of 16 lanes given as two halves (lanes 0-7, 8-15) */
LORAC_TGT_AVX2 static inline float halve16_avx2_(__m256 lo, __m256 hi) {
    const __m256 s8 = _mm256_add_ps(lo, hi);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

LORAC_TGT_AVX2 static void scores_avx2_(float *sc, const float *q, const float *k, size_t ld, int n, int HS,
                                        float scale) {
    for (int j = 0; j < n; j++) {
        const float *kj = k + (size_t)j * ld;
        __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
        for (int e = 0; e < HS; e += 16) {
            lo = _mm256_add_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(q + e), _mm256_loadu_ps(kj + e)));
            hi = _mm256_add_ps(hi, _mm256_mul_ps(_mm256_loadu_ps(q + e + 8), _mm256_loadu_ps(kj + e + 8)));
        }
        sc[j] = halve16_avx2_(lo, hi) * scale;
    }
}

LORAC_TGT_AVX2 static void mix_avx2_(float *o, const float *p, const float *v, size_t ld, int n, int HS) {
    __m256 acc[AC_MAXHS / 8];
    const int nv = HS / 8;
    for (int r = 0; r < nv; r++) acc[r] = _mm256_setzero_ps();
    for (int j = 0; j < n; j++) {
        const __m256 pj = _mm256_set1_ps(p[j]);
        const float *vj = v + (size_t)j * ld;
        for (int r = 0; r < nv; r++) acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(pj, _mm256_loadu_ps(vj + 8 * r)));
    }
    for (int r = 0; r < nv; r++) _mm256_storeu_ps(o + 8 * r, acc[r]);
}

LORAC_TGT_AVX512 static void scores_avx512_(float *sc, const float *q, const float *k, size_t ld, int n, int HS,
                                            float scale) {
    for (int j = 0; j < n; j++) {
        const float *kj = k + (size_t)j * ld;
        __m512 acc = _mm512_setzero_ps();
        for (int e = 0; e < HS; e += 16)
            acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_loadu_ps(q + e), _mm512_loadu_ps(kj + e)));
        sc[j] = halve16_avx2_(_mm512_castps512_ps256(acc), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1))) * scale;
    }
}

LORAC_TGT_AVX512 static void mix_avx512_(float *o, const float *p, const float *v, size_t ld, int n, int HS) {
    __m512 acc[AC_MAXHS / 16];
    const int nv = HS / 16;
    for (int r = 0; r < nv; r++) acc[r] = _mm512_setzero_ps();
    for (int j = 0; j < n; j++) {
        const __m512 pj = _mm512_set1_ps(p[j]);
        const float *vj = v + (size_t)j * ld;
        for (int r = 0; r < nv; r++) acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(pj, _mm512_loadu_ps(vj + 16 * r)));
    }
    for (int r = 0; r < nv; r++) _mm512_storeu_ps(o + 16 * r, acc[r]);
}
#endif

typedef void (*scores_fn)(float *, const float *, const float *, size_t, int, int, float);
typedef void (*mix_fn)(float *, const float *, const float *, size_t, int, int);

void op_attention_cached_forward(float *out, const float *q, const float *kc, const float *vc, int S, int Tq,
                                 const int *slot, const int *offset, int cap, int NH, int NKV, int HS, float *scratch) {
    // q, out (S,Tq,NH*HS); kc, vc (n_slots,cap,NKV*HS): sequence s reads slot[s] (s when slot is NULL),
    // which holds positions [0, offset[s]+Tq); query i of sequence s sits at position offset[s]+i and
    // sees keys 0..offset[s]+i. scratch: (S*NH, cap)
    const int C = NH * HS, CK = NKV * HS, group = NH / NKV;
    const float scale = 1.0f / sqrtf((float)HS);
    scores_fn scores = scores_c_;
    mix_fn mix = mix_c_;
#ifdef LORAC_X86_KERNELS
    const lorac_isa isa = lorac_isa_active();
    if (HS % 16 == 0 && HS <= AC_MAXHS && isa >= LORAC_ISA_AVX512) scores = scores_avx512_, mix = mix_avx512_;
    else if (HS % 16 == 0 && HS <= AC_MAXHS && isa >= LORAC_ISA_AVX2) scores = scores_avx2_, mix = mix_avx2_;
#endif
    size_t work = 0; /* products of the step: a few decode rows' attention is not worth a fork/join */
    for (int s = 0; s < S; s++) work += (size_t)Tq * (size_t)(offset[s] + Tq);
    work *= (size_t)NH * HS;
#pragma omp parallel for collapse(2) schedule(static) if (work > 65536)
    for (int s = 0; s < S; s++)
        for (int h = 0; h < NH; h++) {
            float *sc = scratch + ((size_t)s * NH + h) * cap;
            const size_t sl = (size_t)(slot ? slot[s] : s) * cap * CK + (size_t)(h / group) * HS;
            for (int i = 0; i < Tq; i++) {
                const float *qi = q + ((size_t)s * Tq + i) * C + (size_t)h * HS;
                const int n = offset[s] + i + 1;
                scores(sc, qi, kc + sl, (size_t)CK, n, HS, scale);
                float mx = -INFINITY, sum = 0.0f;
                for (int j = 0; j < n; j++) mx = sc[j] > mx ? sc[j] : mx;
                for (int j = 0; j < n; j++) sum += (sc[j] = expf(sc[j] - mx));
                for (int j = 0; j < n; j++) sc[j] /= sum;
                mix(out + ((size_t)s * Tq + i) * C + (size_t)h * HS, sc, vc + sl, (size_t)CK, n, HS);
            }
        }
}
