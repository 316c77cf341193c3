/* GPT-2 + LoRA parity with Hugging Face transformers + PEFT (fixtures from tools/gpt2_ref.py):
 * base logits, adapter logits, loss with and without label smoothing, every LoRA gradient after
 * one backward, the losses of 3 AdamW steps, greedy decoding, and merged == unmerged.
 * Tolerances: logits 2e-5 abs + 1e-4 rel; losses 1e-5 rel; gradients 1e-6 abs + 2e-4 rel
 * (float32 accumulation order differs from PyTorch's). */
#include "check.h"
#include "lorac.h"
#include "lorac/gen_gpt2.h"
#include "lorac/gpt2.h"
#include "lorac/safetensors.h"
#include "lorac/train.h"

#define FIX LORAC_SOURCE_DIR "/tests/fixtures/gpt2/tiny"

static const st_tensor *need(const st_file *f, const char *name) {
    const st_tensor *t = st_find(f, name);
    if (!t) {
        fprintf(stderr, "fixture lacks %s\n", name);
        exit(1);
    }
    return t;
}

static float *read_f32(const st_file *f, const char *name) {
    const st_tensor *t = need(f, name);
    float *x = malloc(t->numel * sizeof(float));
    if (st_read_f32(f, t, x, NULL)) exit(1);
    return x;
}

static int32_t *read_i64(const st_file *f, const char *name, size_t *n) {
    const st_tensor *t = need(f, name);
    int32_t *x = malloc(t->numel * sizeof(int32_t));
    for (size_t i = 0; i < t->numel; i++) {
        int64_t v;
        memcpy(&v, t->data + 8 * i, 8);
        x[i] = (int32_t)v;
    }
    if (n) *n = t->numel;
    return x;
}

/* Each LoRA tensor of the model with its gradient, by PEFT name. */
typedef struct { const char *peft; float *data, *grad; size_t n; } lt;

static int lora_tensors(gpt2_model *m, lt *out) {
    int n = 0;
    static char names[64][160];
    for (int l = 0; l < m->cfg.n_layer; l++) {
        gpt2_block_lora *b = &m->blocks[l];
        lora_linear *ls[4] = {b->c_attn, b->attn_proj, b->mlp_fc, b->mlp_proj};
        for (int s = 0; s < 4; s++) {
            if (!ls[s]) continue;
            for (int ab = 0; ab < 2; ab++) {
                snprintf(names[n], sizeof names[n], "grad.base_model.model.transformer.h.%d.%s.lora_%c.weight", l,
                         gpt2_site_name(s), ab ? 'B' : 'A');
                out[n].peft = names[n];
                out[n].data = ab ? ls[s]->lora_B : ls[s]->lora_A;
                out[n].grad = ab ? ls[s]->grad_B : ls[s]->grad_A;
                out[n].n = (size_t)ls[s]->cfg.r * (ab ? ls[s]->OC : ls[s]->C);
                n++;
            }
        }
    }
    return n;
}

