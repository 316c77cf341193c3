/* Direct products of activation rows with a weight kept in a GGUF block type (decode steps: one
 * token per sequence, any number of sequences), without dequantizing the weight to fp32. What llama.cpp does:
 * the activations are quantized to 8 bits per block of 32 (a float scale d and 32 int8 q, |q| <= 127,
 * q = round(x/d), d = max|x|/127), and each block product is an exact integer sum times the two
 * scales (plus the weight's min times d·sum(q) for Q4_1 and Q4_K).
 *
 * The lane model, which every kernel level computes to the bit: a block of 32 products is summed in
 * 8 int32 lanes (lane l: elements 4l..4l+3, exact), each lane is converted to float, multiplied by
 * its scale (weight scale · activation scale, rounded once) and added to a float lane accumulator
 * in one fused multiply-add (one rounding: fmaf in C, vfmadd in SIMD; one float operation fewer per
 * block and row than multiply-then-add, which is what bounds several rows' products) of set 0 for
 * even blocks, set 1 for odd ones (two independent chains); the min terms (one float per block) go
 * to two scalar sums as a multiply, then an add (no FMA). At the end the
 * two sets are added lane by lane, the 8 lanes reduced in one fixed order, and the two min sums
 * added. So AVX-512 (VNNI), AVX2 and plain C give the same bits,
 * and each output is computed by one thread in one order: the same bits for any thread count. */
#ifndef LORAC_CORE_QDOT_H
#define LORAC_CORE_QDOT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lorac/base.h"

/* at most this many activation rows share one pass over a weight row (their accumulators are kept
 * in registers); more rows go in groups */
#define QDOT_GROUP_ROWS 8
/* Bytes ahead of the weight block being read that the x86 kernels prefetch: the weights stream from
 * memory once per product, and the hardware prefetcher stops at each 4 KiB page (measured: about 15%
 * less CPU for a SmolLM2 Q4_1 decode at 1 thread). A hint only: no bits change. */
#define QDOT_PREFETCH 1024
#define QDOT_BLOCK 32

/* M rows of C activations quantized per block of 32: q (M, C) int8, d (M, C/32) the block scales,
 * ds (M, C/32) = d · sum of the block's q (for the min terms). The AVX-512 kernel, which takes two
 * blocks at a time and several rows' min terms in one vector, also reads the same numbers laid out
 * for it: dx2 (M, np = ceil(nb/2), 16) = block 2p's d in lanes 0-7 and block 2p+1's (0 past the
 * end) in lanes 8-15, and dsT (nb, ldT) = ds transposed (dsT[b·ldT + m] = ds[m·nb + b]). */
typedef struct qdot_act {
    int M, nb;
    int8_t *q;
    float *d, *ds;
    float *dx2, *dsT;
    int ldT;
} qdot_act;
/* Floats of scales (d, ds, dx2, dsT) for M rows of nb blocks: the caller sizes the arrays by it. */
static inline size_t qdot_act_scales(int M, int nb) {
    return (size_t)M * nb * 3 + (size_t)M * ((nb + 1) / 2) * 16;
}

/* The view of a's rows m0.. (as many as a has left) */
static inline qdot_act qdot_act_rows(const qdot_act *a, int m0) {
    const size_t k = (size_t)m0 * a->nb;
    qdot_act s = {a->M - m0, a->nb, a->q + k * QDOT_BLOCK, a->d + k, a->ds + k,
                  a->dx2 + (size_t)m0 * ((a->nb + 1) / 2) * 16, a->dsT + m0, a->ldT};
    return s;
}
/* Whether the direct kernels handle TYPE (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K). */
int qdot_supports(int type);
/* Quantizes x (M, C) into a (C a multiple of 32; a's arrays sized by the caller). */
void qdot_quantize_act(qdot_act *a, const float *x, int M, int C);
/* One block of 32 floats: q = nearest-even(x·(1/d)) clamped to [-127, 127], d = max|x|/127 (NaN as
 * 0), returns the sum of q; the AVX2 version gives the same bits (qdot_quantize_act picks it). */
int qdot_quantize_block_generic(const float *xb, int8_t *q, float *d);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
int qdot_quantize_block_avx2(const float *xb, int8_t *q, float *d);
#endif
/* out[m*ldo + r] = dot(row r of W, activation row m) for r in [r0, r1): W holds rows of rb bytes of
 * TYPE; any number of activation rows (a->M >= 1); one function per kernel level, same bits (above),
 * and each output the same bits whatever the other activation rows. */
void qdot_rows_generic(int type, const uint8_t *W, size_t rb, int r0, int r1, const qdot_act *a, float *out,
                       int ldo);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
void qdot_rows_avx2(int type, const uint8_t *W, size_t rb, int r0, int r1, const qdot_act *a, float *out, int ldo);
/* AVX-512 BW + VNNI (qdot_avx512.c) */
void qdot_rows_vnni(int type, const uint8_t *W, size_t rb, int r0, int r1, const qdot_act *a, float *out, int ldo);
#endif

/* little-endian binary16 at p as float (exact): normal numbers in a few integer ops, the rest
 * through lorac_f16_to_f32 */
static inline float qdot_f16(const uint8_t *p) {
    const uint32_t h = (uint32_t)p[0] | (uint32_t)p[1] << 8, e = h & 0x7c00u;
    if (e == 0 || e == 0x7c00u) return lorac_f16_to_f32((uint16_t)h);
    const uint32_t u = ((h & 0x8000u) << 16) | (((h & 0x7fffu) + (112u << 10)) << 13);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
/* Q4_K/Q5_K's six-bit scale and min of sub-block j (as ggml's get_scale_min_k4) */
void qdot_k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m);

#endif
