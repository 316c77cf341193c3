/* WordPiece (BERT) tokenizer: loading (vocab.txt / tokenizer.json), the BERT normalizer, the
 * whitespace/punctuation pre-tokenizer and greedy longest-match WordPiece. */
#include <stdlib.h>
#include <string.h>

#include "lorac/json.h"
#include "lorac/wordpiece.h"

/* src/tok/unicode_bert.c */
typedef struct wp_range { uint32_t lo, hi; uint8_t flags; } wp_range;
typedef struct wp_map { uint32_t cp; uint16_t off; uint8_t len; } wp_map;
extern const wp_range wp_flag_ranges[];
extern const int wp_n_flag_ranges;
extern const wp_map wp_strip_map[], wp_lower_map[];
extern const int wp_n_strip_map, wp_n_lower_map;
extern const uint32_t wp_strip_pool[], wp_lower_pool[];
enum { F_CTRL = 1, F_WS = 2, F_PUNCT = 4, F_MN = 8 };

struct wp_tokenizer {
    wp_options o;
    char **tok;       /* id -> token */
    int32_t n;        /* vocabulary size */
    int32_t *slots;   /* open-addressing hash: token -> id, -1 empty */
    size_t cap;
    int32_t unk;
    char prefix[16];  /* "##" */
};

void wp_options_default(wp_options *o) {
    o->clean_text = 1;
    o->chinese_chars = 1;
    o->strip_accents = -1;
    o->lowercase = 1;
    o->max_chars_per_word = 100;
}

static uint64_t hash_str(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
    return h;
}

static int32_t lookup(const wp_tokenizer *t, const char *s, size_t n) {
    size_t i = hash_str(s, n) & (t->cap - 1);
    while (t->slots[i] >= 0) {
        const char *k = t->tok[t->slots[i]];
        if (strlen(k) == n && !memcmp(k, s, n)) return t->slots[i];
        i = (i + 1) & (t->cap - 1);
    }
    return -1;
}

int32_t wp_token_id(const wp_tokenizer *t, const char *token) { return lookup(t, token, strlen(token)); }
int32_t wp_vocab_size(const wp_tokenizer *t) { return t->n; }
const char *wp_token(const wp_tokenizer *t, int32_t id) { return id >= 0 && id < t->n ? t->tok[id] : NULL; }
const wp_options *wp_get_options(const wp_tokenizer *t) { return &t->o; }

void wp_free(wp_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; t->tok && i < t->n; i++) free(t->tok[i]);
    free(t->tok);
    free(t->slots);
    free(t);
}

/* Sets token id (ids dense in [0,n)); fails on a repeated token or id. */
static int put(wp_tokenizer *t, const char *s, size_t len, int32_t id, const char *path, lorac_err *err) {
    if (id < 0 || id >= t->n) return lorac_fail(err, LORAC_EFORMAT, "%s: token id %d is out of range", path, id);
    if (t->tok[id]) return lorac_fail(err, LORAC_EFORMAT, "%s: id %d is given twice", path, id);
    if (lookup(t, s, len) >= 0) return lorac_fail(err, LORAC_EFORMAT, "%s: token at id %d is repeated", path, id);
    t->tok[id] = malloc(len + 1);
    if (!t->tok[id]) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    memcpy(t->tok[id], s, len);
    t->tok[id][len] = 0;
    size_t i = hash_str(s, len) & (t->cap - 1);
    while (t->slots[i] >= 0) i = (i + 1) & (t->cap - 1);
    t->slots[i] = id;
    return LORAC_OK;
}

static int alloc_vocab(wp_tokenizer *t, int32_t n, const char *path, lorac_err *err) {
    t->n = n;
    t->cap = 16;
    while (t->cap < (size_t)n * 2) t->cap <<= 1;
    t->tok = calloc((size_t)n, sizeof(char *));
    t->slots = malloc(t->cap * sizeof(int32_t));
    if (!t->tok || !t->slots) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    memset(t->slots, 0xff, t->cap * sizeof(int32_t));
    return LORAC_OK;
}

static int finish(wp_tokenizer *t, const char *unk, const char *path, lorac_err *err) {
    for (int32_t i = 0; i < t->n; i++)
        if (!t->tok[i]) return lorac_fail(err, LORAC_EFORMAT, "%s: no token has id %d", path, i);
    t->unk = wp_token_id(t, unk);
    if (t->unk < 0) return lorac_fail(err, LORAC_EFORMAT, "%s: the vocabulary has no unknown token %s", path, unk);
    return LORAC_OK;
}

