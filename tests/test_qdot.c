/* The direct decode products (qmat_matmul_direct, quant.h) against the dequantize-then-float64
 * reference, for every type with a direct kernel, 1 to 17 activation rows (the kernels take 8, 4, 2
 * and 1 at a time), at every kernel level the CPU has:
 *   |out - ref| <= sum over blocks of (max|x_block| / 254) · sum |w| over the block  (the activation
 *                  rounding: at most half a step of max|x_block|/127 per element)
 *                  + 1e-5 · sum |w·x| + 1e-6                                    (float sums, scales)
 * and the same bits at every kernel level (generic, avx2, avx512: qdot.h's lane model), for 1 and 2
 * threads, for each row run alone (a batch of decode rows gives each row's own bits), and through
 * qmat_matmul_decode (which takes this path for any N unless qmat_set_direct(0)); qmat_matmul_forward
 * never does (fp32 products, whatever N).
 * Weights: quantized from random floats (ggml's reference quantizers), plus rows with the extreme
 * codes (all -128 for Q8_0, all 15 / 0 nibbles) that would overflow a saturating int16 pair sum. */
#include "check.h"
#include "core/qdot.h"
#include "core/simd.h"
#include "lorac.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const int TYPES[] = {QUANT_Q4_0, QUANT_Q4_1, QUANT_Q8_0, QUANT_Q4_K, QUANT_Q6_K};

static void fill_normal(float *x, size_t n, lorac_rng *rng, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * lorac_rng_normal(rng);
}

/* (rows, cols) of TYPE from random floats; row 0 from constant extremes (every code at its end) */
static uint8_t *make_weight(int type, int rows, int cols, size_t rb, lorac_rng *rng) {
    uint8_t *w = malloc(rb * rows);
    float *src = malloc((size_t)cols * sizeof *src);
    for (int r = 0; r < rows; r++) {
        fill_normal(src, (size_t)cols, rng, 0.05f);
        if (r == 0)
            for (int c = 0; c < cols; c++) src[c] = c % 64 < 32 ? -1.0f : 1.0f; /* whole blocks of one sign */
        quant_row_from_f32(type, src, w + (size_t)r * rb, (size_t)cols);
    }
    free(src);
    return w;
}

static void check_case(int type, int rows, int cols, int N, lorac_rng *rng) {
    const char *tn = quant_type_name(type);
    char what[160];
    size_t rb = 0;
    quant_row_size(type, (size_t)cols, &rb);
    uint8_t *data = make_weight(type, rows, cols, rb, rng);
    qmat w = {(quant_type)type, rows, cols, data};
    float *wf = malloc((size_t)rows * cols * sizeof *wf), *inp = malloc((size_t)N * cols * sizeof *inp);
    for (int r = 0; r < rows; r++) qmat_row_f32(&w, r, wf + (size_t)r * cols);
    fill_normal(inp, (size_t)N * cols, rng, 1.0f);
    for (int c = 0; c < cols; c += 7) inp[c] *= 20.0f; /* outliers, as real activations have */
    if (N > 1) memset(inp + cols, 0, (size_t)cols / 2 * sizeof *inp); /* an all-zero stretch: d = 0 */
    float *bias = malloc((size_t)rows * sizeof *bias);
    fill_normal(bias, (size_t)rows, rng, 0.1f);
    const size_t n_out = (size_t)N * rows;
    float *outs[6], *fwd = malloc(n_out * sizeof *fwd);
    for (int k = 0; k < 6; k++) outs[k] = malloc(n_out * sizeof *outs[k]);
    lorac_err err = {0};

    /* every level the CPU has, each with 1 and 2 threads (the cap can only lower the level) */
    const lorac_isa top = lorac_isa_active();
    int runs = 0;
    for (int lv = LORAC_ISA_GENERIC; lv <= (int)top && lv <= LORAC_ISA_AVX512; lv++)
        for (int th = 1; th <= 2; th++, runs++) {
            lorac_isa_set_cap((lorac_isa)lv);
            lorac_set_threads(th);
            CHECK(qmat_matmul_direct(outs[runs], inp, &w, bias, N, &err) == LORAC_OK, "%s: %s", tn, err.msg);
        }
    lorac_isa_set_cap(top);
    lorac_set_threads(2);
    CHECK(qmat_direct_applies(&w), "%s N=%d: qmat_matmul_decode should take the direct path", tn, N);
    CHECK(qmat_matmul_decode(fwd, inp, &w, bias, N, &err) == LORAC_OK, "%s", err.msg);
    for (int k = 1; k < runs; k++)
        CHECK(!memcmp(outs[0], outs[k], n_out * sizeof *fwd), "%s %dx%d N=%d: run %d (level %d, %d threads) differs",
              tn, rows, cols, N, k, k / 2, k % 2 + 1);
    CHECK(!memcmp(outs[0], fwd, n_out * sizeof *fwd), "%s N=%d: qmat_matmul_decode differs from direct", tn, N);
    /* qmat_matmul_forward: the fp32 products, which qmat_matmul_decode gives when switched off */
    float *f32 = malloc(n_out * sizeof *f32);
    CHECK(qmat_matmul_forward(f32, inp, &w, bias, N, &err) == LORAC_OK, "%s", err.msg);
    qmat_set_direct(0);
    CHECK(qmat_matmul_decode(fwd, inp, &w, bias, N, &err) == LORAC_OK, "%s", err.msg);
    qmat_set_direct(1);
    CHECK(!memcmp(f32, fwd, n_out * sizeof *fwd), "%s N=%d: qmat_matmul_forward is not the fp32 path", tn, N);
    free(f32);
    /* batch invariance: each row alone gives its bits in the batch (a row's sums never see the others) */
    for (int n = 0; n < N; n++) {
        CHECK(qmat_matmul_direct(fwd, inp + (size_t)n * cols, &w, bias, 1, &err) == LORAC_OK, "%s", err.msg);
        CHECK(!memcmp(fwd, outs[0] + (size_t)n * rows, (size_t)rows * sizeof *fwd), "%s N=%d: row %d alone differs", tn,
              N, n);
    }

    double worst = 0.0, err2 = 0.0, ref2 = 0.0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < rows; o++) {
            const float *x = inp + (size_t)n * cols, *wr = wf + (size_t)o * cols;
            double s = bias[o], mag = fabs(bias[o]), bound = 0.0;
            for (int b = 0; b < cols; b += 32) {
                double amax = 0.0, wabs = 0.0;
                for (int j = b; j < b + 32; j++) {
                    s += (double)x[j] * wr[j], mag += fabs((double)x[j] * wr[j]);
                    amax = fmax(amax, fabs(x[j])), wabs += fabs(wr[j]);
                }
                bound += amax / 254.0 * wabs;
            }
            bound += 1e-5 * mag + 1e-6;
            const double e = fabs(outs[0][(size_t)n * rows + o] - s);
            if (e / bound > worst) worst = e / bound;
            err2 += e * e, ref2 += s * s;
        }
    snprintf(what, sizeof what, "%s %dx%d N=%d: worst |out - ref| / bound", tn, rows, cols, N);
    CHECK(worst <= 1.0, "%s = %.3f", what, worst);
    printf("%-4s %4dx%-5d N=%d  worst error/bound %.3f  rms error/rms output %.2e  (%d level/thread runs equal)\n",
           tn, rows, cols, N, worst, sqrt(err2 / (ref2 > 0 ? ref2 : 1)), runs);
    free(data), free(wf), free(inp), free(bias), free(fwd);
    for (int k = 0; k < 6; k++) free(outs[k]);
}

