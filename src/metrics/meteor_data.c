/* meteor_data.c — the resources of METEOR 1.5's synonym and paraphrase stages, read as the jar reads
 * them (SynonymDictionary, ParaphraseTransducer): english.synsets and english.exceptions (WordNet
 * 3.0, from the jar's synonym/ folder) and paraphrase-en.gz (gzip, through zlib). The files come
 * from tools/fetch_meteor.sh; lorac never ships them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "meteor_internal.h"

#define OOM(err) lorac_fail(err, LORAC_ENOMEM, "metrics: out of memory for the METEOR data")

/* Grows the array whose pointer is at pp (room for *cap elements of sz bytes) to hold need of them:
 * 0, or -1 when out of memory (the array kept). The pointer is copied in and out with memcpy, so
 * any array's pointer can be passed without breaking C's aliasing rules. */
static int grow(void *pp, size_t *cap, size_t need, size_t sz) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *p;
    memcpy(&p, pp, sizeof p);
    void *q = realloc(p, c * sz);
    if (!q) return -1;
    memcpy(pp, &q, sizeof q);
    *cap = c;
    return 0;
}

/* ---------------------------------------------------------------- lines, as Java's readLine splits them */

/* A line source over a gzip (or plain) file: lines end at \n, \r or \r\n, as BufferedReader says. */
typedef struct line_reader {
    gzFile f;
    char *buf;
    size_t cap, len, pos;
    int eof, cr; /* cr: the last line ended with \r (a following \n belongs to it) */
    char *line;
    size_t line_cap;
} line_reader;

/* The next line into r->line (NUL-terminated, *n bytes): 1, or 0 at the end, -1 on an error. */
static int next_line(line_reader *r, size_t *n) {
    size_t ln = 0;
    int got = 0;
    for (;;) {
        if (r->pos == r->len) {
            if (r->eof) break;
            int k = gzread(r->f, r->buf, (unsigned)r->cap);
            if (k < 0) return -1;
            if (k == 0) { r->eof = 1; break; }
            r->len = (size_t)k;
            r->pos = 0;
        }
        char c = r->buf[r->pos++];
        if (r->cr && c == '\n') { r->cr = 0; continue; }
        r->cr = 0;
        got = 1;
        if (c == '\n' || c == '\r') { r->cr = c == '\r'; break; }
        if (grow(&r->line, &r->line_cap, ln + 2, 1)) return -1;
        r->line[ln++] = c;
    }
    if (!got) return 0;
    if (grow(&r->line, &r->line_cap, ln + 1, 1)) return -1;
    r->line[ln] = 0;
    *n = ln;
    return 1;
}

static int reader_open(line_reader *r, const char *path, lorac_err *err) {
    memset(r, 0, sizeof *r);
    r->f = gzopen(path, "rb");
    if (!r->f) return lorac_fail(err, LORAC_EIO, "metrics: cannot open METEOR data file %s", path);
    r->cap = 1 << 16;
    r->buf = malloc(r->cap);
    if (!r->buf) { gzclose(r->f); return OOM(err); }
    return LORAC_OK;
}

static void reader_close(line_reader *r) {
    if (r->f) gzclose(r->f);
    free(r->buf);
    free(r->line);
    memset(r, 0, sizeof *r);
}

/* Java's StringTokenizer delimiters. */
static int tok_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

/* ---------------------------------------------------------------- synonyms */

static int load_synsets(met_synonyms *s, const char *path, lorac_err *err) {
    line_reader r;
    int rc = reader_open(&r, path, err);
    if (rc) return rc;
    size_t nsets = 0, cap_sets = 0, cap_start = 0, cap_count = 0, n;
    int got;
    while (!rc && (got = next_line(&r, &n)) == 1) {
        uint32_t id;
        rc = mt_vocab_id(&s->words, r.line, n, &id, err);
        if (rc) break;
        if (grow(&s->set_start, &cap_start, s->words.n, sizeof *s->set_start) ||
            grow(&s->set_count, &cap_count, s->words.n, sizeof *s->set_count)) {
            rc = OOM(err);
            break;
        }
        got = next_line(&r, &n);
        if (got != 1) { rc = lorac_fail(err, LORAC_EFORMAT, "metrics: %s: a word without its synset line", path); break; }
        /* a repeated word keeps its last line, as Hashtable.put does */
        s->set_start[id] = nsets;
        s->set_count[id] = 0;
        for (char *p = r.line; *p;) {
            while (*p && tok_space(*p)) p++;
            if (!*p) break;
            char *e;
            unsigned long v = strtoul(p, &e, 10);
            if (e == p || (*e && !tok_space(*e))) {
                rc = lorac_fail(err, LORAC_EFORMAT, "metrics: %s: a synset id that is not a number", path);
                break;
            }
            if (grow(&s->sets, &cap_sets, nsets + 1, sizeof(uint32_t))) { rc = OOM(err); break; }
            s->sets[nsets++] = (uint32_t)v;
            s->set_count[id]++;
            p = e;
        }
    }
    if (!rc && got < 0) rc = lorac_fail(err, LORAC_EIO, "metrics: cannot read %s", path);
    reader_close(&r);
    return rc;
}

