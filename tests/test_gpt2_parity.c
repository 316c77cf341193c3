/* GPT-2 + LoRA parity with Hugging Face transformers + PEFT (fixtures from tools/gpt2_ref.py):
 * base logits, adapter logits, loss with and without label smoothing, every LoRA gradient after
 * one backward, the losses of 3 AdamW steps, greedy decoding, and merged == unmerged.
 * Tolerances: logits 2e-5 abs + 1e-4 rel; losses 1e-5 rel; gradients 1e-6 abs + 2e-4 rel
 * (float32 accumulation order differs from PyTorch's).
 * The bf16 matmul mode (--precision bf16) on a 128-wide model (tools/gpt2_wide_ref.py), against
 * the same fp32 PyTorch reference: logits within 3e-2 abs (|logit| <= 2.2; 0.011 seen), loss_ls
 * 1e-3 rel, each LoRA gradient within 2e-2 relative L2 error (0.0064 seen): bf16 operands carry 8
 * significant bits. fp32 mode on the same model stays within 1e-4, and bf16 must differ from it by
 * 10x more (so the bf16 kernel really ran). */
#include "check.h"
#include "fixture.h"

#define FIX LORAC_SOURCE_DIR "/tests/fixtures/gpt2/tiny"

/* Each LoRA tensor of the model with its gradient, by the fixture's name ("grad." + PEFT name). */
typedef struct { char peft[192]; float *data, *grad; size_t n; } lt;

static int lora_tensors(model *m, lt *out) {
    lora_param *p[64];
    int n = fx_lora_params(m, p, 64);
    for (int i = 0; i < n; i++) {
        snprintf(out[i].peft, sizeof out[i].peft, "grad.base_model.model.%s.weight", p[i]->name);
        out[i].data = p[i]->data, out[i].grad = p[i]->grad, out[i].n = p[i]->numel;
    }
    return n;
}

