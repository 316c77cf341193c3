/* The training log (JSONL, resume trimming), the loss-curve SVG and the progress-bar text. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "lorac/json.h"
#include "lorac/train.h"

static char tmpdir[] = "/tmp/lorac_test_trainlog_XXXXXX";

/* Reads PATH's lines; checks each is a JSON object; returns the number of lines, and fills
 * steps[] (and, for train lines, losses[]; eval lines give -1 in is_train). */
static int read_log(const char *path, long long *steps, double *losses, int *is_train, int cap) {
    char *text = NULL;
    size_t n = 0;
    lorac_err err = {0};
    if (lorac_read_file(path, &text, &n, &err)) return -1;
    int count = 0, lineno = 0;
    for (char *line = text; *line && count < cap;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        lineno++;
        json_doc *doc = NULL;
        if (json_parse(line, len, path, lineno, &doc, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            free(text);
            return -1;
        }
        const json_value *root = json_root(doc);
        steps[count] = json_get_int(root, "step", -1, NULL);
        is_train[count] = json_get(root, "loss") != NULL;
        const json_value *l = json_get(root, is_train[count] ? "loss" : "eval_loss");
        losses[count] = json_kind(l) == JSON_NUMBER ? json_num(l) : NAN;
        json_free(doc);
        count++;
        line = nl ? nl + 1 : line + len;
    }
    free(text);
    return count;
}

static double loss_at(long long s) { return 2.0 + 8.0 * exp(-(double)s / 15.0) + 0.05 * sin((double)s); }

static void test_log_and_resume(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/log.jsonl", tmpdir);
    trainlog lg;
    lorac_err err = {0};
    CHECK(trainlog_open(&lg, path, -1, &err) == LORAC_OK, "%s", err.msg);
    for (long long s = 1; s <= 50; s++) {
        trainlog_entry e = {s, s / 25.0, s == 7 ? NAN : loss_at(s), 2e-4 * s / 50, s % 2 ? 1.25 : -1, 1000.5, 0.1 * s};
        CHECK(trainlog_write_step(&lg, &e, &err) == LORAC_OK, "%s", err.msg);
        if (s % 20 == 0) CHECK(trainlog_write_eval(&lg, s, loss_at(s) + 0.3, 12345, &err) == LORAC_OK, "%s", err.msg);
    }
    CHECK(lg.n == 50 && lg.n_eval == 2, "points %zu %zu", lg.n, lg.n_eval);
    CHECK(trainlog_close(&lg, &err) == LORAC_OK, "%s", err.msg);
    long long steps[128];
    double losses[128];
    int train[128];
    int n = read_log(path, steps, losses, train, 128);
    CHECK(n == 52, "%d lines", n);
    CHECK(steps[0] == 1 && train[0] && fabs(losses[0] - loss_at(1)) < 1e-12, "first line");
    CHECK(steps[20] == 20 && !train[20] && fabs(losses[20] - (loss_at(20) + 0.3)) < 1e-12, "eval line");
    CHECK(steps[6] == 7 && isnan(losses[6]), "a NaN loss is written as null");

    /* resume from step 30: entries after it are dropped (atomically) and the points reloaded */
    CHECK(trainlog_open(&lg, path, 30, &err) == LORAC_OK, "%s", err.msg);
    CHECK(lg.n == 30 && lg.n_eval == 1 && lg.step[29] == 30 && lg.eval_step[0] == 20, "reloaded %zu %zu", lg.n,
          lg.n_eval);
    CHECK(lg.loss[0] == (float)loss_at(1) && isnan(lg.loss[6]), "reloaded losses");
    for (long long s = 31; s <= 40; s++) {
        trainlog_entry e = {s, s / 25.0, loss_at(s), 1e-4, -1, 900, 0.1 * s};
        trainlog_write_step(&lg, &e, &err);
    }
    trainlog_write_eval(&lg, 40, 2.5, 100, &err);
    CHECK(trainlog_close(&lg, &err) == LORAC_OK, "%s", err.msg);
    n = read_log(path, steps, losses, train, 128);
    int monotone = 1;
    for (int i = 1; i < n; i++) monotone &= steps[i] >= steps[i - 1];
    CHECK(n == 31 + 10 + 1 && monotone && steps[n - 1] == 40 && !train[n - 1], "resumed log: %d lines", n);

    /* a crash can leave a cut line at the end: it is dropped; a bad line before the end is an error */
    FILE *f = fopen(path, "ab");
    fputs("{\"step\":41,\"epo", f);
    fclose(f);
    CHECK(trainlog_open(&lg, path, 100, &err) == LORAC_OK && lg.n == 40, "%s", err.msg);
    trainlog_close(&lg, &err);
    n = read_log(path, steps, losses, train, 128);
    CHECK(n == 42, "cut line removed: %d lines", n);
    f = fopen(path, "ab");
    fputs("not json\n{\"step\":41,\"loss\":1}\n", f);
    fclose(f);
    CHECK(trainlog_open(&lg, path, 100, &err) == LORAC_EFORMAT && strstr(err.msg, path) && strstr(err.msg, ":43:"),
          "%s", err.msg);
    /* a new log replaces the old one */
    CHECK(trainlog_open(&lg, path, -1, &err) == LORAC_OK && lg.n == 0, "%s", err.msg);
    trainlog_close(&lg, &err);
    n = read_log(path, steps, losses, train, 128);
    CHECK(n == 0, "new log has %d lines", n);
    /* resuming without a log starts one */
    char fresh[600];
    snprintf(fresh, sizeof fresh, "%s/fresh.jsonl", tmpdir);
    CHECK(trainlog_open(&lg, fresh, 10, &err) == LORAC_OK && lg.n == 0, "%s", err.msg);
    trainlog_close(&lg, &err);
}

static int count_str(const char *s, const char *what) {
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

static void test_svg(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/loss.svg", tmpdir);
    trainlog lg;
    lorac_err err = {0};
    memset(&lg, 0, sizeof lg);
    char logpath[512];
    snprintf(logpath, sizeof logpath, "%s/svg.jsonl", tmpdir);
    trainlog_open(&lg, logpath, -1, &err);
    for (long long s = 1; s <= 3000; s++) {
        trainlog_entry e = {s, 0, s == 1500 ? NAN : loss_at(s / 20), 1e-4, -1, 1000, 1};
        trainlog_write_step(&lg, &e, &err);
        if (s % 500 == 0) trainlog_write_eval(&lg, s, loss_at(s / 20) + 0.2, 1, &err);
    }
    CHECK(trainlog_write_svg(&lg, path, "GPT-2 M + LoRA r=4 on E2E <train & eval>", &err) == LORAC_OK, "%s", err.msg);
    char *svg = NULL;
    size_t n = 0;
    CHECK(lorac_read_file(path, &svg, &n, &err) == LORAC_OK, "%s", err.msg);
    if (svg) {
        CHECK(strncmp(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39) == 0, "starts with <svg>");
        CHECK(n > 7 && strcmp(svg + n - 7, "</svg>\n") == 0, "ends with </svg>");
        CHECK(strstr(svg, "on E2E &lt;train &amp; eval&gt;") != NULL, "title escaped");
        CHECK(count_str(svg, "<circle") == 6, "6 eval points, got %d", count_str(svg, "<circle"));
        CHECK(strstr(svg, "train loss (smoothed)") && strstr(svg, "eval loss") && strstr(svg, "optimizer step"),
              "legend and labels");
        CHECK(n < 200000, "3000 steps make a %zu-byte SVG (points are bucketed)", n);
        /* x ticks reach the last step; every coordinate is finite */
        CHECK(strstr(svg, ">3000</text>") != NULL, "x axis tick at 3000");
        CHECK(!strstr(svg, "nan") && !strstr(svg, "inf"), "no NaN/inf coordinates");
        free(svg);
    }
    trainlog_close(&lg, &err);
    /* no points: still a valid picture */
    memset(&lg, 0, sizeof lg);
    snprintf(path, sizeof path, "%s/empty.svg", tmpdir);
    CHECK(trainlog_write_svg(&lg, path, NULL, &err) == LORAC_OK, "%s", err.msg);
    lorac_read_file(path, &svg, &n, &err);
    CHECK(svg && strstr(svg, "no data") && strstr(svg, "</svg>"), "empty SVG");
    free(svg);
    CHECK(trainlog_write_svg(&lg, "/nonexistent/dir/x.svg", NULL, &err) == LORAC_EIO, "%s", err.msg);
}

static void test_progress(void) {
    char buf[256];
    size_t n = train_progress_format(buf, sizeof buf, 80, 120, 1000, 2.34564, 1234.4, 192);
    CHECK(strcmp(buf, "step 120/1000 [##.................] loss 2.3456 | 1234 tok/s | ETA 3m12s") == 0 ||
          strlen(buf) == 80, "'%s'", buf);
    CHECK(n == strlen(buf) && n <= 80, "length %zu", n);
    /* the bar fills the width exactly */
    CHECK(strlen(buf) == 80 && strstr(buf, "step 120/1000 [") == buf, "'%s'", buf);
    CHECK(strstr(buf, "] loss 2.3456 | 1234 tok/s | ETA 3m12s") != NULL, "'%s'", buf);
    size_t hashes = (size_t)count_str(buf, "#"), dots = (size_t)count_str(buf, ".") - 1; /* the loss has a dot */
    CHECK(hashes == (hashes + dots) * 120 / 1000, "%zu of %zu cells filled", hashes, hashes + dots);
    train_progress_format(buf, sizeof buf, 60, 1000, 1000, NAN, -1, -1);
    CHECK(strstr(buf, "loss -- | -- tok/s | ETA --") && !strchr(buf, '.'), "'%s'", buf);
    train_progress_format(buf, sizeof buf, 120, 5, 10, 1.0, 10, 7322);
    CHECK(strstr(buf, "ETA 2h02m") && count_str(buf, "#") == (count_str(buf, "#") + count_str(buf, ".") - 1) / 2 &&
          strlen(buf) == 120, "'%s'",
          buf);
    train_progress_format(buf, sizeof buf, 40, 5, 10, 1.0, 10, 42);
    CHECK(strcmp(buf, "step 5/10 loss 1.0000 | 10 tok/s | ETA 4") == 0, "narrow: bar dropped, cut to 40: '%s'", buf);
    train_progress_format(buf, 8, 80, 5, 10, 1.0, 10, 42);
    CHECK(strlen(buf) == 7, "cap respected");
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_log_and_resume();
    test_svg();
    test_progress();
    if (getenv("LORAC_KEEP_SVG")) printf("kept %s\n", tmpdir);
    else {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return check_summary();
}
