/* GPT-2 adapters in PEFT's directory layout: adapter_config.json + adapter_model.safetensors with
 * "base_model.model.transformer.h.N.<module>.lora_A.weight" (r, in) / ".lora_B.weight" (out, r). */
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/gpt2.h"
#include "lorac/peft.h"
#include "lorac/safetensors.h"
#include "models/hf_shards.h"

#define PEFT_PREFIX "base_model.model.transformer.h."
#define SPLIT_KEY "lorac.c_attn_split" /* safetensors metadata: which qkv slices a c_attn adapter covers */

/* The lora_config of an attached site (c_attn as MergedLinear or Linear), or NULL. */
static const lora_config *site_cfg(const gpt2_model *m, int l, int site, const lora_merged **merged) {
    const gpt2_block_lora *b = &m->blocks[l];
    *merged = NULL;
    switch (site) {
    case GPT2_SITE_C_ATTN:
        if (b->qkv) {
            *merged = b->qkv;
            return &b->qkv->cfg;
        }
        return b->c_attn ? &b->c_attn->cfg : NULL;
    case GPT2_SITE_ATTN_PROJ: return b->attn_proj ? &b->attn_proj->cfg : NULL;
    case GPT2_SITE_MLP_FC: return b->mlp_fc ? &b->mlp_fc->cfg : NULL;
    default: return b->mlp_proj ? &b->mlp_proj->cfg : NULL;
    }
}

static const lora_linear *site_linear(const gpt2_model *m, int l, int site) {
    const gpt2_block_lora *b = &m->blocks[l];
    const lora_linear *ls[GPT2_N_SITES] = {b->c_attn, b->attn_proj, b->mlp_fc, b->mlp_proj};
    return ls[site];
}

