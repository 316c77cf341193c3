/* test_lora_delta.c — the low-rank path alone (lora_linear_delta_forward/backward), for callers
 * that compute the base product themselves (LoRA over a quantized base):
 *  - base + delta equals the full layer's forward bit for bit when both use the same dropout mask
 *    (same rng seed), and the delta backward plus the base's own dx equals the full backward;
 *  - central finite differences for dA, dB and dx with dropout on and off, fan_in_fan_out and
 *    rsLoRA (loss Σ dy·out is linear in each tensor: eps 0.25, tolerance 1e-4·(1+|g|));
 *  - a layer made with weight == NULL stays unmerged in inference mode, registers no weight and
 *    refuses the full forward/backward with an error; the delta backward refuses a missing forward. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lorac.h"

static float *randv(size_t n, lorac_rng *rng) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = 2.0f * lorac_rng_uniform(rng) - 1.0f;
    return x;
}

typedef struct delta_ctx {
    lora_linear *L;
    lora_act *act;
    const float *x, *dy, *base; /* base: what the caller's own base product gave (N,OC) */
    float *out;
    int N;
    uint64_t seed;
} delta_ctx;

static double delta_loss(const delta_ctx *c) {
    lorac_rng rng;
    lorac_rng_seed(&rng, c->seed);
    size_t n = (size_t)c->N * c->L->OC;
    memcpy(c->out, c->base, n * sizeof(float));
    if (lora_linear_delta_forward(c->L, c->act, c->out, c->x, c->N, &rng, NULL)) return NAN;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)c->dy[i] * c->out[i];
    return s;
}

static void fd_check(const delta_ctx *c, float *x, const float *g, size_t n, const char *what) {
    const float eps = 0.25f;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + eps;
        double lp = delta_loss(c);
        x[i] = keep - eps;
        double lm = delta_loss(c);
        x[i] = keep;
        double fd = (lp - lm) / (2.0 * eps), e = fabs(fd - g[i]) / (1.0 + fabs(fd));
        if (!(e <= worst)) worst = e;
    }
    CHECK(worst < 1e-4, "%s: worst finite-difference error %.3g over %zu values", what, worst, n);
}

static void fd_delta(const char *name, int fifo, float dropout, int rslora) {
    int C = 7, OC = 5, N = 4, r = 3;
    lorac_rng rng;
    lorac_rng_seed(&rng, 21);
    lora_config cfg = lora_config_default(r, 6.0f);
    cfg.fan_in_fan_out = fifo;
    cfg.lora_dropout = dropout;
    cfg.use_rslora = rslora;
    float *x = randv((size_t)N * C, &rng), *dy = randv((size_t)N * OC, &rng), *base = randv((size_t)N * OC, &rng);
    float *out = malloc((size_t)N * OC * sizeof(float)), *dx = calloc((size_t)N * C, sizeof(float));
    lora_linear L;
    lorac_err err = {0};
    CHECK(lora_linear_init(&L, C, OC, &cfg, NULL, NULL, &rng, &err) == 0, "%s: %s", name, err.msg);
    float *B = randv((size_t)OC * r, &rng);
    memcpy(L.lora_B, B, (size_t)OC * r * sizeof(float));
    lora_act act;
    CHECK(lora_linear_act_init(&act, &L, N, &err) == 0, "%s", err.msg);
    delta_ctx c = {&L, &act, x, dy, base, out, N, 77};
    delta_loss(&c);
    CHECK(act.dropped == (dropout > 0), "%s: dropout applied in training mode", name);
    lora_linear_zero_grad(&L);
    CHECK(lora_linear_delta_backward(&L, &act, dx, dy, &err) == 0, "%s: %s", name, err.msg);
    char what[128];
    snprintf(what, sizeof what, "%s dA", name);
    fd_check(&c, L.lora_A, L.grad_A, (size_t)r * C, what);
    snprintf(what, sizeof what, "%s dB", name);
    fd_check(&c, L.lora_B, L.grad_B, (size_t)OC * r, what);
    snprintf(what, sizeof what, "%s dx", name);
    fd_check(&c, (float *)x, dx, (size_t)N * C, what);
    /* dinp may be NULL: the weight gradients are the same */
    float *gA = malloc((size_t)r * C * sizeof(float));
    memcpy(gA, L.grad_A, (size_t)r * C * sizeof(float));
    delta_loss(&c);
    lora_linear_zero_grad(&L);
    CHECK(lora_linear_delta_backward(&L, &act, NULL, dy, &err) == 0, "%s: %s", name, err.msg);
    CHECK(memcmp(gA, L.grad_A, (size_t)r * C * sizeof(float)) == 0, "%s: grad_A without dinp", name);
    /* no base weight: inference mode stays unmerged, full forward refuses */
    CHECK(lora_linear_train(&L, 0, &err) == 0 && !L.merged && !L.merged_w, "%s: stays unmerged", name);
    CHECK(lora_linear_forward(&L, &act, out, x, N, &rng, &err) != 0 && strstr(err.msg, "delta"),
          "%s: full forward without a weight must fail (%s)", name, err.msg);
    lora_registry reg;
    lora_registry_init(&reg);
    CHECK(lora_linear_register(&L, &reg, "m", &err) == 0 && reg.n == 2 && !lora_registry_find(&reg, "m.weight"),
          "%s: only lora_A and lora_B registered", name);
    lora_registry_free(&reg);
    lora_act_free(&act);
    lora_linear_free(&L);
    free(x); free(dy); free(base); free(out); free(dx); free(B); free(gA);
}