/* english.exceptions: a base word, then a line of its irregular forms. Forms keep their bases in file order. */
static int load_exceptions(met_synonyms *s, const char *path, lorac_err *err) {
    line_reader r;
    int rc = reader_open(&r, path, err);
    if (rc) return rc;
    uint32_t *pair_form = NULL;
    int64_t *pair_base = NULL;
    size_t np = 0, cap_f = 0, cap_b = 0, n;
    int got;
    while (!rc && (got = next_line(&r, &n)) == 1) {
        int64_t base = mt_vocab_find(&s->words, r.line, n);
        got = next_line(&r, &n);
        if (got != 1) { rc = lorac_fail(err, LORAC_EFORMAT, "metrics: %s: a base word without its forms", path); break; }
        for (char *p = r.line; *p && !rc;) {
            while (*p && tok_space(*p)) p++;
            if (!*p) break;
            char *e = p;
            while (*e && !tok_space(*e)) e++;
            uint32_t id;
            rc = mt_vocab_id(&s->forms, p, (size_t)(e - p), &id, err);
            if (!rc && (grow(&pair_form, &cap_f, np + 1, sizeof *pair_form) || grow(&pair_base, &cap_b, np + 1, sizeof *pair_base)))
                rc = OOM(err);
            if (!rc) { pair_form[np] = id; pair_base[np++] = base; }
            p = e;
        }
    }
    if (!rc && got < 0) rc = lorac_fail(err, LORAC_EIO, "metrics: cannot read %s", path);
    reader_close(&r);
    /* group the (form, base) pairs by form, keeping their order */
    if (!rc) {
        s->base_off = calloc(s->forms.n + 1, sizeof *s->base_off);
        s->bases = malloc((np ? np : 1) * sizeof *s->bases);
        if (!s->base_off || !s->bases) rc = OOM(err);
    }
    if (!rc) {
        for (size_t k = 0; k < np; k++) s->base_off[pair_form[k] + 1]++;
        for (size_t k = 0; k < s->forms.n; k++) s->base_off[k + 1] += s->base_off[k];
        size_t *fill = calloc(s->forms.n + 1, sizeof *fill);
        if (!fill) rc = OOM(err);
        for (size_t k = 0; k < np && !rc; k++) s->bases[s->base_off[pair_form[k]] + fill[pair_form[k]]++] = pair_base[k];
        free(fill);
    }
    free(pair_form);
    free(pair_base);
    return rc;
}

int met_synonyms_load(met_synonyms *s, const char *dir, lorac_err *err) {
    memset(s, 0, sizeof *s);
    char path[4096];
    snprintf(path, sizeof path, "%s/english.synsets", dir);
    int rc = load_synsets(s, path, err);
    snprintf(path, sizeof path, "%s/english.exceptions", dir);
    if (!rc) rc = load_exceptions(s, path, err);
    if (rc) met_synonyms_free(s);
    return rc;
}

void met_synonyms_free(met_synonyms *s) {
    mt_vocab_free(&s->words);
    mt_vocab_free(&s->forms);
    free(s->set_start); free(s->set_count); free(s->sets); free(s->base_off); free(s->bases);
    memset(s, 0, sizeof *s);
}

/* Length in UTF-16 code units, as Java's String.length counts. */
static size_t java_length(const char *w) {
    size_t n = 0;
    for (const unsigned char *u = (const unsigned char *)w; *u; u++) n += (*u & 0xC0) != 0x80 ? (*u >= 0xF0 ? 2 : 1) : 0;
    return n;
}

static int ends_with(const char *w, size_t n, const char *suf) {
    size_t k = strlen(suf);
    return n >= k && !memcmp(w + n - k, suf, k);
}