int gpt2_peft_save(const gpt2_model *m, const char *dir, lorac_err *err) {
    if (!m->has_lora) return lorac_fail(err, LORAC_EINVAL, "%s: the model has no LoRA layers to save", dir);
    const gpt2_config *c = &m->cfg;
    int L = c->n_layer, C = c->n_embd;
    peft_config pc;
    peft_config_init(&pc);
    pc.fan_in_fan_out = 1;
    const lora_config *first = NULL;
    int used[GPT2_N_SITES] = {0}, split_flags[3] = {0}, split = 0;
    for (int l = 0; l < L; l++)
        for (int s = 0; s < GPT2_N_SITES; s++) {
            const lora_merged *M;
            const lora_config *lc = site_cfg(m, l, s, &M);
            if (!lc) continue;
            if (!first) first = lc;
            if (lc->r != first->r || lc->lora_alpha != first->lora_alpha || lc->use_rslora != first->use_rslora)
                return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: layers with different ranks are not written yet", dir);
            used[s] = 1;
            if (M) {
                split = 1;
                for (int g = 0; g < 3; g++) split_flags[g] = M->enable_lora[g];
            }
        }
    if (m->wte_lora) {
        const lora_config *lc = &m->wte_lora->cfg;
        if (!first) first = lc;
        if (lc->r != first->r || lc->lora_alpha != first->lora_alpha || lc->use_rslora != first->use_rslora)
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: layers with different ranks are not written yet", dir);
    }
    if (!first) return lorac_fail(err, LORAC_EINVAL, "%s: the model has no LoRA layers to save", dir);
    pc.r = first->r;
    /* the float settings as the short decimals a user typed (0.1, not 0.10000000149011612) */
    char num[32];
    snprintf(num, sizeof num, "%.7g", first->lora_alpha);
    pc.lora_alpha = strtod(num, NULL);
    snprintf(num, sizeof num, "%.7g", first->lora_dropout);
    pc.lora_dropout = strtod(num, NULL);
    pc.use_rslora = first->use_rslora;
    if (used[GPT2_SITE_C_ATTN]) snprintf(pc.target_modules[pc.n_targets++], 64, "c_attn");
    if (used[GPT2_SITE_ATTN_PROJ] && used[GPT2_SITE_MLP_PROJ]) snprintf(pc.target_modules[pc.n_targets++], 64, "c_proj");
    else if (used[GPT2_SITE_ATTN_PROJ]) snprintf(pc.target_modules[pc.n_targets++], 64, "attn.c_proj");
    else if (used[GPT2_SITE_MLP_PROJ]) snprintf(pc.target_modules[pc.n_targets++], 64, "mlp.c_proj");
    if (used[GPT2_SITE_MLP_FC]) snprintf(pc.target_modules[pc.n_targets++], 64, "c_fc");
    if (m->wte_lora) snprintf(pc.target_modules[pc.n_targets++], 64, "wte");
    int k = split_flags[0] + split_flags[1] + split_flags[2];
    if (split) { /* rank k·r on c_attn with alpha chosen so that PEFT's scaling equals ours */
        double s = pc.use_rslora ? pc.lora_alpha / sqrt((double)pc.r) : pc.lora_alpha / pc.r;
        int rk = pc.r * k;
        snprintf(pc.rank_pattern[0].key, sizeof pc.rank_pattern[0].key, "c_attn");
        pc.rank_pattern[0].value = rk;
        pc.n_rank_pattern = 1;
        snprintf(pc.alpha_pattern[0].key, sizeof pc.alpha_pattern[0].key, "c_attn");
        pc.alpha_pattern[0].value = pc.use_rslora ? s * sqrt((double)rk) : s * rk;
        pc.n_alpha_pattern = 1;
    }

    /* tensors: at most 2 per site per layer; c_attn split blocks are expanded into owned buffers */
    const peft_adapter *x = m->peft_extra; /* trained biases / modules_to_save, under PEFT's names */
    if (x) {
        pc.bias = x->cfg.bias;
        pc.n_modules_to_save = x->cfg.n_modules_to_save;
        memcpy(pc.modules_to_save, x->cfg.modules_to_save, sizeof pc.modules_to_save);
    }
    size_t max = (size_t)L * GPT2_N_SITES * 2 + 2 + (x ? x->n : 0);
    st_entry *ents = calloc(max, sizeof *ents);
    char (*names)[160] = calloc(max, sizeof *names);
    float **owned = calloc((size_t)L, sizeof *owned);
    size_t n = 0;
    int rc = (!ents || !names || !owned) ? lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir) : LORAC_OK;
    for (int l = 0; l < L && !rc; l++)
        for (int s = 0; s < GPT2_N_SITES && !rc; s++) {
            const lora_merged *M;
            const lora_config *lc = site_cfg(m, l, s, &M);
            if (!lc) continue;
            const float *A, *B;
            int r = lc->r, in = s == GPT2_SITE_MLP_PROJ ? c->n_inner : C;
            int out = s == GPT2_SITE_C_ATTN ? 3 * C : s == GPT2_SITE_MLP_FC ? c->n_inner : C;
            if (M) {
                /* B' (3C, k·r): slice g's rows take B_j in column block j, zeros elsewhere */
                r = lc->r * k;
                float *Bx = calloc((size_t)out * r, sizeof(float));
                if (!Bx) {
                    rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
                    break;
                }
                owned[l] = Bx;
                for (int g = 0, j = 0; g < 3; g++) {
                    if (!M->enable_lora[g]) continue;
                    for (int row = 0; row < C; row++)
                        memcpy(Bx + (size_t)(g * C + row) * r + (size_t)j * lc->r,
                               M->lora_B + (size_t)(j * C + row) * lc->r, lc->r * sizeof(float));
                    j++;
                }
                A = M->lora_A;
                B = Bx;
            } else {
                const lora_linear *Lin = site_linear(m, l, s);
                A = Lin->lora_A;
                B = Lin->lora_B;
            }
            for (int ab = 0; ab < 2; ab++) {
                snprintf(names[n], sizeof names[n], PEFT_PREFIX "%d.%s.lora_%c.weight", l, gpt2_site_name(s), ab ? 'B' : 'A');
                ents[n] = st_entry_f32(names[n], 2, ab ? out : r, ab ? r : in, ab ? B : A);
                n++;
            }
        }
    if (!rc && m->wte_lora) { /* PEFT's embedding names carry no ".weight" */
        const lora_embedding *E = m->wte_lora;
        for (int ab = 0; ab < 2; ab++) {
            snprintf(names[n], sizeof names[n], "base_model.model.transformer.wte.lora_embedding_%c", ab ? 'B' : 'A');
            ents[n] = st_entry_f32(names[n], 2, ab ? E->D : E->cfg.r, ab ? E->cfg.r : E->V, ab ? E->lora_B : E->lora_A);
            n++;
        }
    }
    for (size_t i = 0; !rc && x && i < x->n; i++, n++)
        ents[n] = st_entry_f32(x->t[i].name, x->t[i].ndim, x->t[i].shape[0], x->t[i].shape[1], x->t[i].data);
    char split_val[8] = "";
    if (split) snprintf(split_val, sizeof split_val, "%d,%d,%d", split_flags[0], split_flags[1], split_flags[2]);
    const char *mk[2] = {"format", SPLIT_KEY}, *mv[2] = {"pt", split_val};
    /* each file is written whole (temporary name + rename) into DIR, created if needed, so a
     * training run can refresh its adapter beside its log and checkpoint */
    if (!rc && mkdir(dir, 0777) != 0 && errno != EEXIST)
        rc = lorac_fail(err, LORAC_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
    if (!rc) {
        char path[4200];
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
        rc = st_write(path, ents, n, mk, mv, split ? 2 : 1, err);
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        if (!rc) rc = peft_config_save(&pc, path, err);
    }
    for (int l = 0; owned && l < L; l++) free(owned[l]);
    free(owned);
    free(ents);
    free(names);
    return rc;
}


