/* GLUE pieces: metrics against sklearn/scipy values (tests/fixtures/glue/metrics.txt from
 * tools/glue_ref.py; tolerance 1e-9), the TSV readers (layouts, labels, one-line errors on bad
 * input), task names, and sentence-pair encoding with type ids and longest-first truncation. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lorac/glue.h"
#include "lorac/model.h"
#include "lorac/wordpiece.h"

static void metrics(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/glue/metrics.txt", LORAC_SOURCE_DIR);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "%s", path);
    if (!f) return;
    char name[32];
    int n, cases = 0;
    while (fscanf(f, "%31s %d", name, &n) == 2) {
        double *p = malloc(n * sizeof(double)), *y = malloc(n * sizeof(double)), want;
        for (int i = 0; i < n; i++) CHECK(fscanf(f, "%lf", &p[i]) == 1, "read");
        for (int i = 0; i < n; i++) CHECK(fscanf(f, "%lf", &y[i]) == 1, "read");
        CHECK(fscanf(f, "%lf", &want) == 1, "read");
        int *pi = malloc(n * sizeof(int)), *yi = malloc(n * sizeof(int));
        float *pf = malloc(n * sizeof(float)), *yf = malloc(n * sizeof(float));
        for (int i = 0; i < n; i++) {
            pi[i] = (int)p[i];
            yi[i] = (int)y[i];
            pf[i] = (float)p[i];
            yf[i] = (float)y[i];
        }
        double got = !strcmp(name, "accuracy") ? glue_accuracy(pi, yi, n)
                   : !strcmp(name, "f1")       ? glue_f1(pi, yi, n)
                   : !strcmp(name, "mcc")      ? glue_matthews(pi, yi, n)
                   : !strcmp(name, "pearson")  ? glue_pearson(pf, yf, n)
                                               : glue_spearman(pf, yf, n);
        char what[64];
        snprintf(what, sizeof what, "%s n=%d", name, n);
        CHECK_CLOSE(got, want, 1e-9, 0, what);
        cases++;
        free(p); free(y); free(pi); free(yi); free(pf); free(yf);
    }
    fclose(f);
    CHECK(cases >= 12, "only %d metric cases", cases);
}

static int write(const char *name, const char *text, char *path, size_t size) {
    snprintf(path, size, "%s/glue_%s", LORAC_BINARY_DIR, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    fclose(f);
    return 0;
}

static void readers(void) {
    char p[1200];
    glue_data d;
    lorac_err err = {0};
    const glue_task *sst = glue_task_find("glue-sst2"), *mrpc = glue_task_find("MRPC"), *stsb = glue_task_find("sts-b");
    const glue_task *cola = glue_task_find("cola"), *rte = glue_task_find("glue-rte"), *mnli = glue_task_find("mnli");
    CHECK(sst && mrpc && stsb && cola && rte && mnli && glue_task_find("mnli-mm") && !glue_task_find("wnli2"), "task names");
    if (!(sst && mrpc && stsb && cola && rte && mnli)) return;
    CHECK(!strcmp(glue_task_find("mnli-mm")->dev_file, "dev_mismatched.tsv"), "mnli-mm");
    write("sst.tsv", "sentence\tlabel\nit 's good . \t1\nbad\t0\n", p, sizeof p);
    CHECK(glue_read_tsv(sst, p, &d, &err) == 0 && d.n == 2 && d.ex[0].label == 1 && !strcmp(d.ex[1].a, "bad") && !d.ex[0].b,
          "sst: %s", err.msg);
    glue_data_free(&d);
    write("mrpc.tsv", "\xEF\xBB\xBFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n1\t1\t2\tA b .\tC d .\r\n", p, sizeof p);
    CHECK(glue_read_tsv(mrpc, p, &d, &err) == 0 && d.n == 1 && !strcmp(d.ex[0].b, "C d .") && d.ex[0].label == 1, "mrpc: %s", err.msg);
    glue_data_free(&d);
    write("stsb.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                      "0\tg\tf\ty\t0\tn\tn\tA man.\tA guy.\t4.750\n", p, sizeof p);
    CHECK(glue_read_tsv(stsb, p, &d, &err) == 0 && d.n == 1 && d.ex[0].score == 4.75f, "stsb: %s", err.msg);
    glue_data_free(&d);
    write("cola.tsv", "gj04\t1\t\tThe sailors rode.\ngj04\t0\t*\tRode the.\n", p, sizeof p);
    CHECK(glue_read_tsv(cola, p, &d, &err) == 0 && d.n == 2 && d.ex[1].label == 0 && !strcmp(d.ex[0].a, "The sailors rode."),
          "cola: %s", err.msg);
    glue_data_free(&d);
    write("rte.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tnot_entailment\n1\tc\td\tentailment\n", p, sizeof p);
    CHECK(glue_read_tsv(rte, p, &d, &err) == 0 && d.n == 2 && d.ex[0].label == 1 && d.ex[1].label == 0, "rte: %s", err.msg);
    glue_data_free(&d);
    /* bad input: one line naming FILE:LINE */
    write("bad1.tsv", "sentence\tlabel\nok\t1\ntoo\tmany\tcols\n", p, sizeof p);
    int rc = glue_read_tsv(sst, p, &d, &err);
    CHECK(rc == LORAC_EFORMAT && strstr(err.msg, ":3: expected 2") && !strchr(err.msg, '\n'), "%s", err.msg);
    write("bad2.tsv", "sentence\tlabel\nok\t7\n", p, sizeof p);
    rc = glue_read_tsv(sst, p, &d, &err);
    CHECK(rc == LORAC_EFORMAT && strstr(err.msg, ":2: label \"7\""), "%s", err.msg);
    write("bad3.tsv", "text\tlabel\nok\t1\n", p, sizeof p);
    rc = glue_read_tsv(sst, p, &d, &err);
    CHECK(rc == LORAC_EFORMAT && strstr(err.msg, "no column \"sentence\""), "%s", err.msg);
    write("bad4.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n", p, sizeof p);
    rc = glue_read_tsv(rte, p, &d, &err);
    CHECK(rc == LORAC_EFORMAT && strstr(err.msg, "maybe"), "%s", err.msg);
    write("bad5.tsv", "sentence\tlabel\n", p, sizeof p);
    rc = glue_read_tsv(sst, p, &d, &err);
    CHECK(rc == LORAC_EFORMAT && strstr(err.msg, "no examples"), "%s", err.msg);
    rc = glue_read_tsv(sst, "/nonexistent/x.tsv", &d, &err);
    CHECK(rc == LORAC_EIO || rc == LORAC_ENOTFOUND, "%d %s", rc, err.msg);
}