int main(void) {
    lorac_set_threads(2);
    lorac_err err = {0};
    st_file ref;
    if (st_open(FIX "/ref.safetensors", &ref, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t nids;
    int32_t *ids = read_i64(&ref, "input_ids", &nids);
    int32_t *targets = read_i64(&ref, "targets", NULL);
    const st_tensor *lt_ = need(&ref, "logits");
    int B = (int)lt_->shape[0], T = (int)lt_->shape[1], V = (int)lt_->shape[2];
    float *ref_logits = read_f32(&ref, "logits"), *ref_base = read_f32(&ref, "base_logits");
    float *ref_loss = read_f32(&ref, "loss"), *ref_loss_ls = read_f32(&ref, "loss_ls");
    float *ref_adam = read_f32(&ref, "adam_losses");

    gpt2_model m;
    int rc = gpt2_model_load(FIX "/base", &m, &err);
    CHECK(rc == 0, "load: %s", err.msg);
    if (rc) return check_summary();
    CHECK(m.cfg.vocab_size == V, "vocab %d", m.cfg.vocab_size);
    gpt2_acts *a = NULL;
    rc = gpt2_acts_alloc(&m, B, T, &a, &err);
    CHECK(rc == 0, "acts: %s", err.msg);

    /* base model */
    rc = gpt2_forward(&m, a, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, &err);
    CHECK(rc == 0, "forward: %s", err.msg);
    check_arrays_close(gpt2_acts_logits(a), ref_base, (size_t)B * T * V, 2e-5, 1e-4, "base logits");

    /* with the PEFT adapter */
    char warn[1024];
    rc = gpt2_peft_load(&m, FIX "/adapter", warn, sizeof warn, &err);
    CHECK(rc == 0, "peft load: %s", err.msg);
    if (rc) return check_summary();
    float loss = 0;
    int count = 0;
    rc = gpt2_forward(&m, a, ids, targets, B, T, 0.0f, 0, NULL, &loss, &count, &err);
    CHECK(rc == 0, "forward: %s", err.msg);
    check_arrays_close(gpt2_acts_logits(a), ref_logits, (size_t)B * T * V, 2e-5, 1e-4, "adapter logits");
    CHECK_CLOSE(loss, ref_loss[0], 0, 1e-5, "loss");
    CHECK(count == op_crossentropy_count((const int *)targets, B * T), "count %d", count);

    /* one backward with label smoothing 0.1 */
    gpt2_model_zero_grad(&m);
    rc = gpt2_forward(&m, a, ids, targets, B, T, 0.1f, 1, NULL, &loss, NULL, &err);
    CHECK(rc == 0, "forward: %s", err.msg);
    CHECK_CLOSE(loss, ref_loss_ls[0], 0, 1e-5, "loss with label smoothing");
    rc = gpt2_backward(&m, a, &err);
    CHECK(rc == 0, "backward: %s", err.msg);
    lt ts[64];
    int nt = lora_tensors(&m, ts);
    CHECK(nt == 16, "%d LoRA tensors", nt);
    for (int i = 0; i < nt; i++) {
        float *g = read_f32(&ref, ts[i].peft);
        check_arrays_close(ts[i].grad, g, ts[i].n, 1e-6, 2e-4, ts[i].peft);
        free(g);
    }

    /* 3 AdamW steps (lr 1e-2, wd 0.01): per-tensor states are the same elementwise update */
    adamw_config ac = {0.9, 0.999, 1e-8, 0.01};
    adamw_state st[64];
    for (int i = 0; i < nt; i++) adamw_init(&st[i], ts[i].n, NULL);
    for (int step = 0; step < 3; step++) {
        gpt2_model_zero_grad(&m);
        rc = gpt2_forward(&m, a, ids, targets, B, T, 0.1f, 1, NULL, &loss, NULL, &err);
        CHECK_CLOSE(loss, ref_adam[step], 0, 2e-5, "AdamW step loss");
        rc |= gpt2_backward(&m, a, &err);
        for (int i = 0; i < nt; i++) adamw_update(&st[i], &ac, 1e-2, ts[i].data, ts[i].grad, NULL);
    }
    CHECK(rc == 0, "adam steps: %s", err.msg);
    for (int i = 0; i < nt; i++) adamw_free(&st[i]);
    gpt2_model_free(&m);

    /* greedy decoding with the adapter, then merged == unmerged */
    rc = gpt2_model_load(FIX "/base", &m, &err) || gpt2_peft_load(&m, FIX "/adapter", NULL, 0, &err);
    CHECK(rc == 0, "reload: %s", err.msg);
    size_t np, nout;
    int32_t *prompt = read_i64(&ref, "greedy_prompt", &np), *want = read_i64(&ref, "greedy_out", &nout);
    int32_t seq[64];
    memcpy(seq, prompt, np * sizeof *seq);
    gpt2_acts *g1 = NULL;
    gpt2_acts_alloc(&m, 1, (int)nout, &g1, &err);
    for (size_t len = np; len < nout; len++) {
        gpt2_forward(&m, g1, seq, NULL, 1, (int)len, 0.0f, 0, NULL, NULL, NULL, &err);
        const float *row = gpt2_acts_logits(g1) + (len - 1) * (size_t)V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        seq[len] = best;
    }
    int same = 1;
    for (size_t i = 0; i < nout; i++) same &= seq[i] == want[i];
    CHECK(same, "greedy tokens differ from transformers' generate()");

    /* the same through the decoder with a KV cache, greedy and HF beam search */
    gpt2_session *sess = NULL;
    CHECK(gpt2_session_new(&m, &sess, &err) == 0, "session");
    gen_model gm;
    gen_model_gpt2(&gm, &m, sess);
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
    int32_t *beam = read_i64(&ref, "beam_out", &nbeam);
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
    gpt2_session_free(sess);
    rc = gpt2_forward(&m, a, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, &err);
    float *unmerged = malloc((size_t)B * T * V * sizeof(float));
    memcpy(unmerged, gpt2_acts_logits(a), (size_t)B * T * V * sizeof(float));
    rc |= gpt2_model_train_mode(&m, 0, &err);
    rc |= gpt2_forward(&m, a, ids, NULL, B, T, 0.0f, 0, NULL, NULL, NULL, &err);
    CHECK(rc == 0, "merge: %s", err.msg);
    check_arrays_close(gpt2_acts_logits(a), unmerged, (size_t)B * T * V, 1e-5, 1e-5, "merged vs unmerged logits");

    gpt2_acts_free(g1);
    gpt2_acts_free(a);
    gpt2_model_free(&m);
    st_close(&ref);
    free(ids); free(targets); free(ref_logits); free(ref_base); free(ref_loss); free(ref_loss_ls); free(ref_adam);
    free(prompt); free(want); free(unmerged);
    return check_summary();
}
