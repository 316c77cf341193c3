/* JSON reader: strict RFC 8259, recursive descent into a DOM that lives in one arena.
 *
 * Containers are flat arrays (json_at and json_key_at are O(1)); a container's children are
 * collected on a scratch stack while it is parsed and copied into the arena when it closes.
 * Objects with many members (a tokenizer's vocab) also get a hash index so json_get stays O(1).
 * Every string is copied (and unescaped) into the arena, so the input text can be freed after
 * json_parse returns.
 */
#include "lorac/json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/json_internal.h"

#define JSON_MAX_DEPTH 512
#define JSON_INDEX_MIN 16 /* objects with this many members get a hash index */

struct json_value {
    unsigned char type;
    unsigned char is_int; /* a number written as an integer literal that fits in long long */
    unsigned char b;
    union {
        struct { double d; long long i; } num;
        struct { char *s; size_t len; } str;
        struct { void *items; size_t n; uint32_t *index; } c; /* index[0] = slots, then slots */
    } u;
};

typedef struct json_member {
    const char *key;
    size_t key_len;
    json_value value;
} json_member;

typedef struct json_chunk {
    struct json_chunk *next;
    size_t cap, used;
    max_align_t data[];
} json_chunk;

struct json_doc {
    json_chunk *chunks;
    json_value root;
};

typedef struct json_parser {
    const unsigned char *text;
    size_t len, pos;
    const char *name;
    int first_line;
    int depth;
    json_doc *doc;
    json_member *stack; /* children of the open containers */
    size_t sp, cap;
    char dp;            /* the C library's decimal point ('.' unless someone called setlocale) */
    lorac_err *err;
    int failed;
} json_parser;

/* ---- arena ---- */

