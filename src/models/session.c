/* Inference with a KV cache for every causal family: a prefill of the prompt, then one token per
 * slot per step, through the same block as training (block_forward with the cache as its
 * attention). Keys enter the cache already rotated at their positions. Mixed-adapter batches add
 * each slot's own adapter after every site (S-LoRA/Punica: the base product once for all rows, then
 * one gathered pair of thin products per adapter present). Ragged: every slot has its own length, a
 * step appends to any set of slots (continuous batching: sequences admitted, decoded and freed at
 * different times share one step).
 * Shapes: S sequences in a step, n_new new tokens each, R = S·n_new rows, KD = NKV·HS, cap = max_len. */
#include <stdlib.h>
#include <string.h>

#include "models/model_internal.h"

struct model_session {
    model *m;
    int n_slots, cap;
    int *lens;               /* (n_slots) tokens each slot holds */
    int *slot, *seq_pos, *pos, *step_ids; /* a step's slots (S), their lengths (S), row positions (R), adapters (S) */
    float *k, *v;            /* (L, n_slots, cap, KD) */
    float *scores, *moved;   /* (n_slots·NH, cap); reorder's copies (grown, never per step) */
    size_t moved_cap;
    int rows;                /* scratch capacity in rows */
    float *scratch;          /* every per-row buffer below, in one block */
    float *x, *h, *sum2, *qkv, *qg, *att, *o, *mlp, *stats;
    lora_act *lacts;         /* n_layer·ARCH_N_SITES, for LoRA layers that are not merged */
    lora_act embed_act;
    int lora_gen;            /* the model's lora_gen when lacts were made */
    /* mixed batch: slot i uses adapter ids[i] of set (-1: none) */
    const model_adapter_set *set;
    int *ids, n_ids;
    float *xg, *yg, *hg;     /* gathered rows and their low-rank products */
    int hg_r;
};

int model_session_new(model *m, model_session **out, lorac_err *err) {
    *out = NULL;
    if (!m->cfg.causal || m->cfg.head != MODEL_HEAD_LM)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: a %s encoder has no KV-cache decoding", m->path, m->fam->name);
    if (!(*out = calloc(1, sizeof **out))) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", m->path);
    (*out)->m = m;
    return LORAC_OK;
}

static void free_lacts(model_session *s) {
    for (int i = 0; s->lacts && i < s->m->cfg.n_layer * ARCH_N_SITES; i++) lora_act_free(&s->lacts[i]);
    free(s->lacts);
    s->lacts = NULL;
    lora_act_free(&s->embed_act);
}

static void free_scratch(model_session *s) {
    free(s->scratch);
    free(s->pos);
    s->pos = NULL;
    free(s->xg), free(s->yg), free(s->hg);
    s->scratch = s->xg = s->yg = s->hg = NULL;
    s->rows = s->hg_r = 0;
    free_lacts(s);
}

void model_session_free(model_session *s) {
    if (!s) return;
    free_scratch(s);
    free(s->ids), free(s->lens), free(s->k), free(s->v), free(s->scores), free(s->moved);
    free(s);
}

int model_session_len(const model_session *s) { return s->n_slots ? s->lens[0] : 0; }
int model_session_slot_len(const model_session *s, int slot) { return slot >= 0 && slot < s->n_slots ? s->lens[slot] : -1; }

int model_session_rows_exact(const model_session *s) { /* fp32 products (sgemm) change bits with the row count */
    const model *m = s->m;
    int ok = !s->set && !m->embed_lora && qmat_direct_applies(&m->lm_head);
    for (int l = 0; ok && l < m->cfg.n_layer; l++)
        for (int i = 0; ok && i < ARCH_N_SITES; i++) {
            const site_lora *lo = model_site_lora(m, l, i);
            ok = !m->layers[l].site[i].w.data || (qmat_direct_applies(&m->layers[l].site[i].w) && !(lo && lo->split));
        }
    return ok;
}

int model_session_reset_slot(model_session *s, int slot, lorac_err *err) {
    if (slot < 0 || slot >= s->n_slots) return lorac_fail(err, LORAC_EINVAL, "%s: no slot %d of %d", s->m->path, slot, s->n_slots);
    s->lens[slot] = 0;
    return LORAC_OK;
}

