/* A Llama-family model from a GGUF file (llama.cpp's layout): config from the metadata, tensors
 * mapped in their stored types. llama.cpp's converter permutes the rows of attn_q/attn_k (and their
 * biases) for the "llama" architecture so that its rope can rotate adjacent pairs; lorac's rope
 * rotates HF's half-split pairs, so those rows are copied back into HF order here. Everything
 * else stays in the mapping. Tensor names map to HF names as below (blk.N. prefix per layer). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/gguf.h"
#include "lorac/llama.h"

typedef struct gguf_priv {
    gguf_file gf;
    void **owned; /* copies (permuted q/k rows, f32 conversions), freed with the weights */
    size_t n_owned;
} gguf_priv;

static void gguf_priv_free(void *priv) {
    gguf_priv *p = priv;
    for (size_t i = 0; i < p->n_owned; i++) free(p->owned[i]);
    free(p->owned);
    gguf_close(&p->gf);
    free(p);
}

static void *priv_alloc(gguf_priv *p, size_t bytes) {
    void **o = realloc(p->owned, (p->n_owned + 1) * sizeof *o);
    if (!o) return NULL;
    p->owned = o;
    void *b = malloc(bytes ? bytes : 1);
    if (b) p->owned[p->n_owned++] = b;
    return b;
}

int llama_gguf_row_to_hf(int r, int head_dim) {
    int h = r / head_dim, k = r % head_dim;
    return h * head_dim + (k % 2) * (head_dim / 2) + k / 2;
}

/* GGUF tensor names of the seven sites, in llama_site order. */
static const char *const SITE_GGUF[LLAMA_N_SITES] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                     "ffn_gate", "ffn_up", "ffn_down"};

/* ---------------------------------------------------------------- config from metadata */

static int get_int(const gguf_file *f, const char *arch, const char *key, int required, int def, int *out,
                   lorac_err *err) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    uint32_t v = (uint32_t)def;
    int rc = gguf_get_u32(f, full, required, &v, err);
    if (!rc && v > (1u << 30)) rc = lorac_fail(err, LORAC_EFORMAT, "%s: %s = %u is out of range", f->path, full, v);
    *out = (int)v;
    return rc;
}

static int get_num(const gguf_file *f, const char *arch, const char *key, double def, double *out, lorac_err *err) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    float v = (float)def;
    int rc = gguf_get_f32(f, full, GGUF_OPTIONAL, &v, err);
    *out = gguf_find_key(f, full) ? (double)v : def;
    return rc;
}

