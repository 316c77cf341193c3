/* Direct decode products (qdot.h) at the AVX-512 level (BW + VNNI): two blocks of 32 per 512-bit
 * vpdpbusd. The lane model's two accumulator sets are the two halves of one register: lanes 0-7
 * take the even blocks (set 0), lanes 8-15 the odd ones (set 1), so each lane sees exactly the
 * operations of qdot_rows_generic's, in the same order, and the bits are the same. Per pair of
 * blocks the weight side (unpacked bytes, the 16 lane scales, the correction below) is made once
 * and used by up to 8 activation rows, whose accumulators stay in registers; each row then costs
 * a dot, a convert, a multiply and an FMA per 64 products. The min terms of Q4_1 / Q4_K go
 * into one vector of 8 rows per set (dsT: the rows' ds of a block side by side).
 * A signed weight w (Q4_0, Q8_0, Q6_K) goes in as vpdpbusd's signed operand against the activation
 * plus 128 (x ^ 0x80, unsigned), starting from -128·(sum of w's 4 bytes) per lane, which makes the
 * lane's exact sum of x·w again (|lane| < 2^17: no overflow). */
#include "core/qdot.h"

#include "core/simd.h"
#include "lorac/quant.h"

#ifdef LORAC_X86_KERNELS
#include <immintrin.h>

#define TGT __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define INL static inline __attribute__((always_inline))

/* one pair of weight blocks: 64 bytes, their lane scales, and (signed) the starting lanes */
typedef struct wpair {
    __m512i w, corr;
    __m512 sw;
    float mw0, mw1; /* the two blocks' min factors (types with a min) */
} wpair;

TGT INL float f16_(const uint8_t *p) { return _cvtsh_ss((unsigned short)(p[0] | p[1] << 8)); }

TGT INL __m512i cat_si_(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

/* lanes 0-3 a, 4-7 b, 8-11 c, 12-15 e */
TGT INL __m512 quads_(float a, float b, float c, float e) {
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_setr_ps(a, b, c, e)));
}

/* 16 bytes of packed nibbles -> 32 bytes: low nibbles (elements 0..15), then high (16..31) */
TGT INL __m256i nibbles16_(const uint8_t *p) {
    const __m128i v = _mm_loadu_si128((const __m128i *)p), m4 = _mm_set1_epi8(15);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
}

/* the nibbles of two blocks (16 bytes at p0, 16 at p1) -> 64 bytes: block 0's elements 0..31, then
 * block 1's; one 256-bit unpack for both, then the 128-bit quarters put in order */
TGT INL __m512i nibbles_pair_(const uint8_t *p0, const uint8_t *p1) {
    const __m256i v = _mm256_loadu2_m128i((const __m128i *)p1, (const __m128i *)p0), m4 = _mm256_set1_epi8(15);
    const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); /* b0 lo, b1 lo, b0 hi, b1 hi */
    return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
}

/* signed weights: the lanes start at -128·(sum of their 4 weight bytes) */
TGT INL void signed_(wpair *p) {
    const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80), p->w);
    p->corr = _mm512_sub_epi32(_mm512_setzero_si512(), s);
}

/* acc[m] += (sw · d_x) · lanes for the pair p (blocks 2p, 2p+1) of every row; a lone last block
 * (hi = 0) updates lanes 0-7 only */
TGT INL void update_(const qdot_act *a, int M, int p, const wpair *w, int sgn, int hi, __m512 *acc) {
    const int np = (a->nb + 1) / 2;
    const __mmask64 bytes = hi ? ~(__mmask64)0 : (__mmask64)0xffffffffu;
#pragma GCC unroll 8
    for (int m = 0; m < M; m++) {
        const __m512i x = _mm512_maskz_loadu_epi8(bytes, a->q + ((size_t)m * a->nb + 2 * p) * QDOT_BLOCK);
        const __m512i s = sgn ? _mm512_dpbusd_epi32(w->corr, _mm512_xor_si512(x, _mm512_set1_epi8((char)0x80)), w->w)
                              : _mm512_dpbusd_epi32(_mm512_setzero_si512(), w->w, x);
        const __m512 scale = _mm512_mul_ps(w->sw, _mm512_loadu_ps(a->dx2 + ((size_t)m * np + p) * 16));
        const __m512 xs = _mm512_cvtepi32_ps(s);
        acc[m] = hi ? _mm512_fmadd_ps(scale, xs, acc[m]) : _mm512_mask3_fmadd_ps(scale, xs, acc[m], 0x00ff);
    }
}

