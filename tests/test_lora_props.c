/* test_lora_props.c — properties of the LoRA layers that need no reference implementation:
 *  - B = 0 (A = 0 for Embedding) at init: the output equals the base layer's, bit for bit;
 *  - the merged (inference) forward equals the unmerged one (|diff| <= 1e-5 + 1e-5·|y|);
 *  - central finite differences for dA, dB, dx and d(bias), with dropout on (the same mask each
 *    forward: the rng is re-seeded), fan_in_fan_out, rsLoRA, enable_lora masks, conv geometry;
 *    the loss Σ dy·y is linear in each perturbed tensor, so central differences are exact up to
 *    float rounding: eps = 0.25, tolerance 1e-4·(1 + |g|) with the loss summed in double;
 *  - merge/unmerge never writes W0 (it is a read-only file mapping here) and 1000 cycles give the
 *    same merged weight bit for bit; backward refuses a merged layer;
 *  - initialisation as loralib (Kaiming-uniform bound, zeros, N(0,1)) and the Gaussian option;
 *  - the PEFT trainable-parameter line; adapter and base state round trips through safetensors;
 *    each load error (missing, unknown, unexpected tensor, shape mismatch, bias mode) and that a
 *    failed load leaves the model untouched. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lorac.h"

static void fill(float *x, size_t n, lorac_rng *rng, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * (2.0f * lorac_rng_uniform(rng) - 1.0f);
}

static float *randv(size_t n, lorac_rng *rng) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    fill(x, n, rng, 1.0f);
    return x;
}

static int all_equal(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* ------------------------------------------------------------ finite differences */

enum { K_LINEAR, K_MERGED, K_EMBED, K_CONV };
typedef struct fd_ctx {
    int kind;
    void *L;
    lora_act *act;
    const float *inp;
    const int32_t *ids;
    const float *dy;
    float *out;
    size_t nout;
    int N, B, H, W;
    uint64_t seed; /* dropout seed: every forward draws the same mask */
} fd_ctx;

static double fd_loss(const fd_ctx *c) {
    lorac_rng rng;
    lorac_rng_seed(&rng, c->seed);
    int rc = 0;
    if (c->kind == K_LINEAR) rc = lora_linear_forward(c->L, c->act, c->out, c->inp, c->N, &rng, NULL);
    if (c->kind == K_MERGED) rc = lora_merged_forward(c->L, c->act, c->out, c->inp, c->N, &rng, NULL);
    if (c->kind == K_EMBED) rc = lora_embedding_forward(c->L, c->act, c->out, c->ids, c->N, NULL);
    if (c->kind == K_CONV) rc = lora_conv_forward(c->L, c->act, c->out, c->inp, c->B, c->H, c->W, NULL);
    if (rc) return NAN;
    double s = 0;
    for (size_t i = 0; i < c->nout; i++) s += (double)c->dy[i] * c->out[i];
    return s;
}

static void fd_check(const fd_ctx *c, float *x, const float *g, size_t n, const char *what) {
    const float eps = 0.25f;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + eps;
        double lp = fd_loss(c);
        x[i] = keep - eps;
        double lm = fd_loss(c);
        x[i] = keep;
        double fd = (lp - lm) / (2.0 * eps), e = fabs(fd - g[i]) / (1.0 + fabs(fd));
        if (!(e <= worst)) worst = e;
    }
    CHECK(worst < 1e-4, "%s: worst finite-difference error %.3g over %zu values", what, worst, n);
}

static void fd_linear(const char *name, int fifo, float dropout, int rslora, int bias) {
    int C = 6, OC = 5, N = 4;
    lorac_rng rng;
    lorac_rng_seed(&rng, 11);
    lora_config cfg = lora_config_default(3, 5.0f);
    cfg.fan_in_fan_out = fifo;
    cfg.lora_dropout = dropout;
    cfg.use_rslora = rslora;
    float *w = randv((size_t)C * OC, &rng), *b = randv((size_t)OC, &rng), *x = randv((size_t)N * C, &rng);
    float *dy = randv((size_t)N * OC, &rng), *out = malloc((size_t)N * OC * 4), *dx = calloc((size_t)N * C, 4);
    lora_linear L;
    lorac_err err = {0};
    CHECK(lora_linear_init(&L, C, OC, &cfg, w, bias ? b : NULL, &rng, &err) == 0, "%s", err.msg);
    fill(L.lora_B, (size_t)OC * 3, &rng, 1.0f);
    lora_act act;
    CHECK(lora_linear_act_init(&act, &L, N, &err) == 0, "%s", err.msg);
    fd_ctx c = {K_LINEAR, &L, &act, x, NULL, dy, out, (size_t)N * OC, N, 0, 0, 0, 99};
    fd_loss(&c);
    CHECK(act.dropped == (dropout > 0), "%s: dropout applied in training mode", name);
    lora_linear_zero_grad(&L);
    CHECK(lora_linear_backward(&L, &act, dx, dy, x, &err) == 0, "%s", err.msg);
    char what[128];
    snprintf(what, sizeof what, "%s dA", name);
    fd_check(&c, L.lora_A, L.grad_A, (size_t)3 * C, what);
    snprintf(what, sizeof what, "%s dB", name);
    fd_check(&c, L.lora_B, L.grad_B, (size_t)OC * 3, what);
    snprintf(what, sizeof what, "%s dx", name);
    fd_check(&c, x, dx, (size_t)N * C, what);
    if (bias) {
        snprintf(what, sizeof what, "%s dbias", name);
        fd_check(&c, b, L.grad_bias, (size_t)OC, what);
    }
    /* frozen A: no grad_A accumulates, the rest still does */
    lora_linear_zero_grad(&L);
    L.train_A = 0;
    fd_loss(&c);
    memset(dx, 0, (size_t)N * C * 4);
    lora_linear_backward(&L, &act, dx, dy, x, &err);
    float zero[32] = {0};
    CHECK(all_equal(L.grad_A, zero, (size_t)3 * C), "%s: a frozen A gets no gradient", name);
    lora_act_free(&act);
    lora_linear_free(&L);
    free(w); free(b); free(x); free(dy); free(out); free(dx);
}

