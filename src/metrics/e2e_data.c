/* e2e_data.c — reading E2E references and hypotheses into a metrics_corpus, and scoring it. */
#include <stdlib.h>
#include <string.h>

#include "metrics_internal.h"

/* A growable array of strings. */
typedef struct strvec {
    char **v;
    size_t n, cap;
} strvec;

static int strvec_push(strvec *s, const char *p, size_t n, lorac_err *err) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256, bytes;
        if (lorac_size_mul(cap, sizeof(char *), &bytes)) return lorac_fail(err, LORAC_ENOMEM, "metrics: too many lines");
        char **v = realloc(s->v, bytes);
        if (!v) return lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory");
        s->v = v;
        s->cap = cap;
    }
    char *c = malloc(n + 1);
    if (!c) return lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory");
    memcpy(c, p, n);
    c[n] = 0;
    s->v[s->n++] = c;
    return LORAC_OK;
}

static void strvec_free(strvec *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Checks that buf[0..n) is UTF-8 without NUL bytes; names the first bad line. */
static int check_utf8(const char *path, const unsigned char *b, size_t n, lorac_err *err) {
    size_t line = 1;
    for (size_t i = 0; i < n;) {
        unsigned char c = b[i];
        if (c == '\n') { line++; i++; continue; }
        if (c == 0) return lorac_fail(err, LORAC_EFORMAT, "%s: line %zu: contains a NUL byte", path, line);
        if (c < 0x80) { i++; continue; }
        size_t len;
        unsigned int cp;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else return lorac_fail(err, LORAC_EFORMAT, "%s: line %zu: invalid UTF-8 (byte 0x%02X)", path, line, c);
        if (i + len > n) return lorac_fail(err, LORAC_EFORMAT, "%s: line %zu: invalid UTF-8 (truncated character)", path, line);
        for (size_t k = 1; k < len; k++) {
            if ((b[i + k] & 0xC0) != 0x80)
                return lorac_fail(err, LORAC_EFORMAT, "%s: line %zu: invalid UTF-8 (byte 0x%02X)", path, line, b[i + k]);
            cp = (cp << 6) | (b[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return lorac_fail(err, LORAC_EFORMAT, "%s: line %zu: invalid UTF-8 (overlong or surrogate)", path, line);
        i += len;
    }
    return LORAC_OK;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

/* Splits [p, e) at the next '\n'; returns the stripped line in [*ls, *le) and the next start. */
static const char *next_line(const char *p, const char *e, const char **ls, const char **le) {
    const char *nl = memchr(p, '\n', (size_t)(e - p));
    const char *end = nl ? nl : e;
    while (p < end && is_space(*p)) p++;
    const char *q = end;
    while (q > p && is_space(q[-1])) q--;
    *ls = p;
    *le = q;
    return nl ? nl + 1 : e;
}

/* Reads a whole text file, rejecting unreadable, empty (no bytes; with blank_ok 0, also only
 * whitespace) and non-UTF-8 files. */
static int read_text(const char *path, int blank_ok, char **data, size_t *n, lorac_err *err) {
    int rc = lorac_read_file(path, data, n, err);
    if (rc) return rc;
    rc = check_utf8(path, (const unsigned char *)*data, *n, err);
    size_t i = 0;
    while (!rc && !blank_ok && i < *n && is_space((*data)[i])) i++;
    if (!rc && i == *n) rc = lorac_fail(err, LORAC_EFORMAT, "%s: empty file", path);
    if (rc) { free(*data); *data = NULL; }
    return rc;
}

/* References into refs, group starts into starts (one entry per group plus the end). */
static int read_refs(const char *path, strvec *refs, size_t **starts, size_t *n_groups, lorac_err *err) {
    char *data;
    size_t n;
    int rc = read_text(path, 0, &data, &n, err);
    if (rc) return rc;
    const char *p = data, *e = data + n, *ls, *le;
    /* the format: E2E context||reference if the first non-blank line has "||" */
    int e2e = 0;
    for (const char *q = p; q < e;) {
        q = next_line(q, e, &ls, &le);
        if (ls == le) continue;
        for (const char *x = ls; x + 1 < le; x++) if (x[0] == '|' && x[1] == '|') { e2e = 1; break; }
        break;
    }
    size_t cap = 256, ng = 0, line = 0;
    size_t *st = malloc(cap * sizeof *st);
    if (!st) rc = lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory");
    const char *prev_ctx = NULL;
    size_t prev_ctx_len = 0;
    int in_block = 0;
    while (!rc && p < e) {
        p = next_line(p, e, &ls, &le);
        line++;
        if (ls == le) { in_block = 0; continue; }
        const char *rs = ls;
        int new_group;
        if (e2e) {
            const char *sep = NULL;
            for (const char *x = ls; x + 1 < le; x++) if (x[0] == '|' && x[1] == '|') { sep = x; break; }
            if (!sep) { rc = lorac_fail(err, LORAC_EFORMAT, "%s: line %zu: no '||' (expected context||reference)", path, line); break; }
            size_t cl = (size_t)(sep - ls);
            new_group = !prev_ctx || cl != prev_ctx_len || memcmp(prev_ctx, ls, cl);
            prev_ctx = ls;
            prev_ctx_len = cl;
            rs = sep + 2;
            while (rs < le && is_space(*rs)) rs++;
        } else {
            new_group = !in_block;
            in_block = 1;
        }
        if (new_group) {
            if (ng + 2 > cap) {
                size_t *s2 = NULL;
                if (!lorac_size_mul(cap, 2, &cap)) s2 = realloc(st, cap * sizeof *st);
                if (!s2) { rc = lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory"); break; }
                st = s2;
            }
            st[ng++] = refs->n;
        }
        rc = strvec_push(refs, rs, (size_t)(le - rs), err);
    }
    free(data);
    if (rc) { free(st); return rc; }
    st[ng] = refs->n;
    *starts = st;
    *n_groups = ng;
    return LORAC_OK;
}

static int read_hyps(const char *path, strvec *hyps, lorac_err *err) {
    char *data;
    size_t n;
    int rc = read_text(path, 1, &data, &n, err);
    if (rc) return rc;
    /* every line is one input's hypothesis, a blank one included (a model may end at once), the
     * file's last newline ending the last line; blank lines past the inputs are dropped by the caller */
    const char *p = data, *e = data + n, *ls, *le;
    while (!rc && p < e) {
        p = next_line(p, e, &ls, &le);
        rc = strvec_push(hyps, ls, (size_t)(le - ls), err);
    }
    free(data);
    return rc;
}

int metrics_read_corpus(const char *refs_path, const char *hyps_path, metrics_corpus *c, lorac_err *err) {
    memset(c, 0, sizeof *c);
    strvec refs = {0}, hyps = {0};
    size_t *starts = NULL, ng = 0;
    int rc = read_refs(refs_path, &refs, &starts, &ng, err);
    if (!rc) rc = read_hyps(hyps_path, &hyps, err);
    while (!rc && hyps.n > ng && !hyps.v[hyps.n - 1][0]) free(hyps.v[--hyps.n]); /* trailing blank lines */
    if (!rc && hyps.n != ng)
        rc = lorac_fail(err, LORAC_EFORMAT, "%s has %zu lines but %s has %zu reference groups", hyps_path, hyps.n,
                        refs_path, ng);
    if (rc) {
        strvec_free(&refs);
        strvec_free(&hyps);
        free(starts);
        return rc;
    }
    c->n = ng;
    c->hyps = hyps.v;
    c->refs = refs.v;
    c->ref_start = starts;
    return LORAC_OK;
}

int metrics_corpus_from_strings(metrics_corpus *c, size_t n, const char *const *hyps, const size_t *refs_per_input,
                                const char *const *refs, lorac_err *err) {
    memset(c, 0, sizeof *c);
    strvec h = {0}, r = {0};
    size_t bytes;
    int rc = LORAC_OK;
    if (lorac_size_mul(n + 1, sizeof(size_t), &bytes) || !(c->ref_start = malloc(bytes)))
        return lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory");
    c->ref_start[0] = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (refs_per_input[i] == 0) rc = lorac_fail(err, LORAC_EINVAL, "metrics: input %zu has no references", i);
        else rc = strvec_push(&h, hyps[i], strlen(hyps[i]), err);
        for (size_t k = 0; k < refs_per_input[i] && !rc; k++) {
            const char *s = refs[c->ref_start[i] + k];
            rc = strvec_push(&r, s, strlen(s), err);
        }
        c->ref_start[i + 1] = c->ref_start[i] + refs_per_input[i];
    }
    if (rc) {
        strvec_free(&h);
        strvec_free(&r);
        free(c->ref_start);
        c->ref_start = NULL;
        return rc;
    }
    c->n = n;
    c->hyps = h.v;
    c->refs = r.v;
    return LORAC_OK;
}

void metrics_corpus_free(metrics_corpus *c) {
    if (c->hyps) for (size_t i = 0; i < c->n; i++) free(c->hyps[i]);
    if (c->refs && c->ref_start) for (size_t i = 0; i < c->ref_start[c->n]; i++) free(c->refs[i]);
    free(c->hyps);
    free(c->refs);
    free(c->ref_start);
    memset(c, 0, sizeof *c);
}

int metrics_score_corpus(const metrics_corpus *c, metrics_scores *s, lorac_err *err) {
    if (c->n == 0) return lorac_fail(err, LORAC_EINVAL, "metrics: no inputs to score");
    int rc = metrics_compute_bleu(c, &s->bleu, err);
    if (!rc) rc = metrics_compute_nist(c, &s->nist, err);
    if (!rc) rc = metrics_compute_meteor_es(c, &s->meteor_es, NULL, err);
    if (!rc) rc = metrics_compute_rouge_l(c, &s->rouge_l, err);
    if (!rc) rc = metrics_compute_cider(c, &s->cider, err);
    return rc;
}
