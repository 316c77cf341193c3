/* The bf16 GEMM (src/core/gemm_bf16.c) against a float64 reference, and op_matmul_* in bf16 mode.
 *
 * Two tolerances, from what the kernel does (operands rounded to bf16, products summed in fp32):
 *  - operands that are already bf16 values: the products are exact, only fp32 summation error
 *    remains, |err| <= 1e-5 * sum_k |a||b|: a layout or packing bug shows up as O(1) errors here;
 *  - any fp32 operands: each rounding is within 2^-8 relative (8 significant bits), so
 *    |err| <= 2^-7 * sum_k |a||b|
 *    (+ the fp32 term); the test also checks that the error is not below what bf16 implies
 *    (the bf16 path really ran).
 * Shapes cover the register tile's edges (MR 14, NR 32), odd K, K over one packed block (768),
 * leading dimensions larger than the row, alpha/beta, beta 0 over NaN, and 1 vs 2 threads. */
#include "check.h"
#include "lorac.h"

#include <stdint.h>

static uint64_t rng = 88172645463325252ull;
static float frand(void) { /* xorshift, uniform in [-1, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static float to_bf16(float x) { /* round to nearest even, as the kernel does */
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

static float *randv(size_t n, int bf) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = bf ? to_bf16(frand()) : frand();
    return v;
}

/* one case; returns the largest err / sum|a||b| seen */
static double gemm_case(int transb, int M, int N, int K, int pad, float alpha, float beta, int bf) {
    float *bias = (M + N + K) % 2 ? randv((size_t)N, 0) : NULL; /* half the cases add a bias */
    int lda = K + pad, ldb = (transb ? K : N) + pad, ldc = N + pad;
    float *A = randv((size_t)M * lda, bf), *B = randv((size_t)(transb ? N : K) * ldb, bf);
    float *C = randv((size_t)M * ldc, 0), *C0 = malloc((size_t)M * ldc * sizeof *C0);
    if (beta == 0.0f)
        for (size_t i = 0; i < (size_t)M * ldc; i++) C[i] = NAN; /* must never be read */
    memcpy(C0, C, (size_t)M * ldc * sizeof *C);
    int rc = op_gemm_bf16(transb, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc);
    CHECK(rc == 0, "op_gemm_bf16 failed (%dx%dx%d)", M, N, K);
    double worst = 0.0;
    int bad = 0;
    for (int i = 0; i < M && !bad; i++) {
        for (int j = 0; j < N; j++) {
            double s = 0.0, mag = 0.0;
            for (int k = 0; k < K; k++) {
                double a = A[(size_t)i * lda + k], b = transb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
                mag += fabs(a * b);
            }
            double want = alpha * s + (beta == 0.0f ? 0.0 : beta * (double)C0[(size_t)i * ldc + j]) + (bias ? bias[j] : 0.0);
            double scale = fabs(alpha) * mag + (beta == 0.0f ? 0.0 : fabs(beta * C0[(size_t)i * ldc + j])) +
                           (bias ? fabs(bias[j]) : 0.0);
            double err = fabs((double)C[(size_t)i * ldc + j] - want);
            double lim = (bf ? 1e-5 : 1.0 / 128) * scale + 1e-6 * (1.0 + fabs(want));
            if (!(err <= lim)) {
                CHECK(0, "tb%d %dx%dx%d pad %d bf %d: C[%d,%d] = %.8g want %.8g (err %.3g > %.3g)", transb, M, N, K, pad,
                      bf, i, j, C[(size_t)i * ldc + j], want, err, lim);
                bad = 1;
                break;
            }
            if (scale > 0 && err / scale > worst) worst = err / scale;
        }
    }
    /* the padding past each row is never written */
    for (int i = 0; i < M && pad; i++)
        for (int j = N; j < ldc; j++)
            if (memcmp(&C[(size_t)i * ldc + j], &C0[(size_t)i * ldc + j], sizeof(float))) {
                CHECK(0, "padding C[%d,%d] overwritten", i, j);
                i = M;
                break;
            }
    free(A);
    free(B);
    free(C);
    free(C0);
    free(bias);
    return worst;
}

