/* The four linear maps of a GPT-2 block (c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj): the frozen
 * Conv1D, or the LoRA layer attached to it. Shared by the training forward/backward and inference. */
#include "lorac/ops.h"
#include "models/gpt2_internal.h"

static void site_shape(const gpt2_config *c, int site, int *C, int *OC) {
    int E = c->n_embd, I = c->n_inner;
    static const int mulC[N_SITES] = {1, 1, 1, 0}, mulOC[N_SITES] = {3, 1, 0, 1};
    *C = site == SITE_FCPROJ ? I : E * mulC[site];
    *OC = site == SITE_FC ? I : E * mulOC[site];
}

static void site_base(const gpt2_layer_weights *W, int site, const float **w, const float **b) {
    switch (site) {
    case SITE_ATTN: *w = W->attn_w; *b = W->attn_b; break;
    case SITE_PROJ: *w = W->proj_w; *b = W->proj_b; break;
    case SITE_FC: *w = W->fc_w; *b = W->fc_b; break;
    default: *w = W->fcproj_w; *b = W->fcproj_b; break;
    }
}

static lora_linear *site_lora(const gpt2_model *m, int l, int site) {
    if (!m->has_lora) return NULL;
    const gpt2_block_lora *b = &m->blocks[l];
    lora_linear *ls[N_SITES] = {b->c_attn, b->attn_proj, b->mlp_fc, b->mlp_proj};
    return ls[site];
}

/* out (N,OC) = site(inp (N,C)): the base Conv1D, or its LoRA layer. */
int gpt2_site_forward(gpt2_model *m, lora_act *act, int cap_N, int l, int site, float *out, const float *inp, int N,
                      lorac_rng *rng, lorac_err *err) {
    lora_linear *L = site_lora(m, l, site);
    if (L) {
        if (!act->cap_N) {
            int rc = lora_linear_act_init(act, L, cap_N, err);
            if (rc) return rc;
        }
        return lora_linear_forward(L, act, out, inp, N, rng, err);
    }
    if (site == SITE_ATTN && m->has_lora && m->blocks[l].qkv) {
        lora_merged *M = m->blocks[l].qkv;
        if (!act->cap_N) {
            int rc = lora_merged_act_init(act, M, cap_N, err);
            if (rc) return rc;
        }
        return lora_merged_forward(M, act, out, inp, N, rng, err);
    }
    int C, OC;
    const float *w, *b;
    site_shape(&m->cfg, site, &C, &OC);
    site_base(&m->w.layers[l], site, &w, &b);
    op_matmul_forward(out, inp, w, b, N, C, OC, OP_W_IN_OUT);
    return LORAC_OK;
}

/* 1 when the site's backward reads its input (a LoRA layer's A gradient); the frozen map's does not. */
int gpt2_site_reads_input(const gpt2_model *m, int l, int site) {
    return site_lora(m, l, site) != NULL || (site == SITE_ATTN && m->has_lora && m->blocks[l].qkv);
}

/* dinp (N,C) += ∂/∂inp; the LoRA layer (if any) accumulates its own gradients. */
int gpt2_site_backward(gpt2_model *m, lora_act *act, int l, int site, float *dinp, const float *dout,
                       const float *inp, int N, lorac_err *err) {
    lora_linear *L = site_lora(m, l, site);
    if (L) return lora_linear_backward(L, act, dinp, dout, inp, err);
    if (site == SITE_ATTN && m->has_lora && m->blocks[l].qkv)
        return lora_merged_backward(m->blocks[l].qkv, act, dinp, dout, inp, err);
    int C, OC;
    const float *w, *b;
    site_shape(&m->cfg, site, &C, &OC);
    site_base(&m->w.layers[l], site, &w, &b);
    op_matmul_backward(dinp, NULL, NULL, dout, inp, w, 1.0f, N, C, OC, OP_W_IN_OUT);
    return LORAC_OK;
}

