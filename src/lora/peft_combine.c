/* Adapter arithmetic as PEFT's add_weighted_adapter (cat, svd, linear), and --adapter DIR[:SCALE]
 * lists as one adapter whose delta is the exact weighted sum. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora_internal.h"
#include "lorac/peft.h"

int peft_combine_mode_parse(const char *s) {
    if (!strcmp(s, "cat")) return PEFT_COMBINE_CAT;
    if (!strcmp(s, "svd")) return PEFT_COMBINE_SVD;
    if (!strcmp(s, "linear")) return PEFT_COMBINE_LINEAR;
    return -1;
}

static const char *src_of(const peft_adapter *a) { return a->source[0] ? a->source : "adapter"; }

/* The output's target set: the union of list targets (same layer filter) or of regexes. */
static int combine_targets(peft_adapter *const *ads, int n, peft_config *c, lorac_err *err) {
    int regex = ads[0]->cfg.target_regex[0] != 0;
    c->n_targets = 0;
    c->target_regex[0] = 0;
    for (int i = 0; i < n; i++) {
        const peft_config *x = &ads[i]->cfg;
        if ((x->target_regex[0] != 0) != regex)
            return lorac_fail(err, LORAC_EINVAL, "%s: target_modules is a regex in one adapter and a list in another; "
                              "they cannot be combined (as PEFT)", src_of(ads[i]));
        if (x->n_layers_to_transform != c->n_layers_to_transform ||
            memcmp(x->layers_to_transform, c->layers_to_transform, (size_t)x->n_layers_to_transform * sizeof(int)))
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: layers_to_transform differs from the first adapter's; "
                              "lorac combines only adapters with the same layer filter", src_of(ads[i]));
        if (x->bias != PEFT_BIAS_NONE || x->n_modules_to_save)
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: adapters with trainable biases or modules_to_save cannot be "
                              "combined", src_of(ads[i]));
        if (regex) {
            size_t len = strlen(c->target_regex);
            int w = snprintf(c->target_regex + len, sizeof c->target_regex - len, "%s(%s)", len ? "|" : "", x->target_regex);
            if (w < 0 || (size_t)w >= sizeof c->target_regex - len)
                return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: the combined target_modules regex is too long", src_of(ads[i]));
            continue;
        }
        for (int t = 0; t < x->n_targets; t++) {
            int seen = 0;
            for (int u = 0; u < c->n_targets && !seen; u++) seen = !strcmp(c->target_modules[u], x->target_modules[t]);
            if (seen) continue;
            if (c->n_targets == PEFT_MAX_TARGETS)
                return lorac_fail(err, LORAC_EUNSUPPORTED, "combine: more than %d target modules", PEFT_MAX_TARGETS);
            snprintf(c->target_modules[c->n_targets++], sizeof c->target_modules[0], "%s", x->target_modules[t]);
        }
    }
    return LORAC_OK;
}

/* A rank_pattern/alpha_pattern key for one module: PEFT 0.10 matches keys as ".*\.key$", so the
 * module path without its first component ("h.0.attn.c_attn"). */
static void pattern_key(const char *module, char *key, size_t size) {
    const char *dot = strchr(module, '.');
    snprintf(key, size, "%s", dot ? dot + 1 : module);
}

typedef struct contrib {
    const peft_module *m;
    double ws; /* w_i · s_i */
} contrib;

