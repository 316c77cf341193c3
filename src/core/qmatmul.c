/* Matmuls against a frozen weight kept in its stored (possibly quantized) type: tiles of the weight
 * are dequantized into per-thread f32 scratch and handed to cblas_sgemm, so the full f32 matrix
 * never exists; decode steps instead go to the direct int8 kernels of qdot.h (qmat_matmul_decode,
 * qmat_matmul_direct), which never dequantize. Tile boundaries depend only on the shapes, never on
 * the thread count. A product of several tiles runs each tile's sgemm on one thread (OpenBLAS does
 * not thread inside a parallel region); a single tile, and an F32 weight, go to OpenBLAS's threads,
 * whose split of the sums can change with the thread count: the same bits for the same thread
 * count, fp32 rounding apart across thread counts (quant.h). Under bf16 matmul precision (training)
 * a stored type instead goes through slabs of whole rows and the bf16 GEMM, the speed of an f32
 * base at bf16 without keeping its f32 (or bf16) copy. */
#include "lorac/quant.h"
#include "lorac/ops.h"

#include "core/qdot.h"
#include "core/simd.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* f32 elements per scratch tile: 256 KiB, about one core's L2 */
#ifndef QMAT_TILE_FLOATS
#define QMAT_TILE_FLOATS 65536
#endif
/* backward column strip: a multiple of every block size (32 and 256) */
#define QMAT_STRIP_COLS 256
/* f32 elements per slab of the bf16 path: 4 MiB, so that most of a small model's matrices (1,820
 * rows of 576) are one slab and one GEMM */
#ifndef QMAT_SLAB_FLOATS
#define QMAT_SLAB_FLOATS (1 << 20)
#endif

qmat qmat_f32(const float *w, int rows, int cols) {
    qmat q = {QUANT_F32, rows, cols, w};
    return q;
}

size_t qmat_row_bytes(const qmat *w) {
    return (size_t)w->cols / quant_block_size(w->type) * quant_type_size(w->type);
}

int qmat_check(const qmat *w, const char *what, lorac_err *err) {
    const char *name = quant_type_name(w->type);
    if (!name || !quant_can_dequantize(w->type))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: tensor type %s (%d) cannot be used in a matmul",
                          what, name ? name : "unknown", (int)w->type);
    if (w->rows < 0 || w->cols < 0 || (size_t)w->cols % quant_block_size(w->type))
        return lorac_fail(err, LORAC_ESHAPE, "%s: %d columns is not a multiple of %s's block of %zu",
                          what, w->cols, name, quant_block_size(w->type));
    if (!w->data && w->rows && w->cols)
        return lorac_fail(err, LORAC_EINVAL, "%s: no data", what);
    return LORAC_OK;
}

void qmat_row_f32(const qmat *w, int r, float *dst) {
    const uint8_t *row = (const uint8_t *)w->data + (size_t)r * qmat_row_bytes(w);
    quant_row_to_f32(w->type, row, dst, (size_t)w->cols);
}

void qmat_to_f32(const qmat *w, float *dst) {
#pragma omp parallel for schedule(static) if ((size_t)w->rows * w->cols >= 65536)
    for (int r = 0; r < w->rows; r++) qmat_row_f32(w, r, dst + (size_t)r * w->cols);
}

int qmat_bf16_pack(const qmat *w, uint32_t *fwd, uint32_t *bwd) {
    const int R = w->rows, C = w->cols, stored = w->type != QUANT_F32;
    float *deq = stored ? malloc((size_t)R * C * sizeof(float)) : NULL;
    if (stored && !deq) return -1;
    if (deq) qmat_to_f32(w, deq);
    const float *f = deq ? deq : w->data;
    /* d·W: op(B) = W (R,C); x·Wᵀ: op(B) = Wᵀ with W stored (R,C) */
    int rc = op_bf16_pack(bwd, 0, R, C, f, C) || op_bf16_pack(fwd, 1, C, R, f, C) ? -1 : 0;
    free(deq);
    return rc;
}

static _Atomic int g_direct = 1;

int qmat_set_direct(int on) {
    return atomic_exchange_explicit(&g_direct, on != 0, memory_order_relaxed);
}