static void fd_merged(const char *name, int fifo, float dropout) {
    int C = 5, OC = 9, N = 3, en[3] = {1, 0, 1}, r = 2;
    lorac_rng rng;
    lorac_rng_seed(&rng, 12);
    lora_config cfg = lora_config_default(r, 4.0f);
    cfg.fan_in_fan_out = fifo;
    cfg.lora_dropout = dropout;
    float *w = randv((size_t)C * OC, &rng), *b = randv((size_t)OC, &rng), *x = randv((size_t)N * C, &rng);
    float *dy = randv((size_t)N * OC, &rng), *out = malloc((size_t)N * OC * 4), *dx = calloc((size_t)N * C, 4);
    lora_merged L;
    lorac_err err = {0};
    CHECK(lora_merged_init(&L, C, OC, en, 3, &cfg, w, b, &rng, &err) == 0, "%s", err.msg);
    size_t na = (size_t)r * 2 * C, nb = (size_t)3 * 2 * r;
    fill(L.lora_B, nb, &rng, 1.0f);
    lora_act act;
    CHECK(lora_merged_act_init(&act, &L, N, &err) == 0, "%s", err.msg);
    fd_ctx c = {K_MERGED, &L, &act, x, NULL, dy, out, (size_t)N * OC, N, 0, 0, 0, 98};
    fd_loss(&c);
    lora_merged_zero_grad(&L);
    CHECK(lora_merged_backward(&L, &act, dx, dy, x, &err) == 0, "%s", err.msg);
    char what[128];
    snprintf(what, sizeof what, "%s dA", name);
    fd_check(&c, L.lora_A, L.grad_A, na, what);
    snprintf(what, sizeof what, "%s dB", name);
    fd_check(&c, L.lora_B, L.grad_B, nb, what);
    snprintf(what, sizeof what, "%s dx", name);
    fd_check(&c, x, dx, (size_t)N * C, what);
    snprintf(what, sizeof what, "%s dbias", name);
    fd_check(&c, b, L.grad_bias, (size_t)OC, what);
    lora_act_free(&act);
    lora_merged_free(&L);
    free(w); free(b); free(x); free(dy); free(out); free(dx);
}

static void fd_embedding(void) {
    int V = 8, D = 4, N = 6, r = 2;
    int32_t ids[6] = {1, 5, 1, 7, 0, 3};
    lorac_rng rng;
    lorac_rng_seed(&rng, 13);
    lora_config cfg = lora_config_default(r, 3.0f);
    float *w = randv((size_t)V * D, &rng), *dy = randv((size_t)N * D, &rng), *out = malloc((size_t)N * D * 4);
    lora_embedding L;
    lorac_err err = {0};
    CHECK(lora_embedding_init(&L, V, D, 3, &cfg, w, &rng, &err) == 0, "%s", err.msg);
    fill(L.lora_A, (size_t)r * V, &rng, 1.0f);
    lora_act act;
    CHECK(lora_embedding_act_init(&act, &L, N, &err) == 0, "%s", err.msg);
    fd_ctx c = {K_EMBED, &L, &act, NULL, ids, dy, out, (size_t)N * D, N, 0, 0, 0, 0};
    fd_loss(&c);
    lora_embedding_zero_grad(&L);
    CHECK(lora_embedding_backward(&L, &act, dy, ids, &err) == 0, "%s", err.msg);
    fd_check(&c, L.lora_B, L.grad_B, (size_t)D * r, "embedding dB");
    /* padding_idx 3: its A column gets no gradient although it is used (F.embedding's rule) */
    CHECK(L.grad_A[3] == 0.0f && L.grad_A[V + 3] == 0.0f, "embedding: padding_idx column of dA is zero");
    L.grad_A[3] = L.grad_A[V + 3] = 0; /* compare the other columns with finite differences */
    float saved0 = L.lora_A[3], saved1 = L.lora_A[V + 3];
    L.padding_idx = -1;
    lora_embedding_zero_grad(&L);
    fd_loss(&c);
    lora_embedding_backward(&L, &act, dy, ids, &err);
    fd_check(&c, L.lora_A, L.grad_A, (size_t)r * V, "embedding dA");
    CHECK(saved0 == L.lora_A[3] && saved1 == L.lora_A[V + 3], "embedding: A restored");
    int32_t bad[1] = {V};
    CHECK(lora_embedding_forward(&L, &act, out, bad, 1, &err) == LORAC_EINVAL, "an id outside [0, V) is an error");
    lora_act_free(&act);
    lora_embedding_free(&L);
    free(w); free(dy); free(out);
}

