/* GPT-2 forward and backward over a batch (B,T), with LoRA on any of the block's linear maps.
 * Shapes: N = B*T rows, C = n_embd, I = n_inner, V = vocab, NH heads of HS = C/NH. */
#include <stdlib.h>
#include <string.h>

#include "lorac/gpt2.h"
#include "lorac/ops.h"
#include "models/gpt2_internal.h"


struct gpt2_acts {
    int capB, capT;
    int n_layer;
    const gpt2_model *owner; /* the model (and LoRA layout, lora_gen) the LoRA records were made for */
    int lora_gen;
    int B, T;            /* of the last forward */
    int have_grad;       /* the last forward left dlogits for gpt2_backward */
    float dloss;         /* 1/count: the gradient of the mean loss per scored token */
    float *arena;
    /* kept for the backward, per layer l (arrays of n_layer pointers into arena) */
    float **res;         /* (N,C) the residual stream entering layer l; res[L] leaves the last one */
    float **ln1, **ln1_mean, **ln1_rstd;  /* (N,C), (N), (N) */
    float **q, **k, **v;                  /* (N,C) each */
    float **att, **lse;                   /* (N,C), (B,NH,T) */
    float **res2;                         /* (N,C) res + attention */
    float **ln2, **ln2_mean, **ln2_rstd;
    float **fch, **fchg;                  /* (N,I) pre- and post-GELU */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits;                        /* (N,V); dlogits after a forward for the backward */
    float *losses;                        /* (N) */
    int *targets;                         /* (N) */
    /* scratch */
    float *qkv;                           /* (N,3C) */
    float *dres, *dres2, *dln, *datt;     /* (N,C) */
    float *dq, *dk, *dv;                  /* (N,C) */
    float *dfch, *dfchg;                  /* (N,I) */
    lora_act *lacts;                      /* n_layer * N_SITES */
    lora_act wte_act;                     /* the LoRA Embedding's record, when wte has one */
    int32_t *ids;                         /* (N) the last forward's tokens (the wte LoRA backward) */
};

const float *gpt2_acts_logits(const gpt2_acts *a) { return a->logits; }

void gpt2_acts_free(gpt2_acts *a) {
    if (!a) return;
    free(a->arena);
    free(a->res);
    free(a->targets);
    free(a->ids);
    lora_act_free(&a->wte_act);
    if (a->lacts) {
        for (int i = 0; i < a->n_layer * N_SITES; i++) lora_act_free(&a->lacts[i]);
        free(a->lacts);
    }
    free(a);
}

/* Carves n floats from the arena (a first pass with base NULL only counts). */
static float *carve(float *base, size_t *off, size_t n) {
    float *p = base ? base + *off : NULL;
    *off += n;
    return p;
}

static size_t acts_layout(gpt2_acts *a, const gpt2_config *c, float *base) {
    size_t N = (size_t)a->capB * a->capT, C = c->n_embd, I = c->n_inner, V = c->vocab_size;
    size_t NHT = (size_t)a->capB * c->n_head * a->capT, off = 0;
    int L = c->n_layer;
    for (int l = 0; l <= L; l++) {
        float *r = carve(base, &off, N * C);
        if (base) a->res[l] = r;
        if (l == L) break;
#define PART(field, n) do { float *p_ = carve(base, &off, (n)); if (base) a->field[l] = p_; } while (0)
        PART(ln1, N * C); PART(ln1_mean, N); PART(ln1_rstd, N);
        PART(q, N * C); PART(k, N * C); PART(v, N * C);
        PART(att, N * C); PART(lse, NHT); PART(res2, N * C);
        PART(ln2, N * C); PART(ln2_mean, N); PART(ln2_rstd, N);
        PART(fch, N * I); PART(fchg, N * I);
#undef PART
    }
    float *p;
#define ONE(field, n) do { p = carve(base, &off, (n)); if (base) a->field = p; } while (0)
    ONE(lnf, N * C); ONE(lnf_mean, N); ONE(lnf_rstd, N);
    ONE(logits, N * V); ONE(losses, N); ONE(qkv, N * 3 * C);
    ONE(dres, N * C); ONE(dres2, N * C); ONE(dln, N * C); ONE(datt, N * C);
    ONE(dq, N * C); ONE(dk, N * C); ONE(dv, N * C);
    ONE(dfch, N * I); ONE(dfchg, N * I);
#undef ONE
    return off;
}

