/* Multi-head self-attention (causal or bidirectional, grouped-query, padding mask), tiled as in
 * FlashAttention-2: a tile of AT_BQ queries meets a tile of AT_BK keys through small tile products
 * (scores, then probabilities · values) with an online softmax, so at most one AT_BQ x AT_BK tile
 * of scores exists per thread; causal tiles above the diagonal are skipped. Only a log-sum-exp
 * per query row is kept for the backward, which recomputes the scores tile by tile, once.
 * The tile products are lorac's own kernel at the AVX-512 and AVX2 levels (a 64x64x64 product is
 * too small for OpenBLAS's blocking and its copies of transposed operands; the two levels give the
 * same bits: each element is one FMA chain over k in order), cblas at the generic level (one call
 * per tile inside the parallel loop, so OpenBLAS runs it on the calling thread); every level sums
 * in the same order on any thread count. Under bf16 matmul precision they are bf16 products
 * (attention_bf16.c) of operands paired into words tile by tile. */
#include "lorac/ops.h"

#include "core/attention_tiles.h"
#include "core/simd_avx2.h"
#include "core/simd_avx512.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>

/* words of one bf16 tile operand: the largest is (AT_BK / 2) x AT_BF16_MAXHS or HSP x AT_BK */
#define AT_WORDS (AT_BK * AT_BF16_MAXHS / 2)

/* ---- tile products ----
 * C(m x n) = alpha·A·B + beta·C with A(i,p) = A[i·ars + p·acs] (a transposed A is only other
 * strides: the kernel broadcasts A one element at a time) and B row-major (k x n, ldb). */
#ifdef LORAC_X86_KERNELS
/* 4 rows x 64 columns of C in 16 registers; n <= 64, lanes past n masked (never read or written) */
LORAC_TGT_AVX512 static void tile_mm_avx512_(int m, int n, int k, float alpha, const float *A, int ars, int acs,
                                             const float *B, int ldb, float beta, float *C, int ldc) {
    const __mmask16 k0 = simd_mask16(n), k1 = simd_mask16(n - 16), k2 = simd_mask16(n - 32), k3 = simd_mask16(n - 48);
    for (int i0 = 0; i0 < m; i0 += 4) {
        const int mr = m - i0 < 4 ? m - i0 : 4;
        /* rows past mr repeat row 0: computed, never stored */
        const float *a0 = A + (size_t)i0 * ars, *a1 = mr > 1 ? a0 + ars : a0, *a2 = mr > 2 ? a0 + 2 * (size_t)ars : a0,
                    *a3 = mr > 3 ? a0 + 3 * (size_t)ars : a0;
        __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00,
               c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        for (int p = 0; p < k; p++) {
            const float *b = B + (size_t)p * ldb;
            const __m512 b0 = _mm512_maskz_loadu_ps(k0, b), b1 = _mm512_maskz_loadu_ps(k1, b + 16),
                         b2 = _mm512_maskz_loadu_ps(k2, b + 32), b3 = _mm512_maskz_loadu_ps(k3, b + 48);
            const size_t pa = (size_t)p * acs;
            __m512 x;
#define AT_ROW(ap, r0, r1, r2, r3)            \
    x = _mm512_set1_ps(ap[pa]);               \
    r0 = _mm512_fmadd_ps(x, b0, r0);          \
    r1 = _mm512_fmadd_ps(x, b1, r1);          \
    r2 = _mm512_fmadd_ps(x, b2, r2);          \
    r3 = _mm512_fmadd_ps(x, b3, r3);
            AT_ROW(a0, c00, c01, c02, c03) AT_ROW(a1, c10, c11, c12, c13)
            AT_ROW(a2, c20, c21, c22, c23) AT_ROW(a3, c30, c31, c32, c33)
#undef AT_ROW
        }
        __m512 acc[4][4] = {{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}};
        const __mmask16 km[4] = {k0, k1, k2, k3};
        simd_store_tile4x64(C + (size_t)i0 * ldc, ldc, mr, acc, km, alpha, beta);
    }
}

/* 6 rows x 16 columns of C in 12 registers (of AVX2's 16); n <= 16, lanes past n masked (never read
 * or written). Each element is the AVX-512 kernel's FMA chain, so the bits are the same. */
