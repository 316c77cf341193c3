/* Training data: E2E "context||completion" lines and JSONL read into examples, then tokenized
 * through a caller's callback into sequences with next-token targets (the LoRA paper's recipe). */
#include <stdlib.h>
#include <string.h>

#include "lorac/json.h"
#include "lorac/train.h"

/* ------------------------------------------------------------------ reading */

/* An example while reading: strings are offsets into the growing text arena. */
typedef struct ex_pending {
    size_t ctx_off, ctx_len, comp_off, comp_len;
    int has_ctx, line;
} ex_pending;

typedef struct reader {
    const char *path;
    char *text;
    size_t text_len, text_cap;
    ex_pending *ex;
    size_t n, cap;
} reader;

static int reader_add_text(reader *r, const char *s, size_t len, size_t *off, lorac_err *err) {
    size_t need;
    if (lorac_size_add(r->text_len, len, &need) || lorac_size_add(need, 1, &need))
        return lorac_fail(err, LORAC_ENOMEM, "%s: too much text", r->path);
    if (need > r->text_cap) {
        size_t cap = r->text_cap ? r->text_cap : 4096;
        while (cap < need) {
            if (cap > SIZE_MAX / 2) return lorac_fail(err, LORAC_ENOMEM, "%s: too much text", r->path);
            cap *= 2;
        }
        char *t = realloc(r->text, cap);
        if (!t) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", r->path);
        r->text = t;
        r->text_cap = cap;
    }
    *off = r->text_len;
    if (len) memcpy(r->text + r->text_len, s, len);
    r->text_len += len;
    r->text[r->text_len++] = '\0'; /* so each string is also NUL-terminated */
    return LORAC_OK;
}

static int reader_add(reader *r, int line, const char *ctx, size_t ctx_len, const char *comp,
                      size_t comp_len, lorac_err *err) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256, bytes;
        if (lorac_size_mul(cap, sizeof *r->ex, &bytes))
            return lorac_fail(err, LORAC_ENOMEM, "%s: too many examples", r->path);
        ex_pending *e = realloc(r->ex, bytes);
        if (!e) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", r->path);
        r->ex = e;
        r->cap = cap;
    }
    ex_pending *e = &r->ex[r->n];
    memset(e, 0, sizeof *e);
    e->line = line;
    int rc;
    if (ctx) {
        e->has_ctx = 1;
        e->ctx_len = ctx_len;
        if ((rc = reader_add_text(r, ctx, ctx_len, &e->ctx_off, err))) return rc;
    }
    e->comp_len = comp_len;
    if ((rc = reader_add_text(r, comp, comp_len, &e->comp_off, err))) return rc;
    r->n++;
    return LORAC_OK;
}

/* Offset of the first invalid UTF-8 byte in s[0..n), or n if valid (no overlongs, no surrogates,
 * nothing above U+10FFFF). */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return i;
        if (n - i < len) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
        i += len;
    }
    return n;
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Line `lineno` of an E2E file: strip, split at "||". */
static int read_e2e_line(reader *r, int lineno, const char *s, size_t len, lorac_err *err) {
    while (len && is_space(s[len - 1])) len--;
    while (len && is_space(*s)) { s++; len--; }
    if (len == 0) return LORAC_OK;
    const char *sep = NULL;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] == '|' && s[i + 1] == '|') {
            if (sep)
                return lorac_fail(err, LORAC_EFORMAT, "%s:%d: more than one \"||\" in a context||completion line",
                                  r->path, lineno);
            sep = s + i;
            i++;
        }
    }
    if (!sep)
        return lorac_fail(err, LORAC_EFORMAT, "%s:%d: no \"||\" between context and completion", r->path, lineno);
    size_t ctx_len = (size_t)(sep - s);
    return reader_add(r, lineno, s, ctx_len, sep + 2, len - ctx_len - 2, err);
}

static const json_value *member(const json_value *o, const char *key) {
    const json_value *v = json_get(o, key);
    return v && json_kind(v) == JSON_NULL ? NULL : v; /* null is as good as absent */
}

