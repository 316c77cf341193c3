/* Mixed-adapter batches (S-LoRA / Punica style): the rows of the sequence slots that use one adapter
 * are gathered into one block, run through that adapter's low-rank product, and added back. The
 * GPT-2 and Llama KV-cache sessions both use these. */
#include "lorac/lora.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

int lora_rows_first_use(const int *ids, int slot) {
    if (ids[slot] < 0) return 0;
    for (int q = 0; q < slot; q++)
        if (ids[q] == ids[slot]) return 0;
    return 1;
}

int lora_rows_gather(float *xg, const float *inp, const int *ids, int S, int first, int n_new, int C) {
    int n = 0;
    for (int q = first; q < S; q++)
        if (ids[q] == ids[first]) {
            memcpy(xg + (size_t)n * C, inp + (size_t)q * n_new * C, (size_t)n_new * C * sizeof(float));
            n += n_new;
        }
    return n;
}

void lora_rows_scatter_add(float *out, const float *yg, const int *ids, int S, int first, int n_new, int OC) {
    int n = 0;
    for (int q = first; q < S; q++)
        if (ids[q] == ids[first]) {
            float *o = out + (size_t)q * n_new * OC;
            const float *y = yg + (size_t)n * OC;
            for (size_t i = 0; i < (size_t)n_new * OC; i++) o[i] += y[i];
            n += n_new;
        }
}

int lora_rows_reserve(float **buf, int *cols, size_t rows, int want) {
    if (want <= *cols) return 0;
    float *b = realloc(*buf, rows * (size_t)want * sizeof(float));
    if (!b) return -1;
    *buf = b;
    *cols = want;
    return 0;
}

int lora_rows_set_ids(int **dst, int *n_dst, const int *ids, int n, int held, int n_slots, const char *who,
                      lorac_err *err) {
    /* every check before anything changes: a refused call leaves the session as it was */
    if (n < 1 || !ids) return lorac_fail(err, LORAC_EINVAL, "%s: adapters for %d slots", who, n);
    if (n_slots > 0 && n > n_slots)
        return lorac_fail(err, LORAC_EINVAL, "%s: adapters for %d slots, the session has %d", who, n, n_slots);
    for (int i = 0; i < n; i++)
        if (ids[i] < -1 || ids[i] >= held)
            return lorac_fail(err, LORAC_EINVAL, "%s: slot %d asks for adapter %d, the set holds %d", who, i, ids[i], held);
    int *copy = malloc((size_t)n * sizeof *copy);
    if (!copy) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", who);
    memcpy(copy, ids, (size_t)n * sizeof *copy);
    free(*dst);
    *dst = copy;
    *n_dst = n;
    return LORAC_OK;
}

void lora_rows_lowrank(const lora_linear *L, const float *xg, float *hg, float *yg, int n) {
    int C = L->C, OC = L->OC, r = L->cfg.r;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, C, 1.0f, xg, C, L->lora_A, C, 0.0f, hg, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, OC, r, L->scaling, hg, r, L->lora_B, r, 0.0f, yg, OC);
}

void lora_rows_lowrank_merged(const lora_merged *M, const float *xg, float *hg, float *yg, int n) {
    int r = M->cfg.r, OCg = M->OC / M->n_groups, C = M->C;
    memset(yg, 0, (size_t)n * M->OC * sizeof(float));
    for (int g = 0, j = 0; g < M->n_groups; g++) {
        if (!M->enable_lora[g]) continue;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, C, 1.0f, xg, C, M->lora_A + (size_t)j * r * C, C, 0.0f,
                    hg, r);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, OCg, r, M->scaling, hg, r, M->lora_B + (size_t)j * OCg * r, r,
                    0.0f, yg + (size_t)g * OCg, M->OC);
        j++;
    }
}

void lora_rows_embedding_add(const lora_embedding *E, float *x, const int32_t *tokens, int n) {
    for (int i = 0; i < n; i++)
        for (int d = 0; d < E->D; d++) {
            float acc = 0;
            for (int t = 0; t < E->cfg.r; t++) acc += E->lora_B[(size_t)d * E->cfg.r + t] * E->lora_A[(size_t)t * E->V + tokens[i]];
            x[(size_t)i * E->D + d] += E->scaling * acc;
        }
}

int lora_rows_reorder_ids(int *ids, int n_ids, const int32_t *src, int n_seq, const char *who, lorac_err *err) {
    if (n_seq > n_ids) return LORAC_OK;
    int *tmp = malloc((size_t)n_seq * sizeof *tmp);
    if (!tmp) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory reordering adapters", who);
    for (int i = 0; i < n_seq; i++) tmp[i] = src[i] < n_ids ? ids[src[i]] : -1;
    memcpy(ids, tmp, (size_t)n_seq * sizeof *tmp);
    free(tmp);
    return LORAC_OK;
}