int model_session_begin(model_session *s, int n_slots, int max_len, lorac_err *err) {
    const model_config *c = &s->m->cfg;
    if (n_slots < 1 || max_len < 1) return lorac_fail(err, LORAC_EINVAL, "%s: %d slots of %d tokens", s->m->path, n_slots, max_len);
    if (max_len > model_max_len(s->m))
        return lorac_fail(err, LORAC_EINVAL, "%s: %d tokens exceed the model's %d positions%s", s->m->path, max_len,
                          model_max_len(s->m), c->sliding_window > 0 ? " (or its sliding window)" : "");
    if (n_slots != s->n_slots || max_len != s->cap) {
        size_t kv, sc, KD = (size_t)c->n_kv_head * c->head_dim;
        free(s->k), free(s->v), free(s->scores), free(s->lens);
        s->k = s->v = s->scores = NULL;
        s->lens = s->slot = s->seq_pos = s->step_ids = NULL;
        int *ints = NULL;
        if (lorac_size_mul((size_t)c->n_layer * n_slots, (size_t)max_len * KD, &kv) || lorac_size_mul(kv, sizeof(float), &kv) ||
            !(s->k = malloc(kv)) || !(s->v = malloc(kv)) ||
            lorac_size_mul((size_t)n_slots * c->n_head, (size_t)max_len * sizeof(float), &sc) || !(s->scores = malloc(sc)) ||
            !(s->lens = ints = calloc(4 * (size_t)n_slots, sizeof *ints))) {
            free(s->k), free(s->v), free(s->scores);
            s->k = s->v = s->scores = NULL;
            s->n_slots = s->cap = 0;
            return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for a KV cache of %d x %d tokens", s->m->path, n_slots,
                              max_len);
        }
        s->slot = ints + n_slots, s->seq_pos = ints + 2 * n_slots, s->step_ids = ints + 3 * n_slots;
        s->n_slots = n_slots;
        s->cap = max_len;
    }
    memset(s->lens, 0, (size_t)n_slots * sizeof *s->lens);
    return LORAC_OK;
}

static int ensure_rows(model_session *s, int rows, lorac_err *err) {
    const model_config *c = &s->m->cfg;
    if (s->lacts && s->lora_gen != s->m->lora_gen) free_lacts(s); /* the adapter changed: new LoRA records */
    if (rows > s->rows) {
        free_scratch(s);
        size_t R = (size_t)rows, C = c->n_embd, I = c->n_inner, QD = (size_t)c->n_head * c->head_dim;
        size_t W = QD + 2 * (size_t)c->n_kv_head * c->head_dim, mlp = (c->act == MODEL_ACT_SWIGLU ? 2 : 1) * I;
        size_t per_row = 4 * C + W + 2 * QD + mlp + 4, wide = C > QD ? C : QD;
        wide = wide > I ? wide : I;
        wide = wide > W ? wide : W;
        if (!(s->scratch = malloc(R * per_row * sizeof(float))) || !(s->xg = malloc(R * wide * sizeof(float))) ||
            !(s->yg = malloc(R * wide * sizeof(float))) || !(s->pos = malloc(R * sizeof *s->pos))) {
            free_scratch(s);
            return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for %d inference rows", s->m->path, rows);
        }
        float *p = s->scratch;
        s->x = p, p += R * C;
        s->h = p, p += R * C;
        s->sum2 = p, p += R * C;
        s->o = p, p += R * C;
        s->qkv = p, p += R * W;
        s->qg = p, p += R * QD;
        s->att = p, p += R * QD;
        s->mlp = p, p += R * mlp;
        s->stats = p;
        s->rows = rows;
    }
    if (!s->lacts) {
        if (!(s->lacts = calloc((size_t)c->n_layer * ARCH_N_SITES, sizeof *s->lacts)))
            return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", s->m->path);
        s->lora_gen = s->m->lora_gen;
    }
    return LORAC_OK;
}

/* ---------------------------------------------------------------- mixed-adapter batches */

