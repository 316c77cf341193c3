/* meteor.c — METEOR 1.5 restricted to its exact and stem stages (the E2E scorer's METEOR runs all
 * four stages: exact, stem, WordNet synonyms, paraphrases; lorac has neither resource, so this is
 * NOT the official METEOR score; it equals meteor-1.5.jar run with -m "exact stem").
 *
 * Per input, on the COCO tokens (as pycocoevalcap feeds the jar):
 *   1. -norm: the jar's English normalizer (a Moses-tokenizer port) re-tokenizes each sentence.
 *   2. For each reference: all exact matches, then all stem matches between different words
 *      (Snowball English); matches unique on both sides are fixed; the rest is resolved by the
 *      jar's beam search (beam 40) over reference positions, ranking partial alignments by
 *      (int-truncated) weighted match count, then fewer chunks, then smaller position distance,
 *      with the jar's quirks kept (see path_take), since they change which alignment wins.
 *   3. Scored with alpha .85, beta .2, gamma .6, delta .75, stage weights 1.0 / 0.6; the best
 *      reference (first on ties) is kept.
 * Corpus score: the statistics summed over inputs (chunks of perfect matches not counted), scored
 * once, as the jar's EVAL does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_internal.h"

#define MET_ALPHA 0.85
#define MET_BETA 0.2
#define MET_GAMMA 0.6
#define MET_DELTA 0.75
#define MET_BEAM 40
#define MET_MODULES 2
static const double met_weights[MET_MODULES] = {1.0, 0.6};

/* ---------------------------------------------------------------- the -norm normalizer */

typedef struct ubuf {
    uint32_t *p;
    size_t n, cap;
    int oom;
} ubuf;

static void ub_put(ubuf *b, uint32_t c) {
    if (b->oom) return;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 128;
        uint32_t *q = realloc(b->p, cap * sizeof *q);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    b->p[b->n++] = c;
}
static void ub_puts(ubuf *b, const char *s) { while (*s) ub_put(b, (unsigned char)*s++); }
static void ub_swap(ubuf *a, ubuf *b) { ubuf t = *a; *a = *b; *b = t; b->n = 0; }

/* The normalizer's letter classes (Latin, Latin-1/Extended-A, Cyrillic, phonetic extensions). */
static int n_alpha(uint32_t c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == 0x160 || c == 0x17D || c == 0x161 || c == 0x17E ||
           c == 0x178 || (c >= 0xC0 && c <= 0xD6) || (c >= 0xD8 && c <= 0xF6) || (c >= 0xF8 && c <= 0x17E) ||
           (c >= 0x400 && c <= 0x4FF) || (c >= 0x500 && c <= 0x527) || (c >= 0xA640 && c <= 0xA66E) ||
           (c >= 0xA67E && c <= 0xA697) || (c >= 0x1D00 && c <= 0x1D7F);
}
static int n_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static int n_alnum(uint32_t c) { return n_digit(c) || n_alpha(c); }
static int n_space(uint32_t c) { return c == ' ' || c == '\t' || c == '\n' || c == 0x0B || c == '\f' || c == '\r'; }
static int n_not_alpha(uint32_t c) { return !n_alpha(c); }
static int n_not_digit(uint32_t c) { return !n_digit(c); }
static int n_not_alpha_digit(uint32_t c) { return !n_alpha(c) && !n_digit(c); }
static int n_alnum_dot(uint32_t c) { return n_alnum(c) || c == '.'; }
static int n_is_s(uint32_t c) { return c == 's'; }

/* Java's replaceAll of "([A])mid([B])" by "$1" repl "$2": left to right, without overlaps. */
static void sub3(ubuf *in, ubuf *out, int (*a)(uint32_t), uint32_t mid, int (*b)(uint32_t), const char *repl) {
    for (size_t i = 0; i < in->n;) {
        if (i + 2 < in->n && a(in->p[i]) && in->p[i + 1] == mid && b(in->p[i + 2])) {
            ub_put(out, in->p[i]);
            ub_puts(out, repl);
            ub_put(out, in->p[i + 2]);
            i += 3;
        } else {
            ub_put(out, in->p[i++]);
        }
    }
    ub_swap(in, out);
}

