/* Llama-family inference with a KV cache: a prefill of the prompt, then one token per slot per
 * step; keys are rotated at their absolute positions before they enter the cache, so the cache
 * never needs rotating again. Grouped-query attention: the cache holds NKV heads per token.
 * Shapes: S slots, n_new new tokens each, R = S*n_new rows, C = hidden, I = intermediate,
 * QD = NH*HS, KD = NKV*HS, cap = max_len. */
#include <stdlib.h>
#include <string.h>

#include "llama_internal.h"
#include "lorac/lm.h"
#include "lorac/ops.h"
#include "lorac/ops_rope.h"
#include "lorac/quant.h"

struct llama_session {
    llama_model *m;
    int n_slots, cap;
    int len;             /* tokens held by every live slot */
    float *k, *v;        /* (L, n_slots, cap, KD) */
    float *scores;       /* (n_slots * NH, cap) */
    int rows;            /* scratch capacity in rows */
    float *x, *ln, *q, *kn, *vn, *att, *tmp, *gate, *up, *rstd;
    lora_act *lacts;     /* n_layer * LLAMA_N_SITES, for LoRA layers that are not merged */
    int lora_gen;        /* the model's lora_gen when lacts were made */
    /* mixed batch (llama_session_use_adapters): slot i uses adapter ids[i] of set (-1: none) */
    const llama_adapter_set *set;
    int *ids, n_ids;
    float *xg, *yg, *hg; /* gathered rows (mixed batches only): (rows, max(C,QD,I)) twice, (rows, hg_r) */
    int hg_r;
};

/* ---- session lifetime ------------------------------------------------------------------------- */

int llama_session_new(llama_model *m, llama_session **out, lorac_err *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory");
    (*out)->m = m;
    return LORAC_OK;
}

static void free_lacts(llama_session *s) {
    if (!s->lacts) return;
    for (int i = 0; i < s->m->cfg.n_layer * LLAMA_N_SITES; i++) lora_act_free(&s->lacts[i]);
    free(s->lacts);
    s->lacts = NULL;
}

static void free_scratch(llama_session *s) {
    float **bufs[] = {&s->x, &s->ln, &s->q, &s->kn, &s->vn, &s->att, &s->tmp, &s->gate, &s->up, &s->rstd,
                      &s->xg, &s->yg, &s->hg};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        free(*bufs[i]);
        *bufs[i] = NULL;
    }
    free_lacts(s);
    s->rows = s->hg_r = 0;
}

void llama_session_free(llama_session *s) {
    if (!s) return;
    free_scratch(s);
    free(s->ids);
    free(s->k);
    free(s->v);
    free(s->scores);
    free(s);
}

int llama_session_begin(llama_session *s, int n_slots, int max_len, lorac_err *err) {
    const llama_config *c = &s->m->cfg;
    if (n_slots < 1 || max_len < 1) return lorac_fail(err, LORAC_EINVAL, "llama: %d slots of %d tokens", n_slots, max_len);
    if (max_len > c->n_positions)
        return lorac_fail(err, LORAC_EINVAL, "llama: %d tokens exceed the model's max_position_embeddings (%d)", max_len,
                          c->n_positions);
    if (n_slots != s->n_slots || max_len != s->cap) {
        size_t kv, sc, KD = (size_t)c->n_kv_head * c->head_dim;
        free(s->k);
        free(s->v);
        free(s->scores);
        s->k = s->v = s->scores = NULL;
        if (lorac_size_mul((size_t)c->n_layer * n_slots, (size_t)max_len * KD, &kv) ||
            lorac_size_mul(kv, sizeof(float), &kv) || !(s->k = malloc(kv)) || !(s->v = malloc(kv)) ||
            lorac_size_mul((size_t)n_slots * c->n_head, (size_t)max_len * sizeof(float), &sc) ||
            !(s->scores = malloc(sc))) {
            free(s->k);
            free(s->v);
            s->k = s->v = NULL;
            s->n_slots = s->cap = 0;
            return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory for a KV cache of %d x %d tokens", n_slots, max_len);
        }
        s->n_slots = n_slots;
        s->cap = max_len;
    }
    s->len = 0;
    return LORAC_OK;
}

