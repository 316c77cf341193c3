/* Direct decode products (qdot.h) at the AVX2 kernel level: the body (qdot_x86_body.h) with the
 * block products done by vpmaddubsw + vpmaddwd, which sum the same 4 bytes into each int32 lane
 * exactly (the int16 pairs stay below 2·128·127 = 32512: no saturation), so it gives
 * qdot_rows_generic's bits. A signed weight goes in as |w| with the activation's sign flipped where
 * w < 0 (vpsignb), as the instruction takes an unsigned first operand. The AVX-512 level is
 * qdot_avx512.c (two blocks per instruction). */
#include "core/qdot.h"

#include "core/simd.h"
#include "lorac/quant.h"

#ifdef LORAC_X86_KERNELS
#include <immintrin.h>

#define QK_TGT __attribute__((target("avx2,fma,f16c")))
#define QK(name) name##_avx2
#define QK_DOT_U(w, x) _mm256_madd_epi16(_mm256_maddubs_epi16((w), (x)), _mm256_set1_epi16(1))
#define QK_DOT_S(w, x) QK_DOT_U(_mm256_sign_epi8((w), (w)), _mm256_sign_epi8((x), (w)))
#include "core/qdot_x86_body.h"

/* qdot_quantize_block_generic's arithmetic 8 lanes at a time: max is exact in any order, the product
 * and the rounding trick (v + 1.5·2^23, low mantissa bits) are the same float and integer steps */
QK_TGT int qdot_quantize_block_avx2(const float *xb, int8_t *q, float *d) {
    const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
    __m256 x[4], m = zero;
    for (int i = 0; i < 4; i++) {
        x[i] = _mm256_loadu_ps(xb + 8 * i);
        m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, x[i]), zero), m); /* NaN lanes give 0 */
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    *d = _mm_cvtss_f32(h) / 127.0f;
    const __m256 id = _mm256_set1_ps(*d != 0.0f ? 1.0f / *d : 0.0f);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127), mant = _mm256_set1_epi32(0x007fffff);
    __m256i v[4], sum = _mm256_setzero_si256();
    for (int i = 0; i < 4; i++) {
        const __m256 t = _mm256_add_ps(_mm256_mul_ps(x[i], id), _mm256_set1_ps(12582912.f));
        v[i] = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(t), mant), _mm256_set1_epi32(0x00400000));
        v[i] = _mm256_min_epi32(_mm256_max_epi32(v[i], lo), hi);
        sum = _mm256_add_epi32(sum, v[i]);
    }
    /* int32 -> int8 in element order: packs interleave 128-bit lanes, the permute puts them back */
    const __m256i p16a = _mm256_packs_epi32(v[0], v[1]), p16b = _mm256_packs_epi32(v[2], v[3]);
    const __m256i p8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p16a, p16b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, p8);
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}
#endif
