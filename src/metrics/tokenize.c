/* tokenize.c — the two tokenizations the E2E scorer applies before counting n-grams.
 *
 * mteval: e2e-metrics' pymteval port of mteval-v13a's basic tokenization (BLEU, NIST).
 * coco:   what COCOEvalCap feeds ROUGE-L, CIDEr and METEOR: Stanford PTBTokenizer 3.4.1 run with
 *         -preserveLines -lowerCase, then the COCO punctuation tokens dropped. PTBTokenizer is a large
 *         JFlex lexer; this file re-implements the rules that E2E-style (already space-separated)
 *         English text meets: clitics, hyphens, dots and commas in and around numbers and words,
 *         quotes, brackets (-lrb- ...), currency (£ -> #, € -> $). tools/metrics_ref.py's fixtures
 *         and the full-test-set check pin it to the real tokenizer.
 */
#include <stdlib.h>
#include <string.h>

#include "metrics_internal.h"

/* A growing byte buffer. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) {
            if (lorac_size_mul(cap, 2, &cap)) { b->oom = 1; return; }
        }
        char *q = realloc(b->p, cap);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_putc(sbuf *b, char c) { sb_putn(b, &c, 1); }
static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static int sb_finish(sbuf *b, char **out, lorac_err *err) {
    if (!b->oom && !b->p) sb_putn(b, "", 0);
    if (b->oom) {
        free(b->p);
        *out = NULL;
        return lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory while tokenizing");
    }
    *out = b->p;
    return LORAC_OK;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Length of the UTF-8 whitespace character at s (Python's \s beyond ASCII), or 0. */
static size_t unicode_space_len(const unsigned char *s) {
    if (s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2;
    if (s[0] == 0xE1 && s[1] == 0x9A && s[2] == 0x80) return 3;
    if (s[0] == 0xE2 && s[1] == 0x80 && ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
        return 3;
    if (s[0] == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) return 3;
    if (s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80) return 3;
    return 0;
}
static int is_ascii_space(unsigned char c) { return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f); }

/* The code point of the UTF-8 sequence at s and its length (1 for a stray byte, taken as itself). */
static uint32_t utf8_cp(const unsigned char *s, size_t *len) {
    if (s[0] >= 0xC2 && s[0] <= 0xDF && (s[1] & 0xC0) == 0x80) {
        *len = 2;
        return (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    }
    if (s[0] >= 0xE0 && s[0] <= 0xEF && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
        uint32_t cp = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        if (cp >= 0x800) { /* not an overlong form */
            *len = 3;
            return cp;
        }
    }
    *len = 1;
    return s[0];
}

static void sb_put_cp(sbuf *b, uint32_t cp) {
    char u[3];
    if (cp < 0x80) sb_putc(b, (char)cp);
    else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        sb_putn(b, u, 2);
    } else {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        sb_putn(b, u, 3);
    }
}

/* The lowercase of a capital of Latin-1 or Latin Extended-A (as Java's toLowerCase and Python's
 * lower() agree on them; mojibake of UTF-8 read as Latin-1 or cp1252 lives here), else cp. */
static uint32_t latin_lower(uint32_t cp) {
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 0x20;
    if (cp == 0x178) return 0xFF; /* Y with diaeresis */
    if ((cp >= 0x100 && cp <= 0x12F) || (cp >= 0x132 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177))
        return cp | 1; /* pairs: capital even, small odd */
    if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) return cp & 1 ? cp + 1 : cp;
    return cp;
}

/* Lowercases (latin_lower; U+0130 becomes "i" + combining dot, as in both languages) and maps
 * Unicode whitespace to ' '. */
static void lower_copy(sbuf *b, const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        size_t k = unicode_space_len(u);
        if (k) {
            sb_putc(b, ' ');
            u += k;
            continue;
        }
        uint32_t cp = utf8_cp(u, &k);
        if (k == 1 && cp >= 0x80) sb_putc(b, (char)*u); /* a stray byte stays as it is */
        else if (cp == 0x130) sb_puts(b, "i\xCC\x87");
        else sb_put_cp(b, latin_lower(cp));
        u += k;
    }
}