/* WordNet's morphy for the jar's getStemSynSets (SynonymDictionary.morph): the first suffix rule
 * whose result has synsets; the word itself when it ends in "ss" or is at most 2 long; else none
 * (-1). (Its "ful" handling never fires: no suffix below ends in "ful".) */
static int64_t morph(const met_synonyms *s, const char *w) {
    static const char *const sufx[] = {"s", "ses", "xes", "zes", "ches", "shes", "men", "ies", "s", "ies",
                                       "es", "es", "ed", "ed", "ing", "ing", "er", "est", "er", "est"};
    static const char *const addr[] = {"", "s", "x", "z", "ch", "sh", "man", "y", "", "y",
                                       "e", "", "e", "", "e", "", "", "", "e", "e"};
    size_t n = strlen(w);
    if (ends_with(w, n, "ss") || java_length(w) <= 2) return mt_vocab_find(&s->words, w, n);
    char buf[512];
    for (size_t i = 0; i < sizeof sufx / sizeof sufx[0]; i++) {
        size_t k = strlen(sufx[i]), a = strlen(addr[i]);
        if (!ends_with(w, n, sufx[i]) || n - k + a >= sizeof buf) continue;
        memcpy(buf, w, n - k);
        memcpy(buf + n - k, addr[i], a);
        int64_t id = mt_vocab_find(&s->words, buf, n - k + a);
        if (id >= 0) return id;
    }
    return mt_vocab_find(&s->words, "", 0); /* morph returned "" */
}

