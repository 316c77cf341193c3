/* GPT-2 forward and backward over a batch (B,T), with LoRA on any of the block's linear maps.
 * Shapes: N = B*T rows, C = n_embd, I = n_inner, V = vocab, NH heads of HS = C/NH. */
#include <stdlib.h>
#include <string.h>

#include "lorac/gpt2.h"
#include "lorac/ops.h"
#include "models/gpt2_internal.h"


/* Rows of the LM head + cross-entropy done at once in training: only a (LM_ROWS, V) slice of the
 * logits and of their gradient ever exists (39 MB for GPT-2's vocabulary, not (N,V));
 * more rows stream the head's weights fewer times but cost memory. The slice shares memory with
 * the backward's scratch, so when that scratch is larger (long batches) the slice takes all of it. */
#define LM_ROWS 192

/* Memory plan. Kept per layer for the backward: the residual entering the layer, the packed
 * c_attn output qkv (attention reads q, k, v in place), the attention output, the residual after
 * attention, the MLP pre-activation and the two LayerNorms' statistics. Recomputed in the
 * backward instead of stored: the LayerNorm outputs (from the residual and mean/rstd) and
 * GELU(fch) — cheap elementwise work that saves 6 (N,C) arrays per layer. Under bf16 matmuls
 * fch itself is kept as bf16 (fch_bf16): mlp_proj's GEMM rounds GELU(fch) to bf16 anyway. */
struct gpt2_acts {
    int capB, capT;
    int n_layer;
    const gpt2_model *owner; /* the model (and LoRA layout, lora_gen) the LoRA records were made for */
    int lora_gen;
    int B, T;            /* of the last forward */
    int have_grad;       /* the last forward left dlnf for gpt2_backward */
    float dloss;         /* 1/count: the gradient of the mean loss per scored token */
    float *arena;
    /* kept for the backward, per layer l (arrays of n_layer pointers into arena) */
    float **res;         /* (N,C) the residual stream entering layer l; res[L] leaves the last one */
    float **ln1_mean, **ln1_rstd;         /* (N), (N) */
    float **qkv;                          /* (N,3C) c_attn's output [q | k | v] */
    float **att, **lse;                   /* (N,C), (B,NH,T) */
    float **res2;                         /* (N,C) res + attention */
    float **ln2_mean, **ln2_rstd;
    float **fch;                          /* (N,I) pre-GELU: floats, or bf16 values (fch16) */
    int fch_bf16;                         /* allocated under bf16 precision: fch holds uint16_t */
    float *lnf_mean, *lnf_rstd;
    float *dlnf;                          /* (N,C) the loss gradient at ln_f's output (training forward) */
    float *logits;                        /* (capN,V), allocated by the first forward that is not for a backward */
    float *lm_chunk;                      /* (lm_rows,V) logits, then dlogits, of a slice of rows */
    uint32_t *head_bwd;                   /* bf16 training: the head packed for dlnf = dlogits·head */
    uint32_t *head_fwd;                   /* ... and for logits = lnf·headᵀ (each NULL when not made) */
    int lm_rows;                          /* >= LM_ROWS (or N): as many as the shared scratch holds */
    float *losses;                        /* (N) */
    int *targets;                         /* (N) */
    /* scratch */
    float *ln;                            /* (N,C) a LayerNorm output (forward, recomputed in backward) */
    float *fchg;                          /* (N,I) GELU output (forward, recomputed in backward) */
    float *dres, *dln, *datt;             /* (N,C) */
    float *dqkv;                          /* (N,3C) */
    float *dfch, *dfchg;                  /* (N,I) */
    lora_act *lacts;                      /* n_layer * N_SITES */
    lora_act wte_act;                     /* the LoRA Embedding's record, when wte has one */
    int32_t *ids;                         /* (N) the last forward's tokens (the wte LoRA backward) */
};

const float *gpt2_acts_logits(const gpt2_acts *a) { return a->logits; }

