/* AVX-512 helpers shared by the hand-written kernels of core/ (gemm_bf16.c, ops_attention.c,
 * attention_bf16.c, ops_vmath.c). They are compiled with a target attribute, not -march, so that
 * every build (the sanitizer one included) contains them; callers check lorac_isa_active() first. */
#ifndef LORAC_SIMD_AVX512_H
#define LORAC_SIMD_AVX512_H

#include "core/simd.h"

#ifdef LORAC_X86_KERNELS
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LORAC_TGT_AVX512 __attribute__((target("avx512f,fma")))

/* exp of 16 lanes (simd.h): vscalefps scales by 2^n with one rounding */
LORAC_TGT_AVX512 static inline __m512 simd_exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(SIMD_EXP_HI)), _mm512_set1_ps(SIMD_EXP_LO));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(SIMD_EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(SIMD_EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(SIMD_EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(SIMD_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SIMD_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SIMD_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SIMD_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SIMD_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(SIMD_EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* In-register transpose of a 16x16 block of 32-bit elements: r[i] lane j becomes r[j] lane i. */
LORAC_TGT_AVX512 static inline void simd_transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int a = 0; a < 8; a++) {
        t[2 * a] = _mm512_unpacklo_epi32(r[2 * a], r[2 * a + 1]);
        t[2 * a + 1] = _mm512_unpackhi_epi32(r[2 * a], r[2 * a + 1]);
    }
    /* u[4b+e]: in 128-bit block q, rows 4b..4b+3 at column 4q+e */
    for (int b = 0; b < 4; b++) {
        u[4 * b + 0] = _mm512_unpacklo_epi64(t[4 * b], t[4 * b + 2]);
        u[4 * b + 1] = _mm512_unpackhi_epi64(t[4 * b], t[4 * b + 2]);
        u[4 * b + 2] = _mm512_unpacklo_epi64(t[4 * b + 1], t[4 * b + 3]);
        u[4 * b + 3] = _mm512_unpackhi_epi64(t[4 * b + 1], t[4 * b + 3]);
    }
    /* for each e, a 4x4 transpose of 128-bit blocks gives columns e, 4+e, 8+e, 12+e */
    for (int e = 0; e < 4; e++) {
        __m512i x0 = _mm512_shuffle_i32x4(u[e], u[4 + e], _MM_SHUFFLE(1, 0, 1, 0));
        __m512i x1 = _mm512_shuffle_i32x4(u[e], u[4 + e], _MM_SHUFFLE(3, 2, 3, 2));
        __m512i x2 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], _MM_SHUFFLE(1, 0, 1, 0));
        __m512i x3 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], _MM_SHUFFLE(3, 2, 3, 2));
        r[e] = _mm512_shuffle_i32x4(x0, x2, _MM_SHUFFLE(2, 0, 2, 0));
        r[4 + e] = _mm512_shuffle_i32x4(x0, x2, _MM_SHUFFLE(3, 1, 3, 1));
        r[8 + e] = _mm512_shuffle_i32x4(x1, x3, _MM_SHUFFLE(2, 0, 2, 0));
        r[12 + e] = _mm512_shuffle_i32x4(x1, x3, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* two floats -> one 32-bit pair (bf16(lo) | bf16(hi) << 16), rounded to nearest even: the operand
 * word of VDPBF16PS, which multiplies lane pairs */
static inline uint32_t simd_bf16_pair(float lo, float hi) {
    uint32_t a, b;
    memcpy(&a, &lo, 4);
    memcpy(&b, &hi, 4);
    a += 0x7fffu + ((a >> 16) & 1u);
    b += 0x7fffu + ((b >> 16) & 1u);
    return (a >> 16) | (b & 0xffff0000u);
}

/* 16 lanes at once */
LORAC_TGT_AVX512 static inline __m512i simd_bf16_pair16(__m512 lo, __m512 hi) {
    const __m512i half = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    __m512i a = _mm512_castps_si512(lo), b = _mm512_castps_si512(hi);
    a = _mm512_add_epi32(a, _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(a, 16), one)));
    b = _mm512_add_epi32(b, _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(b, 16), one)));
    return _mm512_or_si512(_mm512_srli_epi32(a, 16), _mm512_and_si512(b, _mm512_set1_epi32((int)0xffff0000u)));
}

/* 32 consecutive floats p[0..31] -> 16 pairs (p[0],p[1]), (p[2],p[3]), ... */
LORAC_TGT_AVX512 static inline __m512i simd_bf16_pairs_contig(const float *p) {
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512 x = _mm512_loadu_ps(p), y = _mm512_loadu_ps(p + 16);
    return simd_bf16_pair16(_mm512_permutex2var_ps(x, ev, y), _mm512_permutex2var_ps(x, od, y));
}

/* The store of a 4-row x 64-column register tile (the attention tile kernels): rows [0, mr) of C,
 * lanes masked by km, C = alpha·acc + beta·C; beta 0 never reads C. */
LORAC_TGT_AVX512 static inline void simd_store_tile4x64(float *C, int ldc, int mr, __m512 acc[4][4],
                                                        const __mmask16 km[4], float alpha, float beta) {
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int i = 0; i < mr; i++) {
        float *ci = C + (size_t)i * ldc;
        for (int v = 0; v < 4; v++) {
            __m512 r = _mm512_mul_ps(acc[i][v], va);
            if (beta != 0.0f) r = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(km[v], ci + 16 * v), vb, r);
            _mm512_mask_storeu_ps(ci + 16 * v, km[v], r);
        }
    }
}

/* lanes [0, n) of a 16-lane mask, n clamped to [0, 16] */
static inline __mmask16 simd_mask16(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}
#endif

#endif
