/* A model from a GGUF file (llama.cpp's layout): the config from the metadata, the tensors by the
 * family's GGUF names, mapped in their stored types. llama.cpp's converter permutes the rows of q
 * and k (and their biases) for the "llama" architecture so that its rope can rotate adjacent pairs;
 * lorac rotates Hugging Face's half-split pairs, so those rows are copied back into HF order here.
 * Everything else stays in the mapping. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "models/model_internal.h"

int model_gguf_row_to_hf(int r, int head_dim) {
    int h = r / head_dim, k = r % head_dim;
    return h * head_dim + (k % 2) * (head_dim / 2) + k / 2;
}

const gguf_file *model_gguf(const model *m) { return m->store.has_gguf ? &m->store.gf : NULL; }

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

/* rope.scaling.type (linear; yarn and others are refused) or the older rope.scale_linear */
static int rope_from_gguf(const gguf_file *f, const char *a, model_config *c, lorac_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    const char *st = NULL;
    size_t stlen = 0;
    double factor = 1.0, lin = 0.0;
    int rc = gguf_get_str(f, key, GGUF_OPTIONAL, &st, &stlen, err);
    if (!rc) rc = get_num(f, a, "rope.scaling.factor", 0.0, &factor, err);
    if (!rc && (!st || factor == 0.0) && !(rc = get_num(f, a, "rope.scale_linear", 0.0, &lin, err)) && lin > 0.0 && lin != 1.0)
        st = "linear", stlen = 6, factor = lin;
    if (rc || !st || (stlen == 4 && !memcmp(st, "none", 4)) || factor == 0.0 || factor == 1.0) return rc;
    if (!(stlen == 6 && !memcmp(st, "linear", 6)))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: %s = '%.*s' is not supported (none, linear)", f->path, key,
                          (int)(stlen > 32 ? 32 : stlen), st);
    if (!(factor > 0.0)) return lorac_fail(err, LORAC_EFORMAT, "%s: rope scaling factor must be > 0", f->path);
    c->rope.scaling = ROPE_SCALING_LINEAR;
    c->rope.factor = factor;
    return LORAC_OK;
}

static int sizes_from_gguf(const gguf_file *f, const char *a, model_config *c, lorac_err *err) {
    int rc;
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
    if ((rc = get_int(f, a, "attention.key_length", GGUF_OPTIONAL, c->n_embd / c->n_head, &c->head_dim, err))) return rc;
    int vlen = c->head_dim;
    if ((rc = get_int(f, a, "attention.value_length", GGUF_OPTIONAL, c->head_dim, &vlen, err))) return rc;
    if (vlen != c->head_dim)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: %s.attention.value_length %d differs from key_length %d", f->path,
                          a, vlen, c->head_dim);
    const char *eps = c->norm == MODEL_NORM_RMS ? "attention.layer_norm_rms_epsilon" : "attention.layer_norm_epsilon";
    if ((rc = get_num(f, a, eps, 1e-5, &c->norm_eps, err)) || (rc = get_num(f, a, "rope.freq_base", 10000.0, &c->rope.theta, err)))
        return rc;
    return rope_from_gguf(f, a, c, err);
}

/* Special tokens, the vocabulary (token_embd's rows, which the tokenizer must match) and what the
 * tensors present say (a separate output matrix, q/k/v and o biases). */
