/* AVX2+FMA helpers for the kernels of core/ that also have an AVX-512 version (ops_vmath.c,
 * ops_attention.c). As simd_avx512.h: target attributes, so every build contains them; callers check
 * lorac_isa_active() first. Each helper computes what its AVX-512 counterpart computes, lane for lane
 * and bit for bit, on 8 lanes. */
#ifndef LORAC_SIMD_AVX2_H
#define LORAC_SIMD_AVX2_H

#include "core/simd.h"

#ifdef LORAC_X86_KERNELS
#include <immintrin.h>

#define LORAC_TGT_AVX2 __attribute__((target("avx2,fma")))

/* lanes [0, n) of 8 as a vmaskmov mask (all bits set in a lane that is in), n clamped to [0, 8] */
LORAC_TGT_AVX2 static inline __m256i simd_mask8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* exp of 8 lanes (simd.h), the same bits as simd_exp16: 2^n (n in [-150, 128] after the clamp) is
 * applied as two normal powers of two, 2^floor(n/2) exactly and then 2^(n - floor(n/2)) with the
 * one rounding that vscalefps does (into subnormals, or to 0). */
LORAC_TGT_AVX2 static inline __m256 simd_exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(SIMD_EXP_HI)), _mm256_set1_ps(SIMD_EXP_LO));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(SIMD_EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(SIMD_EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(SIMD_EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(SIMD_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SIMD_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SIMD_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SIMD_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SIMD_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(SIMD_EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i ni = _mm256_cvtps_epi32(n), h = _mm256_srai_epi32(ni, 1), bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}
#endif

#endif
