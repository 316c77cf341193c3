/* Vector exp, tanh, erf and max over arrays. libm's expf/tanhf are scalar calls (about 5-10 ns each); the
 * training step evaluates ~10^8 of them (attention probabilities, the 50k-way softmax, GELU), so the
 * AVX-512 and AVX2 kernel levels run them 16 (or 2 x 8) at a time with the exp of simd.h: max error
 * ~2 ulp (measured against expf in test_grad). The two levels give the same bits, sums included
 * (16 partial sums reduced in one order, simd_sum16). The generic level calls libm and sums in
 * order, so its results differ from theirs by a few ulp; none of them depends on the thread count. */
#include "lorac/ops.h"

#include "core/simd_avx2.h"
#include "core/simd_avx512.h"

#include <math.h>
#include <stddef.h>

#ifdef LORAC_X86_KERNELS
/* tanh(x) = sign(x)·(1 - 2/(exp(2|x|) + 1)): absolute error ~1e-7, no overflow (exp saturates) */
LORAC_TGT_AVX512 static inline __m512 tanh16_(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512i sx = _mm512_and_si512(_mm512_castps_si512(x), sign);
    __m512 e = simd_exp16(_mm512_mul_ps(_mm512_abs_ps(x), two));
    __m512 t = _mm512_sub_ps(one, _mm512_div_ps(two, _mm512_add_ps(e, one)));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sx));
}

LORAC_TGT_AVX2 static inline __m256 tanh8_(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f), sign = _mm256_set1_ps(-0.0f);
    __m256 sx = _mm256_and_ps(x, sign);
    __m256 e = simd_exp8(_mm256_mul_ps(_mm256_andnot_ps(sign, x), two));
    __m256 t = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(e, one)));
    return _mm256_or_ps(t, sx);
}

LORAC_TGT_AVX512 static float vexp_sum_avx512_(float *out, const float *inp, float scale, float shift, size_t n) {
    __m512 acc = _mm512_setzero_ps(), vs = _mm512_set1_ps(scale), vsh = _mm512_set1_ps(shift);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = simd_exp16(_mm512_fmsub_ps(_mm512_loadu_ps(inp + i), vs, vsh));
        _mm512_storeu_ps(out + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        const __mmask16 k = simd_mask16((int)(n - i));
        __m512 e = simd_exp16(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(k, inp + i), vs, vsh));
        _mm512_mask_storeu_ps(out + i, k, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, e));
    }
    float t[16];
    _mm512_storeu_ps(t, acc);
    return simd_sum16(t);
}

/* lanes 0-7 and 8-15 of the AVX-512 loop in two registers */
LORAC_TGT_AVX2 static float vexp_sum_avx2_(float *out, const float *inp, float scale, float shift, size_t n) {
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m256 vs = _mm256_set1_ps(scale), vsh = _mm256_set1_ps(shift);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int h = 0; h < 2; h++) {
            __m256 e = simd_exp8(_mm256_fmsub_ps(_mm256_loadu_ps(inp + i + 8 * h), vs, vsh));
            _mm256_storeu_ps(out + i + 8 * h, e);
            acc[h] = _mm256_add_ps(acc[h], e);
        }
    for (int h = 0; i + 8 * h < n; h++) { /* the tail, masked lanes adding +0 as maskz_mov does */
        const __m256i k = simd_mask8((int)(n - i - 8 * h));
        __m256 e = simd_exp8(_mm256_fmsub_ps(_mm256_maskload_ps(inp + i + 8 * h, k), vs, vsh));
        _mm256_maskstore_ps(out + i + 8 * h, k, e);
        acc[h] = _mm256_add_ps(acc[h], _mm256_and_ps(e, _mm256_castsi256_ps(k)));
    }
    float t[16];
    _mm256_storeu_ps(t, acc[0]);
    _mm256_storeu_ps(t + 8, acc[1]);
    return simd_sum16(t);
}

LORAC_TGT_AVX512 static void vtanh_avx512_(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 k = simd_mask16((int)(n - i < 16 ? n - i : 16));
        _mm512_mask_storeu_ps(out + i, k, tanh16_(_mm512_maskz_loadu_ps(k, inp + i)));
    }
}

LORAC_TGT_AVX2 static void vtanh_avx2_(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i += 8) {
        const __m256i k = simd_mask8((int)(n - i < 8 ? n - i : 8));
        _mm256_maskstore_ps(out + i, k, tanh8_(_mm256_maskload_ps(inp + i, k)));
    }
}

/* erf(x) = sign(x)·(1 - t·(a1 + t·(a2 + t·(a3 + t·(a4 + t·a5))))·exp(-x²)), t = 1/(1 + p·|x|):
 * Abramowitz & Stegun 7.1.26, absolute error 1.5e-7 in exact arithmetic, under 4e-7 in float
 * (3.9e-7 measured over [-6, 6] by test_grad: the roundings of t·q·exp(-x²) near 1). An
 * absolute bound is what GELU needs (x·Φ(x) carries it as a relative one); for |x| < 1e-3 the
 * relative error of erf itself is large, so op_verf is not a general-purpose erf. */
#define ERF_P 0.3275911f
#define ERF_A1 0.254829592f
#define ERF_A2 (-0.284496736f)
#define ERF_A3 1.421413741f
#define ERF_A4 (-1.453152027f)
#define ERF_A5 1.061405429f