/* max |a[i] - b[i]| (a compare, not fmax: GCC 12's aarch64 vectoriser crashes on an fmax reduction
 * here, an internal compiler error in vect_transform_reduction) */
static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        m = d > m ? d : m;
    }
    return m;
}

static void check_matmul_ops(void) {
    /* op_matmul_forward / _backward in bf16 mode vs fp32 mode, both weight layouts */
    const int N = 40, C = 96, OC = 80;
    float *x = randv((size_t)N * C, 0), *w = randv((size_t)OC * C, 0), *dy = randv((size_t)N * OC, 0);
    float *y32 = calloc((size_t)N * OC, 4), *y16 = calloc((size_t)N * OC, 4), *bias = randv((size_t)OC, 0);
    float *dx32 = calloc((size_t)N * C, 4), *dx16 = calloc((size_t)N * C, 4);
    for (int layout = 0; layout < 2; layout++) {
        op_set_matmul_precision(OP_PREC_FP32);
        op_matmul_forward(y32, x, w, bias, N, C, OC, (op_wlayout)layout);
        memset(dx32, 0, (size_t)N * C * 4);
        op_matmul_backward(dx32, NULL, NULL, dy, x, w, 0.5f, N, C, OC, (op_wlayout)layout);
        CHECK(op_set_matmul_precision(OP_PREC_BF16) == 0, "bf16 not accepted");
        CHECK(op_matmul_precision() == OP_PREC_BF16, "precision not reported");
        op_matmul_forward(y16, x, w, bias, N, C, OC, (op_wlayout)layout);
        memset(dx16, 0, (size_t)N * C * 4);
        op_matmul_backward(dx16, NULL, NULL, dy, x, w, 0.5f, N, C, OC, (op_wlayout)layout);
        /* |x|,|w| < 1, so sum|a||b| < C (forward) and 0.5*OC (backward) */
        double dmax = max_abs_diff(y16, y32, (size_t)N * OC);
        CHECK(dmax <= C / 128.0 && dmax > 0, "layout %d forward: max |bf16 - fp32| = %g", layout, dmax);
        dmax = max_abs_diff(dx16, dx32, (size_t)N * C);
        CHECK(dmax <= 0.5 * OC / 128.0 && dmax > 0, "layout %d backward: max |bf16 - fp32| = %g", layout, dmax);
    }
    op_set_matmul_precision(OP_PREC_FP32);
    free(x), free(w), free(dy), free(y32), free(y16), free(dx32), free(dx16), free(bias);
}

/* A pre-packed B gives the bits of packing it per call: both storages, K odd and over one packed
 * block (two pair blocks), N not a multiple of the 32-column panel and over one 3072-column block,
 * bias and beta; and the padding words past N and K are zero (a stale word would reach C). */