/* One module of the output from its contributions. */
static int combine_module(peft_adapter *out, const char *module, const contrib *cs, int nc, peft_combine_mode mode,
                          int k, int *rank, double *kept, double *total, lorac_err *err) {
    const peft_module *f = cs[0].m;
    int64_t in = f->A->shape[1], outd = f->B->shape[0];
    int R = 0;
    for (int i = 0; i < nc; i++) {
        const peft_module *m = cs[i].m;
        if (m->embedding != f->embedding || m->A->shape[1] != in || m->B->shape[0] != outd)
            return lorac_fail(err, LORAC_ESHAPE, "combine: module '%s' has shape [%lld, %lld] in one adapter and [%lld, %lld] "
                              "in another (adapters for different bases?)", module, (long long)outd, (long long)in,
                              (long long)m->B->shape[0], (long long)m->A->shape[1]);
        if (mode == PEFT_COMBINE_LINEAR && m->A->shape[0] != f->A->shape[0])
            return lorac_fail(err, LORAC_EINVAL, "combine: linear needs equal ranks, and module '%s' has ranks %lld and %lld "
                              "(use cat or svd)", module, (long long)f->A->shape[0], (long long)m->A->shape[0]);
        if (mode == PEFT_COMBINE_LINEAR && cs[i].ws < 0)
            return lorac_fail(err, LORAC_EINVAL, "combine: linear takes sqrt(weight·scaling), and module '%s' has a negative "
                              "weight (use cat or svd)", module);
        R += (int)m->A->shape[0];
    }
    int r = mode == PEFT_COMBINE_CAT ? R : mode == PEFT_COMBINE_LINEAR ? (int)f->A->shape[0] : k;
    float *A = calloc((size_t)r * in, sizeof(float)), *B = calloc((size_t)outd * r, sizeof(float));
    double *Bd = NULL, *Ad = NULL;
    int rc = (!A || !B) ? lorac_fail(err, LORAC_ENOMEM, "combine: out of memory for module '%s'", module) : LORAC_OK;
    if (!rc && mode == PEFT_COMBINE_LINEAR) {
        for (int i = 0; i < nc; i++) {
            float c = (float)sqrt(cs[i].ws);
            for (size_t j = 0; j < (size_t)r * in; j++) A[j] += c * cs[i].m->A->data[j];
            for (size_t j = 0; j < (size_t)outd * r; j++) B[j] += c * cs[i].m->B->data[j];
        }
    } else if (!rc) {
        /* cat: rows of w_i·s_i·A_i stacked, columns of B_i side by side (B·A = Σ w_i·s_i·B_i·A_i) */
        int off = 0;
        if (mode == PEFT_COMBINE_SVD) {
            Bd = malloc((size_t)outd * R * sizeof(double));
            Ad = malloc((size_t)R * in * sizeof(double));
            if (!Bd || !Ad) rc = lorac_fail(err, LORAC_ENOMEM, "combine: out of memory for module '%s'", module);
        }
        for (int i = 0; i < nc && !rc; i++) {
            const peft_module *m = cs[i].m;
            int ri = (int)m->A->shape[0];
            for (int a = 0; a < ri; a++)
                for (int64_t j = 0; j < in; j++) {
                    float x = m->A->data[(size_t)a * in + j];
                    if (Ad) Ad[(size_t)(off + a) * in + j] = cs[i].ws * x;
                    else A[(size_t)(off + a) * in + j] = (float)(cs[i].ws * x);
                }
            for (int64_t o = 0; o < outd; o++)
                for (int a = 0; a < ri; a++) {
                    float x = m->B->data[(size_t)o * ri + a];
                    if (Bd) Bd[(size_t)o * R + off + a] = x;
                    else B[(size_t)o * r + off + a] = x;
                }
            off += ri;
        }
        if (!rc && mode == PEFT_COMBINE_SVD) {
            double kp = 0, tot = 0;
            char what[300];
            snprintf(what, sizeof what, "combine: module '%s'", module);
            rc = lora_lowrank_svd(Bd, Ad, (int)outd, R, (int)in, k, B, A, &kp, &tot, what, err);
            *kept += kp;
            *total += tot;
        }
    }
    if (!rc) rc = peft_adapter_add(out, f->A->name, r, in, A, err);
    if (!rc) rc = peft_adapter_add(out, f->B->name, outd, r, B, err);
    *rank = r;
    free(A); free(B); free(Bd); free(Ad);
    return rc;
}