LORAC_TGT_AVX512 static inline __m512 erf16_(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512i sx = _mm512_and_si512(_mm512_castps_si512(x), sign);
    __m512 a = _mm512_abs_ps(x);
    __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(ERF_P), a, one));
    __m512 q = _mm512_fmadd_ps(t, _mm512_set1_ps(ERF_A5), _mm512_set1_ps(ERF_A4));
    q = _mm512_fmadd_ps(t, q, _mm512_set1_ps(ERF_A3));
    q = _mm512_fmadd_ps(t, q, _mm512_set1_ps(ERF_A2));
    q = _mm512_fmadd_ps(t, q, _mm512_set1_ps(ERF_A1));
    __m512 e = simd_exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), a), a));
    __m512 r = _mm512_fnmadd_ps(_mm512_mul_ps(t, q), e, one);
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r), sx));
}

LORAC_TGT_AVX2 static inline __m256 erf8_(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    __m256 sx = _mm256_and_ps(x, sign);
    __m256 a = _mm256_andnot_ps(sign, x);
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(ERF_P), a, one));
    __m256 q = _mm256_fmadd_ps(t, _mm256_set1_ps(ERF_A5), _mm256_set1_ps(ERF_A4));
    q = _mm256_fmadd_ps(t, q, _mm256_set1_ps(ERF_A3));
    q = _mm256_fmadd_ps(t, q, _mm256_set1_ps(ERF_A2));
    q = _mm256_fmadd_ps(t, q, _mm256_set1_ps(ERF_A1));
    __m256 e = simd_exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), a), a));
    __m256 r = _mm256_fnmadd_ps(_mm256_mul_ps(t, q), e, one);
    return _mm256_or_ps(r, sx);
}

LORAC_TGT_AVX512 static void verf_avx512_(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 k = simd_mask16((int)(n - i < 16 ? n - i : 16));
        _mm512_mask_storeu_ps(out + i, k, erf16_(_mm512_maskz_loadu_ps(k, inp + i)));
    }
}

LORAC_TGT_AVX2 static void verf_avx2_(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i += 8) {
        const __m256i k = simd_mask8((int)(n - i < 8 ? n - i : 8));
        _mm256_maskstore_ps(out + i, k, erf8_(_mm256_maskload_ps(inp + i, k)));
    }
}

/* max(a, b) returns b when a is a NaN: the running max skips NaNs; masked lanes hold -inf */
LORAC_TGT_AVX512 static float vmax_avx512_(const float *inp, size_t n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(_mm512_loadu_ps(inp + i), m);
    if (i < n) {
        const __mmask16 k = simd_mask16((int)(n - i));
        m = _mm512_mask_max_ps(m, k, _mm512_maskz_loadu_ps(k, inp + i), m);
    }
    return _mm512_reduce_max_ps(m);
}

LORAC_TGT_AVX2 static float vmax_avx2_(const float *inp, size_t n) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m = ninf;
    for (size_t i = 0; i < n; i += 8) {
        const __m256i k = simd_mask8((int)(n - i < 8 ? n - i : 8));
        m = _mm256_max_ps(_mm256_blendv_ps(ninf, _mm256_maskload_ps(inp + i, k), _mm256_castsi256_ps(k)), m);
    }
    float t[8], r = -INFINITY;
    _mm256_storeu_ps(t, m);
    for (int j = 0; j < 8; j++) r = t[j] > r ? t[j] : r;
    return r;
}
#endif

float op_vexp_sum(float *out, const float *inp, float scale, float shift, size_t n) {
#ifdef LORAC_X86_KERNELS
    const lorac_isa isa = lorac_isa_active();
    if (isa >= LORAC_ISA_AVX512) return vexp_sum_avx512_(out, inp, scale, shift, n);
    if (isa >= LORAC_ISA_AVX2) return vexp_sum_avx2_(out, inp, scale, shift, n);
#endif
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) {
        out[i] = expf(inp[i] * scale - shift);
        s += out[i];
    }
    return s;
}

void op_vtanh(float *out, const float *inp, size_t n) {
#ifdef LORAC_X86_KERNELS
    const lorac_isa isa = lorac_isa_active();
    if (isa >= LORAC_ISA_AVX512) {
        vtanh_avx512_(out, inp, n);
        return;
    }
    if (isa >= LORAC_ISA_AVX2) {
        vtanh_avx2_(out, inp, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) out[i] = tanhf(inp[i]);
}

void op_verf(float *out, const float *inp, size_t n) {
#ifdef LORAC_X86_KERNELS
    const lorac_isa isa = lorac_isa_active();
    if (isa >= LORAC_ISA_AVX512) {
        verf_avx512_(out, inp, n);
        return;
    }
    if (isa >= LORAC_ISA_AVX2) {
        verf_avx2_(out, inp, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) out[i] = erff(inp[i]);
}

float op_vmax(const float *inp, size_t n) {
#ifdef LORAC_X86_KERNELS
    const lorac_isa isa = lorac_isa_active();
    if (isa >= LORAC_ISA_AVX512) return vmax_avx512_(inp, n);
    if (isa >= LORAC_ISA_AVX2) return vmax_avx2_(inp, n);
#endif
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++) m = inp[i] > m ? inp[i] : m;
    return m;
}
