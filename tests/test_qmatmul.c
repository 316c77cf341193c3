/* qmat matmuls against a reference: for every type with a dequantizer, a weight stored in that type
 * (quantized from random floats, or random blocks with finite scales for the types lorac does not
 * quantize) must give
 *   forward   out = inp · Wᵀ + b        equal to a float64 matmul of the dequantized W (rel 1e-5)
 *   backward  dinp += dout · W          the same, and equal to central finite differences of
 *                                       sum(out · g) with respect to inp
 * and, run twice with 1 thread and twice with 2, the same bits for the same thread count; 1 and 2
 * threads within the bound of two summation orders (check_sum_orders: OpenBLAS does the sums, and
 * its split of them may change with the thread count). Shapes cover one tile, many row tiles and
 * several column strips (a strip is 256 columns, a tile 65536 floats). Under bf16 precision, where
 * the CPU has it: check_bf16_type. */
#include "check.h"
#include "lorac.h"

#include <stdlib.h>
#include <string.h>

static const int TYPES[] = {QUANT_F32,  QUANT_F16,  QUANT_BF16, QUANT_Q8_0, QUANT_Q4_0, QUANT_Q4_1,
                            QUANT_Q5_0, QUANT_Q5_1, QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};

static void fill_normal(float *x, size_t n, lorac_rng *rng, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * lorac_rng_normal(rng);
}

/* A (rows, cols) weight of TYPE: quantized from random floats when lorac can quantize the type;
 * otherwise random bytes with each block's f16 scale fields (at its start) set to small finite
 * values, so every quant bit is exercised. */
static uint8_t *make_weight(int type, int rows, int cols, lorac_rng *rng) {
    size_t rb = 0;
    quant_row_size(type, (size_t)cols, &rb);
    uint8_t *w = malloc(rb * rows);
    if (quant_can_quantize(type)) {
        float *src = malloc((size_t)cols * sizeof *src);
        for (int r = 0; r < rows; r++) {
            fill_normal(src, (size_t)cols, rng, 0.05f);
            quant_row_from_f32(type, src, w + (size_t)r * rb, (size_t)cols);
        }
        free(src);
        return w;
    }
    for (size_t i = 0; i < rb * rows; i++) w[i] = (uint8_t)lorac_rng_u64(rng);
    size_t ts = quant_type_size(type), nblocks = rb * rows / ts;
    int nscales = type == QUANT_Q5_0 ? 1 : 2; /* Q5_0: d; Q5_1: d, m; Q5_K: d, dmin */
    for (size_t b = 0; b < nblocks; b++)
        for (int k = 0; k < nscales; k++) {
            uint16_t h = lorac_f32_to_f16(0.002f * (1.0f + lorac_rng_uniform(rng)) * (k ? -1.0f : 1.0f));
            w[b * ts + 2 * k] = (uint8_t)(h & 0xff);
            w[b * ts + 2 * k + 1] = (uint8_t)(h >> 8);
        }
    return w;
}

