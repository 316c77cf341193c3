/* Rotary position embedding with precomputed per-pair inverse frequencies (see lorac/ops_rope.h). */
#include <math.h>
#include <stddef.h>

#include "lorac/ops_rope.h"

/* Rotates every head of one token by its position; sign -1 applies the inverse rotation and
 * accumulates (the backward), sign +1 overwrites (the forward). */
static void rope_token(float *out, const float *inp, int p, int NH, int HS, const float *inv_freq, int backward) {
    int h2 = HS / 2;
    for (int i = 0; i < h2; i++) {
        float ang = (float)p * inv_freq[i];
        double c = cos((double)ang), s = sin((double)ang);
        for (int h = 0; h < NH; h++) {
            const float *x = inp + (size_t)h * HS;
            float *o = out + (size_t)h * HS;
            double x1 = x[i], x2 = x[i + h2];
            if (backward) { /* transpose of [[c,-s],[s,c]] */
                o[i] += (float)(x1 * c + x2 * s);
                o[i + h2] += (float)(x2 * c - x1 * s);
            } else {
                o[i] = (float)(x1 * c - x2 * s);
                o[i + h2] = (float)(x2 * c + x1 * s);
            }
        }
    }
}

// inp, out are (B,T,NH*HS); inv_freq is (HS/2)
void op_rope_freqs_forward(float *out, const float *inp, const int *pos, int pos0, int B, int T, int NH,
                           int HS, const float *inv_freq) {
    size_t D = (size_t)NH * HS;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * D > 16384) /* a decode step's rows: no fork */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t n = (size_t)b * T + t;
            int p = pos ? pos[n] : pos0 + t;
            rope_token(out + n * D, inp + n * D, p, NH, HS, inv_freq, 0);
        }
}

// dout, dinp are (B,T,NH*HS)
void op_rope_freqs_backward(float *dinp, const float *dout, const int *pos, int pos0, int B, int T, int NH,
                            int HS, const float *inv_freq) {
    size_t D = (size_t)NH * HS;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * D > 16384) /* a decode step's rows: no fork */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t n = (size_t)b * T + t;
            int p = pos ? pos[n] : pos0 + t;
            rope_token(dinp + n * D, dout + n * D, p, NH, HS, inv_freq, 1);
        }
}

void op_rope_inv_freq(const rope_params *p, int HS, float *inv_freq) {
    for (int i = 0; i < HS / 2; i++) {
        /* float32 as transformers: 1 / theta^(2i/HS) */
        float e = (float)(2 * i) / (float)HS;
        float f = (float)(1.0 / pow(p->theta, (double)e));
        if (p->scaling == ROPE_SCALING_LINEAR) {
            f = (float)(f / p->factor); /* pos/factor · f, folded into the frequency */
        } else if (p->scaling == ROPE_SCALING_LLAMA3) {
            /* wavelengths longer than orig/low_freq_factor are slowed by factor, shorter than
             * orig/high_freq_factor kept, and the band between interpolated smoothly */
            double L = p->original_max_positions, lo = p->low_freq_factor, hi = p->high_freq_factor;
            double wavelen = 6.283185307179586 / f, low_wl = L / lo, high_wl = L / hi, g = f;
            if (wavelen > low_wl) g = f / p->factor;
            else if (wavelen >= high_wl) {
                double s = (L / wavelen - lo) / (hi - lo);
                g = (1.0 - s) * f / p->factor + s * f;
            }
            f = (float)g;
        }
        inv_freq[i] = f;
    }
}