static int ensure_rows(llama_session *s, int rows, lorac_err *err) {
    const llama_config *c = &s->m->cfg;
    if (s->lacts && s->lora_gen != s->m->lora_gen) free_lacts(s); /* adapters changed since */
    if (rows > s->rows) {
        free_scratch(s);
        size_t R = (size_t)rows, C = c->n_embd, I = c->n_inner;
        size_t QD = (size_t)c->n_head * c->head_dim, KD = (size_t)c->n_kv_head * c->head_dim;
        s->x = malloc(R * C * sizeof(float));
        s->ln = malloc(R * C * sizeof(float));
        s->q = malloc(R * QD * sizeof(float));
        s->kn = malloc(R * KD * sizeof(float));
        s->vn = malloc(R * KD * sizeof(float));
        s->att = malloc(R * QD * sizeof(float));
        s->tmp = malloc(R * C * sizeof(float));
        s->gate = malloc(R * I * sizeof(float));
        s->up = malloc(R * I * sizeof(float));
        s->rstd = malloc(R * sizeof(float));
        if (!s->x || !s->ln || !s->q || !s->kn || !s->vn || !s->att || !s->tmp || !s->gate || !s->up || !s->rstd) {
            free_scratch(s);
            return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory for %d inference rows", rows);
        }
        s->rows = rows;
    }
    if (s->set && !s->xg) { /* gathered rows, only for mixed batches: every site's in and out width */
        size_t QD = (size_t)c->n_head * c->head_dim, wide = (size_t)c->n_embd > QD ? (size_t)c->n_embd : QD;
        wide = wide > (size_t)c->n_inner ? wide : (size_t)c->n_inner; /* KD <= QD */
        s->xg = malloc((size_t)s->rows * wide * sizeof(float));
        s->yg = malloc((size_t)s->rows * wide * sizeof(float));
        if (!s->xg || !s->yg) {
            free(s->xg);
            free(s->yg);
            s->xg = s->yg = NULL;
            return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory for mixed-adapter rows");
        }
    }
    if (!s->lacts) {
        if (!(s->lacts = calloc((size_t)c->n_layer * LLAMA_N_SITES, sizeof *s->lacts)))
            return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory");
        s->lora_gen = s->m->lora_gen;
    }
    return LORAC_OK;
}

/* ---- mixed-adapter batches ------------------------------------------------------------------ */

int llama_session_use_adapters(llama_session *s, const llama_adapter_set *set, const int *ids, int n, lorac_err *err) {
    if (!set) {
        s->set = NULL;
        s->n_ids = 0;
        return LORAC_OK;
    }
    /* every check before anything changes: a refused call leaves the session as it was */
    if (llama_adapter_set_model(set) != s->m)
        return lorac_fail(err, LORAC_EINVAL, "llama: the adapter set belongs to another base model than the session's");
    if (llama_adapter_set_active(set, NULL) >= 0)
        return lorac_fail(err, LORAC_EINVAL, "llama: a mixed-adapter session needs a set with no active adapter "
                          "(llama_adapter_set_activate(set, -1, ...))");
    int rc = lora_rows_set_ids(&s->ids, &s->n_ids, ids, n, llama_adapter_set_count(set), s->n_slots, "llama", err);
    if (!rc) s->set = set;
    return rc;
}

/* out (R,OC) += the low-rank product of every slot's own adapter at (l, site), one gathered pair of
 * thin GEMMs per adapter present in the batch (S-LoRA / Punica style): xg = rows of its slots,
 * hg = xg·Aᵀ, yg = s·hg·Bᵀ, scattered back. The base product is already in out. */
static int mixed_site(llama_session *s, int l, int site, float *out, const float *inp, int S, int n_new, lorac_err *err) {
    for (int sl = 0; sl < S; sl++) {
        if (!lora_rows_first_use(s->ids, sl)) continue;
        const lora_linear *L = llama_adapter_set_layers(s->set, s->ids[sl])[l * LLAMA_N_SITES + site];
        if (!L) continue;
        if (lora_rows_reserve(&s->hg, &s->hg_r, (size_t)s->rows, L->cfg.r))
            return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory for mixed-adapter rows");
        int n = lora_rows_gather(s->xg, inp, s->ids, S, sl, n_new, L->C);
        lora_rows_lowrank(L, s->xg, s->hg, s->yg, n);
        lora_rows_scatter_add(out, s->yg, s->ids, S, sl, n_new, L->OC);
    }
    return LORAC_OK;
}

