/* The training log (JSONL, streamed) and the loss-curve SVG (written atomically at the end). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/json.h"
#include "lorac/train.h"

/* ------------------------------------------------------------------ points kept for the curve */

static int push_point(long long **steps, float **vals, size_t *n, size_t *cap, long long step, double v) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        if (c > SIZE_MAX / sizeof(long long)) return -1;
        long long *s = realloc(*steps, c * sizeof *s);
        if (!s) return -1;
        *steps = s;
        float *f = realloc(*vals, c * sizeof *f);
        if (!f) return -1;
        *vals = f;
        *cap = c;
    }
    (*steps)[*n] = step;
    (*vals)[*n] = (float)v;
    (*n)++;
    return 0;
}

static void trainlog_free(trainlog *lg) {
    free(lg->step);
    free(lg->loss);
    free(lg->eval_step);
    free(lg->eval_loss);
    lg->step = lg->eval_step = NULL;
    lg->loss = lg->eval_loss = NULL;
    lg->n = lg->cap = lg->n_eval = lg->cap_eval = 0;
}

/* ------------------------------------------------------------------ the JSONL log */

/* Keeps the lines of an earlier log up to step `upto` (a resumed run rewrites the rest) and
 * reloads their points. A last line cut short by a crash is dropped; a bad line elsewhere is an error. */
static int log_reload(trainlog *lg, long long upto, lorac_err *err) {
    char *buf = NULL;
    size_t n = 0;
    FILE *probe = fopen(lg->path, "rb");
    if (!probe) return LORAC_OK; /* nothing to keep */
    fclose(probe);
    int rc = lorac_read_file(lg->path, &buf, &n, err);
    if (rc) return rc;
    char *kept = malloc(n + 1);
    if (!kept) {
        free(buf);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", lg->path);
    }
    size_t kept_n = 0;
    int lineno = 0;
    for (size_t pos = 0; pos < n && !rc;) {
        char *nl = memchr(buf + pos, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - (buf + pos)) : n - pos;
        lineno++;
        size_t k = 0;
        while (k < len && (buf[pos + k] == ' ' || buf[pos + k] == '\r' || buf[pos + k] == '\t')) k++;
        if (k < len) {
            json_doc *doc = NULL;
            lorac_err perr = {0};
            if (json_parse(buf + pos, len, lg->path, lineno, &doc, &perr) != LORAC_OK) {
                if (nl && pos + len + 1 < n) rc = lorac_fail(err, LORAC_EFORMAT, "%s", perr.msg);
                pos = n; /* the crash-truncated tail */
                continue;
            }
            const json_value *root = json_root(doc);
            int bad = 0;
            long long step = json_get_int(root, "step", -1, &bad);
            if (json_kind(root) != JSON_OBJECT || bad || step < 0) {
                rc = lorac_fail(err, LORAC_EFORMAT, "%s:%d: a log line without a \"step\"", lg->path, lineno);
            } else if (step <= upto) {
                const json_value *ev = json_get(root, "eval_loss");
                int fail = 0;
                if (ev) fail = push_point(&lg->eval_step, &lg->eval_loss, &lg->n_eval, &lg->cap_eval, step,
                                          json_kind(ev) == JSON_NUMBER ? json_num(ev) : NAN);
                const json_value *tl = json_get(root, "loss");
                if (tl) fail |= push_point(&lg->step, &lg->loss, &lg->n, &lg->cap, step,
                                           json_kind(tl) == JSON_NUMBER ? json_num(tl) : NAN);
                if (fail) rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", lg->path);
                memcpy(kept + kept_n, buf + pos, len);
                kept_n += len;
                kept[kept_n++] = '\n';
            }
            json_free(doc);
        }
        pos += len + 1;
    }
    if (!rc) rc = lorac_write_file(lg->path, kept, kept_n, err);
    free(kept);
    free(buf);
    return rc;
}

