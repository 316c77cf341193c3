/* GLUE tasks and their TSV files (the layouts of the GLUE distribution). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/glue.h"

/* Column names of files with a header: a, b (NULL for single sentences), label. */
static void layout(const glue_task *t, const char **a, const char **b, const char **lab) {
    *b = NULL;
    if (!strcmp(t->dir, "SST-2")) { *a = "sentence"; *lab = "label"; }
    else if (!strcmp(t->dir, "MRPC")) { *a = "#1 String"; *b = "#2 String"; *lab = "Quality"; }
    else if (!strcmp(t->dir, "STS-B")) { *a = "sentence1"; *b = "sentence2"; *lab = "score"; }
    else if (!strcmp(t->dir, "QQP")) { *a = "question1"; *b = "question2"; *lab = "is_duplicate"; }
    else if (!strcmp(t->dir, "MNLI")) { *a = "sentence1"; *b = "sentence2"; *lab = "gold_label"; }
    else if (!strcmp(t->dir, "QNLI")) { *a = "question"; *b = "sentence"; *lab = "label"; }
    else { *a = "sentence1"; *b = "sentence2"; *lab = "label"; } /* RTE */
}

static int parse_label(const glue_task *t, const char *s, glue_example *e) {
    char *end;
    if (t->num_labels == 1) {
        double v = strtod(s, &end);
        if (end == s || *end) return -1;
        e->score = (float)v;
        return 0;
    }
    long v = strtol(s, &end, 10);
    if (end != s && !*end) {
        if (v < 0 || v >= t->num_labels) return -1;
        e->label = (int)v;
        return 0;
    }
    static const char *nli2[] = {"entailment", "not_entailment"};
    static const char *mnli[] = {"contradiction", "entailment", "neutral"};
    const char **names = !strcmp(t->dir, "MNLI") ? mnli : (!strcmp(t->dir, "QNLI") || !strcmp(t->dir, "RTE")) ? nli2 : NULL;
    for (int i = 0; names && i < t->num_labels; i++)
        if (!strcmp(s, names[i])) {
            e->label = i;
            return 0;
        }
    return -1;
}

/* Splits line in place on tabs into at most cap fields; returns the count. */
static int split(char *line, char **f, int cap) {
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p; p++)
        if (*p == '\t') {
            *p = 0;
            if (n == cap) return cap + 1;
            f[n++] = p + 1;
        }
    return n;
}

void glue_data_free(glue_data *d) {
    free(d->ex);
    free(d->text);
    memset(d, 0, sizeof *d);
}

int glue_read_tsv(const glue_task *t, const char *path, glue_data *out, lorac_err *err) {
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", path);
    size_t len = 0;
    int rc = lorac_read_file(path, &out->text, &len, err);
    if (rc) return rc;
    char *s = out->text;
    if (len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) s += 3;
    size_t lines = 1;
    for (char *p = s; *p; p++) lines += *p == '\n';
    out->ex = calloc(lines, sizeof *out->ex);
    if (!out->ex) {
        glue_data_free(out);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    }
    int cola = !strcmp(t->dir, "CoLA");
    int ia = 3, ib = -1, il = 1, ncols = 4; /* CoLA's fixed layout */
    const char *na, *nb, *nl;
    layout(t, &na, &nb, &nl);
    char *f[64];
    int lineno = 0;
    for (char *line = s; line && *line && !rc;) {
        char *nl_p = strchr(line, '\n');
        if (nl_p) *nl_p = 0;
        lineno++;
        size_t L = strlen(line);
        if (L && line[L - 1] == '\r') line[--L] = 0;
        char *next = nl_p ? nl_p + 1 : NULL;
        if (!L) { line = next; continue; }
        int n = split(line, f, 64);
        if (lineno == 1 && !cola) { /* header: find the columns by name */
            ia = ib = il = -1;
            ncols = n;
            for (int i = 0; i < n && i < 64; i++) {
                if (!strcmp(f[i], na)) ia = i;
                if (nb && !strcmp(f[i], nb)) ib = i;
                if (!strcmp(f[i], nl)) il = i;
            }
            const char *miss = ia < 0 ? na : (nb && ib < 0) ? nb : il < 0 ? nl : NULL;
            if (miss) rc = lorac_fail(err, LORAC_EFORMAT, "%s:1: no column \"%s\" in the header (is this a %s file?)", path, miss, t->dir);
            line = next;
            continue;
        }
        if (n != ncols) {
            rc = lorac_fail(err, LORAC_EFORMAT, "%s:%d: expected %d tab-separated columns for %s, found %d", path, lineno,
                            ncols, t->dir, n > 64 ? 64 : n);
            break;
        }
        glue_example *e = &out->ex[out->n];
        e->a = f[ia];
        e->b = ib >= 0 ? f[ib] : NULL;
        e->line = lineno;
        if (parse_label(t, f[il], e)) {
            char shown[64];
            snprintf(shown, sizeof shown, "%.40s", f[il]);
            for (char *p = shown; *p; p++) if ((unsigned char)*p < 32) *p = '?';
            rc = lorac_fail(err, LORAC_EFORMAT, "%s:%d: label \"%s\" is not a valid %s label (%s)", path, lineno, shown,
                            t->dir, t->num_labels == 1 ? "a number" : t->num_labels == 3 ? "0..2 or a class name" : "0 or 1");
            break;
        }
        out->n++;
        line = next;
    }
    if (!rc && out->n == 0) rc = lorac_fail(err, LORAC_EFORMAT, "%s: no examples", path);
    if (rc) {
        char keep[1024];
        memcpy(keep, out->path, sizeof keep);
        glue_data_free(out);
        memcpy(out->path, keep, sizeof keep);
    }
    return rc;
}