/* the min terms of block b for the group's rows: accm += mw · ds (one lane per row) */
TGT INL __m256 mins_(const qdot_act *a, int M, int b, float mw, __m256 accm) {
    const __m256 ds = _mm256_maskz_loadu_ps((__mmask8)((1u << M) - 1), a->dsT + (size_t)b * a->ldT);
    return _mm256_add_ps(accm, _mm256_mul_ps(_mm256_set1_ps(mw), ds));
}

/* the first 4 bytes of a block: its f16 d (and, for Q4_1, its f16 m) */
TGT INL int head32_(const uint8_t *b) { return b ? (int)(b[0] | b[1] << 8 | (unsigned)b[2] << 16 | (unsigned)b[3] << 24) : 0; }

/* Q4_0, Q4_1 or Q8_0 blocks b0 and b1 (b1 NULL: none); the four f16 scales d0, m0, d1, m1 converted in
 * one instruction (exact, as the scalar conversion: the same bits) */
TGT INL void pair_32_(int type, const uint8_t *b0, const uint8_t *b1, wpair *p) {
    const __m256i z = _mm256_setzero_si256();
    if (type == QUANT_Q8_0) {
        p->w = cat_si_(_mm256_loadu_si256((const __m256i *)(b0 + 2)), b1 ? _mm256_loadu_si256((const __m256i *)(b1 + 2)) : z);
    } else if (type == QUANT_Q4_0) {
        const __m256i e = _mm256_set1_epi8(8);
        p->w = b1 ? _mm512_sub_epi8(nibbles_pair_(b0 + 2, b1 + 2), _mm512_set1_epi8(8))
                  : cat_si_(_mm256_sub_epi8(nibbles16_(b0 + 2), e), z);
    } else {
        p->w = b1 ? nibbles_pair_(b0 + 4, b1 + 4) : cat_si_(nibbles16_(b0 + 4), z);
    }
    const __m128 dm = _mm_cvtph_ps(_mm_setr_epi32(head32_(b0), head32_(b1), 0, 0)); /* d0 m0 d1 m1 */
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    p->sw = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(dm));
    if (type == QUANT_Q4_1) p->mw0 = _mm_cvtss_f32(_mm_shuffle_ps(dm, dm, 1)), p->mw1 = _mm_cvtss_f32(_mm_shuffle_ps(dm, dm, 3));
    if (type != QUANT_Q4_1) signed_(p);
}

TGT INL void row_32_(int type, const uint8_t *b, const qdot_act *a, int M, __m512 *acc, __m256 *am) {
    const size_t ts = type == QUANT_Q8_0 ? 34 : type == QUANT_Q4_0 ? 18 : 20;
    const int sgn = type != QUANT_Q4_1;
    wpair p;
    int ib = 0;
    for (; ib + 1 < a->nb; ib += 2, b += 2 * ts) {
        _mm_prefetch((const char *)b + QDOT_PREFETCH, _MM_HINT_T0);
        pair_32_(type, b, b + ts, &p);
        update_(a, M, ib / 2, &p, sgn, 1, acc);
        if (!sgn) am[0] = mins_(a, M, ib, p.mw0, am[0]), am[1] = mins_(a, M, ib + 1, p.mw1, am[1]);
    }
    if (ib < a->nb) {
        pair_32_(type, b, NULL, &p);
        update_(a, M, ib / 2, &p, sgn, 0, acc);
        if (!sgn) am[0] = mins_(a, M, ib, p.mw0, am[0]);
    }
}