static int read_jsonl_line(reader *r, int lineno, const char *s, size_t len, lorac_err *err) {
    size_t k = 0;
    while (k < len && is_space(s[k])) k++;
    if (k == len) return LORAC_OK;
    json_doc *doc = NULL;
    int rc = json_parse(s, len, r->path, lineno, &doc, err);
    if (rc) return rc;
    const json_value *root = json_root(doc);
    const char *what = NULL;
    const json_value *ctx = NULL, *comp = NULL;
    if (json_kind(root) != JSON_OBJECT) {
        what = "expected a JSON object";
    } else if ((comp = member(root, "completion"))) {
        const json_value *prompt = member(root, "prompt"), *context = member(root, "context");
        if (prompt && context) what = "has both \"prompt\" and \"context\"";
        else if (!prompt && !context) what = "has \"completion\" but no \"prompt\" or \"context\"";
        ctx = prompt ? prompt : context;
        if (!what && json_kind(comp) != JSON_STRING) what = "\"completion\" must be a string";
        if (!what && json_kind(ctx) != JSON_STRING)
            what = prompt ? "\"prompt\" must be a string" : "\"context\" must be a string";
    } else if ((comp = member(root, "text"))) {
        if (json_kind(comp) != JSON_STRING) what = "\"text\" must be a string";
    } else {
        what = "expected {\"prompt\",\"completion\"}, {\"context\",\"completion\"} or {\"text\"}";
    }
    if (what) rc = lorac_fail(err, LORAC_EFORMAT, "%s:%d: %s", r->path, lineno, what);
    else if (ctx)
        rc = reader_add(r, lineno, json_str(ctx), json_str_len(ctx), json_str(comp), json_str_len(comp), err);
    else rc = reader_add(r, lineno, NULL, 0, json_str(comp), json_str_len(comp), err);
    json_free(doc);
    return rc;
}

int train_examples_read(const char *path, train_format fmt, train_examples *out, lorac_err *err) {
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    size_t n = 0;
    int rc = lorac_read_file(path, &buf, &n, err);
    if (rc) return rc;
    const char *s = buf;
    if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) { s += 3; n -= 3; } /* a UTF-8 BOM */
    if (fmt == TRAIN_FORMAT_AUTO) {
        size_t k = 0;
        while (k < n && is_space(s[k])) k++;
        fmt = lorac_has_suffix(path, ".jsonl") || lorac_has_suffix(path, ".json") || (k < n && s[k] == '{')
                  ? TRAIN_FORMAT_JSONL : TRAIN_FORMAT_E2E;
    }
    reader r = {.path = path};
    int lineno = 0;
    for (size_t pos = 0; pos < n && rc == LORAC_OK;) {
        const char *nl = memchr(s + pos, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - (s + pos)) : n - pos;
        lineno++;
        if (lineno == INT32_MAX) { rc = lorac_fail(err, LORAC_EFORMAT, "%s: too many lines", path); break; }
        if (fmt == TRAIN_FORMAT_E2E) {
            size_t bad = utf8_invalid_at((const unsigned char *)s + pos, len);
            if (bad < len)
                rc = lorac_fail(err, LORAC_EFORMAT, "%s:%d:%zu: invalid UTF-8", path, lineno, bad + 1);
            else rc = read_e2e_line(&r, lineno, s + pos, len, err);
        } else {
            rc = read_jsonl_line(&r, lineno, s + pos, len, err);
        }
        pos += len + 1;
    }
    free(buf);
    if (rc == LORAC_OK && r.n == 0)
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: no examples (the file is empty or blank)", path);
    if (rc == LORAC_OK && !(out->ex = malloc(r.n * sizeof *out->ex)))
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    if (rc) {
        free(r.text);
        free(r.ex);
        return rc;
    }
    for (size_t i = 0; i < r.n; i++) {
        const ex_pending *p = &r.ex[i];
        train_example *e = &out->ex[i];
        e->context = p->has_ctx ? r.text + p->ctx_off : NULL;
        e->context_len = p->has_ctx ? p->ctx_len : 0;
        e->completion = r.text + p->comp_off;
        e->completion_len = p->comp_len;
        e->line = p->line;
    }
    out->n = r.n;
    out->text = r.text;
    snprintf(out->path, sizeof out->path, "%s", path);
    free(r.ex);
    return LORAC_OK;
}

void train_examples_free(train_examples *e) {
    free(e->ex);
    free(e->text);
    memset(e, 0, sizeof *e);
}