/* A tiny random model of the family whose tokenizer is in dir: the encoder takes the family's
 * special tokens and pair layout from the model. */
static model *tok_model(const char *type, const char *dir, lorac_err *err) {
    model_config c;
    model *m = NULL;
    if (model_config_default(type, &c, err)) return NULL;
    c.n_layer = 1, c.n_embd = 8, c.n_head = c.n_kv_head = 1, c.head_dim = 8, c.n_inner = 16, c.vocab_size = 1 << 16;
    if (model_random(&c, 1, &m, err) || model_load_tokenizer(m, dir, err)) {
        model_free(m);
        return NULL;
    }
    return m;
}

static void encoding(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/glue/wp", LORAC_SOURCE_DIR);
    glue_encoder *e = NULL;
    lorac_err err = {0};
    model *tm = tok_model("bert", dir, &err);
    CHECK(tm && glue_encoder_for_model(tm, &e, &err) == 0, "%s", err.msg);
    if (!e) {
        model_free(tm);
        return;
    }
    wp_tokenizer *w = NULL;
    CHECK(wp_load(dir, &w, &err) == 0, "%s", err.msg);
    int32_t cls = wp_token_id(w, "[CLS]"), sep = wp_token_id(w, "[SEP]");
    int32_t ids[16], types[16];
    int n = 0;
    /* "hello , world !" is 4 words; "a b" 2: fits in 16 */
    CHECK(glue_encode(e, "hello, world!", "a b", 16, ids, types, &n, &err) == 0, "%s", err.msg);
    int32_t *ia = NULL;
    size_t na = 0;
    wp_encode(w, "hello, world!", 13, &ia, &na, &err);
    CHECK(n == (int)na + 5 && ids[0] == cls && ids[na + 1] == sep && ids[n - 1] == sep, "layout n=%d", n);
    CHECK(types[0] == 0 && types[na + 1] == 0 && types[na + 2] == 1 && types[n - 1] == 1, "type ids");
    /* longest_first: a of 6 words and b of 2 into 7 tokens leaves 4 = 2 + 2 */
    CHECK(glue_encode(e, "a b c d e f", "a b", 7, ids, types, &n, &err) == 0 && n == 7, "n=%d", n);
    CHECK(ids[3] == sep && ids[6] == sep && types[4] == 1, "truncated layout");
    CHECK(glue_encode(e, "a", "b", 3, ids, types, &n, &err) == LORAC_EINVAL, "too short");
    free(ia);
    wp_free(w);
    glue_encoder_free(e);
    model_free(tm);
}

static uint64_t fnv(uint64_t h, const int32_t *v, int n) {
    for (int i = 0; i < n; i++)
        for (int b = 0; b < 4; b++) h = (h ^ (((uint32_t)v[i] >> (8 * b)) & 0xff)) * 0x100000001b3ULL;
    return h;
}