LORAC_TGT_AVX2 static void tile_mm_avx2_(int m, int n, int k, float alpha, const float *A, int ars, int acs,
                                         const float *B, int ldb, float beta, float *C, int ldc) {
    const __m256i k0 = simd_mask8(n), k1 = simd_mask8(n - 8);
    for (int i0 = 0; i0 < m; i0 += 6) {
        const int mr = m - i0 < 6 ? m - i0 : 6;
        /* rows past mr repeat row 0: computed, never stored */
        const float *a0 = A + (size_t)i0 * ars, *a1 = mr > 1 ? a0 + ars : a0, *a2 = mr > 2 ? a0 + 2 * (size_t)ars : a0,
                    *a3 = mr > 3 ? a0 + 3 * (size_t)ars : a0, *a4 = mr > 4 ? a0 + 4 * (size_t)ars : a0,
                    *a5 = mr > 5 ? a0 + 5 * (size_t)ars : a0;
        __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
               c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        for (int p = 0; p < k; p++) {
            const float *b = B + (size_t)p * ldb;
            const __m256 b0 = _mm256_maskload_ps(b, k0), b1 = _mm256_maskload_ps(b + 8, k1);
            const size_t pa = (size_t)p * acs;
            __m256 x;
#define AT_ROW(ap, r0, r1)               \
    x = _mm256_broadcast_ss(ap + pa);    \
    r0 = _mm256_fmadd_ps(x, b0, r0);     \
    r1 = _mm256_fmadd_ps(x, b1, r1);
            AT_ROW(a0, c00, c01) AT_ROW(a1, c10, c11) AT_ROW(a2, c20, c21)
            AT_ROW(a3, c30, c31) AT_ROW(a4, c40, c41) AT_ROW(a5, c50, c51)
#undef AT_ROW
        }
        const __m256 acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
        const __m256i km[2] = {k0, k1};
        const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
        for (int i = 0; i < mr; i++) { /* as simd_store_tile4x64: C = alpha·acc + beta·C, beta 0 never reads C */
            float *ci = C + (size_t)(i0 + i) * ldc;
            for (int v = 0; v < 2; v++) {
                __m256 r = _mm256_mul_ps(acc[i][v], va);
                if (beta != 0.0f) r = _mm256_fmadd_ps(_mm256_maskload_ps(ci + 8 * v, km[v]), vb, r);
                _mm256_maskstore_ps(ci + 8 * v, km[v], r);
            }
        }
    }
}

/* dst (cols x AT_BK) = srcᵀ for src (rows x cols, lds), rows <= AT_BK, cols <= 64 */
LORAC_TGT_AVX512 static void tile_transpose_avx512_(float *dst, const float *src, int lds, int rows, int cols) {
    for (int j0 = 0; j0 < rows; j0 += 16)
        for (int d0 = 0; d0 < cols; d0 += 16) {
            const __mmask16 mc = simd_mask16(cols - d0);
            __m512i r[16];
            for (int i = 0; i < 16; i++)
                r[i] = j0 + i < rows ? _mm512_maskz_loadu_epi32(mc, src + (size_t)(j0 + i) * lds + d0) : _mm512_setzero_si512();
            simd_transpose16(r);
            const __mmask16 mr = simd_mask16(rows - j0);
            for (int q = 0; q < 16 && d0 + q < cols; q++) _mm512_mask_storeu_epi32(dst + (size_t)(d0 + q) * AT_BK + j0, mr, r[q]);
        }
}
#endif

static void tile_mm_(int m, int n, int k, float alpha, const float *A, int ars, int acs, const float *B, int ldb,
                     float beta, float *C, int ldc) {
    if (m <= 0 || n <= 0) return;
#ifdef LORAC_X86_KERNELS
    const lorac_isa isa = lorac_isa_active();
    if (isa >= LORAC_ISA_AVX512) {
        for (int j0 = 0; j0 < n; j0 += 64) /* head sizes past 64: column blocks */
            tile_mm_avx512_(m, n - j0 < 64 ? n - j0 : 64, k, alpha, A, ars, acs, B + j0, ldb, beta, C + j0, ldc);
        return;
    }
    if (isa >= LORAC_ISA_AVX2) {
        for (int j0 = 0; j0 < n; j0 += 16)
            tile_mm_avx2_(m, n - j0 < 16 ? n - j0 : 16, k, alpha, A, ars, acs, B + j0, ldb, beta, C + j0, ldc);
        return;
    }
#endif
    if (acs == 1)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, alpha, A, ars, B, ldb, beta, C, ldc);
    else /* A stored transposed: A(i,p) at A[p·acs + i] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, k, alpha, A, acs, B, ldb, beta, C, ldc);
}

/* C(m x n) = alpha·A·Bᵀ + beta·C for A (m x k, lda) and B (n x k, ldb), n <= AT_BK: B is transposed
 * into a stack tile 64 columns of k at a time, then multiplied as above. */