/* One table of per-layer pointer arrays: 16 arrays of n_layer (+1 for res) pointers. */
static int acts_tables(gpt2_acts *a, int L) {
    float ***tabs[] = {&a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->q, &a->k, &a->v, &a->att, &a->lse,
                       &a->res2, &a->ln2, &a->ln2_mean, &a->ln2_rstd, &a->fch, &a->fchg};
    size_t nt = sizeof tabs / sizeof tabs[0];
    a->res = calloc((size_t)(L + 1) + nt * (size_t)L, sizeof(float *));
    if (!a->res) return -1;
    for (size_t i = 0; i < nt; i++) *tabs[i] = a->res + (L + 1) + i * (size_t)L;
    return 0;
}

int gpt2_acts_alloc(const gpt2_model *m, int B, int T, gpt2_acts **out, lorac_err *err) {
    const gpt2_config *c = &m->cfg;
    *out = NULL;
    if (B < 1 || T < 1) return lorac_fail(err, LORAC_EINVAL, "gpt2: batch %d x %d is empty", B, T);
    if (T > c->n_positions)
        return lorac_fail(err, LORAC_EINVAL, "gpt2: sequence length %d exceeds n_positions %d", T, c->n_positions);
    gpt2_acts *a = calloc(1, sizeof *a);
    if (!a) return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for activations");
    a->capB = B;
    a->capT = T;
    a->n_layer = c->n_layer;
    size_t n = acts_layout(a, c, NULL), bytes;
    if (acts_tables(a, c->n_layer) || lorac_size_mul(n, sizeof(float), &bytes) || !(a->arena = malloc(bytes)) ||
        !(a->targets = malloc((size_t)B * T * sizeof(int))) || !(a->ids = malloc((size_t)B * T * sizeof(int32_t)))) {
        gpt2_acts_free(a);
        return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for activations of a %d x %d batch", B, T);
    }
    acts_layout(a, c, a->arena);
    *out = a;
    return LORAC_OK;
}

/* ---------------------------------------------------------------- forward */

static void split_qkv(const float *qkv, float *q, float *k, float *v, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *row = qkv + (size_t)n * 3 * C;
        memcpy(q + (size_t)n * C, row, C * sizeof(float));
        memcpy(k + (size_t)n * C, row + C, C * sizeof(float));
        memcpy(v + (size_t)n * C, row + 2 * C, C * sizeof(float));
    }
}

static void join_qkv(float *qkv, const float *q, const float *k, const float *v, int N, int C) {
    for (int n = 0; n < N; n++) {
        float *row = qkv + (size_t)n * 3 * C;
        memcpy(row, q + (size_t)n * C, C * sizeof(float));
        memcpy(row + C, k + (size_t)n * C, C * sizeof(float));
        memcpy(row + 2 * C, v + (size_t)n * C, C * sizeof(float));
    }
}

