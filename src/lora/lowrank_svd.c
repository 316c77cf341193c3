/* The SVD of a product of thin factors, D = B·A with B (M,R), A (R,K), R small, without forming D:
 * QR of B and of Aᵀ (LAPACK dgeqrf/dorgqr), then an SVD of the small core Rb·Raᵀ (dgesdd).
 * D = Qb·Rb·Raᵀ·Qaᵀ = (Qb·Uc)·Σ·(Qa·Vc)ᵀ, so D's singular values are the core's and its singular
 * vectors are the core's mapped through Qb and Qa. Double precision; the cost is O((M+K)·R²) plus
 * O(R³) for the core. lorac combine --mode svd and lorac analyze use it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "lora/lora_internal.h"

/* lora_internal.h: Rm (p,n) and Q (m,p) over X, p = min(m,n), column-major. */
int lora_qr_thin(double *X, int m, int n, double *Rm, double *tau, const char *what, lorac_err *err) {
    int p = m < n ? m : n;
    lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, m, n, X, m, tau);
    if (info) return lorac_fail(err, LORAC_EINVAL, "%s: LAPACK dgeqrf failed (info %d)", what, (int)info);
    for (int j = 0; Rm && j < n; j++)
        for (int i = 0; i < p; i++) Rm[i + (size_t)j * p] = i <= j ? X[i + (size_t)j * m] : 0.0;
    info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, m, p, p, X, m, tau);
    if (info) return lorac_fail(err, LORAC_EINVAL, "%s: LAPACK dorgqr failed (info %d)", what, (int)info);
    return LORAC_OK;
}

/* Flips each pair (U[:,j], Vt[j,:]) so that the largest-magnitude entry of Vt[j,:] is positive:
 * LAPACK's signs are arbitrary, this makes them reproducible. U (M,k) (or NULL), Vt (k,K) row-major. */
static void fix_signs(double *U, double *Vt, int M, int k, int K) {
    for (int j = 0; j < k; j++) {
        double *v = Vt + (size_t)j * K, big = 0;
        for (int i = 0; i < K; i++)
            if (fabs(v[i]) > fabs(big)) big = v[i];
        if (big >= 0) continue;
        for (int i = 0; i < K; i++) v[i] = -v[i];
        for (int i = 0; U && i < M; i++) U[(size_t)i * k + j] = -U[(size_t)i * k + j];
    }
}

typedef struct lr_work {
    double *Qb, *Qa, *Rb, *Ra, *tau, *core, *Uc, *Vct;
} lr_work;

static void lr_work_free(lr_work *w) {
    free(w->Qb); free(w->Qa); free(w->Rb); free(w->Ra); free(w->tau); free(w->core); free(w->Uc); free(w->Vct);
}

int lora_lowrank_svd_triplets(const double *B, const double *A, int M, int R, int K, double *U, double *sig,
                              double *Vt, const char *what, lorac_err *err) {
    if (M < 1 || R < 1 || K < 1) return lorac_fail(err, LORAC_EINVAL, "%s: empty factor (%d, %d, %d)", what, M, R, K);
    int pb = M < R ? M : R, pa = K < R ? K : R, k = pb < pa ? pb : pa;
    size_t big = (size_t)(M > K ? M : K) * R;
    lr_work w = {malloc((size_t)M * R * sizeof(double)), malloc((size_t)K * R * sizeof(double)),
                 malloc((size_t)pb * R * sizeof(double)), malloc((size_t)pa * R * sizeof(double)),
                 malloc((size_t)R * sizeof(double)), malloc((size_t)pb * pa * sizeof(double)),
                 malloc((size_t)pb * k * sizeof(double)), malloc((size_t)k * pa * sizeof(double))};
    double *tmp = malloc(big * sizeof(double));
    int rc = (!w.Qb || !w.Qa || !w.Rb || !w.Ra || !w.tau || !w.core || !w.Uc || !w.Vct || !tmp)
                 ? lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for the SVD", what) : LORAC_OK;
    if (!rc) {
        for (int i = 0; i < M; i++) /* B (M,R) row-major -> column-major */
            for (int j = 0; j < R; j++) w.Qb[i + (size_t)j * M] = B[(size_t)i * R + j];
        memcpy(w.Qa, A, (size_t)K * R * sizeof(double)); /* A (R,K) row-major is Aᵀ (K,R) column-major */
        rc = lora_qr_thin(w.Qb, M, R, w.Rb, w.tau, what, err);
    }
    if (!rc) rc = lora_qr_thin(w.Qa, K, R, w.Ra, w.tau, what, err);
    if (!rc) { /* core (pb,pa) = Rb·Raᵀ, column-major */
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, pb, pa, R, 1.0, w.Rb, pb, w.Ra, pa, 0.0, w.core, pb);
        lapack_int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', pb, pa, w.core, pb, sig, w.Uc, pb, w.Vct, k);
        if (info) rc = lorac_fail(err, LORAC_EINVAL, "%s: LAPACK dgesdd did not converge (info %d)", what, (int)info);
    }
    if (!rc && U) { /* U (M,k) = Qb·Uc, computed column-major into tmp, stored row-major */
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, M, k, pb, 1.0, w.Qb, M, w.Uc, pb, 0.0, tmp, M);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < k; j++) U[(size_t)i * k + j] = tmp[i + (size_t)j * M];
    }
    if (!rc && Vt) { /* Vtᵀ (K,k) = Qa·Vcᵀᵀ column-major, which is Vt (k,K) row-major */
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, K, k, pa, 1.0, w.Qa, K, w.Vct, k, 0.0, Vt, K);
        fix_signs(U, Vt, M, k, K);
    }
    lr_work_free(&w);
    free(tmp);
    return rc;
}

int lora_lowrank_svd(const double *B, const double *A, int M, int R, int K, int k, float *Bout, float *Aout,
                     double *kept, double *total, const char *what, lorac_err *err) {
    // B (M,R), A (R,K) -> Bout (M,k) = U_k·Σ_k, Aout (k,K) = V_kᵀ
    int pb = M < R ? M : R, pa = K < R ? K : R, n = pb < pa ? pb : pa;
    double *U = malloc((size_t)M * n * sizeof(double)), *Vt = malloc((size_t)n * K * sizeof(double));
    double *sig = malloc((size_t)n * sizeof(double));
    int rc = (!U || !Vt || !sig) ? lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for the SVD", what) : LORAC_OK;
    if (!rc) rc = lora_lowrank_svd_triplets(B, A, M, R, K, U, sig, Vt, what, err);
    if (!rc) {
        *kept = *total = 0;
        for (int j = 0; j < n; j++) *total += sig[j] * sig[j];
        memset(Bout, 0, (size_t)M * k * sizeof(float));
        memset(Aout, 0, (size_t)k * K * sizeof(float));
        for (int q = 0; q < k && q < n; q++) {
            *kept += sig[q] * sig[q];
            for (int i = 0; i < M; i++) Bout[(size_t)i * k + q] = (float)(U[(size_t)i * n + q] * sig[q]);
            for (int i = 0; i < K; i++) Aout[(size_t)q * K + i] = (float)Vt[(size_t)q * K + i];
        }
    }
    free(U);
    free(Vt);
    free(sig);
    return rc;
}
