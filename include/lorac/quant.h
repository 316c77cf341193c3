/* lorac/quant.h — ggml's tensor types and block formats: sizes, dequantisation, quantisation.
 *
 * A quantized row of n elements is n / block_size blocks laid end to end; each block is
 * type_size bytes and stands for block_size consecutive elements. Rows of a tensor are contiguous,
 * so "rows r0..r1 of a (R, n) tensor" is itself one longer row of (r1-r0)*n elements: a matmul that
 * keeps frozen weights quantized can dequantize a tile of rows into a scratch buffer with one call
 * to quant_row_to_f32 (or use quant_row_dot for a single output), then run an f32 kernel on it.
 *
 * Block layouts (all little-endian; d, m, dmin are IEEE binary16):
 *   Q8_0  (32 elements, 34 bytes)  d, int8 q[32]                 x[j] = d*q[j]
 *   Q4_0  (32, 18)  d, uint8 qs[16]                               x[j] = d*((qs[j]&15)-8),
 *                                                                 x[j+16] = d*((qs[j]>>4)-8)
 *   Q4_1  (32, 20)  d, m, uint8 qs[16]                            x[j] = d*(qs[j]&15) + m, ...
 *   Q5_0  (32, 22)  d, uint32 qh, qs[16]   5th bit of element j is bit j of qh; x = d*(q-16)
 *   Q5_1  (32, 24)  d, m, qh, qs[16]                              x = d*q + m
 *   Q4_K  (256, 144) d, dmin, scales[12] (8 six-bit scales and mins), qs[128]
 *                    sub-block s of 32: x = d*sc[s]*q - dmin*mn[s]
 *   Q5_K  (256, 176) as Q4_K plus qh[32] holding each element's 5th bit
 *   Q6_K  (256, 210) ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], d
 *                    sub-block s of 16: x = d*scales[s]*(q-32)
 *   F32, F16, BF16 (1 element per "block").
 * Each dequantizer follows ggml's reference (dequantize_row_*), in the same float operation order,
 * so results are bit-identical to ggml's and to the gguf Python package's.
 * The quantizers (F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) reproduce ggml's quantize_row_*_ref byte
 * for byte (ggml's reference built without FMA contraction; lorac builds in ISO C mode, where GCC
 * does not contract a*b+c either).
 *
 * Threads: none in the row functions (callers parallelise over rows); the qmat matmuls below use
 * OpenMP. Memory: the row functions allocate nothing.
 */
#ifndef LORAC_QUANT_H
#define LORAC_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ggml_type values, as stored in GGUF tensor infos. */
typedef enum quant_type {
    QUANT_F32 = 0,
    QUANT_F16 = 1,
    QUANT_Q4_0 = 2,
    QUANT_Q4_1 = 3,
    QUANT_Q5_0 = 6,
    QUANT_Q5_1 = 7,
    QUANT_Q8_0 = 8,
    QUANT_Q8_1 = 9,
    QUANT_Q2_K = 10,
    QUANT_Q3_K = 11,
    QUANT_Q4_K = 12,
    QUANT_Q5_K = 13,
    QUANT_Q6_K = 14,
    QUANT_Q8_K = 15,
    QUANT_IQ2_XXS = 16,
    QUANT_IQ2_XS = 17,
    QUANT_IQ3_XXS = 18,
    QUANT_IQ1_S = 19,
    QUANT_IQ4_NL = 20,
    QUANT_IQ3_S = 21,
    QUANT_IQ2_S = 22,
    QUANT_IQ4_XS = 23,
    QUANT_I8 = 24,
    QUANT_I16 = 25,
    QUANT_I32 = 26,
    QUANT_I64 = 27,
    QUANT_F64 = 28,
    QUANT_IQ1_M = 29,
    QUANT_BF16 = 30,
    QUANT_TQ1_0 = 34,
    QUANT_TQ2_0 = 35,
    QUANT_MXFP4 = 39,
    QUANT_NVFP4 = 40,
    QUANT_Q1_0 = 41,
    QUANT_TYPE_LIMIT = 42, /* every known type is below this */
} quant_type;

