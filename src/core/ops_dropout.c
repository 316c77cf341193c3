/* Inverted dropout. The mask is a function of one draw from the run's rng and the element index
 * (a counter-based stream: splitmix64 of key + i), so it is reproducible, independent of the
 * thread count, and filled by all threads. */
#include "lorac/ops.h"

#include <stddef.h>
#include <string.h>

/* below this many values a parallel region costs more than it saves */
#define DROPOUT_PAR_MIN 65536

/* uniform in [0, 1) with 24 bits from element i of the stream keyed by key */
static inline float stream_uniform(uint64_t key, uint64_t i) {
    uint64_t z = key + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

void op_dropout_forward(float *out, uint8_t *mask, const float *inp, float p, size_t n, lorac_rng *rng) {
    // inp, out, mask are (n)
    if (p <= 0.0f) {
        if (out != inp) memmove(out, inp, n * sizeof(float));
        return;
    }
    /* keep with probability 1-p; p >= 1 drops everything (and the scale is never used) */
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    uint64_t key = lorac_rng_u64(rng);
#pragma omp parallel for simd schedule(static) if (n > DROPOUT_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        uint8_t keep = stream_uniform(key, i) >= p;
        mask[i] = keep;
        out[i] = keep ? inp[i] * scale : 0.0f;
    }
}

void op_dropout_backward(float *dinp, const float *dout, const uint8_t *mask, float p, size_t n) {
    if (p <= 0.0f) {
#pragma omp parallel for simd schedule(static) if (n > DROPOUT_PAR_MIN)
        for (size_t i = 0; i < n; i++) dinp[i] += dout[i];
        return;
    }
    if (p >= 1.0f) return; /* out was the constant 0 */
    float scale = 1.0f / (1.0f - p);
    // out = inp·mask/(1-p)
#pragma omp parallel for simd schedule(static) if (n > DROPOUT_PAR_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] += mask[i] ? dout[i] * scale : 0.0f;
}
