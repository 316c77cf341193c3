/* BERT / RoBERTa hidden dropout (after the embeddings LN, on the attention-output and FFN-output
 * dense results) in training mode:
 *  - finite differences of the whole model's loss w.r.t. LoRA A/B, the head and (full fine-tuning)
 *    every tensor, with dropout on and the rng re-seeded before each forward (same masks);
 *    central differences in fp32, |fd - grad| <= atol + 2e-2·|grad| (atol 3e-4 for LoRA, 2e-5 for
 *    full fine-tuning, whose gradients are ~100x smaller; at least half the tensors have a
 *    largest gradient above 10·atol, so the check has teeth);
 *  - the masks drop a fraction p of the values (within 5 standard deviations);
 *  - inference ignores the dropout setting bit-exactly, and training with dropout changes the loss.
 * Uses the tiny random fixtures of tests/fixtures/bert (their config has hidden_dropout_prob 0). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"
#include "models/model_acts.h" /* white box: the dropout masks */

#define P_DROP 0.3f
#define SEED 1234u

typedef struct fx {
    int B, T, NL;
    int32_t ids[64], types[64], labels[4];
    float targets[4];
    uint8_t mask[64];
} fx;

/* A padded batch of B=3, T=7 from fixed ids (row 2 shorter); type ids 1 on the second part for BERT. */
static void make_batch(fx *f, const model_config *c) {
    f->B = 3;
    f->T = 7;
    f->NL = c->num_labels;
    lorac_rng r;
    lorac_rng_seed(&r, 7);
    for (int i = 0; i < f->B * f->T; i++) {
        int real = !(i / f->T == 2 && i % f->T >= 4);
        f->ids[i] = real ? 3 + (int32_t)(lorac_rng_u64(&r) % (uint64_t)(c->vocab_size - 3)) : c->pad_token_id;
        f->types[i] = !strcmp(c->model_type, "bert") && i % f->T >= 3 ? 1 : 0;
        f->mask[i] = (uint8_t)real;
    }
    for (int b = 0; b < f->B; b++) {
        f->labels[b] = b % (c->num_labels > 1 ? c->num_labels : 1);
        f->targets[b] = 0.5f + (float)b;
    }
}

static model_batch batch_of(const fx *f, int with_labels) {
    model_batch bt = {f->B, f->T, f->ids, f->types, f->mask, NULL, NULL, NULL};
    if (with_labels) {
        bt.labels = f->NL > 1 ? f->labels : NULL;
        bt.scores = f->NL == 1 ? f->targets : NULL;
    }
    return bt;
}

static float loss_at(model *m, model_acts *a, fx *f, int for_backward, int *rc, lorac_err *err) {
    lorac_rng r;
    lorac_rng_seed(&r, SEED); /* the same masks every time */
    model_batch bt = batch_of(f, 1);
    float loss = 0;
    *rc |= model_forward(m, a, &bt, 0.0f, for_backward, &r, &loss, NULL, err);
    return loss;
}

static void fd_case(const char *name, int full_ft, float eps, double atol) {
    char dir[1024], adir[1200];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/bert/%s", LORAC_SOURCE_DIR, name);
    snprintf(adir, sizeof adir, "%s/adapter", dir);
    model_load_opts opt = {0, 1, 1};
    model *m = NULL;
    model_acts *a = NULL;
    lorac_err err = {0};
    const char *spec = adir;
    int rc = model_load(dir, &opt, &m, &err);
    if (!rc) rc = full_ft ? model_set_full_ft(m, &err) : model_attach_adapters(m, &spec, 1, NULL, 0, &err);
    if (!rc) rc = model_set_hidden_dropout(m, P_DROP, &err);
    if (!rc) rc = model_acts_alloc(m, 3, 7, &a, &err);
    CHECK(rc == 0, "%s: %s", name, err.msg);
    if (rc) {
        model_acts_free(a);
        model_free(m);
        return;
    }
    model_train_mode(m, 1, NULL);
    fx f;
    make_batch(&f, model_cfg(m));
    /* dropout is active: the loss differs from the p = 0 loss */
    float l_drop = loss_at(m, a, &f, 0, &rc, &err);
    model_set_hidden_dropout(m, 0.0f, NULL);
    float l_plain = loss_at(m, a, &f, 0, &rc, &err);
    model_set_hidden_dropout(m, P_DROP, NULL);
    CHECK(rc == 0 && fabsf(l_drop - l_plain) > 1e-4f, "%s: dropout did not change the loss (%g vs %g): %s", name,
          (double)l_drop, (double)l_plain, err.msg);
    /* analytic gradients under the seeded masks */
    loss_at(m, a, &f, 1, &rc, &err);
    model_zero_grad(m);
    rc |= model_backward(m, a, &err);
    CHECK(rc == 0, "%s: %s", name, err.msg);
    lora_registry *reg = model_registry(m);
    size_t np = 0, n_checked = 0, n_bad = 0, n_nonzero = 0;
    double worst = 0;
    for (size_t i = 0; i < reg->n && !rc; i++) {
        lora_param *p = &reg->params[i];
        if (!p->grad || !lora_param_requires_grad(p)) continue;
        np++;
        float *g = malloc(p->numel * sizeof(float));
        memcpy(g, p->grad, p->numel * sizeof(float));
        size_t imax = 0; /* the largest-gradient entry plus two fixed ones */
        for (size_t j = 1; j < p->numel; j++) imax = fabsf(g[j]) > fabsf(g[imax]) ? j : imax;
        size_t pick[3] = {imax, p->numel / 3, p->numel - 1};
        for (int k = 0; k < 3; k++) {
            size_t j = pick[k];
            float w0 = p->data[j];
            p->data[j] = w0 + eps;
            float lp = loss_at(m, a, &f, 0, &rc, &err);
            p->data[j] = w0 - eps;
            float lm = loss_at(m, a, &f, 0, &rc, &err);
            p->data[j] = w0;
            double fd = ((double)lp - (double)lm) / (2.0 * eps);
            double lim = atol + 2e-2 * fabs((double)g[j]), d = fabs(fd - (double)g[j]);
            n_checked++;
            n_nonzero += k == 0 && fabs((double)g[j]) > 10 * atol; /* the tensor's largest gradient */
            if (!(d <= lim)) {
                n_bad++;
                fprintf(stderr, "%s %s[%zu]: fd %.6g grad %.6g\n", name, p->name, j, fd, (double)g[j]);
            }
            if (d - lim > worst) worst = d - lim;
        }
        free(g);
    }
    CHECK(rc == 0, "%s: %s", name, err.msg);
    CHECK(np > 0, "%s: no trainable tensors", name);
    CHECK(n_bad == 0, "%s: %zu of %zu finite differences off (worst excess %g)", name, n_bad, n_checked, worst);
    CHECK(n_nonzero * 2 > np, "%s: only %zu of %zu tensors have a gradient above 10·atol", name, n_nonzero, np);
    printf("%s: %zu finite differences over %zu tensors (%zu with a gradient > 10·atol) agree with p = %.1f, worst excess %g\n",
           name, n_checked, np, n_nonzero, (double)P_DROP, worst);
    model_acts_free(a);
    model_free(m);
}

