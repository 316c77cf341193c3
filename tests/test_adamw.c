/* AdamW, the LR schedule and gradient clipping against torch (tests/fixtures/train/adamw_ref.txt,
 * written by tools/adamw_ref.py), plus thread independence and the resume state's round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "lorac/safetensors.h"
#include "lorac/train.h"

/* ------------------------------------------------------------------ the fixture */

typedef struct ref {
    int n, n_decay, steps, warmup, total;
    double lr, wd, beta1, beta2, eps, max_norm;
    float *params0, *grad, *clipped, *params, *m, *v; /* per-step arrays are (steps, n) */
    double *lr_used, *norm;
} ref;

/* Parses "v0 v1 ..." (hex or decimal floats) into out[0..n); returns how many were read. */
static int read_floats(char *s, float *out, int n) {
    int k = 0;
    char *end;
    for (; k < n; k++) {
        double v = strtod(s, &end);
        if (end == s) break;
        out[k] = (float)v;
        s = end;
    }
    return k;
}

static int ref_load(ref *r) {
    char *text = NULL;
    size_t len = 0;
    lorac_err err = {0};
    if (lorac_read_file(LORAC_SOURCE_DIR "/tests/fixtures/train/adamw_ref.txt", &text, &len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    memset(r, 0, sizeof *r);
    int ok = 1;
    for (char *line = strtok(text, "\n"); line && ok; line = strtok(NULL, "\n")) {
        char key[32];
        int used = 0;
        if (line[0] == '#' || sscanf(line, "%31s %n", key, &used) != 1) continue;
        char *rest = line + used;
        if (!strcmp(key, "n")) {
            r->n = atoi(rest);
        } else if (!strcmp(key, "n_decay")) r->n_decay = atoi(rest);
        else if (!strcmp(key, "steps")) {
            r->steps = atoi(rest);
            size_t nn = (size_t)r->n * (size_t)r->steps;
            r->params0 = calloc((size_t)r->n, sizeof(float));
            r->m = calloc((size_t)r->n, sizeof(float));
            r->v = calloc((size_t)r->n, sizeof(float));
            r->grad = calloc(nn, sizeof(float));
            r->clipped = calloc(nn, sizeof(float));
            r->params = calloc(nn, sizeof(float));
            r->lr_used = calloc((size_t)r->steps, sizeof(double));
            r->norm = calloc((size_t)r->steps, sizeof(double));
        } else if (!strcmp(key, "lr")) r->lr = strtod(rest, NULL);
        else if (!strcmp(key, "warmup")) r->warmup = atoi(rest);
        else if (!strcmp(key, "total")) r->total = atoi(rest);
        else if (!strcmp(key, "weight_decay")) r->wd = strtod(rest, NULL);
        else if (!strcmp(key, "beta1")) r->beta1 = strtod(rest, NULL);
        else if (!strcmp(key, "beta2")) r->beta2 = strtod(rest, NULL);
        else if (!strcmp(key, "eps")) r->eps = strtod(rest, NULL);
        else if (!strcmp(key, "max_norm")) r->max_norm = strtod(rest, NULL);
        else if (!strcmp(key, "params0")) ok = read_floats(rest, r->params0, r->n) == r->n;
        else if (!strcmp(key, "m")) ok = read_floats(rest, r->m, r->n) == r->n;
        else if (!strcmp(key, "v")) ok = read_floats(rest, r->v, r->n) == r->n;
        else {
            char *end;
            long k = strtol(rest, &end, 10);
            ok = r->params0 && k >= 0 && k < r->steps;
            if (!ok) break;
            float *row = NULL;
            if (!strcmp(key, "grad")) row = r->grad;
            else if (!strcmp(key, "clipped")) row = r->clipped;
            else if (!strcmp(key, "params")) row = r->params;
            if (row) ok = read_floats(end, row + (size_t)k * (size_t)r->n, r->n) == r->n;
            else if (!strcmp(key, "lr_used")) r->lr_used[k] = strtod(end, NULL);
            else if (!strcmp(key, "norm")) r->norm[k] = strtod(end, NULL);
        }
    }
    free(text);
    if (!ok || r->n <= 0 || r->steps <= 0 || !r->params0) {
        fprintf(stderr, "adamw_ref.txt: malformed\n");
        return -1;
    }
    return 0;
}

static void ref_free(ref *r) {
    free(r->params0); free(r->grad); free(r->clipped); free(r->params);
    free(r->m); free(r->v); free(r->lr_used); free(r->norm);
}

/* ------------------------------------------------------------------ tests */

/* The whole run: schedule → clip → AdamW, each step compared with torch.
 * Tolerances (measured worst in brackets): the schedule is the same double arithmetic (1e-15 [0]);
 * the clipping norm is summed in double here and in float by torch (rtol 5e-7 [1.2e-7]), so the
 * clipped grads differ in the last bits (rtol 1e-6 [2e-7]); params: atol 1e-8 + rtol 2e-7
 * [~1e-9 absolute on values ~1e-2..2] — a dropped bias correction, a missed decay or a lr off by
 * one step is off by > 1e-5; the final moments rtol 1e-6 plus atol 1e-8 (m) / 1e-11 (v), as m
 * can cancel to a small value [5e-9 absolute on m ~1e-3]. */
static void test_against_torch(const ref *r) {
    adamw_state s;
    lorac_err err = {0};
    CHECK(adamw_init(&s, (size_t)r->n, &err) == LORAC_OK, "%s", err.msg);
    adamw_config c = {r->beta1, r->beta2, r->eps, r->wd};
    float *p = malloc((size_t)r->n * sizeof(float)), *g = malloc((size_t)r->n * sizeof(float));
    uint8_t *mask = malloc((size_t)r->n);
    memcpy(p, r->params0, (size_t)r->n * sizeof(float));
    for (int i = 0; i < r->n; i++) mask[i] = i < r->n_decay;
    for (int k = 0; k < r->steps; k++) {
        char what[64];
        double lr = train_lr_linear(r->lr, r->warmup, r->total, k);
        snprintf(what, sizeof what, "lr at step %d", k);
        CHECK_CLOSE(lr, r->lr_used[k], 1e-15, 0, what);
        memcpy(g, r->grad + (size_t)k * (size_t)r->n, (size_t)r->n * sizeof(float));
        float norm = train_clip_grad_norm(g, (size_t)r->n, (float)r->max_norm);
        snprintf(what, sizeof what, "grad norm at step %d", k);
        CHECK_CLOSE(norm, r->norm[k], 0, 5e-7, what);
        snprintf(what, sizeof what, "clipped grads at step %d", k);
        check_arrays_close(g, r->clipped + (size_t)k * (size_t)r->n, (size_t)r->n, 1e-9, 1e-6, what);
        adamw_update(&s, &c, lr, p, g, mask);
        snprintf(what, sizeof what, "params after step %d", k);
        check_arrays_close(p, r->params + (size_t)k * (size_t)r->n, (size_t)r->n, 1e-8, 2e-7, what);
    }
    CHECK(s.t == r->steps, "t = %lld", s.t);
    check_arrays_close(s.m, r->m, (size_t)r->n, 1e-8, 1e-6, "exp_avg after the run");
    check_arrays_close(s.v, r->v, (size_t)r->n, 1e-11, 1e-6, "exp_avg_sq after the run");
    free(p); free(g); free(mask);
    adamw_free(&s);
}

static void test_schedule_edges(void) {
    /* no warm-up: the first step runs at the full rate */
    CHECK(train_lr_linear(1.0, 0, 10, 0) == 1.0, "warmup 0, step 0");
    CHECK(train_lr_linear(1.0, 0, 10, 5) == 0.5, "warmup 0, step 5");
    /* warm-up: step 0 at lr 0 (HF's scheduler is stepped after the optimizer), peak at `warmup` */
    CHECK(train_lr_linear(2.0, 4, 12, 0) == 0.0, "warmup step 0");
    CHECK(train_lr_linear(2.0, 4, 12, 1) == 0.5, "warmup step 1");
    CHECK(train_lr_linear(2.0, 4, 12, 4) == 2.0, "peak");
    CHECK(train_lr_linear(2.0, 4, 12, 8) == 1.0, "mid decay");
    CHECK(train_lr_linear(2.0, 4, 12, 12) == 0.0, "end");
    CHECK(train_lr_linear(2.0, 4, 12, 20) == 0.0, "past the end is clamped to 0");
    CHECK(train_lr_linear(1.0, 5, 5, 5) == 0.0, "total == warmup");
}

static void test_clip_edges(void) {
    float g[3] = {3.0f, 4.0f, 0.0f}, h[3];
    memcpy(h, g, sizeof g);
    CHECK(train_clip_grad_norm(g, 3, 0.0f) == 5.0f, "norm without clipping");
    CHECK(memcmp(g, h, sizeof g) == 0, "max_norm 0 leaves grads alone");
    CHECK(train_clip_grad_norm(g, 3, 10.0f) == 5.0f, "norm below max");
    CHECK(memcmp(g, h, sizeof g) == 0, "a norm below max_norm leaves grads bit-identical");
    train_clip_grad_norm(g, 3, 1.0f);
    CHECK_CLOSE(g[0], 0.6, 0, 1e-6, "clipped g0");
    CHECK_CLOSE(g[1], 0.8, 0, 1e-6, "clipped g1");
}

/* A NULL mask is the same as all ones; a zero mask entry gets no decay; results do not depend on
 * the thread count (n is large enough for the parallel loop). */
static void test_mask_and_threads(void) {
    size_t n = 200003;
    float *p1 = malloc(n * sizeof(float)), *p2 = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    uint8_t *ones = malloc(n);
    lorac_rng rng;
    lorac_rng_seed(&rng, 7);
    for (size_t i = 0; i < n; i++) {
        p1[i] = p2[i] = lorac_rng_normal(&rng);
        g[i] = 0.01f * lorac_rng_normal(&rng);
        ones[i] = 1;
    }
    adamw_config c = {0.9, 0.999, 1e-8, 0.01};
    adamw_state a, b;
    adamw_init(&a, n, NULL);
    adamw_init(&b, n, NULL);
    int threads = lorac_get_threads();
    lorac_set_threads(1);
    for (int k = 0; k < 3; k++) adamw_update(&a, &c, 1e-3, p1, g, NULL);
    lorac_set_threads(4);
    for (int k = 0; k < 3; k++) adamw_update(&b, &c, 1e-3, p2, g, ones);
    lorac_set_threads(threads);
    CHECK(memcmp(p1, p2, n * sizeof(float)) == 0, "1 thread + NULL mask vs 4 threads + ones: params differ");
    CHECK(memcmp(a.m, b.m, n * sizeof(float)) == 0 && memcmp(a.v, b.v, n * sizeof(float)) == 0, "moments differ");
    /* zero grads, no decay: nothing moves; with decay: p shrinks by exactly (1 - lr*wd) */
    adamw_state z;
    adamw_init(&z, 2, NULL);
    float q[2] = {1.0f, 1.0f}, zero[2] = {0, 0};
    uint8_t mask[2] = {0, 1};
    adamw_update(&z, &c, 0.5, q, zero, mask);
    CHECK(q[0] == 1.0f, "masked parameter decayed: %.9g", q[0]);
    CHECK(q[1] == (float)(1.0 - 0.5 * 0.01), "decayed parameter: %.9g", q[1]);
    adamw_free(&z);
    adamw_free(&a);
    adamw_free(&b);
    free(p1); free(p2); free(g); free(ones);
}

static void test_options(void) {
    train_options o;
    lorac_err err = {0};
    train_options_default(&o);
    CHECK(train_options_check(&o, &err) == LORAC_OK, "defaults: %s", err.msg);
    CHECK(o.lr == 2e-4 && o.weight_decay == 0.01 && o.beta2 == 0.999 && o.label_smoothing == 0.1, "paper defaults");
    o.batch_size = 0;
    CHECK(train_options_check(&o, &err) == LORAC_EINVAL && strstr(err.msg, "--batch-size"), "%s", err.msg);
    train_options_default(&o);
    o.beta1 = 1.0;
    CHECK(train_options_check(&o, &err) == LORAC_EINVAL && strstr(err.msg, "--adam-beta1"), "%s", err.msg);
    train_options_default(&o);
    long long total = 0;
    o.epochs = 5;
    o.grad_accum = 4;
    CHECK(train_total_steps(&o, 5257, &total, &err) == LORAC_OK && total == 5257LL * 5 / 4, "total %lld", total);
    o.max_steps = 100;
    CHECK(train_total_steps(&o, 5257, &total, &err) == LORAC_OK && total == 100, "max_steps %lld", total);
    o.max_steps = 0;
    o.epochs = 1;
    o.grad_accum = 8;
    CHECK(train_total_steps(&o, 3, &total, &err) == LORAC_EINVAL, "fewer micro-batches than one step");
}

/* ------------------------------------------------------------------ the resume state */

static void test_state_roundtrip(void) {
    char dir[] = "/tmp/lorac_test_adamw_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    char path[256], other[256];
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    snprintf(other, sizeof other, "%s/other.safetensors", dir);
    size_t n = 1001;
    lorac_err err = {0};
    float *p = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float)), *p2 = malloc(n * sizeof(float));
    lorac_rng rng;
    lorac_rng_seed(&rng, 42);
    for (size_t i = 0; i < n; i++) p[i] = lorac_rng_normal(&rng);
    adamw_state a, b;
    adamw_init(&a, n, NULL);
    adamw_init(&b, n, NULL);
    adamw_config c = {0.9, 0.999, 1e-8, 0.01};
    for (int k = 0; k < 5; k++) {
        for (size_t i = 0; i < n; i++) g[i] = 0.1f * lorac_rng_normal(&rng);
        adamw_update(&a, &c, 1e-3, p, g, NULL);
    }
    train_state st = {.step = 5, .epoch = 2, .batch = 17, .seed = 0xFFFFFFFFFFFFFFF1ULL, .elapsed_s = 12.3456789,
                      .tokens = 98765};
    st.rng = rng;
    const char *opts = "lr=0.0002 warmup=500 batch=8 total=26280";
    CHECK(train_state_save(path, &st, p, &a, opts, &err) == LORAC_OK, "save: %s", err.msg);
    train_state got;
    memset(&got, 0, sizeof got);
    CHECK(train_state_load(path, &got, p2, &b, opts, &err) == LORAC_OK, "load: %s", err.msg);
    CHECK(memcmp(p, p2, n * sizeof(float)) == 0, "params differ after the round trip");
    CHECK(memcmp(a.m, b.m, n * sizeof(float)) == 0 && memcmp(a.v, b.v, n * sizeof(float)) == 0, "moments differ");
    CHECK(b.t == 5 && got.step == 5 && got.epoch == 2 && got.batch == 17 && got.seed == st.seed &&
          got.tokens == 98765, "counters differ");
    CHECK(got.elapsed_s == st.elapsed_s, "elapsed %.17g", got.elapsed_s);
    CHECK(memcmp(got.rng.s, st.rng.s, sizeof st.rng.s) == 0, "rng differs");
    /* the resumed optimizer continues exactly as the original */
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < n; i++) g[i] = 0.1f * lorac_rng_normal(&rng);
        adamw_update(&a, &c, 1e-3, p, g, NULL);
        adamw_update(&b, &c, 1e-3, p2, g, NULL);
    }
    CHECK(memcmp(p, p2, n * sizeof(float)) == 0, "resumed params diverge");

    /* errors: other options, other size, missing file, not a state, bad metadata; nothing changes */
    memcpy(p2, p, n * sizeof(float));
    long long t_before = b.t;
    CHECK(train_state_load(path, &got, p2, &b, "lr=0.001", &err) == LORAC_EINVAL && strstr(err.msg, path) &&
          strstr(err.msg, "options"), "%s", err.msg);
    CHECK(memcmp(p, p2, n * sizeof(float)) == 0 && b.t == t_before, "a failed load modified the state");
    adamw_state small;
    adamw_init(&small, 10, NULL);
    CHECK(train_state_load(path, &got, p2, &small, NULL, &err) == LORAC_ESHAPE && strstr(err.msg, "1001"),
          "%s", err.msg);
    adamw_free(&small);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none.safetensors", dir);
    CHECK(train_state_load(missing, &got, p2, &b, NULL, &err) == LORAC_EIO, "%s", err.msg);
    st_entry e = {.name = "x", .dtype = ST_F32, .out_dtype = ST_F32, .ndim = 1, .shape = {1}, .data = p};
    const char *k1[] = {"format"}, *v1[] = {"something-else"};
    st_write(other, &e, 1, k1, v1, 1, NULL);
    CHECK(train_state_load(other, &got, p2, &b, NULL, &err) == LORAC_EFORMAT && strstr(err.msg, "not a lorac"),
          "%s", err.msg);
    st_entry three[3] = {
        {.name = "train.params", .dtype = ST_F32, .out_dtype = ST_F32, .ndim = 1, .shape = {(int64_t)n}, .data = p},
        {.name = "adamw.m", .dtype = ST_F32, .out_dtype = ST_F32, .ndim = 1, .shape = {(int64_t)n}, .data = p},
        {.name = "adamw.v", .dtype = ST_F32, .out_dtype = ST_F32, .ndim = 1, .shape = {(int64_t)n}, .data = p}};
    const char *keys[] = {"format", "version", "step", "epoch", "batch", "seed", "rng", "elapsed_s", "tokens",
                          "n_params"};
    const char *vals[] = {"lorac-train-state", "1", "5", "2", "17", "7", "0123 4567", "1.5", "10", "1001"};
    st_write(other, three, 3, keys, vals, 10, NULL);
    CHECK(train_state_load(other, &got, p2, &b, NULL, &err) == LORAC_EFORMAT && strstr(err.msg, "rng"), "%s",
          err.msg);
    vals[6] = "0000000000000001 0000000000000002 0000000000000003 0000000000000004";
    vals[2] = "-1";
    st_write(other, three, 3, keys, vals, 10, NULL);
    CHECK(train_state_load(other, &got, p2, &b, NULL, &err) == LORAC_EFORMAT && strstr(err.msg, "\"step\""), "%s",
          err.msg);
    vals[2] = "5";
    st_write(other, three, 2, keys, vals, 10, NULL); /* no adamw.v */
    CHECK(train_state_load(other, &got, p2, &b, NULL, &err) == LORAC_EFORMAT && strstr(err.msg, "adamw.v"), "%s",
          err.msg);
    st_write(other, three, 3, keys, vals, 10, NULL); /* now valid: it loads */
    CHECK(train_state_load(other, &got, p2, &b, NULL, &err) == LORAC_OK && got.rng.s[3] == 4 && got.seed == 7,
          "%s", err.msg);
    /* saving with an optimizer out of step with the counters is refused */
    st.step = 4;
    CHECK(train_state_save(path, &st, p, &a, NULL, &err) == LORAC_EINVAL, "step mismatch accepted");
    unlink(path);
    unlink(other);
    rmdir(dir);
    adamw_free(&a);
    adamw_free(&b);
    free(p); free(g); free(p2);
}

