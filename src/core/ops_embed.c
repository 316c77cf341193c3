/* Embedding lookup and rotary position embedding (HF Llama's rotate-half convention). */
#include "lorac/ops.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* channels per task in the embedding backward: each task walks all tokens in order */
#define EMB_CBLOCK 64

void op_embedding_forward(float *out, const int *ids, const float *wte, int N, int C, int V) {
    // ids is (N), each in [0,V); wte is (V,C); out is (N,C)
    (void)V;
#pragma omp parallel for schedule(static) if ((size_t)N * C > 65536)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, wte + (size_t)ids[n] * C, (size_t)C * sizeof(float));
}

void op_embedding_backward(float *dwte, const float *dout, const int *ids, int N, int C) {
    // dout is (N,C); dwte is (V,C). Parallel over channel blocks, not tokens: two tokens with the
    // same id would race, and a per-thread split would make the sum order depend on threads.
    int nblk = (C + EMB_CBLOCK - 1) / EMB_CBLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C > 65536)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * EMB_CBLOCK, c1 = c0 + EMB_CBLOCK < C ? c0 + EMB_CBLOCK : C;
        for (int n = 0; n < N; n++) {
            float *dw = dwte + (size_t)ids[n] * C;
            const float *dy = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) dw[c] += dy[c];
        }
    }
}

/* Rotates every head of one token by the angles of position p; sign -1 gives the inverse. When
 * acc is set the result is added to out (backward), else written (forward). */
static void rope_token_(float *out, const float *inp, int p, int NH, int HS, double theta,
                        double sign, int acc) {
    const int half = HS / 2;
    for (int i = 0; i < half; i++) {
        double ang = (double)p * pow(theta, -2.0 * i / HS);
        float c = (float)cos(ang), s = (float)(sign * sin(ang));
        for (int h = 0; h < NH; h++) {
            const float *x = inp + (size_t)h * HS;
            float *o = out + (size_t)h * HS;
            float x0 = x[i], x1 = x[i + half];
            // out[i] = x[i]·cos - x[i+half]·sin; out[i+half] = x[i+half]·cos + x[i]·sin
            float y0 = x0 * c - x1 * s, y1 = x1 * c + x0 * s;
            if (acc) {
                o[i] += y0;
                o[i + half] += y1;
            } else {
                o[i] = y0;
                o[i + half] = y1;
            }
        }
    }
}

void op_rope_forward(float *out, const float *inp, const int *pos, int B, int T, int NH, int HS,
                     float theta) {
    // inp, out are (B,T,NH*HS); pos is (B,T) or NULL (0..T-1)
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * NH * HS > 16384)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t off = ((size_t)b * T + t) * NH * HS;
            int p = pos ? pos[(size_t)b * T + t] : t;
            rope_token_(out + off, inp + off, p, NH, HS, theta, 1.0, 0);
        }
}

void op_rope_backward(float *dinp, const float *dout, const int *pos, int B, int T, int NH, int HS,
                      float theta) {
    // the rotation is orthogonal: dinp += R(-angle)·dout
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * NH * HS > 16384)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t off = ((size_t)b * T + t) * NH * HS;
            int p = pos ? pos[(size_t)b * T + t] : t;
            rope_token_(dinp + off, dout + off, p, NH, HS, theta, -1.0, 1);
        }
}
