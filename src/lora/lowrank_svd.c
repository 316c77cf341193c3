/* Truncated SVD of a product of thin factors, D = B·A with B (M,R), A (R,K), R small, without
 * forming D and without LAPACK: QR of B and of Aᵀ (Householder), then a one-sided Jacobi SVD of
 * the small core Rb·Raᵀ. D = Qb·(U·Σ·Vᵀ)·Qaᵀ, so D's singular values are the core's. Double
 * precision throughout; the cost is O((M+K)·R²) plus O(R³) per Jacobi sweep. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora_internal.h"

/* Thin Householder QR of X (m,n) row-major: Q (m,p) and Rm (p,n), p = min(m,n). X is destroyed. */
static void householder_qr(double *X, int m, int n, double *Q, double *Rm, double *v) {
    int p = m < n ? m : n;
    double *vs = malloc((size_t)m * (p ? p : 1) * sizeof(double)); /* reflector j in column j */
    if (!vs) return;
    memset(vs, 0, (size_t)m * (p ? p : 1) * sizeof(double));
    for (int j = 0; j < p; j++) {
        double nrm = 0;
        for (int i = j; i < m; i++) nrm += X[(size_t)i * n + j] * X[(size_t)i * n + j];
        nrm = sqrt(nrm);
        for (int i = 0; i < m; i++) v[i] = i < j ? 0 : X[(size_t)i * n + j];
        double alpha = X[(size_t)j * n + j] >= 0 ? -nrm : nrm;
        v[j] -= alpha;
        double vn = 0;
        for (int i = j; i < m; i++) vn += v[i] * v[i];
        if (vn > 0) {
            for (int c = j; c < n; c++) { /* X := (I - 2vvᵀ/vᵀv)·X on the trailing block */
                double d = 0;
                for (int i = j; i < m; i++) d += v[i] * X[(size_t)i * n + c];
                d = 2 * d / vn;
                for (int i = j; i < m; i++) X[(size_t)i * n + c] -= d * v[i];
            }
            for (int i = j; i < m; i++) vs[(size_t)i * p + j] = v[i] / sqrt(vn);
        }
    }
    for (int i = 0; i < p; i++)
        for (int c = 0; c < n; c++) Rm[(size_t)i * n + c] = c < i ? 0 : X[(size_t)i * n + c];
    /* Q = H_0 ··· H_{p-1} · I[:, :p], applied right to left */
    for (int i = 0; i < m; i++)
        for (int c = 0; c < p; c++) Q[(size_t)i * p + c] = i == c;
    for (int j = p - 1; j >= 0; j--)
        for (int c = 0; c < p; c++) {
            double d = 0;
            for (int i = j; i < m; i++) d += vs[(size_t)i * p + j] * Q[(size_t)i * p + c];
            for (int i = j; i < m; i++) Q[(size_t)i * p + c] -= 2 * d * vs[(size_t)i * p + j];
        }
    free(vs);
}

/* One-sided Jacobi on the columns of W (r,c): W·V has orthogonal columns; V (c,c) accumulates. */
static void jacobi_columns(double *W, int r, int c, double *V) {
    for (int i = 0; i < c; i++)
        for (int j = 0; j < c; j++) V[(size_t)i * c + j] = i == j;
    for (int sweep = 0; sweep < 80; sweep++) {
        int rotated = 0;
        for (int i = 0; i < c - 1; i++)
            for (int j = i + 1; j < c; j++) {
                double a = 0, b = 0, g = 0;
                for (int k = 0; k < r; k++) {
                    double x = W[(size_t)k * c + i], y = W[(size_t)k * c + j];
                    a += x * x;
                    b += y * y;
                    g += x * y;
                }
                if (g == 0 || fabs(g) <= 1e-15 * sqrt(a * b)) continue;
                rotated = 1;
                double zeta = (b - a) / (2 * g);
                double t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1 + zeta * zeta));
                double cs = 1 / sqrt(1 + t * t), sn = cs * t;
                for (int k = 0; k < r; k++) {
                    double x = W[(size_t)k * c + i], y = W[(size_t)k * c + j];
                    W[(size_t)k * c + i] = cs * x - sn * y;
                    W[(size_t)k * c + j] = sn * x + cs * y;
                }
                for (int k = 0; k < c; k++) {
                    double x = V[(size_t)k * c + i], y = V[(size_t)k * c + j];
                    V[(size_t)k * c + i] = cs * x - sn * y;
                    V[(size_t)k * c + j] = sn * x + cs * y;
                }
            }
        if (!rotated) break;
    }
}

