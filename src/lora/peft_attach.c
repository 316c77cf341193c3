/* Attaching a PEFT adapter to a model: which of its tensors the model took, and its non-LoRA
 * tensors (trained biases, modules_to_save copies) checked against the model's slots. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora/peft_attach.h"

int hf_attach_begin(hf_attach *h, const peft_adapter *a, const char *family, lorac_err *err) {
    memset(h, 0, sizeof *h);
    h->a = a;
    h->family = family;
    if (a->source[0]) snprintf(h->src, sizeof h->src, "%s/adapter_model.safetensors", a->source);
    else snprintf(h->src, sizeof h->src, "adapter");
    if (!(h->used = calloc(a->n + 1, sizeof *h->used))) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", h->src);
    return LORAC_OK;
}

/* "base_model.model.X.base_layer.bias" -> "X.bias" (PEFT 0.10 names a LoRA-wrapped layer's bias so). */
static int extra_key(const char *peft_name, char *key, size_t size) {
    static const char pfx[] = "base_model.model.";
    if (strncmp(peft_name, pfx, sizeof pfx - 1) || strstr(peft_name, ".lora_")) return 0;
    const char *s = peft_name + sizeof pfx - 1, *bl = strstr(s, ".base_layer.");
    if (strlen(s) >= size) return 0;
    if (bl) snprintf(key, size, "%.*s%s", (int)(bl - s), s, bl + strlen(".base_layer"));
    else snprintf(key, size, "%s", s);
    return 1;
}

long hf_slot_find(const hf_slot *slots, size_t n_slots, const char *peft_name) {
    char key[256];
    if (!extra_key(peft_name, key, sizeof key)) return -1;
    for (size_t i = 0; i < n_slots; i++)
        if (!strcmp(slots[i].name, key)) return (long)i;
    return -1;
}

static int in_modules_to_save(const peft_config *c, const char *key) {
    for (int i = 0; i < c->n_modules_to_save; i++)
        if (peft_module_under(key, c->modules_to_save[i])) return 1;
    return 0;
}

int hf_attach_extras(hf_attach *h, const hf_slot *slots, size_t n_slots, peft_adapter **extra, lorac_err *err) {
    *extra = NULL;
    const peft_config *c = &h->a->cfg;
    peft_adapter *x = NULL;
    int rc = LORAC_OK;
    for (size_t i = 0; i < h->a->n && !rc; i++) {
        const peft_tensor *t = &h->a->t[i];
        char key[256];
        if (!extra_key(t->name, key, sizeof key)) continue;
        long k = hf_slot_find(slots, n_slots, t->name);
        if (k < 0) {
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: unexpected tensor '%s' (no such tensor in this %s model)", h->src, t->name,
                            h->family);
            break;
        }
        size_t len = strlen(key);
        int bias = len > 5 && !strcmp(key + len - 5, ".bias");
        char module[256];
        snprintf(module, sizeof module, "%.*s", (int)(len - (bias ? 5 : 0)), key);
        int ok = in_modules_to_save(c, key) || (bias && (c->bias == PEFT_BIAS_ALL ||
                                                         (c->bias == PEFT_BIAS_LORA_ONLY && peft_targets_module(c, module))));
        const hf_slot *s = &slots[k];
        if (!ok)
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: tensor '%s' is not a LoRA tensor and adapter_config.json's bias and "
                            "modules_to_save do not account for it", h->src, t->name);
        else if (t->ndim != (s->d1 ? 2 : 1) || t->shape[0] != s->d0 || (s->d1 && t->shape[1] != s->d1))
            rc = lorac_fail(err, LORAC_ESHAPE, "%s: tensor '%s' has shape [%lld, %lld] but this %s model needs [%lld, %lld] "
                            "(an adapter for another base?)", h->src, t->name, (long long)t->shape[0],
                            (long long)(t->ndim > 1 ? t->shape[1] : 0), h->family, (long long)s->d0, (long long)s->d1);
        for (size_t q = 0; !rc && x && q < x->n; q++) /* "X.bias" and "X.base_layer.bias" both */
            if (hf_slot_find(slots, n_slots, x->t[q].name) == k)
                rc = lorac_fail(err, LORAC_EFORMAT, "%s: tensors '%s' and '%s' replace the same tensor", h->src, x->t[q].name,
                                t->name);
        if (!rc && !x) rc = peft_adapter_new(c, &x, err);
        if (!rc) rc = peft_adapter_add(x, t->name, t->shape[0], t->ndim > 1 ? t->shape[1] : 0, t->data, err);
        if (!rc) h->used[i] = 1;
    }
    /* PEFT saves every tensor of a modules_to_save module: one missing means a damaged file */
    for (int j = 0; !rc && j < c->n_modules_to_save; j++) {
        int found = 0;
        for (size_t i = 0; i < n_slots && !rc; i++) {
            if (!peft_module_under(slots[i].name, c->modules_to_save[j])) continue;
            found = 1;
            int have = 0;
            for (size_t q = 0; x && q < x->n && !have; q++) have = hf_slot_find(slots, n_slots, x->t[q].name) == (long)i;
            if (!have)
                rc = lorac_fail(err, LORAC_ENOTFOUND, "%s: modules_to_save '%s' but tensor 'base_model.model.%s' is missing",
                                h->src, c->modules_to_save[j], slots[i].name);
        }
        /* PeftModelForSequenceClassification adds its head names ("classifier", "score", and since
         * PEFT 0.22 DistilBERT's "pre_classifier") to a modules_to_save the user gave, whichever the
         * model has, and wraps only what exists */
        const char *m = c->modules_to_save[j];
        int peft_default = !strcmp(c->task_type, "SEQ_CLS") &&
                           (!strcmp(m, "classifier") || !strcmp(m, "score") || !strcmp(m, "pre_classifier"));
        if (!rc && !found && !peft_default)
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: modules_to_save '%s' names no module of this %s model", h->src,
                            c->modules_to_save[j], h->family);
    }
    if (rc) {
        peft_adapter_free(x);
        return rc;
    }
    *extra = x;
    return LORAC_OK;
}

int hf_attach_take(hf_attach *h, const char *name, int64_t d0, int64_t d1, float *dst, lorac_err *err) {
    const peft_tensor *t = peft_adapter_find(h->a, name);
    if (!t) return lorac_fail(err, LORAC_ENOTFOUND, "%s: missing tensor '%s'", h->src, name);
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
        return lorac_fail(err, LORAC_ESHAPE, "%s: tensor '%s' has shape [%lld, %lld] but this %s model needs [%lld, %lld] "
                          "(an adapter for another base?)", h->src, name, (long long)t->shape[0],
                          (long long)(t->ndim > 1 ? t->shape[1] : 0), h->family, (long long)d0, (long long)d1);
    h->used[t - h->a->t] = 1;
    memcpy(dst, t->data, (size_t)d0 * (size_t)d1 * sizeof(float));
    return LORAC_OK;
}

int hf_attach_check_all_used(const hf_attach *h, lorac_err *err) {
    for (size_t i = 0; i < h->a->n; i++)
        if (!h->used[i])
            return lorac_fail(err, LORAC_EFORMAT, "%s: unexpected tensor '%s' (not a LoRA tensor of this %s model)", h->src,
                              h->a->t[i].name, h->family);
    return LORAC_OK;
}

void hf_attach_end(hf_attach *h) {
    free(h->used);
    h->used = NULL;
}