static void tile_mm_nt_(int m, int n, int k, float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                        float *C, int ldc) {
    float bt[64 * AT_BK];
    for (int d0 = 0; d0 < k; d0 += 64) {
        const int dc = k - d0 < 64 ? k - d0 : 64;
#ifdef LORAC_X86_KERNELS
        if (lorac_isa_active() >= LORAC_ISA_AVX512)
            tile_transpose_avx512_(bt, B + d0, ldb, n, dc);
        else
#endif
            for (int j = 0; j < n; j++)
                for (int d = 0; d < dc; d++) bt[(size_t)d * AT_BK + j] = B[(size_t)j * ldb + d0 + d];
        tile_mm_(m, n, dc, alpha, A + d0, lda, 1, bt, AT_BK, d0 ? 1.0f : beta, C, ldc);
    }
}

/* Sets the scores of keys that query row t0+i cannot see to -inf; a tile wholly visible is left
 * alone. s is (nq, AT_BK). */
static void mask_tile_(float *s, const uint8_t *pad, int t0, int nq, int j0, int nk, int causal) {
    int diag = causal && j0 + nk - 1 > t0;
    int padded = 0;
    if (pad)
        for (int j = 0; j < nk; j++) padded |= pad[j0 + j] == 0;
    if (!diag && !padded) return;
    for (int i = 0; i < nq; i++) {
        float *row = s + (size_t)i * AT_BK;
        if (padded)
            for (int j = 0; j < nk; j++)
                if (pad[j0 + j] == 0) row[j] = -INFINITY;
        /* causal: keys after t0 + i, a run to the end of the row */
        for (int j = diag && t0 + i + 1 - j0 > 0 ? t0 + i + 1 - j0 : diag ? 0 : nk; j < nk; j++) row[j] = -INFINITY;
    }
}

/* Keys [0, end) are what query rows t0..t0+nq-1 can see at most. */
static int key_end_(int t0, int nq, int T, int causal) { return causal ? t0 + nq : T; }

/* bf16: a key (or value) tile (nk x HS, stride KC) as the B operand of q·kᵀ: pair words along HS
 * (via tmp), transposed to HSP x AT_BK. */
static void keys_t_bf16_(uint32_t *kt, uint32_t *tmp, const float *kp, int KC, int nk, int HS) {
    const int HSP = (HS + 1) / 2;
    at_rows_pairs(tmp, HSP, kp, KC, nk, HS);
    at_words_transpose(kt, AT_BK, tmp, HSP, nk, HSP);
}