static int config_from_gguf(const gguf_file *f, llama_config *c, lorac_err *err) {
    memset(c, 0, sizeof *c);
    const char *arch = NULL;
    size_t alen = 0;
    int rc = gguf_get_str(f, "general.architecture", GGUF_REQUIRED, &arch, &alen, err);
    if (rc) return rc;
    if (!((alen == 5 && !memcmp(arch, "llama", 5)) || (alen == 5 && !memcmp(arch, "qwen2", 5))))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: general.architecture '%.*s' is not supported (llama, qwen2)",
                          f->path, (int)(alen > 32 ? 32 : alen), arch);
    memcpy(c->model_type, arch, alen);
    const char *a = c->model_type;
    if ((rc = get_int(f, a, "block_count", GGUF_REQUIRED, 0, &c->n_layer, err)) ||
        (rc = get_int(f, a, "embedding_length", GGUF_REQUIRED, 0, &c->n_embd, err)) ||
        (rc = get_int(f, a, "feed_forward_length", GGUF_REQUIRED, 0, &c->n_inner, err)) ||
        (rc = get_int(f, a, "attention.head_count", GGUF_REQUIRED, 0, &c->n_head, err)) ||
        (rc = get_int(f, a, "attention.head_count_kv", GGUF_OPTIONAL, c->n_head, &c->n_kv_head, err)) ||
        (rc = get_int(f, a, "context_length", GGUF_OPTIONAL, 2048, &c->n_positions, err)))
        return rc;
    char key[128];
    snprintf(key, sizeof key, "%s.attention.key_length", a);
    if (c->n_head <= 0 || (!gguf_find_key(f, key) && c->n_embd % c->n_head))
        return lorac_fail(err, LORAC_EFORMAT, "%s: %s.attention.head_count %d does not divide %s.embedding_length %d",
                          f->path, a, c->n_head, a, c->n_embd);
    if (c->n_kv_head <= 0 || c->n_head % c->n_kv_head)
        return lorac_fail(err, LORAC_EFORMAT, "%s: %s.attention.head_count_kv %d does not divide %s.attention.head_count %d",
                          f->path, a, c->n_kv_head, a, c->n_head);
    if ((rc = get_int(f, a, "attention.key_length", GGUF_OPTIONAL, c->n_embd / c->n_head, &c->head_dim, err)))
        return rc;
    int vlen = c->head_dim;
    if ((rc = get_int(f, a, "attention.value_length", GGUF_OPTIONAL, c->head_dim, &vlen, err))) return rc;
    if (vlen != c->head_dim)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: %s.attention.value_length %d differs from key_length %d", f->path,
                          a, vlen, c->head_dim);
    if ((rc = get_num(f, a, "attention.layer_norm_rms_epsilon", 1e-5, &c->rms_norm_eps, err)) ||
        (rc = get_num(f, a, "rope.freq_base", 10000.0, &c->rope_theta, err)))
        return rc;
    /* rope scaling: rope.scaling.type (linear; yarn is not supported) or the older rope.scale_linear */
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    const char *st = NULL;
    size_t stlen = 0;
    if ((rc = gguf_get_str(f, key, GGUF_OPTIONAL, &st, &stlen, err))) return rc;
    double factor = 1.0;
    if ((rc = get_num(f, a, "rope.scaling.factor", 0.0, &factor, err))) return rc;
    if (!st || factor == 0.0) { /* older files */
        double lin = 0.0;
        if ((rc = get_num(f, a, "rope.scale_linear", 0.0, &lin, err))) return rc;
        if (lin > 0.0 && lin != 1.0) {
            st = "linear";
            stlen = 6;
            factor = lin;
        }
    }
    if (st && !(stlen == 4 && !memcmp(st, "none", 4)) && factor != 0.0 && factor != 1.0) {
        if (!(stlen == 6 && !memcmp(st, "linear", 6)))
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: %s = '%.*s' is not supported (none, linear)", f->path, key,
                              (int)(stlen > 32 ? 32 : stlen), st);
        if (!(factor > 0.0)) return lorac_fail(err, LORAC_EFORMAT, "%s: rope scaling factor must be > 0", f->path);
        c->rope_scaling = LLAMA_ROPE_LINEAR;
        c->rope_factor = factor;
    }
    int32_t bos = -1, eos = -1;
    if ((rc = gguf_get_i32(f, "tokenizer.ggml.bos_token_id", GGUF_OPTIONAL, &bos, err)) ||
        (rc = gguf_get_i32(f, "tokenizer.ggml.eos_token_id", GGUF_OPTIONAL, &eos, err)))
        return rc;
    c->bos_token_id = bos;
    c->eos_token_id = eos;
    /* the vocabulary is token_embd's row count; the tokenizer must list exactly that many tokens */
    const gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight");
    if (!te) return lorac_fail(err, LORAC_ENOTFOUND, "%s: missing tensor 'token_embd.weight'", f->path);
    if (te->n_dims != 2 || te->ne[0] != c->n_embd || te->ne[1] <= 0 || te->ne[1] > (1 << 24))
        return lorac_fail(err, LORAC_ESHAPE, "%s: token_embd.weight has ne [%lld, %lld] but %s.embedding_length is %d",
                          f->path, (long long)te->ne[0], (long long)te->ne[1], a, c->n_embd);
    c->vocab_size = (int)te->ne[1];
    const gguf_kv *toks = NULL;
    if ((rc = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_OPTIONAL, GGUF_STR, &toks, err))) return rc;
    if (toks && gguf_arr_len(toks) != (uint64_t)c->vocab_size)
        return lorac_fail(err, LORAC_EFORMAT, "%s: tokenizer.ggml.tokens lists %llu tokens but token_embd.weight has %d rows",
                          f->path, (unsigned long long)gguf_arr_len(toks), c->vocab_size);
    c->tie_word_embeddings = gguf_find_tensor(f, "output.weight") == NULL;
    c->qkv_bias = gguf_find_tensor(f, "blk.0.attn_q.bias") != NULL;
    c->o_bias = gguf_find_tensor(f, "blk.0.attn_output.bias") != NULL;
    return llama_config_validate(c, f->path, err);
}

/* ---------------------------------------------------------------- tensors */

/* Finds NAME and checks its shape: ne = [d0] or [d0, d1]. */
static int find_checked(const gguf_file *f, const char *name, int64_t d0, int64_t d1, const gguf_tensor **out,
                        lorac_err *err) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    *out = t;
    if (!t) return lorac_fail(err, LORAC_ENOTFOUND, "%s: missing tensor '%s'", f->path, name);
    int nd = d1 ? 2 : 1;
    if (t->n_dims != nd || t->ne[0] != d0 || (nd == 2 && t->ne[1] != d1)) {
        if (nd == 2)
            return lorac_fail(err, LORAC_ESHAPE, "%s: tensor '%s' has ne [%lld, %lld] but the metadata implies [%lld, %lld]",
                              f->path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)d0, (long long)d1);
        return lorac_fail(err, LORAC_ESHAPE, "%s: tensor '%s' has %d dims, ne[0] %lld, but the metadata implies [%lld]",
                          f->path, name, t->n_dims, (long long)t->ne[0], (long long)d0);
    }
    return LORAC_OK;
}

/* A vector (norm, bias) as f32: mapped when F32 and aligned, else converted; rows permuted to HF
 * order when head_dim > 0. */
