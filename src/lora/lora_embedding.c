/* loralib's lora.Embedding: out[n] = W0[id] + s·A[:,id]ᵀ·Bᵀ with A (r,V) zero-initialised and
 * B (D,r) ~ N(0,1). The A lookup is a column gather (F.embedding of Aᵀ), done here. */
#include <stdlib.h>
#include <string.h>

#include "lora/lora_internal.h"
#include "lorac/ops.h"

int lora_embedding_init(lora_embedding *L, int V, int D, int padding_idx, const lora_config *cfg,
                        float *weight, lorac_rng *rng, lorac_err *err) {
    memset(L, 0, sizeof *L);
    int rc = lora_cfg_check(cfg, "lora_embedding", err);
    if (rc) return rc;
    if (V < 1 || D < 1 || !weight || !rng)
        return lorac_fail(err, LORAC_EINVAL, "lora_embedding: needs V, D >= 1 (got %d, %d), a weight and an rng", V, D);
    if (cfg->lora_dropout != 0.0f || cfg->fan_in_fan_out)
        return lorac_fail(err, LORAC_EINVAL, "lora_embedding: lora_dropout and fan_in_fan_out do not apply to embeddings");
    if (padding_idx < -1 || padding_idx >= V)
        return lorac_fail(err, LORAC_EINVAL, "lora_embedding: padding_idx %d outside [0, %d)", padding_idx, V);
    L->V = V;
    L->D = D;
    L->padding_idx = padding_idx;
    L->cfg = *cfg;
    L->scaling = lora_config_scaling(cfg);
    L->weight = weight;
    int r = cfg->r;
    if (!(L->lora_A = lora_alloc_floats((size_t)r, (size_t)V, err)) ||
        !(L->lora_B = lora_alloc_floats((size_t)D, (size_t)r, err)) ||
        !(L->grad_A = lora_alloc_floats((size_t)r, (size_t)V, err)) ||
        !(L->grad_B = lora_alloc_floats((size_t)D, (size_t)r, err))) {
        lora_embedding_free(L);
        return err ? err->code : LORAC_ENOMEM;
    }
    /* loralib: zeros_(lora_A), normal_(lora_B) — the reverse of Linear, so ΔW still starts at 0 */
    for (size_t i = 0; i < (size_t)D * r; i++) L->lora_B[i] = lorac_rng_normal(rng);
    L->training = 1;
    L->train_A = L->train_B = 1;
    return LORAC_OK;
}

void lora_embedding_free(lora_embedding *L) {
    if (!L) return;
    free(L->lora_A);
    free(L->lora_B);
    free(L->grad_A);
    free(L->grad_B);
    free(L->merged_w);
    memset(L, 0, sizeof *L);
}

int lora_embedding_act_init(lora_act *act, const lora_embedding *L, int N, lorac_err *err) {
    return lora_act_alloc(act, N, 0, L->cfg.r, 0, err);
}

static int embedding_check_ids(const lora_embedding *L, const int32_t *ids, int N, lorac_err *err) {
    for (int n = 0; n < N; n++)
        if (ids[n] < 0 || ids[n] >= L->V)
            return lorac_fail(err, LORAC_EINVAL, "lora_embedding: id %d at position %d outside [0, %d)",
                              (int)ids[n], n, L->V);
    return LORAC_OK;
}

int lora_embedding_forward(lora_embedding *L, lora_act *act, float *out, const int32_t *ids, int N,
                           lorac_err *err) {
    // ids is (N), out is (N,D); act->h is (N,r) = Aᵀ[ids]
    int V = L->V, D = L->D, r = L->cfg.r;
    if (N < 0) return lorac_fail(err, LORAC_EINVAL, "lora_embedding: %d rows", N);
    int rc = embedding_check_ids(L, ids, N, err);
    if (rc) return rc;
    const float *w = L->merged ? L->merged_w : L->weight;
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * D, w + (size_t)ids[n] * D, (size_t)D * sizeof(float));
    if (L->merged) {
        if (act) { act->N = N; act->dropped = 0; }
        return LORAC_OK;
    }
    if (!act || N > act->cap_N)
        return lorac_fail(err, LORAC_EINVAL, "lora_embedding: %d rows need an activation that holds them", N);
    act->N = N;
    act->dropped = 0;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < r; j++) act->h[(size_t)n * r + j] = L->lora_A[(size_t)j * V + ids[n]];
    op_matmul_forward_acc(out, act->h, L->lora_B, L->scaling, N, r, D, OP_W_OUT_IN); /* out += s·h·Bᵀ */
    return LORAC_OK;
}

int lora_embedding_backward(lora_embedding *L, lora_act *act, const float *dout, const int32_t *ids,
                            lorac_err *err) {
    // out[n] = W0[id] + s·h[n]·Bᵀ, h[n][j] = A[j][id]; dout is (N,D)
    if (L->merged || !act)
        return lorac_fail(err, LORAC_EINVAL, "lora_embedding: backward needs the unmerged (training) forward");
    int N = act->N, V = L->V, D = L->D, r = L->cfg.r;
    memset(act->dh, 0, (size_t)N * r * sizeof(float));
    /* dh = s·dout·B; grad_B += s·doutᵀ·h */
    op_matmul_backward(act->dh, L->train_B ? L->grad_B : NULL, NULL, dout, act->h, L->lora_B, L->scaling, N, r, D,
                       OP_W_OUT_IN);
    if (L->train_A) /* scatter back into A's columns, in row order (deterministic) */
        for (int n = 0; n < N; n++) {
            if (ids[n] == L->padding_idx) continue;
            for (int j = 0; j < r; j++) L->grad_A[(size_t)j * V + ids[n]] += act->dh[(size_t)n * r + j];
        }
    return LORAC_OK;
}

int lora_embedding_train(lora_embedding *L, int mode, lorac_err *err) {
    L->training = mode ? 1 : 0;
    if (mode) {
        if (L->merged) {
            free(L->merged_w);
            L->merged_w = NULL;
            L->merged = 0;
        }
    } else if (L->cfg.merge_weights && !L->merged) {
        if (!(L->merged_w = lora_alloc_floats((size_t)L->V, (size_t)L->D, err))) return err ? err->code : LORAC_ENOMEM;
        /* loralib: weight += (B @ A).T * scaling, B (D,r), A (r,V) */
        lora_merge_into(L->merged_w, L->weight, L->lora_B, L->lora_A, L->D, L->cfg.r, L->V, L->scaling, 1);
        L->merged = 1;
    }
    return LORAC_OK;
}

void lora_embedding_zero_grad(lora_embedding *L) {
    memset(L->grad_A, 0, (size_t)L->cfg.r * L->V * sizeof(float));
    memset(L->grad_B, 0, (size_t)L->D * L->cfg.r * sizeof(float));
}

int lora_embedding_register(lora_embedding *L, lora_registry *reg, const char *prefix, lorac_err *err) {
    int64_t w_shape[2] = {L->V, L->D};
    int64_t a_shape[2] = {L->cfg.r, L->V};
    int64_t b_shape[2] = {L->D, L->cfg.r};
    int rc = lora_register_named(reg, prefix, "weight", 2, w_shape, L->weight, NULL, NULL, 0, 0, err);
    if (!rc) rc = lora_register_named(reg, prefix, "lora_A", 2, a_shape, L->lora_A, L->grad_A, &L->train_A, 1, 0, err);
    if (!rc) rc = lora_register_named(reg, prefix, "lora_B", 2, b_shape, L->lora_B, L->grad_B, &L->train_B, 1, 0, err);
    return rc;
}