/* Row strides: QC for q (and dq), OC for out (and dout), KC for k and v (and dk, dv). */
static void attention_forward_(float *out, float *lse, const float *q, const float *k, const float *v,
                               const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS, int causal, int QC,
                               int OC, int KC) {
    const int group = NH / NKV, NQT = (T + AT_BQ - 1) / AT_BQ, bf = at_bf16_ready(HS), HSP = (HS + 1) / 2;
    const float scale = 1.0f / sqrtf((float)HS);
    /* tasks (b, h, query tile) are independent; causal tiles differ in work, hence dynamic */
#pragma omp parallel for collapse(3) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int qi = 0; qi < NQT; qi++) {
                float s[AT_BQ * AT_BK], m[AT_BQ], l[AT_BQ];
                uint32_t qw[AT_WORDS], kt[AT_WORDS], tw[AT_WORDS], vw[AT_WORDS]; /* bf16 operands */
                const int g = h / group, t0 = qi * AT_BQ, nq = T - t0 < AT_BQ ? T - t0 : AT_BQ;
                const uint8_t *pad = pad_mask ? pad_mask + (size_t)b * T : NULL;
                const float *qp = q + ((size_t)b * T + t0) * QC + (size_t)h * HS;
                float *op = out + ((size_t)b * T + t0) * OC + (size_t)h * HS;
                for (int i = 0; i < nq; i++) {
                    for (int d = 0; d < HS; d++) op[(size_t)i * OC + d] = 0.0f;
                    m[i] = -INFINITY;
                    l[i] = 0.0f;
                }
                if (bf) at_rows_pairs(qw, HSP, qp, QC, nq, HS);
                const int jend = key_end_(t0, nq, T, causal);
                for (int j0 = 0; j0 < jend; j0 += AT_BK) {
                    const int nk = jend - j0 < AT_BK ? jend - j0 : AT_BK;
                    const float *kp = k + ((size_t)b * T + j0) * KC + (size_t)g * HS;
                    const float *vp = v + ((size_t)b * T + j0) * KC + (size_t)g * HS;
                    if (bf) {
                        keys_t_bf16_(kt, tw, kp, KC, nk, HS);
                        at_tile_bf16(nq, nk, HSP, scale, qw, HSP, 1, kt, AT_BK, 0.0f, s, AT_BK);
                    } else {
                        tile_mm_nt_(nq, nk, HS, scale, qp, QC, kp, KC, 0.0f, s, AT_BK);
                    }
                    mask_tile_(s, pad, t0, nq, j0, nk, causal);
                    /* online softmax: o accumulates Σ exp(s_j - m)·v_j and l = Σ exp(s_j - m) */
                    for (int i = 0; i < nq; i++) {
                        float *row = s + (size_t)i * AT_BK;
                        float mx = op_vmax(row, (size_t)nk), mnew = mx > m[i] ? mx : m[i];
                        if (mnew == -INFINITY) { /* nothing visible yet */
                            for (int j = 0; j < nk; j++) row[j] = 0.0f;
                            continue;
                        }
                        float r = expf(m[i] - mnew); /* 0 when m was -inf */
                        l[i] = l[i] * r + op_vexp_sum(row, row, 1.0f, mnew, (size_t)nk);
                        if (r != 1.0f)
                            for (int d = 0; d < HS; d++) op[(size_t)i * OC + d] *= r;
                        m[i] = mnew;
                    }
                    if (bf) { /* o += p·v, pairs along the keys */
                        at_rows_pairs(tw, AT_BK / 2, s, AT_BK, nq, nk);
                        at_cols_pairs(vw, HS, vp, KC, nk, HS);
                        at_tile_bf16(nq, HS, (nk + 1) / 2, 1.0f, tw, AT_BK / 2, 1, vw, HS, 1.0f, op, OC);
                    } else {
                        tile_mm_(nq, HS, nk, 1.0f, s, AT_BK, 1, vp, KC, 1.0f, op, OC);
                    }
                }
                float *ls = lse + ((size_t)b * NH + h) * T + t0;
                for (int i = 0; i < nq; i++) {
                    if (l[i] > 0.0f) {
                        float inv = 1.0f / l[i];
                        for (int d = 0; d < HS; d++) op[(size_t)i * OC + d] *= inv;
                        ls[i] = m[i] + logf(l[i]);
                    } else {
                        ls[i] = -INFINITY; /* no visible key: out stays 0 */
                    }
                }
            }
        }
    }
}

/* The probabilities p = exp(s - lse) of a (query tile, key tile) pair into p (nq, AT_BK), and
 * when dp is given, ds = p·(dout·vᵀ - D) into dp, D = rowsum(dout·out) (so dp becomes ds).
 * bf16 when kt is given: kt, vt are the key and value tiles from keys_t_bf16_, tw scratch. */
