/* ggml block formats: type table, dequantizers (ggml reference order of operations, so results are
 * bit-identical), and the reference quantizers for F16, BF16, Q8_0, Q4_0 and Q4_1.
 * Blocks are read byte by byte (explicit little-endian), so rows may sit at any alignment. */
#include "lorac/quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    uint16_t block; /* elements per block */
    uint16_t size;  /* bytes per block */
} TYPES[QUANT_TYPE_LIMIT] = {
    [QUANT_F32] = {"F32", 1, 4},          [QUANT_F16] = {"F16", 1, 2},
    [QUANT_Q4_0] = {"Q4_0", 32, 18},      [QUANT_Q4_1] = {"Q4_1", 32, 20},
    [QUANT_Q5_0] = {"Q5_0", 32, 22},      [QUANT_Q5_1] = {"Q5_1", 32, 24},
    [QUANT_Q8_0] = {"Q8_0", 32, 34},      [QUANT_Q8_1] = {"Q8_1", 32, 40},
    [QUANT_Q2_K] = {"Q2_K", 256, 84},     [QUANT_Q3_K] = {"Q3_K", 256, 110},
    [QUANT_Q4_K] = {"Q4_K", 256, 144},    [QUANT_Q5_K] = {"Q5_K", 256, 176},
    [QUANT_Q6_K] = {"Q6_K", 256, 210},    [QUANT_Q8_K] = {"Q8_K", 256, 292},
    [QUANT_IQ2_XXS] = {"IQ2_XXS", 256, 66}, [QUANT_IQ2_XS] = {"IQ2_XS", 256, 74},
    [QUANT_IQ3_XXS] = {"IQ3_XXS", 256, 98}, [QUANT_IQ1_S] = {"IQ1_S", 256, 50},
    [QUANT_IQ4_NL] = {"IQ4_NL", 32, 18},  [QUANT_IQ3_S] = {"IQ3_S", 256, 110},
    [QUANT_IQ2_S] = {"IQ2_S", 256, 82},   [QUANT_IQ4_XS] = {"IQ4_XS", 256, 136},
    [QUANT_I8] = {"I8", 1, 1},            [QUANT_I16] = {"I16", 1, 2},
    [QUANT_I32] = {"I32", 1, 4},          [QUANT_I64] = {"I64", 1, 8},
    [QUANT_F64] = {"F64", 1, 8},          [QUANT_IQ1_M] = {"IQ1_M", 256, 56},
    [QUANT_BF16] = {"BF16", 1, 2},        [QUANT_TQ1_0] = {"TQ1_0", 256, 54},
    [QUANT_TQ2_0] = {"TQ2_0", 256, 66},   [QUANT_MXFP4] = {"MXFP4", 32, 17},
    [QUANT_NVFP4] = {"NVFP4", 64, 36},    [QUANT_Q1_0] = {"Q1_0", 128, 18},
};

const char *quant_type_name(int type) {
    return type >= 0 && type < QUANT_TYPE_LIMIT ? TYPES[type].name : NULL;
}

size_t quant_block_size(int type) { return quant_type_name(type) ? TYPES[type].block : 0; }

size_t quant_type_size(int type) { return quant_type_name(type) ? TYPES[type].size : 0; }

int quant_row_size(int type, size_t n, size_t *bytes) {
    size_t bs = quant_block_size(type);
    if (!bs || n % bs) return LORAC_EINVAL;
    return lorac_size_mul(n / bs, quant_type_size(type), bytes) ? LORAC_ENOMEM : LORAC_OK;
}

int quant_can_dequantize(int type) {
    switch (type) {
    case QUANT_F32: case QUANT_F16: case QUANT_BF16: case QUANT_Q8_0: case QUANT_Q4_0:
    case QUANT_Q4_1: case QUANT_Q5_0: case QUANT_Q5_1: case QUANT_Q4_K: case QUANT_Q5_K:
    case QUANT_Q6_K:
        return 1;
    default:
        return 0;
    }
}