static void decode_utf8(const char *s, ubuf *b) {
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        uint32_t c = *u;
        int k = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
        if (k) c &= 0x3F >> k;
        u++;
        for (int i = 0; i < k && (*u & 0xC0) == 0x80; i++) c = (c << 6) | (*u++ & 0x3F);
        ub_put(b, c);
    }
}

static size_t encode_utf8(uint32_t c, char *o) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | (c >> 6)); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12)); o[1] = (char)(0x80 | ((c >> 6) & 0x3F)); o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18)); o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F)); o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Lowercase non-breaking prefixes of the jar's english.prefixes (value 2: only before a number);
 * the others are capitalized and cannot occur in lowercased text. */
static int nbp_value(const uint32_t *w, size_t n) {
    static const struct { const char *w; int v; } nbp[] = {{"v", 1}, {"vs", 1}, {"i.e", 1}, {"rev", 1}, {"e.g", 1}, {"pp", 2}};
    for (size_t k = 0; k < sizeof nbp / sizeof nbp[0]; k++) {
        size_t m = strlen(nbp[k].w), i = 0;
        if (m != n) continue;
        while (i < n && w[i] == (unsigned char)nbp[k].w[i]) i++;
        if (i == n) return nbp[k].v;
    }
    return 0;
}

/* Normalizes s as meteor-1.5.jar -l en -norm does and splits it into words: out receives the words
 * as one malloc'd buffer of NUL-separated strings, *n_words their count. */