int wp_load_vocab(const char *vocab_txt, const wp_options *o, wp_tokenizer **out, lorac_err *err) {
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = lorac_read_file(vocab_txt, &text, &len, err);
    if (rc) return rc;
    wp_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        free(text);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", vocab_txt);
    }
    t->o = *o;
    snprintf(t->prefix, sizeof t->prefix, "##");
    int32_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if (len && text[len - 1] != '\n') lines++;
    if (lines == 0) rc = lorac_fail(err, LORAC_EFORMAT, "%s: empty vocabulary", vocab_txt);
    if (!rc) rc = alloc_vocab(t, lines, vocab_txt, err);
    size_t s = 0;
    for (int32_t id = 0; !rc && id < lines; id++) {
        size_t e = s;
        while (e < len && text[e] != '\n') e++;
        size_t n = e - s;
        if (memchr(text + s, 0, n)) rc = lorac_fail(err, LORAC_EFORMAT, "%s:%d: a NUL byte in a token", vocab_txt, id + 1);
        else rc = put(t, text + s, n, id, vocab_txt, err); /* HF: token.rstrip("\n") */
        s = e + 1;
    }
    free(text);
    if (!rc) rc = finish(t, "[UNK]", vocab_txt, err);
    if (rc) {
        wp_free(t);
        return rc;
    }
    *out = t;
    return LORAC_OK;
}

static int load_json(const char *path, wp_tokenizer **out, lorac_err *err) {
    json_doc *doc = NULL;
    int rc = json_parse_file(path, &doc, err);
    if (rc) return rc;
    const json_value *r = json_root(doc), *model = json_get(r, "model"), *norm = json_get(r, "normalizer");
    const json_value *vocab = json_get(model, "vocab");
    wp_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        json_free(doc);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    }
    wp_options_default(&t->o);
    const char *type = json_get_str(model, "type", NULL, NULL);
    if (!type || strcmp(type, "WordPiece")) {
        rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: model type \"%s\" is not WordPiece", path, type ? type : "(none)");
        goto done;
    }
    if (json_kind(vocab) != JSON_OBJECT || json_len(vocab) == 0) {
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: model.vocab must be a non-empty object", path);
        goto done;
    }
    const char *ntype = json_get_str(norm, "type", NULL, NULL);
    if (norm && json_kind(norm) != JSON_NULL) {
        if (!ntype || strcmp(ntype, "BertNormalizer")) {
            rc = lorac_fail(err, LORAC_EUNSUPPORTED, "%s: normalizer \"%s\" is not BertNormalizer", path, ntype ? ntype : "(none)");
            goto done;
        }
        t->o.clean_text = json_get_bool(norm, "clean_text", 1, NULL);
        t->o.chinese_chars = json_get_bool(norm, "handle_chinese_chars", 1, NULL);
        t->o.lowercase = json_get_bool(norm, "lowercase", 1, NULL);
        const json_value *sa = json_get(norm, "strip_accents");
        t->o.strip_accents = sa && json_kind(sa) == JSON_BOOL ? json_bool(sa) : -1;
    } else {
        t->o.clean_text = t->o.chinese_chars = t->o.lowercase = 0;
        t->o.strip_accents = 0;
    }
    t->o.max_chars_per_word = (int)json_get_int(model, "max_input_chars_per_word", 100, NULL);
    snprintf(t->prefix, sizeof t->prefix, "%s", json_get_str(model, "continuing_subword_prefix", "##", NULL));
    if ((rc = alloc_vocab(t, (int32_t)json_len(vocab), path, err))) goto done;
    for (size_t i = 0; i < json_len(vocab) && !rc; i++) {
        long long id;
        if (!json_int_exact(json_at(vocab, i), &id) || id < 0 || id >= t->n) {
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: model.vocab ids must be 0..%d", path, t->n - 1);
            break;
        }
        rc = put(t, json_key_at(vocab, i), json_key_len_at(vocab, i), (int32_t)id, path, err);
    }
    if (!rc) rc = finish(t, json_get_str(model, "unk_token", "[UNK]", NULL), path, err);
done:
    json_free(doc);
    if (rc) wp_free(t);
    else *out = t;
    return rc;
}

