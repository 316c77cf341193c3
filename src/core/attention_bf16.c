/* bf16 tile products for attention (VDPBF16PS, fp32 accumulation), used when the matmul precision
 * is bf16: q, k, v, the output gradient and the probability tiles are rounded to bf16 as they are
 * paired into words (attention_tiles.h); scores, softmax statistics and every sum stay fp32. Half
 * the instructions of the fp32 tiles, so about 1.7x the speed after the conversions. */
#include "core/attention_tiles.h"

#include "core/simd_avx512.h"
#include "lorac/ops.h"

#include <stddef.h>

#ifdef LORAC_X86_KERNELS
#define TGT_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

int at_bf16_ready(int HS) {
    return HS <= AT_BF16_MAXHS && op_matmul_precision() == OP_PREC_BF16 && op_bf16_supported();
}

TGT_BF16 void at_rows_pairs(uint32_t *dst, int ldd, const float *src, int lds, int rows, int k) {
    const int kp = (k + 1) / 2;
    for (int i = 0; i < rows; i++) {
        const float *r = src + (size_t)i * lds;
        uint32_t *d = dst + (size_t)i * ldd;
        int p = 0;
        for (; 2 * p + 32 <= k; p += 16) _mm512_storeu_si512(d + p, simd_bf16_pairs_contig(r + 2 * p));
        for (; p < kp; p++) d[p] = simd_bf16_pair(r[2 * p], 2 * p + 1 < k ? r[2 * p + 1] : 0.0f);
    }
}

TGT_BF16 void at_cols_pairs(uint32_t *dst, int ldd, const float *src, int lds, int k, int n) {
    const int kp = (k + 1) / 2;
    for (int p = 0; p < kp; p++) {
        const float *r0 = src + (size_t)(2 * p) * lds, *r1 = r0 + lds;
        const int odd = 2 * p + 1 >= k; /* the last pair of an odd k has no second row */
        uint32_t *d = dst + (size_t)p * ldd;
        for (int j = 0; j < n; j += 16) {
            const __mmask16 m = simd_mask16(n - j);
            __m512 lo = _mm512_maskz_loadu_ps(m, r0 + j), hi = odd ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, r1 + j);
            _mm512_mask_storeu_epi32(d + j, m, simd_bf16_pair16(lo, hi));
        }
    }
}

TGT_BF16 void at_words_transpose(uint32_t *dst, int ldd, const uint32_t *src, int lds, int rows, int cols) {
    for (int r0 = 0; r0 < rows; r0 += 16)
        for (int c0 = 0; c0 < cols; c0 += 16) {
            const __mmask16 mc = simd_mask16(cols - c0), mr = simd_mask16(rows - r0);
            __m512i t[16];
            for (int i = 0; i < 16; i++)
                t[i] = r0 + i < rows ? _mm512_maskz_loadu_epi32(mc, src + (size_t)(r0 + i) * lds + c0) : _mm512_setzero_si512();
            simd_transpose16(t);
            for (int q = 0; q < 16 && c0 + q < cols; q++) _mm512_mask_storeu_epi32(dst + (size_t)(c0 + q) * ldd + r0, mr, t[q]);
        }
}

/* 4 rows x 64 columns of C in 16 registers, as the fp32 tile kernel, one pair word per step */
TGT_BF16 static void tile_bf16_4x64_(int m, int n, int kp, float alpha, const uint32_t *A, int ars, int acs,
                                     const uint32_t *B, int ldb, float beta, float *C, int ldc) {
    const __mmask16 k0 = simd_mask16(n), k1 = simd_mask16(n - 16), k2 = simd_mask16(n - 32), k3 = simd_mask16(n - 48);
    for (int i0 = 0; i0 < m; i0 += 4) {
        const int mr = m - i0 < 4 ? m - i0 : 4;
        /* rows past mr repeat row 0: computed, never stored */
        const uint32_t *a0 = A + (size_t)i0 * ars, *a1 = mr > 1 ? a0 + ars : a0, *a2 = mr > 2 ? a0 + 2 * (size_t)ars : a0,
                       *a3 = mr > 3 ? a0 + 3 * (size_t)ars : a0;
        __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00,
               c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        for (int p = 0; p < kp; p++) {
            const uint32_t *b = B + (size_t)p * ldb;
            const __m512bh b0 = (__m512bh)_mm512_maskz_loadu_epi32(k0, b), b1 = (__m512bh)_mm512_maskz_loadu_epi32(k1, b + 16),
                           b2 = (__m512bh)_mm512_maskz_loadu_epi32(k2, b + 32), b3 = (__m512bh)_mm512_maskz_loadu_epi32(k3, b + 48);
            const size_t pa = (size_t)p * acs;
            __m512bh x;
#define AT_ROW(ap, r0, r1, r2, r3)                       \
    x = (__m512bh)_mm512_set1_epi32((int)ap[pa]);       \
    r0 = _mm512_dpbf16_ps(r0, x, b0);                    \
    r1 = _mm512_dpbf16_ps(r1, x, b1);                    \
    r2 = _mm512_dpbf16_ps(r2, x, b2);                    \
    r3 = _mm512_dpbf16_ps(r3, x, b3);
            AT_ROW(a0, c00, c01, c02, c03) AT_ROW(a1, c10, c11, c12, c13)
            AT_ROW(a2, c20, c21, c22, c23) AT_ROW(a3, c30, c31, c32, c33)
#undef AT_ROW
        }
        __m512 acc[4][4] = {{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}};
        const __mmask16 km[4] = {k0, k1, k2, k3};
        simd_store_tile4x64(C + (size_t)i0 * ldc, ldc, mr, acc, km, alpha, beta);
    }
}

void at_tile_bf16(int m, int n, int kp, float alpha, const uint32_t *A, int ars, int acs, const uint32_t *B, int ldb,
                  float beta, float *C, int ldc) {
    for (int j0 = 0; j0 < n; j0 += 64)
        tile_bf16_4x64_(m, n - j0 < 64 ? n - j0 : 64, kp, alpha, A, ars, acs, B + j0, ldb, beta, C + j0, ldc);
}

#else /* no AVX-512 kernels in this build: the fp32 tiles run */

int at_bf16_ready(int HS) {
    (void)HS;
    return 0;
}
void at_rows_pairs(uint32_t *dst, int ldd, const float *src, int lds, int rows, int k) {
    (void)dst, (void)ldd, (void)src, (void)lds, (void)rows, (void)k;
}
void at_cols_pairs(uint32_t *dst, int ldd, const float *src, int lds, int k, int n) {
    (void)dst, (void)ldd, (void)src, (void)lds, (void)k, (void)n;
}
void at_words_transpose(uint32_t *dst, int ldd, const uint32_t *src, int lds, int rows, int cols) {
    (void)dst, (void)ldd, (void)src, (void)lds, (void)rows, (void)cols;
}
void at_tile_bf16(int m, int n, int kp, float alpha, const uint32_t *A, int ars, int acs, const uint32_t *B, int ldb,
                  float beta, float *C, int ldc) {
    (void)m, (void)n, (void)kp, (void)alpha, (void)A, (void)ars, (void)acs, (void)B, (void)ldb, (void)beta, (void)C,
        (void)ldc;
}
#endif