static void fd_conv(const char *name, int dims, int C, int OC, int k, int stride, int pad, int groups, int B, int H, int W) {
    lorac_rng rng;
    lorac_rng_seed(&rng, 14);
    op_conv_cfg cc = dims == 2 ? op_conv2d_cfg(C, OC, k, stride, pad, 1, groups) : op_conv1d_cfg(C, OC, k, stride, pad, 1, groups);
    if (dims == 1) H = 1;
    int OH, OW;
    lorac_err err = {0};
    CHECK(op_conv_out_size(&cc, H, W, &OH, &OW, &err) == 0, "%s", err.msg);
    lora_config cfg = lora_config_default(2, 2.0f);
    size_t nw = op_conv_weight_numel(&cc), nx = (size_t)B * C * H * W, ny = (size_t)B * OC * OH * OW;
    float *w = randv(nw, &rng), *b = randv((size_t)OC, &rng), *x = randv(nx, &rng), *dy = randv(ny, &rng);
    float *out = malloc(ny * 4), *dx = calloc(nx, 4);
    lora_conv L;
    CHECK(lora_conv_init(&L, dims, &cc, &cfg, w, b, &rng, &err) == 0, "%s: %s", name, err.msg);
    CHECK((size_t)L.b_rows * L.a_cols == nw, "%s: B·A (%d x %d) has the weight's %zu elements", name, L.b_rows, L.a_cols, nw);
    size_t na = (size_t)L.a_rows * L.a_cols, nb = (size_t)L.b_rows * L.a_rows;
    fill(L.lora_B, nb, &rng, 0.5f);
    lora_act act;
    CHECK(lora_conv_act_init(&act, &L, &err) == 0, "%s", err.msg);
    fd_ctx c = {K_CONV, &L, &act, x, NULL, dy, out, ny, 0, B, H, W, 0};
    fd_loss(&c);
    lora_conv_zero_grad(&L);
    CHECK(lora_conv_backward(&L, &act, dx, dy, x, B, H, W, &err) == 0, "%s", err.msg);
    char what[128];
    snprintf(what, sizeof what, "%s dA", name);
    fd_check(&c, L.lora_A, L.grad_A, na, what);
    snprintf(what, sizeof what, "%s dB", name);
    fd_check(&c, L.lora_B, L.grad_B, nb, what);
    snprintf(what, sizeof what, "%s dx", name);
    fd_check(&c, x, dx, nx, what);
    snprintf(what, sizeof what, "%s dbias", name);
    fd_check(&c, b, L.grad_bias, (size_t)OC, what);
    /* merged == unmerged, and the 1-D kernel-3 case (where loralib's view() fails) merges too */
    float *y0 = malloc(ny * 4);
    fd_loss(&c);
    memcpy(y0, out, ny * 4);
    CHECK(lora_conv_train(&L, 0, &err) == 0 && L.merged, "%s: merge", name);
    fd_loss(&c);
    check_arrays_close(out, y0, ny, 1e-5, 1e-5, name);
    CHECK(lora_conv_backward(&L, &act, dx, dy, x, B, H, W, &err) == LORAC_EINVAL, "%s: backward refuses a merged layer", name);
    lora_conv_train(&L, 1, &err);
    lora_act_free(&act);
    lora_conv_free(&L);
    free(w); free(b); free(x); free(dy); free(out); free(dx); free(y0);
}

/* ------------------------------------------------------------ B = 0, merge, init */

