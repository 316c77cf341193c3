/* Llama-family forward and backward over a batch (B,T), with LoRA on any of the seven projections.
 * Shapes: N = B*T rows, C = hidden, I = intermediate, V = vocab, NH query heads and NKV key/value
 * heads of HS each; QD = NH*HS, KD = NKV*HS. */
#include <stdlib.h>
#include <string.h>

#include "lorac/llama.h"
#include "lorac/ops.h"
#include "lorac/ops_rope.h"
#include "lorac/quant.h"

struct llama_acts {
    int capB, capT, n_layer;
    const llama_model *owner;   /* the model (and LoRA layout) the LoRA records were made for */
    int lora_gen;
    int B, T;                   /* of the last forward */
    int have_grad;              /* the last forward left dlogits for llama_backward */
    float *arena;
    /* kept for the backward, per layer */
    float **res;                /* (N,C) residual stream entering layer l; res[L] leaves the last */
    float **ln1, **rstd1;       /* (N,C), (N) */
    float **q, **k, **v;        /* (N,QD), (N,KD), (N,KD): q and k after the rotation */
    float **att, **lse;         /* (N,QD), (B,NH,T) */
    float **res2;               /* (N,C) res + attention */
    float **ln2, **rstd2;       /* (N,C), (N) */
    float **gate, **up, **h;    /* (N,I): projections and silu(gate)·up */
    float *lnf, *rstdf;         /* (N,C), (N) */
    float *logits;              /* (N,V); dlogits after a forward for the backward */
    float *losses;              /* (N) */
    int *targets;               /* (N) */
    /* scratch */
    float *dres, *dres2, *dln;  /* (N,C) */
    float *datt, *dq, *dqr;     /* (N,QD) */
    float *dk, *dkr, *dv;       /* (N,KD) */
    float *dh, *dgate, *dup;    /* (N,I) */
    lora_act *lacts;            /* n_layer * LLAMA_N_SITES */
};

const float *llama_acts_logits(const llama_acts *a) { return a->logits; }

static void free_lacts(llama_acts *a) {
    if (!a->lacts) return;
    for (int i = 0; i < a->n_layer * LLAMA_N_SITES; i++) lora_act_free(&a->lacts[i]);
    free(a->lacts);
    a->lacts = NULL;
}

void llama_acts_free(llama_acts *a) {
    if (!a) return;
    free(a->arena);
    free(a->res);
    free(a->targets);
    free_lacts(a);
    free(a);
}

/* Carves n floats from the arena (a first pass with base NULL only counts). Sizes are counted
 * in size_t and checked by the caller's overflow-checked multiply of the total. */
static float *carve(float *base, size_t *off, size_t n) {
    float *p = base ? base + *off : NULL;
    *off += n;
    return p;
}

static size_t acts_layout(llama_acts *a, const llama_config *c, float *base) {
    size_t N = (size_t)a->capB * a->capT, C = c->n_embd, I = c->n_inner, V = c->vocab_size;
    size_t QD = (size_t)c->n_head * c->head_dim, KD = (size_t)c->n_kv_head * c->head_dim;
    size_t NHT = (size_t)a->capB * c->n_head * a->capT, off = 0;
    int L = c->n_layer;
    for (int l = 0; l <= L; l++) {
        float *r = carve(base, &off, N * C);
        if (base) a->res[l] = r;
        if (l == L) break;
#define PART(field, n) do { float *p_ = carve(base, &off, (n)); if (base) a->field[l] = p_; } while (0)
        PART(ln1, N * C); PART(rstd1, N); PART(q, N * QD); PART(k, N * KD); PART(v, N * KD);
        PART(att, N * QD); PART(lse, NHT); PART(res2, N * C); PART(ln2, N * C); PART(rstd2, N);
        PART(gate, N * I); PART(up, N * I); PART(h, N * I);
#undef PART
    }
    float *p;
#define ONE(field, n) do { p = carve(base, &off, (n)); if (base) a->field = p; } while (0)
    ONE(lnf, N * C); ONE(rstdf, N); ONE(logits, N * V); ONE(losses, N);
    ONE(dres, N * C); ONE(dres2, N * C); ONE(dln, N * C);
    ONE(datt, N * QD); ONE(dq, N * QD); ONE(dqr, N * QD);
    ONE(dk, N * KD); ONE(dkr, N * KD); ONE(dv, N * KD);
    ONE(dh, N * I); ONE(dgate, N * I); ONE(dup, N * I);
#undef ONE
    return off;
}

