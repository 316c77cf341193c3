/* test_lora_parity.c — the LoRA layers against Microsoft's loralib 0.1.2 (PyTorch float32).
 * Fixtures: tests/fixtures/loralib/<case>.txt from tools/loralib_ref.py. For Linear, MergedLinear
 * (enable_lora masks, fan_in_fan_out), Embedding (with and without padding_idx), Conv2d (stride,
 * padding, groups) and Conv1d: the training-mode output, dx, dA, dB, d(bias), the merged weight
 * after eval() and the eval-mode output; then mark_only_lora_as_trainable, lora_state_dict and
 * the trainable-parameter line for each bias mode on a model with every layer kind. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lorac.h"



/* ---------------------------------------------------------------- fixture reader
 *   cfg <key> <value> | t <name> <ndim> <dims...> then a line of values | other lines kept in lines[] */
#define FX_MAX 64

typedef struct fx_tensor {
    char name[64];
    int ndim;
    int shape[4];
    size_t n;
    float *v;
} fx_tensor;

typedef struct fixture {
    char keys[FX_MAX][64];
    char vals[FX_MAX][256];
    int n_cfg;
    fx_tensor t[FX_MAX];
    int n_t;
    char *lines[FX_MAX];
    int n_lines;
} fixture;

static void fx_free(fixture *f) {
    for (int i = 0; i < f->n_t; i++) free(f->t[i].v);
    for (int i = 0; i < f->n_lines; i++) free(f->lines[i]);
    memset(f, 0, sizeof *f);
}

/* Returns 0 on success; prints why and returns -1 otherwise. */
static int fx_load(fixture *f, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/loralib/%s.txt", LORAC_SOURCE_DIR, name);
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    size_t cap = 1 << 20;
    char *line = malloc(cap);
    int ok = 0;
    while (line && fgets(line, (int)cap, fp)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == '#' || !line[0]) continue;
        if (strncmp(line, "cfg ", 4) == 0 && f->n_cfg < FX_MAX) {
            if (sscanf(line + 4, "%63s %255[^\n]", f->keys[f->n_cfg], f->vals[f->n_cfg]) == 2) f->n_cfg++;
        } else if (strncmp(line, "t ", 2) == 0 && f->n_t < FX_MAX) {
            fx_tensor *t = &f->t[f->n_t];
            char *p = line + 2, *end;
            if (sscanf(p, "%63s", t->name) != 1) goto bad;
            p += strlen(t->name) + 1;
            t->ndim = (int)strtol(p, &end, 10);
            p = end;
            t->n = 1;
            for (int d = 0; d < t->ndim && d < 4; d++) {
                t->shape[d] = (int)strtol(p, &end, 10);
                p = end;
                t->n *= (size_t)t->shape[d];
            }
            if (!fgets(line, (int)cap, fp)) goto bad;
            t->v = malloc((t->n ? t->n : 1) * sizeof(float));
            p = line;
            for (size_t i = 0; i < t->n; i++) {
                t->v[i] = strtof(p, &end);
                if (end == p) goto bad;
                p = end;
            }
            f->n_t++;
        } else if (f->n_lines < FX_MAX) {
            f->lines[f->n_lines++] = strdup(line);
        }
    }
    ok = 1;
bad:
    free(line);
    fclose(fp);
    if (!ok) {
        fprintf(stderr, "%s: malformed fixture\n", path);
        fx_free(f);
        return -1;
    }
    return 0;
}

static int fx_int(const fixture *f, const char *key) {
    for (int i = 0; i < f->n_cfg; i++)
        if (strcmp(f->keys[i], key) == 0) return atoi(f->vals[i]);
    fprintf(stderr, "fixture has no cfg %s\n", key);
    return -1;
}

static const char *fx_str(const fixture *f, const char *key) {
    for (int i = 0; i < f->n_cfg; i++)
        if (strcmp(f->keys[i], key) == 0) return f->vals[i];
    return "";
}