static void test_zero_B_and_merge(void) {
    int C = 16, OC = 12, N = 5;
    lorac_rng rng;
    lorac_rng_seed(&rng, 21);
    float *w = randv((size_t)C * OC, &rng), *b = randv((size_t)OC, &rng), *x = randv((size_t)N * C, &rng);
    float *base = malloc((size_t)N * OC * 4), *y = malloc((size_t)N * OC * 4), *ym = malloc((size_t)N * OC * 4);
    lorac_err err = {0};
    for (int fifo = 0; fifo < 2; fifo++) {
        op_matmul_forward(base, x, w, b, N, C, OC, fifo ? OP_W_IN_OUT : OP_W_OUT_IN);
        lora_config cfg = lora_config_default(4, 8.0f);
        cfg.fan_in_fan_out = fifo;
        cfg.lora_dropout = 0.5f; /* dropout on the LoRA input changes nothing while B = 0 */
        lora_linear L;
        lora_act act;
        CHECK(lora_linear_init(&L, C, OC, &cfg, w, b, &rng, &err) == 0, "%s", err.msg);
        lora_linear_act_init(&act, &L, N, &err);
        lora_linear_forward(&L, &act, y, x, N, &rng, &err);
        CHECK(all_equal(y, base, (size_t)N * OC), "linear fifo=%d: B = 0 gives the base output", fifo);
        /* initialisation: A ~ U(-1/sqrt(C), 1/sqrt(C)) spread over the range, B = 0 */
        float bound = 1.0f / sqrtf((float)C), amax = 0;
        int inside = 1;
        for (int i = 0; i < 4 * C; i++) {
            inside &= fabsf(L.lora_A[i]) <= bound;
            amax = fmaxf(amax, fabsf(L.lora_A[i]));
        }
        CHECK(inside && amax > 0.8f * bound, "linear: Kaiming-uniform A within %g (max %g)", bound, amax);
        /* merged forward == unmerged forward */
        fill(L.lora_B, (size_t)OC * 4, &rng, 1.0f);
        L.cfg.lora_dropout = 0; /* compare without dropout (the act has the buffers; p = 0 skips them) */
        lora_linear_forward(&L, &act, y, x, N, NULL, &err);
        CHECK(lora_linear_train(&L, 0, &err) == 0 && L.merged && !L.training, "linear: eval() merges");
        lora_linear_forward(&L, &act, ym, x, N, NULL, &err);
        check_arrays_close(ym, y, (size_t)N * OC, 1e-5, 1e-5, "linear merged vs unmerged");
        CHECK(lora_linear_backward(&L, &act, NULL, y, x, &err) == LORAC_EINVAL, "linear: backward refuses a merged layer");
        lora_linear_train(&L, 1, &err);
        CHECK(!L.merged && L.merged_w == NULL, "linear: train() unmerges");
        /* merge_weights = 0: eval() keeps the LoRA path (without dropout) */
        L.cfg.merge_weights = 0;
        L.cfg.lora_dropout = 0.5f;
        lora_linear_train(&L, 0, &err);
        CHECK(!L.merged, "linear: merge_weights 0 does not merge");
        CHECK(lora_linear_forward(&L, &act, ym, x, N, NULL, &err) == 0 && !act.dropped, "eval: no dropout, no rng needed");
        check_arrays_close(ym, y, (size_t)N * OC, 1e-6, 1e-6, "linear eval without merge");
        lora_act_free(&act);
        lora_linear_free(&L);
    }
    /* MergedLinear, B = 0 and merged == unmerged */
    int en[4] = {0, 1, 1, 0};
    lora_config cfg = lora_config_default(2, 2.0f);
    lora_merged M;
    lora_act act;
    CHECK(lora_merged_init(&M, C, OC, en, 4, &cfg, w, b, &rng, &err) == 0, "%s", err.msg);
    lora_merged_act_init(&act, &M, N, &err);
    op_matmul_forward(base, x, w, b, N, C, OC, OP_W_OUT_IN);
    lora_merged_forward(&M, &act, y, x, N, NULL, &err);
    CHECK(all_equal(y, base, (size_t)N * OC), "merged linear: B = 0 gives the base output");
    fill(M.lora_B, (size_t)OC / 4 * 2 * 2, &rng, 1.0f);
    lora_merged_forward(&M, &act, y, x, N, NULL, &err);
    int untouched = 1; /* disabled slices (columns 0..2 and 9..11) keep the base output exactly */
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++)
            if (o < 3 || o >= 9) untouched &= y[n * OC + o] == base[n * OC + o];
    CHECK(untouched, "merged linear: disabled slices get no update");
    lora_merged_train(&M, 0, &err);
    lora_merged_forward(&M, &act, ym, x, N, NULL, &err);
    check_arrays_close(ym, y, (size_t)N * OC, 1e-5, 1e-5, "merged linear merged vs unmerged");
    lora_act_free(&act);
    lora_merged_free(&M);
    /* Embedding: A = 0 at init, B ~ N(0,1) */
    int V = 50, D = 40;
    float *ew = randv((size_t)V * D, &rng);
    lora_embedding E;
    lora_config ecfg = lora_config_default(8, 8.0f);
    CHECK(lora_embedding_init(&E, V, D, -1, &ecfg, ew, &rng, &err) == 0, "%s", err.msg);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < D * 8; i++) { s1 += E.lora_B[i]; s2 += (double)E.lora_B[i] * E.lora_B[i]; }
    double mean = s1 / (D * 8), sd = sqrt(s2 / (D * 8) - mean * mean);
    CHECK(fabs(mean) < 0.15 && fabs(sd - 1.0) < 0.15, "embedding: B ~ N(0,1) (mean %.3f, std %.3f)", mean, sd);
    int32_t ids[5] = {0, 49, 7, 7, 3};
    float ey[5 * 40], eym[5 * 40];
    lora_embedding_act_init(&act, &E, 5, &err);
    lora_embedding_forward(&E, &act, ey, ids, 5, &err);
    int same = 1;
    for (int n = 0; n < 5; n++) same &= all_equal(ey + n * D, ew + ids[n] * D, (size_t)D);
    CHECK(same, "embedding: A = 0 gives the base rows");
    fill(E.lora_A, (size_t)8 * V, &rng, 1.0f);
    lora_embedding_forward(&E, &act, ey, ids, 5, &err);
    lora_embedding_train(&E, 0, &err);
    lora_embedding_forward(&E, &act, eym, ids, 5, &err);
    check_arrays_close(eym, ey, (size_t)5 * D, 1e-5, 1e-5, "embedding merged vs unmerged");
    lora_act_free(&act);
    lora_embedding_free(&E);
    /* Conv2d: B = 0 gives the base conv */
    op_conv_cfg cc = op_conv2d_cfg(3, 4, 3, 1, 1, 1, 1);
    float *cw = randv(op_conv_weight_numel(&cc), &rng), *cx = randv(2 * 3 * 5 * 5, &rng);
    float cbase[2 * 4 * 25], cy[2 * 4 * 25];
    lora_conv K;
    CHECK(lora_conv_init(&K, 2, &cc, &cfg, cw, b, &rng, &err) == 0, "%s", err.msg);
    lora_conv_act_init(&act, &K, &err);
    op_conv_forward(cbase, cx, cw, b, 2, 5, 5, &cc);
    lora_conv_forward(&K, &act, cy, cx, 2, 5, 5, &err);
    CHECK(all_equal(cy, cbase, 2 * 4 * 25), "conv2d: B = 0 gives the base conv");
    lora_act_free(&act);
    lora_conv_free(&K);
    /* Gaussian A: std 1/r; rsLoRA scaling alpha/sqrt(r) */
    lora_config g = lora_config_default(4, 16.0f);
    g.init = LORA_INIT_GAUSSIAN;
    float *gw = randv((size_t)256 * 64, &rng);
    lora_linear G;
    CHECK(lora_linear_init(&G, 256, 64, &g, gw, NULL, &rng, &err) == 0, "%s", err.msg);
    s1 = s2 = 0;
    for (int i = 0; i < 4 * 256; i++) { s1 += G.lora_A[i]; s2 += (double)G.lora_A[i] * G.lora_A[i]; }
    sd = sqrt(s2 / 1024 - (s1 / 1024) * (s1 / 1024));
    CHECK(fabs(sd - 0.25) < 0.02, "gaussian A: std %.4f, want 1/r = 0.25", sd);
    CHECK(G.scaling == 4.0f, "scaling alpha/r = 4 (got %g)", G.scaling);
    g.use_rslora = 1;
    CHECK(lora_config_scaling(&g) == 8.0f, "rsLoRA scaling alpha/sqrt(r) = 8 (got %g)", lora_config_scaling(&g));
    lora_linear_free(&G);
    free(gw); free(ew); free(cw); free(cx);
    free(w); free(b); free(x); free(base); free(y); free(ym);
}