/* The per-layer pointer arrays (n_layer each, res n_layer + 1) in one allocation. */
static int acts_tables(llama_acts *a, int L) {
    float ***tabs[] = {&a->ln1, &a->rstd1, &a->q, &a->k, &a->v, &a->att, &a->lse,
                       &a->res2, &a->ln2, &a->rstd2, &a->gate, &a->up, &a->h};
    size_t nt = sizeof tabs / sizeof tabs[0];
    a->res = calloc((size_t)(L + 1) + nt * (size_t)L, sizeof(float *));
    if (!a->res) return -1;
    for (size_t i = 0; i < nt; i++) *tabs[i] = a->res + (L + 1) + i * (size_t)L;
    return 0;
}

int llama_acts_alloc(const llama_model *m, int B, int T, llama_acts **out, lorac_err *err) {
    const llama_config *c = &m->cfg;
    *out = NULL;
    if (B < 1 || T < 1) return lorac_fail(err, LORAC_EINVAL, "llama: batch %d x %d is empty", B, T);
    if (T > c->n_positions)
        return lorac_fail(err, LORAC_EINVAL, "llama: sequence length %d exceeds max_position_embeddings %d", T, c->n_positions);
    llama_acts *a = calloc(1, sizeof *a);
    if (!a) return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory for activations");
    a->capB = B;
    a->capT = T;
    a->n_layer = c->n_layer;
    size_t n = acts_layout(a, c, NULL), bytes, nt;
    if (acts_tables(a, c->n_layer) || lorac_size_mul(n, sizeof(float), &bytes) || !(a->arena = malloc(bytes)) ||
        lorac_size_mul((size_t)B * T, sizeof(int), &nt) || !(a->targets = malloc(nt))) {
        llama_acts_free(a);
        return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory for activations of a %d x %d batch", B, T);
    }
    acts_layout(a, c, a->arena);
    *out = a;
    return LORAC_OK;
}

/* ---------------------------------------------------------------- the linear maps */

/* out (N,OC) = site(inp (N,C)) through the frozen nn.Linear or its LoRA layer. A LoRA layer over an
 * f32 base computes the whole site (and merges for inference); over a quantized base the qmat
 * matmul computes W·x + b and the layer adds s·B·A·dropout(x). */
static int site_forward(llama_model *m, llama_acts *a, int l, int s, float *out, const float *inp, int N,
                        lorac_rng *rng, lorac_err *err) {
    lora_linear *L = llama_model_lora(m, l, s);
    const llama_layer_weights *W = &m->w.layers[l];
    lora_act *act = L ? &a->lacts[l * LLAMA_N_SITES + s] : NULL;
    int rc = !L || act->cap_N ? LORAC_OK : lora_linear_act_init(act, L, a->capB * a->capT, err);
    if (rc) return rc;
    if (L && L->weight) return lora_linear_forward(L, act, out, inp, N, rng, err);
    rc = qmat_matmul_forward(out, inp, &W->w[s], W->b[s], N, err);
    if (!rc && L) rc = lora_linear_delta_forward(L, act, out, inp, N, rng, err);
    return rc;
}

/* dinp (N,C) += ∂/∂inp of the site; its LoRA layer (if any) accumulates its own gradients. */
static int site_backward(llama_model *m, llama_acts *a, int l, int s, float *dinp, const float *dout,
                         const float *inp, int N, lorac_err *err) {
    lora_linear *L = llama_model_lora(m, l, s);
    lora_act *act = L ? &a->lacts[l * LLAMA_N_SITES + s] : NULL;
    if (L && L->weight) return lora_linear_backward(L, act, dinp, dout, inp, err);
    int rc = qmat_matmul_backward_input(dinp, dout, &m->w.layers[l].w[s], N, err);
    if (!rc && L) rc = lora_linear_delta_backward(L, act, dinp, dout, err);
    return rc;
}

/* out (N,C): rows of the (possibly quantized) embedding matrix. */
static void embed_lookup(float *out, const int32_t *ids, const qmat *e, int N) {
#pragma omp parallel for schedule(static) if (N > 64)
    for (int n = 0; n < N; n++) qmat_row_f32(e, ids[n], out + (size_t)n * e->cols);
}

/* ---------------------------------------------------------------- forward */

