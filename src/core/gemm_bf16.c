/* GEMM with bf16 inputs and fp32 accumulation (AVX512-BF16 VDPBF16PS), for the frozen-weight matmuls.
 *
 * Why our own: this OpenBLAS (0.3.21) has no sbgemm, and its fp32 sgemm is already near the FMA peak
 * on these cores; VDPBF16PS does twice the multiply-adds per instruction, so rounding the operands to
 * bf16 while packing (fp32 accumulators, fp32 C) roughly doubles what a training step's GEMMs can do.
 * The loop nest is the classic Goto/BLIS one: pack a KP×NC block of B once (shared by the threads),
 * pack an MC×KP block of A per thread, run an MR×NR register-tile kernel over them. K is consumed in
 * pairs: VDPBF16PS multiplies lane pairs (k, k+1), so packed elements are 32-bit (bf16 k, bf16 k+1).
 * Results differ from fp32 by the operands' rounding (relative 2^-8 each); see ops.h for the bound. */
#include "lorac/ops.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/simd_avx512.h"
#ifdef LORAC_X86_KERNELS
#define LORAC_HAVE_BF16_KERNEL 1
#endif

#define MR 14   /* rows of C per register tile: 14 x 2 zmm accumulators + 2 B vectors + 1 broadcast */
#define NR 32   /* columns of C per register tile (two zmm) */
#define KP 384  /* k-pairs per packed block: K = 768 is one pass, so C is read and written once */
#define MC 336  /* rows of A per packed block (MC x KP x 4 bytes = 516 KiB, in a core's L2) */
#define NC 3072 /* columns of B per packed block (KP x NC x 4 bytes = 4.5 MiB, in L3) */

/* the avx512bf16 kernel level (base.h): the CPU has AVX512-BF16 and LORAC_ISA does not cap it */
int op_bf16_supported(void) {
#ifdef LORAC_HAVE_BF16_KERNEL
    return lorac_isa_active() >= LORAC_ISA_AVX512BF16;
#else
    return 0;
#endif
}

#ifdef LORAC_HAVE_BF16_KERNEL
#define TGT __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* Rows src[0..n) (n <= 16, K-contiguous floats), pairs [g0, g0+16) of each, transposed into
 * dst[q * stride + i] for q < 16, i < n (lanes >= n are not written when n < 16). */
TGT static inline void pack_pairs16(uint32_t *dst, int stride, const float *const *src, int n, int g0) {
    __m512i r[16];
    for (int i = 0; i < 16; i++) r[i] = i < n ? simd_bf16_pairs_contig(src[i] + 2 * g0) : _mm512_setzero_si512();
    simd_transpose16(r);
    const __mmask16 m = simd_mask16(n);
    for (int q = 0; q < 16; q++) _mm512_mask_storeu_epi32(dst + (size_t)q * stride, m, r[q]);
}

/* C(mr x nr) = alpha * Apanel·Bpanel + beta * C (+ bias per column, if not NULL); the panels hold kp
 * pairs, zero-padded to MR / NR */
TGT static void kernel_14x32(int kp, const uint32_t *restrict a, const uint32_t *restrict b, float *c,
                             int ldc, float alpha, float beta, const float *bias, int mr, int nr) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
           c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00,
           c80 = c00, c81 = c00, c90 = c00, c91 = c00, ca0 = c00, ca1 = c00, cb0 = c00, cb1 = c00, cc0 = c00,
           cc1 = c00, cd0 = c00, cd1 = c00;
    for (int k = 0; k < kp; k++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16), x;
#define ROW(i, r0, r1)                                 \
    x = (__m512bh)_mm512_set1_epi32((int)a[i]);       \
    r0 = _mm512_dpbf16_ps(r0, x, b0);                  \
    r1 = _mm512_dpbf16_ps(r1, x, b1);
        ROW(0, c00, c01) ROW(1, c10, c11) ROW(2, c20, c21) ROW(3, c30, c31) ROW(4, c40, c41)
        ROW(5, c50, c51) ROW(6, c60, c61) ROW(7, c70, c71) ROW(8, c80, c81) ROW(9, c90, c91)
        ROW(10, ca0, ca1) ROW(11, cb0, cb1) ROW(12, cc0, cc1) ROW(13, cd0, cd1)