/* ------------------------------------------------------------------ tokenizing */

typedef struct seqbuf {
    int32_t *ids, *targets;
    size_t len, cap;
} seqbuf;

static int seqbuf_reserve(seqbuf *b, size_t extra) {
    size_t need;
    if (lorac_size_add(b->len, extra, &need)) return -1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1 << 16, bytes;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    if (lorac_size_mul(cap, sizeof(int32_t), &bytes)) return -1;
    int32_t *a = realloc(b->ids, bytes);
    if (!a) return -1;
    b->ids = a;
    int32_t *t = realloc(b->targets, bytes);
    if (!t) return -1;
    b->targets = t;
    b->cap = cap;
    return 0;
}

/* Calls the tokenizer and prefixes its message with the example's file and line. */
static int encode_at(const train_examples *ex, int line, train_encode_fn encode, void *ctx,
                     const char *text, size_t len, int32_t **ids, size_t *n, lorac_err *err) {
    *ids = NULL;
    *n = 0;
    lorac_err e = {0};
    int rc = encode(ctx, text, len, ids, n, &e);
    if (rc) {
        free(*ids);
        *ids = NULL;
        return lorac_fail(err, rc, "%s:%d: %s", ex->path, line, e.msg);
    }
    if (*n && !*ids) return lorac_fail(err, LORAC_EINVAL, "%s:%d: the tokenizer returned no ids", ex->path, line);
    for (size_t i = 0; i < *n; i++)
        if ((*ids)[i] < 0) /* would read as TRAIN_IGNORE or index out of the vocabulary */
            return lorac_fail(err, LORAC_EINVAL, "%s:%d: the tokenizer returned id %d", ex->path, line, (int)(*ids)[i]);
    return LORAC_OK;
}