/* The masks drop ~p of the values; inference is bit-identical whatever the dropout setting. */
static void fraction_and_eval(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/bert/bert_full", LORAC_SOURCE_DIR);
    model_load_opts opt = {0, 0, 1};
    model *m = NULL;
    model_acts *a = NULL;
    lorac_err err = {0};
    int rc = model_load(dir, &opt, &m, &err);
    if (!rc) rc = model_acts_alloc(m, 3, 7, &a, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc) {
        model_free(m);
        return;
    }
    const model_config *c = model_cfg(m);
    fx f;
    make_batch(&f, c);
    model_batch bt = batch_of(&f, 0);
    size_t nl = (size_t)f.B * c->num_labels;
    float *e0 = malloc(nl * sizeof(float)), *e1 = malloc(nl * sizeof(float));
    model_train_mode(m, 0, NULL);
    rc = model_forward(m, a, &bt, 0.0f, 0, NULL, NULL, NULL, &err);
    if (!rc) memcpy(e0, model_acts_logits(a), nl * sizeof(float));
    model_set_hidden_dropout(m, P_DROP, NULL);
    rc |= model_forward(m, a, &bt, 0.0f, 0, NULL, NULL, NULL, &err);
    if (!rc) memcpy(e1, model_acts_logits(a), nl * sizeof(float));
    CHECK(rc == 0 && !memcmp(e0, e1, nl * sizeof(float)), "inference changed with hidden dropout set: %s", err.msg);
    /* several seeded training forwards, counting dropped values in every hidden mask (the
     * embeddings' and two per layer, each of capacity B·T·C = this batch's) */
    model_train_mode(m, 1, NULL);
    size_t NC = (size_t)f.B * f.T * c->n_embd, nmask = NC * (2 * (size_t)c->n_layer + 1), dropped = 0, total = 0;
    for (uint64_t s = 0; s < 8 && !rc; s++) {
        lorac_rng r;
        lorac_rng_seed(&r, 100 + s);
        rc = model_forward(m, a, &bt, 0.0f, 0, &r, NULL, NULL, &err);
        CHECK(a->drop_masks != NULL, "no dropout masks");
        if (!a->drop_masks) break;
        for (size_t i = 0; i < nmask; i++) dropped += !a->drop_masks[i];
        total += nmask;
    }
    CHECK(rc == 0 && total > 0, "%s", err.msg);
    double frac = total ? (double)dropped / (double)total : 0, sd = sqrt(P_DROP * (1 - P_DROP) / (double)(total ? total : 1));
    CHECK(fabs(frac - P_DROP) <= 5 * sd, "dropped fraction %.4f, want %.2f +- %.4f", frac, (double)P_DROP, 5 * sd);
    printf("dropped fraction %.4f of %zu values (p = %.1f, sd %.4f)\n", frac, total, (double)P_DROP, sd);
    /* training with dropout needs an rng: a one-line error, no crash */
    rc = model_forward(m, a, &bt, 0.0f, 0, NULL, NULL, NULL, &err);
    CHECK(rc == LORAC_EINVAL && strstr(err.msg, "rng") && !strchr(err.msg, '\n'), "rc %d: %s", rc, err.msg);
    CHECK(model_set_hidden_dropout(m, 1.0f, &err) == LORAC_EINVAL, "p = 1 accepted");
    free(e0);
    free(e1);
    model_acts_free(a);
    model_free(m);
}

int main(void) {
    fd_case("bert_lora", 0, 2e-3f, 3e-4);
    fd_case("roberta_lora", 0, 2e-3f, 3e-4);
    fd_case("bert_full", 1, 1e-2f, 2e-5); /* its gradients are ~100x smaller: a wider step, a tighter atol */
    fraction_and_eval();
    return check_summary();
}