static int file_exists(const char *p) {
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

int wp_load(const char *path, wp_tokenizer **out, lorac_err *err) {
    *out = NULL;
    char p[4200], dir[4096];
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".json")) return load_json(path, out, err);
    if (n >= 4 && !strcmp(path + n - 4, ".txt")) {
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
    } else {
        snprintf(p, sizeof p, "%s/tokenizer.json", path);
        if (file_exists(p)) return load_json(p, out, err);
        snprintf(dir, sizeof dir, "%s", path);
    }
    wp_options o;
    wp_options_default(&o);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    if (file_exists(p)) {
        json_doc *doc = NULL;
        int rc = json_parse_file(p, &doc, err);
        if (rc) return rc;
        const json_value *r = json_root(doc);
        o.lowercase = json_get_bool(r, "do_lower_case", 1, NULL);
        o.chinese_chars = json_get_bool(r, "tokenize_chinese_chars", 1, NULL);
        const json_value *sa = json_get(r, "strip_accents");
        o.strip_accents = sa && json_kind(sa) == JSON_BOOL ? json_bool(sa) : -1;
        json_free(doc);
    }
    if (n >= 4 && !strcmp(path + n - 4, ".txt")) return wp_load_vocab(path, &o, out, err);
    snprintf(p, sizeof p, "%s/vocab.txt", path);
    if (!file_exists(p)) return lorac_fail(err, LORAC_ENOTFOUND, "%s: no tokenizer.json or vocab.txt", path);
    return wp_load_vocab(p, &o, out, err);
}

/* ---------------------------------------------------------------- normalizer */

static int cp_flags(uint32_t cp) {
    int lo = 0, hi = wp_n_flag_ranges - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < wp_flag_ranges[mid].lo) hi = mid - 1;
        else if (cp > wp_flag_ranges[mid].hi) lo = mid + 1;
        else return wp_flag_ranges[mid].flags;
    }
    return 0;
}

static const wp_map *map_find(const wp_map *m, int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < m[mid].cp) hi = mid - 1;
        else if (cp > m[mid].cp) lo = mid + 1;
        else return &m[mid];
    }
    return NULL;
}

static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Decodes one UTF-8 character at s[*i]; malformed input gives U+FFFD and advances one byte. */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i) {
    unsigned char c = s[*i];
    uint32_t cp;
    int len;
    if (c < 0x80) { (*i)++; return c; }
    if (c >= 0xC2 && c <= 0xDF) { cp = c & 0x1F; len = 2; }
    else if (c >= 0xE0 && c <= 0xEF) { cp = c & 0x0F; len = 3; }
    else if (c >= 0xF0 && c <= 0xF4) { cp = c & 0x07; len = 4; }
    else { (*i)++; return 0xFFFD; }
    if (*i + (size_t)len > n) { (*i)++; return 0xFFFD; }
    for (int k = 1; k < len; k++) {
        if ((s[*i + k] & 0xC0) != 0x80) { (*i)++; return 0xFFFD; }
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
        (*i)++;
        return 0xFFFD;
    }
    *i += (size_t)len;
    return cp;
}

static size_t utf8_put(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A growing array of code points. */
typedef struct cps { uint32_t *v; size_t n, cap; } cps;
static int cps_push(cps *a, uint32_t c) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        uint32_t *nv = realloc(a->v, nc * sizeof *nv);
        if (!nv) return -1;
        a->v = nv;
        a->cap = nc;
    }
    a->v[a->n++] = c;
    return 0;
}

static int push_lower(cps *a, uint32_t c, int lowercase) {
    const wp_map *m = lowercase ? map_find(wp_lower_map, wp_n_lower_map, c) : NULL;
    if (!m) return cps_push(a, c);
    for (int k = 0; k < m->len; k++)
        if (cps_push(a, wp_lower_pool[m->off + k])) return -1;
    return 0;
}

