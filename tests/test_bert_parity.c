/* BERT / RoBERTa parity with transformers 4.40 + PEFT 0.10 (fixtures from tools/bert_ref.py):
 * logits, loss and the gradient of every trainable tensor (LoRA A/B on the targeted sites, the
 * head; every tensor with full fine-tuning) on tiny random models with padded batches.
 * Tolerances: logits and loss atol 1e-5 + rtol 1e-4; gradients atol 1e-5 + rtol 1e-3 (fp32 sums
 * in a different order than torch's). Also: PEFT's adapter loads through model_attach_adapters, and
 * lorac's saved adapter reads back bit-exactly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lorac.h"

static float *read_f32(st_file *f, const char *name, size_t *n) {
    const st_tensor *t = st_find(f, name);
    if (!t) return NULL;
    float *v = malloc(t->numel * sizeof(float) + 1);
    if (st_read_f32(f, t, v, NULL)) {
        free(v);
        return NULL;
    }
    if (n) *n = t->numel;
    return v;
}

static int32_t *read_i32(st_file *f, const char *name, size_t *n) {
    const st_tensor *t = st_find(f, name);
    if (!t || t->dtype != ST_I32) return NULL;
    int32_t *v = malloc(t->numel * sizeof(int32_t));
    memcpy(v, t->data, t->numel * sizeof(int32_t));
    if (n) *n = t->numel;
    return v;
}

static void run_case(const char *name, int full_ft) {
    char dir[1024], path[1200], adir[1200];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/bert/%s", LORAC_SOURCE_DIR, name);
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    snprintf(adir, sizeof adir, "%s/adapter", dir);
    st_file ref;
    lorac_err err = {0};
    if (st_open(path, &ref, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    size_t N = 0, NB = 0;
    int32_t *ids = read_i32(&ref, "ids", &N), *tt = read_i32(&ref, "type_ids", NULL), *mask32 = read_i32(&ref, "mask", NULL);
    int32_t *labels = read_i32(&ref, "labels", &NB);
    float *targets = read_f32(&ref, "targets", labels ? NULL : &NB);
    const st_tensor *idt = st_find(&ref, "ids");
    int B = (int)idt->shape[0], T = (int)idt->shape[1];
    uint8_t *mask = malloc(N);
    for (size_t i = 0; i < N; i++) mask[i] = (uint8_t)mask32[i];

    model_load_opts opt = {0, 1, 1};
    model *m = NULL;
    model_acts *a = NULL;
    const char *spec = adir;
    int rc = model_load(dir, &opt, &m, &err);
    CHECK(rc == 0, "%s: %s", name, err.msg);
    if (rc) goto done;
    rc = full_ft ? model_set_full_ft(m, &err) : model_attach_adapters(m, &spec, 1, NULL, 0, &err);
    CHECK(rc == 0, "%s: %s", name, err.msg);
    if (!rc) rc = model_acts_alloc(m, B, T, &a, &err);
    if (rc) goto done;
    model_train_mode(m, 1, NULL);
    const model_config *c = model_cfg(m);
    float *logits = malloc((size_t)B * c->num_labels * sizeof(float)), loss = 0;
    model_batch bt = {B, T, ids, tt, mask, NULL, labels, targets};
    rc = model_forward(m, a, &bt, 0.0f, 1, NULL, &loss, NULL, &err);
    CHECK(rc == 0, "%s: %s", name, err.msg);
    if (!rc) memcpy(logits, model_acts_logits(a), (size_t)B * c->num_labels * sizeof(float));
    size_t nl = 0;
    float *want_logits = read_f32(&ref, "logits", &nl), *want_loss = read_f32(&ref, "loss", NULL);
    char what[600];
    snprintf(what, sizeof what, "%s logits", name);
    CHECK(nl == (size_t)B * c->num_labels, "%s: logits size", name);
    check_arrays_close(logits, want_logits, nl, 1e-5, 1e-4, what);
    snprintf(what, sizeof what, "%s loss", name);
    CHECK_CLOSE(loss, want_loss[0], 1e-5, 1e-4, what);
    model_zero_grad(m);
    rc = model_backward(m, a, &err);
    CHECK(rc == 0, "%s: %s", name, err.msg);
    size_t n_ref_grads = 0, n_trainable = 0;
    for (size_t i = 0; i < ref.n_tensors; i++) n_ref_grads += !strncmp(ref.tensors[i].name, "grad.", 5);
    lora_registry *reg = model_registry(m);
    for (size_t i = 0; i < reg->n; i++) {
        lora_param *p = &reg->params[i];
        if (!p->grad || !lora_param_requires_grad(p)) continue;
        n_trainable++;
        char key[400]; /* the reference names LoRA tensors as PEFT saves them, the rest as HF does */
        if (strstr(p->name, ".lora_")) snprintf(key, sizeof key, "grad.base_model.model.%s.weight", p->name);
        else snprintf(key, sizeof key, "grad.%s", p->name);
        size_t n = 0;
        float *want = read_f32(&ref, key, &n);
        CHECK(want && n == p->numel, "%s: reference has no gradient %s of %zu values", name, key, p->numel);
        if (want && n == p->numel) {
            snprintf(what, sizeof what, "%s %s", name, key);
            check_arrays_close(p->grad, want, n, 1e-5, 1e-3, what);
        }
        free(want);
    }
    CHECK(n_trainable == n_ref_grads, "%s: %zu trainable tensors, the reference has %zu gradients", name, n_trainable,
          n_ref_grads);
    if (!full_ft) { /* lorac's adapter reads back into a fresh model bit-exactly */
        char out[1200];
        snprintf(out, sizeof out, "%s/bert_adapter_%s", LORAC_BINARY_DIR, name);
        rc = model_save_adapter(m, out, &err);
        CHECK(rc == 0, "%s: %s", name, err.msg);
        model *m2 = NULL;
        const char *ospec = out;
        rc = model_load(dir, &opt, &m2, &err);
        if (!rc) rc = model_attach_adapters(m2, &ospec, 1, NULL, 0, &err);
        CHECK(rc == 0, "%s: reload: %s", name, err.msg);
        if (!rc) {
            model_train_mode(m2, 0, NULL);
            float *l2 = malloc((size_t)B * c->num_labels * sizeof(float));
            model_train_mode(m, 0, NULL);
            float *l1 = malloc((size_t)B * c->num_labels * sizeof(float));
            model_batch bi = {B, T, ids, tt, mask, NULL, NULL, NULL};
            rc = model_forward(m, a, &bi, 0.0f, 0, NULL, NULL, NULL, &err);
            if (!rc) memcpy(l1, model_acts_logits(a), (size_t)B * c->num_labels * sizeof(float));
            model_acts *ia = NULL; /* inference activations (post-norm blocks): the same bits */
            if (!rc) rc = model_acts_alloc_inference(m2, B, T, &ia, &err) || model_forward(m2, ia, &bi, 0.0f, 0, NULL, NULL, NULL, &err);
            if (!rc) memcpy(l2, model_acts_logits(ia), (size_t)B * c->num_labels * sizeof(float));
            model_acts_free(ia);
            CHECK(rc == 0, "%s: %s", name, err.msg);
            CHECK(!memcmp(l1, l2, (size_t)B * c->num_labels * sizeof(float)), "%s: reloaded adapter differs", name);
            /* merged inference equals the training-mode forward */
            snprintf(what, sizeof what, "%s merged logits", name);
            check_arrays_close(l1, want_logits, nl, 1e-5, 1e-4, what);
            free(l1);
            free(l2);
        }
        model_free(m2);
    }
    free(logits);
    free(want_logits);
    free(want_loss);