int train_data_build(const train_examples *ex, train_encode_fn encode, void *encode_ctx,
                     int32_t eos_id, size_t max_seq_len, train_data *out, lorac_err *err) {
    memset(out, 0, sizeof *out);
    out->pad_id = eos_id;
    if (max_seq_len < 2) return lorac_fail(err, LORAC_EINVAL, "%s: max_seq_len must be >= 2", ex->path);
    if (eos_id < 0) return lorac_fail(err, LORAC_EINVAL, "%s: the end-of-text id %d is negative", ex->path, (int)eos_id);
    size_t bytes;
    if (lorac_size_add(ex->n, 1, &bytes) || lorac_size_mul(bytes, sizeof(size_t), &bytes))
        return lorac_fail(err, LORAC_ENOMEM, "%s: too many examples", ex->path);
    out->off = malloc(bytes);
    if (!out->off) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", ex->path);
    out->off[0] = 0;
    seqbuf b = {0};
    char *scratch = NULL;
    size_t scratch_cap = 0;
    int rc = LORAC_OK;
    for (size_t i = 0; i < ex->n && rc == LORAC_OK; i++) {
        const train_example *e = &ex->ex[i];
        int32_t *a = NULL, *c = NULL;
        size_t na = 0, nc = 0;
        size_t first_scored; /* position of the first predicted token */
        if (e->context) {
            /* enc(context) + [eos] + enc(" " + completion) + [eos] */
            if (scratch_cap < e->completion_len + 1) {
                char *t = realloc(scratch, e->completion_len + 1);
                if (!t) { rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", ex->path); break; }
                scratch = t;
                scratch_cap = e->completion_len + 1;
            }
            scratch[0] = ' ';
            memcpy(scratch + 1, e->completion, e->completion_len);
            rc = encode_at(ex, e->line, encode, encode_ctx, e->context, e->context_len, &a, &na, err);
            if (!rc) rc = encode_at(ex, e->line, encode, encode_ctx, scratch, e->completion_len + 1, &c, &nc, err);
            first_scored = na + 1;
        } else {
            /* enc(text) + [eos], every next token predicted */
            rc = encode_at(ex, e->line, encode, encode_ctx, e->completion, e->completion_len, &c, &nc, err);
            first_scored = 1;
        }
        size_t len = na + nc + 1 + (e->context ? 1 : 0);
        if (!rc && seqbuf_reserve(&b, len))
            rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory for the tokens", ex->path);
        if (!rc) {
            int32_t *ids = b.ids + b.len, *tg = b.targets + b.len;
            size_t p = 0;
            if (e->context) {
                if (na) memcpy(ids, a, na * sizeof *ids);
                p = na;
                ids[p++] = eos_id;
            }
            if (nc) memcpy(ids + p, c, nc * sizeof *ids);
            p += nc;
            ids[p++] = eos_id;
            if (len > max_seq_len) {
                len = max_seq_len; /* keep the start, as the paper's padding_tokens(direct=1) */
                out->n_truncated++;
            }
            size_t scored = 0;
            for (size_t q = 0; q < len; q++) {
                int on = q + 1 >= first_scored && q + 1 < len;
                tg[q] = on ? ids[q + 1] : TRAIN_IGNORE;
                scored += (size_t)on;
            }
            if (scored == 0) {
                out->n_dropped++;
            } else {
                b.len += len;
                out->off[out->n + 1] = b.len;
                out->n++;
                out->n_targets += scored;
                if (len > out->max_len) out->max_len = len;
            }
        }
        free(a);
        free(c);
    }
    free(scratch);
    if (!rc && out->n == 0)
        rc = lorac_fail(err, LORAC_EFORMAT, "%s: no example has a token to predict within %zu tokens",
                        ex->path, max_seq_len);
    if (rc) {
        free(b.ids);
        free(b.targets);
        free(out->off);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->ids = b.ids;
    out->targets = b.targets;
    out->n_tokens = b.len;
    return LORAC_OK;
}

void train_data_free(train_data *d) {
    free(d->off);
    free(d->ids);
    free(d->targets);
    free(d->type_ids);
    free(d->labels);
    free(d->scores);
    memset(d, 0, sizeof *d);
}

/* Keeps n of d's sequences: the first n, or the first n of a Fisher-Yates shuffle seeded by seed. */
int train_data_subset(train_data *d, size_t n, int shuffle, uint64_t seed, lorac_err *err) {
    if (n >= d->n) return LORAC_OK;
    size_t *order = malloc(d->n * sizeof *order);
    train_data s;
    memset(&s, 0, sizeof s);
    s.pad_id = d->pad_id;
    if (!order) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    for (size_t i = 0; i < d->n; i++) order[i] = i;
    lorac_rng rng;
    lorac_rng_seed(&rng, seed);
    for (size_t i = d->n; shuffle && i > 1; i--) {
        size_t j = (size_t)(lorac_rng_u64(&rng) % i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    size_t toks = 0;
    for (size_t i = 0; i < n; i++) toks += d->off[order[i] + 1] - d->off[order[i]];
    int ok = (s.off = malloc((n + 1) * sizeof *s.off)) && (s.ids = malloc(toks * sizeof *s.ids + 1)) &&
             (s.targets = malloc(toks * sizeof *s.targets + 1)) && (!d->type_ids || (s.type_ids = malloc(toks * sizeof *s.type_ids + 1))) &&
             (!d->labels || (s.labels = malloc(n * sizeof *s.labels))) && (!d->scores || (s.scores = malloc(n * sizeof *s.scores)));
    for (size_t i = 0; ok && i < n; i++) {
        size_t o = d->off[order[i]], len = d->off[order[i] + 1] - o;
        s.off[i] = s.n_tokens;
        memcpy(s.ids + s.n_tokens, d->ids + o, len * sizeof *s.ids);
        memcpy(s.targets + s.n_tokens, d->targets + o, len * sizeof *s.targets);
        if (s.type_ids) memcpy(s.type_ids + s.n_tokens, d->type_ids + o, len * sizeof *s.type_ids);
        if (s.labels) s.labels[i] = d->labels[order[i]];
        if (s.scores) s.scores[i] = d->scores[order[i]];
        for (size_t p = 0; p < len; p++) s.n_targets += s.targets[s.n_tokens + p] != TRAIN_IGNORE;
        s.n_tokens += len;
        s.max_len = len > s.max_len ? len : s.max_len;
        s.n = i + 1;
    }
    free(order);
    if (!ok) {
        train_data_free(&s);
        return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    }
    s.off[n] = s.n_tokens;
    train_data_free(d);
    *d = s;
    return LORAC_OK;
}
