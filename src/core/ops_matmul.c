/* Matmul in both weight orientations, with bias: fp32 through cblas, or the bf16 kernel (gemm_bf16.c)
 * when op_set_matmul_precision asked for it; backward never touches a frozen W. */
#include "lorac/ops.h"

#include <cblas.h>
#include <stddef.h>
#include <string.h>

static op_precision g_precision = OP_PREC_FP32;

int op_set_matmul_precision(op_precision p) {
    if (p == OP_PREC_BF16 && !op_bf16_supported()) return -1;
    g_precision = p;
    return 0;
}

op_precision op_matmul_precision(void) { return g_precision; }

int op_matmul_bf16_applies(int M, int N, int K) { return g_precision == OP_PREC_BF16 && M >= 16 && N >= 64 && K >= 64; }

/* returns 0 when the bf16 kernel did the product */
static int try_bf16(int transb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, const float *bias, float *C, int ldc) {
    if (!op_matmul_bf16_applies(M, N, K)) return -1;
    return op_gemm_bf16(transb, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc);
}

/* W's row stride: C for (OC,C) storage, OC for (C,OC) storage */
static int w_ld(op_wlayout layout, int C, int OC) { return layout == OP_W_OUT_IN ? C : OC; }

/* out(N,OC) += alpha · inp(N,C) · op(W) in fp32, op(W) = Wᵀ for (OC,C) storage, W for (C,OC) */
static void forward_fp32(float *out, const float *inp, const float *w, float alpha, int N, int C, int OC,
                         op_wlayout layout) {
    if (N == 0 || OC == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, layout == OP_W_OUT_IN ? CblasTrans : CblasNoTrans, N, OC, C, alpha,
                inp, C, w, w_ld(layout, C, OC), 1.0f, out, OC);
}

void op_matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                       int N, int C, int OC, op_wlayout layout) {
    /* bf16: the kernel adds the bias as it stores, out is never read */
    if (try_bf16(layout == OP_W_OUT_IN, N, OC, C, 1.0f, inp, C, w, w_ld(layout, C, OC), 0.0f, bias, out, OC) == 0)
        return;
    /* seed out with the bias (or zero) so the GEMM accumulates onto it */
#pragma omp parallel for schedule(static) if ((size_t)N * OC > 32768)
    for (int n = 0; n < N; n++) {
        float *row = out + (size_t)n * OC;
        if (bias) memcpy(row, bias, (size_t)OC * sizeof(float));
        else memset(row, 0, (size_t)OC * sizeof(float));
    }
    forward_fp32(out, inp, w, 1.0f, N, C, OC, layout);
}

void op_matmul_forward_acc(float *out, const float *inp, const float *w, float alpha,
                           int N, int C, int OC, op_wlayout layout) {
    if (try_bf16(layout == OP_W_OUT_IN, N, OC, C, alpha, inp, C, w, w_ld(layout, C, OC), 1.0f, NULL, out, OC))
        forward_fp32(out, inp, w, alpha, N, C, OC, layout);
}

void op_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                        const float *w, float alpha, int N, int C, int OC, op_wlayout layout) {
    if (N == 0) return;
    /* dinp(N,C) += alpha · dout(N,OC) · W(OC,C)  [or W(C,OC)ᵀ] */
    if (dinp && try_bf16(layout == OP_W_IN_OUT, N, C, OC, alpha, dout, OC, w, w_ld(layout, C, OC), 1.0f, NULL, dinp, C))
        cblas_sgemm(CblasRowMajor, CblasNoTrans, layout == OP_W_OUT_IN ? CblasNoTrans : CblasTrans, N, C, OC, alpha,
                    dout, OC, w, w_ld(layout, C, OC), 1.0f, dinp, C);
    if (dw) {
        if (layout == OP_W_OUT_IN) /* dW(OC,C) += alpha · doutᵀ(OC,N) · inp(N,C) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, alpha, dout, OC, inp, C, 1.0f, dw, C);
        else /* dW(C,OC) += alpha · inpᵀ(C,N) · dout(N,OC) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, OC, N, alpha, inp, C, dout, OC, 1.0f, dw, OC);
    }
    if (dbias) {
        /* summed row by row in a fixed order so the result does not depend on threads */
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) dbias[o] += dout[(size_t)n * OC + o];
    }
}