/* Replaces every occurrence of from with to (one left-to-right pass, like str.replace / re.sub). */
static void replace_all(sbuf *dst, const char *src, const char *from, const char *to) {
    size_t fl = strlen(from);
    const char *p = src, *q;
    while ((q = strstr(p, from)) != NULL) {
        sb_putn(dst, p, (size_t)(q - p));
        sb_puts(dst, to);
        p = q + fl;
    }
    sb_puts(dst, p);
}

/* The characters mteval-v13a surrounds with spaces: [{-~[-` -&(-+:-@/] */
static int mteval_punct(unsigned char c) {
    return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') || (c >= '(' && c <= '+') ||
           (c >= ':' && c <= '@') || c == '/';
}

int metrics_tokenize_mteval(const char *s, char **out, lorac_err *err) {
    /* language-independent part: the SGML entities and line joins, applied in mteval's order */
    static const char *const subs[][2] = {{"<skipped>", ""}, {"-\n", ""},  {"\n", " "},   {"&quot;", "\""},
                                          {"&amp;", "&"},   {"&lt;", "<"}, {"&gt;", ">"}};
    sbuf a = {0}, b = {0};
    sb_puts(&a, s);
    for (size_t k = 0; k < sizeof subs / sizeof subs[0] && !a.oom; k++) {
        b.n = 0;
        if (b.p) b.p[0] = 0;
        replace_all(&b, a.p, subs[k][0], subs[k][1]);
        sbuf t = a; a = b; b = t;
    }
    /* lowercase now (pymteval lowercases each token; the token boundaries do not change) */
    b.n = 0;
    sb_putc(&b, ' ');
    if (a.p) lower_copy(&b, a.p);
    sb_putc(&b, ' ');
    /* tokenize punctuation */
    a.n = 0;
    sb_putn(&a, "", 0);
    for (size_t i = 0; i < b.n; i++) {
        unsigned char c = (unsigned char)b.p[i];
        if (mteval_punct(c)) { sb_putc(&a, ' '); sb_putc(&a, (char)c); sb_putc(&a, ' '); }
        else sb_putc(&a, (char)c);
    }
    /* ([^0-9])([.,]) -> "\1 \2 ", scanning left to right without overlaps */
    b.n = 0;
    sb_putn(&b, "", 0);
    for (size_t i = 0; i < a.n;) {
        unsigned char c = (unsigned char)a.p[i], d = i + 1 < a.n ? (unsigned char)a.p[i + 1] : 0;
        if (!is_digit(c) && (d == '.' || d == ',')) {
            sb_putc(&b, (char)c); sb_putc(&b, ' '); sb_putc(&b, (char)d); sb_putc(&b, ' ');
            i += 2;
        } else {
            sb_putc(&b, (char)c);
            i++;
        }
    }
    /* ([.,])([^0-9]) -> " \1 \2" */
    a.n = 0;
    sb_putn(&a, "", 0);
    for (size_t i = 0; i < b.n;) {
        unsigned char c = (unsigned char)b.p[i], d = i + 1 < b.n ? (unsigned char)b.p[i + 1] : '0';
        if ((c == '.' || c == ',') && i + 1 < b.n && !is_digit(d)) {
            sb_putc(&a, ' '); sb_putc(&a, (char)c); sb_putc(&a, ' '); sb_putc(&a, (char)d);
            i += 2;
        } else {
            sb_putc(&a, (char)c);
            i++;
        }
    }
    /* ([0-9])(-) -> "\1 \2 " */
    b.n = 0;
    sb_putn(&b, "", 0);
    for (size_t i = 0; i < a.n;) {
        if (is_digit((unsigned char)a.p[i]) && i + 1 < a.n && a.p[i + 1] == '-') {
            sb_putc(&b, a.p[i]); sb_puts(&b, " - ");
            i += 2;
        } else {
            sb_putc(&b, a.p[i++]);
        }
    }
    /* collapse whitespace and strip */
    a.n = 0;
    sb_putn(&a, "", 0);
    for (size_t i = 0; i < b.n; i++) {
        unsigned char c = (unsigned char)b.p[i];
        if (is_ascii_space(c)) {
            if (a.n && a.p[a.n - 1] != ' ') sb_putc(&a, ' ');
        } else {
            sb_putc(&a, (char)c);
        }
    }
    if (!a.oom && a.n && a.p[a.n - 1] == ' ') a.p[--a.n] = 0;
    free(b.p);
    return sb_finish(&a, out, err);
}

/* ---------------------------------------------------------------- PTB-style, for the COCO metrics */

/* Emits a token unless it is one of COCO's punctuation tokens (which COCOEvalCap drops). */
static void coco_emit(sbuf *b, const char *t, size_t n) {
    static const char *const punct[] = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".",
                                        "?",  "!", ",",  ":", "-",     "--",    "...",   ";"};
    if (n == 0) return;
    for (size_t k = 0; k < sizeof punct / sizeof punct[0]; k++)
        if (strlen(punct[k]) == n && !memcmp(punct[k], t, n)) return;
    if (b->n) sb_putc(b, ' ');
    sb_putn(b, t, n);
}

