/* lora_regression.c — loralib's README workflow, end to end, on a toy regression.
 *
 * A two-layer network Linear(4→32) · GELU · Linear(32→2) with fixed ("pre-trained") random base
 * weights learns a new target function by training only LoRA on both Linear layers:
 *   (1) replace each Linear with a lora_linear over the same base weight;
 *   (2) mark only LoRA as trainable and print the PEFT-style parameter line;
 *   train A and B with Adam until the loss falls;
 *   (3) save only the LoRA state (adapter.safetensors) into a temporary directory;
 *   (4) build a fresh network, load the base weights, then the adapter, and check that it
 *       reproduces the trained outputs bit for bit, unmerged and merged (inference mode).
 * Exits 0 on success, 1 otherwise. Uses only the public header. Runs in well under a second.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorac.h"

enum { IN = 4, HID = 32, OUT = 2, NS = 256, STEPS = 400 };

typedef struct net {
    float w1[HID * IN], b1[HID], w2[OUT * HID], b2[OUT]; /* the frozen base */
    lora_linear fc1, fc2;
    lora_act a1, a2;
    float h[NS * HID], g[NS * HID], y[NS * OUT];        /* fc1 output, GELU output, net output */
    float dg[NS * HID], dh[NS * HID], dy[NS * OUT];
    lora_registry reg;
} net;

static int net_init(net *n, const lora_config *cfg, uint64_t seed, lorac_err *err) {
    lorac_rng rng;
    lorac_rng_seed(&rng, seed);
    lora_registry_init(&n->reg);
    int rc = lora_linear_init(&n->fc1, IN, HID, cfg, n->w1, n->b1, &rng, err);
    if (!rc) rc = lora_linear_init(&n->fc2, HID, OUT, cfg, n->w2, n->b2, &rng, err);
    if (!rc) rc = lora_linear_act_init(&n->a1, &n->fc1, NS, err);
    if (!rc) rc = lora_linear_act_init(&n->a2, &n->fc2, NS, err);
    if (!rc) rc = lora_linear_register(&n->fc1, &n->reg, "fc1", err);
    if (!rc) rc = lora_linear_register(&n->fc2, &n->reg, "fc2", err);
    return rc;
}

static void net_free(net *n) {
    lora_act_free(&n->a1);
    lora_act_free(&n->a2);
    lora_linear_free(&n->fc1);
    lora_linear_free(&n->fc2);
    lora_registry_free(&n->reg);
}

static int net_forward(net *n, const float *x, lorac_err *err) {
    int rc = lora_linear_forward(&n->fc1, &n->a1, n->h, x, NS, NULL, err);
    if (rc) return rc;
    op_gelu_tanh_forward(n->g, n->h, (size_t)NS * HID);
    return lora_linear_forward(&n->fc2, &n->a2, n->y, n->g, NS, NULL, err);
}

/* mean squared error; dy = ∂loss/∂y */
static double net_loss(net *n, const float *t) {
    double s = 0;
    for (int i = 0; i < NS * OUT; i++) {
        double d = (double)n->y[i] - t[i];
        s += d * d;
        n->dy[i] = (float)(2.0 * d / (NS * OUT));
    }
    return s / (NS * OUT);
}

static int net_backward(net *n, const float *x, lorac_err *err) {
    memset(n->dg, 0, sizeof n->dg);
    memset(n->dh, 0, sizeof n->dh);
    int rc = lora_linear_backward(&n->fc2, &n->a2, n->dg, n->dy, n->g, err);
    if (rc) return rc;
    op_gelu_tanh_backward(n->dh, n->dg, n->h, (size_t)NS * HID);
    return lora_linear_backward(&n->fc1, &n->a1, NULL, n->dh, x, err); /* no dx needed */
}

/* Adam over every trainable tensor of the registry (m and v allocated per tensor on first use). */
typedef struct adam {
    float **m, **v;
    size_t n;
    int t;
} adam;

static int adam_step(adam *o, lora_registry *reg, float lr) {
    if (!o->m) {
        o->n = reg->n;
        o->m = calloc(o->n, sizeof *o->m);
        o->v = calloc(o->n, sizeof *o->v);
        if (!o->m || !o->v) return 1;
        for (size_t i = 0; i < o->n; i++) {
            o->m[i] = calloc(reg->params[i].numel, sizeof(float));
            o->v[i] = calloc(reg->params[i].numel, sizeof(float));
            if (!o->m[i] || !o->v[i]) return 1;
        }
    }
    o->t++;
    double c1 = 1.0 - pow(0.9, o->t), c2 = 1.0 - pow(0.999, o->t);
    for (size_t i = 0; i < reg->n; i++) {
        lora_param *p = &reg->params[i];
        if (!lora_param_requires_grad(p) || !p->grad) continue;
        for (size_t j = 0; j < p->numel; j++) {
            float g = p->grad[j];
            o->m[i][j] = 0.9f * o->m[i][j] + 0.1f * g;
            o->v[i][j] = 0.999f * o->v[i][j] + 0.001f * g * g;
            p->data[j] -= lr * (float)(o->m[i][j] / c1) / (sqrtf((float)(o->v[i][j] / c2)) + 1e-8f);
        }
    }
    return 0;
}