/* W0 lives in a read-only mapping: any write would crash. 1000 merge/unmerge cycles. */
static void test_unmerge_bit_exact(void) {
    int C = 64, OC = 48;
    lorac_rng rng;
    lorac_rng_seed(&rng, 31);
    float *w = randv((size_t)C * OC, &rng);
    char path[4096];
    snprintf(path, sizeof path, "%s/lora_props_w0.bin", LORAC_BINARY_DIR);
    lorac_err err = {0};
    CHECK(lorac_write_file(path, w, (size_t)C * OC * 4, &err) == 0, "%s", err.msg);
    lorac_map map;
    CHECK(lorac_map_file(path, &map, &err) == 0, "%s", err.msg);
    float *w0 = (float *)(uintptr_t)map.data; /* read-only: the layer must never write it */
    for (int kind = 0; kind < 3; kind++) {
        lora_config cfg = lora_config_default(4, 8.0f);
        cfg.fan_in_fan_out = kind == 1;
        lora_linear L;
        lora_merged M;
        int en[3] = {1, 0, 1};
        float *B, *first = malloc((size_t)C * OC * 4);
        float **mw;
        int rc = kind < 2 ? lora_linear_init(&L, C, OC, &cfg, w0, NULL, &rng, &err)
                          : lora_merged_init(&M, C, OC, en, 3, &cfg, w0, NULL, &rng, &err);
        CHECK(rc == 0, "%s", err.msg);
        B = kind < 2 ? L.lora_B : M.lora_B;
        mw = kind < 2 ? &L.merged_w : &M.merged_w;
        fill(B, kind < 2 ? (size_t)OC * 4 : (size_t)OC / 3 * 2 * 4, &rng, 1.0f); /* (OC, r) or (OC/3·2, r) */
        int same_merge = 1;
        for (int cycle = 0; cycle < 1000; cycle++) {
            if (kind < 2) lora_linear_train(&L, 0, &err); else lora_merged_train(&M, 0, &err);
            if (cycle == 0) memcpy(first, *mw, (size_t)C * OC * 4);
            else same_merge &= all_equal(first, *mw, (size_t)C * OC);
            if (kind < 2) lora_linear_train(&L, 1, &err); else lora_merged_train(&M, 1, &err);
        }
        CHECK(same_merge, "kind %d: every merge gives the same weight", kind);
        CHECK(all_equal(w0, w, (size_t)C * OC), "kind %d: W0 bit-for-bit after 1000 merge/unmerge cycles", kind);
        int differs = 0; /* the merge did change the effective weight */
        for (size_t i = 0; i < (size_t)C * OC; i++) differs |= first[i] != w[i];
        CHECK(differs, "kind %d: the merged weight differs from W0", kind);
        if (kind < 2) lora_linear_free(&L); else lora_merged_free(&M);
        free(first);
    }
    lorac_unmap(&map);
    remove(path);
    free(w);
}