/* The activation quantizer of each level against the plain C one, byte for byte: random blocks, and
 * blocks with exact ties (x·(1/d) = k + 0.5), zeros, -0, subnormals, NaN and infinities. */
static void check_quantizer(lorac_rng *rng) {
    int blocks = 0, same = 1;
    for (int k = 0; k < 400; k++) {
        float x[QDOT_BLOCK], d0, d1;
        int8_t q0[QDOT_BLOCK], q1[QDOT_BLOCK];
        fill_normal(x, QDOT_BLOCK, rng, k % 3 ? 1.0f : 1e-3f);
        if (k % 5 == 1) /* max 127: every x·(1/d) = x, ties at the halves */
            for (int j = 0; j < QDOT_BLOCK; j++) x[j] = j ? (float)(j * 4 - 64) + 0.5f : 127.0f;
        if (k % 7 == 2) x[k % QDOT_BLOCK] = NAN;
        if (k % 11 == 3) x[(k + 5) % QDOT_BLOCK] = k % 2 ? INFINITY : -INFINITY;
        if (k % 13 == 4) for (int j = 0; j < QDOT_BLOCK; j++) x[j] = j % 2 ? -0.0f : 1e-41f * (float)j;
        if (k == 5) memset(x, 0, sizeof x);
        const int s0 = qdot_quantize_block_generic(x, q0, &d0);
#ifdef LORAC_X86_KERNELS
        if (lorac_isa_detected() >= LORAC_ISA_AVX2) {
            const int s1 = qdot_quantize_block_avx2(x, q1, &d1);
            same &= s0 == s1 && !memcmp(q0, q1, sizeof q0) && !memcmp(&d0, &d1, sizeof d0);
            blocks++;
        }
#else
        (void)q1, (void)d1;
#endif
    }
    CHECK(same, "the AVX2 activation quantizer differs from the plain C one (%d blocks)", blocks);
}

static void check_switch_and_errors(lorac_rng *rng) {
    lorac_err err = {0};
    float x[64], out[4];
    fill_normal(x, 64, rng, 1.0f);
    uint8_t blk[2 * 34];
    quant_row_from_f32(QUANT_Q8_0, x, blk, 64);
    qmat w = {QUANT_Q8_0, 1, 64, blk};
    CHECK(qmat_set_direct(0) == 1, "the direct path is on by default");
    CHECK(!qmat_direct_applies(&w), "qmat_set_direct(0) turns it off");
    CHECK(qmat_set_direct(1) == 0 && qmat_direct_applies(&w), "and on again");
    qmat f16 = {QUANT_F16, 1, 64, blk};
    CHECK(!qmat_direct_applies(&f16), "F16 takes the GEMM path");
    CHECK(qmat_matmul_direct(out, x, &w, NULL, 0, &err) == LORAC_EINVAL && !strchr(err.msg, '\n'), "N=0: %s", err.msg);
    qmat f = {QUANT_F16, 1, 32, blk};
    CHECK(qmat_matmul_direct(out, x, &f, NULL, 1, &err) == LORAC_EINVAL, "F16 has no direct kernel: %s", err.msg);
}

int main(void) {
    lorac_rng rng;
    lorac_rng_seed(&rng, 19);
    printf("kernel level %s\n", lorac_isa_name(lorac_isa_active()));
    for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++) {
        const int type = TYPES[t], bs = (int)quant_block_size(type);
        check_case(type, 3, bs == 256 ? 256 : 64, 1, &rng);
        check_case(type, 70, 768, 1, &rng); /* 3 tasks of 32 rows, the last ragged */
        check_case(type, 45, 512, 3, &rng);
        check_case(type, 33, 1536, 8, &rng);
        for (int N = 1; N <= 17; N++) check_case(type, 40, 256, N, &rng); /* every grouping of 8, 4, 2, 1 */
    }
    check_switch_and_errors(&rng);
    check_quantizer(&rng);
    return check_summary();
}
