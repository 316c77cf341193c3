/* Llama-family + LoRA parity with Hugging Face transformers + PEFT (fixtures from
 * tools/llama_ref.py), for two variants:
 *   gqa    Llama, 4 query / 2 kv heads, untied lm_head, sharded safetensors with an index;
 *   qwen2  Qwen2, q/k/v biases, tied embeddings, rope_theta 1e6 with linear rope scaling.
 * Checked: base logits, adapter logits, loss with and without label smoothing, every LoRA
 * gradient after one backward, greedy decoding, merged == unmerged, PEFT save/load round trip.
 * Tolerances: logits 2e-5 abs + 1e-4 rel; losses 1e-5 rel; gradients 1e-6 abs + 2e-4 rel
 * (float32 accumulation order differs from PyTorch's).
 * Also: the rotary op with given frequencies against finite differences and against op_rope,
 * llama3 frequency scaling's three bands, config errors. */
#include "check.h"
#include "fixture.h"
#include "lorac/ops_rope.h"

#include <unistd.h>

#define FIX LORAC_SOURCE_DIR "/tests/fixtures/llama"

static void run_variant(const char *name, int want_layers, int want_nkv) {
    char dir[512], base[600], adapter[600], refp[600];
    snprintf(dir, sizeof dir, FIX "/%s", name);
    snprintf(base, sizeof base, "%s/base", dir);
    snprintf(adapter, sizeof adapter, "%s/adapter", dir);
    snprintf(refp, sizeof refp, "%s/ref.safetensors", dir);
    lorac_err err = {0};
    st_file ref;
    if (st_open(refp, &ref, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    int32_t *ids = fx_i64(&ref, "input_ids", NULL), *targets = fx_i64(&ref, "targets", NULL);
    const st_tensor *lt_ = fx_need(&ref, "logits");
    int B = (int)lt_->shape[0], T = (int)lt_->shape[1], V = (int)lt_->shape[2];
    size_t nl = (size_t)B * T * V;
    float *ref_logits = fx_f32(&ref, "logits", NULL), *ref_base = fx_f32(&ref, "base_logits", NULL);
    float *ref_loss = fx_f32(&ref, "loss", NULL), *ref_loss_ls = fx_f32(&ref, "loss_ls", NULL);

    model *m = NULL;
    int rc = model_load(base, &FX_NO_TOK, &m, &err);
    CHECK(rc == 0, "%s load: %s", name, err.msg);
    if (rc) goto out;
    const model_config *mc = model_cfg(m);
    CHECK(mc->vocab_size == V && mc->n_layer == want_layers && mc->n_kv_head == want_nkv, "%s config", name);
    model_acts *a = NULL;
    rc = model_acts_alloc(m, B, T, &a, &err);
    CHECK(rc == 0, "acts: %s", err.msg);

    rc = fx_lm_forward(m, a, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, &err);
    CHECK(rc == 0, "forward: %s", err.msg);
    char what[128];
    snprintf(what, sizeof what, "%s base logits", name);
    check_arrays_close(model_acts_logits(a), ref_base, nl, 2e-5, 1e-4, what);
    model_acts *ia = NULL; /* inference activations (one layer's buffers for all): the same bits */
    rc = model_acts_alloc_inference(m, B, T, &ia, &err) || fx_lm_forward(m, ia, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, &err);
    CHECK(rc == 0 && !memcmp(model_acts_logits(ia), model_acts_logits(a), nl * sizeof(float)), "%s inference activations: %s",
          name, err.msg);
    CHECK(fx_lm_forward(m, ia, ids, ids, B, T, 0.0f, MODEL_FWD_TRAIN, NULL, NULL, NULL, &err) == LORAC_EINVAL,
          "inference activations refuse a training forward");
    model_acts_free(ia);

    char warn[1024];
    const char *spec = adapter;
    rc = model_attach_adapters(m, &spec, 1, warn, sizeof warn, &err);
    CHECK(rc == 0, "peft load: %s", err.msg);
    if (rc) goto out_acts;
    float loss = 0;
    int count = 0;
    rc = fx_lm_forward(m, a, ids, targets, B, T, 0.0f, 0, NULL, &loss, &count, &err);
    CHECK(rc == 0, "forward: %s", err.msg);
    snprintf(what, sizeof what, "%s adapter logits", name);
    check_arrays_close(model_acts_logits(a), ref_logits, nl, 2e-5, 1e-4, what);
    CHECK_CLOSE(loss, ref_loss[0], 0, 1e-5, "loss");
    CHECK(count == op_crossentropy_count((const int *)targets, B * T), "count %d", count);
    /* the loss-only pass (the head in slices, no (B,T,V) logits) gives the same loss */
    float loss_only = 0;
    rc = fx_lm_forward(m, a, ids, targets, B, T, 0.0f, MODEL_FWD_LOSS, NULL, &loss_only, NULL, &err);
    CHECK(rc == 0, "loss-only forward: %s", err.msg);
    CHECK_CLOSE(loss_only, ref_loss[0], 0, 1e-5, "loss-only pass");

    model_zero_grad(m);
    rc = fx_lm_forward(m, a, ids, targets, B, T, 0.1f, 1, NULL, &loss, NULL, &err);
    CHECK(rc == 0, "forward: %s", err.msg);
    CHECK_CLOSE(loss, ref_loss_ls[0], 0, 1e-5, "loss with label smoothing");
    rc = model_backward(m, a, &err);
    CHECK(rc == 0, "backward: %s", err.msg);
    /* every LoRA tensor's gradient (registry order: layer by layer, q ... down, A then B) */
    lora_param *lp[256];
    int ngrad = fx_lora_params(m, lp, 256);
    double worst = 0;
    for (int i = 0; i < ngrad; i++) {
        char gname[256];
        snprintf(gname, sizeof gname, "grad.base_model.model.%s.weight", lp[i]->name);
        const st_tensor *t = fx_need(&ref, gname);
        CHECK(t->numel == lp[i]->numel, "%s numel", gname);
        float *g = fx_f32(&ref, gname, NULL);
        check_arrays_close(lp[i]->grad, g, lp[i]->numel, 1e-6, 2e-4, gname);
        for (size_t k = 0; k < lp[i]->numel; k++) worst = fmax(worst, fabs((double)lp[i]->grad[k] - g[k]));
        free(g);
    }
    /* a LoRA layer's bias is frozen (PEFT's bias "none") */
    lora_registry *reg = model_registry(m);
    for (size_t i = 0; i < reg->n; i++)
        CHECK(!reg->params[i].lora_layer_bias || !lora_param_requires_grad(&reg->params[i]), "frozen bias %s is trainable",
              reg->params[i].name);
    CHECK(ngrad == 2 * 7 * mc->n_layer, "%d gradients", ngrad);
    printf("%s: max |grad - ref| = %.3g over %d LoRA tensors\n", name, worst, ngrad);

    /* greedy decoding with full forwards, as generate() with the adapter */
    size_t np, nout;
    int32_t *prompt = fx_i64(&ref, "greedy_prompt", &np), *want = fx_i64(&ref, "greedy_out", &nout);
    int32_t seq[64];
    memcpy(seq, prompt, np * sizeof *seq);
    model_acts *g1 = NULL;
    rc = model_acts_alloc(m, 1, (int)nout, &g1, &err);
    for (size_t len = np; !rc && len < nout; len++) {
        rc = fx_lm_forward(m, g1, seq, NULL, 1, (int)len, 0.0f, 0, NULL, NULL, NULL, &err);
        const float *row = model_acts_logits(g1) + (len - 1) * (size_t)V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        seq[len] = best;
    }
    int same = rc == 0;
    for (size_t i = 0; same && i < nout; i++) same &= seq[i] == want[i];
    CHECK(same, "%s greedy tokens differ from transformers' generate()", name);
    model_acts_free(g1);

    /* PEFT save and load back into a fresh model: the same logits */
    char tmp[] = "/tmp/lorac_llama_peft_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    char sdir[600];
    snprintf(sdir, sizeof sdir, "%s/adapter", tmp);
    rc = model_save_adapter(m, sdir, &err);
    CHECK(rc == 0, "peft save: %s", err.msg);
    model *m2 = NULL;
    const char *sspec = sdir;
    rc = model_load(base, &FX_NO_TOK, &m2, &err) || model_attach_adapters(m2, &sspec, 1, NULL, 0, &err);
    CHECK(rc == 0, "reload: %s", err.msg);
    if (!rc) {
        rc = fx_lm_forward(m2, a, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, &err);
        snprintf(what, sizeof what, "%s logits after PEFT save/load", name);
        check_arrays_close(model_acts_logits(a), ref_logits, nl, 2e-5, 1e-4, what);
    }
    model_free(m2);
    char p1[700];
    snprintf(p1, sizeof p1, "%s/adapter_model.safetensors", sdir);
    remove(p1);
    snprintf(p1, sizeof p1, "%s/adapter_config.json", sdir);
    remove(p1);
    rmdir(sdir);
    rmdir(tmp);

    /* merged (inference mode) == unmerged */
    rc = fx_lm_forward(m, a, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, &err);
    float *unmerged = malloc(nl * sizeof(float));
    memcpy(unmerged, model_acts_logits(a), nl * sizeof(float));
    rc |= model_train_mode(m, 0, &err);
    rc |= fx_lm_forward(m, a, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, &err);
    CHECK(rc == 0, "merge: %s", err.msg);
    check_arrays_close(model_acts_logits(a), unmerged, nl, 1e-5, 1e-5, "merged vs unmerged logits");
    free(unmerged);
    free(prompt);
    free(want);
out_acts:
    model_acts_free(a);
    model_free(m);
out:
    st_close(&ref);
    free(ids); free(targets); free(ref_logits); free(ref_base); free(ref_loss); free(ref_loss_ls);
}

/* The rotation with given frequencies: equal to op_rope with theta's frequencies, its backward
 * the exact transpose (checked by central finite differences of a random projection). */
static void test_rope_freqs(void) {
    enum { B = 2, T = 5, NH = 3, HS = 8, D = NH * HS, N = B * T * D };
    lorac_rng rng;
    lorac_rng_seed(&rng, 7);
    static float x[N], w[N], y[N], y2[N], dx[N];
    for (int i = 0; i < N; i++) {
        x[i] = lorac_rng_normal(&rng);
        w[i] = lorac_rng_normal(&rng);
    }
    float inv[HS / 2];
    const rope_params rp = {.theta = 10000.0};
    op_rope_inv_freq(&rp, HS, inv);
    op_rope_freqs_forward(y, x, NULL, 0, B, T, NH, HS, inv);
    op_rope_forward(y2, x, NULL, B, T, NH, HS, 10000.0f);
    check_arrays_close(y, y2, N, 1e-5, 1e-5, "rope_freqs vs op_rope");
    int pos[B * T];
    for (int i = 0; i < B * T; i++) pos[i] = 3 + i % T;
    op_rope_freqs_forward(y, x, pos, 0, B, T, NH, HS, inv);
    op_rope_freqs_forward(y2, x, NULL, 3, B, T, NH, HS, inv);
    check_arrays_close(y, y2, N, 0, 0, "rope_freqs pos vs pos0");
    memset(dx, 0, sizeof dx);
    op_rope_freqs_backward(dx, w, pos, 0, B, T, NH, HS, inv);
    double worst = 0;
    for (int i = 0; i < N; i += 7) {
        const double eps = 1e-2;
        float keep = x[i];
        double f[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            x[i] = keep + (float)(sgn ? -eps : eps);
            op_rope_freqs_forward(y, x, pos, 0, B, T, NH, HS, inv);
            double s = 0;
            for (int j = 0; j < N; j++) s += (double)w[j] * y[j];
            f[sgn] = s;
        }
        x[i] = keep;
        double fd = (f[0] - f[1]) / (2 * eps), d = fabs(fd - dx[i]);
        if (d > worst) worst = d;
    }
    CHECK(worst < 1e-3, "rope_freqs backward vs finite differences: %g", worst);
}

/* Llama 3.1 scaling: wavelengths below orig/high_freq_factor unchanged, above orig/low_freq_factor
 * divided by factor, in between a smooth blend (between the two). */
static void test_llama3_freqs(void) {
    rope_params c = {.theta = 500000.0};
    float plain[32], scaled[32];
    op_rope_inv_freq(&c, 64, plain);
    c.scaling = ROPE_SCALING_LLAMA3;
    c.factor = 8.0;
    c.low_freq_factor = 1.0;
    c.high_freq_factor = 4.0;
    c.original_max_positions = 8192;
    op_rope_inv_freq(&c, 64, scaled);
    int hi = 0, lo = 0, mid = 0;
    for (int i = 0; i < 32; i++) {
        double wl = 6.283185307179586 / plain[i];
        if (wl < 8192 / 4.0) hi += scaled[i] == plain[i];
        else if (wl > 8192 / 1.0) lo += fabsf(scaled[i] - plain[i] / 8.0f) <= 1e-6f * plain[i];
        else mid += scaled[i] <= plain[i] && scaled[i] >= plain[i] / 8.0f * (1 - 1e-6f);
    }
    CHECK(hi + lo + mid == 32 && hi > 0 && lo > 0 && mid > 0, "llama3 bands: %d high, %d low, %d mid", hi, lo, mid);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_config_errors(void) {
    char tmp[] = "/tmp/lorac_llama_cfg_XXXXXX", path[600];
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/config.json", tmp);
    lorac_err err = {0};
    model_config c;
    write_text(path, "{\"model_type\": \"gpt3\", \"hidden_size\": 8}");
    CHECK(model_config_load(tmp, &c, &err) == LORAC_EUNSUPPORTED && strstr(err.msg, "gpt3"), "gpt3: %s", err.msg);
    write_text(path, "{\"model_type\": \"llama\", \"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 1,"
                     " \"num_attention_heads\": 4, \"num_key_value_heads\": 3}");
    CHECK(model_config_load(tmp, &c, &err) == LORAC_EFORMAT && strstr(err.msg, "key/value heads"), "nkv: %s", err.msg);
    write_text(path, "{\"model_type\": \"mistral\", \"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 1,"
                     " \"num_attention_heads\": 4, \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}}");
    CHECK(model_config_load(tmp, &c, &err) == LORAC_EUNSUPPORTED && strstr(err.msg, "dynamic"), "dynamic: %s", err.msg);
    write_text(path, "{\"model_type\": \"llama\", \"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 1,"
                     " \"num_attention_heads\": 4, \"eos_token_id\": [128001, 128009], \"rope_scaling\": {\"rope_type\": "
                     "\"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                     "\"original_max_position_embeddings\": 8192}}");
    int rc = model_config_load(tmp, &c, &err);
    CHECK(rc == 0 && c.eos_token_id == 128001 && c.n_kv_head == 4 && c.head_dim == 8 && c.rope.scaling == ROPE_SCALING_LLAMA3,
          "llama3 config: %s", rc ? err.msg : "wrong fields");
    model *m = NULL;
    rc = model_load(tmp, &FX_NO_TOK, &m, &err);
    CHECK(rc == LORAC_ENOTFOUND && strstr(err.msg, "model.safetensors"), "no weights: %s", err.msg);
    remove(path);
    rmdir(tmp);
    /* --targets names against a random Llama */
    model_config_default("llama", &c, &err);
    CHECK(model_random(&c, 1, &m, &err) == 0, "random llama: %s", err.msg);
    model_lora_opts o;
    model_lora_opts_init(&o);
    snprintf(o.targets, sizeof o.targets, "q_proj,mlp.down_proj");
    CHECK(model_lora_check(m, &o, &err) == 0, "targets: %s", err.msg);
    snprintf(o.targets, sizeof o.targets, "all-linear");
    CHECK(model_lora_check(m, &o, &err) == 0, "all-linear: %s", err.msg);
    snprintf(o.targets, sizeof o.targets, "c_attn");
    CHECK(model_lora_check(m, &o, &err) == LORAC_EINVAL && strstr(err.msg, "c_attn"), "c_attn rejected: %s", err.msg);
    model_free(m);
}

int main(void) {
    lorac_set_threads(2);
    run_variant("gqa", 2, 2);
    run_variant("qwen2", 1, 2);
    run_variant("biased", 1, 1);
    test_rope_freqs();
    test_llama3_freqs();
    test_config_errors();
    return check_summary();
}