static int vocab_from_gguf(const gguf_file *f, model_config *c, lorac_err *err) {
    int32_t bos = -1, eos = -1;
    int rc;
    if ((rc = gguf_get_i32(f, "tokenizer.ggml.bos_token_id", GGUF_OPTIONAL, &bos, err)) ||
        (rc = gguf_get_i32(f, "tokenizer.ggml.eos_token_id", GGUF_OPTIONAL, &eos, err)))
        return rc;
    c->bos_token_id = bos;
    c->eos_token_id = eos;
    const gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight");
    if (!te) return lorac_fail(err, LORAC_ENOTFOUND, "%s: missing tensor 'token_embd.weight'", f->path);
    if (te->n_dims != 2 || te->ne[0] != c->n_embd || te->ne[1] <= 0 || te->ne[1] > (1 << 24))
        return lorac_fail(err, LORAC_ESHAPE, "%s: token_embd.weight has ne [%lld, %lld] but the embedding length is %d",
                          f->path, (long long)te->ne[0], (long long)te->ne[1], c->n_embd);
    c->vocab_size = (int)te->ne[1];
    const gguf_kv *toks = NULL;
    if ((rc = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_OPTIONAL, GGUF_STR, &toks, err))) return rc;
    if (toks && gguf_arr_len(toks) != (uint64_t)c->vocab_size)
        return lorac_fail(err, LORAC_EFORMAT, "%s: tokenizer.ggml.tokens lists %llu tokens but token_embd.weight has %d rows",
                          f->path, (unsigned long long)gguf_arr_len(toks), c->vocab_size);
    c->tie_word_embeddings = gguf_find_tensor(f, "output.weight") == NULL;
    c->qkv_bias = gguf_find_tensor(f, "blk.0.attn_q.bias") != NULL;
    c->o_bias = gguf_find_tensor(f, "blk.0.attn_output.bias") != NULL;
    return LORAC_OK;
}

static int config_from_gguf(model *m, const gguf_file *f, lorac_err *err) {
    const char *arch = NULL;
    size_t alen = 0;
    int rc = gguf_get_str(f, "general.architecture", GGUF_REQUIRED, &arch, &alen, err);
    if (rc) return rc;
    model_config *c = &m->cfg;
    memset(c, 0, sizeof *c);
    snprintf(c->model_type, sizeof c->model_type, "%.*s", (int)(alen < sizeof c->model_type ? alen : 0), arch);
    m->fam = arch_find(c->model_type);
    if (!m->fam || !m->fam->gguf_arch)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: general.architecture '%.*s' is not supported (llama, mistral, qwen2)", f->path,
                          (int)(alen > 32 ? 32 : alen), arch);
    m->fam->defaults(c);
    if ((rc = sizes_from_gguf(f, c->model_type, c, err)) || (rc = vocab_from_gguf(f, c, err))) return rc;
    return model_config_validate(c, f->path, err);
}

/* ---------------------------------------------------------------- tensors */

/* Finds the tensor and checks its shape (GGUF's ne is the HF shape reversed). */
static int find_checked(const gguf_file *f, const model_tensor *t, const gguf_tensor **out, lorac_err *err) {
    const gguf_tensor *g = gguf_find_tensor(f, t->gguf);
    *out = g;
    if (!g) return lorac_fail(err, LORAC_ENOTFOUND, "%s: missing tensor '%s'", f->path, t->gguf);
    int64_t d0 = t->ndim == 2 ? t->shape[1] : t->shape[0], d1 = t->ndim == 2 ? t->shape[0] : 0;
    if (g->n_dims != t->ndim || g->ne[0] != d0 || (t->ndim == 2 && g->ne[1] != d1)) {
        if (t->ndim == 2)
            return lorac_fail(err, LORAC_ESHAPE, "%s: tensor '%s' has ne [%lld, %lld] but the metadata implies [%lld, %lld]",
                              f->path, t->gguf, (long long)g->ne[0], (long long)g->ne[1], (long long)d0, (long long)d1);
        return lorac_fail(err, LORAC_ESHAPE, "%s: tensor '%s' has %d dims, ne[0] %lld, but the metadata implies [%lld]",
                          f->path, t->gguf, g->n_dims, (long long)g->ne[0], (long long)d0);
    }
    return LORAC_OK;
}