static void probs_tile_(float *p, float *dp, const float *qp, const float *kp, const float *vp, const float *dop,
                        const uint32_t *kt, const uint32_t *vt, uint32_t *tw, const float *ls, const float *Dv,
                        const uint8_t *pad, int t0, int nq, int j0, int nk, int QC, int OC, int KC, int HS, float scale,
                        int causal) {
    const int HSP = (HS + 1) / 2;
    if (kt) {
        at_rows_pairs(tw, HSP, qp, QC, nq, HS);
        at_tile_bf16(nq, nk, HSP, 1.0f, tw, HSP, 1, kt, AT_BK, 0.0f, p, AT_BK);
    } else {
        tile_mm_nt_(nq, nk, HS, 1.0f, qp, QC, kp, KC, 0.0f, p, AT_BK);
    }
    mask_tile_(p, pad, t0, nq, j0, nk, causal);
    for (int i = 0; i < nq; i++) {
        float *row = p + (size_t)i * AT_BK;
        if (ls[i] == -INFINITY) { /* the row saw nothing: out was the constant 0 */
            for (int j = 0; j < nk; j++) row[j] = 0.0f;
            continue;
        }
        op_vexp_sum(row, row, scale, ls[i], (size_t)nk);
    }
    if (!dp) return;
    if (kt) {
        at_rows_pairs(tw, HSP, dop, OC, nq, HS);
        at_tile_bf16(nq, nk, HSP, 1.0f, tw, HSP, 1, vt, AT_BK, 0.0f, dp, AT_BK);
    } else {
        tile_mm_nt_(nq, nk, HS, 1.0f, dop, OC, vp, KC, 0.0f, dp, AT_BK);
    }
    for (int i = 0; i < nq; i++) {
        const float *pr = p + (size_t)i * AT_BK;
        float *dr = dp + (size_t)i * AT_BK;
        const float D = Dv[i];
#pragma omp simd
        for (int j = 0; j < nk; j++) dr[j] = pr[j] * (dr[j] - D);
    }
}

/* D = rowsum(dout · out) for nq rows (the softmax backward's Σ_j p_j·dp_j). */
static void rowdot_(float *Dv, const float *dop, const float *op, int nq, int OC, int HS) {
    for (int i = 0; i < nq; i++) {
        float acc = 0.0f;
        /* a vector sum (fixed order for a given HS): the scalar chain cost ~10% of a bf16 tile pair */
#pragma omp simd reduction(+ : acc)
        for (int d = 0; d < HS; d++) acc += dop[(size_t)i * OC + d] * op[(size_t)i * OC + d];
        Dv[i] = acc;
    }
}

/* One pass: a task per (batch row, kv head) owns the dk and dv rows of that head and the dq rows of
 * its query heads, so p and ds are computed once per (query tile, key tile) pair and feed all three
 * gradients, and every sum has a fixed order (key tiles ascending for dq; query heads, then query
 * tiles for dk and dv) whatever the thread count. */
