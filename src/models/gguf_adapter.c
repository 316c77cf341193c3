/* GGUF LoRA adapters, as llama.cpp's --lora loads them: general.type "adapter", adapter.type "lora",
 * adapter.lora.alpha; per adapted tensor "<base tensor>.lora_a" ne=[n_in, r] and ".lora_b"
 * ne=[r, n_out]. llama.cpp applies W·x + (alpha/r)·B·(A·x) with r read from each lora_a's shape, on
 * its own (rotary-permuted) q/k rows. So on save lora_b's rows of a permuted map get the same
 * permutation as the base, and any layer whose exact scale differs from alpha/r (rsLoRA, PEFT's
 * alpha_pattern, a rank_pattern with one alpha) has the ratio folded into its lora_b. */
#include <stdlib.h>
#include <string.h>

#include "models/model_internal.h"

static const char *gguf_arch(const model *m, int *permute) {
    *permute = 0;
    return m->fam->gguf_arch ? m->fam->gguf_arch(&m->cfg, permute) : NULL;
}

/* llama.cpp's per-layer scale: alpha/r, or 1 when alpha is 0 (absent). In float, as llama.cpp. */
static float cpp_scale(float alpha, int r) { return alpha != 0.0f ? alpha / (float)r : 1.0f; }

/* Whether site s's rows are rotary-permuted in GGUF. */
static int site_permuted(int permute, int s) { return permute && (s == ARCH_Q || s == ARCH_K); }

/* The first LoRA layer and how many there are, or why the layout has no GGUF form. */
static int check_saveable(const model *m, const char *path, const lora_linear **first, size_t *n, lorac_err *err) {
    int permute;
    if (!gguf_arch(m, &permute))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: GGUF adapters are written for Llama-family models only", path);
    *first = NULL;
    *n = 0;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int s = 0; s < ARCH_N_SITES; s++) {
            const site_lora *lo = model_site_lora(m, l, s);
            if (!lo) continue;
            if (!lo->lin) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: q/k/v slices have no GGUF adapter form", path);
            if (!*first) *first = lo->lin;
            (*n)++;
        }
    if (m->embed_lora) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: an embedding LoRA has no GGUF adapter form", path);
    if (!*first) return lorac_fail(err, LORAC_EINVAL, "%s: the model has no LoRA layers to save", path);
    return LORAC_OK;
}

int model_gguf_adapter_check(const model *m, const char *path, lorac_err *err) {
    const lora_linear *first;
    size_t n;
    return check_saveable(m, path, &first, &n, err);
}

int model_gguf_adapter_save(model *m, const char *path, lorac_err *err) {
    const lora_linear *first = NULL;
    size_t nlayers = 0;
    int rc = check_saveable(m, path, &first, &nlayers, err), permute;
    if (rc) return rc;
    const char *arch = gguf_arch(m, &permute);
    /* one alpha for the file: the first layer's (its r, when it has none) */
    float alpha = first->cfg.lora_alpha > 0.0f ? first->cfg.lora_alpha : (float)first->cfg.r;
    gguf_writer *w = gguf_writer_new();
    float **bufs = calloc(nlayers, sizeof *bufs);
    if (!w || !bufs) {
        gguf_writer_free(w);
        free(bufs);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    }
    gguf_writer_add_str(w, "general.type", "adapter");
    gguf_writer_add_str(w, "general.architecture", arch);
    gguf_writer_add_str(w, "adapter.type", "lora");
    gguf_writer_add_f32(w, "adapter.lora.alpha", alpha);
    size_t k = 0;
    for (int l = 0; l < m->cfg.n_layer && !rc; l++)
        for (int s = 0; s < ARCH_N_SITES && !rc; s++) {
            const site_lora *lo = model_site_lora(m, l, s);
            if (!lo) continue;
            const lora_linear *L = lo->lin;
            int r = L->cfg.r, perm = site_permuted(permute, s);
            /* lora_b' = lora_b · (exact scale / llama.cpp's scale); exactly 1 for plain LoRA */
            float want = cpp_scale(alpha, r);
            double ratio = L->scaling == want ? 1.0 : (double)L->scaling / (double)want;
            float *b = bufs[k++] = malloc((size_t)L->OC * r * sizeof *b);
            if (!b) {
                rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
                break;
            }
            for (int g = 0; g < L->OC; g++) {
                const float *src = L->lora_B + (size_t)(perm ? model_gguf_row_to_hf(g, m->cfg.head_dim) : g) * r;
                for (int j = 0; j < r; j++) b[(size_t)g * r + j] = ratio == 1.0 ? src[j] : (float)(src[j] * ratio);
            }
            char na[96], nb[96];
            snprintf(na, sizeof na, "blk.%d.%s.weight.lora_a", l, m->fam->gguf_site[s]);
            snprintf(nb, sizeof nb, "blk.%d.%s.weight.lora_b", l, m->fam->gguf_site[s]);
            int64_t nea[2] = {L->C, r}, neb[2] = {r, L->OC};
            gguf_writer_add_tensor_f32(w, na, QUANT_F32, 2, nea, L->lora_A);
            if ((rc = gguf_writer_add_tensor_f32(w, nb, QUANT_F32, 2, neb, b))) rc = lorac_fail(err, rc, "%s: cannot add tensor '%s'", path, nb);
        }
    if (!rc) rc = gguf_writer_write(w, path, err);
    gguf_writer_free(w);
    for (size_t i = 0; i < k; i++) free(bufs[i]);
    free(bufs);
    return rc;
}