static void check_type_shape(int type, int rows, int cols, int N, lorac_rng *rng) {
    const char *tn = quant_type_name(type);
    char what[128];
    uint8_t *data = make_weight(type, rows, cols, rng);
    qmat w = {(quant_type)type, rows, cols, data};
    float *wf = malloc((size_t)rows * cols * sizeof *wf);
    for (int r = 0; r < rows; r++) qmat_row_f32(&w, r, wf + (size_t)r * cols);
    float *inp = malloc((size_t)N * cols * sizeof *inp), *bias = malloc((size_t)rows * sizeof *bias);
    float *dout = malloc((size_t)N * rows * sizeof *dout);
    fill_normal(inp, (size_t)N * cols, rng, 1.0f);
    fill_normal(bias, (size_t)rows, rng, 0.1f);
    fill_normal(dout, (size_t)N * rows, rng, 1.0f);
    float *outs[4], *dins[4]; /* 1 thread twice, 2 threads twice */
    for (int k = 0; k < 4; k++) {
        outs[k] = malloc((size_t)N * rows * sizeof *outs[k]);
        dins[k] = malloc((size_t)N * cols * sizeof *dins[k]);
    }
    float *out1 = outs[0], *out2 = outs[2], *din1 = dins[0], *din2 = dins[2];
    float *ref = malloc((size_t)N * rows * sizeof *ref), *dref = malloc((size_t)N * cols * sizeof *dref);
    double *mag = malloc((size_t)N * rows * sizeof *mag), *dmag = malloc((size_t)N * cols * sizeof *dmag);
    lorac_err err = {0};

    /* reference: float64 sums over the dequantized weight, and the sums of |terms| */
    for (int n = 0; n < N; n++)
        for (int o = 0; o < rows; o++) {
            double s = bias[o], m = fabs(bias[o]);
            for (int c = 0; c < cols; c++) {
                double t = (double)inp[(size_t)n * cols + c] * wf[(size_t)o * cols + c];
                s += t, m += fabs(t);
            }
            ref[(size_t)n * rows + o] = (float)s;
            mag[(size_t)n * rows + o] = m;
        }
    for (int n = 0; n < N; n++)
        for (int c = 0; c < cols; c++) {
            double s = 0.5, m = 0.5; /* dinp starts at 0.5 everywhere: the backward accumulates */
            for (int o = 0; o < rows; o++) {
                double t = (double)dout[(size_t)n * rows + o] * wf[(size_t)o * cols + c];
                s += t, m += fabs(t);
            }
            dref[(size_t)n * cols + c] = (float)s;
            dmag[(size_t)n * cols + c] = m;
        }

    for (int k = 0; k < 4; k++) {
        lorac_set_threads(k < 2 ? 1 : 2);
        CHECK(qmat_matmul_forward(outs[k], inp, &w, bias, N, &err) == LORAC_OK, "%s", err.msg);
        for (size_t i = 0; i < (size_t)N * cols; i++) dins[k][i] = 0.5f;
        CHECK(qmat_matmul_backward_input(dins[k], dout, &w, N, &err) == LORAC_OK, "%s", err.msg);
    }
    snprintf(what, sizeof what, "%s %dx%d N=%d forward vs float64", tn, rows, cols, N);
    check_arrays_close(out1, ref, (size_t)N * rows, 1e-4, 1e-5, what);
    snprintf(what, sizeof what, "%s %dx%d N=%d backward_input vs float64", tn, rows, cols, N);
    check_arrays_close(din1, dref, (size_t)N * cols, 1e-4, 1e-5, what);
    for (int t = 0; t < 2; t++) {
        CHECK(!memcmp(outs[2 * t], outs[2 * t + 1], (size_t)N * rows * sizeof *out1),
              "%s %dx%d: forward differs between two runs on %d thread(s)", tn, rows, cols, t + 1);
        CHECK(!memcmp(dins[2 * t], dins[2 * t + 1], (size_t)N * cols * sizeof *din1),
              "%s %dx%d: backward differs between two runs on %d thread(s)", tn, rows, cols, t + 1);
    }
    /* the bias is added after the product, dinp's 0.5 before: cols + 1 and rows + 1 terms */
    snprintf(what, sizeof what, "%s %dx%d N=%d forward with 1 and 2 threads", tn, rows, cols, N);
    check_sum_orders(out1, out2, mag, (size_t)N * rows, cols + 1, what);
    snprintf(what, sizeof what, "%s %dx%d N=%d backward_input with 1 and 2 threads", tn, rows, cols, N);
    check_sum_orders(din1, din2, dmag, (size_t)N * cols, rows + 1, what);

    /* finite differences of L = sum(out · dout) w.r.t. a few inputs: dL/dinp = dout · W. L is linear
     * in inp, so central differences have no truncation error at any step: a large one keeps the
     * forward's float rounding, divided by 2·eps, small (with 1e-2, a GEMM kernel without FMA, as
     * OpenBLAS's Nehalem, came out 3.5e-3 off) */
    const int probes[3] = {0, cols / 2, cols - 1};
    for (int p = 0; p < 3; p++) {
        size_t i = (size_t)(N - 1) * cols + probes[p];
        const float eps = 0.5f, x0 = inp[i];
        double L[2];
        for (int s = 0; s < 2; s++) {
            inp[i] = x0 + (s ? -eps : eps);
            qmat_matmul_forward(out2, inp, &w, bias, N, &err);
            double acc = 0;
            for (size_t k = 0; k < (size_t)N * rows; k++) acc += (double)out2[k] * dout[k];
            L[s] = acc;
        }
        inp[i] = x0;
        double fd = (L[0] - L[1]) / (2.0 * eps);
        snprintf(what, sizeof what, "%s %dx%d dinp[%zu] vs finite differences", tn, rows, cols, i);
        CHECK_CLOSE(din1[i] - 0.5f, fd, 2e-3, 2e-3, what);
    }
    free(data); free(wf); free(inp); free(bias); free(dout); free(ref); free(dref); free(mag); free(dmag);
    for (int k = 0; k < 4; k++) free(outs[k]), free(dins[k]);
}

/* Under bf16 precision a stored type is dequantized in slabs and multiplied by the bf16 GEMM: the
 * forward must give the bits of op_matmul_forward on the dequantized f32 matrix, the backward
 * op_matmul_backward's result within two summation orders (it sums slab after slab), both the same
 * bits with 1 and 2 threads. 1,400 rows of 768 are two slabs (4 MiB of f32 each). */
