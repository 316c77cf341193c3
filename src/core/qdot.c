/* Direct decode products, plain C level: the activation quantizer (qdot_x86.c has an AVX2 twin with
 * the same bits, which both SIMD levels take) and the reference implementation of the lane model
 * (qdot.h) that the AVX2 and AVX-512 kernels (qdot_x86.c, qdot_avx512.c) reproduce to the bit. */
#include "core/qdot.h"

#include "core/simd.h"

#include "lorac/quant.h"

#include <math.h>

/* the lane model's FMAs are explicit (fmaf); its other multiply-then-adds must not become FMAs (GCC
 * in ISO C mode never contracts; clang would where the target has FMA) */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

int qdot_supports(int type) {
    return type == QUANT_Q4_0 || type == QUANT_Q4_1 || type == QUANT_Q8_0 || type == QUANT_Q4_K || type == QUANT_Q6_K;
}

/* round to nearest, ties to even, for |v| < 2^22 (as ggml's nearest_int) */
static inline int nearest_int(float v) {
    const float t = v + 12582912.f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* one block of 32: q, its scale *d, and the sum of q returned */
int qdot_quantize_block_generic(const float *xb, int8_t *q, float *d) {
    /* max |x| as a tree of fixed-length loops (max is exact, so any order gives the same value); NaN
     * counts as 0 */
    float ax[QDOT_BLOCK];
    for (int j = 0; j < QDOT_BLOCK; j++) ax[j] = fabsf(xb[j]) > 0.0f ? fabsf(xb[j]) : 0.0f;
    for (int w = QDOT_BLOCK / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) ax[j] = ax[j + w] > ax[j] ? ax[j + w] : ax[j];
    *d = ax[0] / 127.0f;
    const float id = *d != 0.0f ? 1.0f / *d : 0.0f;
    int sum = 0;
    for (int j = 0; j < QDOT_BLOCK; j++) {
        int v = nearest_int(xb[j] * id); /* |x·id| <= 127 up to rounding; NaN/inf give junk, clamped */
        v = v > 127 ? 127 : v < -127 ? -127 : v;
        q[j] = (int8_t)v;
        sum += v;
    }
    return sum;
}

void qdot_quantize_act(qdot_act *a, const float *x, int M, int C) {
    a->M = M;
    a->nb = C / QDOT_BLOCK;
    a->ldT = M;
    int (*block)(const float *, int8_t *, float *) = qdot_quantize_block_generic;
#ifdef LORAC_X86_KERNELS
    if (lorac_isa_active() >= LORAC_ISA_AVX2) block = qdot_quantize_block_avx2;
#endif
    for (int m = 0; m < M; m++)
        for (int b = 0; b < a->nb; b++) {
            float d;
            const int sum = block(x + (size_t)m * C + (size_t)b * QDOT_BLOCK, a->q + (size_t)m * C + (size_t)b * QDOT_BLOCK, &d);
            a->d[(size_t)m * a->nb + b] = d;
            a->ds[(size_t)m * a->nb + b] = d * (float)sum;
            a->dsT[(size_t)b * a->ldT + m] = a->ds[(size_t)m * a->nb + b];
            float *x2 = a->dx2 + ((size_t)m * ((a->nb + 1) / 2) + b / 2) * 16 + (b & 1) * 8;
            for (int l = 0; l < 8; l++) x2[l] = d;
            if (b + 1 == a->nb && !(b & 1))
                for (int l = 8; l < 16; l++) x2[l] = 0.0f; /* the pair past the last block */
        }
}

void qdot_k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* The lane model's step for weight block w (32 int8, in element order) against activation block ib
 * of every row: lane l += (sw[l]·d_x)·sum of 4 products; accm += mw·ds_x when the type has a min. */
static void update_(const qdot_act *a, int ib, const int8_t *w, const float sw[8], float mw, int has_min,
                    float (*acc2)[QDOT_GROUP_ROWS][8], float (*accm2)[QDOT_GROUP_ROWS]) {
    float (*acc)[8] = acc2[ib & 1], *accm = accm2[ib & 1]; /* even blocks in set 0, odd in set 1 */
    for (int m = 0; m < a->M; m++) {
        const size_t k = (size_t)m * a->nb + ib;
        const int8_t *x = a->q + k * QDOT_BLOCK;
        const float dx = a->d[k];
        for (int l = 0; l < 8; l++) {
            const int s = w[4 * l] * x[4 * l] + w[4 * l + 1] * x[4 * l + 1] + w[4 * l + 2] * x[4 * l + 2] +
                          w[4 * l + 3] * x[4 * l + 3];
            acc[m][l] = fmaf(sw[l] * dx, (float)s, acc[m][l]);
        }
        if (has_min) accm[m] = accm[m] + mw * a->ds[k];
    }
}

/* one row's blocks through update_; returns nothing, leaves the sums in acc/accm */
static void row_generic_(int type, const uint8_t *b, const qdot_act *a, float (*acc)[QDOT_GROUP_ROWS][8],
                         float (*accm)[QDOT_GROUP_ROWS]) {
    int8_t w[32];
    float sw[8];
    const int nb = a->nb;
    if (type == QUANT_Q4_0 || type == QUANT_Q4_1 || type == QUANT_Q8_0) {
        const size_t ts = quant_type_size(type);
        for (int ib = 0; ib < nb; ib++, b += ts) {
            const float d = qdot_f16(b);
            for (int l = 0; l < 8; l++) sw[l] = d;
            if (type == QUANT_Q8_0) {
                memcpy(w, b + 2, 32);
            } else {
                const uint8_t *qs = b + (type == QUANT_Q4_0 ? 2 : 4);
                const int off = type == QUANT_Q4_0 ? 8 : 0;
                for (int j = 0; j < 16; j++) {
                    w[j] = (int8_t)((qs[j] & 15) - off);
                    w[j + 16] = (int8_t)((qs[j] >> 4) - off);
                }
            }
            update_(a, ib, w, sw, type == QUANT_Q4_1 ? qdot_f16(b + 2) : 0.0f, type == QUANT_Q4_1, acc, accm);
        }
    } else if (type == QUANT_Q4_K) {
        for (int ib = 0; ib < nb; ib += 8, b += 144) {
            const float d = qdot_f16(b), dmin = qdot_f16(b + 2);
            for (int j = 0; j < 8; j++) {
                uint8_t sc, mn;
                qdot_k4_scale_min(j, b + 4, &sc, &mn);
                const uint8_t *q = b + 16 + 32 * (j / 2);
                for (int l = 0; l < 32; l++) w[l] = (int8_t)(j & 1 ? q[l] >> 4 : q[l] & 15);
                for (int l = 0; l < 8; l++) sw[l] = d * (float)sc;
                update_(a, ib + j, w, sw, -(dmin * (float)mn), 1, acc, accm);
            }
        }
    } else { /* Q6_K */
        for (int ib = 0; ib < nb; ib += 8, b += 210) {
            const float d = qdot_f16(b + 208);
            for (int h = 0; h < 2; h++) {
                const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
                const int8_t *sc = (const int8_t *)(b + 192 + 8 * h);
                for (int k = 0; k < 4; k++) {
                    const uint8_t *lo = ql + 32 * (k & 1);
                    for (int l = 0; l < 32; l++)
                        w[l] = (int8_t)((((k < 2 ? lo[l] : lo[l] >> 4) & 15) | (((qh[l] >> (2 * k)) & 3) << 4)) - 32);
                    for (int l = 0; l < 8; l++) sw[l] = d * (float)sc[2 * k + l / 4];
                    update_(a, ib + 4 * h + k, w, sw, 0.0f, 0, acc, accm);
                }
            }
        }
    }
}

/* rows [r0, r1) for a's rows, at most QDOT_GROUP_ROWS of them */
static void rows_group_(int type, const uint8_t *W, size_t rb, int r0, int r1, const qdot_act *a, float *out, int ldo) {
    float acc[2][QDOT_GROUP_ROWS][8], accm[2][QDOT_GROUP_ROWS];
    for (int r = r0; r < r1; r++) {
        memset(acc, 0, sizeof acc);
        memset(accm, 0, sizeof accm);
        row_generic_(type, W + (size_t)r * rb, a, acc, accm);
        for (int m = 0; m < a->M; m++) {
            float h[8];
            for (int l = 0; l < 8; l++) h[l] = acc[0][m][l] + acc[1][m][l];
            out[(size_t)m * ldo + r] =
                (((h[0] + h[4]) + (h[2] + h[6])) + ((h[1] + h[5]) + (h[3] + h[7]))) + (accm[0][m] + accm[1][m]);
        }
    }
}

void qdot_rows_generic(int type, const uint8_t *W, size_t rb, int r0, int r1, const qdot_act *a, float *out,
                       int ldo) {
    for (int m0 = 0; m0 < a->M; m0 += QDOT_GROUP_ROWS) {
        qdot_act sub = qdot_act_rows(a, m0);
        if (sub.M > QDOT_GROUP_ROWS) sub.M = QDOT_GROUP_ROWS;
        rows_group_(type, W, rb, r0, r1, &sub, out + (size_t)m0 * ldo, ldo);
    }
}