int gpt2_peft_load(gpt2_model *m, const char *dir, char *warn, size_t warn_size, lorac_err *err) {
    if (m->has_lora) return lorac_fail(err, LORAC_EINVAL, "%s: the model already has LoRA layers", dir);
    peft_adapter *a;
    int rc = peft_adapter_read(dir, &a, warn, warn_size, err);
    if (rc) return rc;
    rc = gpt2_peft_attach(m, a, err);
    peft_adapter_free(a);
    return rc;
}

/* Reads a c_attn B' (3C, k·rs) written for a q/k/v split back into the MergedLinear's B. */
static int unsplit_B(lora_merged *M, const float *Bx, const int *split, int k, int C, const char *src, const char *nb,
                     lorac_err *err) {
    int r = M->cfg.r * k, rs = M->cfg.r;
    for (int g = 0, j = 0; g < 3; g++) {
        for (int row = 0; row < C; row++) {
            const float *x = Bx + (size_t)(g * C + row) * r;
            for (int col = 0; col < r; col++) {
                int block = col / rs;
                if (split[g] && block == j) M->lora_B[(size_t)(j * C + row) * rs + (col - block * rs)] = x[col];
                else if (x[col] != 0.0f)
                    return lorac_fail(err, LORAC_EFORMAT, "%s: '%s' is marked as a q/k/v split but has a non-zero "
                                      "entry outside its blocks", src, nb);
            }
        }
        if (split[g]) j++;
    }
    return LORAC_OK;
}

