/* meteor_norm.c — METEOR 1.5's English text handling: the -norm normalizer (the jar's port of the
 * Moses tokenizer, then lowercasing as the COCO tokenizer already did) and its function words. */
#include <stdlib.h>
#include <string.h>

#include "meteor_internal.h"

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

int mt_meteor_normalize(const char *s, char **out, size_t *n_words, lorac_err *err) {
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

/* ---------------------------------------------------------------- function words */

int mt_meteor_function_word(const char *w) {
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