/* Real dev sets through the MiniLM vocabulary vs BertTokenizerFast(a, b, truncation, max_length). */
static void real_pairs(void) {
    const char *home = getenv("HOME");
    char mdir[1024], fix[1024];
    snprintf(mdir, sizeof mdir, "%s/.cache/lorac/all-MiniLM-L6-v2", home ? home : "/root");
    glue_encoder *e = NULL;
    lorac_err err = {0};
    model *tm = tok_model("bert", mdir, &err);
    if (!tm || glue_encoder_for_model(tm, &e, &err)) {
        printf("skip real pairs: %s (run tools/fetch_minilm.sh)\n", err.msg);
        model_free(tm);
        return;
    }
    /* the same encoding through the loaded model's own tokenizer (what ft_train / ft_eval use) */
    model_load_opts mo = {2, 0, 0};
    model *m = NULL;
    glue_encoder *em = NULL;
    CHECK(model_load(mdir, &mo, &m, &err) == 0 && glue_encoder_for_model(m, &em, &err) == 0, "%s: %s", mdir, err.msg);
    snprintf(fix, sizeof fix, "%s/tests/fixtures/glue/pairs_glue.txt", LORAC_SOURCE_DIR);
    FILE *f = fopen(fix, "r");
    char file[256];
    int maxlen, n;
    long ntok;
    unsigned long long hid, hty;
    while (f && fscanf(f, "%255s %d %d %ld %llx %llx", file, &maxlen, &n, &ntok, &hid, &hty) == 6) {
        char path[1400], task[64];
        snprintf(path, sizeof path, "%s/../shared/data/glue/%s", LORAC_SOURCE_DIR, file);
        snprintf(task, sizeof task, "%.*s", (int)strcspn(file, "/"), file);
        glue_data d;
        if (glue_read_tsv(glue_task_find(task), path, &d, &err)) {
            printf("skip %s: %s\n", file, err.msg);
            continue;
        }
        for (int k = 0; k < 2; k++) {
            const glue_encoder *ek = k ? em : e;
            if (!ek) continue;
            uint64_t a = 0xcbf29ce484222325ULL, b = a;
            long tok = 0;
            int32_t ids[512], ty[512];
            for (size_t i = 0; i < d.n; i++) {
                int len = 0;
                if (glue_encode(ek, d.ex[i].a, d.ex[i].b, maxlen, ids, ty, &len, &err)) break;
                a = fnv(a, ids, len);
                b = fnv(b, ty, len);
                tok += len;
            }
            CHECK((int)d.n == n && tok == ntok && a == hid && b == hty, "%s max %d (%s): %zu examples %ld ids, hashes %s %s",
                  file, maxlen, k ? "the model's tokenizer" : "model_load_tokenizer(dir)", d.n, tok, a == hid ? "ok" : "DIFFER",
                  b == hty ? "ok" : "DIFFER");
        }
        glue_data_free(&d);
    }
    if (f) fclose(f);
    glue_encoder_free(e);
    glue_encoder_free(em);
    model_free(m);
    model_free(tm);
}

static int hexval(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }
static char *unhex(const char *h) {
    size_t n = strlen(h) / 2;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) s[i] = (char)(hexval(h[2 * i]) * 16 + hexval(h[2 * i + 1]));
    s[n] = 0;
    return s;
}

/* RoBERTa: <s> a </s></s> b </s> through byte-level BPE, as RobertaTokenizerFast. */
static void roberta_pairs(void) {
    char dir[1024], fix[1024];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/glue/roberta_tok", LORAC_SOURCE_DIR);
    snprintf(fix, sizeof fix, "%s/tests/fixtures/glue/roberta_pairs.txt", LORAC_SOURCE_DIR);
    glue_encoder *e = NULL;
    lorac_err err = {0};
    model *tm = tok_model("roberta", dir, &err);
    CHECK(tm && glue_encoder_for_model(tm, &e, &err) == 0, "%s", err.msg);
    FILE *f = fopen(fix, "r");
    CHECK(e && f, "%s", fix);
    if (!e || !f) {
        if (f) fclose(f);
        glue_encoder_free(e);
        model_free(tm);
        return;
    }
    CHECK(glue_encoder_pad(e) == 1, "<pad> id");
    static char line[8192];
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        char *ha = strtok(line, "\t"), *hb = strtok(NULL, "\t"), *hm = strtok(NULL, "\t"), *rest = strtok(NULL, "\n");
        if (!ha || !hb || !hm || !rest) continue;
        char *a = unhex(ha), *b = strcmp(hb, "-") ? unhex(hb) : NULL;
        int32_t want[512], ids[512], ty[512];
        int nw = 0, n = 0;
        for (char *p = rest; *p;) {
            want[nw++] = (int32_t)strtol(p, &p, 10);
            while (*p == ' ') p++;
        }
        int rc = glue_encode(e, a, b, atoi(hm), ids, ty, &n, &err);
        CHECK(rc == 0 && n == nw && !memcmp(ids, want, (size_t)n * sizeof(int32_t)), "roberta case %d: %d ids want %d (%s)", cases, n,
              nw, err.msg);
        int zero = 1;
        for (int i = 0; i < n; i++) zero &= ty[i] == 0;
        CHECK(zero, "roberta type ids are all 0");
        free(a);
        free(b);
        cases++;
    }
    fclose(f);
    CHECK(cases == 4, "%d roberta cases", cases);
    glue_encoder_free(e);
    model_free(tm);
}

int main(void) {
    metrics();
    roberta_pairs();
    real_pairs();
    readers();
    encoding();
    return check_summary();
}
