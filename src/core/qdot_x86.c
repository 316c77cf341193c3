/* Direct decode products (qdot.h) at the AVX2 kernel level: the body (qdot_x86_body.h) with the
 * block products done by vpmaddubsw + vpmaddwd, which sum the same 4 bytes into each int32 lane
 * exactly (the int16 pairs stay below 2·128·127 = 32512: no saturation), so it gives
 * qdot_rows_generic's bits. A signed weight goes in as |w| with the activation's sign flipped where
 * w < 0 (vpsignb), as the instruction takes an unsigned first operand. The AVX-512 level is
 * qdot_avx512.c (two blocks per instruction). */
#include "core/qdot.h"

#include "core/simd.h"
#include "lorac/quant.h"

#ifdef LORAC_X86_KERNELS
#include <immintrin.h>

#define QK_TGT __attribute__((target("avx2,fma,f16c")))
#define QK(name) name##_avx2
#define QK_DOT_U(w, x) _mm256_madd_epi16(_mm256_maddubs_epi16((w), (x)), _mm256_set1_epi16(1))
#define QK_DOT_S(w, x) QK_DOT_U(_mm256_sign_epi8((w), (w)), _mm256_sign_epi8((x), (w)))
#include "core/qdot_x86_body.h"
#endif