static int load_vec(gguf_priv *p, const char *name, int64_t n, int permute_hs, const float **out, lorac_err *err) {
    const gguf_tensor *t;
    int rc = find_checked(&p->gf, name, n, 0, &t, err);
    if (rc) return rc;
    const float *view = gguf_tensor_f32_view(t);
    if (view && !permute_hs) {
        *out = view;
        return LORAC_OK;
    }
    float *tmp = malloc((size_t)n * sizeof *tmp), *dst = priv_alloc(p, (size_t)n * sizeof *dst);
    if (!tmp || !dst) {
        free(tmp);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", p->gf.path);
    }
    rc = gguf_tensor_to_f32(&p->gf, t, tmp, err);
    for (int64_t r = 0; r < n && !rc; r++) dst[permute_hs ? llama_gguf_row_to_hf((int)r, permute_hs) : r] = tmp[r];
    free(tmp);
    *out = dst;
    return rc;
}

/* A matrix (ne = [cols, rows]) as a qmat over the mapping, or over a row-permuted copy. */
static int load_mat(gguf_priv *p, const char *name, int cols, int rows, int permute_hs, qmat *out, lorac_err *err) {
    const gguf_tensor *t;
    int rc = find_checked(&p->gf, name, cols, rows, &t, err);
    if (rc) return rc;
    qmat q = {(quant_type)t->type, rows, cols, t->data};
    char what[512];
    snprintf(what, sizeof what, "%s: tensor '%s'", p->gf.path, name);
    if ((rc = qmat_check(&q, what, err))) return rc;
    /* sgemm reads an F32 matrix in place: it must be float-aligned (general.alignment may be 1) */
    if (permute_hs || (q.type == QUANT_F32 && (uintptr_t)t->data % sizeof(float))) {
        size_t rb = qmat_row_bytes(&q);
        uint8_t *dst = priv_alloc(p, rb * (size_t)rows);
        if (!dst) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", p->gf.path);
        for (int r = 0; r < rows; r++)
            memcpy(dst + (size_t)(permute_hs ? llama_gguf_row_to_hf(r, permute_hs) : r) * rb, t->data + (size_t)r * rb, rb);
        q.data = dst;
    }
    *out = q;
    return LORAC_OK;
}

static int load_tensors(gguf_priv *p, const llama_config *c, llama_weights *w, lorac_err *err) {
    const gguf_file *f = &p->gf;
    int C = c->n_embd, V = c->vocab_size, HS = c->head_dim, rc;
    /* only the llama architecture's converter permutes q/k (qwen2 uses NEOX rope, like HF) */
    int perm = !strcmp(c->model_type, "llama") ? HS : 0;
    if ((rc = load_mat(p, "token_embd.weight", C, V, 0, &w->embed, err)) ||
        (rc = load_vec(p, "output_norm.weight", C, 0, &w->norm, err)))
        return rc;
    if (c->tie_word_embeddings) w->lm_head = w->embed;
    else if ((rc = load_mat(p, "output.weight", C, V, 0, &w->lm_head, err))) return rc;
    if (gguf_find_tensor(f, "rope_freqs.weight") && (rc = load_vec(p, "rope_freqs.weight", HS / 2, 0, &w->rope_freqs, err)))
        return rc;
    char nm[96];
    for (int l = 0; l < c->n_layer; l++) {
        llama_layer_weights *L = &w->layers[l];
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        if ((rc = load_vec(p, nm, C, 0, &L->attn_norm, err))) return rc;
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        if ((rc = load_vec(p, nm, C, 0, &L->mlp_norm, err))) return rc;
        for (int s = 0; s < LLAMA_N_SITES; s++) {
            int in, out, ps = (s == LLAMA_SITE_Q || s == LLAMA_SITE_K) ? perm : 0;
            llama_site_shape(c, s, &in, &out);
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, SITE_GGUF[s]);
            if ((rc = load_mat(p, nm, in, out, ps, &L->w[s], err))) return rc;
            int bias = s <= LLAMA_SITE_V ? c->qkv_bias : s == LLAMA_SITE_O ? c->o_bias : 0;
            snprintf(nm, sizeof nm, "blk.%d.%s.bias", l, SITE_GGUF[s]);
            if (bias && (rc = load_vec(p, nm, out, ps, &L->b[s], err))) return rc;
            if (!bias && gguf_find_tensor(f, nm))
                return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s' is present but blk.0 has no such bias", f->path, nm);
        }
    }
    return LORAC_OK;
}

int llama_weights_load_gguf(const char *path, llama_config *cfg, llama_weights *w, lorac_err *err) {
    memset(w, 0, sizeof *w);
    gguf_priv *p = calloc(1, sizeof *p);
    if (!p) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    int rc = gguf_open(path, &p->gf, err);
    if (rc) {
        free(p);
        return rc;
    }
    w->priv = p;
    w->priv_free = gguf_priv_free;
    w->gguf = &p->gf;
    rc = config_from_gguf(&p->gf, cfg, err);
    if (!rc && !(w->layers = calloc((size_t)cfg->n_layer, sizeof *w->layers)))
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    if (!rc) rc = load_tensors(p, cfg, w, err);
    if (rc) llama_weights_free(w);
    return rc;
}
