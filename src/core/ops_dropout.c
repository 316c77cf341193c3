/* Inverted dropout with a mask drawn serially from the run's rng, so it is reproducible. */
#include "lorac/ops.h"

#include <stddef.h>
#include <string.h>

void op_dropout_forward(float *out, uint8_t *mask, const float *inp, float p, size_t n, lorac_rng *rng) {
    // inp, out, mask are (n)
    if (p <= 0.0f) {
        if (out != inp) memmove(out, inp, n * sizeof(float));
        return;
    }
    /* keep with probability 1-p; p >= 1 drops everything (and the scale is never used) */
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (size_t i = 0; i < n; i++) {
        uint8_t keep = lorac_rng_uniform(rng) >= p;
        mask[i] = keep;
        out[i] = keep ? inp[i] * scale : 0.0f;
    }
}

void op_dropout_backward(float *dinp, const float *dout, const uint8_t *mask, float p, size_t n) {
    if (p <= 0.0f) {
        for (size_t i = 0; i < n; i++) dinp[i] += dout[i];
        return;
    }
    if (p >= 1.0f) return; /* out was the constant 0 */
    float scale = 1.0f / (1.0f - p);
    // out = inp·mask/(1-p)
    for (size_t i = 0; i < n; i++)
        if (mask[i]) dinp[i] += dout[i] * scale;
}