int model_session_use_adapters(model_session *s, const model_adapter_set *set, const int *ids, int n, lorac_err *err) {
    if (!set) {
        s->set = NULL;
        s->n_ids = 0;
        return LORAC_OK;
    }
    /* every check before anything changes: a refused call leaves the session as it was */
    if (model_adapter_set_model(set) != s->m)
        return lorac_fail(err, LORAC_EINVAL, "%s: the adapter set belongs to another base model than the session's", s->m->path);
    if (model_adapter_set_active(set, NULL) >= 0)
        return lorac_fail(err, LORAC_EINVAL, "%s: a mixed-adapter session needs a set with no active adapter (activate -1)",
                          s->m->path);
    int rc = lora_rows_set_ids(&s->ids, &s->n_ids, ids, n, model_adapter_set_count(set), s->n_slots, s->m->path, err);
    if (!rc) s->set = set;
    return rc;
}

typedef struct mixed_ctx {
    model_session *s;
    int S, n_new;
} mixed_ctx;

/* out (R,OC) += the low-rank products of every slot's own adapter at (layer, site). */
static int mixed_site(void *ctx, int l, int site, float *out, const float *inp, lorac_err *err) {
    mixed_ctx *mc = ctx;
    model_session *s = mc->s;
    const model_linear *L = &s->m->layers[l].site[site];
    const int *ids = s->step_ids;
    for (int sl = 0; sl < mc->S; sl++) {
        const site_lora *lo = lora_rows_first_use(ids, sl) ? model_adapter_set_layout(s->set, ids[sl], NULL) : NULL;
        if (!lo || (lo += (size_t)l * ARCH_N_SITES + site, !lo->lin && !lo->split)) continue;
        if (lora_rows_reserve(&s->hg, &s->hg_r, (size_t)s->rows, lo->lin ? lo->lin->cfg.r : lo->split->cfg.r))
            return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for mixed-adapter rows", s->m->path);
        int n = lora_rows_gather(s->xg, inp, ids, mc->S, sl, mc->n_new, L->C);
        if (lo->lin) lora_rows_lowrank(lo->lin, s->xg, s->hg, s->yg, n);
        else lora_rows_lowrank_merged(lo->split, s->xg, s->hg, s->yg, n);
        lora_rows_scatter_add(out, s->yg, ids, mc->S, sl, mc->n_new, L->OC);
    }
    return LORAC_OK;
}

/* x (R,C) += each slot's embedding LoRA rows (slots whose adapter has one). */
static void mixed_embed(model_session *s, const int32_t *tokens, int S, int n_new) {
    for (int sl = 0; sl < S; sl++) {
        const lora_embedding *E = NULL;
        if (s->step_ids[sl] >= 0 && model_adapter_set_layout(s->set, s->step_ids[sl], &E) && E)
            lora_rows_embedding_add(E, s->x + (size_t)sl * n_new * s->m->cfg.n_embd, tokens + (size_t)sl * n_new, n_new);
    }
}

/* ---------------------------------------------------------------- a step */

static int embed_rows(model_session *s, const int32_t *tokens, int S, int n_new, lorac_err *err) {
    model *m = s->m;
    int C = m->cfg.n_embd, R = S * n_new, rc;
    if (m->embed_lora) {
        if (!s->embed_act.cap_N && (rc = lora_embedding_act_init(&s->embed_act, m->embed_lora, s->rows, err))) return rc;
        if ((rc = lora_embedding_forward(m->embed_lora, &s->embed_act, s->x, tokens, R, err))) return rc;
    } else {
        for (int r = 0; r < R; r++) qmat_row_f32(&m->embed, tokens[r], s->x + (size_t)r * C);
    }
    if (s->set) mixed_embed(s, tokens, S, n_new);
    for (int r = 0; m->pos_embed && r < R; r++) op_add(s->x + (size_t)r * C, s->x + (size_t)r * C,
                                                       m->pos_embed + (size_t)s->pos[r] * C, (size_t)C);
    for (int r = 0; m->type_embed && r < R; r++) op_add(s->x + (size_t)r * C, s->x + (size_t)r * C, m->type_embed, (size_t)C);
    if (m->cfg.emb_norm) norm_forward(m, m->emb_norm_w, m->emb_norm_b, s->x, s->stats, s->stats + R, s->x, R);
    return LORAC_OK;
}