/* What PTBTokenizer 3.4.1 does with a non-ASCII character (measured with the jar, every code point
 * of U+0080..U+036F and U+2010..U+205F, U+20A0..U+20BF; tools/metrics_ref.py --probe-ptb): */
enum { PTB_WORD, PTB_OWN, PTB_REWRITE, PTB_DROP, PTB_HYPHEN };
/* PTB_WORD: part of a word (letters, combining marks, the modifier symbols);
 * PTB_HYPHEN: U+2010/U+2011, kept inside a word between word characters, else a dropped "-";
 * PTB_OWN: a token of its own (symbols, most punctuation); PTB_REWRITE: a token of its own,
 * rewritten (*repl); PTB_DROP: deleted, ending the token before it ("untokenizable"). Characters
 * outside the measured blocks (other scripts' letters) are PTB_WORD. *len is the UTF-8 length. */
static int ptb_class(const unsigned char *s, const char **repl, size_t *len) {
    static const struct { uint32_t cp; const char *to; } rewrite[] = {
        {0x80, "$"},    {0x85, "..."}, {0x91, "`"},   {0x92, "'"},   {0x93, "``"},  {0x94, "''"},
        {0x96, "--"},   {0x97, "--"},  {0xA2, "cents"}, {0xA3, "#"}, {0xA4, "$"},   {0xAB, "``"},
        {0xBB, "''"},   {0xBC, "1/4"}, {0xBD, "1/2"}, {0xBE, "3/4"}, {0x2013, "--"}, {0x2014, "--"},
        {0x2015, "--"}, {0x2018, "`"}, {0x2019, "'"}, {0x201B, "`"}, {0x201C, "``"}, {0x201D, "''"},
        {0x2026, "..."}, {0x2039, "`"}, {0x203A, "'"}, {0x20A0, "$"}, {0x20AC, "$"}};
    uint32_t cp = utf8_cp(s, len);
    if (*len == 1 && cp >= 0x80) return PTB_WORD; /* stray byte */
    for (size_t k = 0; k < sizeof rewrite / sizeof rewrite[0]; k++)
        if (rewrite[k].cp == cp) {
            *repl = rewrite[k].to;
            return PTB_REWRITE;
        }
    if (cp < 0xA0) return PTB_DROP; /* the other C1 controls */
    if (cp == 0xAD) return PTB_DROP;   /* soft hyphen (it does not split: see ptb_chunk) */
    if (cp < 0xC0) return cp == 0xAA || cp == 0xB5 || cp == 0xBA ? PTB_WORD : PTB_OWN;
    if (cp == 0xD7 || cp == 0xF7) return PTB_OWN; /* multiplication and division signs */
    if (cp < 0x2010 || (cp > 0x205F && cp < 0x20A0) || cp > 0x20BF)
        return cp == 0x2116 || cp == 0x2122 ? PTB_OWN : PTB_WORD; /* numero, trade mark */
    if (cp <= 0x2011) return PTB_HYPHEN;
    if (cp >= 0x20A0) return cp == 0x20A4 ? PTB_OWN : PTB_DROP; /* lira sign; the rest untokenizable */
    if (cp == 0x2012 || cp == 0x2024 || cp == 0x2025 || cp == 0x2027 || cp == 0x202F || cp == 0x203C ||
        cp == 0x203D || cp == 0x2043 || cp >= 0x2045)
        return PTB_DROP;
    return cp >= 0x2028 && cp <= 0x202E ? PTB_DROP : PTB_OWN;
}

