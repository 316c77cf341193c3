/* Cross-entropy over a vocabulary with ignored rows and label smoothing (torch's definition). */
#include "lorac/ops.h"

#include <math.h>
#include <stddef.h>

/* exp runs in blocks of CE_BLK through a stack buffer (the vector exp wants an output array) */
#define CE_BLK 2048

/* Log-sum-exp of one row and the sum of its logits, both accumulated in double. */
static void row_stats_(const float *z, int V, double *lse, double *zsum) {
    float buf[CE_BLK];
    float m = op_vmax(z, (size_t)V);
    double s = 0.0, zs[4] = {0.0, 0.0, 0.0, 0.0};
    for (int v0 = 0; v0 < V; v0 += CE_BLK) s += op_vexp_sum(buf, z + v0, 1.0f, m, (size_t)(V - v0 < CE_BLK ? V - v0 : CE_BLK));
    int v = 0;
    for (; v + 4 <= V; v += 4) /* four partial sums break the add latency chain */
        for (int u = 0; u < 4; u++) zs[u] += z[v + u];
    for (; v < V; v++) zs[0] += z[v];
    *lse = m + log(s);
    *zsum = (zs[0] + zs[2]) + (zs[1] + zs[3]);
}

/* loss = (1-ls)·(lse - z_y) + ls·mean_v(lse - z_v) */
static float row_loss_(double lse, double zsum, float zy, int V, float ls) {
    double nll = lse - zy;
    double smooth = lse - zsum / V;
    return (float)((1.0 - ls) * nll + ls * smooth);
}

/* Mean over non-ignored rows, summed in row order. */
static float mean_loss_(const float *losses, const int *targets, int N) {
    double sum = 0.0;
    int cnt = 0;
    for (int n = 0; n < N; n++)
        if (targets[n] >= 0) {
            sum += losses[n];
            cnt++;
        }
    return cnt ? (float)(sum / cnt) : 0.0f;
}

int op_crossentropy_count(const int *targets, int N) {
    int cnt = 0;
    for (int n = 0; n < N; n++) cnt += targets[n] >= 0;
    return cnt;
}

float op_crossentropy_forward(float *losses, float *lse, const float *logits, const int *targets,
                              int N, int V, float label_smoothing) {
    // logits is (N,V); targets, losses, lse are (N)
#pragma omp parallel for schedule(static) if ((size_t)N * V > 32768)
    for (int n = 0; n < N; n++) {
        double l, zs;
        const float *z = logits + (size_t)n * V;
        row_stats_(z, V, &l, &zs);
        lse[n] = (float)l;
        losses[n] = targets[n] >= 0 ? row_loss_(l, zs, z[targets[n]], V, label_smoothing) : 0.0f;
    }
    return mean_loss_(losses, targets, N);
}

void op_crossentropy_backward(float *dlogits, const float *dlosses, const float *logits,
                              const float *lse, const int *targets, int N, int V,
                              float label_smoothing) {
    // dlogits, logits are (N,V); dlosses, lse, targets are (N)
    const float off = label_smoothing / V, on = 1.0f - label_smoothing;
#pragma omp parallel for schedule(static) if ((size_t)N * V > 32768)
    for (int n = 0; n < N; n++) {
        int y = targets[n];
        if (y < 0) continue;
        const float *z = logits + (size_t)n * V;
        float *dz = dlogits + (size_t)n * V;
        float dl = dlosses[n], L = lse[n], buf[CE_BLK];
        // dloss/dz_v = p_v - (1-ls)·[v == y] - ls/V
        for (int v0 = 0; v0 < V; v0 += CE_BLK) {
            int nb = V - v0 < CE_BLK ? V - v0 : CE_BLK;
            op_vexp_sum(buf, z + v0, 1.0f, L, (size_t)nb);
            for (int v = 0; v < nb; v++) dz[v0 + v] += (buf[v] - off) * dl;
        }
        dz[y] -= on * dl;
    }
}

float op_crossentropy_fused(float *logits, float *losses, const int *targets, int N, int V,
                            float label_smoothing, float dloss) {
    // logits is (N,V) and becomes dlogits; losses, targets are (N)
    const float off = label_smoothing / V, on = 1.0f - label_smoothing;
#pragma omp parallel for schedule(static) if ((size_t)N * V > 32768)
    for (int n = 0; n < N; n++) {
        float *z = logits + (size_t)n * V;
        int y = targets[n];
        if (y < 0) {
            for (int v = 0; v < V; v++) z[v] = 0.0f;
            losses[n] = 0.0f;
            continue;
        }
        double l, zs;
        row_stats_(z, V, &l, &zs);
        losses[n] = row_loss_(l, zs, z[y], V, label_smoothing);
        /* the same float lse the two-call path stores, so both give the same bits */
        float L = (float)l;
        op_vexp_sum(z, z, 1.0f, L, (size_t)V);
        for (int v = 0; v < V; v++) z[v] = (z[v] - off) * dloss;
        z[y] -= on * dloss;
    }
    return mean_loss_(losses, targets, N);
}
