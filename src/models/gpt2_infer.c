/* GPT-2 inference with a KV cache: a prefill of the prompt, then one token per slot per step.
 * Shapes: S slots, n_new new tokens each, R = S*n_new rows, C = n_embd, cap = max_len. */
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
    if (!s->x || !s->ln || !s->qkv || !s->q || !s->att || !s->tmp || !s->fch || !s->last || !s->lacts) {
        free_scratch(s);
        return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for %d inference rows", rows);
    }
    s->rows = rows;
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
        for (size_t i = 0; i < (size_t)R * C; i++) s->x[i] += s->tmp[i];
        op_layernorm_forward(s->ln, mean, rstd, s->x, W->ln2_w, W->ln2_b, R, C, eps);
        if ((rc = gpt2_site_forward(m, &acts[SITE_FC], s->rows, l, SITE_FC, s->fch, s->ln, R, NULL, err))) return rc;
        if (c->activation == GPT2_ACT_GELU) op_gelu_erf_forward(s->fch, s->fch, (size_t)R * I);
        else op_gelu_tanh_forward(s->fch, s->fch, (size_t)R * I);
        if ((rc = gpt2_site_forward(m, &acts[SITE_FCPROJ], s->rows, l, SITE_FCPROJ, s->tmp, s->fch, R, NULL, err))) return rc;
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
    return LORAC_OK;
}
