/* lorac analyze's outputs: the report as JSON, and SVG figures (spectra; φ heatmaps as the LoRA
 * paper's Figures 3 and 4). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/analyze.h"
#include "lorac/json.h"

/* ---------------------------------------------------------------- JSON */

static void jw_doubles(json_writer *w, const double *v, int n) {
    jw_array_begin(w);
    for (int i = 0; i < n; i++) jw_double(w, v[i]);
    jw_array_end(w);
}

static void jw_matrix(json_writer *w, const double *v, int rows, int cols) {
    jw_array_begin(w);
    for (int i = 0; i < rows; i++) jw_doubles(w, v + (size_t)i * cols, cols);
    jw_array_end(w);
}

/* The keys one adapter's ΔW has (the module object's own, and "second"'s). */
static void jw_delta(json_writer *w, const analyze_delta *d) {
    jw_key(w, "rank");
    jw_int(w, d->rank);
    jw_key(w, "scaling");
    jw_double(w, d->scaling);
    jw_key(w, "singular_values");
    jw_doubles(w, d->sv, d->n_sv);
    jw_key(w, "effective_rank");
    jw_double(w, d->effective_rank);
    jw_key(w, "energy");
    jw_doubles(w, d->energy, d->n_sv);
    jw_key(w, "norm_delta");
    jw_double(w, d->norm_delta);
    jw_key(w, "projection"); /* NaN (no W) is written as null */
    jw_object_begin(w);
    jw_key(w, "delta");
    jw_double(w, d->proj_delta);
    jw_key(w, "weight");
    jw_double(w, d->proj_weight);
    jw_key(w, "random");
    jw_double(w, d->proj_random);
    jw_object_end(w);
    jw_key(w, "amplification");
    jw_double(w, d->amplification);
}

static void jw_module(json_writer *w, const analyze_module *m, int two) {
    jw_object_begin(w);
    jw_key(w, "name");
    jw_string(w, m->name);
    if (m->slice) {
        char s[2] = {m->slice, 0};
        jw_key(w, "slice");
        jw_string(w, s);
    }
    jw_key(w, "layer");
    if (m->layer >= 0) jw_int(w, m->layer);
    else jw_null(w);
    jw_key(w, "shape");
    jw_array_begin(w);
    jw_int(w, m->out);
    jw_int(w, m->in);
    jw_array_end(w);
    jw_delta(w, &m->d[0]);
    jw_key(w, "norm_weight");
    jw_double(w, m->norm_weight);
    if (!m->has_weight) {
        char why[200];
        snprintf(why, sizeof why, "W not available (%s)", m->weight_why[0] ? m->weight_why : "unknown");
        jw_key(w, "weight_note");
        jw_string(w, why);
    }
    if (two) {
        jw_key(w, "phi");
        jw_matrix(w, m->phi, m->phi_rows, m->phi_cols);
        jw_key(w, "phi_b");
        jw_matrix(w, m->phi_b, m->phi_rows, m->phi_cols);
        jw_key(w, "phi_random");
        jw_matrix(w, m->phi_random, m->phi_rows, m->phi_cols);
        jw_key(w, "second");
        jw_object_begin(w);
        jw_delta(w, &m->d[1]);
        jw_object_end(w);
    }
    jw_object_end(w);
}

int analyze_write_json(const analyze_report *r, FILE *f, lorac_err *err) {
    json_writer w;
    jw_init(&w, f, 0);
    jw_object_begin(&w);
    jw_key(&w, "modules");
    jw_array_begin(&w);
    for (size_t i = 0; i < r->n; i++) jw_module(&w, &r->mods[i], r->two);
    jw_array_end(&w);
    jw_object_end(&w);
    fputc('\n', f);
    if (w.error || ferror(f)) return lorac_fail(err, LORAC_EIO, "analyze: writing the JSON report failed");
    return LORAC_OK;
}

/* ---------------------------------------------------------------- SVG */

static void svg_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
}

static void svg_begin(FILE *f, int W, int H, const char *title) {
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"Helvetica, Arial, sans-serif\">\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
            W, H, W, H, W, H);
    fprintf(f, "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\" fill=\"#222\">",
            W / 2);
    svg_text(f, title);
    fputs("</text>\n", f);
}