/* ------------------------------------------------------------------ resume, end to end */

/* A toy "model" with the same plumbing as a real run: its gradient depends on the params, the
 * batch's tokens and targets, and dropout-like draws from the run's rng. */
static double toy_forward_backward(const float *p, float *grad, int n, const train_batch *bt, lorac_rng *rng) {
    double loss = 0.0;
    for (int b = 0; b < bt->B; b++)
        for (int t = 0; t < bt->T; t++) {
            size_t i = (size_t)b * (size_t)bt->T + (size_t)t;
            if (bt->targets[i] == TRAIN_IGNORE) continue;
            int j = (bt->ids[i] * 7 + bt->targets[i]) % n;
            float keep = lorac_rng_uniform(rng) < 0.9f ? 1.0f / 0.9f : 0.0f;
            float r = (p[j] - 0.01f * (float)(bt->targets[i] % 17)) * keep;
            loss += 0.5 * (double)r * (double)r;
            grad[j] += r * keep / (float)bt->n_targets;
        }
    return loss / (double)bt->n_targets;
}

static int enc_bytes(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n, lorac_err *err) {
    (void)ctx;
    (void)err;
    *ids = malloc(len ? len * sizeof(int32_t) : 1);
    for (size_t i = 0; i < len; i++) (*ids)[i] = (unsigned char)text[i];
    *n = len;
    return LORAC_OK;
}