int trainlog_open(trainlog *lg, const char *path, long long resume_step, lorac_err *err) {
    memset(lg, 0, sizeof *lg);
    if (strlen(path) >= sizeof lg->path) return lorac_fail(err, LORAC_EINVAL, "%s: path too long", path);
    strcpy(lg->path, path);
    int rc = LORAC_OK;
    if (resume_step >= 0) rc = log_reload(lg, resume_step, err);
    /* The log is streamed (flushed per line) so a run can be watched and a crash keeps the steps
     * done; a resumed run first rewrote it atomically above. */
    if (!rc) {
        lg->f = fopen(path, resume_step >= 0 ? "ab" : "wb");
        if (!lg->f) rc = lorac_fail(err, LORAC_EIO, "%s: cannot open for writing", path);
    }
    if (rc) trainlog_free(lg);
    return rc;
}

static int end_line(trainlog *lg, json_writer *w, lorac_err *err) {
    fputc('\n', lg->f);
    if (w->error || fflush(lg->f) != 0 || ferror(lg->f))
        return lorac_fail(err, LORAC_EIO, "%s: write failed", lg->path);
    return LORAC_OK;
}

int trainlog_write_step(trainlog *lg, const trainlog_entry *e, lorac_err *err) {
    if (!lg->f) return lorac_fail(err, LORAC_EINVAL, "%s: the log is not open", lg->path);
    json_writer w;
    jw_init(&w, lg->f, 0);
    jw_object_begin(&w);
    jw_key(&w, "step"); jw_int(&w, e->step);
    jw_key(&w, "epoch"); jw_double(&w, e->epoch);
    jw_key(&w, "loss"); jw_double(&w, e->loss);
    jw_key(&w, "lr"); jw_double(&w, e->lr);
    if (e->grad_norm >= 0.0) { jw_key(&w, "grad_norm"); jw_double(&w, e->grad_norm); }
    jw_key(&w, "tokens_per_s"); jw_double(&w, e->tokens_per_s);
    jw_key(&w, "elapsed_s"); jw_double(&w, e->elapsed_s);
    jw_object_end(&w);
    int rc = end_line(lg, &w, err);
    if (!rc && push_point(&lg->step, &lg->loss, &lg->n, &lg->cap, e->step, e->loss))
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", lg->path);
    return rc;
}

int trainlog_write_eval(trainlog *lg, long long step, double eval_loss, size_t eval_tokens,
                        lorac_err *err) {
    if (!lg->f) return lorac_fail(err, LORAC_EINVAL, "%s: the log is not open", lg->path);
    json_writer w;
    jw_init(&w, lg->f, 0);
    jw_object_begin(&w);
    jw_key(&w, "step"); jw_int(&w, step);
    jw_key(&w, "eval_loss"); jw_double(&w, eval_loss);
    jw_key(&w, "eval_tokens"); jw_int(&w, (long long)eval_tokens);
    jw_object_end(&w);
    int rc = end_line(lg, &w, err);
    if (!rc && push_point(&lg->eval_step, &lg->eval_loss, &lg->n_eval, &lg->cap_eval, step, eval_loss))
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", lg->path);
    return rc;
}

int trainlog_close(trainlog *lg, lorac_err *err) {
    int rc = LORAC_OK;
    if (lg->f && fclose(lg->f) != 0) rc = lorac_fail(err, LORAC_EIO, "%s: write failed", lg->path);
    lg->f = NULL;
    trainlog_free(lg);
    return rc;
}

/* ------------------------------------------------------------------ the SVG loss curve */

enum { SVG_W = 800, SVG_H = 460, PAD_L = 72, PAD_R = 24, PAD_T = 48, PAD_B = 56, MAX_PTS = 1200 };

/* A "nice" tick spacing (1, 2 or 5 × 10^k) giving about `want` intervals over span. */
static double nice_step(double span, int want) {
    double raw = span / want;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    return (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * mag;
}

static void svg_text_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else if ((unsigned char)*s >= 0x20 || *s == '\t') fputc(*s, f);
    }
}

typedef struct plot {
    double x0, x1, y0, y1;
} plot;