done:
    model_acts_free(a);
    model_free(m);
    free(ids);
    free(tt);
    free(mask32);
    free(mask);
    free(labels);
    free(targets);
    st_close(&ref);
}

/* PEFT's default SEQ_CLS adapter saves only the classifier: the pooler stays the checkpoint's. */
static void default_head(void) {
    char dir[1024], adir[1200], ref[1200];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/bert/bert_lora", LORAC_SOURCE_DIR);
    snprintf(adir, sizeof adir, "%s/adapter_default", dir);
    snprintf(ref, sizeof ref, "%s/ref_default.safetensors", dir);
    st_file rf, in;
    lorac_err err = {0};
    char rp[1200];
    snprintf(rp, sizeof rp, "%s/ref.safetensors", dir);
    if (st_open(ref, &rf, &err) || st_open(rp, &in, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    size_t N = 0, nl = 0;
    int32_t *ids = read_i32(&in, "ids", &N), *tt = read_i32(&in, "type_ids", NULL), *m32 = read_i32(&in, "mask", NULL);
    const st_tensor *idt = st_find(&in, "ids");
    int B = (int)idt->shape[0], T = (int)idt->shape[1];
    uint8_t *mask = malloc(N);
    for (size_t i = 0; i < N; i++) mask[i] = (uint8_t)m32[i];
    float *want = read_f32(&rf, "logits", &nl);
    model_load_opts opt = {0, 0, 1};
    model *m = NULL;
    model_acts *a = NULL;
    const char *spec = adir;
    int rc = model_load(dir, &opt, &m, &err);
    if (!rc) {
        model_train_mode(m, 0, NULL);
        rc = model_attach_adapters(m, &spec, 1, NULL, 0, &err);
    }
    if (!rc) rc = model_acts_alloc(m, B, T, &a, &err);
    CHECK(rc == 0, "default adapter: %s", err.msg);
    if (!rc) {
        model_batch bt = {B, T, ids, tt, mask, NULL, NULL, NULL};
        CHECK(model_forward(m, a, &bt, 0.0f, 0, NULL, NULL, NULL, &err) == 0, "%s", err.msg);
        check_arrays_close(model_acts_logits(a), want, nl, 1e-5, 1e-4, "PEFT default SEQ_CLS adapter logits");
    }
    model_acts_free(a);
    model_free(m);
    free(ids); free(tt); free(m32); free(mask); free(want);
    st_close(&rf);
    st_close(&in);
}

/* Bad input: a checkpoint whose config disagrees with its tensors gives a one-line error. */
static void bad_config(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/bert_badcfg", LORAC_BINARY_DIR);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s && cp %s/tests/fixtures/bert/bert_full/model.safetensors %s/ && "
             "sed 's/\"hidden_size\": 16/\"hidden_size\": 32/' %s/tests/fixtures/bert/bert_full/config.json > %s/config.json",
             dir, dir, LORAC_SOURCE_DIR, dir, LORAC_SOURCE_DIR, dir);
    CHECK(system(cmd) == 0, "setup");
    model_load_opts opt = {0, 0, 1};
    model *m = NULL;
    lorac_err err = {0};
    int rc = model_load(dir, &opt, &m, &err);
    CHECK(rc == LORAC_ESHAPE && strstr(err.msg, "config.json implies") && !strchr(err.msg, '\n'), "rc %d: %s", rc, err.msg);
    model_free(m);
}

int main(void) {
    run_case("bert_lora", 0);
    run_case("roberta_lora", 0);
    run_case("bert_full", 1);
    default_head();
    bad_config();
    return check_summary();
}