/* viridis, linearly between five of its colours; v in [0, 1] */
static void colormap(double v, int *rgb) {
    static const int c[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    if (!(v >= 0)) v = 0;
    if (v > 1) v = 1;
    double x = v * 4;
    int i = x >= 4 ? 3 : (int)x;
    double t = x - i;
    for (int k = 0; k < 3; k++) rgb[k] = (int)lround(c[i][k] + t * (c[i + 1][k] - c[i][k]));
}

/* A tick label every `step` of 1..n (always 1 and n). */
static int tick_step(int n) { return n <= 10 ? 1 : n <= 20 ? 4 : n <= 40 ? 8 : n <= 80 ? 16 : n <= 160 ? 32 : 64; }

/* One heatmap panel of v (rows, cols; row stride ld) at (x0, y0), cells cw x ch; rows i top to bottom. */
static void heatmap(FILE *f, const double *v, int rows, int cols, int ld, double x0, double y0, double cw, double ch,
                    const char *title, const char *ylabel, const char *xlabel) {
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\" fill=\"#222\">", x0 + cw * cols / 2,
            y0 - 10);
    svg_text(f, title);
    fputs("</text>\n<g shape-rendering=\"crispEdges\">\n", f);
    int tips = rows * cols <= 1024; /* a tooltip per cell, except on big maps (file size) */
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            int c[3];
            double x = v[(size_t)i * ld + j];
            colormap(x, c);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.2f\" fill=\"#%02x%02x%02x\"", x0 + j * cw,
                    y0 + i * ch, cw + 0.05, ch + 0.05, c[0], c[1], c[2]);
            if (tips) fprintf(f, "><title>i=%d j=%d phi=%.4f</title></rect>\n", i + 1, j + 1, x);
            else fputs("/>\n", f);
            if (cw >= 26 && ch >= 16)
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"9\" fill=\"%s\">%.2f</text>\n",
                        x0 + (j + 0.5) * cw, y0 + (i + 0.5) * ch + 3, x > 0.6 ? "#222" : "#fff", x);
        }
    fputs("</g>\n<g font-size=\"10\" fill=\"#444\">\n", f);
    for (int i = 1; i <= rows; i++)
        if (i == 1 || i == rows || (i % tick_step(rows) == 0 && rows - i >= tick_step(rows) / 2))
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%d</text>\n", x0 - 4, y0 + (i - 0.5) * ch + 3, i);
    for (int j = 1; j <= cols; j++)
        if (j == 1 || j == cols || (j % tick_step(cols) == 0 && cols - j >= tick_step(cols) / 2))
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", x0 + (j - 0.5) * cw,
                    y0 + rows * ch + 13, j);
    fputs("</g>\n", f);
    fprintf(f, "<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\" "
               "fill=\"#222\">", x0 - 30, y0 + rows * ch / 2);
    svg_text(f, ylabel);
    fprintf(f, "</text>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\" fill=\"#222\">",
            x0 + cols * cw / 2, y0 + rows * ch + 30);
    svg_text(f, xlabel);
    fputs("</text>\n", f);
}

/* φ and its random baseline side by side, with a colour bar. */
/* φ and its random baseline side by side (and, for unequal ranks, φ for i, j <= min(r1, r2), as the
 * paper's Figure 3 zooms in), with a colour bar. */
static void svg_phi(FILE *f, const analyze_module *m, const char *label, const char *const *labels) {
    int R = m->phi_rows, C = m->phi_cols, k = R < C ? R : C, zoom = R != C;
    double cw = fmin(28, 300.0 / C), ch = fmin(28, 300.0 / R), zc = fmin(28, 160.0 / k);
    double pw = cw * C, ph = ch * R, zx = 60 + 2 * (pw + 70);
    double x_bar = zoom ? zx + k * zc + 40 : 60 + 2 * pw + 110;
    int W = (int)(x_bar + 60), H = (int)(fmax(ph, zoom ? k * zc : 0) + 150);
    char title[400], yl[160], xl[160];
    snprintf(title, sizeof title, "%s: subspace similarity (LoRA Section 7.2, Eq. 4)", label);
    svg_begin(f, W, H, title);
    snprintf(yl, sizeof yl, "i (%s, r=%d)", labels && labels[0] ? labels[0] : "adapter 1", m->d[0].rank);
    snprintf(xl, sizeof xl, "j (%s, r=%d)", labels && labels[1] ? labels[1] : "adapter 2", m->d[1].rank);
    heatmap(f, m->phi, R, C, C, 60, 70, cw, ch, "phi(A1, A2, i, j)", yl, xl);
    heatmap(f, m->phi_random, R, C, C, 60 + pw + 70, 70, cw, ch, "random Gaussian A1, A2 (baseline)", "i", "j");
    if (zoom) heatmap(f, m->phi, k, k, C, zx, 70, zc, zc, "phi, i, j <= min(r1, r2)", "i", "j");
    double bx = x_bar, by = 70, bh = fmax(ph, 100);
    for (int s = 0; s < 50; s++) { /* colour bar, 1 at the top */
        int c[3];
        colormap(1 - (s + 0.5) / 50, c);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.2f\" width=\"14\" height=\"%.2f\" fill=\"#%02x%02x%02x\"/>\n", bx,
                by + s * bh / 50, bh / 50 + 0.05, c[0], c[1], c[2]);
    }
    for (int t = 0; t <= 4; t++)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#444\">%.2f</text>\n", bx + 18,
                by + bh * (1 - t / 4.0) + 3, t / 4.0);
    fputs("</svg>\n", f);
}