/* Every base tensor an adapter's trained biases or modules_to_save may replace, by HF name. */
static int gpt2_slots(gpt2_model *m, hf_slot **out, size_t *n_out, lorac_err *err) {
    const gpt2_config *c = &m->cfg;
    int C = c->n_embd, I = c->n_inner;
    hf_slot *s = calloc((size_t)c->n_layer * 12 + 5, sizeof *s);
    if (!s) return lorac_fail(err, LORAC_ENOMEM, "gpt2: out of memory");
    size_t n = 0;
#define SLOT(ptr, d0_, d1_, ...) (snprintf(s[n].name, sizeof s[n].name, __VA_ARGS__), s[n].slot = &(ptr), s[n].d0 = (d0_), s[n].d1 = (d1_), n++)
    SLOT(m->w.wte, c->vocab_size, C, "transformer.wte.weight");
    SLOT(m->w.wpe, c->n_positions, C, "transformer.wpe.weight");
    for (int l = 0; l < c->n_layer; l++) {
        gpt2_layer_weights *W = &m->w.layers[l];
        SLOT(W->ln1_w, C, 0, "transformer.h.%d.ln_1.weight", l);
        SLOT(W->ln1_b, C, 0, "transformer.h.%d.ln_1.bias", l);
        SLOT(W->attn_w, C, 3 * C, "transformer.h.%d.attn.c_attn.weight", l);
        SLOT(W->attn_b, 3 * C, 0, "transformer.h.%d.attn.c_attn.bias", l);
        SLOT(W->proj_w, C, C, "transformer.h.%d.attn.c_proj.weight", l);
        SLOT(W->proj_b, C, 0, "transformer.h.%d.attn.c_proj.bias", l);
        SLOT(W->ln2_w, C, 0, "transformer.h.%d.ln_2.weight", l);
        SLOT(W->ln2_b, C, 0, "transformer.h.%d.ln_2.bias", l);
        SLOT(W->fc_w, C, I, "transformer.h.%d.mlp.c_fc.weight", l);
        SLOT(W->fc_b, I, 0, "transformer.h.%d.mlp.c_fc.bias", l);
        SLOT(W->fcproj_w, I, C, "transformer.h.%d.mlp.c_proj.weight", l);
        SLOT(W->fcproj_b, C, 0, "transformer.h.%d.mlp.c_proj.bias", l);
    }
    SLOT(m->w.lnf_w, C, 0, "transformer.ln_f.weight");
    SLOT(m->w.lnf_b, C, 0, "transformer.ln_f.bias");
    SLOT(m->w.lm_head, c->vocab_size, C, "lm_head.weight"); /* NULL while tied to wte */
#undef SLOT
    *out = s;
    *n_out = n;
    return LORAC_OK;
}

/* Points the model's weights at the adapter's copies (old[] keeps what they were). A copy of a
 * tied wte or lm_head unties them as PEFT's ModulesToSaveWrapper (a deep copy) does: the other
 * keeps the base tensor. */
static int point_extras(gpt2_model *m, const hf_slot *slots, size_t ns, const peft_adapter *x, const float **old,
                        const char *src, lorac_err *err) {
    const float *wte0 = m->w.wte;
    int wte_new = 0, head_new = 0;
    for (size_t i = 0; i < x->n; i++) {
        long k = hf_slot_find(slots, ns, x->t[i].name);
        wte_new |= k == 0;
        head_new |= k == (long)ns - 1;
    }
    if (wte_new && peft_targets_module(&x->cfg, "transformer.wte"))
        return lorac_fail(err, LORAC_EFORMAT, "%s: transformer.wte is both a LoRA target and in modules_to_save", src);
    for (size_t i = 0; i < ns; i++) old[i] = *slots[i].slot;
    for (size_t i = 0; i < x->n; i++) *slots[hf_slot_find(slots, ns, x->t[i].name)].slot = x->t[i].data;
    if (m->cfg.tie_word_embeddings && (wte_new || head_new)) {
        if (!head_new) m->w.lm_head = wte0;
        m->cfg.tie_word_embeddings = 0;
    }
    return LORAC_OK;
}