/* A byte that continues a word: ASCII letter or digit, or the start of a PTB_WORD character or a
 * continuation byte of one (the scan moves whole characters; see ptb_word_len). */
static size_t ptb_word_len(const unsigned char *s) {
    const char *r;
    size_t len;
    if (*s < 0x80) return is_alpha(*s) || is_digit(*s);
    if ((*s & 0xC0) == 0x80) return 1; /* a stray continuation byte */
    return ptb_class(s, &r, &len) == PTB_WORD ? len : 0;
}
static int ptb_word_byte(const unsigned char *s) { return ptb_word_len(s) != 0; }

/* Length of a clitic ('s 're 've 'll 'd 'm) starting at s, ending at a non-letter, or 0. */
static size_t ptb_clitic(const unsigned char *s) {
    static const char *const cl[] = {"'s", "'re", "'ve", "'ll", "'d", "'m"};
    for (size_t k = 0; k < 6; k++) {
        size_t n = strlen(cl[k]);
        if (!strncmp((const char *)s, cl[k], n) && !is_alpha(s[n])) return n;
    }
    return 0;
}

/* Words PTBTokenizer keeps their period with (titles, companies, months, states, ...), beside any
 * single letter (an initial). Lowercase, since the input is lowercased first. */
static int ptb_abbrev(const unsigned char *w, size_t n) {
    static const char *const ab[] = {
        "mr", "mrs", "ms", "miss", "dr", "drs", "prof", "profs", "sen", "sens", "rep", "reps", "atty", "attys",
        "lt", "col", "gen", "messrs", "gov", "govs", "adm", "rev", "maj", "sgt", "cpl", "pvt", "mt", "capt",
        "st", "ste", "ave", "pres", "lieut", "hon", "brig", "cmdr", "comdr", "pfc", "spc", "supt", "supts",
        "det", "mme", "mmes", "mlle", "mlles", "jr", "sr", "bros", "blvd", "rt", "esq", "inc", "co", "cos",
        "corp", "ltd", "plc", "dept", "assn", "univ", "intl", "sys", "jan", "feb", "mar", "apr", "jun",
        "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon", "tue", "tues", "wed", "thu", "thurs", "fri",
        "tel", "est", "ext", "sq", "etc", "al", "seq", "vs", "cf", "ca", "fig", "figs", "no", "nos", "art",
        "bldg", "prop", "pp", "op"};
    if (n == 1 && is_alpha(w[0])) return 1;
    for (size_t k = 0; k < sizeof ab / sizeof ab[0]; k++)
        if (strlen(ab[k]) == n && !memcmp(ab[k], w, n)) return 1;
    return 0;
}

