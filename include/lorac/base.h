/* lorac/base.h — status codes, error messages, threads, RNG, files written atomically.
 *
 * Every library function that can fail returns an int status (LORAC_OK == 0) and, when given a
 * non-NULL lorac_err, leaves a one-line message there that names the file and what is wrong.
 * The library never exits and never prints; only cli/ does.
 */
#ifndef LORAC_BASE_H
#define LORAC_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

enum lorac_status {
    LORAC_OK = 0,
    LORAC_EINVAL = 1,       /* bad argument or option */
    LORAC_EIO = 2,          /* could not open, read or write a file */
    LORAC_EFORMAT = 3,      /* a file is malformed */
    LORAC_ENOMEM = 4,       /* allocation failed or a size overflowed */
    LORAC_ESHAPE = 5,       /* tensor shapes disagree */
    LORAC_ENOTFOUND = 6,    /* a named tensor, key or file is missing */
    LORAC_EUNSUPPORTED = 7, /* valid input that lorac does not implement */
    LORAC_EBUSY = 8,        /* a queue is full: try again later */
    LORAC_ECLOSED = 9,      /* shutting down: no new work is taken */
};

typedef struct lorac_err {
    int code;
    char msg[1024];
} lorac_err;

/* Records code and a printf-style message in err (if non-NULL); returns code. */
int lorac_fail(lorac_err *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
const char *lorac_status_str(int code);

/* Overflow-checked size arithmetic: return 0 and set *out on success, -1 on overflow. */
int lorac_size_mul(size_t a, size_t b, size_t *out);
int lorac_size_add(size_t a, size_t b, size_t *out);

/* Threads used by OpenMP loops and OpenBLAS. n <= 0 means "all cores". */
void lorac_set_threads(int n);
int lorac_get_threads(void);

/* Which OpenBLAS kernel runs ("Cooperlake", "Haswell", ...) and its build configuration string.
 * OpenBLAS picks its kernel itself (OPENBLAS_CORETYPE overrides it), independently of lorac_isa. */
const char *lorac_blas_corename(void);
const char *lorac_blas_config(void);
/* The OpenBLAS kernel (an OPENBLAS_CORETYPE value) this CPU should get when OpenBLAS fell back to an
 * older one than the CPU supports, else NULL. An OpenBLAS older than the CPU (Debian 12's 0.3.21 on a
 * 5th-generation Xeon) does not recognise it and runs its SSE3 "Prescott" kernels, 2-3x slower than
 * the AVX-512 ("SkylakeX") or AVX2 ("Haswell") ones. OpenBLAS reads OPENBLAS_CORETYPE once, when it
 * is loaded, so only a new process can use the answer (the lorac command runs itself again). Never
 * above lorac_isa_active(): under LORAC_ISA=avx2 the answer is an AVX2-only CPU's. */
const char *lorac_blas_core_for_cpu(void);

/* Kernel levels of lorac's own SIMD kernels (attention tiles, vector exp/tanh/erf/max, the dropout
 * mask, the bf16 GEMM), lowest first. A build targets a baseline CPU (x86-64-v2 by default) and carries every level's
 * kernels; the level is chosen at run time: the highest that the CPU and the OS support, capped by
 * the environment variable LORAC_ISA (one of the names below, any case; read once, at the first
 * kernel call; a cap above the CPU's level changes nothing, and an unknown value is ignored here:
 * the lorac command refuses it). On CPUs other than x86-64 only the generic level exists.
 *   avx512bf16  AVX-512 F+BW+BF16: the bf16 GEMM and bf16 attention tiles (op_bf16_supported)
 *   avx512      AVX-512F fp32 kernels
 *   avx2        AVX2+FMA fp32 kernels: the same bits as avx512 for the attention tiles and vector math
 *   generic     plain C, libm and cblas: results differ from the SIMD levels within the ops'
 *               stated tolerances (a few ulp in exp/tanh, libm's erf, a different summation order
 *               in tiles); the dropout mask is the same at every level */
typedef enum lorac_isa {
    LORAC_ISA_GENERIC = 0,
    LORAC_ISA_AVX2 = 1,
    LORAC_ISA_AVX512 = 2,
    LORAC_ISA_AVX512BF16 = 3,
} lorac_isa;
/* The level this CPU (and build) supports, and the level the kernels use (detected, capped). */
lorac_isa lorac_isa_detected(void);
lorac_isa lorac_isa_active(void);
/* "generic", "avx2", "avx512", "avx512bf16" ("unknown" for other values). */
const char *lorac_isa_name(lorac_isa isa);
/* Name (any case) to level: 0, or -1 when the name is none of the four. */
int lorac_isa_parse(const char *name, lorac_isa *out);
/* Caps the level in place of LORAC_ISA (never above the detected level) and returns the active
 * level. For tests and benchmarks: call it while no kernel runs, and before choosing bf16 matmul
 * precision (a cap below avx512bf16 makes op_set_matmul_precision(OP_PREC_BF16) fail). */
lorac_isa lorac_isa_set_cap(lorac_isa cap);

/* A small, seedable, reproducible PRNG (xoshiro128** style state in 64-bit words). */
typedef struct lorac_rng {
    uint64_t s[4];
} lorac_rng;
void lorac_rng_seed(lorac_rng *rng, uint64_t seed);
uint64_t lorac_rng_u64(lorac_rng *rng);
float lorac_rng_uniform(lorac_rng *rng);            /* [0, 1) */
float lorac_rng_normal(lorac_rng *rng);             /* N(0, 1), Box-Muller */

/* A whole file mapped read-only. */
typedef struct lorac_map {
    const uint8_t *data;
    size_t size;
} lorac_map;
int lorac_map_file(const char *path, lorac_map *m, lorac_err *err);
void lorac_unmap(lorac_map *m);

/* A file written under a temporary name in the target's directory and renamed into place by
 * lorac_out_commit, so readers never see a half-written output. lorac_out_abort removes it. */
typedef struct lorac_out {
    FILE *f;
    char path[4096];
    char tmp[4096];
} lorac_out;
int lorac_out_open(lorac_out *o, const char *path, lorac_err *err);
int lorac_out_commit(lorac_out *o, lorac_err *err); /* flush, close, rename; aborts on failure */
void lorac_out_abort(lorac_out *o);
/* Convenience: write a whole buffer atomically. */
int lorac_write_file(const char *path, const void *data, size_t n, lorac_err *err);
/* An output directory built under a temporary name beside PATH and renamed into place by
 * lorac_outdir_commit (replacing an existing PATH), so a failed run leaves no partial directory.
 * Files go into o->tmp (a flat directory). */
typedef struct lorac_outdir {
    char path[4096];
    char tmp[4120];
} lorac_outdir;
int lorac_outdir_open(lorac_outdir *o, const char *path, lorac_err *err);
int lorac_outdir_commit(lorac_outdir *o, lorac_err *err);
void lorac_outdir_abort(lorac_outdir *o);
/* Removes a flat directory and the files in it (no recursion into subdirectories). */
int lorac_remove_flat_dir(const char *path);
/* Reads a whole file into a NUL-terminated malloc'd buffer. */
int lorac_read_file(const char *path, char **data, size_t *n, lorac_err *err);
/* 1 when s ends with suffix. */
int lorac_has_suffix(const char *s, const char *suffix);
/* Blocks of memory freed together (weights converted at load, buffers a writer keeps until it
 * writes): lorac_blocks_alloc returns NULL when out of memory. Zero-initialise the struct. */
typedef struct lorac_blocks {
    void **p;
    size_t n, cap;
} lorac_blocks;
void *lorac_blocks_alloc(lorac_blocks *b, size_t bytes);
void lorac_blocks_free(lorac_blocks *b);

/* Half-precision conversions (IEEE binary16 and bfloat16), round-to-nearest-even on the way down. */
float lorac_f16_to_f32(uint16_t h);
uint16_t lorac_f32_to_f16(float f);
float lorac_bf16_to_f32(uint16_t b);
uint16_t lorac_f32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