/* Type names as ggml spells them ("Q4_K"); NULL for a number that is no ggml type. */
const char *quant_type_name(int type);
/* Elements per block and bytes per block; 0 for unknown types. */
size_t quant_block_size(int type);
size_t quant_type_size(int type);
/* Bytes of a row of n elements: LORAC_OK, LORAC_EINVAL (unknown type, or n not a multiple of the
 * block size) or LORAC_ENOMEM (overflow). */
int quant_row_size(int type, size_t n, size_t *bytes);
/* Whether quant_row_to_f32 / quant_row_from_f32 handle the type. */
int quant_can_dequantize(int type);
int quant_can_quantize(int type);

/* src is a row of n elements of TYPE (quant_row_size bytes, any alignment); dst is (n,) f32.
 * Returns LORAC_EUNSUPPORTED for a type without a dequantizer, LORAC_EINVAL when n is not a
 * multiple of the block size. */
int quant_row_to_f32(int type, const void *src, float *dst, size_t n);
/* src is (n,) f32; dst receives quant_row_size(type, n) bytes. Same errors as above. */
int quant_row_from_f32(int type, const float *src, void *dst, size_t n);
/* *out = sum_j dequant(row)[j] * x[j] for a row of n elements, dequantizing one block at a time
 * (no scratch beyond a block): float sums within a block, double across blocks. Same errors as
 * quant_row_to_f32. */
int quant_row_dot(int type, const void *row, const float *x, size_t n, float *out);

/* ---- qmat: a frozen weight matrix kept in its stored type, used by matmuls ----------------------
 * A frozen weight matrix in nn.Linear layout: rows = out features, cols = in features; F32, F16,
 * BF16 or a block type; rows contiguous (row_bytes = cols/block_size*type_size). data is usually
 * mapped from a GGUF or safetensors file and never written.
 * Threads: the matmuls parallelise with OpenMP over tiles whose boundaries do not depend on the
 * thread count; each tile is one cblas_sgemm. Results are the same bits for the same thread count;
 * across thread counts they agree within fp32 rounding of a sum in another order (OpenBLAS runs a
 * single-tile product, and every F32 one, on its own threads, and may split its sums differently
 * for another count), as op_matmul_* (ops.h). Memory: one tile of f32 scratch per thread (about
 * 256 KiB), allocated per call. The direct decode product (qmat_matmul_decode / qmat_matmul_direct,
 * below) has its own threads, memory and accuracy contract.
 * bf16: while the matmul precision is bf16 (op_set_matmul_precision, for training) and the shapes
 * pass op_matmul_bf16_applies, a weight of a type other than F32 is instead dequantized in slabs of
 * whole rows (4 MiB of f32, by all threads) and multiplied by the bf16 GEMM (op_gemm_bf16): the
 * arithmetic of an f32 base at bf16 (the forward gives op_matmul_forward's bits on the dequantized
 * matrix), twice the fp32 speed, the same bits for any thread count; the slab lives in a buffer per
 * calling thread that only grows. */
typedef struct qmat {
    quant_type type;
    int rows, cols;
    const void *data;
} qmat;

/* A qmat over an f32 (rows, cols) matrix. */
qmat qmat_f32(const float *w, int rows, int cols);
/* Bytes per row: cols / block_size * type_size. */
size_t qmat_row_bytes(const qmat *w);
/* LORAC_OK when the type has a dequantizer and cols is a multiple of its block size; else a
 * one-line message naming WHAT (a tensor name, for errors). */