void gpt2_acts_free(gpt2_acts *a) {
    if (!a) return;
    free(a->arena);
    free(a->logits);
    free(a->head_bwd);
    free(a->head_fwd);
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
    size_t NHT = (size_t)a->capB * c->n_head * a->capT, off = 0, R = N < LM_ROWS ? N : LM_ROWS;
    int L = c->n_layer;
    for (int l = 0; l <= L; l++) {
        float *r = carve(base, &off, N * C);
        if (base) a->res[l] = r;
        if (l == L) break;
#define PART(field, n) do { float *p_ = carve(base, &off, (n)); if (base) a->field[l] = p_; } while (0)
        PART(ln1_mean, N); PART(ln1_rstd, N);
        PART(qkv, N * 3 * C); PART(att, N * C); PART(lse, NHT); PART(res2, N * C);
        PART(ln2_mean, N); PART(ln2_rstd, N);
        PART(fch, a->fch_bf16 ? (N * I + 1) / 2 : N * I);
#undef PART
    }
    float *p;
#define ONE(field, n) do { p = carve(base, &off, (n)); if (base) a->field = p; } while (0)
    ONE(lnf_mean, N); ONE(lnf_rstd, N); ONE(dlnf, N * C);
    ONE(losses, N); ONE(ln, N * C);
    /* Scratch whose lives do not overlap shares memory: the training head's logits slice is live
     * only after the last layer's forward; GELU's output (fchg) only inside a layer (forward and
     * backward), the gradient scratch only in the backward. In the backward dfch reuses fchg (dead
     * once mlp_proj's backward has run) and dqkv reuses dfchg (dead once GELU's backward has). */
    size_t shared = off;
    ONE(fchg, N * I); ONE(dres, N * C); ONE(dln, N * C); ONE(datt, N * C); ONE(dfchg, N * I);
    if (base) a->dfch = a->fchg;
    if (I >= 3 * C) { if (base) a->dqkv = a->dfchg; } /* GPT-2's n_inner is 4·n_embd */
    else ONE(dqkv, N * 3 * C);
    size_t end = off;
    off = shared;
    size_t fit = (end - shared) / V; /* rows of logits the backward's scratch has room for */
    if (fit > R) R = fit < N ? fit : N;
    a->lm_rows = (int)R;
    ONE(lm_chunk, R * V);
#undef ONE
    return off > end ? off : end;
}

/* One table of per-layer pointer arrays: 9 arrays of n_layer (+1 for res) pointers. */
static int acts_tables(gpt2_acts *a, int L) {
    float ***tabs[] = {&a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->att, &a->lse,
                       &a->res2, &a->ln2_mean, &a->ln2_rstd, &a->fch};
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
    /* bf16 matmuls round c_proj's input to bf16 anyway; keeping the pre-GELU values as bf16 halves
     * the largest activation (N x 4C per layer) */
    a->fch_bf16 = op_matmul_precision() == OP_PREC_BF16;
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

static uint16_t *fch16(const gpt2_acts *a, int l) { return (uint16_t *)(void *)a->fch[l]; }

/* out = GELU(layer l's pre-activation), from its float or bf16 copy */
static void gelu(const gpt2_config *c, const gpt2_acts *a, int l, float *out, size_t n) {
    int erf = c->activation == GPT2_ACT_GELU;
    if (a->fch_bf16) (erf ? op_gelu_erf_forward_bf16 : op_gelu_tanh_forward_bf16)(out, fch16(a, l), n);
    else (erf ? op_gelu_erf_forward : op_gelu_tanh_forward)(out, a->fch[l], n);
}

/* dinp += GELU'(layer l's pre-activation) · dout */
static void gelu_backward(const gpt2_config *c, const gpt2_acts *a, int l, float *dinp, const float *dout, size_t n) {
    int erf = c->activation == GPT2_ACT_GELU;
    if (a->fch_bf16) (erf ? op_gelu_erf_backward_bf16 : op_gelu_tanh_backward_bf16)(dinp, dout, fch16(a, l), n);
    else (erf ? op_gelu_erf_backward : op_gelu_tanh_backward)(dinp, dout, a->fch[l], n);
}

/* The LayerNorm output from its input and saved statistics (the forward's own arithmetic, so
 * the same bits): out = (x - mean)·rstd·gamma + beta. */
static void ln_recompute(float *out, const float *x, const float *mean, const float *rstd, const float *g,
                         const float *b, int N, int C) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > 32768)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        float *o = out + (size_t)n * C;
#pragma omp simd
        for (int i = 0; i < C; i++) o[i] = (xr[i] - mean[n]) * rstd[n] * g[i] + b[i];
    }
}

/* bf16 training packs the head once per step in each orientation (bf16, V·C·2 bytes each) instead
 * of once per slice and orientation: converting the 50k x 768 head is memory-bound and cost as much
 * as the slice's multiply. 1 when both packed copies are ready. */
static int head_pack(gpt2_acts *a, const float *head, int N, int C, int V) {
    if (!op_matmul_bf16_applies(N, V, C)) return 0; /* as op_matmul_forward decides (and its backward) */
    size_t wb = op_bf16_pack_words(V, C), wf = op_bf16_pack_words(C, V);
    if (!a->head_bwd) a->head_bwd = aligned_alloc(64, (wb * sizeof(uint32_t) + 63) / 64 * 64);
    if (!a->head_fwd) a->head_fwd = aligned_alloc(64, (wf * sizeof(uint32_t) + 63) / 64 * 64);
    if (!a->head_bwd || !a->head_fwd) return 0; /* no memory for them: pack per slice as before */
    /* dlnf = dlogits·head: op(B) = head (V,C); logits = lnf·headᵀ: op(B) = headᵀ, head stored (V,C) */
    return op_bf16_pack(a->head_bwd, 0, V, C, head, C) == 0 && op_bf16_pack(a->head_fwd, 1, C, V, head, C) == 0;
}