static void test_report_format(void) {
    char buf[256];
    lora_format_trainable(buf, sizeof buf, 147456, 124587264);
    CHECK(strcmp(buf, "trainable params: 147,456 || all params: 124,587,264 || trainable%: 0.1184") == 0, "got %s", buf);
    lora_format_trainable(buf, sizeof buf, 999, 1000);
    CHECK(strcmp(buf, "trainable params: 999 || all params: 1,000 || trainable%: 99.9000") == 0, "got %s", buf);
    lora_format_trainable(buf, sizeof buf, 0, 0);
    CHECK(strcmp(buf, "trainable params: 0 || all params: 0 || trainable%: 0.0000") == 0, "got %s", buf);
    lora_bias_mode m;
    CHECK(lora_bias_mode_parse("lora_only", &m) == 0 && m == LORA_BIAS_LORA_ONLY, "parse lora_only");
    CHECK(lora_bias_mode_parse("some", &m) == LORAC_EINVAL, "unknown bias mode");
}

/* ------------------------------------------------------------ state save/load */

typedef struct small_model {
    float l1_w[8 * 6], l1_b[8], attn_w[6 * 12], attn_b[12], ln_w[6], ln_b[6];
    lora_linear l1;
    lora_merged attn;
    lora_registry reg;
} small_model;

/* l1: Linear(6 -> 8, r), attn: MergedLinear(6 -> 12, [1,0,1], fan_in_fan_out), ln.weight/bias.
 * with_attn 0 leaves attn out of the registry. Base and LoRA values come from seed. */
static int small_build(small_model *m, uint64_t seed, int r, int with_attn, lorac_err *err) {
    memset(m, 0, sizeof *m);
    lorac_rng rng;
    lorac_rng_seed(&rng, seed);
    fill(m->l1_w, 48, &rng, 1.0f);
    fill(m->l1_b, 8, &rng, 1.0f);
    fill(m->attn_w, 72, &rng, 1.0f);
    fill(m->attn_b, 12, &rng, 1.0f);
    fill(m->ln_w, 6, &rng, 1.0f);
    fill(m->ln_b, 6, &rng, 1.0f);
    lora_config c = lora_config_default(r, 8.0f), cf = lora_config_default(2, 8.0f);
    cf.fan_in_fan_out = 1;
    int en[3] = {1, 0, 1};
    int64_t s6[1] = {6};
    lora_registry_init(&m->reg);
    int rc = lora_linear_init(&m->l1, 6, 8, &c, m->l1_w, m->l1_b, &rng, err);
    if (!rc) rc = lora_merged_init(&m->attn, 6, 12, en, 3, &cf, m->attn_w, m->attn_b, &rng, err);
    if (rc) return rc;
    fill(m->l1.lora_B, (size_t)8 * r, &rng, 1.0f);
    fill(m->attn.lora_B, 16, &rng, 1.0f);
    rc = lora_linear_register(&m->l1, &m->reg, "h.0.l1", err);
    if (!rc && with_attn) rc = lora_merged_register(&m->attn, &m->reg, "h.0.attn", err);
    if (!rc) rc = lora_registry_add(&m->reg, "h.0.ln.weight", 1, s6, m->ln_w, NULL, NULL, 1, 0, err);
    if (!rc) rc = lora_registry_add(&m->reg, "h.0.ln.bias", 1, s6, m->ln_b, NULL, NULL, 1, 0, err);
    return rc;
}

static void small_free(small_model *m) {
    lora_linear_free(&m->l1);
    lora_merged_free(&m->attn);
    lora_registry_free(&m->reg);
}

static int small_same(const small_model *a, const small_model *b) {
    for (size_t i = 0; i < a->reg.n; i++) {
        const lora_param *p = &a->reg.params[i], *q = lora_registry_find(&b->reg, p->name);
        if (!q || p->numel != q->numel || !all_equal(p->data, q->data, p->numel)) return 0;
    }
    return 1;
}