int qmat_check(const qmat *w, const char *what, lorac_err *err);
/* One row dequantized into dst (cols,). w must pass qmat_check. */
void qmat_row_f32(const qmat *w, int r, float *dst);
/* The whole matrix dequantized into dst (rows, cols), rows split over OpenMP threads (F32: copied). */
void qmat_to_f32(const qmat *w, float *dst);
/* w packed for the bf16 GEMM (op_gemm_bf16_packed, ops.h) in both products a frozen matrix takes part
 * in: fwd (op_bf16_pack_words(cols, rows) words) for x·Wᵀ, bwd (op_bf16_pack_words(rows, cols)) for
 * d·W. A stored type is dequantized into a temporary f32 copy first. 0, or -1 (out of memory, or no
 * bf16 kernel). */
int qmat_bf16_pack(const qmat *w, uint32_t *fwd, uint32_t *bwd);
/* out (N, rows) = inp (N, cols) · Wᵀ (+ bias (rows) when non-NULL); dequantizes tiles of rows into
 * per-thread scratch and runs cblas_sgemm on them (F32: sgemm directly, no copy): fp32 products of
 * the dequantized weights, whatever N (training, evaluation, a prompt's prefill); bf16 products
 * under bf16 precision (above). */
int qmat_matmul_forward(float *out, const float *inp, const qmat *w, const float *bias, int N, lorac_err *err);
/* The same for a decode step (one new token per sequence, N sequences): on Q4_0, Q4_1, Q8_0, Q4_K
 * and Q6_K weights qmat_matmul_direct whatever N, unless qmat_set_direct(0) turned it off; else
 * qmat_matmul_forward. The choice never depends on N, so a row's result never depends on the other
 * rows of its step (a beam among 10, a server's request among its neighbours). */
int qmat_matmul_decode(float *out, const float *inp, const qmat *w, const float *bias, int N, lorac_err *err);
/* The direct decode product, llama.cpp's: the N (>= 1) rows of inp are quantized to 8 bits per
 * block of 32 (scale max|x|/127, round to nearest), and each output is a sum over the weight's
 * stored blocks of exact integer block products times the two scales (plus the weight's min times
 * the activation block's sum for Q4_1 and Q4_K); no dequantized weight. Types: Q4_0, Q4_1, Q8_0,
 * Q4_K, Q6_K (LORAC_EINVAL otherwise, or for N < 1). Accuracy: each product carries the activation
 * rounding (at most half a step, max|x_block|/254, per element); tests/test_qdot.c holds every type
 * to that bound (its random data with outliers: rms error 0.4-3% of the rms output), and on SmolLM2
 * Q4_1 the mean log-probability of 50 E2E references moves by 0.092% (tests/test_decode_e2e.c).
 * Threads: one OpenMP loop over tasks of 32 weight rows, each task taking every activation row (8
 * at a time share a pass over a weight row); every output is summed by one thread in one order,
 * and the AVX-512 (VNNI), AVX2 and plain C kernels compute the same lanes and float operations: the
 * same bits for any thread count and kernel level, and for a row alone or among any number of
 * others. Memory: N·cols + 8·N·cols/32 bytes for the quantized rows, in a buffer per calling thread
 * that only grows (no allocation per step once it has grown; freed when the thread ends). */
int qmat_matmul_direct(float *out, const float *inp, const qmat *w, const float *bias, int N, lorac_err *err);
/* Whether qmat_matmul_decode takes the direct path for w (type, column count, the switch below). */
int qmat_direct_applies(const qmat *w);
/* Turns the direct path of qmat_matmul_decode on (default) or off process-wide (off: every product
 * through dequantized fp32 tiles, e.g. for a reference); returns the previous setting. */
int qmat_set_direct(int on);
int qmat_get_direct(void);
/* dinp (N, cols) += dout (N, rows) · W (no dW: frozen). Columns are split into block-aligned
 * strips (one per task); rows are summed tile after tile in a fixed order (bf16 precision: slab
 * after slab, above). */
int qmat_matmul_backward_input(float *dinp, const float *dout, const qmat *w, int N, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