/* Training head: for each slice of lm_rows rows, logits = lnf·headᵀ, the fused cross-entropy
 * turns them into dlogits in place, and dlnf = dlogits·head; returns the mean loss. */
static float head_train(gpt2_acts *a, const float *lnf, const float *head, int N, int C, int V, float ls) {
    int packed = head_pack(a, head, N, C, V);
    for (int n0 = 0; n0 < N; n0 += a->lm_rows) {
        int R = N - n0 < a->lm_rows ? N - n0 : a->lm_rows;
        float *dx = a->dlnf + (size_t)n0 * C;
        if (!packed || op_gemm_bf16_packed(R, V, C, 1.0f, lnf + (size_t)n0 * C, C, a->head_fwd, 0.0f, NULL, a->lm_chunk, V))
            op_matmul_forward(a->lm_chunk, lnf + (size_t)n0 * C, head, NULL, R, C, V, OP_W_OUT_IN);
        op_crossentropy_fused(a->lm_chunk, a->losses + n0, a->targets + n0, R, V, ls, a->dloss);
        if (!packed || op_gemm_bf16_packed(R, C, V, 1.0f, a->lm_chunk, V, a->head_bwd, 0.0f, NULL, dx, C)) {
            memset(dx, 0, (size_t)R * C * sizeof(float));
            op_matmul_backward(dx, NULL, NULL, a->lm_chunk, NULL, head, 1.0f, R, C, V, OP_W_OUT_IN);
        }
    }
    double sum = 0.0; /* the mean over scored rows, summed in row order as op_crossentropy_forward does */
    int cnt = 0;
    for (int n = 0; n < N; n++)
        if (a->targets[n] >= 0) sum += a->losses[n], cnt++;
    return cnt ? (float)(sum / cnt) : 0.0f;
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
    for (int b = 0; b < B; b++) /* + wpe rows 0..T-1, one contiguous block per sequence */
        op_add(a->res[0] + (size_t)b * T * C, a->res[0] + (size_t)b * T * C, m->w.wpe, (size_t)T * C);
    for (int l = 0; l < L; l++) {
        const gpt2_layer_weights *W = &m->w.layers[l];
        op_layernorm_forward(a->ln, a->ln1_mean[l], a->ln1_rstd[l], a->res[l], W->ln1_w, W->ln1_b, N, C, eps);
        if ((rc = gpt2_site_forward(m, &a->lacts[l * N_SITES + SITE_ATTN], a->capB * a->capT, l, SITE_ATTN, a->qkv[l], a->ln, N, rng, err))) return rc;
        op_attention_qkv_forward(a->att[l], a->lse[l], a->qkv[l], NULL, B, T, NH, NH, HS, 1);
        if ((rc = gpt2_site_forward(m, &a->lacts[l * N_SITES + SITE_PROJ], a->capB * a->capT, l, SITE_PROJ, a->dln, a->att[l], N, rng, err))) return rc; /* dln: scratch */
        op_add(a->res2[l], a->res[l], a->dln, (size_t)N * C);
        op_layernorm_forward(a->ln, a->ln2_mean[l], a->ln2_rstd[l], a->res2[l], W->ln2_w, W->ln2_b, N, C, eps);
        /* bf16 storage: mlp_fc writes floats to fchg, kept rounded; GELU then reads what the backward will */
        float *fc_out = a->fch_bf16 ? a->fchg : a->fch[l];
        if ((rc = gpt2_site_forward(m, &a->lacts[l * N_SITES + SITE_FC], a->capB * a->capT, l, SITE_FC, fc_out, a->ln, N, rng, err))) return rc;
        if (a->fch_bf16) op_f32_to_bf16(fch16(a, l), a->fchg, (size_t)N * I);
        gelu(c, a, l, a->fchg, (size_t)N * I);
        if ((rc = gpt2_site_forward(m, &a->lacts[l * N_SITES + SITE_FCPROJ], a->capB * a->capT, l, SITE_FCPROJ, a->dln, a->fchg, N, rng, err))) return rc;
        op_add(a->res[l + 1], a->res2[l], a->dln, (size_t)N * C);
    }
    op_layernorm_forward(a->ln, a->lnf_mean, a->lnf_rstd, a->res[L], m->w.lnf_w, m->w.lnf_b, N, C, eps);
    /* logits = lnf · headᵀ: the head is tied to the token embedding's W0 unless the config unties it */
    const float *head = m->w.lm_head ? m->w.lm_head : m->w.wte;
    int cnt = 0;
    float mean = 0.0f;
    if (targets) {
        for (int n = 0; n < N; n++) a->targets[n] = targets[n];
        cnt = op_crossentropy_count(a->targets, N);
    }
    if (for_backward) {
        a->dloss = cnt ? 1.0f / (float)cnt : 0.0f;
        mean = head_train(a, a->ln, head, N, C, V, label_smoothing);
        a->have_grad = 1;
    } else {
        /* callers that evaluate want the logits (gpt2_acts_logits): the full (N,V) buffer, made once */
        if (!a->logits && !(a->logits = malloc((size_t)a->capB * a->capT * V * sizeof(float))))
            return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory for the logits of a %d x %d batch", a->capB, a->capT);
        op_matmul_forward(a->logits, a->ln, head, NULL, N, C, V, OP_W_OUT_IN);
        if (!targets) return LORAC_OK;
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
    int C = c->n_embd, I = c->n_inner, NH = c->n_head, HS = C / NH, L = c->n_layer;
    int B = a->B, T = a->T, N = B * T, rc;
    size_t NC = (size_t)N * C, NI = (size_t)N * I;
    /* the forward left dlnf (the LM head's backward ran slice by slice with the loss) */
    op_zero(a->dres, NC);
    op_layernorm_backward(a->dres, NULL, NULL, a->dlnf, a->res[L], m->w.lnf_w, a->lnf_mean, a->lnf_rstd, N, C);
    for (int l = L - 1; l >= 0; l--) {
        const gpt2_layer_weights *W = &m->w.layers[l];
        /* res[l+1] = res2 + mlp_proj(gelu(mlp_fc(ln2(res2)))) */
        /* recomputed for a LoRA on mlp_proj, which reads its input; the frozen map does not */
        if (gpt2_site_reads_input(m, l, SITE_FCPROJ)) gelu(c, a, l, a->fchg, NI);
        op_zero(a->dfchg, NI);
        if ((rc = gpt2_site_backward(m, &a->lacts[l * N_SITES + SITE_FCPROJ], l, SITE_FCPROJ, a->dfchg, a->dres, a->fchg, N, err))) return rc;
        op_zero(a->dfch, NI); /* dfch is fchg's memory: mlp_proj's backward is done with it */
        gelu_backward(c, a, l, a->dfch, a->dfchg, NI);
        ln_recompute(a->ln, a->res2[l], a->ln2_mean[l], a->ln2_rstd[l], W->ln2_w, W->ln2_b, N, C);
        op_zero(a->dln, NC);
        if ((rc = gpt2_site_backward(m, &a->lacts[l * N_SITES + SITE_FC], l, SITE_FC, a->dln, a->dfch, a->ln, N, err))) return rc;
        /* dres becomes the gradient at res2 (the residual passes it through; ln2 adds its part) */
        op_layernorm_backward(a->dres, NULL, NULL, a->dln, a->res2[l], W->ln2_w, a->ln2_mean[l], a->ln2_rstd[l], N, C);
        /* res2 = res + attn_proj(attention(c_attn(ln1(res)))) */
        op_zero(a->datt, NC);
        if ((rc = gpt2_site_backward(m, &a->lacts[l * N_SITES + SITE_PROJ], l, SITE_PROJ, a->datt, a->dres, a->att[l], N, err))) return rc;
        op_zero(a->dqkv, 3 * NC);
        op_attention_qkv_backward(a->dqkv, a->datt, a->att[l], a->lse[l], a->qkv[l], NULL, B, T, NH, NH, HS, 1);
        ln_recompute(a->ln, a->res[l], a->ln1_mean[l], a->ln1_rstd[l], W->ln1_w, W->ln1_b, N, C);
        /* below layer 0 only a LoRA on wte wants the gradient: skip the c_attn input GEMM there */
        int need_dx = l > 0 || m->wte_lora;
        if (need_dx) op_zero(a->dln, NC);
        if ((rc = gpt2_site_backward(m, &a->lacts[l * N_SITES + SITE_ATTN], l, SITE_ATTN, need_dx ? a->dln : NULL, a->dqkv, a->ln, N, err))) return rc;
        if (!need_dx) break;
        /* dres becomes the gradient at res[l] */
        op_layernorm_backward(a->dres, NULL, NULL, a->dln, a->res[l], W->ln1_w, a->ln1_mean[l], a->ln1_rstd[l], N, C);
    }
    /* dres now holds the gradient of the embedding output: only a LoRA on wte wants it */
    if (m->wte_lora && (rc = lora_embedding_backward(m->wte_lora, &a->wte_act, a->dres, a->ids, err))) return rc;
    a->have_grad = 0;
    return LORAC_OK;
}