/* Runs steps [from, to) of a run; with a checkpoint path, first restores from it. Returns the
 * per-step losses in losses[from..to). */
static void toy_run(const train_data *d, long long from, long long to, const char *resume_from,
                    const char *save_at_end, float *params, double *losses) {
    const int n = 37, A = 2;
    const long long total = 12;
    lorac_err err = {0};
    adamw_state opt;
    adamw_init(&opt, n, &err);
    adamw_config c = {0.9, 0.999, 1e-8, 0.01};
    train_batcher b;
    train_batch bt;
    train_batcher_init(&b, d, 3, 1, 1, 110, &err);
    train_batch_init(&bt, 3, d->max_len, &err);
    train_state st = {.seed = 110};
    lorac_rng_seed(&st.rng, 110);
    for (int i = 0; i < n; i++) params[i] = 0.02f * (float)(i % 5);
    if (resume_from) {
        CHECK(train_state_load(resume_from, &st, params, &opt, "toy", &err) == LORAC_OK, "%s", err.msg);
        CHECK(st.step == from, "resumed at %lld", st.step);
        train_batcher_seek(&b, st.epoch, (size_t)st.batch, &err);
    }
    float grad[37];
    for (long long s = from; s < to; s++) {
        memset(grad, 0, sizeof grad);
        double loss = 0;
        for (int a = 0; a < A; a++) {
            train_batcher_next(&b, &bt, &err);
            loss += toy_forward_backward(params, grad, n, &bt, &st.rng) / A;
            st.tokens += (long long)bt.n_tokens;
        }
        for (int i = 0; i < n; i++) grad[i] /= A;
        train_clip_grad_norm(grad, n, 0.05f);
        adamw_update(&opt, &c, train_lr_linear(1e-2, 3, total, s), params, grad, NULL);
        losses[s] = loss;
        st.step = s + 1;
        st.epoch = b.epoch;
        st.batch = (long long)b.batch;
    }
    if (save_at_end) CHECK(train_state_save(save_at_end, &st, params, &opt, "toy", &err) == LORAC_OK, "%s", err.msg);
    train_batch_free(&bt);
    train_batcher_free(&b);
    adamw_free(&opt);
}

