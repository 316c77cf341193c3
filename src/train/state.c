/* The resumable training state: params, AdamW moments, counters, rng and data position, stored as
 * one safetensors file (tensors F32 (n); everything else as __metadata__ strings). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/safetensors.h"
#include "lorac/train.h"

#define STATE_FORMAT "lorac-train-state"
#define STATE_VERSION "1"

int train_state_save(const char *path, const train_state *st, const float *params,
                     const adamw_state *opt, const char *options, lorac_err *err) {
    if (!opt->m || !opt->v || opt->n == 0)
        return lorac_fail(err, LORAC_EINVAL, "%s: the optimizer has no state to save", path);
    if (opt->t != st->step)
        return lorac_fail(err, LORAC_EINVAL, "%s: optimizer step %lld differs from the run's step %lld", path,
                          opt->t, st->step);
    if (opt->n > (size_t)INT64_MAX) return lorac_fail(err, LORAC_EINVAL, "%s: too many parameters", path);
    st_entry e[3];
    memset(e, 0, sizeof e);
    const char *names[3] = {"train.params", "adamw.m", "adamw.v"};
    const float *data[3] = {params, opt->m, opt->v};
    for (int i = 0; i < 3; i++) {
        e[i].name = names[i];
        e[i].dtype = ST_F32;
        e[i].out_dtype = ST_F32;
        e[i].ndim = 1;
        e[i].shape[0] = (int64_t)opt->n;
        e[i].data = data[i];
    }
    char step[32], epoch[32], batch[32], seed[32], rng[80], elapsed[40], tokens[32], n_params[32];
    snprintf(step, sizeof step, "%lld", st->step);
    snprintf(epoch, sizeof epoch, "%lld", st->epoch);
    snprintf(batch, sizeof batch, "%lld", st->batch);
    snprintf(seed, sizeof seed, "%" PRIu64, st->seed);
    snprintf(rng, sizeof rng, "%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64, st->rng.s[0],
             st->rng.s[1], st->rng.s[2], st->rng.s[3]);
    snprintf(elapsed, sizeof elapsed, "%.17g", st->elapsed_s);
    snprintf(tokens, sizeof tokens, "%lld", st->tokens);
    snprintf(n_params, sizeof n_params, "%zu", opt->n);
    const char *keys[11] = {"format", "version", "step", "epoch", "batch", "seed", "rng",
                            "elapsed_s", "tokens", "n_params", "options"};
    const char *vals[11] = {STATE_FORMAT, STATE_VERSION, step, epoch, batch, seed, rng,
                            elapsed, tokens, n_params, options};
    return st_write(path, e, 3, keys, vals, options ? 11 : 10, err);
}

/* A metadata value parsed as a whole signed integer >= 0. */
static int meta_ll(const st_file *f, const char *key, long long *out, lorac_err *err) {
    const char *s = st_meta(f, key);
    if (!s) return lorac_fail(err, LORAC_EFORMAT, "%s: metadata \"%s\" is missing", f->path, key);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        return lorac_fail(err, LORAC_EFORMAT, "%s: metadata \"%s\" is not a count: \"%.40s\"", f->path, key, s);
    *out = v;
    return LORAC_OK;
}

static int meta_u64(const char *s, int base, uint64_t *out) {
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-' || *s == ' ') return -1;
    unsigned long long v = strtoull(s, &end, base);
    if (errno || end == s) return -1;
    *out = v;
    return (int)(end - s);
}

static const st_tensor *state_tensor(const st_file *f, const char *name, size_t n, int *rc, lorac_err *err) {
    if (*rc) return NULL;
    const st_tensor *t = st_find(f, name);
    if (!t) *rc = lorac_fail(err, LORAC_EFORMAT, "%s: tensor \"%s\" is missing", f->path, name);
    else if (t->dtype != ST_F32 || t->ndim != 1 || t->numel != n)
        *rc = lorac_fail(err, LORAC_ESHAPE, "%s: tensor \"%s\" is %s with %zu values; expected F32 (%zu)",
                         f->path, name, st_dtype_name(t->dtype), t->numel, n);
    return t;
}

int train_state_load(const char *path, train_state *st, float *params, adamw_state *opt,
                     const char *options, lorac_err *err) {
    st_file f;
    int rc = st_open(path, &f, err);
    if (rc) return rc;
    train_state s;
    memset(&s, 0, sizeof s);
    const char *fmt = st_meta(&f, "format"), *ver = st_meta(&f, "version");
    long long n_params = 0;
    if (!fmt || strcmp(fmt, STATE_FORMAT) != 0)
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: not a lorac training state (metadata format is not \"%s\")",
                        path, STATE_FORMAT);
    else if (!ver || strcmp(ver, STATE_VERSION) != 0)
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: training state version \"%s\" is not supported (want %s)",
                        path, ver ? ver : "(none)", STATE_VERSION);
    if (!rc) rc = meta_ll(&f, "step", &s.step, err);
    if (!rc) rc = meta_ll(&f, "epoch", &s.epoch, err);
    if (!rc) rc = meta_ll(&f, "batch", &s.batch, err);
    if (!rc) rc = meta_ll(&f, "tokens", &s.tokens, err);
    if (!rc) rc = meta_ll(&f, "n_params", &n_params, err);
    if (!rc && (uint64_t)n_params != (uint64_t)opt->n)
        rc = lorac_fail(err, LORAC_ESHAPE, "%s: holds %lld trainable parameters; this model has %zu", path,
                        n_params, opt->n);
    if (!rc) {
        const char *seed = st_meta(&f, "seed");
        int k = meta_u64(seed, 10, &s.seed);
        if (k < 0 || seed[k]) rc = lorac_fail(err, LORAC_EFORMAT, "%s: metadata \"seed\" is malformed", path);
    }
    if (!rc) {
        const char *r = st_meta(&f, "rng");
        int ok = r != NULL;
        for (int i = 0; i < 4 && ok; i++) {
            int k = meta_u64(r, 16, &s.rng.s[i]);
            ok = k == 16 && (i == 3 ? r[k] == '\0' : r[k] == ' ');
            if (ok) r += k + (i < 3);
        }
        if (!ok) rc = lorac_fail(err, LORAC_EFORMAT, "%s: metadata \"rng\" is not 4 hex words", path);
    }
    if (!rc) {
        const char *e = st_meta(&f, "elapsed_s");
        char *end = NULL;
        s.elapsed_s = e ? strtod(e, &end) : 0.0;
        if (!e || end == e || *end || !(s.elapsed_s >= 0.0))
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: metadata \"elapsed_s\" is malformed", path);
    }
    if (!rc && options) {
        const char *o = st_meta(&f, "options");
        if (!o || strcmp(o, options) != 0)
            rc = lorac_fail(err, LORAC_EINVAL, "%s: saved with other training options (%.300s) than this run's (%.300s)",
                            path, o ? o : "none recorded", options);
    }
    const st_tensor *tp = state_tensor(&f, "train.params", opt->n, &rc, err);
    const st_tensor *tm = state_tensor(&f, "adamw.m", opt->n, &rc, err);
    const st_tensor *tv = state_tensor(&f, "adamw.v", opt->n, &rc, err);
    /* everything is checked: only now copy (F32 → f32 cannot fail) */
    if (!rc) rc = st_read_f32(&f, tp, params, err);
    if (!rc) rc = st_read_f32(&f, tm, opt->m, err);
    if (!rc) rc = st_read_f32(&f, tv, opt->v, err);
    if (!rc) {
        opt->t = s.step;
        *st = s;
    }
    st_close(&f);
    return rc;
}