static double px(const plot *p, double x) { return PAD_L + (x - p->x0) / (p->x1 - p->x0) * (SVG_W - PAD_L - PAD_R); }
static double py(const plot *p, double y) { return SVG_H - PAD_B - (y - p->y0) / (p->y1 - p->y0) * (SVG_H - PAD_T - PAD_B); }

/* A path through (x[i], y[i]); non-finite y values break it. */
static void svg_path(FILE *f, const plot *p, const double *x, const double *y, size_t n, const char *color,
                     double width) {
    fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-linejoin=\"round\" d=\"", color, width);
    int pen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) { pen = 0; continue; }
        fprintf(f, "%c%.1f %.1f ", pen ? 'L' : 'M', px(p, x[i]), py(p, y[i]));
        pen = 1;
    }
    fputs("\"/>\n", f);
}

/* Train points averaged into at most MAX_PTS buckets, so a long run stays a small file. */
static size_t bucket_points(const trainlog *lg, double *x, double *y) {
    size_t per = (lg->n + MAX_PTS - 1) / MAX_PTS, m = 0;
    if (per < 1) per = 1;
    for (size_t i = 0; i < lg->n; i += per) {
        double sx = 0, sy = 0;
        size_t k = 0, fin = 0;
        for (; k < per && i + k < lg->n; k++) {
            sx += (double)lg->step[i + k];
            if (isfinite(lg->loss[i + k])) { sy += lg->loss[i + k]; fin++; }
        }
        x[m] = sx / (double)k;
        y[m] = fin ? sy / (double)fin : NAN;
        m++;
    }
    return m;
}