int peft_adapter_combine(peft_adapter *const *ads, const float *weights, int n, peft_combine_mode mode, int svd_rank,
                         peft_adapter **out, double *energy_kept, lorac_err *err) {
    *out = NULL;
    if (n < 1) return lorac_fail(err, LORAC_EINVAL, "combine: no adapters given");
    if (mode != PEFT_COMBINE_CAT && mode != PEFT_COMBINE_SVD && mode != PEFT_COMBINE_LINEAR)
        return lorac_fail(err, LORAC_EINVAL, "combine: unknown mode %d", (int)mode);
    for (int i = 0; i < n; i++)
        if (!isfinite(weights[i])) return lorac_fail(err, LORAC_EINVAL, "combine: weight %d is not a finite number", i);
    peft_config *c = malloc(sizeof *c);
    peft_module **mods = calloc((size_t)n, sizeof *mods);
    size_t *nm = calloc((size_t)n, sizeof *nm), total_mods = 0;
    int rc = (!c || !mods || !nm) ? lorac_fail(err, LORAC_ENOMEM, "combine: out of memory") : LORAC_OK;
    if (!rc) {
        *c = ads[0]->cfg;
        c->n_warnings = c->n_rank_pattern = c->n_alpha_pattern = 0;
        c->use_rslora = 0;
        rc = combine_targets(ads, n, c, err);
    }
    int kmax = 0;
    for (int i = 0; i < n && !rc; i++) {
        rc = peft_adapter_modules(ads[i], &mods[i], &nm[i], err);
        total_mods += nm[i];
        for (size_t j = 0; !rc && j < nm[i]; j++)
            if (mods[i][j].A->shape[0] > kmax) kmax = (int)mods[i][j].A->shape[0];
    }
    int k = svd_rank > 0 ? svd_rank : kmax;
    peft_adapter *o = NULL;
    if (!rc) rc = peft_adapter_new(c, &o, err);
    contrib *cs = rc ? NULL : calloc((size_t)n, sizeof *cs);
    int *ranks = rc ? NULL : calloc(total_mods + 1, sizeof *ranks);
    const char **names = rc ? NULL : calloc(total_mods + 1, sizeof *names);
    if (!rc && (!cs || !ranks || !names)) rc = lorac_fail(err, LORAC_ENOMEM, "combine: out of memory");
    size_t nu = 0;
    double kept = 0, total = 0;
    /* modules in first-seen order over the inputs */
    for (int i = 0; i < n && !rc; i++)
        for (size_t j = 0; j < nm[i] && !rc; j++) {
            const char *module = mods[i][j].module;
            int seen = 0;
            for (size_t u = 0; u < nu && !seen; u++) seen = !strcmp(names[u], module);
            if (seen) continue;
            int nc = 0;
            for (int q = i; q < n; q++)
                for (size_t t = 0; t < nm[q]; t++)
                    if (!strcmp(mods[q][t].module, module)) {
                        cs[nc].m = &mods[q][t];
                        cs[nc++].ws = (double)weights[q] * mods[q][t].scaling;
                    }
            names[nu] = module;
            rc = combine_module(o, module, cs, nc, mode, k, &ranks[nu], &kept, &total, err);
            nu++;
        }
    if (!rc) { /* the most common rank is r; the others go to rank_pattern (alpha = rank: scaling 1) */
        int best = ranks[0], best_n = 0;
        for (size_t u = 0; u < nu; u++) {
            int cnt = 0;
            for (size_t v = 0; v < nu; v++) cnt += ranks[v] == ranks[u];
            if (cnt > best_n) best = ranks[u], best_n = cnt;
        }
        o->cfg.r = best;
        o->cfg.lora_alpha = best;
        for (size_t u = 0; u < nu && !rc; u++) {
            if (ranks[u] == best) continue;
            if (o->cfg.n_rank_pattern == PEFT_MAX_PATTERNS) {
                rc = lorac_fail(err, LORAC_EUNSUPPORTED, "combine: more than %d modules with their own rank", PEFT_MAX_PATTERNS);
                break;
            }
            int q = o->cfg.n_rank_pattern++;
            o->cfg.n_alpha_pattern++;
            pattern_key(names[u], o->cfg.rank_pattern[q].key, sizeof o->cfg.rank_pattern[q].key);
            pattern_key(names[u], o->cfg.alpha_pattern[q].key, sizeof o->cfg.alpha_pattern[q].key);
            o->cfg.rank_pattern[q].value = o->cfg.alpha_pattern[q].value = ranks[u];
        }
    }
    if (energy_kept) *energy_kept = mode != PEFT_COMBINE_SVD || total == 0 ? 1.0 : kept / total;
    for (int i = 0; mods && i < n; i++) free(mods[i]);
    free(mods); free(nm); free(c); free(cs); free(ranks); free(names);
    if (rc) peft_adapter_free(o);
    else *out = o;
    return rc;
}