static void add(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

int gpt2_forward(gpt2_model *m, gpt2_acts *a, const int32_t *ids, const int32_t *targets, int B, int T,
                 float label_smoothing, int for_backward, lorac_rng *rng, float *loss, int *count,
                 lorac_err *err) {
    const gpt2_config *c = &m->cfg;
    int C = c->n_embd, I = c->n_inner, V = c->vocab_size, NH = c->n_head, HS = C / NH, L = c->n_layer;
    if (B > a->capB || T > a->capT)
        return lorac_fail(err, LORAC_EINVAL, "gpt2: batch %d x %d exceeds the activations' %d x %d", B, T, a->capB, a->capT);
    if (for_backward && !targets) return lorac_fail(err, LORAC_EINVAL, "gpt2: a backward needs targets");
    int N = B * T, rc;
    float eps = (float)c->layer_norm_epsilon;
    a->B = B;
    a->T = T;
    a->have_grad = 0;
    if (a->lacts && (a->owner != m || a->lora_gen != m->lora_gen)) { /* LoRA layout changed: new records */
        for (int i = 0; i < a->n_layer * N_SITES; i++) lora_act_free(&a->lacts[i]);
        free(a->lacts);
        a->lacts = NULL;
        lora_act_free(&a->wte_act);
    }
    a->owner = m;
    a->lora_gen = m->lora_gen;
    if (!a->lacts) {
        a->lacts = calloc((size_t)L * N_SITES, sizeof *a->lacts);
        if (!a->lacts) return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory");
    }
    for (int n = 0; n < N; n++) {
        if (ids[n] < 0 || ids[n] >= V)
            return lorac_fail(err, LORAC_EINVAL, "gpt2: token id %d at position %d is outside the vocabulary (%d)", ids[n], n, V);
        if (targets && (targets[n] >= V || (targets[n] < 0 && targets[n] != OP_IGNORE_INDEX)))
            return lorac_fail(err, LORAC_EINVAL, "gpt2: target %d at position %d is outside the vocabulary (%d)", targets[n], n, V);
    }
    /* x = wte[ids] + wpe[t] (through the LoRA Embedding when wte has one) */
    memcpy(a->ids, ids, (size_t)N * sizeof *ids);
    if (m->wte_lora) {
        if (!a->wte_act.cap_N && (rc = lora_embedding_act_init(&a->wte_act, m->wte_lora, a->capB * a->capT, err))) return rc;
        if ((rc = lora_embedding_forward(m->wte_lora, &a->wte_act, a->res[0], ids, N, err))) return rc;
    } else {
        op_embedding_forward(a->res[0], (const int *)ids, m->w.wte, N, C, V);
    }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *x = a->res[0] + ((size_t)b * T + t) * C;
            const float *p = m->w.wpe + (size_t)t * C;
            for (int i = 0; i < C; i++) x[i] += p[i];
        }
    for (int l = 0; l < L; l++) {
        const gpt2_layer_weights *W = &m->w.layers[l];
        op_layernorm_forward(a->ln1[l], a->ln1_mean[l], a->ln1_rstd[l], a->res[l], W->ln1_w, W->ln1_b, N, C, eps);
        if ((rc = gpt2_site_forward(m, &a->lacts[l * N_SITES + SITE_ATTN], a->capB * a->capT, l, SITE_ATTN, a->qkv, a->ln1[l], N, rng, err))) return rc;
        split_qkv(a->qkv, a->q[l], a->k[l], a->v[l], N, C);
        op_attention_forward(a->att[l], a->lse[l], a->q[l], a->k[l], a->v[l], NULL, B, T, NH, NH, HS, 1);
        if ((rc = gpt2_site_forward(m, &a->lacts[l * N_SITES + SITE_PROJ], a->capB * a->capT, l, SITE_PROJ, a->dln, a->att[l], N, rng, err))) return rc; /* dln: scratch */
        add(a->res2[l], a->res[l], a->dln, (size_t)N * C);
        op_layernorm_forward(a->ln2[l], a->ln2_mean[l], a->ln2_rstd[l], a->res2[l], W->ln2_w, W->ln2_b, N, C, eps);
        if ((rc = gpt2_site_forward(m, &a->lacts[l * N_SITES + SITE_FC], a->capB * a->capT, l, SITE_FC, a->fch[l], a->ln2[l], N, rng, err))) return rc;
        if (c->activation == GPT2_ACT_GELU) op_gelu_erf_forward(a->fchg[l], a->fch[l], (size_t)N * I);
        else op_gelu_tanh_forward(a->fchg[l], a->fch[l], (size_t)N * I);
        if ((rc = gpt2_site_forward(m, &a->lacts[l * N_SITES + SITE_FCPROJ], a->capB * a->capT, l, SITE_FCPROJ, a->dln, a->fchg[l], N, rng, err))) return rc;
        add(a->res[l + 1], a->res2[l], a->dln, (size_t)N * C);
    }
    op_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->res[L], m->w.lnf_w, m->w.lnf_b, N, C, eps);
    /* logits = lnf · headᵀ: the head is tied to the token embedding's W0 unless the config unties it */
    op_matmul_forward(a->logits, a->lnf, m->w.lm_head ? m->w.lm_head : m->w.wte, NULL, N, C, V, OP_W_OUT_IN);
    if (!targets) return LORAC_OK;
    for (int n = 0; n < N; n++) a->targets[n] = targets[n];
    int cnt = op_crossentropy_count(a->targets, N);
    float mean;
    if (for_backward) {
        a->dloss = cnt ? 1.0f / (float)cnt : 0.0f;
        mean = op_crossentropy_fused(a->logits, a->losses, a->targets, N, V, label_smoothing, a->dloss);
        a->have_grad = 1;
    } else {
        float *lse = a->dres; /* (N) scratch */
        mean = op_crossentropy_forward(a->losses, lse, a->logits, a->targets, N, V, label_smoothing);
    }
    if (loss) *loss = mean;
    if (count) *count = cnt;
    return LORAC_OK;
}