static void svg_write(FILE *f, const trainlog *lg, const char *title, double *bx, double *by, double *sm) {
    size_t nb = bucket_points(lg, bx, by);
    /* data ranges */
    double xmax = 1, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < lg->n; i++) {
        if ((double)lg->step[i] > xmax) xmax = (double)lg->step[i];
        if (isfinite(lg->loss[i])) { lo = fmin(lo, lg->loss[i]); hi = fmax(hi, lg->loss[i]); }
    }
    for (size_t i = 0; i < lg->n_eval; i++) {
        if ((double)lg->eval_step[i] > xmax) xmax = (double)lg->eval_step[i];
        if (isfinite(lg->eval_loss[i])) { lo = fmin(lo, lg->eval_loss[i]); hi = fmax(hi, lg->eval_loss[i]); }
    }
    int have = lo <= hi;
    if (!have) { lo = 0; hi = 1; }
    if (hi - lo < 1e-9 * fmax(1.0, fabs(hi))) { lo -= 0.5; hi += 0.5; }
    double ystep = nice_step(hi - lo, 6);
    plot p = {0, 0, floor(lo / ystep) * ystep, ceil(hi / ystep) * ystep};
    double xstep = nice_step(xmax, 8);
    if (xstep < 1) xstep = 1;
    p.x1 = ceil(xmax / xstep) * xstep;

    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"Helvetica, Arial, sans-serif\">\n", SVG_W, SVG_H, SVG_W, SVG_H);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", SVG_W, SVG_H);
    fprintf(f, "<text x=\"%d\" y=\"28\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\" fill=\"#222\">",
            (SVG_W + PAD_L - PAD_R) / 2);
    svg_text_escaped(f, title ? title : "training loss");
    fputs("</text>\n", f);
    /* grid, ticks and tick labels */
    int ydec = ystep >= 1 ? 0 : (int)ceil(-log10(ystep) - 1e-9);
    fputs("<g font-size=\"12\" fill=\"#444\">\n", f);
    for (double y = p.y0; y <= p.y1 + ystep * 1e-6; y += ystep) {
        double Y = py(&p, y);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", PAD_L, Y, SVG_W - PAD_R, Y);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#333\"/>\n", PAD_L - 5, Y, PAD_L, Y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", PAD_L - 8, Y + 4, ydec, y);
    }
    for (double x = 0; x <= p.x1 + xstep * 1e-6; x += xstep) {
        double X = px(&p, x);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e4e4e4\"/>\n", X, PAD_T, X, SVG_H - PAD_B);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\"/>\n", X, SVG_H - PAD_B, X,
                SVG_H - PAD_B + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.0f</text>\n", X, SVG_H - PAD_B + 19, x);
    }
    fputs("</g>\n", f);
    /* axes and their labels */
    fprintf(f, "<path fill=\"none\" stroke=\"#333\" d=\"M%d %d V%d H%d\"/>\n", PAD_L, PAD_T, SVG_H - PAD_B, SVG_W - PAD_R);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"14\" fill=\"#222\">optimizer step</text>\n",
            (SVG_W + PAD_L - PAD_R) / 2, SVG_H - 14);
    fprintf(f, "<text transform=\"translate(18 %d) rotate(-90)\" text-anchor=\"middle\" font-size=\"14\" "
               "fill=\"#222\">loss</text>\n", (SVG_H + PAD_T - PAD_B) / 2);
    if (!have)
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"14\" fill=\"#888\">no data</text>\n",
                (SVG_W + PAD_L - PAD_R) / 2, (SVG_H + PAD_T - PAD_B) / 2);
    /* curves */
    const char *raw_color = lg->n >= 20 ? "#a6c8e6" : "#1f77b4";
    int legend = 0;
    const char *labels[3];
    const char *colors[3];
    if (nb) {
        svg_path(f, &p, bx, by, nb, raw_color, 1.2);
        labels[legend] = "train loss";
        colors[legend++] = raw_color;
    }
    if (lg->n >= 20) {
        /* exponential moving average over ~2% of the run, NaNs skipped */
        double alpha = 2.0 / ((double)lg->n / 50.0 + 1.0), ema = NAN;
        if (alpha > 1) alpha = 1;
        for (size_t i = 0; i < nb; i++) {
            /* buckets of `per` points: apply the per-point decay `per` times */
            double a = 1.0 - pow(1.0 - alpha, (double)((lg->n + nb - 1) / nb));
            if (isfinite(by[i])) ema = isfinite(ema) ? ema + a * (by[i] - ema) : by[i];
            sm[i] = ema;
        }
        svg_path(f, &p, bx, sm, nb, "#1f77b4", 2.2);
        labels[legend] = "train loss (smoothed)";
        colors[legend++] = "#1f77b4";
    }
    if (lg->n_eval) {
        for (size_t i = 0; i < lg->n_eval; i++) {
            bx[i] = (double)lg->eval_step[i];
            by[i] = lg->eval_loss[i];
        }
        svg_path(f, &p, bx, by, lg->n_eval, "#d62728", 1.8);
        for (size_t i = 0; i < lg->n_eval; i++)
            if (isfinite(by[i]))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#d62728\"/>\n", px(&p, bx[i]), py(&p, by[i]));
        labels[legend] = "eval loss";
        colors[legend++] = "#d62728";
    }
    /* legend, top right */
    if (legend) {
        int lx = SVG_W - PAD_R - 190, ly = PAD_T + 10;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"180\" height=\"%d\" fill=\"white\" fill-opacity=\"0.85\" "
                   "stroke=\"#ccc\"/>\n", lx, ly, 10 + 20 * legend);
        for (int i = 0; i < legend; i++) {
            int y = ly + 19 + 20 * i;
            fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2.5\"/>\n", lx + 10,
                    y - 4, lx + 34, y - 4, colors[i]);
            fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#222\">%s</text>\n", lx + 42, y, labels[i]);
        }
    }
    fputs("</svg>\n", f);
}

int trainlog_write_svg(const trainlog *lg, const char *path, const char *title, lorac_err *err) {
    size_t m = lg->n_eval > MAX_PTS ? lg->n_eval : MAX_PTS;
    double *bx = malloc(m * sizeof *bx), *by = malloc(m * sizeof *by), *sm = malloc(m * sizeof *sm);
    if (!bx || !by || !sm) {
        free(bx);
        free(by);
        free(sm);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    }
    lorac_out o;
    int rc = lorac_out_open(&o, path, err);
    if (!rc) {
        svg_write(o.f, lg, title, bx, by, sm);
        rc = lorac_out_commit(&o, err);
    }
    free(bx);
    free(by);
    free(sm);
    return rc;
}