/* out (R,OC) = site(inp (R,C)), R = S·n_new, as llama_forward computes it: a LoRA layer over an
 * f32 base runs the whole site (merged or not, as llama_model_train_mode left it); over a quantized
 * base the qmat matmul computes W·x + b and the layer adds its low-rank path. A mixed batch then
 * adds each slot's own adapter. */
static int site_forward(llama_session *s, int l, int site, float *out, const float *inp, int S, int n_new, lorac_err *err) {
    llama_model *m = s->m;
    int R = S * n_new;
    lora_linear *L = llama_model_lora(m, l, site);
    lora_act *act = L ? &s->lacts[l * LLAMA_N_SITES + site] : NULL;
    int rc = !L || act->cap_N ? LORAC_OK : lora_linear_act_init(act, L, s->rows, err);
    if (rc) return rc;
    if (L && L->weight) return lora_linear_forward(L, act, out, inp, R, NULL, err);
    const llama_layer_weights *W = &m->w.layers[l];
    rc = qmat_matmul_forward(out, inp, &W->w[site], W->b[site], R, err);
    if (!rc && L) rc = lora_linear_delta_forward(L, act, out, inp, R, NULL, err);
    if (!rc && s->set) rc = mixed_site(s, l, site, out, inp, S, n_new, err);
    return rc;
}