/* An f32 tensor: mapped when F32 and aligned, else converted; rows back in HF order when permuted. */
static int load_vec(model *m, const model_tensor *t, const gguf_tensor *g, lorac_err *err) {
    int64_t n = t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1);
    int hs = t->permute ? m->cfg.head_dim : 0;
    const float *view = gguf_tensor_f32_view(g);
    if (view && !hs) {
        *t->f32 = view;
        return LORAC_OK;
    }
    float *tmp = malloc((size_t)n * sizeof *tmp), *dst = model_store_alloc(m, (size_t)n * sizeof *dst);
    int rc = tmp && dst ? gguf_tensor_to_f32(&m->store.gf, g, tmp, err) : lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", m->path);
    for (int64_t r = 0; r < n && !rc; r++) dst[hs ? model_gguf_row_to_hf((int)r, hs) : r] = tmp[r];
    free(tmp);
    *t->f32 = dst;
    return rc;
}

/* A matrix as a qmat over the mapping, or over a row-permuted (or realigned F32) copy. */
static int load_mat(model *m, const model_tensor *t, const gguf_tensor *g, lorac_err *err) {
    int rows = (int)t->shape[0], cols = (int)t->shape[1], hs = t->permute ? m->cfg.head_dim : 0;
    qmat q = {(quant_type)g->type, rows, cols, g->data};
    char what[1200];
    snprintf(what, sizeof what, "%s: tensor '%s'", m->path, t->gguf);
    int rc = qmat_check(&q, what, err);
    if (rc) return rc;
    /* sgemm reads an F32 matrix in place: it must be float-aligned (general.alignment may be 1) */
    if (hs || (q.type == QUANT_F32 && (uintptr_t)g->data % sizeof(float))) {
        size_t rb = qmat_row_bytes(&q);
        uint8_t *dst = model_store_alloc(m, rb * (size_t)rows);
        if (!dst) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", m->path);
        for (int r = 0; r < rows; r++)
            memcpy(dst + (size_t)(hs ? model_gguf_row_to_hf(r, hs) : r) * rb, (const uint8_t *)g->data + (size_t)r * rb, rb);
        q.data = dst;
    }
    *t->q = q;
    return LORAC_OK;
}

static int load_tensors(model *m, lorac_err *err) {
    const gguf_file *f = &m->store.gf;
    model_tensor *t = NULL;
    size_t n = 0;
    int rc = model_shape(m, err);
    if (!rc) rc = model_tensors(m, &t, &n, err);
    for (size_t i = 0; i < n && !rc; i++) {
        const gguf_tensor *g;
        if (!t[i].gguf[0]) {
            rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: '%s' has no GGUF name in lorac", f->path, t[i].name);
            break;
        }
        if ((rc = find_checked(f, &t[i], &g, err))) break;
        rc = t[i].f32 ? load_vec(m, &t[i], g, err) : load_mat(m, &t[i], g, err);
    }
    /* a bias the first block lacks must not appear in another */
    for (int l = 0; l < m->cfg.n_layer && !rc; l++)
        for (int s = 0; s < ARCH_N_SITES && !rc; s++) {
            char nm[96];
            snprintf(nm, sizeof nm, "blk.%d.%s.bias", l, m->fam->gguf_site[s] ? m->fam->gguf_site[s] : "");
            if (m->fam->gguf_site[s] && !m->layers[l].site[s].b && gguf_find_tensor(f, nm))
                rc = lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s' is present but blk.0 has no such bias", f->path, nm);
        }
    const gguf_tensor *rf = rc ? NULL : gguf_find_tensor(f, "rope_freqs.weight");
    if (rf) {
        model_tensor rt = {.ndim = 1, .shape = {m->cfg.head_dim / 2, 0}, .f32 = &m->rope_freqs};
        snprintf(rt.gguf, sizeof rt.gguf, "rope_freqs.weight");
        if (!(rc = find_checked(f, &rt, &rf, err))) rc = load_vec(m, &rt, rf, err);
    }
    free(t);
    return rc;
}

int model_weights_load_gguf(model *m, const char *path, lorac_err *err) {
    int rc = gguf_open(path, &m->store.gf, err);
    if (rc) return rc;
    m->store.has_gguf = 1;
    if ((rc = config_from_gguf(m, &m->store.gf, err))) return rc;
    return load_tensors(m, err);
}