#undef ROW
        a += MR;
        b += NR;
    }
    __m512 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}, {c60, c61},
                         {c70, c71}, {c80, c81}, {c90, c91}, {ca0, ca1}, {cb0, cb1}, {cc0, cc1}, {cd0, cd1}};
    const __mmask16 m0 = simd_mask16(nr), m1 = simd_mask16(nr - 16);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta), b0 = _mm512_setzero_ps(), b1 = b0;
    if (bias) {
        b0 = _mm512_maskz_loadu_ps(m0, bias);
        b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
    for (int i = 0; i < mr; i++) {
        float *ci = c + (size_t)i * ldc;
        __m512 r0 = _mm512_fmadd_ps(acc[i][0], va, b0), r1 = _mm512_fmadd_ps(acc[i][1], va, b1);
        if (beta != 0.0f) { /* beta 0 never reads C, which may hold garbage */
            r0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, ci), vb, r0);
            r1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, ci + 16), vb, r1);
        }
        _mm512_mask_storeu_ps(ci, m0, r0);
        _mm512_mask_storeu_ps(ci + 16, m1, r1);
    }
}

/* Pack rows [i0, i0+mc) x pairs [p0, p0+kpc) of A (row-major, lda) into MR-row panels, pair-major
 * (pa[k*MR + i]), rows past mc zero. */
TGT static void pack_a(uint32_t *pa, const float *A, int lda, int K, int i0, int mc, int p0, int kpc) {
    for (int ir = 0; ir < mc; ir += MR, pa += (size_t)MR * kpc) {
        int mr = mc - ir < MR ? mc - ir : MR;
        const float *rows[16];
        for (int i = 0; i < mr; i++) rows[i] = A + (size_t)(i0 + ir + i) * lda;
        int k = 0;
        for (; k + 16 <= kpc && 2 * (p0 + k + 16) <= K; k += 16) {
            pack_pairs16(pa + (size_t)k * MR, MR, rows, mr, p0 + k);
            if (mr < MR)
                for (int q = 0; q < 16; q++)
                    for (int i = mr; i < MR; i++) pa[(size_t)(k + q) * MR + i] = 0;
        }
        for (; k < kpc; k++) {
            int g = 2 * (p0 + k);
            for (int i = 0; i < MR; i++)
                pa[(size_t)k * MR + i] = i < mr ? simd_bf16_pair(g < K ? rows[i][g] : 0.0f, g + 1 < K ? rows[i][g + 1] : 0.0f) : 0;
        }
    }
}

/* Pack one NR-column panel (columns j0.., nr of them) x pairs [p0, p0+kpc) of op(B).
 * transb 0: B is (K, N) row-major; 1: B is stored (N, K), i.e. op(B) = Bᵀ. */
TGT static void pack_b_panel(uint32_t *pb, const float *B, int ldb, int transb, int K, int p0, int kpc,
                             int j0, int nr) {
    if (!transb) {
        for (int k = 0; k < kpc; k++) {
            int g = 2 * (p0 + k);
            const float *r0 = B + (size_t)g * ldb + j0, *r1 = r0 + ldb;
            for (int h = 0; h < 2; h++) {
                const __mmask16 m = simd_mask16(nr - 16 * h);
                __m512 lo = _mm512_maskz_loadu_ps(m, r0 + 16 * h);
                __m512 hi = g + 1 < K ? _mm512_maskz_loadu_ps(m, r1 + 16 * h) : _mm512_setzero_ps();
                _mm512_store_si512(pb + k * NR + 16 * h, simd_bf16_pair16(lo, hi));
            }
        }
        return;
    }
    /* Bᵀ storage: each column of op(B) is a K-contiguous row; 16 columns at a time are transposed */
    const float *cols[NR];
    for (int j = 0; j < nr; j++) cols[j] = B + (size_t)(j0 + j) * ldb;
    for (int h = 0; h < NR; h += 16) {
        int n = nr - h;
        n = n < 0 ? 0 : n > 16 ? 16 : n;
        int k = 0;
        for (; n == 16 && k + 16 <= kpc && 2 * (p0 + k + 16) <= K; k += 16)
            pack_pairs16(pb + (size_t)k * NR + h, NR, cols + h, 16, p0 + k);
        for (; k < kpc; k++) {
            int g = 2 * (p0 + k);
            for (int j = 0; j < 16; j++)
                pb[(size_t)k * NR + h + j] =
                    j < n ? simd_bf16_pair(g < K ? cols[h + j][g] : 0.0f, g + 1 < K ? cols[h + j][g + 1] : 0.0f) : 0;
        }
    }
}