static void *arena_alloc(json_doc *d, size_t n) {
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    json_chunk *c = d->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > (size_t)1 << 16 ? n : (size_t)1 << 16;
        if (cap > SIZE_MAX - sizeof(json_chunk)) return NULL;
        c = malloc(sizeof(json_chunk) + cap);
        if (!c) return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = d->chunks;
        d->chunks = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

void json_free(json_doc *doc) {
    if (!doc) return;
    json_chunk *c = doc->chunks;
    while (c) {
        json_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(doc);
}

/* ---- errors ---- */

static int parse_fail(json_parser *p, size_t at, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int parse_fail(json_parser *p, size_t at, const char *fmt, ...) {
    if (p->failed) return LORAC_EFORMAT;
    p->failed = 1;
    long line = p->first_line;
    size_t line_start = 0;
    for (size_t i = 0; i < at && i < p->len; i++)
        if (p->text[i] == '\n') {
            line++;
            line_start = i + 1;
        }
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return lorac_fail(p->err, LORAC_EFORMAT, "%s:%ld:%zu: %s", p->name, line, at - line_start + 1, what);
}

static int fail_nomem(json_parser *p) {
    if (!p->failed) lorac_fail(p->err, LORAC_ENOMEM, "%s: out of memory while parsing JSON", p->name);
    p->failed = 1;
    return LORAC_ENOMEM;
}

/* Describes the byte at pos for "found ..." in messages. */
static const char *found_at(const json_parser *p, size_t pos, char buf[16]) {
    if (pos >= p->len) return "end of input";
    unsigned c = p->text[pos];
    if (c > 0x20 && c < 0x7f && c != '\'') snprintf(buf, 16, "'%c'", (char)c);
    else snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

static int expected(json_parser *p, const char *what) {
    char buf[16];
    return parse_fail(p, p->pos, "expected %s, found %s", what, found_at(p, p->pos, buf));
}

/* ---- scanning ---- */

static void skip_ws(json_parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->text[p->pos];
        if (c != ' ' && c != '\n' && c != '\t' && c != '\r') break;
        p->pos++;
    }
}

static int push_member(json_parser *p, const char *key, size_t key_len, const json_value *v) {
    if (p->sp == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        json_member *s = cap > SIZE_MAX / sizeof *s ? NULL : realloc(p->stack, cap * sizeof *s);
        if (!s) return fail_nomem(p);
        p->stack = s;
        p->cap = cap;
    }
    p->stack[p->sp].key = key;
    p->stack[p->sp].key_len = key_len;
    p->stack[p->sp].value = *v;
    p->sp++;
    return LORAC_OK;
}

static int hex4(const unsigned char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the string starting at the opening quote at p->pos into the arena. */
static int parse_string(json_parser *p, char **out, size_t *out_len) {
    const unsigned char *t = p->text;
    size_t open = p->pos, start = open + 1, i = start;
    /* fast path: printable ASCII without escapes is copied as is */
    while (i < p->len && t[i] != '"' && t[i] != '\\' && t[i] >= 0x20 && t[i] < 0x80) i++;
    if (i < p->len && t[i] == '"') {
        char *s = arena_alloc(p->doc, i - start + 1);
        if (!s) return fail_nomem(p);
        memcpy(s, t + start, i - start);
        s[i - start] = 0;
        *out = s;
        *out_len = i - start;
        p->pos = i + 1;
        return LORAC_OK;
    }
    /* find the closing quote; escapes never make the decoded text longer than the source */
    size_t end = i;
    while (end < p->len && t[end] != '"') end += t[end] == '\\' ? 2 : 1;
    if (end >= p->len) return parse_fail(p, open, "unterminated string");
    char *s = arena_alloc(p->doc, end - start + 1);
    if (!s) return fail_nomem(p);
    memcpy(s, t + start, i - start);
    size_t n = i - start;
    while (i < end) {
        unsigned c = t[i];
        if (c < 0x20) return parse_fail(p, i, "unescaped control character 0x%02x in string", c);
        if (c >= 0x80) {
            size_t k = json_utf8_seq_len(t + i, end - i);
            if (!k) return parse_fail(p, i, "invalid UTF-8 in string");
            memcpy(s + n, t + i, k);
            n += k;
            i += k;
            continue;
        }
        if (c != '\\') {
            s[n++] = (char)c;
            i++;
            continue;
        }
        unsigned e = t[i + 1]; /* i + 1 < end: the scan above stepped over it */
        switch (e) {
        case '"': s[n++] = '"'; break;
        case '\\': s[n++] = '\\'; break;
        case '/': s[n++] = '/'; break;
        case 'b': s[n++] = '\b'; break;
        case 'f': s[n++] = '\f'; break;
        case 'n': s[n++] = '\n'; break;
        case 'r': s[n++] = '\r'; break;
        case 't': s[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (i + 6 > end || hex4(t + i + 2, &cp)) return parse_fail(p, i, "invalid \\u escape (needs 4 hex digits)");
            if (cp >= 0xDC00 && cp <= 0xDFFF) return parse_fail(p, i, "unpaired surrogate \\u%04X in string", cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (i + 12 > end || t[i + 6] != '\\' || t[i + 7] != 'u' || hex4(t + i + 8, &lo) || lo < 0xDC00 ||
                    lo > 0xDFFF)
                    return parse_fail(p, i, "unpaired surrogate \\u%04X in string", cp);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            n += utf8_put(s + n, cp);
            i += 4;
            break;
        }
        default: {
            char buf[16];
            return parse_fail(p, i, "invalid escape: backslash followed by %s", found_at(p, i + 1, buf));
        }
        }
        i += 2;
    }
    s[n] = 0;
    *out = s;
    *out_len = n;
    p->pos = end + 1;
    return LORAC_OK;
}

static int parse_number(json_parser *p, json_value *v) {
    const unsigned char *t = p->text;
    size_t start = p->pos, i = start;
    int is_int = 1;
    if (i < p->len && t[i] == '-') i++;
    if (i >= p->len || t[i] < '0' || t[i] > '9') return parse_fail(p, start, "invalid number: no digits after '-'");
    if (t[i] == '0' && i + 1 < p->len && t[i + 1] >= '0' && t[i + 1] <= '9')
        return parse_fail(p, start, "invalid number: leading zeros are not allowed");
    while (i < p->len && t[i] >= '0' && t[i] <= '9') i++;
    if (i < p->len && t[i] == '.') {
        is_int = 0;
        i++;
        if (i >= p->len || t[i] < '0' || t[i] > '9') return parse_fail(p, start, "invalid number: no digits after '.'");
        while (i < p->len && t[i] >= '0' && t[i] <= '9') i++;
    }
    if (i < p->len && (t[i] == 'e' || t[i] == 'E')) {
        is_int = 0;
        i++;
        if (i < p->len && (t[i] == '+' || t[i] == '-')) i++;
        if (i >= p->len || t[i] < '0' || t[i] > '9') return parse_fail(p, start, "invalid number: no digits in exponent");
        while (i < p->len && t[i] >= '0' && t[i] <= '9') i++;
    }
    /* strtod needs a NUL-terminated copy; '.' becomes the C library's decimal point */
    size_t n = i - start;
    char small[64], *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf) return fail_nomem(p);
    memcpy(buf, t + start, n);
    buf[n] = 0;
    if (!is_int && p->dp != '.') {
        char *dot = memchr(buf, '.', n);
        if (dot) *dot = p->dp;
    }
    errno = 0;
    double d = strtod(buf, NULL);
    int range = errno == ERANGE && isinf(d);
    long long iv = 0;
    if (is_int) {
        errno = 0;
        iv = strtoll(buf, NULL, 10);
        if (errno == ERANGE) is_int = 0;
    }
    if (buf != small) free(buf);
    if (range) return parse_fail(p, start, "number out of range");
    v->type = JSON_NUMBER;
    v->is_int = (unsigned char)is_int;
    v->u.num.d = d;
    v->u.num.i = iv;
    p->pos = i;
    return LORAC_OK;
}

static int parse_literal(json_parser *p, json_value *v) {
    static const struct { const char *word; size_t n; json_type type; int b; } lits[] = {
        {"true", 4, JSON_BOOL, 1}, {"false", 5, JSON_BOOL, 0}, {"null", 4, JSON_NULL, 0}};
    for (int k = 0; k < 3; k++) {
        if (p->len - p->pos >= lits[k].n && !memcmp(p->text + p->pos, lits[k].word, lits[k].n)) {
            v->type = (unsigned char)lits[k].type;
            v->b = (unsigned char)lits[k].b;
            p->pos += lits[k].n;
            return LORAC_OK;
        }
    }
    return parse_fail(p, p->pos, "invalid literal (expected true, false or null)");
}

static uint64_t key_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* Open addressing with linear probing; members are inserted in order, so a lookup meets the
 * first of duplicate keys first. */
static int build_index(json_parser *p, json_value *obj) {
    size_t n = obj->u.c.n, slots = 32;
    if (n >= (size_t)1 << 30) return LORAC_OK; /* json_get falls back to a scan */
    while (slots < 2 * n) slots *= 2;
    uint32_t *ix = arena_alloc(p->doc, (slots + 1) * sizeof *ix);
    if (!ix) return fail_nomem(p);
    memset(ix, 0, (slots + 1) * sizeof *ix);
    ix[0] = (uint32_t)slots;
    const json_member *m = obj->u.c.items;
    for (size_t k = 0; k < n; k++) {
        size_t h = (size_t)key_hash(m[k].key, m[k].key_len) & (slots - 1);
        while (ix[1 + h]) h = (h + 1) & (slots - 1);
        ix[1 + h] = (uint32_t)(k + 1);
    }
    obj->u.c.index = ix;
    return LORAC_OK;
}

static int parse_value(json_parser *p, json_value *v);

/* Copies the container's children (stack[base..sp)) into the arena. */
static int close_container(json_parser *p, json_value *v, size_t base) {
    size_t n = p->sp - base;
    v->u.c.n = n;
    v->u.c.items = NULL;
    v->u.c.index = NULL;
    if (n == 0) return LORAC_OK;
    if (v->type == JSON_ARRAY) {
        json_value *items = arena_alloc(p->doc, n * sizeof *items); /* n * size fits: stack holds more */
        if (!items) return fail_nomem(p);
        for (size_t k = 0; k < n; k++) items[k] = p->stack[base + k].value;
        v->u.c.items = items;
    } else {
        json_member *m = arena_alloc(p->doc, n * sizeof *m);
        if (!m) return fail_nomem(p);
        memcpy(m, p->stack + base, n * sizeof *m);
        v->u.c.items = m;
        p->sp = base;
        if (n >= JSON_INDEX_MIN) return build_index(p, v);
    }
    p->sp = base;
    return LORAC_OK;
}

static int parse_container(json_parser *p, json_value *v, int is_object) {
    if (++p->depth > JSON_MAX_DEPTH) return parse_fail(p, p->pos, "nesting deeper than %d levels", JSON_MAX_DEPTH);
    size_t base = p->sp;
    unsigned char close = is_object ? '}' : ']';
    v->type = is_object ? JSON_OBJECT : JSON_ARRAY;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->text[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            char *key = NULL;
            size_t key_len = 0;
            if (is_object) {
                skip_ws(p);
                if (p->pos >= p->len || p->text[p->pos] != '"') return expected(p, "a string key");
                int rc = parse_string(p, &key, &key_len);
                if (rc) return rc;
                skip_ws(p);
                if (p->pos >= p->len || p->text[p->pos] != ':') return expected(p, "':' after object key");
                p->pos++;
            }
            json_value item;
            memset(&item, 0, sizeof item);
            int rc = parse_value(p, &item);
            if (!rc) rc = push_member(p, key, key_len, &item);
            if (rc) return rc;
            skip_ws(p);
            if (p->pos < p->len && p->text[p->pos] == ',') {
                p->pos++;
                continue;
            }
            if (p->pos < p->len && p->text[p->pos] == close) {
                p->pos++;
                break;
            }
            return expected(p, is_object ? "',' or '}' after object member" : "',' or ']' after array element");
        }
    }
    p->depth--;
    return close_container(p, v, base);
}

static int parse_value(json_parser *p, json_value *v) {
    skip_ws(p);
    if (p->pos >= p->len) return expected(p, "a value");
    unsigned char c = p->text[p->pos];
    switch (c) {
    case '{': return parse_container(p, v, 1);
    case '[': return parse_container(p, v, 0);
    case '"':
        v->type = JSON_STRING;
        return parse_string(p, &v->u.str.s, &v->u.str.len);
    case 't': case 'f': case 'n': return parse_literal(p, v);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
        return expected(p, "a value");
    }
}

int json_parse(const char *text, size_t len, const char *name, int first_line, json_doc **out, lorac_err *err) {
    *out = NULL;
    json_parser p;
    memset(&p, 0, sizeof p);
    p.text = (const unsigned char *)text;
    p.len = text ? len : 0;
    p.name = name ? name : "<json>";
    p.first_line = first_line;
    p.err = err;
    const char *dp = localeconv()->decimal_point;
    p.dp = dp && dp[0] && !dp[1] ? dp[0] : '.';
    p.doc = calloc(1, sizeof *p.doc);
    if (!p.doc) return fail_nomem(&p);
    if (p.len >= 3 && !memcmp(p.text, "\xEF\xBB\xBF", 3)) p.pos = 3; /* RFC 8259 lets parsers skip a BOM */
    int rc = parse_value(&p, &p.doc->root);
    if (!rc) {
        skip_ws(&p);
        if (p.pos < p.len) {
            char buf[16];
            rc = parse_fail(&p, p.pos, "unexpected %s after the JSON value", found_at(&p, p.pos, buf));
        }
    }
    free(p.stack);
    if (rc) {
        json_free(p.doc);
        return rc;
    }
    *out = p.doc;
    return LORAC_OK;
}

int json_parse_file(const char *path, json_doc **out, lorac_err *err) {
    *out = NULL;
    char *text = NULL;
    size_t n = 0;
    int rc = lorac_read_file(path, &text, &n, err);
    if (rc) return rc;
    rc = json_parse(text, n, path, 1, out, err);
    free(text);
    return rc;
}

/* ---- access ---- */

const json_value *json_root(const json_doc *doc) { return doc ? &doc->root : NULL; }

json_type json_kind(const json_value *v) { return v ? (json_type)v->type : JSON_NULL; }

static int is_container(const json_value *v) { return v && (v->type == JSON_ARRAY || v->type == JSON_OBJECT); }

const json_value *json_get(const json_value *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT || !key) return NULL;
    const json_member *m = obj->u.c.items;
    size_t n = strlen(key);
    if (obj->u.c.index) {
        const uint32_t *ix = obj->u.c.index;
        size_t mask = ix[0] - 1, h = (size_t)key_hash(key, n) & mask;
        for (; ix[1 + h]; h = (h + 1) & mask) {
            const json_member *c = &m[ix[1 + h] - 1];
            if (c->key_len == n && !memcmp(c->key, key, n)) return &c->value;
        }
        return NULL;
    }
    for (size_t k = 0; k < obj->u.c.n; k++)
        if (m[k].key_len == n && !memcmp(m[k].key, key, n)) return &m[k].value;
    return NULL;
}

size_t json_len(const json_value *v) { return is_container(v) ? v->u.c.n : 0; }

const json_value *json_at(const json_value *v, size_t i) {
    if (!is_container(v) || i >= v->u.c.n) return NULL;
    if (v->type == JSON_ARRAY) return &((const json_value *)v->u.c.items)[i];
    return &((const json_member *)v->u.c.items)[i].value;
}

const char *json_key_at(const json_value *obj, size_t i) {
    if (!obj || obj->type != JSON_OBJECT || i >= obj->u.c.n) return NULL;
    return ((const json_member *)obj->u.c.items)[i].key;
}

size_t json_key_len_at(const json_value *obj, size_t i) {
    if (!obj || obj->type != JSON_OBJECT || i >= obj->u.c.n) return 0;
    return ((const json_member *)obj->u.c.items)[i].key_len;
}

const char *json_str(const json_value *v) { return v && v->type == JSON_STRING ? v->u.str.s : NULL; }
size_t json_str_len(const json_value *v) { return v && v->type == JSON_STRING ? v->u.str.len : 0; }
double json_num(const json_value *v) { return v && v->type == JSON_NUMBER ? v->u.num.d : 0.0; }
int json_bool(const json_value *v) { return v && v->type == JSON_BOOL ? v->b : 0; }

int json_int_exact(const json_value *v, long long *out) {
    if (!v || v->type != JSON_NUMBER || !v->is_int) return 0;
    *out = v->u.num.i;
    return 1;
}

static const json_value *get_present(const json_value *obj, const char *key) {
    const json_value *v = json_get(obj, key);
    return v && v->type != JSON_NULL ? v : NULL;
}

double json_get_num(const json_value *obj, const char *key, double def, int *bad) {
    const json_value *v = get_present(obj, key);
    if (!v) return def;
    if (v->type != JSON_NUMBER) {
        if (bad) *bad = 1;
        return def;
    }
    return v->u.num.d;
}

long long json_get_int(const json_value *obj, const char *key, long long def, int *bad) {
    const json_value *v = get_present(obj, key);
    if (!v) return def;
    if (v->type == JSON_NUMBER && v->is_int) return v->u.num.i;
    /* 16.0 or 1e3 are integers too, when exactly representable */
    double d = v->type == JSON_NUMBER ? v->u.num.d : 0.5;
    if (d != floor(d) || !(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) {
        if (bad) *bad = 1;
        return def;
    }
    return (long long)d;
}

const char *json_get_str(const json_value *obj, const char *key, const char *def, int *bad) {
    const json_value *v = get_present(obj, key);
    if (!v) return def;
    if (v->type != JSON_STRING) {
        if (bad) *bad = 1;
        return def;
    }
    return v->u.str.s;
}

int json_get_bool(const json_value *obj, const char *key, int def, int *bad) {
    const json_value *v = get_present(obj, key);
    if (!v) return def;
    if (v->type != JSON_BOOL) {
        if (bad) *bad = 1;
        return def;
    }
    return v->b;
}