int qmat_get_direct(void) { return atomic_load_explicit(&g_direct, memory_order_relaxed); }

int qmat_direct_applies(const qmat *w) {
    return atomic_load_explicit(&g_direct, memory_order_relaxed) && qdot_supports(w->type) && w->cols % QDOT_BLOCK == 0;
}

typedef void (*qdot_rows_fn)(int, const uint8_t *, size_t, int, int, const qdot_act *, float *, int);

/* the kernel level's direct kernel (all give the same bits: qdot.h) */
static qdot_rows_fn direct_kernel_(void) {
#ifdef LORAC_X86_KERNELS
    const lorac_isa isa = lorac_isa_active();
    if (isa >= LORAC_ISA_AVX512 && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vnni"))
        return qdot_rows_vnni;
    if (isa >= LORAC_ISA_AVX2) return qdot_rows_avx2;
#endif
    return qdot_rows_generic;
}

/* The quantized activations (direct path) and the dequantized slab (bf16 path) live in buffers per
 * calling thread that only grow: a decode or training step allocates nothing once they have grown.
 * A thread's buffers are freed when the thread ends (the key's destructor); the main thread's live
 * as long as the process. */
typedef struct grow_buf {
    size_t cap; /* bytes */
    void *p;
} grow_buf;
typedef struct thread_bufs {
    grow_buf act, slab;
} thread_bufs;
static _Thread_local thread_bufs tl_bufs;
static pthread_key_t g_bufs_key;
static pthread_once_t g_bufs_once = PTHREAD_ONCE_INIT;

static void thread_bufs_free_(void *p) {
    thread_bufs *b = p;
    free(b->act.p);
    free(b->slab.p);
    memset(b, 0, sizeof *b);
}

static void bufs_key_make_(void) {
    if (pthread_key_create(&g_bufs_key, thread_bufs_free_)) abort(); /* no key: out of a process-wide resource */
}

/* b (one of the calling thread's buffers) grown to at least need bytes; NULL when out of memory */
static void *buf_reserve_(grow_buf *b, size_t need) {
    if (need > b->cap) {
        pthread_once(&g_bufs_once, bufs_key_make_);
        void *p = malloc(need);
        if (!p) return NULL;
        free(b->p);
        b->p = p, b->cap = need;
        pthread_setspecific(g_bufs_key, &tl_bufs);
    }
    return b->p;
}

/* a (N rows of C) pointing into the calling thread's buffer; 0, or -1 when out of memory */
static int act_reserve_(qdot_act *a, int N, int C) {
    const size_t ns = qdot_act_scales(N, C / QDOT_BLOCK), need = ns * sizeof(float) + (size_t)N * C + 64;
    float *f = buf_reserve_(&tl_bufs.act, need); /* the scales first (aligned), then the int8 rows */
    if (!f) return -1;
    const size_t nb = (size_t)N * (C / QDOT_BLOCK);
    a->d = f, a->ds = f + nb, a->dsT = f + 2 * nb, a->dx2 = f + 3 * nb, a->q = (int8_t *)(f + ns);
    return 0;
}

/* rows of the weight per task: enough work to pay for the scheduling, few enough to balance */
#define QMAT_DIRECT_TASK_ROWS 32

int qmat_matmul_direct(float *out, const float *inp, const qmat *w, const float *bias, int N, lorac_err *err) {
    int rc = qmat_check(w, "matmul weight", err);
    if (rc) return rc;
    const int R = w->rows, C = w->cols;
    if (N < 1 || !qdot_supports(w->type))
        return lorac_fail(err, LORAC_EINVAL, "matmul: no direct kernel for %d rows of %s", N, quant_type_name(w->type));
    if (R == 0) return LORAC_OK;
    qdot_act a = {0};
    if (act_reserve_(&a, N, C))
        return lorac_fail(err, LORAC_ENOMEM, "matmul: out of memory quantizing %d activation rows", N);
    qdot_quantize_act(&a, inp, N, C);
    const qdot_rows_fn kernel = direct_kernel_();
    const size_t rb = qmat_row_bytes(w);
    const int ntasks = (R + QMAT_DIRECT_TASK_ROWS - 1) / QMAT_DIRECT_TASK_ROWS;
    /* each output is one task's, summed in one order: the same bits for any thread count; one
     * parallel region, the bias added by each task to its own outputs */
#pragma omp parallel for schedule(static) if (ntasks > 1 && (size_t)R * C * N >= 65536)
    for (int t = 0; t < ntasks; t++) {
        const int r0 = t * QMAT_DIRECT_TASK_ROWS, r1 = r0 + QMAT_DIRECT_TASK_ROWS < R ? r0 + QMAT_DIRECT_TASK_ROWS : R;
        kernel(w->type, w->data, rb, r0, r1, &a, out, R);
        for (int n = 0; bias && n < N; n++)
            for (int o = r0; o < r1; o++) out[(size_t)n * R + o] += bias[o];
    }
    return LORAC_OK;
}

int qmat_matmul_decode(float *out, const float *inp, const qmat *w, const float *bias, int N, lorac_err *err) {
    if (N >= 1 && w->rows > 0 && qmat_direct_applies(w)) return qmat_matmul_direct(out, inp, w, bias, N, err);
    return qmat_matmul_forward(out, inp, w, bias, N, err);
}

/* ---- bf16 products over a stored type: the training path -------------------------------------
 * Under bf16 precision (op_matmul_bf16_applies) slabs of whole weight rows are dequantized by all
 * threads, then one bf16 GEMM across threads reads each slab. The GEMM rounds the slab to bf16 as it
 * packs it, as it rounds an f32 base: the forward gives the bits of op_matmul_forward on the
 * dequantized matrix; the backward sums slab after slab in a fixed order. Slab boundaries depend on
 * the shapes only and the GEMM's sums are fixed by the shapes: the same bits for any thread count. */
static int slab_rows_(const qmat *w) {
    const int n = QMAT_SLAB_FLOATS / w->cols;
    return n < 1 ? 1 : n > w->rows ? w->rows : n;
}

/* dir 0: out (N,R) = inp (N,C) · Wᵀ + bias; dir 1: dinp (N,C) += dout (N,R) · W. LORAC_ENOMEM when
 * the slab or the GEMM's packing buffers cannot be had */
static int bf16_product_(int dir, float *y, const float *x, const qmat *w, const float *bias, int N, lorac_err *err) {
    const int R = w->rows, C = w->cols, rows = slab_rows_(w);
    float *slab = buf_reserve_(&tl_bufs.slab, (size_t)rows * C * sizeof(float));
    int rc = slab ? 0 : -1;
    for (int r0 = 0; r0 < R && !rc; r0 += rows) {
        const int nr = R - r0 < rows ? R - r0 : rows;
        const qmat part = {w->type, nr, C, (const uint8_t *)w->data + (size_t)r0 * qmat_row_bytes(w)}; /* rows r0.. */
        qmat_to_f32(&part, slab);
        rc = dir == 0 ? /* out[:, r0:r0+nr] (N,nr) = inp · slab(nr,C)ᵀ + bias[r0:r0+nr] */
                     op_gemm_bf16(1, N, nr, C, 1.0f, x, C, slab, C, 0.0f, bias ? bias + r0 : NULL, y + r0, R)
                          : /* dinp (N,C) += dout[:, r0:r0+nr] (N,nr) · slab(nr,C) */
                     op_gemm_bf16(0, N, C, nr, 1.0f, x + r0, R, slab, C, 1.0f, NULL, y, C);
    }
    if (rc)
        return lorac_fail(err, LORAC_ENOMEM, "matmul: out of memory for a bf16 product of a %s weight",
                          quant_type_name(w->type));
    return LORAC_OK;
}

int qmat_matmul_forward(float *out, const float *inp, const qmat *w, const float *bias, int N, lorac_err *err) {
    int rc = qmat_check(w, "matmul weight", err);
    if (rc) return rc;
    const int R = w->rows, C = w->cols;
    if (N <= 0 || R == 0) return LORAC_OK;
    if (C == 0) {
        for (int n = 0; n < N; n++)
            for (int o = 0; o < R; o++) out[(size_t)n * R + o] = bias ? bias[o] : 0.0f;
        return LORAC_OK;
    }
    if (w->type != QUANT_F32 && op_matmul_bf16_applies(N, R, C)) return bf16_product_(0, out, inp, w, bias, N, err);
    if (w->type == QUANT_F32) {
        /* out(N,R) = inp(N,C) · W(R,C)ᵀ, straight from the stored matrix */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, R, C, 1.0f, inp, C, w->data, C, 0.0f, out, R);
    } else {
        int tile = QMAT_TILE_FLOATS / C;
        if (tile < 1) tile = 1;
        if (tile > R) tile = R;
        const int ntiles = (R + tile - 1) / tile;
        const size_t rb = qmat_row_bytes(w);
        int failed = 0;
#pragma omp parallel if (ntiles > 1)
        {
            float *scratch = malloc((size_t)tile * C * sizeof(float));
            if (!scratch) {
#pragma omp atomic write
                failed = 1;
            }
#pragma omp for schedule(dynamic, 1)
            for (int t = 0; t < ntiles; t++) {
                if (!scratch) continue;
                const int r0 = t * tile, nr = R - r0 < tile ? R - r0 : tile;
                /* rows r0..r0+nr of the weight are one longer row of nr*C elements */
                quant_row_to_f32(w->type, (const uint8_t *)w->data + (size_t)r0 * rb, scratch, (size_t)nr * C);
                /* out[:, r0:r0+nr] (N,nr) = inp(N,C) · tile(nr,C)ᵀ */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, nr, C, 1.0f, inp, C, scratch, C, 0.0f,
                            out + r0, R);
            }
            free(scratch);
        }
        if (failed) return lorac_fail(err, LORAC_ENOMEM, "matmul: out of memory for a dequantization tile");
    }
    if (bias)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < R; o++) out[(size_t)n * R + o] += bias[o];
    return LORAC_OK;
}