/* Packing buffers are kept per thread and only grow (at most MC x KP and KP x NC words, 5 MiB):
 * a fresh multi-MiB malloc per call is fresh pages from the kernel, and the page faults and zeroing
 * cost a few percent of a training step. Slot 0 holds a worker's A block, slot 1 the calling
 * thread's B block (shared with its team). They live as long as the thread. */
static _Thread_local uint32_t *tl_buf[2];
static _Thread_local size_t tl_cap[2];

static uint32_t *thread_buffer(int slot, size_t n) {
    if (n > tl_cap[slot]) {
        free(tl_buf[slot]);
        tl_cap[slot] = 0;
        tl_buf[slot] = aligned_alloc(64, (n * sizeof(uint32_t) + 63) / 64 * 64);
        if (tl_buf[slot]) tl_cap[slot] = n;
    }
    return tl_buf[slot];
}

/* A pre-packed op(B) (op_bf16_pack) holds, for each block of KP pairs starting at pair p, all
 * ceil(N/NR) panels of kpc x NR words: the block the driver below packs for (jc, p) starts at
 * p·npan·NR + jc·kpc. */
static size_t prepacked_block(int N, int p, int kpc, int jc) {
    size_t npan = (size_t)(N + NR - 1) / NR;
    return (size_t)p * npan * NR + (size_t)jc * kpc;
}

/* Bp: op(B) pre-packed (B, ldb, transb unused), or NULL to pack blocks of B as they are needed. */
static int gemm_bf16_run(int transb, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, const uint32_t *Bp, float beta, const float *bias, float *C,
                         int ldc) {
    const int KPT = (K + 1) / 2;
    int ncmax = N < NC ? N : NC;
    ncmax = (ncmax + NR - 1) / NR * NR;
    uint32_t *pbuf = Bp ? NULL : thread_buffer(1, (size_t)KP * ncmax);
    if (!Bp && !pbuf) return -1;
    int fail = 0;
#pragma omp parallel if (!omp_in_parallel())
    {
        uint32_t *pa = thread_buffer(0, (size_t)(MC + MR) * KP);
        if (!pa) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp barrier
        int T = omp_get_num_threads();
        /* row blocks of whole MR tiles, a multiple of the thread count and as equal as the tiles
         * allow, so that no thread waits long at the end of a block loop */
        int ntiles = (M + MR - 1) / MR;
        int nblk = T * ((ntiles * MR + T * MC - 1) / (T * MC));
        if (nblk > ntiles) nblk = ntiles;
        for (int jc = 0; jc < N && !fail; jc += NC) {
            int nc = N - jc < NC ? N - jc : NC, npan = (nc + NR - 1) / NR;
            for (int p = 0; p < KPT; p += KP) {
                int kpc = KPT - p < KP ? KPT - p : KP;
                float bet = p == 0 ? beta : 1.0f;
                const float *bia = p == 0 ? bias : NULL;
                const uint32_t *pb = Bp ? Bp + prepacked_block(N, p, kpc, jc) : pbuf;
                if (!Bp) {
#pragma omp for schedule(static)
                    for (int q = 0; q < npan; q++) {
                        int jr = q * NR;
                        pack_b_panel(pbuf + (size_t)jr * kpc, B, ldb, transb, K, p, kpc, jc + jr,
                                     nc - jr < NR ? nc - jr : NR);
                    }
                }
#pragma omp for schedule(static, 1)
                for (int bi = 0; bi < nblk; bi++) {
                    int t0 = (int)((long)bi * ntiles / nblk), t1 = (int)((long)(bi + 1) * ntiles / nblk);
                    int ic = t0 * MR, mc = (t1 * MR < M ? t1 * MR : M) - ic;
                    pack_a(pa, A, lda, K, ic, mc, p, kpc);
                    for (int jr = 0; jr < nc; jr += NR)
                        for (int ir = 0; ir < mc; ir += MR)
                            kernel_14x32(kpc, pa + (size_t)ir * kpc, pb + (size_t)jr * kpc,
                                         C + (size_t)(ic + ir) * ldc + jc + jr, ldc, alpha, bet,
                                         bia ? bia + jc + jr : NULL, mc - ir < MR ? mc - ir : MR,
                                         nc - jr < NR ? nc - jr : NR);
                }
            }
        }
    }
    return fail ? -1 : 0;
}
#endif