int llama_forward(llama_model *m, llama_acts *a, const int32_t *ids, const int32_t *targets, int B, int T,
                  float label_smoothing, int for_backward, lorac_rng *rng, float *loss, int *count,
                  lorac_err *err) {
    const llama_config *c = &m->cfg;
    int C = c->n_embd, I = c->n_inner, V = c->vocab_size, NH = c->n_head, NKV = c->n_kv_head, HS = c->head_dim;
    int L = c->n_layer, N = B * T, rc;
    float eps = (float)c->rms_norm_eps;
    if (B < 1 || T < 1 || B > a->capB || T > a->capT)
        return lorac_fail(err, LORAC_EINVAL, "llama: batch %d x %d does not fit the activations' %d x %d", B, T, a->capB, a->capT);
    if (for_backward && !targets) return lorac_fail(err, LORAC_EINVAL, "llama: a backward needs targets");
    a->B = B;
    a->T = T;
    a->have_grad = 0;
    if (a->lacts && (a->owner != m || a->lora_gen != m->lora_gen)) free_lacts(a); /* LoRA layout changed */
    a->owner = m;
    a->lora_gen = m->lora_gen;
    if (!a->lacts && !(a->lacts = calloc((size_t)L * LLAMA_N_SITES, sizeof *a->lacts)))
        return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory");
    for (int n = 0; n < N; n++) {
        if (ids[n] < 0 || ids[n] >= V)
            return lorac_fail(err, LORAC_EINVAL, "llama: token id %d at position %d is outside the vocabulary (%d)", ids[n], n, V);
        if (targets && (targets[n] >= V || (targets[n] < 0 && targets[n] != OP_IGNORE_INDEX)))
            return lorac_fail(err, LORAC_EINVAL, "llama: target %d at position %d is outside the vocabulary (%d)", targets[n], n, V);
    }
    if ((rc = qmat_check(&m->w.embed, "model.embed_tokens.weight", err)) ||
        (rc = qmat_check(&m->w.lm_head, "lm_head.weight", err)))
        return rc;
    embed_lookup(a->res[0], ids, &m->w.embed, N);
    for (int l = 0; l < L; l++) {
        const llama_layer_weights *W = &m->w.layers[l];
        /* res2 = res + o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))), n1 = rmsnorm(res) */
        op_rmsnorm_forward(a->ln1[l], a->rstd1[l], a->res[l], W->attn_norm, N, C, eps);
        if ((rc = site_forward(m, a, l, LLAMA_SITE_Q, a->q[l], a->ln1[l], N, rng, err)) ||
            (rc = site_forward(m, a, l, LLAMA_SITE_K, a->k[l], a->ln1[l], N, rng, err)) ||
            (rc = site_forward(m, a, l, LLAMA_SITE_V, a->v[l], a->ln1[l], N, rng, err)))
            return rc;
        op_rope_freqs_forward(a->q[l], a->q[l], NULL, 0, B, T, NH, HS, m->inv_freq);
        op_rope_freqs_forward(a->k[l], a->k[l], NULL, 0, B, T, NKV, HS, m->inv_freq);
        op_attention_forward(a->att[l], a->lse[l], a->q[l], a->k[l], a->v[l], NULL, B, T, NH, NKV, HS, 1);
        if ((rc = site_forward(m, a, l, LLAMA_SITE_O, a->dln, a->att[l], N, rng, err))) return rc; /* dln: scratch */
        op_add(a->res2[l], a->res[l], a->dln, (size_t)N * C);
        /* res[l+1] = res2 + down_proj(silu(gate_proj(n2)) · up_proj(n2)), n2 = rmsnorm(res2) */
        op_rmsnorm_forward(a->ln2[l], a->rstd2[l], a->res2[l], W->mlp_norm, N, C, eps);
        if ((rc = site_forward(m, a, l, LLAMA_SITE_GATE, a->gate[l], a->ln2[l], N, rng, err)) ||
            (rc = site_forward(m, a, l, LLAMA_SITE_UP, a->up[l], a->ln2[l], N, rng, err)))
            return rc;
        op_swiglu_forward(a->h[l], a->gate[l], a->up[l], N, I);
        if ((rc = site_forward(m, a, l, LLAMA_SITE_DOWN, a->dln, a->h[l], N, rng, err))) return rc;
        op_add(a->res[l + 1], a->res2[l], a->dln, (size_t)N * C);
    }
    op_rmsnorm_forward(a->lnf, a->rstdf, a->res[L], m->w.norm, N, C, eps);
    if ((rc = qmat_matmul_forward(a->logits, a->lnf, &m->w.lm_head, NULL, N, err))) return rc;
    if (!targets) return LORAC_OK;
    for (int n = 0; n < N; n++) a->targets[n] = targets[n];
    int cnt = op_crossentropy_count(a->targets, N);
    float mean;
    if (for_backward) {
        mean = op_crossentropy_fused(a->logits, a->losses, a->targets, N, V, label_smoothing, cnt ? 1.0f / (float)cnt : 0.0f);
        a->have_grad = 1;
    } else {
        mean = op_crossentropy_forward(a->losses, a->dres, a->logits, a->targets, N, V, label_smoothing); /* dres: lse scratch */
    }
    if (loss) *loss = mean;
    if (count) *count = cnt;
    return LORAC_OK;
}

