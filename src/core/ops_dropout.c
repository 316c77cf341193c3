/* Inverted dropout. The mask is a function of one draw from the run's rng and the element index
 * (a counter-based stream: splitmix64 of key + i), so it is reproducible, independent of the
 * thread count, and filled by all threads. The AVX-512 and AVX2 levels compute the same stream 8
 * (or 4) 64-bit lanes at a time, with the 64-bit products built from 32-bit ones (AVX-512F has no
 * 64-bit multiply without DQ): the same bits as the scalar loop. */
#include "lorac/ops.h"

#include "core/simd_avx2.h"
#include "core/simd_avx512.h"

#include <stddef.h>
#include <string.h>

/* below this many values a parallel region costs more than it saves */
#define DROPOUT_PAR_MIN 65536
/* values per parallel chunk (a multiple of 16) */
#define DROPOUT_CHUNK 4096

#define SM_GOLDEN 0x9E3779B97F4A7C15ull
#define SM_M1 0xBF58476D1CE4E5B9ull
#define SM_M2 0x94D049BB133111EBull

/* uniform in [0, 1) with 24 bits from element i of the stream keyed by key */
static inline float stream_uniform(uint64_t key, uint64_t i) {
    uint64_t z = key + (i + 1) * SM_GOLDEN;
    z = (z ^ (z >> 30)) * SM_M1;
    z = (z ^ (z >> 27)) * SM_M2;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

static void dropout_scalar_(float *out, uint8_t *mask, const float *inp, float p, float scale, uint64_t key,
                            size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; i++) {
        uint8_t keep = stream_uniform(key, i) >= p;
        mask[i] = keep;
        out[i] = keep ? inp[i] * scale : 0.0f;
    }
}

#ifdef LORAC_X86_KERNELS
/* a·m mod 2^64 per lane: lo·lo + ((hi(a)·lo(m) + lo(a)·hi(m)) << 32) */
LORAC_TGT_AVX512 static inline __m512i mul64x8_(__m512i a, uint64_t m) {
    const __m512i ml = _mm512_set1_epi64((long long)(m & 0xffffffffu)), mh = _mm512_set1_epi64((long long)(m >> 32));
    __m512i cross = _mm512_add_epi64(_mm512_mul_epu32(_mm512_srli_epi64(a, 32), ml), _mm512_mul_epu32(a, mh));
    return _mm512_add_epi64(_mm512_mul_epu32(a, ml), _mm512_slli_epi64(cross, 32));
}

/* the top 24 bits of splitmix64's output for the 8 counters z, in the low halves of the lanes */
LORAC_TGT_AVX512 static inline __m256i mix24x8_(__m512i z) {
    z = mul64x8_(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), SM_M1);
    z = mul64x8_(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), SM_M2);
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
    return _mm512_cvtepi64_epi32(_mm512_srli_epi64(z, 40));
}

LORAC_TGT_AVX512 static void dropout_avx512_(float *out, uint8_t *mask, const float *inp, float p, float scale,
                                             uint64_t key, size_t i0, size_t i1) {
    const __m512i step = _mm512_set1_epi64((long long)(16 * SM_GOLDEN));
    const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    const __m512 vp = _mm512_set1_ps(p), vs = _mm512_set1_ps(scale), ulp = _mm512_set1_ps(1.0f / 16777216.0f);
    /* z for elements i0 .. i0+7 and i0+8 .. i0+15: key + (i + 1)·golden */
    __m512i zlo = _mm512_add_epi64(_mm512_set1_epi64((long long)(key + (i0 + 1) * SM_GOLDEN)),
                                   mul64x8_(lane, SM_GOLDEN));
    __m512i zhi = _mm512_add_epi64(zlo, _mm512_set1_epi64((long long)(8 * SM_GOLDEN)));
    size_t i = i0;
    for (; i + 16 <= i1; i += 16) {
        __m512i r = _mm512_inserti64x4(_mm512_castsi256_si512(mix24x8_(zlo)), mix24x8_(zhi), 1);
        __mmask16 k = _mm512_cmp_ps_mask(_mm512_mul_ps(_mm512_cvtepi32_ps(r), ulp), vp, _CMP_GE_OQ);
        _mm512_storeu_ps(out + i, _mm512_maskz_mul_ps(k, _mm512_loadu_ps(inp + i), vs));
        _mm_storeu_si128((__m128i *)(mask + i), _mm512_cvtepi32_epi8(_mm512_maskz_set1_epi32(k, 1)));
        zlo = _mm512_add_epi64(zlo, step), zhi = _mm512_add_epi64(zhi, step);
    }
    dropout_scalar_(out, mask, inp, p, scale, key, i, i1);
}