/* ---------------------------------------------------------------- backward */

int gpt2_backward(gpt2_model *m, gpt2_acts *a, lorac_err *err) {
    if (!a->have_grad) return lorac_fail(err, LORAC_EINVAL, "gpt2: backward without a forward for_backward");
    const gpt2_config *c = &m->cfg;
    int C = c->n_embd, I = c->n_inner, V = c->vocab_size, NH = c->n_head, HS = C / NH, L = c->n_layer;
    int B = a->B, T = a->T, N = B * T, rc;
    size_t NC = (size_t)N * C, NI = (size_t)N * I;
    /* dlnf = dlogits · wte (no gradient for the frozen, tied wte) */
    memset(a->dln, 0, NC * sizeof(float));
    op_matmul_backward(a->dln, NULL, NULL, a->logits, a->lnf, m->w.lm_head ? m->w.lm_head : m->w.wte, 1.0f, N, C, V,
                       OP_W_OUT_IN);
    memset(a->dres, 0, NC * sizeof(float));
    op_layernorm_backward(a->dres, NULL, NULL, a->dln, a->res[L], m->w.lnf_w, a->lnf_mean, a->lnf_rstd, N, C);
    for (int l = L - 1; l >= 0; l--) {
        const gpt2_layer_weights *W = &m->w.layers[l];
        /* res[l+1] = res2 + mlp_proj(gelu(mlp_fc(ln2(res2)))) */
        memset(a->dfchg, 0, NI * sizeof(float));
        if ((rc = gpt2_site_backward(m, &a->lacts[l * N_SITES + SITE_FCPROJ], l, SITE_FCPROJ, a->dfchg, a->dres, a->fchg[l], N, err))) return rc;
        memset(a->dfch, 0, NI * sizeof(float));
        if (c->activation == GPT2_ACT_GELU) op_gelu_erf_backward(a->dfch, a->dfchg, a->fch[l], NI);
        else op_gelu_tanh_backward(a->dfch, a->dfchg, a->fch[l], NI);
        memset(a->dln, 0, NC * sizeof(float));
        if ((rc = gpt2_site_backward(m, &a->lacts[l * N_SITES + SITE_FC], l, SITE_FC, a->dln, a->dfch, a->ln2[l], N, err))) return rc;
        memcpy(a->dres2, a->dres, NC * sizeof(float));
        op_layernorm_backward(a->dres2, NULL, NULL, a->dln, a->res2[l], W->ln2_w, a->ln2_mean[l], a->ln2_rstd[l], N, C);
        /* res2 = res + attn_proj(attention(split(c_attn(ln1(res))))) */
        memset(a->datt, 0, NC * sizeof(float));
        if ((rc = gpt2_site_backward(m, &a->lacts[l * N_SITES + SITE_PROJ], l, SITE_PROJ, a->datt, a->dres2, a->att[l], N, err))) return rc;
        memset(a->dq, 0, NC * sizeof(float));
        memset(a->dk, 0, NC * sizeof(float));
        memset(a->dv, 0, NC * sizeof(float));
        op_attention_backward(a->dq, a->dk, a->dv, a->datt, a->att[l], a->lse[l], a->q[l], a->k[l], a->v[l], NULL,
                              B, T, NH, NH, HS, 1);
        join_qkv(a->qkv, a->dq, a->dk, a->dv, N, C); /* qkv now holds dqkv */
        memset(a->dln, 0, NC * sizeof(float));
        if ((rc = gpt2_site_backward(m, &a->lacts[l * N_SITES + SITE_ATTN], l, SITE_ATTN, a->dln, a->qkv, a->ln1[l], N, err))) return rc;
        memcpy(a->dres, a->dres2, NC * sizeof(float));
        op_layernorm_backward(a->dres, NULL, NULL, a->dln, a->res[l], W->ln1_w, a->ln1_mean[l], a->ln1_rstd[l], N, C);
    }
    (void)V;
    /* dres now holds the gradient of the embedding output: only a LoRA on wte wants it */
    if (m->wte_lora && (rc = lora_embedding_backward(m->wte_lora, &a->wte_act, a->dres, a->ids, err))) return rc;
    a->have_grad = 0;
    return LORAC_OK;
}