static fx_tensor *fx_get(fixture *f, const char *name) {
    for (int i = 0; i < f->n_t; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    fprintf(stderr, "fixture has no tensor %s\n", name);
    return NULL;
}


/* Tolerances: loralib runs the same float32 math with a different GEMM summation order (and forms
 * MergedLinear's ΔW before multiplying), so values agree to a few float32 ulps of the largest
 * terms summed: |got - want| <= ATOL + RTOL·|want|. */
#define ATOL 2e-6
#define RTOL 1e-5

static double worst_abs, worst_rel;

/* Compares got against fixture tensor name; records the largest errors seen for the summary. */
static void cmp(fixture *f, const char *name, const float *got, size_t n, const char *what) {
    fx_tensor *t = fx_get(f, name);
    CHECK(t != NULL, "%s: fixture tensor %s", what, name);
    if (!t) return;
    CHECK(t->n == n, "%s: %s has %zu values, the layer %zu", what, name, t->n, n);
    if (t->n != n) return;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - t->v[i]);
        if (d > worst_abs) worst_abs = d;
        if (fabs(t->v[i]) > 1e-3 && d / fabs(t->v[i]) > worst_rel) worst_rel = d / fabs(t->v[i]);
    }
    char label[160];
    snprintf(label, sizeof label, "%s %s", what, name);
    check_arrays_close(got, t->v, n, ATOL, RTOL, label);
}

static void copy_in(fixture *f, const char *name, float *dst, size_t n) {
    fx_tensor *t = fx_get(f, name);
    CHECK(t && t->n == n, "fixture tensor %s has %zu values", name, n);
    if (t && t->n == n) memcpy(dst, t->v, n * sizeof(float));
}

static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static void test_linear(const char *name) {
    fixture f;
    if (fx_load(&f, name)) { CHECK(0, "load %s", name); return; }
    worst_abs = worst_rel = 0;
    int C = fx_int(&f, "C"), OC = fx_int(&f, "OC"), N = fx_int(&f, "N"), has_bias = fx_int(&f, "bias");
    lora_config cfg = lora_config_default(fx_int(&f, "r"), (float)fx_int(&f, "alpha"));
    cfg.fan_in_fan_out = fx_int(&f, "fan_in_fan_out");
    lorac_rng rng;
    lorac_rng_seed(&rng, 1);
    lorac_err err = {0};
    lora_linear L;
    fx_tensor *w = fx_get(&f, "weight"), *b = has_bias ? fx_get(&f, "bias") : NULL, *x = fx_get(&f, "x"), *dy = fx_get(&f, "dy");
    CHECK(lora_linear_init(&L, C, OC, &cfg, w->v, b ? b->v : NULL, &rng, &err) == 0, "%s", err.msg);
    copy_in(&f, "lora_A", L.lora_A, (size_t)cfg.r * C);
    copy_in(&f, "lora_B", L.lora_B, (size_t)OC * cfg.r);
    lora_act act;
    CHECK(lora_linear_act_init(&act, &L, N, &err) == 0, "%s", err.msg);
    float *y = zeros((size_t)N * OC), *dx = zeros((size_t)N * C);
    CHECK(lora_linear_forward(&L, &act, y, x->v, N, NULL, &err) == 0, "%s", err.msg);
    cmp(&f, "y", y, (size_t)N * OC, name);
    lora_linear_zero_grad(&L);
    CHECK(lora_linear_backward(&L, &act, dx, dy->v, x->v, &err) == 0, "%s", err.msg);
    cmp(&f, "dx", dx, (size_t)N * C, name);
    cmp(&f, "dA", L.grad_A, (size_t)cfg.r * C, name);
    cmp(&f, "dB", L.grad_B, (size_t)OC * cfg.r, name);
    if (has_bias) cmp(&f, "dbias", L.grad_bias, (size_t)OC, name);
    CHECK(lora_linear_train(&L, 0, &err) == 0 && L.merged, "merge %s", err.msg);
    cmp(&f, "merged_weight", L.merged_w, (size_t)OC * C, name);
    CHECK(lora_linear_forward(&L, &act, y, x->v, N, NULL, &err) == 0, "%s", err.msg);
    cmp(&f, "y_eval", y, (size_t)N * OC, name);
    printf("%-20s max |err| %.3g, max rel err %.3g\n", name, worst_abs, worst_rel);
    free(y);
    free(dx);
    lora_act_free(&act);
    lora_linear_free(&L);
    fx_free(&f);
}

