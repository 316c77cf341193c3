/* Llama-family PEFT adapter directories: lorac's LoRA layers written in PEFT's layout
 * ("base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight") and read back. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lorac/llama.h"
#include "lorac/peft.h"
#include "lorac/safetensors.h"
#include "models/hf_shards.h"
#include "models/llama_internal.h"

/* ---------------------------------------------------------------- PEFT adapter directories */

#define PEFT_PREFIX "base_model.model."

int llama_peft_save(const llama_model *m, const char *dir, lorac_err *err) {
    const llama_config *c = &m->cfg;
    peft_config *pc = malloc(sizeof *pc);
    if (!pc) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
    peft_config_init(pc);
    snprintf(pc->task_type, sizeof pc->task_type, "CAUSAL_LM");
    const lora_linear *first = NULL;
    int used[LLAMA_N_SITES] = {0}, rc = LORAC_OK;
    for (int l = 0; l < c->n_layer && !rc; l++)
        for (int s = 0; s < LLAMA_N_SITES && !rc; s++) {
            const lora_linear *L = llama_model_lora(m, l, s);
            if (!L) continue;
            if (!first) first = L;
            if (L->cfg.r != first->cfg.r || L->cfg.lora_alpha != first->cfg.lora_alpha ||
                L->cfg.use_rslora != first->cfg.use_rslora)
                rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: layers with different ranks are not written yet", dir);
            used[s] = 1;
        }
    if (!rc && !first) rc = lorac_fail(err, LORAC_EINVAL, "%s: the model has no LoRA layers to save", dir);
    const peft_adapter *x = m->peft_extra; /* trained biases / modules_to_save, under PEFT's names */
    if (x) {
        pc->bias = x->cfg.bias;
        pc->n_modules_to_save = x->cfg.n_modules_to_save;
        memcpy(pc->modules_to_save, x->cfg.modules_to_save, sizeof pc->modules_to_save);
    }
    size_t max = (size_t)c->n_layer * LLAMA_N_SITES * 2 + (x ? x->n : 0), n = 0;
    st_entry *ents = rc ? NULL : calloc(max, sizeof *ents);
    char (*names)[192] = rc ? NULL : calloc(max, sizeof *names);
    if (!rc && (!ents || !names)) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
    if (!rc) {
        pc->r = first->cfg.r;
        pc->lora_alpha = first->cfg.lora_alpha;
        pc->lora_dropout = first->cfg.lora_dropout;
        pc->use_rslora = first->cfg.use_rslora;
        for (int s = 0; s < LLAMA_N_SITES; s++)
            if (used[s]) snprintf(pc->target_modules[pc->n_targets++], 64, "%s", strchr(llama_site_name(s), '.') + 1);
    }
    for (int l = 0; l < c->n_layer && !rc; l++)
        for (int s = 0; s < LLAMA_N_SITES; s++) {
            const lora_linear *L = llama_model_lora(m, l, s);
            if (!L) continue;
            for (int ab = 0; ab < 2; ab++) {
                snprintf(names[n], sizeof names[n], PEFT_PREFIX "model.layers.%d.%s.lora_%c.weight", l, llama_site_name(s),
                         ab ? 'B' : 'A');
                ents[n] = st_entry_f32(names[n], 2, ab ? L->OC : L->cfg.r, ab ? L->cfg.r : L->C, ab ? L->lora_B : L->lora_A);
                n++;
            }
        }
    for (size_t i = 0; !rc && x && i < x->n; i++, n++)
        ents[n] = st_entry_f32(x->t[i].name, x->t[i].ndim, x->t[i].shape[0], x->t[i].shape[1], x->t[i].data);
    if (!rc && mkdir(dir, 0777) != 0 && errno != EEXIST)
        rc = lorac_fail(err, LORAC_EIO, "%s: cannot create directory: %s", dir, strerror(errno));
    if (!rc) {
        char path[4200];
        const char *mk[1] = {"format"}, *mv[1] = {"pt"};
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
        rc = st_write(path, ents, n, mk, mv, 1, err);
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        if (!rc) rc = peft_config_save(pc, path, err);
    }
    free(ents);
    free(names);
    free(pc);
    return rc;
}


int llama_peft_load(llama_model *m, const char *dir, char *warn, size_t warn_size, lorac_err *err) {
    if (m->has_lora) return lorac_fail(err, LORAC_EINVAL, "%s: the model already has LoRA layers", dir);
    peft_adapter *a;
    int rc = peft_adapter_read(dir, &a, warn, warn_size, err);
    if (rc) return rc;
    rc = llama_peft_attach(m, a, err);
    peft_adapter_free(a);
    return rc;
}