/* ---------------------------------------------------------------- backward */

int llama_backward(llama_model *m, llama_acts *a, lorac_err *err) {
    if (!a->have_grad) return lorac_fail(err, LORAC_EINVAL, "llama: backward without a forward for_backward");
    const llama_config *c = &m->cfg;
    int C = c->n_embd, I = c->n_inner, NH = c->n_head, NKV = c->n_kv_head, HS = c->head_dim;
    int L = c->n_layer, B = a->B, T = a->T, N = B * T, rc;
    size_t NC = (size_t)N * C, NI = (size_t)N * I, NQ = (size_t)N * NH * HS, NK = (size_t)N * NKV * HS;
    /* logits = lnf · lm_headᵀ: dlnf = dlogits · lm_head (the head is frozen) */
    memset(a->dln, 0, NC * sizeof(float));
    if ((rc = qmat_matmul_backward_input(a->dln, a->logits, &m->w.lm_head, N, err))) return rc;
    memset(a->dres, 0, NC * sizeof(float));
    op_rmsnorm_backward(a->dres, NULL, a->dln, a->res[L], m->w.norm, a->rstdf, N, C);
    for (int l = L - 1; l >= 0; l--) {
        const llama_layer_weights *W = &m->w.layers[l];
        /* res[l+1] = res2 + down_proj(silu(gate_proj(n2)) · up_proj(n2)) */
        memset(a->dh, 0, NI * sizeof(float));
        if ((rc = site_backward(m, a, l, LLAMA_SITE_DOWN, a->dh, a->dres, a->h[l], N, err))) return rc;
        memset(a->dgate, 0, NI * sizeof(float));
        memset(a->dup, 0, NI * sizeof(float));
        op_swiglu_backward(a->dgate, a->dup, a->dh, a->gate[l], a->up[l], N, I);
        memset(a->dln, 0, NC * sizeof(float));
        if ((rc = site_backward(m, a, l, LLAMA_SITE_GATE, a->dln, a->dgate, a->ln2[l], N, err)) ||
            (rc = site_backward(m, a, l, LLAMA_SITE_UP, a->dln, a->dup, a->ln2[l], N, err)))
            return rc;
        memcpy(a->dres2, a->dres, NC * sizeof(float));
        op_rmsnorm_backward(a->dres2, NULL, a->dln, a->res2[l], W->mlp_norm, a->rstd2[l], N, C);
        /* res2 = res + o_proj(attention(rope(q), rope(k), v)) */
        memset(a->datt, 0, NQ * sizeof(float));
        if ((rc = site_backward(m, a, l, LLAMA_SITE_O, a->datt, a->dres2, a->att[l], N, err))) return rc;
        memset(a->dq, 0, NQ * sizeof(float));
        memset(a->dk, 0, NK * sizeof(float));
        memset(a->dv, 0, NK * sizeof(float));
        op_attention_backward(a->dq, a->dk, a->dv, a->datt, a->att[l], a->lse[l], a->q[l], a->k[l], a->v[l], NULL, B, T,
                              NH, NKV, HS, 1);
        memset(a->dqr, 0, NQ * sizeof(float));
        memset(a->dkr, 0, NK * sizeof(float));
        op_rope_freqs_backward(a->dqr, a->dq, NULL, 0, B, T, NH, HS, m->inv_freq);
        op_rope_freqs_backward(a->dkr, a->dk, NULL, 0, B, T, NKV, HS, m->inv_freq);
        memset(a->dln, 0, NC * sizeof(float));
        if ((rc = site_backward(m, a, l, LLAMA_SITE_Q, a->dln, a->dqr, a->ln1[l], N, err)) ||
            (rc = site_backward(m, a, l, LLAMA_SITE_K, a->dln, a->dkr, a->ln1[l], N, err)) ||
            (rc = site_backward(m, a, l, LLAMA_SITE_V, a->dln, a->dv, a->ln1[l], N, err)))
            return rc;
        memcpy(a->dres, a->dres2, NC * sizeof(float));
        op_rmsnorm_backward(a->dres, NULL, a->dln, a->res[l], W->attn_norm, a->rstd1[l], N, C);
    }
    a->have_grad = 0;
    return LORAC_OK;
}
