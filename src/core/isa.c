/* The kernel level: which of lorac's own SIMD kernels run (AVX512-BF16, AVX-512, AVX2+FMA or plain C),
 * chosen once at run time from what the CPU and the OS support (__builtin_cpu_supports checks both:
 * the CPUID bits and the register state the OS saves), capped by LORAC_ISA or lorac_isa_set_cap.
 * The kernels ask lorac_isa_active() on each call: one relaxed atomic load. */
#include "lorac/base.h"

#include "core/simd.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const NAMES[] = {"generic", "avx2", "avx512", "avx512bf16"};

static _Atomic int g_detected = -1, g_active = -1;

const char *lorac_isa_name(lorac_isa isa) {
    return isa >= LORAC_ISA_GENERIC && isa <= LORAC_ISA_AVX512BF16 ? NAMES[isa] : "unknown";
}

int lorac_isa_parse(const char *name, lorac_isa *out) {
    for (int i = LORAC_ISA_GENERIC; i <= LORAC_ISA_AVX512BF16; i++)
        if (name && !strcasecmp(name, NAMES[i])) {
            *out = (lorac_isa)i;
            return 0;
        }
    return -1;
}

static int detect_(void) {
#ifdef LORAC_X86_KERNELS
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return LORAC_ISA_GENERIC;
    if (!__builtin_cpu_supports("avx512f")) return LORAC_ISA_AVX2;
    if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16")) return LORAC_ISA_AVX512BF16;
    return LORAC_ISA_AVX512;
#else
    return LORAC_ISA_GENERIC; /* this build has only the plain C kernels */
#endif
}

lorac_isa lorac_isa_detected(void) {
    int d = atomic_load_explicit(&g_detected, memory_order_relaxed);
    if (d < 0) { /* threads racing here compute the same value */
        d = detect_();
        atomic_store_explicit(&g_detected, d, memory_order_relaxed);
    }
    return (lorac_isa)d;
}

lorac_isa lorac_isa_active(void) {
    int a = atomic_load_explicit(&g_active, memory_order_relaxed);
    if (a < 0) {
        a = lorac_isa_detected();
        const char *env = getenv("LORAC_ISA");
        lorac_isa cap;
        if (env && lorac_isa_parse(env, &cap) == 0 && (int)cap < a) a = cap; /* an unknown value caps nothing */
        atomic_store_explicit(&g_active, a, memory_order_relaxed);
    }
    return (lorac_isa)a;
}

lorac_isa lorac_isa_set_cap(lorac_isa cap) {
    int d = lorac_isa_detected(), a = (int)cap < d ? (int)cap : d;
    if (a < LORAC_ISA_GENERIC) a = LORAC_ISA_GENERIC;
    atomic_store_explicit(&g_active, a, memory_order_relaxed);
    return (lorac_isa)a;
}

const char *lorac_blas_core_for_cpu(void) {
#ifdef LORAC_X86_KERNELS
    static const char *const older[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Sandybridge", "Atom"};
    const char *core = lorac_blas_corename();
    int fell_back = 0;
    for (size_t i = 0; core && i < sizeof older / sizeof older[0]; i++) fell_back |= !strcmp(core, older[i]);
    /* no higher than lorac's own level: LORAC_ISA=avx2 then gives the kernels of an AVX2-only CPU */
    if (!fell_back || lorac_isa_active() < LORAC_ISA_AVX2) return NULL;
    /* OpenBLAS's SkylakeX kernels use AVX-512 F, BW, DQ and VL (Skylake-SP and later) */
    if (lorac_isa_active() >= LORAC_ISA_AVX512 && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    return "Haswell";
#else
    return NULL;
#endif
}
