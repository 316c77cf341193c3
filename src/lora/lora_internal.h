/* Helpers shared by the LoRA layers (src/lora only). */
#ifndef LORAC_LORA_INTERNAL_H
#define LORAC_LORA_INTERNAL_H

#include "lorac/lora.h"

/* Checks r >= 1, alpha finite, dropout in [0,1); what names the layer for the message. */
int lora_cfg_check(const lora_config *cfg, const char *what, lorac_err *err);
/* calloc of a*b floats, overflow-checked; NULL (with err) on failure. */
float *lora_alloc_floats(size_t a, size_t b, lorac_err *err);
/* A (rows, cols) as cfg->init says: Kaiming-uniform bound 1/sqrt(cols), or N(0, (1/r)²). */
void lora_init_A(float *A, int rows, int cols, const lora_config *cfg, lorac_rng *rng);
/* Activation buffers for N rows of C inputs and R low-rank features; dropout buffers when p > 0. */
int lora_act_alloc(lora_act *act, int N, int C, int R, int with_dropout, lorac_err *err);
/* The input of the low-rank path: dropout(inp) into act->xd in training mode with p > 0, else inp.
 * Sets act->N and act->dropped. */
int lora_act_dropout(lora_act *act, const float *inp, int N, int C, float p, int training,
                     lorac_rng *rng, const char *what, lorac_err *err);
/* Registers "<prefix>.<suffix>". */
int lora_register_named(lora_registry *reg, const char *prefix, const char *suffix, int ndim,
                        const int64_t *shape, float *data, float *grad, int *flag, int flag_init,
                        int lora_layer_bias, lorac_err *err);
/* merged (M,K2) = s·(B·A) + W0 elementwise, as loralib's `W += (B@A)*s`; transposed when
 * transpose is set: merged (K2,M) = W0 + s·(B·A)ᵀ. B is (M,r), A is (r,K2). */
void lora_merge_into(float *merged, const float *w0, const float *B, const float *A, int M, int r,
                     int K2, float s, int transpose);
/* Fused, threaded merge into a strided destination: dst (M,K) (row stride ldd) = w0 (row stride
 * ldw) + s·(B·A), or with transpose dst (K,M) = w0 + s·(B·A)ᵀ. B is (M,r), A is (r,K); bt is
 * scratch of r·M floats (used when transpose). */
void lora_merge_fused(float *dst, size_t ldd, const float *w0, size_t ldw, const float *B, const float *A, int M, int r,
                      int K, float s, int transpose, float *bt);
/* Row i of that merge: d (cols) = w (cols) + s·Σ_t c_t·x[t] with x (r, cols) (Bᵀ when transpose, else
 * A) and c_t = A[t, i] (transpose) or B[i, t]. */
void lora_merge_row(float *restrict d, const float *restrict w, const float *restrict x, const float *A, const float *B,
                    int i, int r, int K, int cols, float s, int transpose);
/* QR of X (m,n) column-major (destroyed; LAPACK dgeqrf + dorgqr): R (p,n) column-major upper
 * trapezoid into Rm (may be NULL), p = min(m,n), and X's first p columns overwritten by Q (m,p),
 * leading dimension m. tau holds p doubles. what names the module in messages. */
int lora_qr_thin(double *X, int m, int n, double *Rm, double *tau, const char *what, lorac_err *err);
/* The SVD of D = B·A (B (M,R), A (R,K), row-major doubles) without forming D: QR of B and of Aᵀ,
 * then an SVD of the small core (LAPACK). D = U·diag(sig)·Vt with k = min(M, R, K) triplets, sig
 * descending, U (M,k) and Vt (k,K) row-major (U or Vt may be NULL when not wanted); with Vt, each
 * pair's sign makes the largest-magnitude entry of its row of Vt positive. what names the module. */
int lora_lowrank_svd_triplets(const double *B, const double *A, int M, int R, int K, double *U, double *sig,
                              double *Vt, const char *what, lorac_err *err);
/* The best rank-k approximation of D = B·A (B (M,R), A (R,K), double) as Bout (M,k) = U_k·Σ_k and
 * Aout (k,K) = V_kᵀ (zero columns/rows beyond D's rank); kept = Σ_{i<k} σ_i², total = ||D||_F². */
int lora_lowrank_svd(const double *B, const double *A, int M, int R, int K, int k, float *Bout, float *Aout,
                     double *kept, double *total, const char *what, lorac_err *err);

#endif
