/* Direct decode products (qdot.h) at the AVX2 and AVX-512 kernel levels: one body
 * (qdot_x86_body.h) compiled twice, with the block products done by AVX2's vpmaddubsw + vpmaddwd
 * or by AVX512-VNNI's vpdpbusd (256-bit, AVX512-VL). Both sum the same 4 bytes into each int32 lane,
 * exactly (vpmaddubsw's int16 pairs stay below 2·128·127 = 32512: no saturation), so both give
 * qdot_rows_generic's bits. A signed weight goes in as |w| with the activation's sign flipped where
 * w < 0 (vpsignb), as the instructions take an unsigned first operand. */
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
#undef QK_TGT
#undef QK
#undef QK_DOT_U
#undef QK_DOT_S

#define QK_TGT __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")))
#define QK(name) name##_vnni
#define QK_DOT_U(w, x) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (w), (x))
#define QK_DOT_S(w, x) QK_DOT_U(_mm256_sign_epi8((w), (w)), _mm256_sign_epi8((x), (w)))
#include "core/qdot_x86_body.h"
#endif