static void test_state(void) {
    char dir[4096], adapter[4200], base[4200], odd[4200];
    snprintf(dir, sizeof dir, "%s", LORAC_BINARY_DIR);
    snprintf(adapter, sizeof adapter, "%s/lora_props_adapter.safetensors", dir);
    snprintf(base, sizeof base, "%s/lora_props_base.safetensors", dir);
    snprintf(odd, sizeof odd, "%s/lora_props_odd.safetensors", dir);
    lorac_err err = {0};
    small_model *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    CHECK(small_build(a, 1, 2, 1, &err) == 0, "%s", err.msg);
    lora_mark_only_lora_as_trainable(&a->reg, LORA_BIAS_LORA_ONLY);
    CHECK(a->l1.train_bias && a->attn.train_bias && !lora_param_requires_grad(lora_registry_find(&a->reg, "h.0.ln.bias")),
          "lora_only: LoRA layers' biases train, ln.bias does not");
    char rep[256];
    lora_registry_report(&a->reg, rep, sizeof rep);
    /* trainable: l1 A 12 + B 16 + bias 8, attn A 24 + B 16 + bias 12 = 88; all adds 48 + 72 + 12 */
    CHECK(strcmp(rep, "trainable params: 88 || all params: 220 || trainable%: 40.0000") == 0, "report %s", rep);
    CHECK(lora_state_save(&a->reg, adapter, LORA_BIAS_LORA_ONLY, &err) == 0, "%s", err.msg);
    CHECK(lora_base_save(&a->reg, base, &err) == 0, "%s", err.msg);
    /* a fresh model with other values: base first, then the adapter, reproduces every tensor */
    CHECK(small_build(b, 2, 2, 1, &err) == 0, "%s", err.msg);
    CHECK(!small_same(a, b), "the fresh model differs before loading");
    CHECK(lora_base_load(&b->reg, base, &err) == 0, "%s", err.msg);
    CHECK(!small_same(a, b), "base alone does not restore the adapter");
    CHECK(lora_state_load(&b->reg, adapter, LORA_BIAS_LORA_ONLY, &err) == 0, "%s", err.msg);
    CHECK(small_same(a, b), "base + adapter restore every tensor bit for bit");
    float x[2 * 6] = {1, -2, 3, 0.5f, -1, 2, 0, 1, -1, 2, 0.25f, -3}, ya[24], yb[24];
    lora_act aa, ab;
    lora_merged_act_init(&aa, &a->attn, 2, &err);
    lora_merged_act_init(&ab, &b->attn, 2, &err);
    lora_merged_forward(&a->attn, &aa, ya, x, 2, NULL, &err);
    lora_merged_forward(&b->attn, &ab, yb, x, 2, NULL, &err);
    CHECK(all_equal(ya, yb, 24), "reloaded model reproduces the output bit for bit");
    lora_act_free(&aa);
    lora_act_free(&ab);

    /* errors, each one line naming the file and the tensor; a failed load writes nothing */
    small_model *c = malloc(sizeof *c);
    CHECK(small_build(c, 3, 2, 0, &err) == 0, "%s", err.msg); /* no attn in the registry */
    float keepA = c->l1.lora_A[0];
    int rc = lora_state_load(&c->reg, adapter, LORA_BIAS_LORA_ONLY, &err);
    CHECK(rc == LORAC_ENOTFOUND && strstr(err.msg, adapter) && strstr(err.msg, "unknown tensor \"h.0.attn."),
          "unknown tensor: %d %s", rc, err.msg);
    CHECK(c->l1.lora_A[0] == keepA, "a failed load leaves the model untouched");
    small_free(c);
    CHECK(small_build(c, 3, 2, 1, &err) == 0, "%s", err.msg);
    rc = lora_state_load(&c->reg, adapter, LORA_BIAS_NONE, &err);
    CHECK(rc == LORAC_EINVAL && strstr(err.msg, adapter) && strstr(err.msg, "lora_only"), "bias mode: %d %s", rc, err.msg);
    /* missing: an adapter saved without attn, loaded into a model with attn */
    small_model *d = malloc(sizeof *d);
    CHECK(small_build(d, 4, 2, 0, &err) == 0, "%s", err.msg);
    CHECK(lora_state_save(&d->reg, odd, LORA_BIAS_NONE, &err) == 0, "%s", err.msg);
    rc = lora_state_load(&c->reg, odd, LORA_BIAS_NONE, &err);
    CHECK(rc == LORAC_ENOTFOUND && strstr(err.msg, odd) && strstr(err.msg, "missing tensor \"h.0.attn.lora_A\""),
          "missing tensor: %d %s", rc, err.msg);
    small_free(d);
    small_free(c);
    /* shape mismatch: l1 with r = 3 */
    CHECK(small_build(c, 3, 3, 1, &err) == 0, "%s", err.msg);
    rc = lora_state_load(&c->reg, adapter, LORA_BIAS_LORA_ONLY, &err);
    CHECK(rc == LORAC_ESHAPE && strstr(err.msg, "\"h.0.l1.lora_A\" has shape [2, 6], the model expects [3, 6]"),
          "shape mismatch: %d %s", rc, err.msg);
    small_free(c);
    /* a base tensor inside an adapter file */
    CHECK(small_build(c, 3, 2, 1, &err) == 0, "%s", err.msg);
    st_entry e[3];
    memset(e, 0, sizeof e);
    const lora_param *pa = lora_registry_find(&a->reg, "h.0.l1.lora_A"), *pb = lora_registry_find(&a->reg, "h.0.l1.weight");
    e[0] = (st_entry){pa->name, ST_F32, ST_F32, 2, {pa->shape[0], pa->shape[1]}, pa->data};
    e[1] = (st_entry){pb->name, ST_F32, ST_F32, 2, {pb->shape[0], pb->shape[1]}, pb->data};
    CHECK(st_write(odd, e, 2, NULL, NULL, 0, &err) == 0, "%s", err.msg);
    keepA = c->l1.lora_A[0];
    rc = lora_state_load(&c->reg, odd, LORA_BIAS_NONE, &err);
    CHECK(rc == LORAC_EFORMAT && strstr(err.msg, "unexpected tensor \"h.0.l1.weight\""), "unexpected: %d %s", rc, err.msg);
    CHECK(c->l1.lora_A[0] == keepA, "a failed load leaves the model untouched");
    /* a base file must not carry adapter tensors either */
    rc = lora_base_load(&c->reg, adapter, &err);
    CHECK(rc == LORAC_EFORMAT && strstr(err.msg, "not part of the base state"), "base load of an adapter: %d %s", rc, err.msg);
    rc = lora_state_load(&c->reg, "/nonexistent/adapter.safetensors", LORA_BIAS_NONE, &err);
    CHECK(rc != 0 && strstr(err.msg, "/nonexistent/adapter.safetensors"), "missing file: %s", err.msg);
    small_free(c);
    free(c);
    free(d);
    small_free(a);
    small_free(b);
    free(a);
    free(b);
    remove(adapter);
    remove(base);
    remove(odd);
}