/* ---------------------------------------------------------------- load */

static int str_is(const gguf_file *f, const char *key, const char *want, lorac_err *err) {
    const char *v;
    size_t n;
    int rc = gguf_get_str(f, key, GGUF_REQUIRED, &v, &n, err);
    if (rc) return rc;
    if (n != strlen(want) || memcmp(v, want, n))
        return lorac_fail(err, LORAC_EFORMAT, "%s: %s is '%.*s', expected '%s'", f->path, key, (int)(n > 40 ? 40 : n), v, want);
    return LORAC_OK;
}

/* Parses "blk.N.<site>.weight.lora_a|b" into layer, site and which (0 a, 1 b); -1 if no match. */
static int parse_name(const model *m, const char *name, int *layer, int *site, int *which) {
    int l = -1, off = 0;
    if (sscanf(name, "blk.%d.%n", &l, &off) != 1 || off == 0 || l < 0 || l >= m->cfg.n_layer) return -1;
    for (int s = 0; s < ARCH_N_SITES; s++) {
        const char *g = m->fam->gguf_site[s];
        size_t n = g ? strlen(g) : 0;
        if (!g || strncmp(name + off, g, n) || strncmp(name + off + n, ".weight.lora_", 13)) continue;
        const char *ab = name + off + n + 13;
        if (strcmp(ab, "a") && strcmp(ab, "b")) return -1;
        *layer = l, *site = s, *which = ab[0] == 'b';
        return 0;
    }
    return -1;
}

/* Checks every tensor of the adapter against the model; fills ta/tb (n_layer·ARCH_N_SITES). */
static int check_tensors(const gguf_file *f, const model *m, const gguf_tensor **ta, const gguf_tensor **tb, lorac_err *err) {
    for (size_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        int l, s, which;
        if (parse_name(m, t->name, &l, &s, &which))
            return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s' is not the lora_a/lora_b of a tensor of this %d-layer model",
                              f->path, t->name, m->cfg.n_layer);
        if (!quant_can_dequantize(t->type) || t->n_dims != 2)
            return lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s' must be 2-D F32/F16/BF16 (type %s, %d dims)", f->path,
                              t->name, quant_type_name(t->type), t->n_dims);
        (which ? tb : ta)[l * ARCH_N_SITES + s] = t;
    }
    int any = 0;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int s = 0; s < ARCH_N_SITES; s++) {
            const gguf_tensor *a = ta[l * ARCH_N_SITES + s], *b = tb[l * ARCH_N_SITES + s];
            const model_linear *L = &m->layers[l].site[s];
            const char *g = m->fam->gguf_site[s];
            if (!a && !b) continue;
            if (!a || !b)
                return lorac_fail(err, LORAC_EFORMAT, "%s: blk.%d.%s.weight has lora_%c but no lora_%c", f->path, l, g,
                                  a ? 'a' : 'b', a ? 'b' : 'a');
            if (a->ne[0] != L->C || b->ne[1] != L->OC)
                return lorac_fail(err, LORAC_ESHAPE, "%s: blk.%d.%s.weight.lora_a ne [%lld, %lld] / lora_b ne [%lld, %lld] do "
                                  "not fit the base's %d inputs and %d outputs", f->path, l, g, (long long)a->ne[0],
                                  (long long)a->ne[1], (long long)b->ne[0], (long long)b->ne[1], L->C, L->OC);
            if (a->ne[1] != b->ne[0] || a->ne[1] < 1 || a->ne[1] > L->C || a->ne[1] > L->OC)
                return lorac_fail(err, LORAC_ESHAPE, "%s: blk.%d.%s.weight: lora_a has rank %lld but lora_b has rank %lld",
                                  f->path, l, g, (long long)a->ne[1], (long long)b->ne[0]);
            any = 1;
        }
    return any ? LORAC_OK : lorac_fail(err, LORAC_EFORMAT, "%s: the adapter has no LoRA tensors", f->path);
}

