/* Tiles of the attention ops (ops_attention.c) and their bf16 products (attention_bf16.c). */
#ifndef LORAC_ATTENTION_TILES_H
#define LORAC_ATTENTION_TILES_H

#include <stdint.h>

#define AT_BQ 64 /* queries per tile */
#define AT_BK 64 /* keys per tile */
#define AT_BF16_MAXHS 128 /* the bf16 tiles' stack buffers hold heads up to this size */

/* 1 when the tile products run in bf16: bf16 matmul precision, a CPU with AVX512-BF16, HS <= 128. */
int at_bf16_ready(int HS);

/* Operands of VDPBF16PS are 32-bit words holding a pair of bf16 values adjacent in the reduction.
 * rows_pairs: dst[i·ldd + p] = (src[i][2p], src[i][2p+1]) for i < rows, p < ceil(k/2) (a missing
 *   src[i][k] is 0): a row-major operand whose reduction runs along its rows.
 * cols_pairs: dst[p·ldd + j] = (src[2p][j], src[2p+1][j]) for p < ceil(k/2), j < n (a missing
 *   row k is 0): an operand whose reduction runs down its columns.
 * words_transpose: dst[c·ldd + r] = src[r·lds + c] for r < rows <= 64, c < cols. */
void at_rows_pairs(uint32_t *dst, int ldd, const float *src, int lds, int rows, int k);
void at_cols_pairs(uint32_t *dst, int ldd, const float *src, int lds, int k, int n);
void at_words_transpose(uint32_t *dst, int ldd, const uint32_t *src, int lds, int rows, int cols);

/* C(m x n) = alpha·Σ_p A(i,p)·B(p,j) + beta·C over kp pair words; A(i,p) = A[i·ars + p·acs], B
 * row-major words (kp x n, ldb), any n (column blocks of 64). beta 0
 * never reads C. Only after at_bf16_ready. */
void at_tile_bf16(int m, int n, int kp, float alpha, const uint32_t *A, int ars, int acs, const uint32_t *B, int ldb,
                  float beta, float *C, int ldc);

#endif