static void layer_bufs(model_session *s, int l, int S, int n_new, mixed_ctx *mc, block_bufs *b) {
    const model_config *c = &s->m->cfg;
    int R = S * n_new;
    size_t KD = (size_t)c->n_kv_head * c->head_dim, layer = (size_t)s->n_slots * s->cap * KD;
    memset(b, 0, sizeof *b);
    b->N = R, b->B = S, b->T = n_new, b->slots = s->slot, b->seq_pos = s->seq_pos, b->pos = s->pos;
    b->x = b->out = b->sum1 = s->x;
    b->sum2 = s->sum2;
    b->mean[0] = s->stats, b->rstd[0] = s->stats + R, b->mean[1] = s->stats + 2 * R, b->rstd[1] = s->stats + 3 * R;
    b->h = s->h, b->qkv = s->qkv, b->att = s->att, b->o = s->o, b->pre = b->mlp = s->mlp;
    b->lacts = s->lacts + (size_t)l * ARCH_N_SITES, b->cap_N = s->rows;
    b->kc = s->k + (size_t)l * layer, b->vc = s->v + (size_t)l * layer, b->qg = s->qg, b->scores = s->scores, b->cap = s->cap;
    if (s->set) b->mixed = mixed_site, b->mixed_ctx = mc;
}