/* base (computed by the caller as x·W0ᵀ + b) + delta == the full layer, forward and backward. */
static void test_delta_equals_full(float dropout) {
    int C = 9, OC = 6, N = 5, r = 2;
    lorac_rng rng;
    lorac_rng_seed(&rng, 5);
    lora_config cfg = lora_config_default(r, 4.0f);
    cfg.lora_dropout = dropout;
    float *w = randv((size_t)OC * C, &rng), *b = randv((size_t)OC, &rng), *x = randv((size_t)N * C, &rng);
    float *dy = randv((size_t)N * OC, &rng);
    lora_linear F, D;
    lorac_err err = {0};
    lorac_rng r1, r2;
    lorac_rng_seed(&r1, 3);
    lorac_rng_seed(&r2, 3);
    CHECK(lora_linear_init(&F, C, OC, &cfg, w, b, &r1, &err) == 0, "%s", err.msg);
    CHECK(lora_linear_init(&D, C, OC, &cfg, NULL, NULL, &r2, &err) == 0, "%s", err.msg);
    float *Bv = randv((size_t)OC * r, &rng);
    memcpy(F.lora_B, Bv, (size_t)OC * r * sizeof(float));
    memcpy(D.lora_B, Bv, (size_t)OC * r * sizeof(float));
    lora_act fa, da;
    lora_linear_act_init(&fa, &F, N, &err);
    lora_linear_act_init(&da, &D, N, &err);
    float *yf = malloc((size_t)N * OC * 4), *yd = malloc((size_t)N * OC * 4);
    lorac_rng_seed(&r1, 9);
    lorac_rng_seed(&r2, 9);
    CHECK(lora_linear_forward(&F, &fa, yf, x, N, &r1, &err) == 0, "%s", err.msg);
    op_matmul_forward(yd, x, w, b, N, C, OC, OP_W_OUT_IN); /* the caller's base product */
    CHECK(lora_linear_delta_forward(&D, &da, yd, x, N, &r2, &err) == 0, "%s", err.msg);
    CHECK(memcmp(yf, yd, (size_t)N * OC * 4) == 0, "base + delta == full forward bit for bit (dropout %g)",
          (double)dropout);
    float *dxf = calloc((size_t)N * C, 4), *dxd = calloc((size_t)N * C, 4);
    lora_linear_backward(&F, &fa, dxf, dy, x, &err);
    CHECK(lora_linear_delta_backward(&D, &da, dxd, dy, &err) == 0, "%s", err.msg);
    op_matmul_backward(dxd, NULL, NULL, dy, x, w, 1.0f, N, C, OC, OP_W_OUT_IN); /* the base's dx */
    check_arrays_close(dxd, dxf, (size_t)N * C, 1e-6, 1e-5, "delta + base dx == full dx");
    CHECK(memcmp(F.grad_A, D.grad_A, (size_t)r * C * 4) == 0, "grad_A equal");
    CHECK(memcmp(F.grad_B, D.grad_B, (size_t)OC * r * 4) == 0, "grad_B equal");
    /* a fresh act has no forward: the delta backward refuses */
    lora_act none;
    lora_linear_act_init(&none, &D, N, &err);
    CHECK(lora_linear_delta_backward(&D, &none, dxd, dy, &err) != 0, "delta backward without a forward fails");
    lora_act_free(&none);
    lora_act_free(&fa);
    lora_act_free(&da);
    lora_linear_free(&F);
    lora_linear_free(&D);
    free(w); free(b); free(x); free(dy); free(Bv); free(yf); free(yd); free(dxf); free(dxd);
}

int main(void) {
    fd_delta("delta", 0, 0.0f, 0);
    fd_delta("delta dropout", 0, 0.3f, 0);
    fd_delta("delta fifo rslora dropout", 1, 0.2f, 1);
    test_delta_equals_full(0.0f);
    test_delta_equals_full(0.25f);
    return check_summary();
}