static void test_merged(const char *name) {
    fixture f;
    if (fx_load(&f, name)) { CHECK(0, "load %s", name); return; }
    worst_abs = worst_rel = 0;
    int C = fx_int(&f, "C"), OC = fx_int(&f, "OC"), N = fx_int(&f, "N"), has_bias = fx_int(&f, "bias");
    const char *en = fx_str(&f, "enable_lora");
    int enable[LORA_MAX_GROUPS], G = (int)strlen(en), k = 0;
    for (int g = 0; g < G && g < LORA_MAX_GROUPS; g++) k += enable[g] = en[g] == '1';
    lora_config cfg = lora_config_default(fx_int(&f, "r"), (float)fx_int(&f, "alpha"));
    cfg.fan_in_fan_out = fx_int(&f, "fan_in_fan_out");
    lorac_rng rng;
    lorac_rng_seed(&rng, 1);
    lorac_err err = {0};
    lora_merged L;
    fx_tensor *w = fx_get(&f, "weight"), *b = has_bias ? fx_get(&f, "bias") : NULL, *x = fx_get(&f, "x"), *dy = fx_get(&f, "dy");
    CHECK(lora_merged_init(&L, C, OC, enable, G, &cfg, w->v, b ? b->v : NULL, &rng, &err) == 0, "%s", err.msg);
    size_t na = (size_t)cfg.r * k * C, nb = (size_t)OC / G * k * cfg.r;
    copy_in(&f, "lora_A", L.lora_A, na);
    copy_in(&f, "lora_B", L.lora_B, nb);
    lora_act act;
    CHECK(lora_merged_act_init(&act, &L, N, &err) == 0, "%s", err.msg);
    float *y = zeros((size_t)N * OC), *dx = zeros((size_t)N * C), *delta = zeros((size_t)OC * C);
    CHECK(lora_merged_forward(&L, &act, y, x->v, N, NULL, &err) == 0, "%s", err.msg);
    cmp(&f, "y", y, (size_t)N * OC, name);
    lora_merged_zero_grad(&L);
    CHECK(lora_merged_backward(&L, &act, dx, dy->v, x->v, &err) == 0, "%s", err.msg);
    cmp(&f, "dx", dx, (size_t)N * C, name);
    cmp(&f, "dA", L.grad_A, na, name);
    cmp(&f, "dB", L.grad_B, nb, name);
    if (has_bias) cmp(&f, "dbias", L.grad_bias, (size_t)OC, name);
    lora_merged_delta(&L, delta);
    cmp(&f, "delta", delta, (size_t)OC * C, name);
    CHECK(lora_merged_train(&L, 0, &err) == 0 && L.merged, "merge %s", err.msg);
    cmp(&f, "merged_weight", L.merged_w, (size_t)OC * C, name);
    CHECK(lora_merged_forward(&L, &act, y, x->v, N, NULL, &err) == 0, "%s", err.msg);
    cmp(&f, "y_eval", y, (size_t)N * OC, name);
    printf("%-20s max |err| %.3g, max rel err %.3g\n", name, worst_abs, worst_rel);
    free(y);
    free(dx);
    free(delta);
    lora_act_free(&act);
    lora_merged_free(&L);
    fx_free(&f);
}