/* Every check before anything changes: a refused step leaves the session as it was. */
static int step_check(model_session *s, const int *slots, const int32_t *tokens, int S, int n_new, lorac_err *err) {
    model *m = s->m;
    int V = m->cfg.vocab_size;
    if (S < 1 || S > s->n_slots || n_new < 1)
        return lorac_fail(err, LORAC_EINVAL, "%s: step of %d x %d tokens on %d slots", m->path, S, n_new, s->n_slots);
    if (s->set && m->has_lora) return lorac_fail(err, LORAC_EINVAL, "%s: a mixed-adapter session needs no active adapter (activate -1)", m->path);
    for (int i = 0; i < S; i++) {
        int sl = slots[i], dup = 0;
        for (int j = 0; j < i; j++) dup |= slots[j] == sl;
        if (sl < 0 || sl >= s->n_slots || dup) return lorac_fail(err, LORAC_EINVAL, "%s: step on slot %d (of %d) %s", m->path, sl, s->n_slots, dup ? "twice" : "");
        if (s->lens[sl] + n_new > s->cap)
            return lorac_fail(err, LORAC_EINVAL, "%s: %d tokens exceed the session's %d", m->path, s->lens[sl] + n_new, s->cap);
        if (s->set && sl >= s->n_ids) return lorac_fail(err, LORAC_EINVAL, "%s: slot %d but adapters given for %d", m->path, sl, s->n_ids);
    }
    for (int i = 0; i < S * n_new; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return lorac_fail(err, LORAC_EINVAL, "%s: token id %d is outside the vocabulary (%d)", m->path, tokens[i], V);
    return LORAC_OK;
}

/* decode: every product of a quantized base through qmat_matmul_decode (int8 activations, a row's
 * bits whatever its neighbours), else fp32 products (a prompt: sgemm over dequantized tiles) */
static int step_rows(model_session *s, const int *slots, const int32_t *tokens, int S, int n_new, int decode, float *logits,
                     lorac_err *err) {
    model *m = s->m;
    const model_config *c = &m->cfg;
    int C = c->n_embd, V = c->vocab_size, R = S * n_new, rc;
    if ((rc = step_check(s, slots, tokens, S, n_new, err)) || (rc = ensure_rows(s, R, err))) return rc;
    for (int i = 0; i < S; i++) {
        s->slot[i] = slots[i], s->seq_pos[i] = s->lens[slots[i]];
        s->step_ids[i] = s->set ? s->ids[slots[i]] : -1;
        for (int t = 0; t < n_new; t++) s->pos[i * n_new + t] = s->seq_pos[i] + t;
    }
    if ((rc = embed_rows(s, tokens, S, n_new, err))) return rc;
    mixed_ctx mc = {s, S, n_new};
    for (int l = 0; l < c->n_layer; l++) {
        block_bufs b;
        layer_bufs(s, l, S, n_new, &mc, &b);
        b.decode = decode;
        if ((rc = block_forward(m, l, &b, err))) return rc;
    }
    /* logits only for the last new token of each sequence */
    for (int sl = 0; sl < S; sl++)
        memcpy(s->o + (size_t)sl * C, s->x + ((size_t)sl * n_new + n_new - 1) * C, (size_t)C * sizeof(float));
    const float *last = s->o;
    if (c->final_norm) {
        norm_forward(m, m->final_norm_w, m->final_norm_b, s->h, s->stats, s->stats + S, s->o, S);
        last = s->h;
    }
    if (m->lm_head.type == QUANT_F32) op_matmul_forward(logits, last, m->lm_head.data, NULL, S, C, V, OP_W_OUT_IN);
    else if ((rc = (decode ? qmat_matmul_decode : qmat_matmul_forward)(logits, last, &m->lm_head, NULL, S, err))) return rc;
    for (int i = 0; i < S; i++) s->lens[slots[i]] += n_new;
    return LORAC_OK;
}

int model_session_step_slots(model_session *s, const int *slots, const int32_t *tokens, int S, int n_new, float *logits,
                             lorac_err *err) {
    return step_rows(s, slots, tokens, S, n_new, n_new == 1, logits, err);
}

int model_session_prefill_slots(model_session *s, const int *slots, const int32_t *tokens, int S, int n_new, float *logits,
                                lorac_err *err) {
    return step_rows(s, slots, tokens, S, n_new, 0, logits, err);
}

int model_session_step(model_session *s, const int32_t *tokens, int S, int n_new, float *logits, lorac_err *err) {
    if (S < 1 || S > s->n_slots)
        return lorac_fail(err, LORAC_EINVAL, "%s: step of %d x %d tokens on %d slots", s->m->path, S, n_new, s->n_slots);
    for (int i = 0; i < S; i++) s->slot[i] = i; /* step_slots copies slots before it overwrites s->slot */
    return model_session_step_slots(s, s->slot, tokens, S, n_new, logits, err);
}

int model_session_reorder(model_session *s, const int32_t *src, int n_seq, lorac_err *err) {
    const model_config *c = &s->m->cfg;
    size_t KD = (size_t)c->n_kv_head * c->head_dim, slot = (size_t)s->cap * KD, used = 0;
    if (n_seq < 1 || n_seq > s->n_slots) return lorac_fail(err, LORAC_EINVAL, "%s: reorder of %d slots", s->m->path, n_seq);
    for (int i = 0; i < n_seq; i++) {
        if (src[i] < 0 || src[i] >= s->n_slots) return lorac_fail(err, LORAC_EINVAL, "%s: reorder from slot %d", s->m->path, src[i]);
        if ((size_t)s->lens[src[i]] * KD > used) used = (size_t)s->lens[src[i]] * KD;
    }
    if ((size_t)n_seq * used > s->moved_cap) {
        float *t = realloc(s->moved, (size_t)n_seq * used * sizeof(float));
        if (!t) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory reordering the KV cache", s->m->path);
        s->moved = t, s->moved_cap = (size_t)n_seq * used;
    }
    for (int l = 0; l < c->n_layer; l++) /* only slots that change: a beam kept in place costs nothing */
        for (int kv = 0; kv < 2; kv++) {
            float *base = (kv ? s->v : s->k) + (size_t)l * s->n_slots * slot;
            for (int i = 0; i < n_seq; i++) if (src[i] != i) memcpy(s->moved + i * used, base + src[i] * slot, used * sizeof(float));
            for (int i = 0; i < n_seq; i++) if (src[i] != i) memcpy(base + i * slot, s->moved + i * used, used * sizeof(float));
        }
    for (int i = 0; i < n_seq; i++) s->seq_pos[i] = s->lens[src[i]];
    memcpy(s->lens, s->seq_pos, (size_t)n_seq * sizeof *s->lens);
    /* each slot keeps its sequence's adapter */
    return s->set ? lora_rows_reorder_ids(s->ids, s->n_ids, src, n_seq, s->m->path, err) : LORAC_OK;
}
