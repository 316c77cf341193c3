/* The body of the 256-bit x86 direct decode kernel (qdot.h's lane model), included by qdot_x86.c
 * (the AVX2 level; written for any level with 256-bit integer dots); the includer defines
 *   QK_TGT          the target attribute of the level
 *   QK(name)        name with the level's suffix
 *   QK_DOT_U(w, x)  8 int32 lanes, lane l = sum over bytes 4l..4l+3 of w·x, w unsigned (0..127)
 *   QK_DOT_S(w, x)  the same with w signed (-128..127); x is always in [-127, 127]
 * Every level computes the same exact integer lanes, then the same float operations as
 * qdot_rows_generic, so all give the same bits. Not a header of its own: no include guard. */

/* lane l += (sw[l]·d_x)·lanes[l] for every activation row; accm += mw·ds_x when the type has a min */
QK_TGT static inline __attribute__((always_inline)) void QK(update)(const qdot_act *a, int M, int ib, __m256i w,
                                                                   int sgn, __m256 sw, float mw, int has_min,
                                                                   __m256 *acc, float *accm) {
#pragma GCC unroll 8
    for (int m = 0; m < M; m++) {
        const size_t k = (size_t)m * a->nb + ib;
        const __m256i x = _mm256_loadu_si256((const __m256i *)(a->q + k * QDOT_BLOCK));
        const __m256i s = sgn ? QK_DOT_S(w, x) : QK_DOT_U(w, x);
        const __m256 scale = _mm256_mul_ps(sw, _mm256_set1_ps(a->d[k]));
        acc[m] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(s), acc[m]);
        if (has_min) accm[m] = accm[m] + mw * a->ds[k];
    }
}

/* little-endian binary16 at p (F16C: exact, as qdot_f16) */
QK_TGT static inline __attribute__((always_inline)) float QK(f16)(const uint8_t *p) {
    return _cvtsh_ss((unsigned short)(p[0] | p[1] << 8));
}

/* 16 bytes of packed nibbles -> 32 bytes: low nibbles (elements 0..15), then high (16..31) */
QK_TGT static inline __attribute__((always_inline)) __m256i QK(nibbles16)(const uint8_t *p) {
    const __m128i v = _mm_loadu_si128((const __m128i *)p), m4 = _mm_set1_epi8(15);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
}

/* one Q4_0, Q4_1 or Q8_0 block (one per activation block) into the accumulator set acc/accm */
QK_TGT static inline __attribute__((always_inline)) void QK(block_32)(int type, const uint8_t *b, const qdot_act *a,
                                                                     int M, int ib, __m256 *acc, float *accm) {
    const __m256 sw = _mm256_set1_ps(QK(f16)(b));
    if (type == QUANT_Q8_0)
        QK(update)(a, M, ib, _mm256_loadu_si256((const __m256i *)(b + 2)), 1, sw, 0.0f, 0, acc, accm);
    else if (type == QUANT_Q4_0)
        QK(update)(a, M, ib, _mm256_sub_epi8(QK(nibbles16)(b + 2), _mm256_set1_epi8(8)), 1, sw, 0.0f, 0, acc, accm);
    else
        QK(update)(a, M, ib, QK(nibbles16)(b + 4), 0, sw, QK(f16)(b + 2), 1, acc, accm);
}

/* even blocks into set 0, odd into set 1 (two independent chains of float adds) */
QK_TGT static inline __attribute__((always_inline)) void QK(row_32)(int type, const uint8_t *b, const qdot_act *a,
                                                                   int M, __m256 (*acc)[QDOT_GROUP_ROWS],
                                                                   float (*accm)[QDOT_GROUP_ROWS]) {
    const size_t ts = type == QUANT_Q8_0 ? 34 : type == QUANT_Q4_0 ? 18 : 20;
    int ib = 0;
    for (; ib + 1 < a->nb; ib += 2, b += 2 * ts) {
        _mm_prefetch((const char *)b + QDOT_PREFETCH, _MM_HINT_T0);
        QK(block_32)(type, b, a, M, ib, acc[0], accm[0]);
        QK(block_32)(type, b + ts, a, M, ib + 1, acc[1], accm[1]);
    }
    if (ib < a->nb) QK(block_32)(type, b, a, M, ib, acc[0], accm[0]);
}

QK_TGT static inline __attribute__((always_inline)) void QK(row_q4_k)(const uint8_t *b, const qdot_act *a, int M,
                                                                     __m256 (*acc)[QDOT_GROUP_ROWS],
                                                                     float (*accm)[QDOT_GROUP_ROWS]) {
    const __m256i m4 = _mm256_set1_epi8(15);
    for (int ib = 0; ib < a->nb; ib += 8, b += 144) {
        const float d = QK(f16)(b), dmin = QK(f16)(b + 2);
        for (int j = 0; j < 8; j += 2) {
            _mm_prefetch((const char *)b + QDOT_PREFETCH + 32 * j, _MM_HINT_T0);
            const __m256i v = _mm256_loadu_si256((const __m256i *)(b + 16 + 16 * j));
            uint8_t sc, mn;
            qdot_k4_scale_min(j, b + 4, &sc, &mn);
            QK(update)(a, M, ib + j, _mm256_and_si256(v, m4), 0, _mm256_set1_ps(d * (float)sc), -(dmin * (float)mn), 1,
                       acc[0], accm[0]);
            qdot_k4_scale_min(j + 1, b + 4, &sc, &mn);
            QK(update)(a, M, ib + j + 1, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4), 0, _mm256_set1_ps(d * (float)sc),
                       -(dmin * (float)mn), 1, acc[1], accm[1]);
        }
    }
}