int quant_can_quantize(int type) {
    switch (type) {
    case QUANT_F32: case QUANT_F16: case QUANT_BF16: case QUANT_Q8_0: case QUANT_Q4_0:
    case QUANT_Q4_1: case QUANT_Q4_K: case QUANT_Q6_K:
        return 1;
    default:
        return 0;
    }
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
/* binary16 -> binary32 for the normal numbers in a few integer ops (the common case; exact, as
 * every binary16 is a binary32), the rest through lorac_f16_to_f32. */
static inline float f16_to_f32(uint16_t h) {
    const uint32_t e = h & 0x7c00u;
    if (e == 0 || e == 0x7c00u) return lorac_f16_to_f32(h);
    const uint32_t u = ((uint32_t)(h & 0x8000u) << 16) | (((uint32_t)(h & 0x7fffu) + (112u << 10)) << 13);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline float rdf16(const uint8_t *p) { return f16_to_f32(rd16(p)); }
static inline void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* ---- dequantizers: one block of TYPES[t].block elements from b into y ---- */

static void deq_q8_0(const uint8_t *restrict b, float *restrict y) {
    const float d = rdf16(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

static void deq_q4_0(const uint8_t *restrict b, float *restrict y) {
    const float d = rdf16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

static void deq_q4_1(const uint8_t *restrict b, float *restrict y) {
    const float d = rdf16(b), m = rdf16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 0x0F) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

static void deq_q5_0(const uint8_t *restrict b, float *restrict y) {
    const float d = rdf16(b);
    const uint32_t qh = rd32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        const int x0 = ((qs[j] & 0x0F) | (int)(((qh >> j) << 4) & 0x10)) - 16;
        const int x1 = ((qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10)) - 16;
        y[j] = (float)x0 * d;
        y[j + 16] = (float)x1 * d;
    }
}

static void deq_q5_1(const uint8_t *restrict b, float *restrict y) {
    const float d = rdf16(b), m = rdf16(b + 2);
    const uint32_t qh = rd32(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        const int x0 = (qs[j] & 0x0F) | (int)(((qh >> j) << 4) & 0x10);
        const int x1 = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
        y[j] = (float)x0 * d + m;
        y[j + 16] = (float)x1 * d + m;
    }
}

/* The 12 scale bytes of Q4_K/Q5_K pack 8 six-bit scales and 8 six-bit mins. */
static void k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void deq_q4_k(const uint8_t *restrict b, float *restrict y) {
    const float d = rdf16(b), dmin = rdf16(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
        uint8_t sc, m;
        k4_scale_min(is, scales, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        k4_scale_min(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
    }
}

static void deq_q5_k(const uint8_t *restrict b, float *restrict y) {
    const float d = rdf16(b), dmin = rdf16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *ql = b + 48;
    unsigned u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
        uint8_t sc, m;
        k4_scale_min(is, scales, &sc, &m);
        const float d1 = d * sc, m1 = dmin * m;
        k4_scale_min(is + 1, scales, &sc, &m);
        const float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
}

static void deq_q6_k(const uint8_t *restrict b, float *restrict y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = rdf16(b + 208);
    for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
        /* ggml's loop over l = 0..31 with is = l/16, split in two halves so each has constant
         * scales (d*sc computed first, as ggml's d * sc[is] * q) and vectorises */
        for (int is = 0; is < 2; is++) {
            const float s1 = d * (float)sc[is], s2 = d * (float)sc[is + 2];
            const float s3 = d * (float)sc[is + 4], s4 = d * (float)sc[is + 6];
            for (int l = 16 * is; l < 16 * is + 16; l++) {
                const int q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = s1 * (float)q1;
                y[l + 32] = s2 * (float)q2;
                y[l + 64] = s3 * (float)q3;
                y[l + 96] = s4 * (float)q4;
            }
        }
    }
}

typedef void (*deq_fn)(const uint8_t *, float *);

static deq_fn block_dequantizer(int type) {
    switch (type) {
    case QUANT_Q8_0: return deq_q8_0;
    case QUANT_Q4_0: return deq_q4_0;
    case QUANT_Q4_1: return deq_q4_1;
    case QUANT_Q5_0: return deq_q5_0;
    case QUANT_Q5_1: return deq_q5_1;
    case QUANT_Q4_K: return deq_q4_k;
    case QUANT_Q5_K: return deq_q5_k;
    case QUANT_Q6_K: return deq_q6_k;
    default: return NULL;
    }
}

static int check_row(int type, size_t n) {
    if (!quant_can_dequantize(type)) return LORAC_EUNSUPPORTED;
    return n % quant_block_size(type) ? LORAC_EINVAL : LORAC_OK;
}

int quant_row_to_f32(int type, const void *src, float *dst, size_t n) {
    int rc = check_row(type, n);
    if (rc) return rc;
    const uint8_t *s = src;
    switch (type) {
    case QUANT_F32:
        if (n) memcpy(dst, s, n * sizeof(float));
        return LORAC_OK;
    case QUANT_F16:
        for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(rd16(s + 2 * i));
        return LORAC_OK;
    case QUANT_BF16:
        for (size_t i = 0; i < n; i++) {
            const uint32_t u = (uint32_t)rd16(s + 2 * i) << 16; /* lorac_bf16_to_f32, inlined */
            memcpy(&dst[i], &u, sizeof u);
        }
        return LORAC_OK;
    default: {
        deq_fn f = block_dequantizer(type);
        const size_t bs = TYPES[type].block, ts = TYPES[type].size;
        for (size_t i = 0; i < n / bs; i++) f(s + i * ts, dst + i * bs);
        return LORAC_OK;
    }
    }
}

int quant_row_dot(int type, const void *row, const float *x, size_t n, float *out) {
    int rc = check_row(type, n);
    if (rc) return rc;
    const uint8_t *s = row;
    const size_t bs = TYPES[type].block, ts = TYPES[type].size;
    /* one block at a time (the 1-element types 256 elements at a time) through a stack buffer;
     * 8 float lanes within a block (they vectorise), block sums added in double */
    const size_t step = bs > 1 ? bs : 256;
    float buf[256];
    double acc = 0.0;
    for (size_t i = 0; i < n; i += step) {
        const size_t m = n - i < step ? n - i : step, m8 = m / 8 * 8;
        quant_row_to_f32(type, s + i / bs * ts, buf, m);
        float lane[8] = {0};
        for (size_t j = 0; j < m8; j += 8)
            for (int k = 0; k < 8; k++) lane[k] += buf[j + k] * x[i + j + k];
        for (size_t j = m8; j < m; j++) lane[0] += buf[j] * x[i + j];
        acc += (double)(((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7])));
    }
    *out = (float)acc;
    return LORAC_OK;
}

/* ---- quantizers (ggml's quantize_row_*_ref) ---- */

/* Truncates a value already known to be about in [0, hi+1] to an integer in [0, hi], as
 * MIN(hi, (int8_t)v) does in ggml, without undefined casts for NaN or huge values. */
static inline uint8_t trunc_clamp(float v, int hi) {
    if (!(v >= 0.0f)) return 0;
    if (v >= (float)hi) return (uint8_t)hi;
    return (uint8_t)(int)v;
}

static void q_q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    wr16(b, lorac_f32_to_f16(d));
    for (int j = 0; j < 32; j++) {
        float v = roundf(x[j] * id);
        v = v > 127.0f ? 127.0f : v < -128.0f ? -128.0f : v; /* |x*id| <= 127 unless d is 0 or NaN */
        b[2 + j] = (uint8_t)(int8_t)(v == v ? (int)v : 0);
    }
}

static void q_q4_0(const float *x, uint8_t *b) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    wr16(b, lorac_f32_to_f16(d));
    for (int j = 0; j < 16; j++) {
        /* separate statements: the product is rounded before the add (no FMA contraction) */
        const float s0 = x[j] * id, s1 = x[j + 16] * id;
        const uint8_t x0 = trunc_clamp(s0 + 8.5f, 15), x1 = trunc_clamp(s1 + 8.5f, 15);
        b[2 + j] = (uint8_t)(x0 | (x1 << 4));
    }
}

static void q_q4_1(const float *x, uint8_t *b) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    wr16(b, lorac_f32_to_f16(d));
    wr16(b + 2, lorac_f32_to_f16(min));
    for (int j = 0; j < 16; j++) {
        const float s0 = (x[j] - min) * id, s1 = (x[j + 16] - min) * id;
        const uint8_t x0 = trunc_clamp(s0 + 0.5f, 15), x1 = trunc_clamp(s1 + 0.5f, 15);
        b[4 + j] = (uint8_t)(x0 | (x1 << 4));
    }
}

/* ---- K-quant quantizers (ggml's quantize_row_q4_K_ref / quantize_row_q6_K_ref) ----
 * Each searches per sub-block for the scale (and min) with the least weighted squared error,
 * then quantizes the sub-block scales themselves to 6 or 8 bits. Every float operation below
 * keeps the reference's order, which is what makes the bytes identical. */

/* Round to nearest, ties to even, by adding 1.5*2^23 (exact for |v| < 2^22, as in ggml; larger
 * values give a wrong but defined result, later clamped like ggml's). */
static inline int nearest_int(float v) {
    const float t = v + 12582912.f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Q6_K's sub-block search (ggml's make_qx_quants, rmse_type 1, no importance weights): weights
 * x^2, L[i] = l + nmax with l in [-nmax, nmax), x ~ scale*l. Tries 19 scales around nmax/max. */
static float qx_scale_search(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Q4_K's sub-block search (ggml's make_qkx2_quants, squared error): x ~ scale*L - *the_min with
 * L in [0, nmax]; tries nstep+1 scales from (nmax + rmin)/(max - min) upward by rdelta, each with
 * the least-squares scale and min for its L. */
static float qkx2_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                            uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = (float)nmax / (max - min), scale = 1 / iscale, best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * (float)L[i] + min - x[i];
        diff = diff * diff;
        best_error += w[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = diff * diff;
                cur_error += w[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

static void q_q4_k(const float *x, uint8_t *b) {
    uint8_t L[256], Laux[32], *scales = b + 4, *q = b + 16;
    float weights[32], mins[8], sc[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        sc[j] = qkx2_scale_min(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20);
        if (sc[j] > max_scale) max_scale = sc[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f, inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * sc[j]), lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            scales[j] = ls;
            scales[j + 4] = lm;
        } else {
            scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    wr16(b, lorac_f32_to_f16(max_scale / 63.f));
    wr16(b + 2, lorac_f32_to_f16(max_min / 63.f));
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        k4_scale_min(j, scales, &s, &m);
        const float d = rdf16(b) * s;
        if (d == 0.0f) continue;
        const float dm = rdf16(b + 2) * m;
        for (int i = 0; i < 32; i++) L[32 * j + i] = (uint8_t)clampi(nearest_int((x[32 * j + i] + dm) / d), 0, 15);
    }
    for (int j = 0; j < 256; j += 64, q += 32)
        for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
}

static void q_q6_k(const float *x, uint8_t *b) {
    int8_t L[256];
    float sc[16], max_scale = 0, max_abs = 0;
    for (int ib = 0; ib < 16; ib++) {
        sc[ib] = qx_scale_search(16, 32, x + 16 * ib, L + 16 * ib);
        if (fabsf(sc[ib]) > max_abs) {
            max_abs = fabsf(sc[ib]);
            max_scale = sc[ib];
        }
    }
    memset(b, 0, 210);
    if (max_abs < 1e-15f) return; /* all zero: d = 0 */
    uint8_t *ql = b, *qh = b + 128;
    int8_t *scales = (int8_t *)(b + 192);
    const float iscale = -128.f / max_scale;
    wr16(b + 208, lorac_f32_to_f16(1 / iscale));
    for (int ib = 0; ib < 16; ib++) {
        const int v = nearest_int(iscale * sc[ib]);
        scales[ib] = (int8_t)(v < 127 ? v : 127);
    }
    for (int j = 0; j < 16; j++) {
        const float d = rdf16(b + 208) * scales[j];
        if (d == 0.0f) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(clampi(nearest_int(x[16 * j + i] / d), -32, 31) + 32);
    }
    for (int j = 0; j < 256; j += 128, ql += 64, qh += 32) {
        for (int l = 0; l < 32; l++) {
            const int l0 = L[j + l], l1 = L[j + l + 32], l2 = L[j + l + 64], l3 = L[j + l + 96];
            ql[l] = (uint8_t)((l0 & 0xF) | ((l2 & 0xF) << 4));
            ql[l + 32] = (uint8_t)((l1 & 0xF) | ((l3 & 0xF) << 4));
            qh[l] = (uint8_t)((l0 >> 4) | ((l1 >> 4) << 2) | ((l2 >> 4) << 4) | ((l3 >> 4) << 6));
        }
    }
}

int quant_row_from_f32(int type, const float *src, void *dst, size_t n) {
    if (!quant_can_quantize(type)) return LORAC_EUNSUPPORTED;
    const size_t bs = TYPES[type].block, ts = TYPES[type].size;
    if (n % bs) return LORAC_EINVAL;
    uint8_t *d = dst;
    switch (type) {
    case QUANT_F32:
        if (n) memcpy(d, src, n * sizeof(float));
        break;
    case QUANT_F16:
        for (size_t i = 0; i < n; i++) wr16(d + 2 * i, lorac_f32_to_f16(src[i]));
        break;
    case QUANT_BF16:
        for (size_t i = 0; i < n; i++) wr16(d + 2 * i, lorac_f32_to_bf16(src[i]));
        break;
    default: {
        void (*f)(const float *, uint8_t *) = type == QUANT_Q8_0   ? q_q8_0
                                              : type == QUANT_Q4_0 ? q_q4_0
                                              : type == QUANT_Q4_1 ? q_q4_1
                                              : type == QUANT_Q4_K ? q_q4_k
                                                                   : q_q6_k;
        for (size_t i = 0; i < n / bs; i++) f(src + i * bs, d + i * ts);
    }
    }
    return LORAC_OK;
}