/* The (lora_a, lora_b) pairs as a PEFT adapter of this base, lora_b's rows back in HF order. Layers
 * whose rank differs from the first pair's get rank patterns (and alpha = r when the file has no
 * alpha, whose scale is 1), so that PEFT's alpha/r is llama.cpp's scale for every layer. */
static int to_peft(const model *m, const gguf_file *f, const gguf_tensor **ta, const gguf_tensor **tb, float alpha,
                   int permute, peft_adapter *a, lorac_err *err) {
    peft_config *c = &a->cfg;
    char module[192], name[256];
    int rc = LORAC_OK;
    c->n_targets = c->r = 0;
    snprintf(c->task_type, sizeof c->task_type, "CAUSAL_LM");
    for (int l = 0; l < m->cfg.n_layer && !rc; l++)
        for (int s = 0; s < ARCH_N_SITES && !rc; s++) {
            const gguf_tensor *ga = ta[l * ARCH_N_SITES + s], *gb = tb[l * ARCH_N_SITES + s];
            if (!ga) continue;
            int r = (int)ga->ne[1], OC = (int)gb->ne[1], dup = 0, perm = site_permuted(permute, s);
            if (!c->r) c->r = r, c->lora_alpha = alpha != 0.0f ? alpha : r;
            for (int i = 0; i < c->n_targets; i++) dup |= !strcmp(c->target_modules[i], m->fam->site[s]);
            if (!dup) snprintf(c->target_modules[c->n_targets++], 64, "%s", m->fam->site[s]);
            model_site_module(m, l, s, module, sizeof module);
            if (r != c->r && (rc = peft_config_module_pattern(c, module, r, alpha != 0.0f ? alpha : r, f->path, err))) break;
            snprintf(name, sizeof name, "base_model.model.%s.lora_A.weight", module);
            if (!(rc = peft_adapter_add(a, name, r, ga->ne[0], NULL, err))) rc = gguf_tensor_to_f32(f, ga, a->t[a->n - 1].data, err);
            float *tmp = rc ? NULL : malloc(gb->n_elem * sizeof *tmp);
            snprintf(name, sizeof name, "base_model.model.%s.lora_B.weight", module);
            if (!rc && !tmp) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", f->path);
            if (!rc && !(rc = gguf_tensor_to_f32(f, gb, tmp, err)) && !(rc = peft_adapter_add(a, name, OC, r, NULL, err)))
                for (int g = 0; g < OC; g++)
                    memcpy(a->t[a->n - 1].data + (size_t)(perm ? model_gguf_row_to_hf(g, m->cfg.head_dim) : g) * r,
                           tmp + (size_t)g * r, (size_t)r * sizeof *tmp);
            free(tmp);
        }
    return rc;
}

int model_gguf_adapter_read(const model *m, const char *path, peft_adapter **out, lorac_err *err) {
    *out = NULL;
    int permute;
    const char *arch = gguf_arch(m, &permute);
    if (!arch) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: GGUF adapters are for Llama-family models", path);
    gguf_file f;
    int rc = gguf_open(path, &f, err);
    if (rc) return rc;
    size_t n = (size_t)m->cfg.n_layer * ARCH_N_SITES;
    const gguf_tensor **ta = calloc(n, sizeof *ta), **tb = calloc(n, sizeof *tb);
    float alpha = 0.0f;
    if (!ta || !tb) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    if (!rc) rc = str_is(&f, "general.type", "adapter", err);
    if (!rc) rc = str_is(&f, "adapter.type", "lora", err);
    if (!rc) rc = str_is(&f, "general.architecture", arch, err);
    if (!rc) rc = gguf_get_f32(&f, "adapter.lora.alpha", GGUF_OPTIONAL, &alpha, err);
    if (!rc && !(alpha >= 0.0f)) rc = lorac_fail(err, LORAC_EFORMAT, "%s: adapter.lora.alpha %g is negative", path, alpha);
    if (!rc) rc = check_tensors(&f, m, ta, tb, err);
    if (!rc) rc = peft_adapter_new(NULL, out, err);
    if (!rc) rc = to_peft(m, &f, ta, tb, alpha, permute, *out, err);
    if (!rc) snprintf((*out)->source, sizeof (*out)->source, "%s", path);
    if (rc) peft_adapter_free(*out), *out = NULL;
    free(ta);
    free(tb);
    gguf_close(&f);
    return rc;
}
