/* The text of a progress-bar line; the CLI prints it after '\r' on a terminal. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lorac/train.h"

static void format_eta(char *buf, size_t cap, double s) {
    if (!(s >= 0.0) || !isfinite(s) || s > 99.0 * 86400.0) {
        snprintf(buf, cap, "--");
        return;
    }
    long long t = (long long)llround(s);
    if (t < 60) snprintf(buf, cap, "%llds", t);
    else if (t < 3600) snprintf(buf, cap, "%lldm%02llds", t / 60, t % 60);
    else snprintf(buf, cap, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
}

size_t train_progress_format(char *buf, size_t cap, int width, long long step, long long total,
                             double loss, double tokens_per_s, double eta_s) {
    if (cap == 0) return 0;
    if (width < 20) width = 20;
    if (total < 1) total = 1;
    if (step < 0) step = 0;
    if (step > total) step = total;
    char head[64], tail[128], eta[32], lossbuf[32];
    format_eta(eta, sizeof eta, eta_s);
    if (isfinite(loss)) snprintf(lossbuf, sizeof lossbuf, "%.4f", loss);
    else snprintf(lossbuf, sizeof lossbuf, "--");
    snprintf(head, sizeof head, "step %lld/%lld", step, total);
    if (tokens_per_s >= 0.0 && isfinite(tokens_per_s))
        snprintf(tail, sizeof tail, " loss %s | %.0f tok/s | ETA %s", lossbuf, tokens_per_s, eta);
    else snprintf(tail, sizeof tail, " loss %s | -- tok/s | ETA %s", lossbuf, eta);
    size_t hl = strlen(head), tl = strlen(tail);
    /* the bar gets what is left, but no fewer than 10 cells; else it is left out */
    long bar = (long)width - (long)hl - (long)tl - 3; /* " [" + "]" */
    char line[1024];
    if (bar >= 10) {
        if (bar > 200) bar = 200;
        long filled = (long)((double)bar * (double)step / (double)total);
        char cells[256];
        for (long i = 0; i < bar; i++) cells[i] = i < filled ? '#' : '.';
        cells[bar] = '\0';
        snprintf(line, sizeof line, "%s [%s]%s", head, cells, tail);
    } else {
        snprintf(line, sizeof line, "%s%s", head, tail);
    }
    if (strlen(line) > (size_t)width) line[width] = '\0'; /* never wrap the terminal line */
    snprintf(buf, cap, "%s", line);
    return strlen(buf);
}