QK_TGT static inline __attribute__((always_inline)) void QK(row_q6_k)(const uint8_t *b, const qdot_act *a, int M,
                                                                     __m256 (*acc)[QDOT_GROUP_ROWS],
                                                                     float (*accm)[QDOT_GROUP_ROWS]) {
    const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3), c32 = _mm256_set1_epi8(32);
    for (int ib = 0; ib < a->nb; ib += 8, b += 210) {
        const float d = QK(f16)(b + 208);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b + 64 * h;
            const int8_t *sc = (const int8_t *)(b + 192 + 8 * h);
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h));
            _mm_prefetch((const char *)b + QDOT_PREFETCH + 128 * h, _MM_HINT_T0);
            _mm_prefetch((const char *)b + QDOT_PREFETCH + 128 * h + 64, _MM_HINT_T0);
            for (int k = 0; k < 4; k++) { /* unrolled: k's parity picks the set */
                const __m256i lo = k & 1 ? l1 : l0;
                const __m256i low4 = _mm256_and_si256(k < 2 ? lo : _mm256_srli_epi16(lo, 4), m4);
                const __m256i high2 = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k)), m2);
                const __m256i w = _mm256_sub_epi8(_mm256_or_si256(low4, _mm256_slli_epi16(high2, 4)), c32);
                const __m256 sw = _mm256_set_m128(_mm_set1_ps(d * (float)sc[2 * k + 1]), _mm_set1_ps(d * (float)sc[2 * k]));
                QK(update)(a, M, ib + 4 * h + k, w, 1, sw, 0.0f, 0, acc[k & 1], accm[k & 1]);
            }
        }
    }
}

/* ((h0+h4)+(h2+h6)) + ((h1+h5)+(h3+h7)), qdot_rows_generic's order (h = set 0 + set 1) */
QK_TGT static inline __attribute__((always_inline)) float QK(hsum)(__m256 v) {
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

/* rows [r0, r1) for M (<= QDOT_GROUP_ROWS) activation rows; inlined with M a constant (1, 2, 4, 8:
 * the accumulators stay in registers) */
QK_TGT static inline __attribute__((always_inline)) void QK(rows_m)(int type, const uint8_t *W, size_t rb, int r0,
                                                                   int r1, const qdot_act *a, int M, float *out,
                                                                   int ldo) {
    __m256 acc[2][QDOT_GROUP_ROWS];
    float accm[2][QDOT_GROUP_ROWS];
    for (int r = r0; r < r1; r++) {
#pragma GCC unroll 8
        for (int m = 0; m < M; m++)
            acc[0][m] = acc[1][m] = _mm256_setzero_ps(), accm[0][m] = accm[1][m] = 0.0f;
        const uint8_t *b = W + (size_t)r * rb;
        switch (type) {
        case QUANT_Q4_0: QK(row_32)(QUANT_Q4_0, b, a, M, acc, accm); break;
        case QUANT_Q4_1: QK(row_32)(QUANT_Q4_1, b, a, M, acc, accm); break;
        case QUANT_Q8_0: QK(row_32)(QUANT_Q8_0, b, a, M, acc, accm); break;
        case QUANT_Q4_K: QK(row_q4_k)(b, a, M, acc, accm); break;
        default: QK(row_q6_k)(b, a, M, acc, accm); break;
        }
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) out[(size_t)m * ldo + r] = QK(hsum)(_mm256_add_ps(acc[0][m], acc[1][m])) + (accm[0][m] + accm[1][m]);
    }
}

/* Any number of activation rows, in groups of 8, then 4, 2, 1 (each output's lanes never see the
 * other rows, so the grouping changes no bits); the weight rows [r0, r1) stay in cache across the
 * groups. */
QK_TGT void QK(qdot_rows)(int type, const uint8_t *W, size_t rb, int r0, int r1, const qdot_act *a, float *out,
                          int ldo) {
    for (int m0 = 0; m0 < a->M;) {
        const int left = a->M - m0, g = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const qdot_act sub = qdot_act_rows(a, m0);
        float *o = out + (size_t)m0 * ldo;
        if (g == 8) QK(rows_m)(type, W, rb, r0, r1, &sub, 8, o, ldo);
        else if (g == 4) QK(rows_m)(type, W, rb, r0, r1, &sub, 4, o, ldo);
        else if (g == 2) QK(rows_m)(type, W, rb, r0, r1, &sub, 2, o, ldo);
        else QK(rows_m)(type, W, rb, r0, r1, &sub, 1, o, ldo);
        m0 += g;
    }
}