/* Tokenizes one whitespace-free chunk [s, e). */
static void ptb_chunk(sbuf *b, const unsigned char *s, const unsigned char *e) {
    /* whole-word splits PTB makes */
    static const char *const splits[][3] = {{"cannot", "can", "not"}, {"gonna", "gon", "na"},
                                            {"gotta", "got", "ta"},   {"wanna", "wan", "na"}};
    for (size_t k = 0; k < 4; k++) {
        size_t n = strlen(splits[k][0]);
        if ((size_t)(e - s) == n && !memcmp(s, splits[k][0], n)) {
            coco_emit(b, splits[k][1], strlen(splits[k][1]));
            coco_emit(b, splits[k][2], strlen(splits[k][2]));
            return;
        }
    }
    const unsigned char *p = s;
    int prev_word = 0; /* the last piece was a word or number (so a following "-5" is a minus, not a sign) */
    while (p < e) {
        const char *repl;
        int word_before = prev_word;
        prev_word = 0;
        size_t k = 1;
        int cls = *p < 0x80 ? PTB_WORD : ptb_class(p, &repl, &k);
        if (cls == PTB_REWRITE || cls == PTB_OWN) {
            coco_emit(b, cls == PTB_OWN ? (const char *)p : repl, cls == PTB_OWN ? k : strlen(repl));
            p += k;
        } else if (cls == PTB_DROP || cls == PTB_HYPHEN) {
            p += k;
        } else if (*p == '\'') {
            size_t c = ptb_clitic(p);
            if (c) { coco_emit(b, (const char *)p, c); p += c; }
            else { coco_emit(b, "'", 1); p++; }
        } else if (*p == '"' || *p == '`') {
            coco_emit(b, "''", 2);
            p++;
        } else if (*p == '-') {
            const unsigned char *q = p;
            while (q < e && *q == '-') q++;
            int signed_number = q - p == 1 && q < e && is_digit(*q) && !word_before;
            if (!signed_number) {
                coco_emit(b, (const char *)p, (size_t)(q - p));
                p = q;
                continue;
            }
            /* "-25": a signed number; falls through to the word scan below from the digit */
            const unsigned char *w = q;
            while (w < e && (is_digit(*w) || ((*w == '.' || *w == ',') && w + 1 < e && is_digit(w[1])))) w++;
            coco_emit(b, (const char *)p, (size_t)(w - p));
            prev_word = 1;
            p = w;
        } else if (*p == '+' && p + 1 < e && is_digit(p[1]) && !word_before) { /* "+5" */
            const unsigned char *w = p + 1;
            while (w < e && (is_digit(*w) || ((*w == '.' || *w == ',') && w + 1 < e && is_digit(w[1])))) w++;
            coco_emit(b, (const char *)p, (size_t)(w - p));
            prev_word = 1;
            p = w;
        } else if (*p == '.') {
            const unsigned char *q = p;
            while (q < e && *q == '.') q++;
            if (q - p == 1 && q < e && is_digit(*q)) { /* ".6" */
                while (q < e && (is_digit(*q) || ((*q == '.' || *q == ',') && q + 1 < e && is_digit(q[1])))) q++;
                coco_emit(b, (const char *)p, (size_t)(q - p));
            } else {
                for (const unsigned char *d = p; d < q; d++) coco_emit(b, ".", 1);
            }
            p = q;
        } else if (*p == '?' || *p == '!') {
            const unsigned char *q = p;
            while (q < e && (*q == '?' || *q == '!')) q++;
            coco_emit(b, (const char *)p, (size_t)(q - p));
            p = q;
        } else if (*p == '(' || *p == ')' || *p == '[' || *p == ']' || *p == '{' || *p == '}') {
            const char *name = *p == '(' ? "-lrb-" : *p == ')' ? "-rrb-" : *p == '[' ? "-lsb-"
                             : *p == ']' ? "-rsb-" : *p == '{' ? "-lcb-" : "-rcb-";
            coco_emit(b, name, 5);
            p++;
        } else if (ptb_word_byte(p)) {
            /* acronyms with dots: e.g. u.s. */
            const unsigned char *q = p;
            while (q + 1 < e && is_alpha(q[0]) && q[1] == '.') q += 2;
            if (q - p >= 4 && (q == e || !ptb_word_byte(q))) {
                coco_emit(b, (const char *)p, (size_t)(q - p));
                prev_word = 1;
                p = q;
                continue;
            }
            q = p;
            for (;;) {
                while (q < e && ptb_word_byte(q)) q += ptb_word_len(q);
                if (q + 1 < e && q[0] == '-' && ptb_word_byte(q + 1)) { q++; continue; }
                if (q + 3 < e && ptb_class(q, &repl, &k) == PTB_HYPHEN && ptb_word_byte(q + 3)) { q += 3; continue; }
                if (q + 1 < e && (q[0] == '.' || q[0] == ',') && is_digit(q[-1]) && is_digit(q[1])) { q++; continue; }
                if (q + 1 < e && q[0] == '&' && is_alpha(q[-1]) && is_alpha(q[1])) { q++; continue; }
                if (q + 1 < e && q[0] == '\'' && is_alpha(q[-1]) && is_alpha(q[1]) && !ptb_clitic(q)) {
                    /* n't splits off; other inner apostrophes (d'oeuvre, o'clock) stay */
                    if (q[-1] == 'n' && q[1] == 't' && (q + 2 == e || !is_alpha(q[2])) && q - 1 > p) {
                        coco_emit(b, (const char *)p, (size_t)(q - 1 - p));
                        coco_emit(b, "n't", 3);
                        q += 2;
                        p = q;
                        prev_word = 1;
                        goto next;
                    }
                    q++;
                    continue;
                }
                break;
            }
            /* an abbreviation or initial keeps its period when the period ends the chunk */
            if (q + 1 == e && *q == '.' && ptb_abbrev(p, (size_t)(q - p))) q++;
            coco_emit(b, (const char *)p, (size_t)(q - p));
            prev_word = 1;
            p = q;
        next:;
        } else {
            /* any other ASCII symbol is a token of its own: & / * % + = @ # $ < > ~ ^ | \ : ; , _ */
            coco_emit(b, (const char *)p, 1);
            p++;
        }
    }
}

