/* JSON writer: streams to a FILE, handling commas, indentation and escaping. */
#include "lorac/json.h"

#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/json_internal.h"

#define JW_MAX_DEPTH 63 /* first[] and in_object[] hold 64 levels, level 0 being the top */

void jw_init(json_writer *w, FILE *f, int pretty) {
    memset(w, 0, sizeof *w);
    w->f = f;
    w->pretty = pretty;
    w->first[0] = 1;
}

static void jw_indent(json_writer *w) {
    if (!w->pretty) return;
    fputc('\n', w->f);
    for (int d = 0; d < w->depth; d++) fputs("  ", w->f);
}

/* Everything a value needs before it: a separator, indentation, or the check that a key came first. */
static void jw_before_value(json_writer *w) {
    if (w->depth == 0) {
        if (!w->first[0]) fputc('\n', w->f); /* one top-level value per line */
        w->first[0] = 0;
        return;
    }
    if (w->in_object[w->depth]) {
        if (!w->after_key) w->error = 1;
        w->after_key = 0;
        return;
    }
    if (!w->first[w->depth]) fputc(',', w->f);
    w->first[w->depth] = 0;
    jw_indent(w);
}

static void jw_begin(json_writer *w, int is_object) {
    jw_before_value(w);
    if (w->depth >= JW_MAX_DEPTH) {
        w->error = 1;
        return;
    }
    fputc(is_object ? '{' : '[', w->f);
    w->depth++;
    w->first[w->depth] = 1;
    w->in_object[w->depth] = (char)is_object;
}

static void jw_end(json_writer *w, int is_object) {
    if (w->depth == 0 || w->in_object[w->depth] != is_object || w->after_key) {
        w->error = 1;
        return;
    }
    int empty = w->first[w->depth];
    w->depth--;
    if (!empty) jw_indent(w);
    fputc(is_object ? '}' : ']', w->f);
}

void jw_object_begin(json_writer *w) { jw_begin(w, 1); }
void jw_object_end(json_writer *w) { jw_end(w, 1); }
void jw_array_begin(json_writer *w) { jw_begin(w, 0); }
void jw_array_end(json_writer *w) { jw_end(w, 0); }

static void jw_escaped(json_writer *w, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    fputc('"', w->f);
    size_t run = 0; /* start of the pending run of bytes that need no escaping */
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        const char *esc = NULL;
        char buf[8];
        size_t k = 1;
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c == '\b') esc = "\\b";
        else if (c == '\f') esc = "\\f";
        else if (c < 0x20) {
            snprintf(buf, sizeof buf, "\\u%04x", c);
            esc = buf;
        } else if (c >= 0x80) {
            k = json_utf8_seq_len(u + i, n - i);
            if (!k) {
                esc = "\\ufffd";
                k = 1;
            }
        }
        if (esc) {
            fwrite(s + run, 1, i - run, w->f);
            fputs(esc, w->f);
            run = i + k;
        }
        i += k;
    }
    fwrite(s + run, 1, n - run, w->f);
    fputc('"', w->f);
}

void jw_key(json_writer *w, const char *key) {
    if (w->depth == 0 || !w->in_object[w->depth] || w->after_key) {
        w->error = 1;
        return;
    }
    if (!w->first[w->depth]) fputc(',', w->f);
    w->first[w->depth] = 0;
    jw_indent(w);
    jw_escaped(w, key ? key : "", key ? strlen(key) : 0);
    fputs(w->pretty ? ": " : ":", w->f);
    w->after_key = 1;
}

void jw_string_n(json_writer *w, const char *s, size_t n) {
    jw_before_value(w);
    jw_escaped(w, s ? s : "", s ? n : 0);
}

void jw_string(json_writer *w, const char *s) { jw_string_n(w, s, s ? strlen(s) : 0); }

/* Shortest "%.Ng" that reads back to v; written with '.' whatever the locale, and with ".0"
 * when it would otherwise look like an integer (so Python reads it back as a float). */
void jw_double(json_writer *w, double v) {
    if (!isfinite(v)) {
        jw_null(w);
        return;
    }
    jw_before_value(w);
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    const char *dp = localeconv()->decimal_point;
    if (dp && dp[0] && !dp[1] && dp[0] != '.') {
        char *q = strchr(buf, dp[0]);
        if (q) *q = '.';
    }
    if (!strpbrk(buf, ".e")) strcat(buf, ".0");
    fputs(buf, w->f);
}

void jw_int(json_writer *w, long long v) {
    jw_before_value(w);
    fprintf(w->f, "%lld", v);
}

void jw_bool(json_writer *w, int v) {
    jw_before_value(w);
    fputs(v ? "true" : "false", w->f);
}

void jw_null(json_writer *w) {
    jw_before_value(w);
    fputs("null", w->f);
}

int jw_file_open(json_writer *w, lorac_out *o, const char *path, lorac_err *err) {
    int rc = lorac_out_open(o, path, err);
    if (!rc) jw_init(w, o->f, 1);
    return rc;
}

int jw_file_commit(json_writer *w, lorac_out *o, int rc, const char *path, lorac_err *err) {
    if (!rc && w->error) rc = lorac_fail(err, LORAC_EINVAL, "%s: internal JSON writer error", path);
    if (rc) {
        lorac_out_abort(o);
        return rc;
    }
    fputc('\n', o->f);
    return lorac_out_commit(o, err);
}

void jw_key_int(json_writer *w, const char *key, long long v) {
    jw_key(w, key);
    jw_int(w, v);
}

void jw_key_double(json_writer *w, const char *key, double v) {
    jw_key(w, key);
    jw_double(w, v);
}