/* Every base tensor an adapter's trained biases or modules_to_save may replace, by HF name. */
static int llama_slots(llama_model *m, hf_slot **out, size_t *n_out, lorac_err *err) {
    const llama_config *c = &m->cfg;
    int C = c->n_embd;
    hf_slot *s = calloc((size_t)c->n_layer * (2 + 2 * LLAMA_N_SITES) + 3, sizeof *s);
    if (!s) return lorac_fail(err, LORAC_ENOMEM, "llama: out of memory");
    size_t n = 0;
#define SLOT(f, q_, d0_, d1_, ...) (snprintf(s[n].name, sizeof s[n].name, __VA_ARGS__), s[n].slot = (f), s[n].q = (q_), s[n].d0 = (d0_), s[n].d1 = (d1_), n++)
    SLOT(NULL, &m->w.embed, c->vocab_size, C, "model.embed_tokens.weight");
    SLOT(&m->w.norm, NULL, C, 0, "model.norm.weight");
    for (int l = 0; l < c->n_layer; l++) {
        llama_layer_weights *W = &m->w.layers[l];
        SLOT(&W->attn_norm, NULL, C, 0, "model.layers.%d.input_layernorm.weight", l);
        SLOT(&W->mlp_norm, NULL, C, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        for (int site = 0; site < LLAMA_N_SITES; site++) {
            int in, o;
            llama_site_shape(c, site, &in, &o);
            SLOT(NULL, &W->w[site], o, in, "model.layers.%d.%s.weight", l, llama_site_name(site));
            if (W->b[site]) SLOT(&W->b[site], NULL, o, 0, "model.layers.%d.%s.bias", l, llama_site_name(site));
        }
    }
    SLOT(NULL, &m->w.lm_head, c->vocab_size, C, "lm_head.weight"); /* the embedding's matrix while tied */
#undef SLOT
    *out = s;
    *n_out = n;
    return LORAC_OK;
}

/* Points the model's weights at the adapter's copies (f32 qmats for matrices; old*[] keep what
 * they were). embed and lm_head are separate qmats, so a copy of one of a tied pair leaves the
 * other on the base matrix, as PEFT's ModulesToSaveWrapper (a deep copy) does; the config then
 * says untied so a merged checkpoint writes both. */
static void llama_point_extras(llama_model *m, const hf_slot *slots, size_t ns, const peft_adapter *x, const float **oldf,
                               qmat *oldq) {
    for (size_t i = 0; i < ns; i++) {
        oldf[i] = slots[i].slot ? *slots[i].slot : NULL;
        if (slots[i].q) oldq[i] = *slots[i].q;
    }
    for (size_t i = 0; i < x->n; i++) {
        const hf_slot *s = &slots[hf_slot_find(slots, ns, x->t[i].name)];
        if (s->q) *s->q = qmat_f32(x->t[i].data, (int)s->d0, (int)s->d1);
        else *s->slot = x->t[i].data;
        if (s->q == &m->w.embed || s->q == &m->w.lm_head) m->cfg.tie_word_embeddings = 0;
    }
}

int llama_peft_attach(llama_model *m, const peft_adapter *a, lorac_err *err) {
    const char *src = a->source[0] ? a->source : "adapter";
    if (m->has_lora || m->peft_extra) return lorac_fail(err, LORAC_EINVAL, "%s: the model already has LoRA layers", src);
    hf_attach h;
    int rc = hf_attach_begin_extras(&h, a, "Llama", err);
    const peft_config *pc = &a->cfg;
    /* trained biases and modules_to_save copies first, so the LoRA layers wrap the adapter's ones */
    hf_slot *slots = NULL;
    size_t ns = 0;
    peft_adapter *extra = NULL;
    const float **oldf = NULL;
    qmat *oldq = NULL;
    llama_config cfg0 = m->cfg;
    if (!rc) rc = llama_slots(m, &slots, &ns, err);
    if (!rc) rc = hf_attach_extras(&h, slots, ns, &extra, err);
    if (!rc && extra && (!(oldf = calloc(ns, sizeof *oldf)) || !(oldq = calloc(ns, sizeof *oldq))))
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", src);
    if (!rc && extra) llama_point_extras(m, slots, ns, extra, oldf, oldq);
    int pointed = !rc && extra;
    if (!rc && pc->fan_in_fan_out)
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: fan_in_fan_out is true but Llama's projections are nn.Linear", src);
    lorac_rng rng;
    lorac_rng_seed(&rng, 0);
    int any = 0;
    for (int l = 0; l < m->cfg.n_layer && !rc; l++)
        for (int s = 0; s < LLAMA_N_SITES && !rc; s++) {
            char module[128], na[192], nb[192];
            snprintf(module, sizeof module, "model.layers.%d.%s", l, llama_site_name(s));
            if (!peft_targets_module(pc, module)) continue;
            int r = peft_rank_for(pc, module), in, out;
            llama_site_shape(&m->cfg, s, &in, &out);
            lora_config lc = lora_config_default(r, 1.0f);
            lc.lora_dropout = (float)pc->lora_dropout;
            lc.lora_alpha = (float)(peft_scaling_for(pc, module) * r); /* PEFT's exact scaling */
            if ((rc = llama_lora_attach(m, l, s, &lc, &rng, err))) break;
            any = 1;
            lora_linear *L = llama_model_lora(m, l, s);
            snprintf(na, sizeof na, PEFT_PREFIX "%s.lora_A.weight", module);
            snprintf(nb, sizeof nb, PEFT_PREFIX "%s.lora_B.weight", module);
            rc = hf_attach_take(&h, na, r, in, L->lora_A, err);
            if (!rc) rc = hf_attach_take(&h, nb, out, r, L->lora_B, err);
        }
    if (!rc && !any) rc = lorac_fail(err, LORAC_EFORMAT, "%s: target_modules match no Llama module", src);
    if (!rc) rc = hf_attach_check_all_used(&h, err);
    hf_attach_end(&h);
    if (rc && pointed) { /* nothing half-loaded: the base tensors back before the registry is rebuilt */
        for (size_t i = 0; i < ns; i++) {
            if (slots[i].slot) *slots[i].slot = oldf[i];
            if (slots[i].q) *slots[i].q = oldq[i];
        }
        m->cfg = cfg0;
    }
    if (any || m->lora) rc = llama_lora_finish(m, rc, err);
    if (!rc) m->peft_extra = extra;
    else peft_adapter_free(extra);
    free(slots);
    free(oldf);
    free(oldq);
    return rc;
}
