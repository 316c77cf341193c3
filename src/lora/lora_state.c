/* Named parameters of a LoRA model, loralib's trainable rules (mark_only_lora_as_trainable,
 * lora_state_dict) and the adapter/base state as safetensors, loaded strictly. */
#include <stdlib.h>
#include <string.h>

#include "lora/lora_internal.h"
#include "lorac/safetensors.h"

void lora_registry_init(lora_registry *reg) { memset(reg, 0, sizeof *reg); }

void lora_registry_free(lora_registry *reg) {
    if (!reg) return;
    for (size_t i = 0; i < reg->n; i++) free(reg->params[i].name);
    free(reg->params);
    memset(reg, 0, sizeof *reg);
}

lora_param *lora_registry_find(const lora_registry *reg, const char *name) {
    for (size_t i = 0; i < reg->n; i++)
        if (strcmp(reg->params[i].name, name) == 0) return &reg->params[i];
    return NULL;
}

int lora_registry_add(lora_registry *reg, const char *name, int ndim, const int64_t *shape, float *data,
                      float *grad, int *requires_grad, int requires_grad_init, int lora_layer_bias,
                      lorac_err *err) {
    if (!name || !*name) return lorac_fail(err, LORAC_EINVAL, "lora_registry: a parameter needs a name");
    if (ndim < 0 || ndim > LORA_MAX_DIMS)
        return lorac_fail(err, LORAC_EINVAL, "lora_registry: \"%s\" has %d dims (at most %d)", name, ndim, LORA_MAX_DIMS);
    if (lora_registry_find(reg, name))
        return lorac_fail(err, LORAC_EINVAL, "lora_registry: \"%s\" is registered twice", name);
    size_t numel = 1;
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0 || lorac_size_mul(numel, (size_t)shape[d], &numel))
            return lorac_fail(err, LORAC_ESHAPE, "lora_registry: \"%s\" has a bad shape", name);
    if (numel && !data) return lorac_fail(err, LORAC_EINVAL, "lora_registry: \"%s\" has no data", name);
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? 2 * reg->cap : 16;
        lora_param *p = realloc(reg->params, cap * sizeof *p);
        if (!p) return lorac_fail(err, LORAC_ENOMEM, "lora_registry: out of memory");
        reg->params = p;
        reg->cap = cap;
    }
    lora_param *p = &reg->params[reg->n];
    memset(p, 0, sizeof *p);
    size_t len = strlen(name);
    if (!(p->name = malloc(len + 1))) return lorac_fail(err, LORAC_ENOMEM, "lora_registry: out of memory");
    memcpy(p->name, name, len + 1);
    p->ndim = ndim;
    for (int d = 0; d < ndim; d++) p->shape[d] = shape[d];
    p->numel = numel;
    p->data = data;
    p->grad = grad;
    p->requires_grad = requires_grad;
    p->lora_layer_bias = lora_layer_bias;
    lora_param_set_requires_grad(p, requires_grad_init);
    reg->n++;
    return LORAC_OK;
}

int lora_param_requires_grad(const lora_param *p) { return p->requires_grad ? *p->requires_grad : p->own_flag; }

void lora_param_set_requires_grad(lora_param *p, int on) {
    if (p->requires_grad) *p->requires_grad = on ? 1 : 0;
    else p->own_flag = on ? 1 : 0;
}

const char *lora_bias_mode_name(lora_bias_mode m) {
    switch (m) {
    case LORA_BIAS_NONE: return "none";
    case LORA_BIAS_ALL: return "all";
    case LORA_BIAS_LORA_ONLY: return "lora_only";
    }
    return "?";
}

int lora_bias_mode_parse(const char *s, lora_bias_mode *m) {
    for (int i = 0; i <= (int)LORA_BIAS_LORA_ONLY; i++)
        if (s && strcmp(s, lora_bias_mode_name((lora_bias_mode)i)) == 0) {
            *m = (lora_bias_mode)i;
            return LORAC_OK;
        }
    return LORAC_EINVAL;
}

static int is_lora_name(const char *name) { return strstr(name, "lora_") != NULL; }

void lora_mark_only_lora_as_trainable(lora_registry *reg, lora_bias_mode bias) {
    for (size_t i = 0; i < reg->n; i++) {
        lora_param *p = &reg->params[i];
        if (!is_lora_name(p->name)) lora_param_set_requires_grad(p, 0);
        if (bias == LORA_BIAS_ALL && strstr(p->name, "bias")) lora_param_set_requires_grad(p, 1);
        if (bias == LORA_BIAS_LORA_ONLY && p->lora_layer_bias) lora_param_set_requires_grad(p, 1);
    }
}

void lora_registry_count(const lora_registry *reg, size_t *trainable, size_t *all) {
    size_t t = 0, a = 0;
    for (size_t i = 0; i < reg->n; i++) {
        a += reg->params[i].numel;
        if (lora_param_requires_grad(&reg->params[i])) t += reg->params[i].numel;
    }
    if (trainable) *trainable = t;
    if (all) *all = a;
}

/* n with a comma every three digits, as Python's format(n, ",d"). */
static void format_thousands(char *out, size_t size, size_t n) {
    char digits[32], tmp[48];
    int nd = snprintf(digits, sizeof digits, "%zu", n), k = 0;
    for (int i = 0; i < nd; i++) {
        if (i && (nd - i) % 3 == 0) tmp[k++] = ',';
        tmp[k++] = digits[i];
    }
    tmp[k] = 0;
    snprintf(out, size, "%s", tmp);
}