static void test_embedding(const char *name) {
    fixture f;
    if (fx_load(&f, name)) { CHECK(0, "load %s", name); return; }
    worst_abs = worst_rel = 0;
    int V = fx_int(&f, "V"), D = fx_int(&f, "D"), N = fx_int(&f, "N"), r = fx_int(&f, "r");
    lora_config cfg = lora_config_default(r, (float)fx_int(&f, "alpha"));
    lorac_rng rng;
    lorac_rng_seed(&rng, 1);
    lorac_err err = {0};
    lora_embedding L;
    fx_tensor *w = fx_get(&f, "weight"), *idf = fx_get(&f, "ids"), *dy = fx_get(&f, "dy");
    CHECK(lora_embedding_init(&L, V, D, fx_int(&f, "padding_idx"), &cfg, w->v, &rng, &err) == 0, "%s", err.msg);
    copy_in(&f, "lora_A", L.lora_A, (size_t)r * V);
    copy_in(&f, "lora_B", L.lora_B, (size_t)D * r);
    int32_t ids[64];
    for (int n = 0; n < N && n < 64; n++) ids[n] = (int32_t)idf->v[n];
    lora_act act;
    CHECK(lora_embedding_act_init(&act, &L, N, &err) == 0, "%s", err.msg);
    float *y = zeros((size_t)N * D);
    CHECK(lora_embedding_forward(&L, &act, y, ids, N, &err) == 0, "%s", err.msg);
    cmp(&f, "y", y, (size_t)N * D, name);
    lora_embedding_zero_grad(&L);
    CHECK(lora_embedding_backward(&L, &act, dy->v, ids, &err) == 0, "%s", err.msg);
    cmp(&f, "dA", L.grad_A, (size_t)r * V, name);
    cmp(&f, "dB", L.grad_B, (size_t)D * r, name);
    CHECK(lora_embedding_train(&L, 0, &err) == 0 && L.merged, "merge %s", err.msg);
    cmp(&f, "merged_weight", L.merged_w, (size_t)V * D, name);
    CHECK(lora_embedding_forward(&L, &act, y, ids, N, &err) == 0, "%s", err.msg);
    cmp(&f, "y_eval", y, (size_t)N * D, name);
    printf("%-20s max |err| %.3g, max rel err %.3g\n", name, worst_abs, worst_rel);
    free(y);
    lora_act_free(&act);
    lora_embedding_free(&L);
    fx_free(&f);
}

static void test_conv(const char *name) {
    fixture f;
    if (fx_load(&f, name)) { CHECK(0, "load %s", name); return; }
    worst_abs = worst_rel = 0;
    int dims = fx_int(&f, "dims"), C = fx_int(&f, "C"), OC = fx_int(&f, "OC"), k = fx_int(&f, "k");
    op_conv_cfg cc = dims == 2 ? op_conv2d_cfg(C, OC, k, fx_int(&f, "stride"), fx_int(&f, "padding"), 1, fx_int(&f, "groups"))
                               : op_conv1d_cfg(C, OC, k, fx_int(&f, "stride"), fx_int(&f, "padding"), 1, fx_int(&f, "groups"));
    lora_config cfg = lora_config_default(fx_int(&f, "r"), (float)fx_int(&f, "alpha"));
    lorac_rng rng;
    lorac_rng_seed(&rng, 1);
    lorac_err err = {0};
    lora_conv L;
    fx_tensor *w = fx_get(&f, "weight"), *b = fx_get(&f, "bias"), *x = fx_get(&f, "x"), *dy = fx_get(&f, "dy"), *yt = fx_get(&f, "y");
    CHECK(lora_conv_init(&L, dims, &cc, &cfg, w->v, b->v, &rng, &err) == 0, "%s", err.msg);
    size_t na = (size_t)L.a_rows * L.a_cols, nb = (size_t)L.b_rows * L.a_rows;
    copy_in(&f, "lora_A", L.lora_A, na);
    copy_in(&f, "lora_B", L.lora_B, nb);
    int B = x->shape[0], H = dims == 2 ? x->shape[2] : 1, W = dims == 2 ? x->shape[3] : x->shape[2];
    lora_act act;
    CHECK(lora_conv_act_init(&act, &L, &err) == 0, "%s", err.msg);
    float *y = zeros(yt->n), *dx = zeros(x->n);
    CHECK(lora_conv_forward(&L, &act, y, x->v, B, H, W, &err) == 0, "%s", err.msg);
    cmp(&f, "y", y, yt->n, name);
    lora_conv_zero_grad(&L);
    CHECK(lora_conv_backward(&L, &act, dx, dy->v, x->v, B, H, W, &err) == 0, "%s", err.msg);
    cmp(&f, "dx", dx, x->n, name);
    cmp(&f, "dA", L.grad_A, na, name);
    cmp(&f, "dB", L.grad_B, nb, name);
    cmp(&f, "dbias", L.grad_bias, (size_t)OC, name);
    CHECK(lora_conv_train(&L, 0, &err) == 0 && L.merged, "merge %s", err.msg);
    cmp(&f, "merged_weight", L.merged_w, w->n, name);
    CHECK(lora_conv_forward(&L, &act, y, x->v, B, H, W, &err) == 0, "%s", err.msg);
    cmp(&f, "y_eval", y, yt->n, name);
    printf("%-20s max |err| %.3g, max rel err %.3g\n", name, worst_abs, worst_rel);
    free(y);
    free(dx);
    lora_act_free(&act);
    lora_conv_free(&L);
    fx_free(&f);
}