int gpt2_peft_attach(gpt2_model *m, const peft_adapter *a, lorac_err *err) {
    const char *src = a->source[0] ? a->source : "adapter";
    if (m->has_lora || m->peft_extra) return lorac_fail(err, LORAC_EINVAL, "%s: the model already has LoRA layers", src);
    hf_attach h;
    int rc = hf_attach_begin_extras(&h, a, "GPT-2", err);
    const peft_config *pc = &a->cfg;
    /* trained biases and modules_to_save copies first, so the LoRA layers wrap the adapter's biases */
    hf_slot *slots = NULL;
    size_t ns = 0;
    peft_adapter *extra = NULL;
    const float **old = NULL;
    gpt2_config cfg0 = m->cfg;
    if (!rc) rc = gpt2_slots(m, &slots, &ns, err);
    if (!rc) rc = hf_attach_extras(&h, slots, ns, &extra, err);
    if (!rc && extra && !(old = calloc(ns, sizeof *old))) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", src);
    if (!rc && extra) rc = point_extras(m, slots, ns, extra, old, src, err);
    int pointed = !rc && extra;
    int split[3] = {0, 0, 0}, k = 0;
    const char *sv = peft_adapter_meta(a, SPLIT_KEY);
    if (sv && sscanf(sv, "%d,%d,%d", &split[0], &split[1], &split[2]) == 3) k = !!split[0] + !!split[1] + !!split[2];
    const gpt2_config *c = &m->cfg;
    lorac_rng rng;
    lorac_rng_seed(&rng, 0);
    int any = 0;
    for (int l = 0; l < c->n_layer && !rc; l++)
        for (int s = 0; s < GPT2_N_SITES && !rc; s++) {
            char module[128];
            snprintf(module, sizeof module, "transformer.h.%d.%s", l, gpt2_site_name(s));
            if (!peft_targets_module(pc, module)) continue;
            int r = peft_rank_for(pc, module);
            double scale = peft_scaling_for(pc, module);
            int in = s == GPT2_SITE_MLP_PROJ ? c->n_inner : c->n_embd;
            int out = s == GPT2_SITE_C_ATTN ? 3 * c->n_embd : s == GPT2_SITE_MLP_FC ? c->n_inner : c->n_embd;
            int as_split = s == GPT2_SITE_C_ATTN && k > 0 && r % k == 0;
            lora_config lc = lora_config_default(as_split ? r / k : r, 1.0f);
            lc.lora_dropout = (float)pc->lora_dropout;
            lc.fan_in_fan_out = 1;
            /* the exact scaling PEFT applies, whatever rank_pattern/alpha_pattern/rsLoRA made it */
            lc.lora_alpha = (float)(scale * lc.r);
            rc = gpt2_lora_attach(m, l, s, &lc, as_split ? split : NULL, &rng, err);
            if (rc) break;
            any = 1;
            char na[192], nb[192];
            snprintf(na, sizeof na, "base_model.model.%s.lora_A.weight", module);
            snprintf(nb, sizeof nb, "base_model.model.%s.lora_B.weight", module);
            if (!as_split) {
                lora_linear *Lin = (lora_linear *)site_linear(m, l, s);
                rc = hf_attach_take(&h, na, r, in, Lin->lora_A, err);
                if (!rc) rc = hf_attach_take(&h, nb, out, r, Lin->lora_B, err);
                continue;
            }
            lora_merged *M = m->blocks[l].qkv;
            float *Bx = malloc((size_t)out * r * sizeof(float));
            if (!Bx) {
                rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", src);
                break;
            }
            rc = hf_attach_take(&h, na, r, in, M->lora_A, err);
            if (!rc) rc = hf_attach_take(&h, nb, out, r, Bx, err);
            if (!rc) rc = unsplit_B(M, Bx, split, k, c->n_embd, src, nb, err);
            free(Bx);
        }
    if (!rc && peft_targets_module(pc, "transformer.wte")) {
        int r = peft_rank_for(pc, "transformer.wte");
        lora_config lc = lora_config_default(r, (float)(peft_scaling_for(pc, "transformer.wte") * r));
        rc = gpt2_lora_attach_wte(m, &lc, &rng, err);
        if (!rc) {
            any = 1;
            rc = hf_attach_take(&h, "base_model.model.transformer.wte.lora_embedding_A", r, c->vocab_size, m->wte_lora->lora_A, err);
            if (!rc) rc = hf_attach_take(&h, "base_model.model.transformer.wte.lora_embedding_B", c->n_embd, r, m->wte_lora->lora_B, err);
        }
    }
    if (!rc && !any) rc = lorac_fail(err, LORAC_EFORMAT, "%s: target_modules match no GPT-2 module", src);
    if (!rc) rc = hf_attach_check_all_used(&h, err);
    hf_attach_end(&h);
    if (rc && pointed) { /* nothing half-loaded: the base tensors back before the registry is rebuilt */
        for (size_t i = 0; i < ns; i++) *slots[i].slot = old[i];
        m->cfg = cfg0;
    }
    if (any || rc) rc = gpt2_lora_finish(m, rc, err);
    if (!rc) m->peft_extra = extra;
    else peft_adapter_free(extra);
    free(slots);
    free(old);
    return rc;
}
