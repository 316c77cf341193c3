/* GPT-2 inference with a KV cache: a prefill of the prompt, then one token per slot per step.
 * Shapes: S slots, n_new new tokens each, R = S*n_new rows, C = n_embd, cap = max_len. */
#include <cblas.h>
#undef I /* OpenBLAS's cblas.h pulls in <complex.h>; this file's I is the MLP width */
#include <stdlib.h>
#include <string.h>

#include "lorac/ops.h"
#include "models/gpt2_internal.h"

struct gpt2_session {
    gpt2_model *m;
    int n_slots, cap;
    int len;          /* tokens held by every live slot */
    float *k, *v;     /* (L, n_slots, cap, C) */
    int rows;         /* scratch capacity in rows */
    float *x, *ln, *qkv, *q, *att, *tmp, *fch, *last; /* (rows, C or 3C or I) */
    float *scores;    /* (n_slots * NH, cap) */
    lora_act *lacts;  /* n_layer * N_SITES, for adapters that are not merged */
    lora_act wte_act; /* the LoRA Embedding's, when wte has one */
    int lora_gen;     /* the model's LoRA layout lacts were made for */
    /* mixed batch (gpt2_session_use_adapters): slot i uses adapter ids[i] of set (-1: none) */
    gpt2_adapter_set *set;
    int *ids, n_ids;
    float *xg, *yg, *hg; /* gathered rows: (rows, max(C,I)), (rows, max(3C,I)), (rows, hg_r) */
    int hg_r;
};

int gpt2_session_new(gpt2_model *m, gpt2_session **out, lorac_err *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory");
    (*out)->m = m;
    return LORAC_OK;
}

static void free_scratch(gpt2_session *s) {
    free(s->x);
    free(s->ln);
    free(s->qkv);
    free(s->q);
    free(s->att);
    free(s->tmp);
    free(s->fch);
    free(s->last);
    free(s->xg);
    free(s->yg);
    free(s->hg); /* sized by the old row count: a larger session needs it again */
    s->xg = s->yg = s->hg = NULL;
    s->hg_r = 0;
    if (s->lacts) {
        for (int i = 0; i < s->m->cfg.n_layer * N_SITES; i++) lora_act_free(&s->lacts[i]);
        free(s->lacts);
    }
    lora_act_free(&s->wte_act);
    s->x = s->ln = s->qkv = s->q = s->att = s->tmp = s->fch = s->last = NULL;
    s->lacts = NULL;
    s->rows = 0;
}

void gpt2_session_free(gpt2_session *s) {
    if (!s) return;
    free_scratch(s);
    free(s->ids);
    free(s->k);
    free(s->v);
    free(s->scores);
    free(s);
}

int gpt2_session_begin(gpt2_session *s, int n_slots, int max_len, lorac_err *err) {
    const gpt2_config *c = &s->m->cfg;
    if (n_slots < 1 || max_len < 1) return lorac_fail(err, LORAC_EINVAL, "gpt2: %d slots of %d tokens", n_slots, max_len);
    if (max_len > c->n_positions)
        return lorac_fail(err, LORAC_EINVAL, "gpt2: %d tokens exceed the model's n_positions (%d)", max_len, c->n_positions);
    if (n_slots != s->n_slots || max_len != s->cap) {
        size_t kv, sc;
        free(s->k);
        free(s->v);
        free(s->scores);
        s->k = s->v = s->scores = NULL;
        if (lorac_size_mul((size_t)c->n_layer * n_slots, (size_t)max_len * c->n_embd, &kv) ||
            !(s->k = malloc(kv * sizeof(float))) || !(s->v = malloc(kv * sizeof(float))) ||
            (sc = (size_t)n_slots * c->n_head * max_len, !(s->scores = malloc(sc * sizeof(float))))) {
            s->n_slots = s->cap = 0;
            return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for a KV cache of %d x %d tokens", n_slots, max_len);
        }
        s->n_slots = n_slots;
        s->cap = max_len;
    }
    s->len = 0;
    return LORAC_OK;
}