int qmat_matmul_backward_input(float *dinp, const float *dout, const qmat *w, int N, lorac_err *err) {
    int rc = qmat_check(w, "matmul weight", err);
    if (rc) return rc;
    const int R = w->rows, C = w->cols;
    if (N <= 0 || R == 0 || C == 0) return LORAC_OK;
    if (w->type == QUANT_F32) {
        /* dinp(N,C) += dout(N,R) · W(R,C) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, R, 1.0f, dout, R, w->data, C, 1.0f, dinp, C);
        return LORAC_OK;
    }
    if (op_matmul_bf16_applies(N, C, R)) return bf16_product_(1, dinp, dout, w, NULL, N, err);
    /* Each task owns a strip of columns (blocks never straddle strips) and walks the rows in
     * tiles, so every dinp element is summed in the same order whatever the thread count. */
    const size_t bs = quant_block_size(w->type), ts = quant_type_size(w->type), rb = qmat_row_bytes(w);
    const int strip = C < QMAT_STRIP_COLS ? C : QMAT_STRIP_COLS;
    const int nstrips = (C + strip - 1) / strip;
    int tile = QMAT_TILE_FLOATS / strip;
    if (tile > R) tile = R;
    int failed = 0;
#pragma omp parallel if (nstrips > 1)
    {
        float *scratch = malloc((size_t)tile * strip * sizeof(float));
        if (!scratch) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int s = 0; s < nstrips; s++) {
            if (!scratch) continue;
            const int c0 = s * strip, nc = C - c0 < strip ? C - c0 : strip;
            const size_t boff = (size_t)c0 / bs * ts; /* byte offset of column c0 within a row */
            for (int r0 = 0; r0 < R; r0 += tile) {
                const int nr = R - r0 < tile ? R - r0 : tile;
                for (int r = 0; r < nr; r++)
                    quant_row_to_f32(w->type, (const uint8_t *)w->data + (size_t)(r0 + r) * rb + boff,
                                     scratch + (size_t)r * nc, (size_t)nc);
                /* dinp[:, c0:c0+nc] (N,nc) += dout[:, r0:r0+nr] (N,nr) · tile(nr,nc) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, nc, nr, 1.0f, dout + r0, R, scratch, nc,
                            1.0f, dinp + c0, C);
            }
        }
        free(scratch);
    }
    if (failed) return lorac_fail(err, LORAC_ENOMEM, "matmul: out of memory for a dequantization tile");
    return LORAC_OK;
}