/* ------------------------------------------------------------ loralib's rules on a small model */

/* The tensors of RulesModel in tools/loralib_ref.py, registered in its named_parameters() order. */
typedef struct rules_model {
    float emb_w[60], ln_w[6], ln_b[6], attn_w[72], attn_b[12], proj_w[72], head_w[24], head_b[4], conv_w[108], conv_b[4];
    lora_embedding emb;
    lora_merged attn;
    lora_linear proj;
    lora_conv conv;
    lora_registry reg;
} rules_model;

static int build_rules_model(rules_model *m, lorac_err *err) {
    memset(m, 0, sizeof *m);
    lorac_rng rng;
    lorac_rng_seed(&rng, 7);
    lora_registry_init(&m->reg);
    lora_config c2 = lora_config_default(2, 1.0f), cf = c2;
    cf.fan_in_fan_out = 1;
    int en[3] = {1, 0, 1};
    op_conv_cfg cc = op_conv2d_cfg(3, 4, 3, 1, 0, 1, 1);
    int64_t s6[1] = {6}, s4[1] = {4}, s46[2] = {4, 6};
    int rc = lora_embedding_init(&m->emb, 10, 6, -1, &c2, m->emb_w, &rng, err);
    if (!rc) rc = lora_embedding_register(&m->emb, &m->reg, "emb", err);
    if (!rc) rc = lora_registry_add(&m->reg, "ln.weight", 1, s6, m->ln_w, NULL, NULL, 1, 0, err);
    if (!rc) rc = lora_registry_add(&m->reg, "ln.bias", 1, s6, m->ln_b, NULL, NULL, 1, 0, err);
    if (!rc) rc = lora_merged_init(&m->attn, 6, 12, en, 3, &cf, m->attn_w, m->attn_b, &rng, err);
    if (!rc) rc = lora_merged_register(&m->attn, &m->reg, "attn", err);
    if (!rc) rc = lora_linear_init(&m->proj, 12, 6, &c2, m->proj_w, NULL, &rng, err);
    if (!rc) rc = lora_linear_register(&m->proj, &m->reg, "proj", err);
    if (!rc) rc = lora_registry_add(&m->reg, "head.weight", 2, s46, m->head_w, NULL, NULL, 1, 0, err);
    if (!rc) rc = lora_registry_add(&m->reg, "head.bias", 1, s4, m->head_b, NULL, NULL, 1, 0, err);
    if (!rc) rc = lora_conv_init(&m->conv, 2, &cc, &c2, m->conv_w, m->conv_b, &rng, err);
    if (!rc) rc = lora_conv_register(&m->conv, &m->reg, "conv", err);
    return rc;
}

static void free_rules_model(rules_model *m) {
    lora_embedding_free(&m->emb);
    lora_merged_free(&m->attn);
    lora_linear_free(&m->proj);
    lora_conv_free(&m->conv);
    lora_registry_free(&m->reg);
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Joins the names (sorted if asked) into buf with single spaces. */
static void join_names(char *buf, size_t size, const char **names, size_t n, int sorted) {
    if (sorted) qsort(names, n, sizeof *names, cmp_names);
    size_t k = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && k < size; i++) k += (size_t)snprintf(buf + k, size - k, "%s%s", i ? " " : "", names[i]);
}