int lora_lowrank_svd(const double *B, const double *A, int M, int R, int K, int k, float *Bout, float *Aout,
                     double *kept, double *total) {
    // B (M,R), A (R,K) -> Bout (M,k) = U_k·Σ_k, Aout (k,K) = V_kᵀ
    int pb = M < R ? M : R, pa = K < R ? K : R, big = M > K ? M : K;
    double *Xb = malloc((size_t)M * R * sizeof(double)), *Xa = malloc((size_t)K * R * sizeof(double));
    double *Qb = malloc((size_t)M * pb * sizeof(double)), *Rb = malloc((size_t)pb * R * sizeof(double));
    double *Qa = malloc((size_t)K * pa * sizeof(double)), *Ra = malloc((size_t)pa * R * sizeof(double));
    double *W = malloc((size_t)pb * pa * sizeof(double)), *V = malloc((size_t)pa * pa * sizeof(double));
    double *v = malloc((size_t)big * sizeof(double));
    int *order = malloc((size_t)pa * sizeof(int));
    double *sig = malloc((size_t)pa * sizeof(double));
    int rc = (!Xb || !Xa || !Qb || !Rb || !Qa || !Ra || !W || !V || !v || !order || !sig) ? -1 : 0;
    if (!rc) {
        memcpy(Xb, B, (size_t)M * R * sizeof(double));
        for (int i = 0; i < R; i++)
            for (int j = 0; j < K; j++) Xa[(size_t)j * R + i] = A[(size_t)i * K + j]; /* Aᵀ */
        householder_qr(Xb, M, R, Qb, Rb, v);
        householder_qr(Xa, K, R, Qa, Ra, v);
        for (int i = 0; i < pb; i++) /* core W = Rb·Raᵀ (pb,pa) */
            for (int j = 0; j < pa; j++) {
                double s = 0;
                for (int t = 0; t < R; t++) s += Rb[(size_t)i * R + t] * Ra[(size_t)j * R + t];
                W[(size_t)i * pa + j] = s;
            }
        jacobi_columns(W, pb, pa, V);
        *total = 0;
        for (int j = 0; j < pa; j++) {
            double s = 0;
            for (int i = 0; i < pb; i++) s += W[(size_t)i * pa + j] * W[(size_t)i * pa + j];
            sig[j] = sqrt(s);
            *total += s;
            order[j] = j;
        }
        for (int i = 1; i < pa; i++) /* descending σ (insertion sort: pa is small) */
            for (int j = i; j > 0 && sig[order[j]] > sig[order[j - 1]]; j--) {
                int t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        *kept = 0;
        memset(Bout, 0, (size_t)M * k * sizeof(float));
        memset(Aout, 0, (size_t)k * K * sizeof(float));
        for (int q = 0; q < k && q < pa; q++) {
            int j = order[q];
            *kept += sig[j] * sig[j];
            /* Bout[:,q] = Qb·(W[:,j]) (= Qb·u_j·σ_j); Aout[q,:] = (Qa·V[:,j])ᵀ */
            for (int i = 0; i < M; i++) {
                double s = 0;
                for (int t = 0; t < pb; t++) s += Qb[(size_t)i * pb + t] * W[(size_t)t * pa + j];
                Bout[(size_t)i * k + q] = (float)s;
            }
            for (int i = 0; i < K; i++) {
                double s = 0;
                for (int t = 0; t < pa; t++) s += Qa[(size_t)i * pa + t] * V[(size_t)t * pa + j];
                Aout[(size_t)q * K + i] = (float)s;
            }
        }
    }
    free(Xb); free(Xa); free(Qb); free(Rb); free(Qa); free(Ra); free(W); free(V); free(v); free(order); free(sig);
    return rc;
}