/* PTB reads the soft hyphen as nothing at all (the word goes on across it), and the right single
 * quote U+2019 (and cp1252's 0x92 read as U+0092) as the apostrophe of a clitic ("it\u2019s" gives "it 's", "don\u2019t" "do n't");
 * elsewhere U+2019 is a quote token (ptb_class). */
static void ptb_normalize(char *s) {
    char *w = s;
    for (const char *r = s; *r;) {
        if (r[0] == '\xC2' && r[1] == '\xAD') {
            r += 2;
        } else if ((r[0] == '\xE2' && r[1] == '\x80' && r[2] == '\x99') || (r[0] == '\xC2' && r[1] == '\x92')) {
            size_t q = r[0] == '\xC2' ? 2 : 3;
            char ascii[8] = "'";
            strncat(ascii, r + q, 4);
            int nt = w > s && w[-1] == 'n' && r[q] == 't' && !is_alpha((unsigned char)r[q + 1]);
            if (nt || ptb_clitic((const unsigned char *)ascii)) *w++ = '\'', r += q;
            else for (size_t i = 0; i < q; i++) *w++ = *r++;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
}

int metrics_tokenize_coco(const char *s, char **out, lorac_err *err) {
    sbuf low = {0}, b = {0};
    lower_copy(&low, s);
    sb_putn(&b, "", 0);
    if (low.p) ptb_normalize(low.p);
    if (low.p) {
        const unsigned char *p = (const unsigned char *)low.p;
        while (*p) {
            while (*p && is_ascii_space(*p)) p++;
            const unsigned char *q = p;
            while (*q && !is_ascii_space(*q)) q++;
            if (q > p) ptb_chunk(&b, p, q);
            p = q;
        }
    }
    int oom = low.oom;
    free(low.p);
    if (oom) b.oom = 1;
    return sb_finish(&b, out, err);
}