static int ensure_rows(gpt2_session *s, int rows, lorac_err *err) {
    if (rows <= s->rows) return LORAC_OK;
    free_scratch(s);
    const gpt2_config *c = &s->m->cfg;
    size_t R = (size_t)rows, C = c->n_embd, I = c->n_inner;
    s->x = malloc(R * C * sizeof(float));
    s->ln = malloc(R * C * sizeof(float));
    s->qkv = malloc(R * 3 * C * sizeof(float));
    s->q = malloc(R * 3 * C * sizeof(float));
    s->att = malloc(R * C * sizeof(float));
    s->tmp = malloc(R * C * sizeof(float));
    s->fch = malloc(R * I * sizeof(float));
    s->last = malloc(R * C * sizeof(float) + 2 * R * sizeof(float)); /* lnf rows, mean, rstd */
    s->lacts = calloc((size_t)c->n_layer * N_SITES, sizeof *s->lacts);
    size_t wide = I > 3 * C ? I : 3 * C;
    s->xg = malloc(R * (I > C ? I : C) * sizeof(float));
    s->yg = malloc(R * wide * sizeof(float));
    s->lora_gen = s->m->lora_gen;
    if (!s->x || !s->ln || !s->qkv || !s->q || !s->att || !s->tmp || !s->fch || !s->last || !s->lacts || !s->xg || !s->yg) {
        free_scratch(s);
        return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for %d inference rows", rows);
    }
    s->rows = rows;
    return LORAC_OK;
}

/* ---------------------------------------------------------------- mixed-adapter batches */

int gpt2_session_use_adapters(gpt2_session *s, gpt2_adapter_set *set, const int *ids, int n, lorac_err *err) {
    if (!set) {
        s->set = NULL;
        s->n_ids = 0;
        return LORAC_OK;
    }
    /* every check before anything changes: a refused call leaves the session as it was */
    if (gpt2_adapter_set_model(set) != s->m)
        return lorac_fail(err, LORAC_EINVAL, "gpt2: the adapter set belongs to another base model than the session's");
    int rc = lora_rows_set_ids(&s->ids, &s->n_ids, ids, n, gpt2_adapter_set_count(set), s->n_slots, "gpt2", err);
    if (!rc) s->set = set;
    return rc;
}

/* x (R,C) += each slot's wte LoRA row s·B·A[:, token] (slots of adapters with a wte LoRA). */
static void mixed_wte(gpt2_session *s, const int32_t *tokens, int S, int n_new) {
    int C = s->m->cfg.n_embd;
    for (int sl = 0; sl < S; sl++) {
        const lora_embedding *E = NULL;
        if (s->ids[sl] < 0 || !gpt2_adapter_set_layers(s->set, s->ids[sl], &E) || !E) continue;
        int r = E->cfg.r, V = E->V;
        for (int i = sl * n_new; i < (sl + 1) * n_new; i++)
            for (int d = 0; d < C; d++) {
                float acc = 0;
                for (int t = 0; t < r; t++) acc += E->lora_B[(size_t)d * r + t] * E->lora_A[(size_t)t * V + tokens[i]];
                s->x[(size_t)i * C + d] += E->scaling * acc;
            }
    }
}

/* out (R,OC) += the low-rank products of every slot's own adapter at this site, one gathered pair
 * of thin GEMMs per adapter present in the batch (S-LoRA / Punica style): xg = rows of its slots,
 * h = xg·Aᵀ, yg = s·h·Bᵀ, scattered back. The base product is already in out. */
static int mixed_site(gpt2_session *s, int l, int site, float *out, const float *inp, int S, int n_new, lorac_err *err) {
    const gpt2_config *c = &s->m->cfg;
    int E = c->n_embd, I = c->n_inner;
    int C = site == SITE_FCPROJ ? I : E, OC = site == SITE_ATTN ? 3 * E : site == SITE_FC ? I : E;
    for (int sl = 0; sl < S; sl++) {
        if (!lora_rows_first_use(s->ids, sl)) continue;
        const gpt2_block_lora *b = &gpt2_adapter_set_layers(s->set, s->ids[sl], NULL)[l];
        lora_linear *ls[N_SITES] = {b->c_attn, b->attn_proj, b->mlp_fc, b->mlp_proj};
        const lora_linear *Lin = ls[site];
        const lora_merged *M = site == SITE_ATTN ? b->qkv : NULL;
        if (!Lin && !M) continue;
        int r = Lin ? Lin->cfg.r : M->cfg.r;
        if (lora_rows_reserve(&s->hg, &s->hg_r, (size_t)s->rows, r))
            return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for mixed-adapter rows");
        int n = lora_rows_gather(s->xg, inp, s->ids, S, sl, n_new, C);
        if (Lin) {
            lora_rows_lowrank(Lin, s->xg, s->hg, s->yg, n);
        } else {
            int OCg = OC / M->n_groups;
            memset(s->yg, 0, (size_t)n * OC * sizeof(float));
            for (int g = 0, j = 0; g < M->n_groups; g++) {
                if (!M->enable_lora[g]) continue;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, C, 1.0f, s->xg, C, M->lora_A + (size_t)j * r * C,
                            C, 0.0f, s->hg, r);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, OCg, r, M->scaling, s->hg, r,
                            M->lora_B + (size_t)j * OCg * r, r, 0.0f, s->yg + (size_t)g * OCg, OC);
                j++;
            }
        }
        lora_rows_scatter_add(out, s->yg, s->ids, S, sl, n_new, OC);
    }
    return LORAC_OK;
}