static int meteor_normalize(const char *s, char **out, size_t *n_words, lorac_err *err) {
    ubuf a = {0}, b = {0};
    ub_put(&a, ' ');
    decode_utf8(s, &a);
    ub_put(&a, ' ');
    /* separate every symbol that is not a letter, digit, space or . ' ` , - ‘ ’ */
    for (size_t i = 0; i < a.n; i++) {
        uint32_t c = a.p[i];
        if (n_alnum(c) || n_space(c) || c == '.' || c == '\'' || c == '`' || c == ',' || c == '-' || c == 0x2018 || c == 0x2019) {
            ub_put(&b, c);
        } else {
            ub_put(&b, ' '); ub_put(&b, c); ub_put(&b, ' ');
        }
    }
    ub_swap(&a, &b);
    /* runs of two or more dots become a word of their own */
    for (size_t i = 0; i < a.n;) {
        size_t j = i;
        while (j < a.n && a.p[j] == '.') j++;
        if (j - i >= 2) {
            ub_put(&b, ' ');
            for (size_t k = i; k < j; k++) ub_put(&b, '.');
            if (j < a.n) ub_put(&b, ' ');
            i = j;
        } else {
            ub_put(&b, a.p[i++]);
        }
    }
    ub_swap(&a, &b);
    /* commas, unless between digits */
    sub3(&a, &b, n_not_digit, ',', n_not_digit, " , ");
    sub3(&a, &b, n_digit, ',', n_not_digit, " , ");
    sub3(&a, &b, n_not_digit, ',', n_digit, " , ");
    /* quotes and dashes */
    for (size_t i = 0; i < a.n; i++) if (a.p[i] == '`' || a.p[i] == 0x2018 || a.p[i] == 0x2019) a.p[i] = '\'';
    for (size_t i = 0; i < a.n;) {
        if (a.p[i] == 0x201C || a.p[i] == 0x201D) { ub_put(&b, '"'); i++; }
        else if (a.p[i] == '\'' && i + 1 < a.n && a.p[i + 1] == '\'') { ub_put(&b, '"'); i += 2; }
        else ub_put(&b, a.p[i++]);
    }
    ub_swap(&a, &b);
    for (size_t i = 0; i < a.n; i++) if (a.p[i] == 0x2013) a.p[i] = '-';
    for (size_t i = 0; i < a.n;) {
        ub_put(&b, a.p[i]);
        i += a.p[i] == '-' && i + 1 < a.n && a.p[i + 1] == '-' ? 2 : 1;
    }
    ub_swap(&a, &b);
    /* hyphens inside words become spaces */
    sub3(&a, &b, n_alnum_dot, '-', n_alnum, " ");
    /* English contractions */
    sub3(&a, &b, n_not_alpha, '\'', n_not_alpha, " ' ");
    sub3(&a, &b, n_not_alpha_digit, '\'', n_alpha, " ' ");
    sub3(&a, &b, n_alpha, '\'', n_not_alpha, " ' ");
    sub3(&a, &b, n_alpha, '\'', n_alpha, " '");
    sub3(&a, &b, n_digit, '\'', n_is_s, " '");
    /* words; a final period splits off unless the word is a non-breaking prefix */
    size_t nw = 0, cap_out = a.n * 5 + 8, on = 0;
    char *o = a.oom ? NULL : malloc(cap_out);
    if (!o || b.oom) {
        free(a.p); free(b.p); free(o);
        return lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory in METEOR");
    }
    size_t i = 0;
    while (i < a.n) {
        while (i < a.n && (n_space(a.p[i]) && a.p[i] != 0x0B)) i++;
        if (i >= a.n) break;
        size_t ws = i;
        while (i < a.n && !(n_space(a.p[i]) && a.p[i] != 0x0B)) i++;
        size_t we = i, wl = we - ws;
        /* the next word, for the lookahead */
        size_t j = i;
        while (j < a.n && (n_space(a.p[j]) && a.p[j] != 0x0B)) j++;
        int has_next = j < a.n;
        uint32_t next0 = has_next ? a.p[j] : 0;
        int split_dot = 0, drop_dots = 0;
        if (wl > 1 && a.p[we - 1] == '.') {
            const uint32_t *pre = a.p + ws;
            size_t pl = wl - 1;
            int inner_dot = 0, inner_alpha = 0;
            for (size_t k = 0; k < pl; k++) { inner_dot |= pre[k] == '.'; inner_alpha |= n_alpha(pre[k]); }
            int v = nbp_value(pre, pl);
            int next_digits = has_next && n_digit(next0);
            if (inner_dot && inner_alpha) drop_dots = 1; /* e.g. -> eg */
            else if (v == 1 || (has_next && next0 >= 'a' && next0 <= 'z')) split_dot = 0;
            else if (v == 2 && next_digits) split_dot = 0;
            else split_dot = 1;
        }
        for (size_t k = ws; k < we - (size_t)split_dot; k++) {
            if (drop_dots && a.p[k] == '.') continue;
            on += encode_utf8(a.p[k], o + on);
        }
        o[on++] = 0;
        nw++;
        if (split_dot) { o[on++] = '.'; o[on++] = 0; nw++; }
    }
    free(a.p);
    free(b.p);
    *out = o;
    *n_words = nw;
    return LORAC_OK;
}

/* ---------------------------------------------------------------- alignment */

/* METEOR's English function words (function/english.words in meteor-1.5.jar). */
static int is_function_word(const char *w) {
    static const char *const fw[] = {
        "the",   ",",     ".",    "to",   "of",    "and",   "a",     "in",   "that",  "for",  "\"",   "is",
        "on",    "'s",    "it",   "with", "was",   "as",    "said",  "at",   "he",    "by",   "be",   "from",
        "have",  "has",   "are",  "his",  "but",   "an",    "this",  "not",  "i",     "will", "\xE2\x80\x99",
        "they",  ")",     "-rrb-", "(",   "-lrb-", "who",   "their", "had",  "we",    "which", "were", "been",
        "more",  "or",    "s",    "its",  "would", "about", "new",   "one",  "after", "you",  "also", "up",
        "when",  "there", "than", "$",    "all",   "out",   "her",   "people", "she", "year", "two",  "-",
        "can",   "if",    "last", "first", "\xE2\x80\x9C", "over", "other", "\xE2\x80\x9D", "into", "some",
        "what",  "so",    "--",   "no",   "time",  "years", "could", "?",    "'t",    "\xE2\x80\x94", "'"};
    for (size_t k = 0; k < sizeof fw / sizeof fw[0]; k++) if (!strcmp(w, fw[k])) return 1;
    return 0;
}