static void attention_backward_(float *dq, float *dk, float *dv, const float *dout, const float *out,
                                const float *lse, const float *q, const float *k, const float *v,
                                const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS, int causal, int QC,
                                int OC, int KC) {
    if (!dq && !dk && !dv) return;
    const int group = NH / NKV;
    const int NQT = (T + AT_BQ - 1) / AT_BQ, NKT = (T + AT_BK - 1) / AT_BK;
    const float scale = 1.0f / sqrtf((float)HS);
    const int want_ds = dq || dk, bf = at_bf16_ready(HS);
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        for (int g = 0; g < NKV; g++) {
            float p[AT_BQ * AT_BK], ds[AT_BQ * AT_BK], Dv[AT_BQ];
            uint32_t kt[AT_WORDS], vt[AT_WORDS], kw[AT_WORDS], tw[AT_WORDS], cw[AT_WORDS]; /* bf16 operands */
            const uint8_t *pad = pad_mask ? pad_mask + (size_t)b * T : NULL;
            for (int kj = 0; kj < NKT; kj++) {
                const int j0 = kj * AT_BK, nk = T - j0 < AT_BK ? T - j0 : AT_BK;
                const size_t koff = ((size_t)b * T + j0) * KC + (size_t)g * HS;
                if (bf) { /* the key tile's operands, for all query heads and tiles below */
                    keys_t_bf16_(kt, tw, k + koff, KC, nk, HS);
                    keys_t_bf16_(vt, tw, v + koff, KC, nk, HS);
                    if (dq) at_cols_pairs(kw, HS, k + koff, KC, nk, HS);
                }
                for (int h = g * group; h < (g + 1) * group; h++) {
                    /* causal: query tiles that end before key j0 see none of these keys */
                    for (int qi = causal ? j0 / AT_BQ : 0; qi < NQT; qi++) {
                        const int t0 = qi * AT_BQ, nq = T - t0 < AT_BQ ? T - t0 : AT_BQ;
                        const size_t qoff = ((size_t)b * T + t0) * QC + (size_t)h * HS;
                        const size_t ooff = ((size_t)b * T + t0) * OC + (size_t)h * HS;
                        const float *ls = lse + ((size_t)b * NH + h) * T + t0;
                        if (want_ds) rowdot_(Dv, dout + ooff, out + ooff, nq, OC, HS);
                        probs_tile_(p, want_ds ? ds : NULL, q + qoff, k + koff, v + koff, dout + ooff, bf ? kt : NULL, vt,
                                    tw, ls, Dv, pad, t0, nq, j0, nk, QC, OC, KC, HS, scale, causal);
                        const int qp2 = (nq + 1) / 2, kp2 = (nk + 1) / 2; /* bf16: pairs of queries, of keys */
                        if (dv && bf) { /* dv += pᵀ · dout, pairs along the queries */
                            at_cols_pairs(tw, AT_BK, p, AT_BK, nq, nk);
                            at_cols_pairs(cw, HS, dout + ooff, OC, nq, HS);
                            at_tile_bf16(nk, HS, qp2, 1.0f, tw, 1, AT_BK, cw, HS, 1.0f, dv + koff, KC);
                        } else if (dv) {
                            tile_mm_(nk, HS, nq, 1.0f, p, 1, AT_BK, dout + ooff, OC, 1.0f, dv + koff, KC);
                        }
                        if (dk && bf) { /* dk += scale · dsᵀ · q */
                            at_cols_pairs(tw, AT_BK, ds, AT_BK, nq, nk);
                            at_cols_pairs(cw, HS, q + qoff, QC, nq, HS);
                            at_tile_bf16(nk, HS, qp2, scale, tw, 1, AT_BK, cw, HS, 1.0f, dk + koff, KC);
                        } else if (dk) {
                            tile_mm_(nk, HS, nq, scale, ds, 1, AT_BK, q + qoff, QC, 1.0f, dk + koff, KC);
                        }
                        if (dq && bf) { /* dq += scale · ds · k, pairs along the keys */
                            at_rows_pairs(tw, AT_BK / 2, ds, AT_BK, nq, nk);
                            at_tile_bf16(nq, HS, kp2, scale, tw, AT_BK / 2, 1, kw, HS, 1.0f, dq + qoff, QC);
                        } else if (dq) {
                            tile_mm_(nq, HS, nk, scale, ds, AT_BK, 1, k + koff, KC, 1.0f, dq + qoff, QC);
                        }
                    }
                }
            }
        }
    }
}

void op_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                          const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS, int causal) {
    // q, out are (B,T,NH*HS); k, v are (B,T,NKV*HS); pad_mask is (B,T) or NULL; lse is (B,NH,T)
    attention_forward_(out, lse, q, k, v, pad_mask, B, T, NH, NKV, HS, causal, NH * HS, NH * HS, NKV * HS);
}

void op_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out,
                           const float *lse, const float *q, const float *k, const float *v,
                           const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS,
                           int causal) {
    // dout, out, q, dq are (B,T,NH*HS); k, v, dk, dv are (B,T,NKV*HS); lse is (B,NH,T)
    attention_backward_(dq, dk, dv, dout, out, lse, q, k, v, pad_mask, B, T, NH, NKV, HS, causal, NH * HS, NH * HS,
                        NKV * HS);
}

void op_attention_qkv_forward(float *out, float *lse, const float *qkv, const uint8_t *pad_mask, int B, int T,
                              int NH, int NKV, int HS, int causal) {
    // qkv is (B,T,(NH+2·NKV)*HS) = [q | k | v] per row; out is (B,T,NH*HS)
    const int W = (NH + 2 * NKV) * HS;
    attention_forward_(out, lse, qkv, qkv + (size_t)NH * HS, qkv + (size_t)(NH + NKV) * HS, pad_mask, B, T, NH, NKV,
                       HS, causal, W, NH * HS, W);
}

void op_attention_qkv_backward(float *dqkv, const float *dout, const float *out, const float *lse, const float *qkv,
                               const uint8_t *pad_mask, int B, int T, int NH, int NKV, int HS, int causal) {
    if (!dqkv) return;
    const int W = (NH + 2 * NKV) * HS;
    const size_t ko = (size_t)NH * HS, vo = (size_t)(NH + NKV) * HS;
    attention_backward_(dqkv, dqkv + ko, dqkv + vo, dout, out, lse, qkv, qkv + ko, qkv + vo, pad_mask, B, T, NH, NKV,
                        HS, causal, W, NH * HS, W);
}