int gpt2_session_step(gpt2_session *s, const int32_t *tokens, int S, int n_new, float *logits, lorac_err *err) {
    gpt2_model *m = s->m;
    const gpt2_config *c = &m->cfg;
    int C = c->n_embd, I = c->n_inner, V = c->vocab_size, NH = c->n_head, HS = C / NH, L = c->n_layer;
    if (S < 1 || S > s->n_slots || n_new < 1)
        return lorac_fail(err, LORAC_EINVAL, "gpt2: step of %d x %d tokens on %d slots", S, n_new, s->n_slots);
    if (s->len + n_new > s->cap)
        return lorac_fail(err, LORAC_EINVAL, "gpt2: %d tokens exceed the session's %d", s->len + n_new, s->cap);
    if (s->lacts && s->lora_gen != m->lora_gen) { /* the adapter changed: new LoRA records */
        for (int i = 0; i < L * N_SITES; i++) lora_act_free(&s->lacts[i]);
        memset(s->lacts, 0, (size_t)L * N_SITES * sizeof *s->lacts);
        lora_act_free(&s->wte_act);
        s->lora_gen = m->lora_gen;
    }
    if (s->set && (m->has_lora || S > s->n_ids))
        return lorac_fail(err, LORAC_EINVAL, m->has_lora ? "gpt2: a mixed-adapter session needs no active adapter (activate -1)"
                                                          : "gpt2: %d slots but adapters given for %d", S, s->n_ids);
    int R = S * n_new, rc = ensure_rows(s, R, err);
    if (rc) return rc;
    for (int i = 0; i < R; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return lorac_fail(err, LORAC_EINVAL, "gpt2: token id %d is outside the vocabulary (%d)", tokens[i], V);
    float eps = (float)c->layer_norm_epsilon;
    if (m->wte_lora) {
        if (!s->wte_act.cap_N && (rc = lora_embedding_act_init(&s->wte_act, m->wte_lora, s->rows, err))) return rc;
        if ((rc = lora_embedding_forward(m->wte_lora, &s->wte_act, s->x, tokens, R, err))) return rc;
    } else {
        op_embedding_forward(s->x, (const int *)tokens, m->w.wte, R, C, V);
    }
    if (s->set) mixed_wte(s, tokens, S, n_new);
    for (int r = 0; r < R; r++) {
        const float *p = m->w.wpe + (size_t)(s->len + r % n_new) * C;
        for (int i = 0; i < C; i++) s->x[(size_t)r * C + i] += p[i];
    }
    float *mean = s->last + (size_t)R * C, *rstd = mean + R;
    for (int l = 0; l < L; l++) {
        const gpt2_layer_weights *W = &m->w.layers[l];
        lora_act *acts = s->lacts + (size_t)l * N_SITES;
        op_layernorm_forward(s->ln, mean, rstd, s->x, W->ln1_w, W->ln1_b, R, C, eps);
        if ((rc = gpt2_site_forward(m, &acts[SITE_ATTN], s->rows, l, SITE_ATTN, s->qkv, s->ln, R, NULL, err))) return rc;
        if (s->set && (rc = mixed_site(s, l, SITE_ATTN, s->qkv, s->ln, S, n_new, err))) return rc;
        /* append k, v of the new tokens to the cache; gather q */
        float *kc = s->k + (size_t)l * s->n_slots * s->cap * C, *vc = s->v + (size_t)l * s->n_slots * s->cap * C;
        for (int sl = 0; sl < S; sl++)
            for (int i = 0; i < n_new; i++) {
                const float *row = s->qkv + ((size_t)sl * n_new + i) * 3 * C;
                memcpy(s->q + ((size_t)sl * n_new + i) * C, row, C * sizeof(float));
                memcpy(kc + ((size_t)sl * s->cap + s->len + i) * C, row + C, C * sizeof(float));
                memcpy(vc + ((size_t)sl * s->cap + s->len + i) * C, row + 2 * C, C * sizeof(float));
            }
        op_attention_cached_forward(s->att, s->q, kc, vc, S, n_new, s->len, s->cap, NH, NH, HS, s->scores);
        if ((rc = gpt2_site_forward(m, &acts[SITE_PROJ], s->rows, l, SITE_PROJ, s->tmp, s->att, R, NULL, err))) return rc;
        if (s->set && (rc = mixed_site(s, l, SITE_PROJ, s->tmp, s->att, S, n_new, err))) return rc;
        for (size_t i = 0; i < (size_t)R * C; i++) s->x[i] += s->tmp[i];
        op_layernorm_forward(s->ln, mean, rstd, s->x, W->ln2_w, W->ln2_b, R, C, eps);
        if ((rc = gpt2_site_forward(m, &acts[SITE_FC], s->rows, l, SITE_FC, s->fch, s->ln, R, NULL, err))) return rc;
        if (s->set && (rc = mixed_site(s, l, SITE_FC, s->fch, s->ln, S, n_new, err))) return rc;
        if (c->activation == GPT2_ACT_GELU) op_gelu_erf_forward(s->fch, s->fch, (size_t)R * I);
        else op_gelu_tanh_forward(s->fch, s->fch, (size_t)R * I);
        if ((rc = gpt2_site_forward(m, &acts[SITE_FCPROJ], s->rows, l, SITE_FCPROJ, s->tmp, s->fch, R, NULL, err))) return rc;
        if (s->set && (rc = mixed_site(s, l, SITE_FCPROJ, s->tmp, s->fch, S, n_new, err))) return rc;
        for (size_t i = 0; i < (size_t)R * C; i++) s->x[i] += s->tmp[i];
    }
    /* logits only for the last new token of each slot */
    for (int sl = 0; sl < S; sl++)
        memcpy(s->ln + (size_t)sl * C, s->x + ((size_t)sl * n_new + n_new - 1) * C, C * sizeof(float));
    op_layernorm_forward(s->last, mean, rstd, s->ln, m->w.lnf_w, m->w.lnf_b, S, C, eps);
    op_matmul_forward(logits, s->last, m->w.lm_head ? m->w.lm_head : m->w.wte, NULL, S, C, V, OP_W_OUT_IN);
    s->len += n_new;
    return LORAC_OK;
}

int gpt2_session_reorder(gpt2_session *s, const int32_t *src, int n_seq, lorac_err *err) {
    const gpt2_config *c = &s->m->cfg;
    size_t C = c->n_embd, slot = (size_t)s->cap * C, used = (size_t)s->len * C;
    if (n_seq < 1 || n_seq > s->n_slots) return lorac_fail(err, LORAC_EINVAL, "gpt2: reorder of %d slots", n_seq);
    for (int i = 0; i < n_seq; i++)
        if (src[i] < 0 || src[i] >= s->n_slots) return lorac_fail(err, LORAC_EINVAL, "gpt2: reorder from slot %d", src[i]);
    float *tmp = malloc((size_t)n_seq * used * sizeof(float) + 1);
    if (!tmp) return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory reordering the KV cache");
    for (int l = 0; l < c->n_layer; l++)
        for (int kv = 0; kv < 2; kv++) {
            float *base = (kv ? s->v : s->k) + (size_t)l * s->n_slots * slot;
            for (int i = 0; i < n_seq; i++) memcpy(tmp + i * used, base + src[i] * slot, used * sizeof(float));
            for (int i = 0; i < n_seq; i++) memcpy(base + i * slot, tmp + i * used, used * sizeof(float));
        }
    free(tmp);
    /* each slot keeps its sequence's adapter */
    return s->set ? lora_rows_reorder_ids(s->ids, s->n_ids, src, n_seq, "gpt2", err) : LORAC_OK;
}