static void test_bad_configs(void) {
    lorac_rng rng;
    lorac_rng_seed(&rng, 5);
    float w[64] = {0};
    lorac_err err = {0};
    lora_config cfg = lora_config_default(0, 1.0f);
    lora_linear L;
    CHECK(lora_linear_init(&L, 4, 4, &cfg, w, NULL, &rng, &err) == LORAC_EINVAL && strstr(err.msg, "rank"), "r = 0: %s", err.msg);
    cfg = lora_config_default(2, 1.0f);
    cfg.lora_dropout = 1.0f;
    CHECK(lora_linear_init(&L, 4, 4, &cfg, w, NULL, &rng, &err) == LORAC_EINVAL, "dropout 1");
    cfg.lora_dropout = 0.0f;
    lora_merged M;
    int none[2] = {0, 0}, one[3] = {1, 0, 0};
    CHECK(lora_merged_init(&M, 4, 4, none, 2, &cfg, w, NULL, &rng, &err) == LORAC_EINVAL, "no slice enabled");
    CHECK(lora_merged_init(&M, 4, 4, one, 3, &cfg, w, NULL, &rng, &err) == LORAC_EINVAL, "3 slices of 4 outputs");
    lora_embedding E;
    cfg.lora_dropout = 0.1f;
    CHECK(lora_embedding_init(&E, 4, 4, -1, &cfg, w, &rng, &err) == LORAC_EINVAL, "embedding dropout");
    lora_registry reg;
    lora_registry_init(&reg);
    int64_t s[1] = {4};
    CHECK(lora_registry_add(&reg, "a.bias", 1, s, w, NULL, NULL, 1, 0, &err) == 0, "%s", err.msg);
    CHECK(lora_registry_add(&reg, "a.bias", 1, s, w, NULL, NULL, 1, 0, &err) == LORAC_EINVAL, "duplicate name");
    lora_registry_free(&reg);
    /* dropout in training mode needs an rng */
    cfg.lora_dropout = 0.2f;
    CHECK(lora_linear_init(&L, 4, 4, &cfg, w, NULL, &rng, &err) == 0, "%s", err.msg);
    lora_act act;
    lora_linear_act_init(&act, &L, 2, &err);
    float x[8] = {0}, y[8];
    CHECK(lora_linear_forward(&L, &act, y, x, 2, NULL, &err) == LORAC_EINVAL, "dropout without rng");
    CHECK(lora_linear_forward(&L, &act, y, x, 3, &rng, &err) == LORAC_EINVAL, "more rows than the activation holds");
    lora_act_free(&act);
    lora_linear_free(&L);
}

int main(void) {
    fd_linear("linear", 0, 0.0f, 0, 1);
    fd_linear("linear dropout", 0, 0.3f, 0, 1);
    fd_linear("linear fifo rslora dropout", 1, 0.25f, 1, 0);
    fd_merged("merged", 0, 0.0f);
    fd_merged("merged fifo dropout", 1, 0.3f);
    fd_embedding();
    fd_conv("conv2d s2 p1 g2", 2, 4, 6, 3, 2, 1, 2, 2, 6, 5);
    fd_conv("conv2d k2", 2, 2, 3, 2, 1, 0, 1, 1, 4, 4);
    fd_conv("conv1d k3 (beyond loralib)", 1, 3, 4, 3, 1, 1, 1, 2, 1, 8);
    fd_conv("conv1d k1", 1, 3, 4, 1, 1, 0, 1, 2, 1, 5);
    test_zero_B_and_merge();
    test_unmerge_bit_exact();
    test_report_format();
    test_state();
    test_bad_configs();
    return check_summary();
}