/* Singular values of ΔW: adapter 1 as bars, adapter 2 (if any) as a line with dots. */
static void svg_spectrum(FILE *f, const analyze_module *m, int two, const char *label, const char *const *labels) {
    const int W = 640, H = 400, L = 70, Rp = 30, T = 60, B = 70;
    int n = m->d[0].n_sv > (two ? m->d[1].n_sv : 0) ? m->d[0].n_sv : m->d[1].n_sv;
    double top = 0;
    for (int a = 0; a < (two ? 2 : 1); a++)
        for (int i = 0; i < m->d[a].n_sv; i++) top = fmax(top, m->d[a].sv[i]);
    if (!(top > 0)) top = 1;
    double step = pow(10, floor(log10(top / 4))); /* a round tick step: 1, 2 or 5 times a power of 10 */
    step *= top / 4 <= step ? 1 : top / 4 <= 2 * step ? 2 : top / 4 <= 5 * step ? 5 : 10;
    top = ceil(top / step - 1e-9) * step;
    int ticks = (int)lround(top / step);
    char title[400];
    snprintf(title, sizeof title, "%s: singular values of dW = s*B*A", label);
    svg_begin(f, W, H, title);
    double pw = W - L - Rp, ph = H - T - B, bw = pw / (n ? n : 1);
    fputs("<g font-size=\"10\" fill=\"#444\">\n", f);
    for (int t = 0; t <= ticks; t++) {
        double y = T + ph * (1 - (double)t / ticks);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", L, y, L + pw, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n", L - 6, y + 3, step * t);
    }
    for (int i = 1; i <= n; i++)
        if (i == 1 || i == n || (i % tick_step(n) == 0 && n - i >= tick_step(n) / 2))
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", L + (i - 0.5) * bw, T + ph + 14, i);
    fputs("</g>\n", f);
    for (int i = 0; i < m->d[0].n_sv; i++) {
        double h = ph * m->d[0].sv[i] / top;
        fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#1f77b4\"><title>%d: %.6g</title></rect>\n",
                L + i * bw + bw * 0.1, T + ph - h, bw * 0.8, h, i + 1, m->d[0].sv[i]);
    }
    if (two) {
        fputs("<path fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"1.5\" d=\"", f);
        for (int i = 0; i < m->d[1].n_sv; i++)
            fprintf(f, "%c%.1f %.1f ", i ? 'L' : 'M', L + (i + 0.5) * bw, T + ph * (1 - m->d[1].sv[i] / top));
        fputs("\"/>\n", f);
    }
    fprintf(f, "<path fill=\"none\" stroke=\"#333\" d=\"M%d %d V%.1f H%.1f\"/>\n", L, T, T + ph, L + pw);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\" fill=\"#222\">i</text>\n", L + pw / 2,
            H - 40);
    for (int a = 0; a < (two ? 2 : 1); a++) {
        const analyze_delta *d = &m->d[a];
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"%s\">", L, H - 22 + 14 * a, a ? "#ff7f0e" : "#1f77b4");
        char line[400];
        snprintf(line, sizeof line, "%s (%s): r=%d, effective rank %.2f, top-1 energy %.3f, ||dW||_F %.4g",
                 labels && labels[a] ? labels[a] : a ? "adapter 2" : "adapter 1", a ? "line" : "bars", d->rank,
                 d->effective_rank, d->n_sv ? d->energy[0] : 0.0, d->norm_delta);
        svg_text(f, line);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
}

/* dir/<module>[.<slice>].<kind>.svg, with characters outside [A-Za-z0-9._-] as '_'. */
static void svg_path_for(const char *dir, const analyze_module *m, const char *kind, char *path, size_t size) {
    char base[260];
    snprintf(base, sizeof base, "%s%s%c", m->name, m->slice ? "." : "", m->slice);
    for (char *p = base; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '_' || *p == '-'))
            *p = '_';
    snprintf(path, size, "%s/%s.%s.svg", dir, base, kind);
}

int analyze_write_svgs(const analyze_report *r, const char *dir, const char *const *labels, lorac_err *err) {
    for (size_t i = 0; i < r->n; i++) {
        const analyze_module *m = &r->mods[i];
        char label[260];
        snprintf(label, sizeof label, "%s%s%c", m->name, m->slice ? "." : "", m->slice);
        for (int kind = 0; kind < (r->two ? 2 : 1); kind++) {
            char path[4400];
            svg_path_for(dir, m, kind ? "phi" : "spectrum", path, sizeof path);
            lorac_out o;
            int rc = lorac_out_open(&o, path, err);
            if (rc) return rc;
            if (kind) svg_phi(o.f, m, label, labels);
            else svg_spectrum(o.f, m, r->two, label, labels);
            if ((rc = lorac_out_commit(&o, err))) return rc;
        }
    }
    return LORAC_OK;
}
