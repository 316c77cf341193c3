/* Vector exp and tanh over arrays. libm's expf/tanhf are scalar calls (about 5-10 ns each); the
 * training step evaluates ~10^8 of them (attention probabilities, the 50k-way softmax, GELU), so
 * with AVX-512 (compiled in with -march=native) they run 16 at a time: Cephes' degree-6 exp
 * polynomial after reduction by ln 2, scaled by 2^n with vscalefps (exact underflow to 0, so
 * exp(-inf) = 0). Max error ~2 ulp (measured against expf in test_grad). Without AVX-512 the same
 * functions call libm, so results differ by a few ulp across machines, never across thread counts. */
#include "lorac/ops.h"

#include <math.h>
#include <stddef.h>

#if defined(__AVX512F__)
#include <immintrin.h>

static inline __m512 exp16_(__m512 x) {
    /* below -104 the result is 0 in float; the clamp also keeps -inf out of the reduction */
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.72283f)), _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

float op_vexp_sum(float *out, const float *inp, float scale, float shift, size_t n) {
    __m512 acc = _mm512_setzero_ps(), vs = _mm512_set1_ps(scale), vsh = _mm512_set1_ps(shift);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp16_(_mm512_fmsub_ps(_mm512_loadu_ps(inp + i), vs, vsh));
        _mm512_storeu_ps(out + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        __m512 e = exp16_(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(k, inp + i), vs, vsh));
        _mm512_mask_storeu_ps(out + i, k, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(acc);
}

void op_vtanh(float *out, const float *inp, size_t n) {
    /* tanh(x) = sign(x)·(1 - 2/(exp(2|x|) + 1)): absolute error ~1e-7, no overflow (exp saturates) */
    const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    size_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        __m512 x = _mm512_maskz_loadu_ps(k, inp + i);
        __m512i sx = _mm512_and_si512(_mm512_castps_si512(x), sign);
        __m512 ax = _mm512_abs_ps(x);
        __m512 e = exp16_(_mm512_mul_ps(ax, two));
        __m512 t = _mm512_sub_ps(one, _mm512_div_ps(two, _mm512_add_ps(e, one)));
        t = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sx));
        _mm512_mask_storeu_ps(out + i, k, t);
    }
}

float op_vmax(const float *inp, size_t n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(_mm512_loadu_ps(inp + i), m); /* a NaN in the first operand yields m */
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        m = _mm512_mask_max_ps(m, k, _mm512_maskz_loadu_ps(k, inp + i), m);
    }
    return _mm512_reduce_max_ps(m);
}

#else

float op_vexp_sum(float *out, const float *inp, float scale, float shift, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) {
        out[i] = expf(inp[i] * scale - shift);
        s += out[i];
    }
    return s;
}

void op_vtanh(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = tanhf(inp[i]);
}

float op_vmax(const float *inp, size_t n) {
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++) m = inp[i] > m ? inp[i] : m;
    return m;
}

#endif