/* 12 steps straight vs 5 steps, checkpoint, fresh objects, 7 more: the same losses and params,
 * bit for bit (the data stream crosses epochs: 7 examples make 2 micro-batches of 3 per epoch). */
static void test_resume_toy_run(void) {
    char dir[] = "/tmp/lorac_test_resume_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    char data_path[300], ckpt[300];
    snprintf(data_path, sizeof data_path, "%s/toy.txt", dir);
    snprintf(ckpt, sizeof ckpt, "%s/state.safetensors", dir);
    const char *lines = "ab||cde\nname : x||y z\nq||rstuv w\nhello||world\nk||l\nmm||nn oo\nfoo||bar baz\n";
    lorac_err err = {0};
    lorac_write_file(data_path, lines, strlen(lines), &err);
    train_examples ex;
    train_data d;
    CHECK(train_examples_read(data_path, TRAIN_FORMAT_E2E, &ex, &err) == LORAC_OK, "%s", err.msg);
    CHECK(train_data_build(&ex, enc_bytes, NULL, 256, 64, &d, &err) == LORAC_OK, "%s", err.msg);
    float p_straight[37], p_resumed[37];
    double l_straight[12], l_resumed[12];
    toy_run(&d, 0, 12, NULL, NULL, p_straight, l_straight);
    toy_run(&d, 0, 5, NULL, ckpt, p_resumed, l_resumed);
    toy_run(&d, 5, 12, ckpt, NULL, p_resumed, l_resumed);
    CHECK(memcmp(l_straight, l_resumed, sizeof l_straight) == 0, "losses differ after resuming (step 5: %.17g vs %.17g)",
          l_straight[5], l_resumed[5]);
    CHECK(memcmp(p_straight, p_resumed, sizeof p_straight) == 0, "params differ after resuming");
    CHECK(l_straight[11] < l_straight[0], "the toy run learns: %g -> %g", l_straight[0], l_straight[11]);
    train_data_free(&d);
    train_examples_free(&ex);
    unlink(data_path);
    unlink(ckpt);
    rmdir(dir);
}

int main(void) {
    ref r;
    if (ref_load(&r) == 0) {
        test_against_torch(&r);
        ref_free(&r);
    } else {
        CHECK(0, "cannot read the fixture");
    }
    test_schedule_edges();
    test_clip_edges();
    test_mask_and_threads();
    test_options();
    test_state_roundtrip();
    test_resume_toy_run();
    return check_summary();
}