typedef struct met_match {
    int ref, test, module; /* every exact or stem match covers one word on each side */
} met_match;

typedef struct met_path {
    int *match;        /* per reference position: index into the match list, or -1 */
    unsigned char *used_test, *used_ref;
    int weighted, chunks, idx, last_end, distance; /* weighted: int-truncated, as the jar keeps it */
} met_path;

typedef struct met_sent {
    char **w; /* words (pointers into one buffer) */
    char **stem;
    int *fn;  /* function word? */
    int n;
    char *buf, *stem_buf;
} met_sent;

static void met_sent_free(met_sent *s) {
    free(s->w); free(s->stem); free(s->fn); free(s->buf); free(s->stem_buf);
    memset(s, 0, sizeof *s);
}

static int met_sent_make(const char *text, met_sent *s, lorac_err *err) {
    memset(s, 0, sizeof *s);
    size_t nw = 0;
    int rc = meteor_normalize(text, &s->buf, &nw, err);
    if (rc) return rc;
    size_t blen = 0;
    for (size_t k = 0, off = 0; k < nw; k++) { size_t l = strlen(s->buf + off); off += l + 1; blen = off; }
    s->n = (int)nw;
    s->w = malloc((nw + 1) * sizeof *s->w);
    s->stem = malloc((nw + 1) * sizeof *s->stem);
    s->fn = malloc((nw + 1) * sizeof *s->fn);
    s->stem_buf = malloc(blen + 2 * nw + 1);
    if (!s->w || !s->stem || !s->fn || !s->stem_buf) { met_sent_free(s); return lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory in METEOR"); }
    for (size_t k = 0, off = 0, soff = 0; k < nw; k++) {
        s->w[k] = s->buf + off;
        s->fn[k] = is_function_word(s->w[k]);
        s->stem[k] = s->stem_buf + soff;
        mt_stem_english(s->w[k], s->stem[k]);
        soff += strlen(s->stem[k]) + 1;
        off += strlen(s->w[k]) + 1;
    }
    return LORAC_OK;
}

/* Sufficient statistics of one alignment (or a sum of them). */
typedef struct met_stats {
    double test_len, ref_len, test_fn, ref_fn;
    double test_content[MET_MODULES], ref_content[MET_MODULES], test_function[MET_MODULES], ref_function[MET_MODULES];
    double test_matches, ref_matches, chunks;
} met_stats;

static double met_score(const met_stats *s) {
    double tlen = MET_DELTA * (s->test_len - s->test_fn) + (1 - MET_DELTA) * s->test_fn;
    double rlen = MET_DELTA * (s->ref_len - s->ref_fn) + (1 - MET_DELTA) * s->ref_fn;
    double tw = 0, rw = 0;
    for (int m = 0; m < MET_MODULES; m++) tw += s->test_content[m] * met_weights[m] * MET_DELTA;
    for (int m = 0; m < MET_MODULES; m++) rw += s->ref_content[m] * met_weights[m] * MET_DELTA;
    for (int m = 0; m < MET_MODULES; m++) tw += s->test_function[m] * met_weights[m] * (1 - MET_DELTA);
    for (int m = 0; m < MET_MODULES; m++) rw += s->ref_function[m] * met_weights[m] * (1 - MET_DELTA);
    double p = tw / tlen, r = rw / rlen;
    double fmean = 1.0 / ((1 - MET_ALPHA) / p + MET_ALPHA / r);
    double frag = s->test_matches == s->test_len && s->ref_matches == s->ref_len && s->chunks == 1
                      ? 0.0 : s->chunks / ((s->test_matches + s->ref_matches) / 2.0);
    double score = fmean * (1 - MET_GAMMA * pow(frag, MET_BETA));
    return isnan(score) ? 0.0 : fmax(score, 0.0);
}

/* The jar's partial-alignment order: more weighted matches, then fewer chunks, then less distance. */
static int path_cmp(const met_path *a, const met_path *b) {
    if (a->weighted != b->weighted) return a->weighted > b->weighted ? -1 : 1;
    if (a->chunks != b->chunks) return a->chunks - b->chunks;
    return a->distance - b->distance;
}

/* Stable merge sort of path pointers (Java's Collections.sort is stable). */
static void path_sort(met_path **v, met_path **tmp, size_t n) {
    if (n < 2) return;
    size_t h = n / 2;
    path_sort(v, tmp, h);
    path_sort(v + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = path_cmp(v[j], v[i]) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

typedef struct met_ctx {
    const met_sent *t, *r;
    met_match *m;
    int nm;
    int *first, *count; /* matches of reference position i: m[first[i] .. first[i]+count[i]) */
} met_ctx;

static met_path *path_new(const met_ctx *c) {
    size_t R = (size_t)c->r->n, T = (size_t)c->t->n;
    met_path *p = calloc(1, sizeof *p + R * sizeof(int) + R + T + 2);
    if (!p) return NULL;
    p->match = (int *)(p + 1);
    p->used_ref = (unsigned char *)(p->match + R);
    p->used_test = p->used_ref + R;
    for (size_t i = 0; i < R; i++) p->match[i] = -1;
    p->last_end = -1;
    return p;
}

static met_path *path_copy(const met_ctx *c, const met_path *q) {
    met_path *p = path_new(c);
    if (!p) return NULL;
    size_t R = (size_t)c->r->n, T = (size_t)c->t->n;
    int *match = p->match;
    unsigned char *ur = p->used_ref, *ut = p->used_test;
    *p = *q;
    p->match = match; p->used_ref = ur; p->used_test = ut;
    memcpy(p->match, q->match, R * sizeof(int));
    memcpy(p->used_ref, q->used_ref, R);
    memcpy(p->used_test, q->used_test, T);
    return p;
}

/* Extends p by match m. The distance goes to dist_to: the jar adds a new branch's distance to the
 * path it branched from (so to later siblings and the skip path), not to the branch itself. */
static void path_take(met_path *p, const met_match *m, met_path *dist_to) {
    p->weighted = (int)((double)p->weighted + 1.0 * met_weights[m->module]); /* matches1, truncated */
    p->weighted = (int)((double)p->weighted + 1.0 * met_weights[m->module]); /* matches2, truncated */
    if (p->last_end != -1 && m->test != p->last_end) p->chunks++;
    p->idx = m->ref + 1;
    p->last_end = m->test + 1;
    dist_to->distance += abs(m->ref - m->test);
}

/* Aligns test t with reference r and fills the statistics. */
static int meteor_align(const met_sent *t, const met_sent *r, met_stats *st, lorac_err *err) {
    int T = t->n, R = r->n, rc = LORAC_OK;
    met_ctx c = {t, r, NULL, 0, NULL, NULL};
    c.m = malloc(((size_t)T * (size_t)R + 1) * sizeof *c.m);
    c.first = calloc((size_t)R + 1, sizeof(int));
    c.count = calloc((size_t)R + 1, sizeof(int));
    int *cov_t = calloc((size_t)T + 1, sizeof(int)), *cov_r = calloc((size_t)R + 1, sizeof(int));
    met_path **cur = NULL, **next = NULL, **tmp = NULL;
    size_t ncur = 0, nnext = 0, cap = 0;
    if (!c.m || !c.first || !c.count || !cov_t || !cov_r) { rc = lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory in METEOR"); goto done; }
    /* identical sentences: the jar runs the exact stage only */
    int same = T == R;
    for (int i = 0; same && i < T; i++) same = !strcmp(t->w[i], r->w[i]);
    /* all matches, grouped by reference position in the jar's order (stage, then test position) */
    {
        met_match *tmpm = malloc(((size_t)T * (size_t)R + 1) * sizeof *tmpm);
        if (!tmpm) { rc = lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory in METEOR"); goto done; }
        int nt = 0;
        for (int mod = 0; mod < (same ? 1 : MET_MODULES); mod++)
            for (int i = 0; i < R; i++)
                for (int j = 0; j < T; j++) {
                    int eq = !strcmp(t->w[j], r->w[i]);
                    if (mod == 0 ? eq : (!eq && !strcmp(t->stem[j], r->stem[i]))) {
                        tmpm[nt++] = (met_match){i, j, mod};
                        cov_t[j]++;
                        cov_r[i]++;
                    }
                }
        for (int i = 0; i < R; i++) {
            c.first[i] = c.nm;
            for (int k = 0; k < nt; k++) if (tmpm[k].ref == i) c.m[c.nm++] = tmpm[k];
            c.count[i] = c.nm - c.first[i];
        }
        free(tmpm);
    }
    /* the start: matches unique on both sides are fixed */
    met_path *start = path_new(&c);
    if (!start) { rc = lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory in METEOR"); goto done; }
    for (int i = 0; i < R; i++) {
        if (c.count[i] != 1) continue;
        const met_match *m = &c.m[c.first[i]];
        if (cov_r[i] == 1 && cov_t[m->test] == 1) {
            start->match[i] = c.first[i];
            start->used_ref[i] = 1;
            start->used_test[m->test] = 1;
        }
    }
    cap = 64;
    cur = malloc(cap * sizeof *cur);
    next = malloc(cap * sizeof *next);
    tmp = malloc(cap * sizeof *tmp);
    if (!cur || !next || !tmp) { free(start); rc = lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory in METEOR"); goto done; }
    cur[ncur++] = start;
    for (int i = 0; i <= R && !rc; i++) {
        path_sort(cur, tmp, ncur);
        nnext = 0;
        size_t beam = ncur < MET_BEAM ? ncur : MET_BEAM;
        /* room for every expansion of the beam */
        size_t need = beam * ((size_t)(i < R ? c.count[i] : 0) + 1) + 1;
        if (need > cap) {
            size_t nc = need * 2;
            met_path **a = realloc(next, nc * sizeof *a), **b2 = NULL, **t2 = NULL;
            if (a) next = a;
            if (a) b2 = realloc(tmp, nc * sizeof *b2);
            if (b2) tmp = b2;
            if (b2) t2 = realloc(cur, nc * sizeof *t2);
            if (t2) cur = t2;
            if (!t2) { rc = lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory in METEOR"); break; }
            cap = nc;
        }
        for (size_t b = 0; b < beam && !rc; b++) {
            met_path *p = cur[b];
            cur[b] = NULL;
            if (i == R) {
                if (p->last_end != -1) p->chunks++;
                next[nnext++] = p;
            } else if (p->used_ref[i]) {
                if (i < p->idx) { next[nnext++] = p; continue; }
                if (p->match[p->idx] < 0) { free(p); continue; }
                path_take(p, &c.m[p->match[p->idx]], p);
                next[nnext++] = p;
            } else {
                for (int k = c.first[i]; k < c.first[i] + c.count[i]; k++) {
                    const met_match *m = &c.m[k];
                    if (p->used_ref[m->ref] || p->used_test[m->test]) continue;
                    met_path *q = path_copy(&c, p);
                    if (!q) { rc = lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory in METEOR"); break; }
                    q->used_ref[m->ref] = q->used_test[m->test] = 1;
                    q->match[i] = k;
                    path_take(q, m, p);
                    next[nnext++] = q;
                }
                /* or leave reference word i unmatched, which ends the current chunk */
                if (p->last_end != -1) { p->chunks++; p->last_end = -1; }
                p->idx++;
                next[nnext++] = p;
            }
        }
        for (size_t b = 0; b < ncur; b++) free(cur[b]); /* paths that fell out of the beam */
        met_path **sw = cur; cur = next; next = sw;
        ncur = nnext;
    }
    if (rc) goto done;
    path_sort(cur, tmp, ncur);
    /* statistics of the best alignment */
    {
        const met_path *best = cur[0];
        memset(st, 0, sizeof *st);
        st->test_len = T;
        st->ref_len = R;
        for (int j = 0; j < T; j++) st->test_fn += t->fn[j];
        for (int i = 0; i < R; i++) st->ref_fn += r->fn[i];
        int last = -1, chunks = 0;
        for (int i = 0; i < R; i++) {
            if (best->match[i] < 0) {
                if (last != -1) { chunks++; last = -1; }
                continue;
            }
            const met_match *m = &c.m[best->match[i]];
            if (t->fn[m->test]) st->test_function[m->module]++; else st->test_content[m->module]++;
            if (r->fn[m->ref]) st->ref_function[m->module]++; else st->ref_content[m->module]++;
            st->test_matches++;
            st->ref_matches++;
            if (last != -1 && m->test != last) chunks++;
            last = m->test + 1;
        }
        if (last != -1) chunks++;
        st->chunks = chunks;
    }
done:
    if (cur) for (size_t b = 0; b < ncur; b++) free(cur[b]);
    free(cur); free(next); free(tmp);
    free(c.m); free(c.first); free(c.count); free(cov_t); free(cov_r);
    return rc;
}

static void stats_add(met_stats *sum, const met_stats *s) {
    sum->test_len += s->test_len;
    sum->ref_len += s->ref_len;
    sum->test_fn += s->test_fn;
    sum->ref_fn += s->ref_fn;
    for (int m = 0; m < MET_MODULES; m++) {
        sum->test_content[m] += s->test_content[m];
        sum->ref_content[m] += s->ref_content[m];
        sum->test_function[m] += s->test_function[m];
        sum->ref_function[m] += s->ref_function[m];
    }
    sum->test_matches += s->test_matches;
    sum->ref_matches += s->ref_matches;
    /* a perfect match adds no chunks, as in the jar's MeteorStats.addStats */
    if (!(s->test_matches == s->test_len && s->ref_matches == s->ref_len && s->chunks == 1)) sum->chunks += s->chunks;
}

int metrics_compute_meteor_es(const metrics_corpus *c, double *meteor, lorac_err *err) {
    met_stats total;
    memset(&total, 0, sizeof total);
    int rc = LORAC_OK;
    for (size_t i = 0; i < c->n && !rc; i++) {
        char *tok = NULL;
        met_sent t;
        rc = metrics_tokenize_coco(c->hyps[i], &tok, err);
        if (!rc) rc = met_sent_make(tok, &t, err);
        free(tok);
        if (rc) break;
        met_stats best;
        double best_score = -1.0;
        memset(&best, 0, sizeof best);
        for (size_t k = c->ref_start[i]; k < c->ref_start[i + 1] && !rc; k++) {
            met_sent r;
            rc = metrics_tokenize_coco(c->refs[k], &tok, err);
            if (!rc) rc = met_sent_make(tok, &r, err);
            free(tok);
            if (rc) break;
            met_stats s;
            rc = meteor_align(&t, &r, &s, err);
            met_sent_free(&r);
            if (!rc) {
                double sc = met_score(&s);
                if (sc > best_score) { best_score = sc; best = s; }
            }
        }
        met_sent_free(&t);
        if (!rc) stats_add(&total, &best);
    }
    if (rc) return rc;
    *meteor = met_score(&total);
    return LORAC_OK;
}