void lora_format_trainable(char *buf, size_t size, size_t trainable, size_t all) {
    char t[48], a[48];
    format_thousands(t, sizeof t, trainable);
    format_thousands(a, sizeof a, all);
    double pct = all ? 100.0 * (double)trainable / (double)all : 0.0;
    snprintf(buf, size, "trainable params: %s || all params: %s || trainable%%: %.4f", t, a, pct);
}

void lora_registry_report(const lora_registry *reg, char *buf, size_t size) {
    size_t t, a;
    lora_registry_count(reg, &t, &a);
    lora_format_trainable(buf, size, t, a);
}

int lora_state_keeps(const lora_registry *reg, const lora_param *p, lora_bias_mode bias) {
    if (is_lora_name(p->name)) return 1;
    if (bias == LORA_BIAS_ALL) return strstr(p->name, "bias") != NULL;
    if (bias != LORA_BIAS_LORA_ONLY) return 0;
    /* loralib: for each key k with "lora_", keep k.split('lora_')[0] + 'bias' */
    size_t len = strlen(p->name);
    if (len < 4 || strcmp(p->name + len - 4, "bias") != 0) return 0;
    size_t plen = len - 4;
    for (size_t i = 0; i < reg->n; i++) {
        const char *q = reg->params[i].name, *at = strstr(q, "lora_");
        if (at && (size_t)(at - q) == plen && strncmp(q, p->name, plen) == 0) return 1;
    }
    return 0;
}

/* which: 0 base (no "lora_"), 1 adapter (lora_state_keeps) */
static int state_selected(const lora_registry *reg, const lora_param *p, int which, lora_bias_mode bias) {
    return which ? lora_state_keeps(reg, p, bias) : !is_lora_name(p->name);
}

static int state_save(const lora_registry *reg, const char *path, int which, lora_bias_mode bias, lorac_err *err) {
    st_entry *e = calloc(reg->n ? reg->n : 1, sizeof *e);
    if (!e) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    size_t n = 0;
    for (size_t i = 0; i < reg->n; i++) {
        const lora_param *p = &reg->params[i];
        if (!state_selected(reg, p, which, bias)) continue;
        e[n].name = p->name;
        e[n].dtype = ST_F32;
        e[n].out_dtype = ST_F32;
        e[n].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) e[n].shape[d] = p->shape[d];
        e[n].data = p->data;
        n++;
    }
    const char *keys[2] = {"format", "lora_bias"};
    const char *vals[2] = {which ? "lorac-lora" : "lorac-base", lora_bias_mode_name(bias)};
    int rc = st_write(path, e, n, keys, vals, which ? 2 : 1, err);
    free(e);
    return rc;
}

int lora_state_save(const lora_registry *reg, const char *path, lora_bias_mode bias, lorac_err *err) {
    return state_save(reg, path, 1, bias, err);
}

int lora_base_save(const lora_registry *reg, const char *path, lorac_err *err) {
    return state_save(reg, path, 0, LORA_BIAS_NONE, err);
}

static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && k < size; d++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < size) snprintf(buf + k, size - k, "]");
}

static int state_load(lora_registry *reg, const char *path, int which, lora_bias_mode bias, lorac_err *err) {
    const char *what = which ? "adapter" : "base";
    st_file f;
    int rc = st_open(path, &f, err);
    if (rc) return rc;
    const char *saved = st_meta(&f, "lora_bias");
    if (which && saved && strcmp(saved, lora_bias_mode_name(bias)) != 0) {
        rc = lorac_fail(err, LORAC_EINVAL, "%s: the adapter was saved with bias='%s', loaded with bias='%s'", path,
                        saved, lora_bias_mode_name(bias));
        goto done;
    }
    /* check everything before writing anything */
    for (size_t i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        const lora_param *p = lora_registry_find(reg, t->name);
        if (!p) {
            rc = lorac_fail(err, LORAC_ENOTFOUND, "%s: unknown tensor \"%s\": the model has no parameter of that name", path, t->name);
            goto done;
        }
        if (!state_selected(reg, p, which, bias)) {
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: unexpected tensor \"%s\": not part of the %s state%s%s%s", path,
                            t->name, what, which ? " (bias='" : "", which ? lora_bias_mode_name(bias) : "", which ? "')" : "");
            goto done;
        }
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            char got[160], want[160];
            format_shape(got, sizeof got, t->ndim, t->shape);
            format_shape(want, sizeof want, p->ndim, p->shape);
            rc = lorac_fail(err, LORAC_ESHAPE, "%s: tensor \"%s\" has shape %s, the model expects %s", path, t->name, got, want);
            goto done;
        }
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: tensor \"%s\" has dtype %s, expected F32, F16 or BF16", path, t->name,
                            st_dtype_name(t->dtype));
            goto done;
        }
    }
    for (size_t i = 0; i < reg->n; i++) {
        const lora_param *p = &reg->params[i];
        if (state_selected(reg, p, which, bias) && !st_find(&f, p->name)) {
            rc = lorac_fail(err, LORAC_ENOTFOUND, "%s: missing tensor \"%s\" of the %s state", path, p->name, what);
            goto done;
        }
    }
    for (size_t i = 0; i < f.n_tensors && !rc; i++) {
        const st_tensor *t = &f.tensors[i];
        rc = st_read_f32(&f, t, lora_registry_find(reg, t->name)->data, err);
    }
done:
    st_close(&f);
    return rc;
}

int lora_state_load(lora_registry *reg, const char *path, lora_bias_mode bias, lorac_err *err) {
    return state_load(reg, path, 1, bias, err);
}

int lora_base_load(lora_registry *reg, const char *path, lorac_err *err) {
    return state_load(reg, path, 0, LORA_BIAS_NONE, err);
}
