/* What the SIMD kernels of core/ share across instruction sets: whether this compiler builds the x86
 * kernels at all, and the constants of the vector exp (one definition for the AVX-512 and AVX2
 * versions, which give the same bits).
 *
 * The kernels are compiled with target attributes (LORAC_TGT_AVX512 in simd_avx512.h,
 * LORAC_TGT_AVX2 in simd_avx2.h), not -march, so a build for a baseline CPU contains every level;
 * callers pick one at run time with lorac_isa_active() (base.h). */
#ifndef LORAC_SIMD_H
#define LORAC_SIMD_H

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LORAC_X86_KERNELS 1
#endif

/* exp(x) as Cephes' expf: x clamped to [EXP_LO, EXP_HI] (below -104 the float result is 0; the
 * clamp also keeps -inf out of the reduction), n = round(x·log2 e), r = x - n·ln 2 in two parts,
 * exp(r) by a degree-6 polynomial, then scaled by 2^n with a single rounding (exact underflow to 0,
 * so exp(-inf) = 0). Max error ~2 ulp. */
#define SIMD_EXP_HI 88.72283f
#define SIMD_EXP_LO (-104.0f)
#define SIMD_EXP_LOG2E 1.44269504088896341f
#define SIMD_EXP_LN2_HI 0.693359375f
#define SIMD_EXP_LN2_LO (-2.12194440e-4f)
#define SIMD_EXP_P0 1.9875691500e-4f
#define SIMD_EXP_P1 1.3981999507e-3f
#define SIMD_EXP_P2 8.3334519073e-3f
#define SIMD_EXP_P3 4.1665795894e-2f
#define SIMD_EXP_P4 1.6666665459e-1f
#define SIMD_EXP_P5 5.0000001201e-1f

/* The sum of 16 partial sums (lanes of one zmm, or of two ymm) in one fixed order, so that the
 * AVX-512 and AVX2 reductions agree to the bit. */
static inline float simd_sum16(const float t[16]) {
    float s[8];
    for (int i = 0; i < 8; i++) s[i] = t[i] + t[i + 8];
    return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

#endif