int llama_session_step(llama_session *s, const int32_t *tokens, int S, int n_new, float *logits, lorac_err *err) {
    llama_model *m = s->m;
    const llama_config *c = &m->cfg;
    int C = c->n_embd, I = c->n_inner, V = c->vocab_size, NH = c->n_head, NKV = c->n_kv_head, HS = c->head_dim;
    int L = c->n_layer, KD = NKV * HS;
    float eps = (float)c->rms_norm_eps;
    if (S < 1 || S > s->n_slots || n_new < 1)
        return lorac_fail(err, LORAC_EINVAL, "llama: step of %d x %d tokens on %d slots", S, n_new, s->n_slots);
    if (s->len + n_new > s->cap)
        return lorac_fail(err, LORAC_EINVAL, "llama: %d tokens exceed the session's %d", s->len + n_new, s->cap);
    if (s->set && (m->lora || S > s->n_ids))
        return lorac_fail(err, LORAC_EINVAL, m->lora ? "llama: a mixed-adapter session needs no active adapter "
                                                       "(llama_adapter_set_activate(set, -1, ...))"
                                                     : "llama: %d slots but adapters given for %d", S, s->n_ids);
    int R = S * n_new, rc = ensure_rows(s, R, err);
    if (rc) return rc;
    for (int i = 0; i < R; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return lorac_fail(err, LORAC_EINVAL, "llama: token id %d is outside the vocabulary (%d)", tokens[i], V);
    if ((rc = qmat_check(&m->w.embed, "model.embed_tokens.weight", err)) ||
        (rc = qmat_check(&m->w.lm_head, "lm_head.weight", err)))
        return rc;
    for (int r = 0; r < R; r++) qmat_row_f32(&m->w.embed, tokens[r], s->x + (size_t)r * C);
    for (int l = 0; l < L; l++) {
        const llama_layer_weights *W = &m->w.layers[l];
        /* x += o_proj(attention(rope(q_proj(n1)), cache + rope(k_proj(n1)), cache + v_proj(n1))) */
        op_rmsnorm_forward(s->ln, s->rstd, s->x, W->attn_norm, R, C, eps);
        if ((rc = site_forward(s, l, LLAMA_SITE_Q, s->q, s->ln, S, n_new, err)) ||
            (rc = site_forward(s, l, LLAMA_SITE_K, s->kn, s->ln, S, n_new, err)) ||
            (rc = site_forward(s, l, LLAMA_SITE_V, s->vn, s->ln, S, n_new, err)))
            return rc;
        op_rope_freqs_forward(s->q, s->q, NULL, s->len, S, n_new, NH, HS, m->inv_freq);
        op_rope_freqs_forward(s->kn, s->kn, NULL, s->len, S, n_new, NKV, HS, m->inv_freq);
        float *kc = s->k + (size_t)l * s->n_slots * s->cap * KD, *vc = s->v + (size_t)l * s->n_slots * s->cap * KD;
        for (int sl = 0; sl < S; sl++) {
            size_t dst = ((size_t)sl * s->cap + s->len) * KD, src = (size_t)sl * n_new * KD;
            memcpy(kc + dst, s->kn + src, (size_t)n_new * KD * sizeof(float));
            memcpy(vc + dst, s->vn + src, (size_t)n_new * KD * sizeof(float));
        }
        op_attention_cached_forward(s->att, s->q, kc, vc, S, n_new, s->len, s->cap, NH, NKV, HS, s->scores);
        if ((rc = site_forward(s, l, LLAMA_SITE_O, s->tmp, s->att, S, n_new, err))) return rc;
        op_add(s->x, s->x, s->tmp, (size_t)R * C);
        /* x += down_proj(silu(gate_proj(n2)) · up_proj(n2)) */
        op_rmsnorm_forward(s->ln, s->rstd, s->x, W->mlp_norm, R, C, eps);
        if ((rc = site_forward(s, l, LLAMA_SITE_GATE, s->gate, s->ln, S, n_new, err)) ||
            (rc = site_forward(s, l, LLAMA_SITE_UP, s->up, s->ln, S, n_new, err)))
            return rc;
        op_swiglu_forward(s->gate, s->gate, s->up, R, I);
        if ((rc = site_forward(s, l, LLAMA_SITE_DOWN, s->tmp, s->gate, S, n_new, err))) return rc;
        op_add(s->x, s->x, s->tmp, (size_t)R * C);
    }
    /* logits only for the last new token of each slot */
    for (int sl = 0; sl < S; sl++)
        memcpy(s->tmp + (size_t)sl * C, s->x + ((size_t)sl * n_new + n_new - 1) * C, C * sizeof(float));
    op_rmsnorm_forward(s->ln, s->rstd, s->tmp, m->w.norm, S, C, eps);
    if ((rc = qmat_matmul_forward(logits, s->ln, &m->w.lm_head, NULL, S, err))) return rc;
    s->len += n_new;
    return LORAC_OK;
}

int llama_session_reorder(llama_session *s, const int32_t *src, int n_seq, lorac_err *err) {
    const llama_config *c = &s->m->cfg;
    size_t KD = (size_t)c->n_kv_head * c->head_dim, slot = (size_t)s->cap * KD, used = (size_t)s->len * KD;
    if (n_seq < 1 || n_seq > s->n_slots) return lorac_fail(err, LORAC_EINVAL, "llama: reorder of %d slots", n_seq);
    for (int i = 0; i < n_seq; i++)
        if (src[i] < 0 || src[i] >= s->n_slots) return lorac_fail(err, LORAC_EINVAL, "llama: reorder from slot %d", src[i]);
    float *tmp = malloc((size_t)n_seq * used * sizeof(float) + 1);
    if (!tmp) return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory reordering the KV cache");
    for (int l = 0; l < c->n_layer; l++)
        for (int kv = 0; kv < 2; kv++) {
            float *base = (kv ? s->v : s->k) + (size_t)l * s->n_slots * slot;
            for (int i = 0; i < n_seq; i++) memcpy(tmp + i * used, base + src[i] * slot, used * sizeof(float));
            for (int i = 0; i < n_seq; i++) memcpy(base + i * slot, tmp + i * used, used * sizeof(float));
        }
    free(tmp);
    /* each slot keeps its sequence's adapter */
    return s->set ? lora_rows_reorder_ids(s->ids, s->n_ids, src, n_seq, "llama", err) : LORAC_OK;
}

int llama_session_len(const llama_session *s) { return s->len; }