static void check_bf16_type(int type, int rows, int cols, int N, lorac_rng *rng) {
    const char *tn = quant_type_name(type);
    uint8_t *data = make_weight(type, rows, cols, rng);
    qmat w = {(quant_type)type, rows, cols, data};
    const size_t no = (size_t)N * rows, ni = (size_t)N * cols;
    float *wf = malloc((size_t)rows * cols * sizeof *wf), *inp = malloc(ni * sizeof *inp);
    float *bias = malloc((size_t)rows * sizeof *bias), *dout = malloc(no * sizeof *dout);
    float *out[2], *din[2], *ref = malloc(no * sizeof *ref), *dref = malloc(ni * sizeof *dref);
    double *dmag = malloc(ni * sizeof *dmag);
    for (int r = 0; r < rows; r++) qmat_row_f32(&w, r, wf + (size_t)r * cols);
    fill_normal(inp, ni, rng, 1.0f);
    fill_normal(bias, (size_t)rows, rng, 0.1f);
    fill_normal(dout, no, rng, 1.0f);
    lorac_err err = {0};
    op_set_matmul_precision(OP_PREC_BF16);
    for (int t = 0; t < 2; t++) {
        out[t] = malloc(no * sizeof *out[t]), din[t] = malloc(ni * sizeof *din[t]);
        lorac_set_threads(t + 1);
        CHECK(qmat_matmul_forward(out[t], inp, &w, bias, N, &err) == LORAC_OK, "%s", err.msg);
        for (size_t i = 0; i < ni; i++) din[t][i] = 0.5f;
        CHECK(qmat_matmul_backward_input(din[t], dout, &w, N, &err) == LORAC_OK, "%s", err.msg);
    }
    op_matmul_forward(ref, inp, wf, bias, N, cols, rows, OP_W_OUT_IN);
    for (size_t i = 0; i < ni; i++) dref[i] = 0.5f;
    op_matmul_backward(dref, NULL, NULL, dout, inp, wf, 1.0f, N, cols, rows, OP_W_OUT_IN);
    op_set_matmul_precision(OP_PREC_FP32);
    /* bf16 operands: the terms' magnitudes as the kernel multiplies them */
    for (int n = 0; n < N; n++)
        for (int c = 0; c < cols; c++) {
            double m = 0.5;
            for (int o = 0; o < rows; o++)
                m += fabs((double)lorac_bf16_to_f32(lorac_f32_to_bf16(dout[(size_t)n * rows + o])) *
                          lorac_bf16_to_f32(lorac_f32_to_bf16(wf[(size_t)o * cols + c])));
            dmag[(size_t)n * cols + c] = m;
        }
    CHECK(!memcmp(out[0], ref, no * sizeof *ref), "%s %dx%d bf16 forward: not op_matmul_forward's bits", tn, rows, cols);
    CHECK(!memcmp(out[0], out[1], no * sizeof *ref), "%s %dx%d bf16 forward: 1 and 2 threads differ", tn, rows, cols);
    CHECK(!memcmp(din[0], din[1], ni * sizeof *dref), "%s %dx%d bf16 backward: 1 and 2 threads differ", tn, rows, cols);
    char what[128];
    snprintf(what, sizeof what, "%s %dx%d N=%d bf16 backward_input vs op_matmul_backward", tn, rows, cols, N);
    check_sum_orders(din[0], dref, dmag, ni, rows + 1, what);
    free(data); free(wf); free(inp); free(bias); free(dout); free(ref); free(dref); free(dmag);
    for (int t = 0; t < 2; t++) free(out[t]), free(din[t]);
}

static void check_bad_input(void) {
    lorac_err err = {0};
    float buf[64] = {0};
    qmat w = {QUANT_Q4_0, 2, 48, buf}; /* 48 is not a multiple of 32 */
    CHECK(qmat_matmul_forward(buf, buf, &w, NULL, 1, &err) == LORAC_ESHAPE && strchr(err.msg, '\n') == NULL,
          "ragged row: %s", err.msg);
    qmat u = {QUANT_IQ2_XXS, 1, 256, buf};
    CHECK(qmat_matmul_backward_input(buf, buf, &u, 1, &err) == LORAC_EUNSUPPORTED, "unsupported: %s", err.msg);
    qmat v = {(quant_type)99, 1, 32, buf};
    CHECK(qmat_check(&v, "blk.0.attn_q.weight", &err) == LORAC_EUNSUPPORTED &&
              strstr(err.msg, "blk.0.attn_q.weight"),
          "unknown type: %s", err.msg);
}

int main(void) {
    /* the dequantize-and-GEMM path at every N (N <= 8 would take the direct kernels: test_qdot) */
    qmat_set_direct(0);
    lorac_rng rng;
    lorac_rng_seed(&rng, 7);
    for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++) {
        int type = TYPES[t];
        check_type_shape(type, 3, 256, 1, &rng);   /* one tile, one strip, a single token */
        check_type_shape(type, 300, 768, 5, &rng); /* 4 row tiles; 3 column strips, 2 row tiles each */
        if (quant_block_size(type) == 32) check_type_shape(type, 17, 96, 4, &rng); /* a strip narrower than 256 */
    }
    if (op_bf16_supported()) {
        const int bf16_types[] = {QUANT_Q4_1, QUANT_Q8_0, QUANT_Q6_K, QUANT_F16};
        for (size_t t = 0; t < sizeof bf16_types / sizeof *bf16_types; t++)
            check_bf16_type(bf16_types[t], 1400, 768, 24, &rng);
    } else {
        printf("test_qmatmul: bf16 products skipped (kernel level %s has no AVX512-BF16)\n",
               lorac_isa_name(lorac_isa_active()));
    }
    check_bad_input();
    return check_summary();
}