static void check_prepacked(void) {
    static const int shapes[][3] = {{45, 3100, 1601}, {20, 33, 7}, {16, 768, 1537}, {3, 1, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int tb = 0; tb < 2; tb++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ldb = tb ? K + 1 : N + 2;
            float *A = randv((size_t)M * K, 0), *B = randv((size_t)(tb ? N : K) * ldb, 0), *bias = randv((size_t)N, 0);
            float *C1 = randv((size_t)M * N, 0), *C2 = malloc((size_t)M * N * 4);
            memcpy(C2, C1, (size_t)M * N * 4);
            size_t words = op_bf16_pack_words(K, N);
            uint32_t *P = aligned_alloc(64, (words * 4 + 63) / 64 * 64);
            for (size_t i = 0; i < words; i++) P[i] = 0xdeadbeefu; /* every word must be written */
            CHECK(op_bf16_pack(P, tb, K, N, B, ldb) == 0, "op_bf16_pack failed");
            CHECK(words == (size_t)((K + 1) / 2) * (size_t)((N + 31) / 32) * 32, "pack words %zu", words);
            size_t stale = 0;
            for (size_t i = 0; i < words; i++) stale += P[i] == 0xdeadbeefu;
            CHECK(stale == 0, "tb%d %dx%d: %zu packed words never written", tb, K, N, stale);
            float beta = s % 2 ? 0.0f : 0.5f;
            const float *bi = s % 2 ? NULL : bias;
            CHECK(op_gemm_bf16(tb, M, N, K, 0.75f, A, K, B, ldb, beta, bi, C1, N) == 0, "op_gemm_bf16 failed");
            CHECK(op_gemm_bf16_packed(M, N, K, 0.75f, A, K, P, beta, bi, C2, N) == 0, "op_gemm_bf16_packed failed");
            CHECK(!memcmp(C1, C2, (size_t)M * N * 4), "tb%d %dx%dx%d: pre-packed B differs from per-call packing", tb, M,
                  N, K);
            free(A), free(B), free(bias), free(C1), free(C2), free(P);
        }
}

int main(void) {
    if (!op_bf16_supported()) {
        CHECK(op_bf16_pack(NULL, 0, 4, 4, NULL, 4) == -1, "op_bf16_pack accepted on a CPU without it");
        CHECK(op_set_matmul_precision(OP_PREC_BF16) == -1, "bf16 accepted on a CPU without it");
        CHECK(op_matmul_precision() == OP_PREC_FP32, "precision changed after a refusal");
        printf("skip: this CPU (or build) has no AVX512-BF16; the fp32 fallback was checked\n");
        return check_summary() ? 1 : CHECK_SKIP;
    }
    static const int Ms[] = {1, 13, 14, 15, 29, 70}, Ns[] = {1, 17, 32, 33, 100}, Ks[] = {1, 2, 3, 33, 64, 97};
    double worst_bf = 0, worst_any = 0;
    for (int tb = 0; tb < 2; tb++)
        for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
            for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++)
                for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++) {
                    int pad = (int)((a + b + c) % 3);
                    float beta = (a + c) % 3 == 0 ? 0.0f : (a + c) % 3 == 1 ? 1.0f : -0.5f;
                    worst_bf = fmax(worst_bf, gemm_case(tb, Ms[a], Ns[b], Ks[c], pad, 0.75f, beta, 1));
                    worst_any = fmax(worst_any, gemm_case(tb, Ms[a], Ns[b], Ks[c], pad, 1.0f, beta, 0));
                }
    /* sizes over one packed block in K (768 pairs x 2 = 1536 is one KP block: 1601 takes two),
     * several row blocks and a column block of more than 3072 */
    worst_any = fmax(worst_any, gemm_case(0, 700, 64, 1601, 1, 1.0f, 1.0f, 0));
    worst_any = fmax(worst_any, gemm_case(1, 700, 64, 1601, 0, 1.0f, 0.0f, 0));
    worst_bf = fmax(worst_bf, gemm_case(1, 30, 3100, 70, 2, 1.0f, 1.0f, 1));
    worst_bf = fmax(worst_bf, gemm_case(0, 30, 3100, 70, 0, -1.0f, 0.0f, 1));
    printf("worst err / sum|ab|: bf16 operands %.3g (bound 1e-5), fp32 operands %.3g (bound 2^-7 = %.3g)\n", worst_bf,
           worst_any, 1.0 / 128);
    CHECK(worst_any > 1e-4, "fp32 operands gave errors of only %.3g: was the bf16 path used?", worst_any);

    /* the same bits whatever the thread count (each C element is summed in the same order) */
    int M = 333, N = 257, K = 801;
    float *A = randv((size_t)M * K, 0), *B = randv((size_t)N * K, 0), *C1 = calloc((size_t)M * N, 4), *C2 = calloc((size_t)M * N, 4);
    int t0 = lorac_get_threads();
    lorac_set_threads(1);
    op_gemm_bf16(1, M, N, K, 1.0f, A, K, B, K, 0.0f, NULL, C1, N);
    lorac_set_threads(2);
    op_gemm_bf16(1, M, N, K, 1.0f, A, K, B, K, 0.0f, NULL, C2, N);
    lorac_set_threads(t0);
    CHECK(!memcmp(C1, C2, (size_t)M * N * 4), "1 and 2 threads differ");
    free(A), free(B), free(C1), free(C2);

    check_matmul_ops();
    check_prepacked();
    return check_summary();
}