LORAC_TGT_AVX2 static inline __m256i mul64x4_(__m256i a, uint64_t m) {
    const __m256i ml = _mm256_set1_epi64x((long long)(m & 0xffffffffu)), mh = _mm256_set1_epi64x((long long)(m >> 32));
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), ml), _mm256_mul_epu32(a, mh));
    return _mm256_add_epi64(_mm256_mul_epu32(a, ml), _mm256_slli_epi64(cross, 32));
}

LORAC_TGT_AVX2 static inline __m256i mix24x4_(__m256i z) {
    z = mul64x4_(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), SM_M1);
    z = mul64x4_(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), SM_M2);
    z = _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
    return _mm256_srli_epi64(z, 40); /* < 2^24: the value sits in each lane's low 32 bits */
}

LORAC_TGT_AVX2 static void dropout_avx2_(float *out, uint8_t *mask, const float *inp, float p, float scale,
                                         uint64_t key, size_t i0, size_t i1) {
    const __m256i step = _mm256_set1_epi64x((long long)(8 * SM_GOLDEN));
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m256 vp = _mm256_set1_ps(p), vs = _mm256_set1_ps(scale), ulp = _mm256_set1_ps(1.0f / 16777216.0f);
    __m256i zlo = _mm256_add_epi64(_mm256_set1_epi64x((long long)(key + (i0 + 1) * SM_GOLDEN)),
                                   mul64x4_(_mm256_setr_epi64x(0, 1, 2, 3), SM_GOLDEN));
    __m256i zhi = _mm256_add_epi64(zlo, _mm256_set1_epi64x((long long)(4 * SM_GOLDEN)));
    size_t i = i0;
    for (; i + 8 <= i1; i += 8) {
        __m256i lo = _mm256_permutevar8x32_epi32(mix24x4_(zlo), even);
        __m256i hi = _mm256_permutevar8x32_epi32(mix24x4_(zhi), even);
        __m256i r = _mm256_permute2x128_si256(lo, hi, 0x20);
        __m256 keep = _mm256_cmp_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(r), ulp), vp, _CMP_GE_OQ);
        _mm256_storeu_ps(out + i, _mm256_and_ps(keep, _mm256_mul_ps(_mm256_loadu_ps(inp + i), vs)));
        int bits = _mm256_movemask_ps(keep);
        for (int j = 0; j < 8; j++) mask[i + j] = (uint8_t)((bits >> j) & 1);
        zlo = _mm256_add_epi64(zlo, step), zhi = _mm256_add_epi64(zhi, step);
    }
    dropout_scalar_(out, mask, inp, p, scale, key, i, i1);
}
#endif

static void dropout_range_(float *out, uint8_t *mask, const float *inp, float p, float scale, uint64_t key,
                           size_t i0, size_t i1) {
#ifdef LORAC_X86_KERNELS
    const lorac_isa isa = lorac_isa_active();
    if (isa >= LORAC_ISA_AVX512) {
        dropout_avx512_(out, mask, inp, p, scale, key, i0, i1);
        return;
    }
    if (isa >= LORAC_ISA_AVX2) {
        dropout_avx2_(out, mask, inp, p, scale, key, i0, i1);
        return;
    }
#endif
    dropout_scalar_(out, mask, inp, p, scale, key, i0, i1);
}

void op_dropout_forward(float *out, uint8_t *mask, const float *inp, float p, size_t n, lorac_rng *rng) {
    // inp, out, mask are (n)
    if (p <= 0.0f) {
        if (out != inp) memmove(out, inp, n * sizeof(float));
        return;
    }
    /* keep with probability 1-p; p >= 1 drops everything (and the scale is never used) */
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    uint64_t key = lorac_rng_u64(rng);
    size_t nchunk = (n + DROPOUT_CHUNK - 1) / DROPOUT_CHUNK;
#pragma omp parallel for schedule(static) if (n > DROPOUT_PAR_MIN)
    for (size_t c = 0; c < nchunk; c++) {
        size_t i0 = c * DROPOUT_CHUNK, i1 = i0 + DROPOUT_CHUNK < n ? i0 + DROPOUT_CHUNK : n;
        dropout_range_(out, mask, inp, p, scale, key, i0, i1);
    }
}

void op_dropout_backward(float *dinp, const float *dout, const uint8_t *mask, float p, size_t n) {
    if (p <= 0.0f) {
#pragma omp parallel for simd schedule(static) if (n > DROPOUT_PAR_MIN)
        for (size_t i = 0; i < n; i++) dinp[i] += dout[i];
        return;
    }
    if (p >= 1.0f) return; /* out was the constant 0 */
    float scale = 1.0f / (1.0f - p);
    // out = inp·mask/(1-p)
#pragma omp parallel for simd schedule(static) if (n > DROPOUT_PAR_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] += mask[i] ? dout[i] * scale : 0.0f;
}