/* forward + backward of the wide model in one precision; returns the worst logit / gradient errors */
static void wide_run(op_precision prec, double *logit_err, double *loss_rel, double *grad_rel) {
    const char *fix = LORAC_SOURCE_DIR "/tests/fixtures/gpt2/wide";
    char path[512];
    lorac_err err = {0};
    st_file ref;
    snprintf(path, sizeof path, "%s/ref.safetensors", fix);
    if (st_open(path, &ref, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    size_t nids;
    int32_t *ids = fx_i64(&ref, "input_ids", &nids), *targets = fx_i64(&ref, "targets", NULL);
    const st_tensor *lt_ = fx_need(&ref, "logits");
    int B = (int)lt_->shape[0], T = (int)lt_->shape[1], V = (int)lt_->shape[2];
    float *ref_logits = fx_f32(&ref, "logits", NULL), *ref_loss = fx_f32(&ref, "loss_ls", NULL);
    model *m = NULL;
    snprintf(path, sizeof path, "%s/base", fix);
    int rc = model_load(path, &FX_NO_TOK, &m, &err);
    snprintf(path, sizeof path, "%s/adapter", fix);
    const char *spec = path;
    if (!rc) rc = model_attach_adapters(m, &spec, 1, NULL, 0, &err);
    model_acts *a = NULL;
    /* set before the activations: under bf16 they keep the MLP pre-activation as bf16 */
    CHECK(op_set_matmul_precision(prec) == 0, "precision %d refused", (int)prec);
    if (!rc) rc = model_acts_alloc(m, B, T, &a, &err);
    CHECK(rc == 0, "wide model: %s", err.msg);
    if (rc) {
        op_set_matmul_precision(OP_PREC_FP32);
        return;
    }
    float loss = 0;
    *logit_err = INFINITY;
    rc = fx_lm_forward(m, a, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, &err); /* full logits */
    for (size_t i = 0; !rc && i < (size_t)B * T * V; i++)
        *logit_err = i ? fmax(*logit_err, fabs((double)model_acts_logits(a)[i] - ref_logits[i]))
                       : fabs((double)model_acts_logits(a)[i] - ref_logits[i]);
    model_zero_grad(m);
    if (!rc) rc = fx_lm_forward(m, a, ids, targets, B, T, 0.1f, 1, NULL, &loss, NULL, &err);
    if (!rc) rc = model_backward(m, a, &err);
    op_set_matmul_precision(OP_PREC_FP32);
    CHECK(rc == 0, "wide forward/backward: %s", err.msg);
    *loss_rel = fabs((double)loss - ref_loss[0]) / fabs((double)ref_loss[0]);
    lt ts[64];
    int nt = lora_tensors(m, ts);
    CHECK(nt == 16, "%d LoRA tensors", nt);
    *grad_rel = 0;
    for (int i = 0; i < nt; i++) {
        float *g = fx_f32(&ref, ts[i].peft, NULL);
        *grad_rel = fmax(*grad_rel, fx_rel_l2(ts[i].grad, g, ts[i].n));
        free(g);
    }
    model_acts_free(a);
    model_free(m);
    st_close(&ref);
    free(ids), free(targets), free(ref_logits), free(ref_loss);
}

static void check_wide_bf16(void) {
    double l32, s32, g32, l16, s16, g16;
    wide_run(OP_PREC_FP32, &l32, &s32, &g32);
    printf("wide model fp32: max |logit err| %.3g, loss rel %.3g, worst grad rel L2 %.3g\n", l32, s32, g32);
    CHECK(l32 <= 1e-4 && s32 <= 1e-5 && g32 <= 1e-4, "fp32 mode off the reference");
    if (!op_bf16_supported()) {
        printf("skip bf16 part: this CPU (or build) has no AVX512-BF16\n");
        return;
    }
    wide_run(OP_PREC_BF16, &l16, &s16, &g16);
    printf("wide model bf16: max |logit err| %.3g, loss rel %.3g, worst grad rel L2 %.3g\n", l16, s16, g16);
    CHECK(l16 <= 3e-2, "bf16 logits off by %g", l16);
    CHECK(s16 <= 1e-3, "bf16 loss off by %g rel", s16);
    CHECK(g16 <= 2e-2, "bf16 gradients off by %g rel L2", g16);
    CHECK(l16 > 10 * l32, "bf16 logits as close as fp32 (%g vs %g): the bf16 kernel did not run", l16, l32);
}

int main(void) {
    lorac_set_threads(2);
    check_wide_bf16();
    lorac_err err = {0};
    st_file ref;
    if (st_open(FIX "/ref.safetensors", &ref, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t nids;
    int32_t *ids = fx_i64(&ref, "input_ids", &nids);
    int32_t *targets = fx_i64(&ref, "targets", NULL);
    const st_tensor *lt_ = fx_need(&ref, "logits");
    int B = (int)lt_->shape[0], T = (int)lt_->shape[1], V = (int)lt_->shape[2];
    float *ref_logits = fx_f32(&ref, "logits", NULL), *ref_base = fx_f32(&ref, "base_logits", NULL);
    float *ref_loss = fx_f32(&ref, "loss", NULL), *ref_loss_ls = fx_f32(&ref, "loss_ls", NULL);
    float *ref_adam = fx_f32(&ref, "adam_losses", NULL);

    model *m = NULL;
    int rc = model_load(FIX "/base", &FX_NO_TOK, &m, &err);
    CHECK(rc == 0, "load: %s", err.msg);
    if (rc) return check_summary();
    CHECK(model_cfg(m)->vocab_size == V, "vocab %d", model_cfg(m)->vocab_size);
    model_acts *a = NULL;
    rc = model_acts_alloc(m, B, T, &a, &err);
    CHECK(rc == 0, "acts: %s", err.msg);

    /* base model */
    rc = fx_lm_forward(m, a, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, &err);
    CHECK(rc == 0, "forward: %s", err.msg);
    check_arrays_close(model_acts_logits(a), ref_base, (size_t)B * T * V, 2e-5, 1e-4, "base logits");

    /* with the PEFT adapter */
    char warn[1024];
    const char *adapter = FIX "/adapter";
    rc = model_attach_adapters(m, &adapter, 1, warn, sizeof warn, &err);
    CHECK(rc == 0, "peft load: %s", err.msg);
    if (rc) return check_summary();
    float loss = 0;
    int count = 0;
    rc = fx_lm_forward(m, a, ids, targets, B, T, 0.0f, 0, NULL, &loss, &count, &err);
    CHECK(rc == 0, "forward: %s", err.msg);
    check_arrays_close(model_acts_logits(a), ref_logits, (size_t)B * T * V, 2e-5, 1e-4, "adapter logits");
    CHECK_CLOSE(loss, ref_loss[0], 0, 1e-5, "loss");
    CHECK(count == op_crossentropy_count((const int *)targets, B * T), "count %d", count);
    /* the loss-only pass (the head in slices, no (B,T,V) logits) gives the same loss */
    float loss_only = 0;
    rc = fx_lm_forward(m, a, ids, targets, B, T, 0.0f, MODEL_FWD_LOSS, NULL, &loss_only, NULL, &err);
    CHECK(rc == 0, "loss-only forward: %s", err.msg);
    CHECK_CLOSE(loss_only, ref_loss[0], 0, 1e-5, "loss-only pass");

    /* one backward with label smoothing 0.1 */
    model_zero_grad(m);
    rc = fx_lm_forward(m, a, ids, targets, B, T, 0.1f, 1, NULL, &loss, NULL, &err);
    CHECK(rc == 0, "forward: %s", err.msg);
    CHECK_CLOSE(loss, ref_loss_ls[0], 0, 1e-5, "loss with label smoothing");
    rc = model_backward(m, a, &err);
    CHECK(rc == 0, "backward: %s", err.msg);
    lt ts[64];
    int nt = lora_tensors(m, ts);
    CHECK(nt == 16, "%d LoRA tensors", nt);
    for (int i = 0; i < nt; i++) {
        float *g = fx_f32(&ref, ts[i].peft, NULL);
        check_arrays_close(ts[i].grad, g, ts[i].n, 1e-6, 2e-4, ts[i].peft);
        free(g);
    }

    /* 3 AdamW steps (lr 1e-2, wd 0.01): per-tensor states are the same elementwise update */
    adamw_config ac = {0.9, 0.999, 1e-8, 0.01};
    adamw_state st[64];
    for (int i = 0; i < nt; i++) adamw_init(&st[i], ts[i].n, NULL);
    for (int step = 0; step < 3; step++) {
        model_zero_grad(m);
        rc = fx_lm_forward(m, a, ids, targets, B, T, 0.1f, 1, NULL, &loss, NULL, &err);
        CHECK_CLOSE(loss, ref_adam[step], 0, 2e-5, "AdamW step loss");
        rc |= model_backward(m, a, &err);
        for (int i = 0; i < nt; i++) adamw_update(&st[i], &ac, 1e-2, ts[i].data, ts[i].grad, NULL);
    }
    CHECK(rc == 0, "adam steps: %s", err.msg);
    for (int i = 0; i < nt; i++) adamw_free(&st[i]);
    model_acts_free(a);
    model_free(m);

    /* greedy decoding with the adapter, then merged == unmerged */
    rc = model_load(FIX "/base", &FX_NO_TOK, &m, &err) || model_attach_adapters(m, &adapter, 1, NULL, 0, &err) ||
         model_acts_alloc(m, B, T, &a, &err);
    CHECK(rc == 0, "reload: %s", err.msg);
    size_t np, nout;
    int32_t *prompt = fx_i64(&ref, "greedy_prompt", &np), *want = fx_i64(&ref, "greedy_out", &nout);
    int32_t seq[64];
    memcpy(seq, prompt, np * sizeof *seq);
    model_acts *g1 = NULL;
    model_acts_alloc(m, 1, (int)nout, &g1, &err);
    for (size_t len = np; len < nout; len++) {
        fx_lm_forward(m, g1, seq, NULL, 1, (int)len, 0.0f, 0, NULL, NULL, NULL, &err);
        const float *row = model_acts_logits(g1) + (len - 1) * (size_t)V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        seq[len] = best;
    }
    int same = 1;
    for (size_t i = 0; i < nout; i++) same &= seq[i] == want[i];
    CHECK(same, "greedy tokens differ from transformers' generate()");

    /* the same through the decoder with a KV cache, greedy and HF beam search */
    model_session *sess = NULL;
    CHECK(model_session_new(m, &sess, &err) == 0, "session");
    gen_model gm;
    gen_model_session(&gm, m, sess);
    gen_config gc;
    gen_config_default(&gc, V - 1);
    gc.n_eos = 0; /* the reference ran with eos_token_id=None */
    gc.max_new_tokens = (int)(nout - np);
    gen_result res;
    rc = gen_generate(&gm, &gc, prompt, (int)np, &res, &err);
    CHECK(rc == 0, "generate: %s", err.msg);
    same = rc == 0 && res.hyps[0].n_tokens == (int)(nout - np);
    for (size_t i = 0; same && i < nout - np; i++) same &= res.hyps[0].tokens[i] == want[np + i];
    CHECK(same, "KV-cache greedy tokens differ from transformers' generate()");
    if (!rc) gen_result_free(&res);
    size_t nbeam;
    int32_t *beam = fx_i64(&ref, "beam_out", &nbeam);
    gen_config_default(&gc, V - 1);
    gc.num_beams = 4;
    gc.length_penalty = 0.8;
    gc.no_repeat_ngram_size = 2;
    gc.max_new_tokens = 8;
    rc = gen_generate(&gm, &gc, prompt, (int)np, &res, &err);
    CHECK(rc == 0, "beam: %s", err.msg);
    same = rc == 0 && res.hyps[0].n_tokens == (int)(nbeam - np);
    for (size_t i = 0; same && i < nbeam - np; i++) same &= res.hyps[0].tokens[i] == beam[np + i];
    CHECK(same, "beam search tokens differ from transformers' generate(num_beams=4, length_penalty=0.8, no_repeat_ngram_size=2)");
    if (!rc) gen_result_free(&res);
    free(beam);
    model_session_free(sess);
    rc = fx_lm_forward(m, a, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, &err);
    float *unmerged = malloc((size_t)B * T * V * sizeof(float));
    memcpy(unmerged, model_acts_logits(a), (size_t)B * T * V * sizeof(float));
    rc |= model_train_mode(m, 0, &err);
    rc |= fx_lm_forward(m, a, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, &err);
    CHECK(rc == 0, "merge: %s", err.msg);
    check_arrays_close(model_acts_logits(a), unmerged, (size_t)B * T * V, 1e-5, 1e-5, "merged vs unmerged logits");

    model_acts_free(g1);
    model_acts_free(a);
    model_free(m);
    st_close(&ref);
    free(ids); free(targets); free(ref_logits); free(ref_base); free(ref_loss); free(ref_loss_ls); free(ref_adam);
    free(prompt); free(want); free(unmerged);
    return check_summary();
}