/* clean_text, chinese chars, strip accents (NFD without Mn), lowercase — tokenizers' order. */
static int normalize_cps(const wp_tokenizer *t, const char *text, size_t len, cps *out) {
    int strip = t->o.strip_accents < 0 ? t->o.lowercase : t->o.strip_accents;
    size_t i = 0;
    while (i < len) {
        uint32_t c = utf8_next((const unsigned char *)text, len, &i);
        int f = cp_flags(c);
        if (t->o.clean_text) {
            if (c == 0 || c == 0xFFFD || (f & F_CTRL)) continue;
            if (f & F_WS) c = ' ';
        }
        int cjk = t->o.chinese_chars && is_cjk(c);
        if (cjk && cps_push(out, ' ')) return -1;
        int done = 0;
        if (strip) {
            if (f & F_MN) continue;
            if (c >= 0xAC00 && c <= 0xD7A3) { /* Hangul syllable: L V (T) jamo */
                uint32_t s = c - 0xAC00;
                if (push_lower(out, 0x1100 + s / 588, t->o.lowercase) || push_lower(out, 0x1161 + (s % 588) / 28, t->o.lowercase))
                    return -1;
                if (s % 28 && push_lower(out, 0x11A7 + s % 28, t->o.lowercase)) return -1;
                done = 1;
            }
            const wp_map *m = done ? NULL : map_find(wp_strip_map, wp_n_strip_map, c);
            for (int k = 0; m && k < m->len; k++)
                if (push_lower(out, wp_strip_pool[m->off + k], t->o.lowercase)) return -1;
            done |= m != NULL;
        }
        if (!done && push_lower(out, c, t->o.lowercase)) return -1;
        if (cjk && cps_push(out, ' ')) return -1;
    }
    return 0;
}

int wp_normalize(const wp_tokenizer *t, const char *text, size_t len, char **out, size_t *out_len, lorac_err *err) {
    cps a = {0};
    if (normalize_cps(t, text, len, &a)) {
        free(a.v);
        return lorac_fail(err, LORAC_ENOMEM, "wordpiece: out of memory");
    }
    char *s = malloc(a.n * 4 + 1);
    if (!s) {
        free(a.v);
        return lorac_fail(err, LORAC_ENOMEM, "wordpiece: out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < a.n; i++) n += utf8_put(s + n, a.v[i]);
    s[n] = 0;
    free(a.v);
    *out = s;
    *out_len = n;
    return LORAC_OK;
}

/* ---------------------------------------------------------------- WordPiece */

typedef struct ids_buf { int32_t *v; size_t n, cap; } ids_buf;
static int ids_push(ids_buf *b, int32_t id) {
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        int32_t *nv = realloc(b->v, nc * sizeof *nv);
        if (!nv) return -1;
        b->v = nv;
        b->cap = nc;
    }
    b->v[b->n++] = id;
    return 0;
}

/* One word (code points w[0..n)): greedy longest match; all of it is [UNK] if any piece fails. */
static int encode_word(const wp_tokenizer *t, const uint32_t *w, size_t n, ids_buf *out, char *buf) {
    if (n > (size_t)t->o.max_chars_per_word) return ids_push(out, t->unk);
    size_t first = out->n, pl = strlen(t->prefix);
    size_t start = 0;
    while (start < n) {
        int32_t found = -1;
        size_t end = n;
        for (; end > start; end--) {
            size_t bn = 0;
            if (start > 0) {
                memcpy(buf, t->prefix, pl);
                bn = pl;
            }
            for (size_t k = start; k < end; k++) bn += utf8_put(buf + bn, w[k]);
            found = lookup(t, buf, bn);
            if (found >= 0) break;
        }
        if (found < 0) {
            out->n = first;
            return ids_push(out, t->unk);
        }
        if (ids_push(out, found)) return -1;
        start = end;
    }
    return 0;
}

int wp_encode(const wp_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n, lorac_err *err) {
    *ids = NULL;
    *n = 0;
    cps a = {0};
    ids_buf out = {0};
    char *buf = NULL;
    int rc = LORAC_OK;
    if (normalize_cps(t, text, len, &a)) goto oom;
    buf = malloc(a.n * 4 + 16 + 1);
    if (!buf) goto oom;
    size_t i = 0;
    while (i < a.n) {
        int f = cp_flags(a.v[i]);
        if (a.v[i] == ' ' || (f & F_WS)) { i++; continue; }
        size_t j = i + 1;
        if (!(f & F_PUNCT))
            while (j < a.n && a.v[j] != ' ' && !(cp_flags(a.v[j]) & (F_WS | F_PUNCT))) j++;
        if (encode_word(t, a.v + i, j - i, &out, buf)) goto oom;
        i = j;
    }
    *ids = out.v;
    *n = out.n;
    free(a.v);
    free(buf);
    return rc;
oom:
    free(a.v);
    free(buf);
    free(out.v);
    return lorac_fail(err, LORAC_ENOMEM, "wordpiece: out of memory");
}