TGT INL void row_q4_k_(const uint8_t *b, const qdot_act *a, int M, __m512 *acc, __m256 *am) {
    const __m256i m4 = _mm256_set1_epi8(15);
    wpair p;
    for (int ib = 0; ib < a->nb; ib += 8, b += 144) {
        const float d = f16_(b), dmin = f16_(b + 2);
        for (int j = 0; j < 8; j += 2) {
            _mm_prefetch((const char *)b + QDOT_PREFETCH + 32 * j, _MM_HINT_T0);
            const __m256i v = _mm256_loadu_si256((const __m256i *)(b + 16 + 16 * j));
            uint8_t sc0, mn0, sc1, mn1;
            qdot_k4_scale_min(j, b + 4, &sc0, &mn0);
            qdot_k4_scale_min(j + 1, b + 4, &sc1, &mn1);
            p.w = cat_si_(_mm256_and_si256(v, m4), _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
            const float s0 = d * (float)sc0, s1 = d * (float)sc1;
            p.sw = quads_(s0, s0, s1, s1);
            update_(a, M, (ib + j) / 2, &p, 0, 1, acc);
            am[0] = mins_(a, M, ib + j, -(dmin * (float)mn0), am[0]);
            am[1] = mins_(a, M, ib + j + 1, -(dmin * (float)mn1), am[1]);
        }
    }
}

TGT INL void row_q6_k_(const uint8_t *b, const qdot_act *a, int M, __m512 *acc) {
    const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3), c32 = _mm256_set1_epi8(32);
    wpair p;
    for (int ib = 0; ib < a->nb; ib += 8, b += 210) {
        const float d = f16_(b + 208);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b + 64 * h;
            const int8_t *sc = (const int8_t *)(b + 192 + 8 * h);
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h));
            for (int k = 0; k < 4; k += 2) { /* sub-blocks k (even: set 0) and k+1 (odd: set 1) */
                _mm_prefetch((const char *)b + QDOT_PREFETCH + 128 * h + 32 * k, _MM_HINT_T0);
                __m256i w[2];
                for (int i = 0; i < 2; i++) {
                    const int kk = k + i;
                    const __m256i lo = kk & 1 ? l1 : l0;
                    const __m256i low4 = _mm256_and_si256(kk < 2 ? lo : _mm256_srli_epi16(lo, 4), m4);
                    const __m256i high2 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * kk)), m2);
                    w[i] = _mm256_sub_epi8(_mm256_or_si256(low4, _mm256_slli_epi16(high2, 4)), c32);
                }
                p.w = cat_si_(w[0], w[1]);
                p.sw = quads_(d * (float)sc[2 * k], d * (float)sc[2 * k + 1], d * (float)sc[2 * k + 2],
                              d * (float)sc[2 * k + 3]);
                signed_(&p);
                update_(a, M, (ib + 4 * h + k) / 2, &p, 1, 1, acc);
            }
        }
    }
}

/* ((h0+h4)+(h2+h6)) + ((h1+h5)+(h3+h7)) with h = set 0 + set 1: qdot_rows_generic's order */
TGT INL float hsum_(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

/* weight rows [r0, r1) for M (1..8, a constant once inlined) activation rows */
TGT INL void rows_m_(int type, const uint8_t *W, size_t rb, int r0, int r1, const qdot_act *a, int M, float *out,
                     int ldo) {
    __m512 acc[QDOT_GROUP_ROWS];
    __m256 am[2];
    float mins[8];
    for (int r = r0; r < r1; r++) {
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) acc[m] = _mm512_setzero_ps();
        am[0] = am[1] = _mm256_setzero_ps();
        const uint8_t *b = W + (size_t)r * rb;
        switch (type) {
        case QUANT_Q4_0: row_32_(QUANT_Q4_0, b, a, M, acc, am); break;
        case QUANT_Q4_1: row_32_(QUANT_Q4_1, b, a, M, acc, am); break;
        case QUANT_Q8_0: row_32_(QUANT_Q8_0, b, a, M, acc, am); break;
        case QUANT_Q4_K: row_q4_k_(b, a, M, acc, am); break;
        default: row_q6_k_(b, a, M, acc); break;
        }
        _mm256_storeu_ps(mins, _mm256_add_ps(am[0], am[1]));
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) out[(size_t)m * ldo + r] = hsum_(acc[m]) + mins[m];
    }
}

/* any number of activation rows, in ceil(M/8) groups of nearly equal size (10 rows: 5 + 5, so the
 * weight side of a pair serves 5 rows each time, not 8 then 2); no output sees the other rows, so
 * the grouping changes no bits */
TGT void qdot_rows_vnni(int type, const uint8_t *W, size_t rb, int r0, int r1, const qdot_act *a, float *out, int ldo) {
    const int ng = (a->M + QDOT_GROUP_ROWS - 1) / QDOT_GROUP_ROWS;
    for (int g = 0, m0 = 0; g < ng; g++) {
        const int n = (a->M - m0) / (ng - g); /* the rows left, shared by the groups left */
        const qdot_act sub = qdot_act_rows(a, m0);
        float *o = out + (size_t)m0 * ldo;
        switch (n) {
#define QDOT_GROUP(k) case k: rows_m_(type, W, rb, r0, r1, &sub, k, o, ldo); break;
            QDOT_GROUP(1) QDOT_GROUP(2) QDOT_GROUP(3) QDOT_GROUP(4) QDOT_GROUP(5) QDOT_GROUP(6) QDOT_GROUP(7)
            default: rows_m_(type, W, rb, r0, r1, &sub, 8, o, ldo); break;
#undef QDOT_GROUP
        }
        m0 += n;
    }
}
#endif
