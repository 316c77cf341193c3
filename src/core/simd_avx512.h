/* AVX-512 helpers shared by the hand-written kernels of core/ (gemm_bf16.c, ops_attention.c).
 * They are compiled with a target attribute, not -march, so that every build (the sanitizer one
 * included) contains them; callers check the CPU at run time before using them. */
#ifndef LORAC_SIMD_AVX512_H
#define LORAC_SIMD_AVX512_H

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LORAC_HAVE_AVX512_KERNELS 1
#include <immintrin.h>

#define LORAC_TGT_AVX512 __attribute__((target("avx512f")))

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

/* lanes [0, n) of a 16-lane mask, n clamped to [0, 16] */
static inline __mmask16 simd_mask16(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}
#endif

#endif