int peft_adapter_spec_parse(const char *spec, char *dir, size_t dir_size, float *scale, lorac_err *err) {
    *scale = 1.0f;
    const char *colon = strrchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    if (colon) {
        char *end;
        double v = strtod(colon + 1, &end);
        if (end == colon + 1 || *end || !isfinite(v) || fabs(v) > 1e30)
            return lorac_fail(err, LORAC_EINVAL, "--adapter '%s': scale '%s' after the last ':' is not a number "
                              "(DIR or DIR:SCALE)", spec, colon + 1);
        *scale = (float)v;
    }
    if (n == 0) return lorac_fail(err, LORAC_EINVAL, "--adapter '%s': no directory", spec);
    if (n >= dir_size) return lorac_fail(err, LORAC_EINVAL, "--adapter '%.60s...': the path is too long", spec);
    memcpy(dir, spec, n);
    dir[n] = 0;
    return LORAC_OK;
}

int peft_adapters_load_weighted(const char *const *specs, int n, peft_adapter **out, char *warn, size_t warn_size,
                                lorac_err *err) {
    return peft_adapters_load_weighted_with(specs, n, NULL, NULL, out, warn, warn_size, err);
}

int peft_adapters_load_weighted_with(const char *const *specs, int n, peft_reader read, const void *ctx,
                                     peft_adapter **out, char *warn, size_t warn_size, lorac_err *err) {
    *out = NULL;
    if (warn && warn_size) warn[0] = 0;
    if (n < 1) return lorac_fail(err, LORAC_EINVAL, "--adapter: no adapter given");
    peft_adapter **ads = calloc((size_t)n, sizeof *ads);
    float *w = calloc((size_t)n, sizeof *w);
    if (!ads || !w) {
        free(ads);
        free(w);
        return lorac_fail(err, LORAC_ENOMEM, "--adapter: out of memory");
    }
    int rc = LORAC_OK;
    char dir[4096];
    for (int i = 0; i < n && !rc; i++) rc = peft_adapter_spec_parse(specs[i], dir, sizeof dir, &w[i], err);
    for (int i = 0; i < n && !rc; i++) { /* every spec parses before any directory is read */
        peft_adapter_spec_parse(specs[i], dir, sizeof dir, &w[i], NULL);
        size_t len = warn ? strlen(warn) : 0;
        char *w_at = warn ? warn + len : NULL;
        size_t w_size = warn ? warn_size - len : 0;
        rc = read ? read(ctx, dir, &ads[i], w_at, w_size, err) : peft_adapter_read(dir, &ads[i], w_at, w_size, err);
    }
    if (!rc && n == 1) { /* one adapter: scale its B tensors, keeping its layout (e.g. a q,v split) */
        if (w[0] != 1.0f)
            for (size_t t = 0; t < ads[0]->n; t++) {
                const char *nm = ads[0]->t[t].name;
                size_t len = strlen(nm);
                int isB = (len > 14 && !strcmp(nm + len - 14, ".lora_B.weight")) ||
                          (len > 17 && !strcmp(nm + len - 17, ".lora_embedding_B"));
                for (size_t j = 0; isB && j < (size_t)(ads[0]->t[t].shape[0] * ads[0]->t[t].shape[1]); j++)
                    ads[0]->t[t].data[j] *= w[0];
            }
        *out = ads[0];
        ads[0] = NULL;
    } else if (!rc) {
        rc = peft_adapter_combine(ads, w, n, PEFT_COMBINE_CAT, 0, out, NULL, err);
    }
    for (int i = 0; i < n; i++) peft_adapter_free(ads[i]);
    free(ads);
    free(w);
    return rc;
}