static void test_rules(void) {
    fixture f;
    if (fx_load(&f, "rules")) { CHECK(0, "load rules"); return; }
    lorac_err err = {0};
    rules_model *m = malloc(sizeof *m);
    CHECK(build_rules_model(m, &err) == 0, "%s", err.msg);
    /* names and shapes, in loralib's named_parameters() order */
    size_t np = 0;
    for (int i = 0; i < f.n_lines; i++) {
        if (strncmp(f.lines[i], "param ", 6)) continue;
        CHECK(np < m->reg.n, "more loralib parameters than registered");
        if (np >= m->reg.n) break;
        const lora_param *p = &m->reg.params[np++];
        char mine[256];
        int k = snprintf(mine, sizeof mine, "param %s", p->name);
        for (int d = 0; d < p->ndim; d++) k += snprintf(mine + k, sizeof mine - (size_t)k, " %lld", (long long)p->shape[d]);
        CHECK(strcmp(mine, f.lines[i]) == 0, "got \"%s\" want \"%s\"", mine, f.lines[i]);
    }
    CHECK(np == m->reg.n, "%zu loralib parameters, %zu registered", np, m->reg.n);
    free_rules_model(m);
    for (int mode = 0; mode < 3; mode++) {
        const char *mname = lora_bias_mode_name((lora_bias_mode)mode);
        CHECK(build_rules_model(m, &err) == 0, "%s", err.msg);
        lora_mark_only_lora_as_trainable(&m->reg, (lora_bias_mode)mode);
        const char *names[64];
        size_t n = 0;
        char want[2200], got[2048];
        for (size_t i = 0; i < m->reg.n; i++)
            if (lora_param_requires_grad(&m->reg.params[i])) names[n++] = m->reg.params[i].name;
        join_names(got, sizeof got, names, n, 0);
        snprintf(want, sizeof want, "trainable %s %s", mname, got);
        for (int i = 0; i < f.n_lines; i++)
            if (strncmp(f.lines[i], "trainable ", 10) == 0 && strncmp(f.lines[i] + 10, mname, strlen(mname)) == 0 &&
                f.lines[i][10 + strlen(mname)] == ' ')
                CHECK(strcmp(want, f.lines[i]) == 0, "mark_only_lora_as_trainable:\n  got  %s\n  want %s", want, f.lines[i]);
        n = 0;
        for (size_t i = 0; i < m->reg.n; i++)
            if (lora_state_keeps(&m->reg, &m->reg.params[i], (lora_bias_mode)mode)) names[n++] = m->reg.params[i].name;
        join_names(got, sizeof got, names, n, 1);
        snprintf(want, sizeof want, "state %s %s", mname, got);
        for (int i = 0; i < f.n_lines; i++)
            if (strncmp(f.lines[i], "state ", 6) == 0 && strncmp(f.lines[i] + 6, mname, strlen(mname)) == 0 &&
                f.lines[i][6 + strlen(mname)] == ' ')
                CHECK(strcmp(want, f.lines[i]) == 0, "lora_state_dict:\n  got  %s\n  want %s", want, f.lines[i]);
        char rep[256];
        lora_registry_report(&m->reg, rep, sizeof rep);
        snprintf(want, sizeof want, "report %s %s", mname, rep);
        for (int i = 0; i < f.n_lines; i++)
            if (strncmp(f.lines[i], "report ", 7) == 0 && strncmp(f.lines[i] + 7, mname, strlen(mname)) == 0 &&
                f.lines[i][7 + strlen(mname)] == ' ')
                CHECK(strcmp(want, f.lines[i]) == 0, "report:\n  got  %s\n  want %s", want, f.lines[i]);
        free_rules_model(m);
    }
    free(m);
    fx_free(&f);
}

int main(void) {
    test_linear("linear");
    test_linear("linear_fifo_nobias");
    test_merged("merged_qv_fifo");
    test_merged("merged_mask");
    test_embedding("embedding");
    test_embedding("embedding_pad");
    test_conv("conv2d");
    test_conv("conv2d_groups");
    test_conv("conv1d");
    test_rules();
    printf("tolerance: |got - loralib| <= %g + %g*|loralib|\n", ATOL, RTOL);
    return check_summary();
}