static void adam_free(adam *o) {
    for (size_t i = 0; i < o->n; i++) {
        free(o->m[i]);
        free(o->v[i]);
    }
    free(o->m);
    free(o->v);
}

int main(void) {
    lorac_set_threads(1);
    lorac_err err = {0};
    static net A, B; /* A is trained; B is rebuilt from base + adapter */
    static float x[NS * IN], t[NS * OUT], y_trained[NS * OUT], y_merged[NS * OUT];
    lorac_rng rng;
    lorac_rng_seed(&rng, 2024);
    /* the "pre-trained" base: fixed random weights, and the toy task it was not trained for */
    for (int i = 0; i < HID * IN; i++) A.w1[i] = 0.5f * lorac_rng_normal(&rng);
    for (int i = 0; i < HID; i++) A.b1[i] = 0.1f * lorac_rng_normal(&rng);
    for (int i = 0; i < OUT * HID; i++) A.w2[i] = 0.2f * lorac_rng_normal(&rng);
    for (int i = 0; i < OUT; i++) A.b2[i] = 0.0f;
    for (int s = 0; s < NS; s++) {
        float *xs = x + s * IN;
        for (int i = 0; i < IN; i++) xs[i] = 2.0f * lorac_rng_uniform(&rng) - 1.0f;
        t[s * OUT + 0] = sinf(2.0f * xs[0]) + xs[1] * xs[2];
        t[s * OUT + 1] = xs[3] * xs[3] - 0.5f * xs[0];
    }

    char dir[] = "/tmp/lorac_lora_example_XXXXXX", base_path[64], adapter_path[64];
    if (!mkdtemp(dir)) { fprintf(stderr, "cannot make a temporary directory\n"); return 1; }
    snprintf(base_path, sizeof base_path, "%s/base.safetensors", dir);
    snprintf(adapter_path, sizeof adapter_path, "%s/adapter.safetensors", dir);
    int ok = 0;

    /* (1) replace both Linear layers with LoRA layers over the same base weights */
    lora_config cfg = lora_config_default(4, 8.0f);
    if (net_init(&A, &cfg, 1, &err)) goto fail;
    if (lora_base_save(&A.reg, base_path, &err)) goto fail; /* stands in for the pre-trained checkpoint */

    /* (2) only LoRA trains */
    lora_mark_only_lora_as_trainable(&A.reg, LORA_BIAS_NONE);
    char report[128];
    lora_registry_report(&A.reg, report, sizeof report);
    printf("%s\n", report);

    adam opt = {0};
    double first = 0, loss = 0;
    for (int step = 0; step <= STEPS; step++) {
        if (net_forward(&A, x, &err)) goto fail;
        loss = net_loss(&A, t);
        if (step == 0) first = loss;
        if (step % 100 == 0) printf("step %3d  loss %.5f\n", step, loss);
        if (step == STEPS) break;
        lora_linear_zero_grad(&A.fc1);
        lora_linear_zero_grad(&A.fc2);
        if (net_backward(&A, x, &err)) goto fail;
        if (adam_step(&opt, &A.reg, 1e-2f)) { adam_free(&opt); fprintf(stderr, "out of memory\n"); goto cleanup; }
    }
    adam_free(&opt);
    if (!(loss < 0.25 * first)) {
        fprintf(stderr, "loss did not fall enough: %.5f -> %.5f\n", first, loss);
        goto cleanup;
    }
    memcpy(y_trained, A.y, sizeof y_trained);
    /* inference: merged weights, one GEMM per layer */
    if (lora_linear_train(&A.fc1, 0, &err) || lora_linear_train(&A.fc2, 0, &err) || net_forward(&A, x, &err)) goto fail;
    memcpy(y_merged, A.y, sizeof y_merged);

    /* (3) save only the LoRA state */
    if (lora_state_save(&A.reg, adapter_path, LORA_BIAS_NONE, &err)) goto fail;

    /* (4) a fresh network: base weights first, then the adapter */
    if (net_init(&B, &cfg, 99, &err)) goto fail; /* other seed: other A until loaded; base buffers are zero */
    if (lora_base_load(&B.reg, base_path, &err) || lora_state_load(&B.reg, adapter_path, LORA_BIAS_NONE, &err)) goto fail;
    if (net_forward(&B, x, &err)) goto fail;
    int same = memcmp(B.y, y_trained, sizeof y_trained) == 0;
    if (lora_linear_train(&B.fc1, 0, &err) || lora_linear_train(&B.fc2, 0, &err) || net_forward(&B, x, &err)) goto fail;
    int same_merged = memcmp(B.y, y_merged, sizeof y_merged) == 0;
    double worst = 0;
    for (int i = 0; i < NS * OUT; i++) worst = fmax(worst, fabs((double)y_merged[i] - y_trained[i]));
    printf("reloaded base + adapter: outputs %s (unmerged), %s (merged); merged vs unmerged max |diff| %.2g\n",
           same ? "identical" : "DIFFER", same_merged ? "identical" : "DIFFER", worst);
    ok = same && same_merged && worst < 1e-4;
    goto cleanup;
fail:
    fprintf(stderr, "error: %s\n", err.msg);
cleanup:
    net_free(&A);
    net_free(&B);
    lorac_remove_flat_dir(dir);
    return ok ? 0 : 1;
}