int op_gemm_bf16(int transb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                 int ldb, float beta, const float *bias, float *C, int ldc) {
#ifdef LORAC_HAVE_BF16_KERNEL
    if (M <= 0 || N <= 0) return 0;
    if (K <= 0) { /* nothing to multiply: C = beta * C + bias */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = (beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j]) + (bias ? bias[j] : 0.0f);
        return 0;
    }
    if (!op_bf16_supported()) return -1;
    return gemm_bf16_run(transb, M, N, K, alpha, A, lda, B, ldb, NULL, beta, bias, C, ldc);
#else
    (void)transb; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb;
    (void)beta; (void)bias; (void)C; (void)ldc;
    return -1;
#endif
}

size_t op_bf16_pack_words(int K, int N) {
    if (K <= 0 || N <= 0) return 0;
    return (size_t)((K + 1) / 2) * (size_t)((N + NR - 1) / NR) * NR;
}

int op_bf16_pack(uint32_t *dst, int transb, int K, int N, const float *B, int ldb) {
#ifdef LORAC_HAVE_BF16_KERNEL
    if (K <= 0 || N <= 0) return 0;
    if (!op_bf16_supported()) return -1;
    const int KPT = (K + 1) / 2, npan = (N + NR - 1) / NR;
    /* every (pair block, panel) is independent; panels of one block are neighbours in memory */
#pragma omp parallel for collapse(2) schedule(static) if (!omp_in_parallel())
    for (int p = 0; p < KPT; p += KP) {
        for (int q = 0; q < npan; q++) {
            int kpc = KPT - p < KP ? KPT - p : KP, jr = q * NR;
            pack_b_panel(dst + prepacked_block(N, p, kpc, jr), B, ldb, transb, K, p, kpc, jr,
                         N - jr < NR ? N - jr : NR);
        }
    }
    return 0;
#else
    (void)dst; (void)transb; (void)K; (void)N; (void)B; (void)ldb;
    return -1;
#endif
}

int op_gemm_bf16_packed(int M, int N, int K, float alpha, const float *A, int lda, const uint32_t *Bp, float beta,
                        const float *bias, float *C, int ldc) {
#ifdef LORAC_HAVE_BF16_KERNEL
    if (M <= 0 || N <= 0) return 0;
    if (K <= 0) return op_gemm_bf16(0, M, N, K, alpha, A, lda, NULL, 0, beta, bias, C, ldc);
    if (!op_bf16_supported()) return -1;
    return gemm_bf16_run(0, M, N, K, alpha, A, lda, NULL, 0, Bp, beta, bias, C, ldc);
#else
    (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)Bp; (void)beta; (void)bias; (void)C; (void)ldc;
    return -1;
#endif
}