static int u32_cmp(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int add_sets(const met_synonyms *s, int64_t word, uint32_t **out, size_t *n, size_t *cap) {
    if (word < 0) return 0;
    uint32_t c = s->set_count[word];
    if (grow(out, cap, *n + c + 1, sizeof **out)) return -1;
    memcpy(*out + *n, s->sets + s->set_start[word], c * sizeof **out);
    *n += c;
    return 0;
}

int met_synonyms_of(const met_synonyms *s, const char *w, uint32_t **out, size_t *n, size_t *cap, lorac_err *err) {
    size_t n0 = *n, wl = strlen(w);
    int bad = add_sets(s, mt_vocab_find(&s->words, w, wl), out, n, cap);
    int64_t form = mt_vocab_find(&s->forms, w, wl);
    if (form >= 0) {
        for (size_t k = s->base_off[form]; k < s->base_off[form + 1] && !bad; k++) bad = add_sets(s, s->bases[k], out, n, cap);
    } else if (!bad) {
        bad = add_sets(s, morph(s, w), out, n, cap);
    }
    if (bad) return OOM(err);
    /* a set: sorted, without repeats */
    if (*n - n0 < 2) return LORAC_OK;
    qsort(*out + n0, *n - n0, sizeof **out, u32_cmp);
    size_t k = n0;
    for (size_t i = n0; i < *n; i++) if (k == n0 || (*out)[k - 1] != (*out)[i]) (*out)[k++] = (*out)[i];
    *n = k;
    return LORAC_OK;
}

/* ---------------------------------------------------------------- paraphrases */

/* Appends the corpus ids of the words of line to p->words (*cap its room) and returns their count,
 * or -1 when a word is not in vocab (the phrase cannot match), -2 when out of memory. */
static long phrase_ids(met_paraphrases *p, size_t *nw, size_t *cap, const char *line, const mt_vocab *vocab) {
    long len = 0;
    for (const char *q = line; *q;) {
        while (*q && tok_space(*q)) q++;
        if (!*q) break;
        const char *e = q;
        while (*e && !tok_space(*e)) e++;
        int64_t id = mt_vocab_find(vocab, q, (size_t)(e - q));
        if (id < 0) return -1;
        if (grow(&p->words, cap, *nw + 1, sizeof *p->words)) return -2;
        p->words[(*nw)++] = (uint32_t)id;
        len++;
        q = e;
    }
    return len;
}

/* Word pos of entry e's reference phrase, or -1 past its end (so shorter phrases sort first). */
static int64_t ref_key(const met_paraphrases *p, size_t e, size_t pos) {
    return pos < p->e[e].ref_len ? (int64_t)p->words[p->e[e].ref_off + pos] : -1;
}

static int entry_cmp(const met_paraphrases *p, size_t x, size_t y) {
    size_t n = p->e[x].ref_len > p->e[y].ref_len ? p->e[x].ref_len : p->e[y].ref_len;
    for (size_t k = 0; k < n; k++) {
        int64_t u = ref_key(p, x, k), v = ref_key(p, y, k);
        if (u != v) return u < v ? -1 : 1;
    }
    return x < y ? -1 : x > y;
}

/* Merge sort of entry indices (qsort has no context argument). */
static void entry_sort(const met_paraphrases *p, size_t *v, size_t *tmp, size_t n) {
    if (n < 2) return;
    size_t h = n / 2, i = 0, j = h, k = 0;
    entry_sort(p, v, tmp, h);
    entry_sort(p, v + h, tmp, n - h);
    while (i < h && j < n) tmp[k++] = entry_cmp(p, v[j], v[i]) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

/* The file holds triples of lines: a probability (unused, as in the jar), a reference phrase, its paraphrase. */
int met_paraphrases_load(met_paraphrases *p, const char *dir, const mt_vocab *vocab, lorac_err *err) {
    memset(p, 0, sizeof *p);
    char path[4096];
    snprintf(path, sizeof path, "%s/paraphrase-en.gz", dir);
    line_reader r;
    int rc = reader_open(&r, path, err);
    if (rc) return rc;
    size_t nw = 0, cap_w = 0, cap_e = 0, n;
    int got;
    while (!rc && (got = next_line(&r, &n)) == 1) {
        met_para_entry e = {0};
        e.ref_off = nw;
        long lr = 0, lp = 0;
        int g1 = next_line(&r, &n);
        if (g1 == 1) lr = phrase_ids(p, &nw, &cap_w, r.line, vocab);
        int g2 = g1 == 1 ? next_line(&r, &n) : g1;
        if (g2 < 0) { got = g2; break; }
        if (g1 != 1 || g2 != 1) { rc = lorac_fail(err, LORAC_EFORMAT, "metrics: %s: an entry without its two phrases", path); break; }
        e.par_off = nw;
        if (lr >= 0) lp = phrase_ids(p, &nw, &cap_w, r.line, vocab);
        if (lr == -2 || lp == -2) { rc = OOM(err); break; }
        if (lr < 0 || lp < 0) { nw = e.ref_off; continue; }
        e.ref_len = (uint32_t)lr;
        e.par_len = (uint32_t)lp;
        if (grow(&p->e, &cap_e, p->n + 1, sizeof *p->e)) { rc = OOM(err); break; }
        p->e[p->n++] = e;
    }
    if (!rc && got < 0) rc = lorac_fail(err, LORAC_EIO, "metrics: cannot read %s (not a valid gzip file?)", path);
    reader_close(&r);
    size_t *tmp = NULL;
    if (!rc) {
        p->sorted = malloc((p->n ? p->n : 1) * sizeof *p->sorted);
        tmp = malloc((p->n ? p->n : 1) * sizeof *tmp);
        if (!p->sorted || !tmp) rc = OOM(err);
    }
    if (!rc) {
        for (size_t k = 0; k < p->n; k++) p->sorted[k] = k;
        entry_sort(p, p->sorted, tmp, p->n);
    }
    free(tmp);
    if (rc) met_paraphrases_free(p);
    return rc;
}

void met_paraphrases_free(met_paraphrases *p) {
    free(p->e); free(p->words); free(p->sorted);
    memset(p, 0, sizeof *p);
}

/* The first index in sorted[lo, hi) whose key at pos is >= v (above: > v). */
static size_t key_bound(const met_paraphrases *p, size_t lo, size_t hi, size_t pos, int64_t v, int above) {
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t k = ref_key(p, p->sorted[mid], pos);
        if (k < v || (above && k == v)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Walks the sorted table as the jar walks its trie: after step L, sorted[lo, hi) are the entries whose
 * reference phrase starts with ids[start .. start+L); those of length exactly L come first. */
int met_paraphrase_paths(const met_paraphrases *p, const uint32_t *ids, size_t n, size_t start, uint32_t **out,
                         size_t *len, size_t *cap, lorac_err *err) {
    size_t lo = 0, hi = p->n;
    for (size_t L = 1; start + L <= n && lo < hi; L++) {
        int64_t w = ids[start + L - 1];
        size_t a = key_bound(p, lo, hi, L - 1, w, 0), b = key_bound(p, a, hi, L - 1, w, 1);
        lo = a;
        hi = b;
        for (size_t k = lo; k < hi && p->e[p->sorted[k]].ref_len == L; k++) {
            if (grow(out, cap, *len + 2, sizeof **out)) return OOM(err);
            (*out)[(*len)++] = (uint32_t)L;
            (*out)[(*len)++] = (uint32_t)p->sorted[k];
        }
    }
    return LORAC_OK;
}
