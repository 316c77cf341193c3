/* Llama from GGUF (fixtures from tools/llama_gguf_ref.py, built from tools/llama_ref.py's HF models):
 *  - F32 GGUF (gqa: llama with GQA; qwen2: biases, tied, not permuted; biased: llama with q/k/v/o
 *    biases, rope scaling): the same config and BIT-IDENTICAL logits as the HF directory, without
 *    and with the PEFT adapter (q/k rows un-permuted exactly); Llama 3.1 rope scaling stored as
 *    rope_freqs.weight matches HF's llama3 rope_scaling (1e-5);
 *  - Q8_0 / Q4_0 / Q4_1 GGUF (weights stay quantized, mapped): base logits, adapter logits, loss and every
 *    LoRA gradient against transformers+PEFT run on the dequantized weights (logits 2e-5 abs +
 *    1e-4 rel, loss 1e-5 rel, grads 1e-6 abs + 2e-4 rel); inference mode keeps them unmerged;
 *  - GGUF adapters: lorac writes exactly the committed gqa_rs.lorac.gguf (checked with llama.cpp's
 *    semantics by tools/llama_gguf_ref.py --check-adapter: rsLoRA, rank_pattern, alpha_pattern
 *    folded into lora_b, q/k rows permuted); reading it onto the GGUF base reproduces PEFT's logits;
 *    a plain adapter round-trips bit-exactly; read into memory it serves from an adapter set
 *    (unmerged, merged), scales as "FILE.gguf:0.5" and combines with a PEFT directory;
 *  - merged outputs (GGUF F32 / Q8_0, HF directory) give the adapter's logits;
 *  - bad input: truncated tensor, unknown type, inconsistent metadata, mismatched adapters: a
 *    non-zero status and a one-line message naming the file;
 *  - SmolLM2-135M-Instruct Q4_1 (when ~/.cache/lorac or $LORAC_CACHE has it; skipped otherwise):
 *    load time, resident memory against the file size after a forward (the weights stay
 *    quantized: growth must stay below 1.3x the file, where f32 weights would be 5.5x), and the
 *    perplexity of held-out English (smollm2_rte_ids.txt) over 4 windows of 256 tokens, which must
 *    be what a 135M model gets (mean NLL in [1.5, 4.5], far below ln(49152) = 10.8). */
#include "check.h"
#include "fixture.h"
#include "models/model_internal.h" /* the stored weights, the LoRA layers and the rotary frequencies */

#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FIX LORAC_SOURCE_DIR "/tests/fixtures/llama"
#define GG FIX "/gguf"

static int32_t *read_ids(const st_file *f, const char *name, int *B, int *T) {
    const st_tensor *t = fx_need(f, name);
    *B = (int)t->shape[0];
    *T = (int)t->shape[1];
    return fx_i64(f, name, NULL);
}

/* The model at path, weights only (what these checks are about; GGUF tokenizers have tests of their own). */
static int load(const char *path, model **m, lorac_err *err) { return model_load(path, &FX_NO_TOK, m, err); }

/* One adapter (a PEFT directory or a GGUF adapter) attached. */
static int attach(model *m, const char *adapter, lorac_err *err) {
    return model_attach_adapters(m, &adapter, 1, NULL, 0, err);
}

/* The seven linear maps of a Llama block (arch.h's sites Q ... DOWN). */
#define FOR_LLAMA_SITES(s) for (int s = ARCH_Q; s <= ARCH_DOWN; s++)

typedef struct batch {
    int32_t *ids, *targets;
    int B, T, V;
} batch;

static void batch_load(batch *b, const char *variant) {
    char p[512];
    snprintf(p, sizeof p, FIX "/%s/ref.safetensors", variant);
    st_file f;
    if (st_open(p, &f, NULL)) exit(1);
    b->ids = read_ids(&f, "input_ids", &b->B, &b->T);
    b->targets = read_ids(&f, "targets", &b->B, &b->T);
    b->V = (int)st_find(&f, "logits")->shape[2];
    st_close(&f);
}

/* logits of a forward (no targets) into a fresh buffer; NULL on error */
static float *logits_of(model *m, const batch *b) {
    lorac_err err = {0};
    float *out = model_cfg(m)->vocab_size == b->V ? fx_lm_logits(m, b->ids, b->B, b->T, &err) : NULL;
    CHECK(out != NULL, "forward: %s", model_cfg(m)->vocab_size == b->V ? err.msg : "vocabulary differs from the fixture's");
    return out;
}

static int bits_equal(const float *x, const float *y, size_t n) { return x && y && !memcmp(x, y, n * sizeof *x); }

/* ---------------------------------------------------------------- F32 GGUF == HF directory */

static void test_f32_matches_hf(const char *variant) {
    char dir[512], gg[512], ad[512];
    snprintf(dir, sizeof dir, FIX "/%s/base", variant);
    snprintf(ad, sizeof ad, FIX "/%s/adapter", variant);
    snprintf(gg, sizeof gg, GG "/%s.f32.gguf", variant);
    lorac_err err = {0};
    model *h = NULL, *g = NULL;
    int rc = load(dir, &h, &err);
    CHECK(rc == 0, "%s", err.msg);
    rc |= load(gg, &g, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc) {
        model_free(h);
        model_free(g);
        return;
    }
    const model_config *a = model_cfg(h), *c = model_cfg(g);
    CHECK(a->n_layer == c->n_layer && a->n_embd == c->n_embd && a->n_inner == c->n_inner && a->n_head == c->n_head &&
              a->n_kv_head == c->n_kv_head && a->head_dim == c->head_dim && a->vocab_size == c->vocab_size &&
              a->n_positions == c->n_positions && a->tie_word_embeddings == c->tie_word_embeddings &&
              a->qkv_bias == c->qkv_bias && a->o_bias == c->o_bias && a->rope.scaling == c->rope.scaling &&
              a->rope.factor == c->rope.factor && a->rope.theta == c->rope.theta && a->eos_token_id == c->eos_token_id &&
              (float)a->norm_eps == (float)c->norm_eps,
          "%s: GGUF config differs from config.json", variant);
    batch b;
    batch_load(&b, variant);
    size_t n = (size_t)b.B * b.T * b.V;
    float *lh = logits_of(h, &b), *lg = logits_of(g, &b);
    CHECK(bits_equal(lh, lg, n), "%s: F32 GGUF base logits differ from the HF directory's", variant);
    free(lh);
    free(lg);
    char warn[512];
    const char *spec = ad;
    rc = model_attach_adapters(h, &spec, 1, warn, sizeof warn, &err) || model_attach_adapters(g, &spec, 1, warn, sizeof warn, &err);
    CHECK(rc == 0, "%s", err.msg);
    lh = logits_of(h, &b);
    lg = logits_of(g, &b);
    CHECK(bits_equal(lh, lg, n), "%s: F32 GGUF + PEFT adapter logits differ from the HF directory's", variant);
    free(lh);
    free(lg);
    free(b.ids);
    free(b.targets);
    model_free(h);
    model_free(g);
}

/* Llama 3.1 rope scaling as llama.cpp stores it (rope_freqs.weight, from the converter's formula in
 * tools/llama_gguf_ref.py) against the HF model with rope_scaling llama3 (factor 4, low/high 1/4,
 * original context 64: the head's 4 frequencies fall in all three bands). */
static void test_llama3_rope_freqs(void) {
    lorac_err err = {0};
    model *h = NULL, *g = NULL;
    int rc = load(FIX "/gqa/base", &h, &err) || load(GG "/gqa_llama3.f32.gguf", &g, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc) {
        model_free(h);
        return;
    }
    /* the HF model as if its config.json said rope_scaling llama3 */
    h->cfg.rope.scaling = ROPE_SCALING_LLAMA3;
    h->cfg.rope.factor = 4.0;
    h->cfg.rope.low_freq_factor = 1.0;
    h->cfg.rope.high_freq_factor = 4.0;
    h->cfg.rope.original_max_positions = 64;
    op_rope_inv_freq(&h->cfg.rope, h->cfg.head_dim, h->inv_freq);
    CHECK(g->rope_freqs != NULL, "rope_freqs.weight not read");
    check_arrays_close(g->inv_freq, h->inv_freq, (size_t)h->cfg.head_dim / 2, 0, 1e-6, "llama3 frequencies via rope_freqs");
    batch b;
    batch_load(&b, "gqa");
    float *lh = logits_of(h, &b), *lg = logits_of(g, &b);
    if (lh && lg) check_arrays_close(lg, lh, (size_t)b.B * b.T * b.V, 1e-5, 1e-5, "llama3 rope: GGUF vs HF logits");
    /* and the scaling matters at these positions: the unscaled model differs */
    model *p = NULL;
    if (lg && load(GG "/gqa.f32.gguf", &p, &err) == 0) {
        float *lp = logits_of(p, &b);
        double d = 0;
        for (size_t i = 0; lp && i < (size_t)b.B * b.T * b.V; i++) d = fmax(d, fabs((double)lp[i] - lg[i]));
        CHECK(d > 1e-3, "llama3 scaling changed the logits by only %g", d);
        free(lp);
        model_free(p);
    }
    free(lh);
    free(lg);
    free(b.ids);
    free(b.targets);
    model_free(h);
    model_free(g);
}

/* ---------------------------------------------------------------- quantized base vs PyTorch */

static void test_quantized(const char *qname, int qtype) {
    char gg[512], refp[512];
    snprintf(gg, sizeof gg, GG "/gqa.%s.gguf", qname);
    snprintf(refp, sizeof refp, GG "/gqa.%s.ref.safetensors", qname);
    lorac_err err = {0};
    st_file ref;
    model *m = NULL;
    int rc = st_open(refp, &ref, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc) return;
    rc = load(gg, &m, &err);
    CHECK(rc == 0, "%s", err.msg);
    if (rc) {
        st_close(&ref);
        return;
    }
    /* weights stay quantized and mapped: only q/k rows are copies */
    const uint8_t *lo = model_gguf(m)->base, *hi = lo + model_gguf(m)->size;
    const qmat *v = &m->layers[0].site[ARCH_V].w, *q = &m->layers[0].site[ARCH_Q].w;
    CHECK((int)v->type == qtype && (const uint8_t *)v->data >= lo && (const uint8_t *)v->data < hi,
          "%s: attn_v is not the mapped %s tensor", qname, quant_type_name(qtype));
    CHECK((int)q->type == qtype && !((const uint8_t *)q->data >= lo && (const uint8_t *)q->data < hi),
          "%s: attn_q should be a row-permuted copy", qname);
    batch b;
    batch_load(&b, "gqa");
    size_t n = (size_t)b.B * b.T * b.V;
    char what[160];
    float *want = fx_f32(&ref, "base_logits", NULL), *got = logits_of(m, &b);
    snprintf(what, sizeof what, "%s base logits vs PyTorch on dequantized weights", qname);
    if (got) check_arrays_close(got, want, n, 2e-5, 1e-4, what);
    free(want);
    free(got);
    rc = attach(m, FIX "/gqa/adapter", &err);
    CHECK(rc == 0, "%s", err.msg);
    /* parameter counts include the quantized matrices (as with an f32 base, where all are registered) */
    model *f = NULL;
    if (load(GG "/gqa.f32.gguf", &f, &err) == 0) {
        size_t t1 = 0, a1 = 0, t2 = 0, a2 = 0;
        if (attach(f, FIX "/gqa/adapter", &err) == 0) lora_registry_count(model_registry(f), &t1, &a1);
        model_count_params(m, &t2, &a2);
        CHECK(t1 == t2 && a1 == a2 && t1 > 0, "%s: params %zu/%zu, f32 base %zu/%zu", qname, t2, a2, t1, a1);
    }
    model_free(f);
    want = fx_f32(&ref, "logits", NULL);
    got = logits_of(m, &b);
    snprintf(what, sizeof what, "%s adapter logits vs PEFT on dequantized weights", qname);
    if (got) check_arrays_close(got, want, n, 2e-5, 1e-4, what);
    free(got);
    model_acts *a = NULL;
    float loss = 0, *ref_loss = fx_f32(&ref, "loss_ls", NULL);
    rc = model_acts_alloc(m, b.B, b.T, &a, &err);
    model_zero_grad(m);
    if (!rc) rc = fx_lm_forward(m, a, b.ids, b.targets, b.B, b.T, 0.1f, 1, NULL, &loss, NULL, &err);
    if (!rc) rc = model_backward(m, a, &err);
    CHECK(rc == 0, "%s training step: %s", qname, err.msg);
    CHECK_CLOSE(loss, ref_loss[0], 0, 1e-5, "loss_ls on a quantized base");
    double worst = 0;
    int ngrad = 0;
    for (int l = 0; l < m->cfg.n_layer && !rc; l++)
        FOR_LLAMA_SITES(s) {
            const site_lora *sl = model_site_lora(m, l, s);
            lora_linear *L = sl ? sl->lin : NULL;
            char module[192];
            model_site_module(m, l, s, module, sizeof module);
            CHECK(L && !L->weight, "%s: %s should be a delta-only LoRA", qname, module);
            if (!L) continue;
            for (int ab = 0; ab < 2; ab++) {
                char gname[256];
                snprintf(gname, sizeof gname, "grad.base_model.model.%s.lora_%c.weight", module, ab ? 'B' : 'A');
                float *g = fx_f32(&ref, gname, NULL), *mine = ab ? L->grad_B : L->grad_A;
                size_t k = (size_t)L->cfg.r * (ab ? L->OC : L->C);
                check_arrays_close(mine, g, k, 1e-6, 2e-4, gname);
                for (size_t i = 0; i < k; i++) worst = fmax(worst, fabs((double)mine[i] - g[i]));
                free(g);
                ngrad++;
            }
        }
    printf("%s base: max |LoRA grad - PyTorch| = %.3g over %d tensors\n", qname, worst, ngrad);
    /* inference mode: quantized sites stay unmerged, same logits */
    rc = model_train_mode(m, 0, &err);
    got = rc ? NULL : logits_of(m, &b);
    snprintf(what, sizeof what, "%s adapter logits in inference mode", qname);
    if (got) check_arrays_close(got, want, n, 2e-5, 1e-4, what);
    free(got);
    free(want);
    free(ref_loss);
    model_acts_free(a);
    model_free(m);
    st_close(&ref);
    free(b.ids);
    free(b.targets);
}

/* ---------------------------------------------------------------- GGUF adapters and merges */

static int files_equal(const char *p1, const char *p2) {
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    int same = !lorac_read_file(p1, &a, &na, NULL) && !lorac_read_file(p2, &b, &nb, NULL) && na == nb && !memcmp(a, b, na);
    free(a);
    free(b);
    return same;
}

/* HF base + PEFT adapter -> GGUF adapter -> GGUF base + that adapter: A, B, scaling and logits equal. */
static void adapter_round_trip(const char *variant, const char *tmp) {
    char hd[512], pd[512], gp[512], out[600];
    snprintf(hd, sizeof hd, FIX "/%s/base", variant);
    snprintf(pd, sizeof pd, FIX "/%s/adapter", variant);
    snprintf(gp, sizeof gp, GG "/%s.f32.gguf", variant);
    snprintf(out, sizeof out, "%s/plain_%s.gguf", tmp, variant);
    lorac_err err = {0};
    model *h = NULL, *g = NULL;
    int rc = load(hd, &h, &err) || attach(h, pd, &err) || model_save_adapter(h, out, &err) || load(gp, &g, &err) ||
             attach(g, out, &err);
    CHECK(rc == 0, "%s adapter round trip: %s", variant, err.msg);
    if (rc) {
        model_free(h);
        model_free(g);
        return;
    }
    int same = 1;
    for (int l = 0; l < h->cfg.n_layer; l++)
        FOR_LLAMA_SITES(s) {
            const site_lora *sx = model_site_lora(h, l, s), *sy = model_site_lora(g, l, s);
            const lora_linear *x = sx ? sx->lin : NULL, *y = sy ? sy->lin : NULL;
            same &= x && y && x->cfg.r == y->cfg.r && x->scaling == y->scaling &&
                    !memcmp(x->lora_A, y->lora_A, (size_t)x->cfg.r * x->C * 4) &&
                    !memcmp(x->lora_B, y->lora_B, (size_t)x->cfg.r * x->OC * 4);
        }
    CHECK(same, "%s: GGUF adapter round trip changed A, B or the scaling", variant);
    batch b;
    batch_load(&b, variant);
    float *lh = logits_of(h, &b), *lg = logits_of(g, &b);
    CHECK(bits_equal(lh, lg, (size_t)b.B * b.T * b.V), "%s: HF+PEFT and GGUF+GGUF-adapter logits differ", variant);
    free(lh);
    free(lg);
    free(b.ids);
    free(b.targets);
    model_free(h);
    model_free(g);
}

/* A GGUF adapter read as a PEFT adapter in memory (model_adapter_read): in an adapter set (a server's
 * use), unmerged and merged, it gives the logits of attaching it; "FILE.gguf:0.5" scales it as the
 * PEFT directory's "DIR:0.5" (llama.cpp's --lora-scaled), and it combines with a PEFT directory. */
static void test_gguf_adapter_in_set(const char *gguf_adapter, const batch *b) {
    lorac_err err = {0};
    size_t n = (size_t)b->B * b->T * b->V;
    model *m = NULL, *one = NULL, *half_g = NULL, *half_p = NULL, *mix = NULL;
    model_adapter_set *set = NULL;
    peft_adapter *a = NULL;
    char spec_g[700], spec_p[700];
    snprintf(spec_g, sizeof spec_g, "%s:0.5", gguf_adapter);
    snprintf(spec_p, sizeof spec_p, "%s:0.5", GG "/gqa_rs/adapter");
    const char *mixed[2] = {spec_g, spec_p};
    int rc = load(GG "/gqa.f32.gguf", &m, &err) || load(GG "/gqa.f32.gguf", &one, &err) || attach(one, gguf_adapter, &err) ||
             model_adapter_read(m, gguf_adapter, &a, NULL, 0, &err) || model_adapter_set_new(m, &set, &err) ||
             model_adapter_set_add(set, a, NULL, &err) || model_adapter_set_activate(set, 0, 0, &err);
    CHECK(rc == 0, "GGUF adapter in an adapter set: %s", err.msg);
    float *want = rc ? NULL : logits_of(one, b), *got = rc ? NULL : logits_of(m, b);
    if (got && want) check_arrays_close(got, want, n, 1e-6, 1e-5, "GGUF adapter in a set (unmerged) vs attached");
    free(got);
    got = NULL;
    CHECK(rc || model_adapter_set_activate(set, 0, 1, &err) == 0, "merged: %s", err.msg);
    if (!rc && (got = logits_of(m, b)) && want) check_arrays_close(got, want, n, 2e-5, 1e-4, "GGUF adapter in a set (merged)");
    free(got);
    free(want);
    rc = load(GG "/gqa.f32.gguf", &half_g, &err) || attach(half_g, spec_g, &err) || load(FIX "/gqa/base", &half_p, &err) ||
         attach(half_p, spec_p, &err) || load(GG "/gqa.f32.gguf", &mix, &err) ||
         model_attach_adapters(mix, mixed, 2, NULL, 0, &err);
    CHECK(rc == 0, "scaled GGUF adapter: %s", err.msg);
    float *g = rc ? NULL : logits_of(half_g, b), *p = rc ? NULL : logits_of(half_p, b), *x = rc ? NULL : logits_of(mix, b);
    if (g && p) check_arrays_close(g, p, n, 2e-5, 1e-4, "FILE.gguf:0.5 vs the PEFT directory's DIR:0.5");
    if (x && p) { /* 0.5·ΔW + 0.5·ΔW of the same adapter in two formats is the adapter at scale 1 */
        float *full = logits_of(one, b);
        if (full) check_arrays_close(x, full, n, 2e-5, 1e-4, "FILE.gguf:0.5 + DIR:0.5 vs the adapter");
        free(full);
    }
    free(g);
    free(p);
    free(x);
    model_adapter_set_free(set);
    peft_adapter_free(a);
    model_free(m);
    model_free(one);
    model_free(half_g);
    model_free(half_p);
    model_free(mix);
}

static void test_adapters(const char *tmp) {
    lorac_err err = {0};
    batch b;
    batch_load(&b, "gqa");
    size_t n = (size_t)b.B * b.T * b.V;
    char out[600];
    /* rsLoRA + rank_pattern + alpha_pattern, from the HF model: the committed, checked file */
    model *h = NULL, *g = NULL;
    snprintf(out, sizeof out, "%s/rs.gguf", tmp);
    int rc = load(FIX "/gqa/base", &h, &err) || attach(h, GG "/gqa_rs/adapter", &err) || model_save_adapter(h, out, &err);
    CHECK(rc == 0, "rs adapter save: %s", err.msg);
    CHECK(files_equal(out, GG "/gqa_rs.lorac.gguf"),
          "the GGUF adapter differs from tests/fixtures/llama/gguf/gqa_rs.lorac.gguf (re-check it with "
          "tools/llama_gguf_ref.py --check-adapter)");
    st_file ref;
    rc = load(GG "/gqa.f32.gguf", &g, &err) || attach(g, out, &err) || st_open(GG "/gqa_rs/ref.safetensors", &ref, &err);
    CHECK(rc == 0, "rs adapter load: %s", err.msg);
    if (!rc) {
        float *want = fx_f32(&ref, "logits", NULL), *got = logits_of(g, &b);
        if (got) check_arrays_close(got, want, n, 2e-5, 1e-4, "GGUF base + GGUF rsLoRA adapter vs PEFT");
        test_gguf_adapter_in_set(out, &b);
        /* the GGUF adapter (each layer its own rank, scales folded) written as a PEFT directory: the
         * layers' ranks and alphas become rank/alpha patterns, and it loads back to the same logits */
        char pdir[700];
        model *p = NULL;
        snprintf(pdir, sizeof pdir, "%s/rs_peft", tmp);
        rc = model_save_adapter(g, pdir, &err) || load(GG "/gqa.f32.gguf", &p, &err) || attach(p, pdir, &err);
        CHECK(rc == 0, "GGUF adapter as PEFT: %s", err.msg);
        float *again = rc ? NULL : logits_of(p, &b);
        if (again) check_arrays_close(again, want, n, 2e-5, 1e-4, "GGUF rsLoRA adapter saved as PEFT (rank patterns) vs PEFT");
        free(again);
        model_free(p);
        fx_rm_adapter(pdir);
        free(want);
        free(got);
        st_close(&ref);
    }
    model_free(h);
    model_free(g);

    /* a plain adapter round-trips bit-exactly (A, B and so the logits), for each architecture */
    adapter_round_trip("gqa", tmp);
    adapter_round_trip("qwen2", tmp);
    adapter_round_trip("biased", tmp);

    /* merged outputs from a Q8_0 base with the adapter */
    model *q = NULL, *mm = NULL;
    rc = load(GG "/gqa.q8_0.gguf", &q, &err) || attach(q, FIX "/gqa/adapter", &err);
    CHECK(rc == 0, "%s", err.msg);
    float *want = rc ? NULL : logits_of(q, &b);
    const struct { const char *name; int type; double atol; } outs[] = {
        {"merged.f32.gguf", QUANT_F32, 2e-5}, {"merged.q8_0.gguf", QUANT_Q8_0, 0.05}, {"merged_hf", -1, 2e-5}};
    for (int i = 0; i < 3 && want; i++) {
        snprintf(out, sizeof out, "%s/%s", tmp, outs[i].name);
        rc = model_save_merged(q, out, outs[i].type, &err); /* a directory when out has no .gguf suffix */
        rc = rc || load(out, &mm, &err);
        CHECK(rc == 0, "%s: %s", outs[i].name, err.msg);
        if (rc) continue;
        CHECK(!model_has_lora(mm) && model_cfg(mm)->vocab_size == model_cfg(q)->vocab_size, "%s", outs[i].name);
        float *got = logits_of(mm, &b);
        char what[128];
        snprintf(what, sizeof what, "%s logits vs base+adapter", outs[i].name);
        if (got) check_arrays_close(got, want, n, outs[i].atol, 1e-4, what);
        if (got && outs[i].type == QUANT_Q8_0) {
            double d = 0;
            for (size_t k = 0; k < n; k++) d = fmax(d, fabs((double)got[k] - want[k]));
            printf("merged Q8_0 (re-quantized) logits: max |diff| %.3g\n", d);
        }
        free(got);
        model_free(mm);
        mm = NULL;
    }
    free(want);
    model_free(q);
    free(b.ids);
    free(b.targets);
}

/* ---------------------------------------------------------------- bad input */

static void expect_fail(int rc, const lorac_err *err, const char *path, const char *needle, const char *what) {
    CHECK(rc != 0, "%s: accepted", what);
    CHECK(!strchr(err->msg, '\n') && strstr(err->msg, path) && (!needle || strstr(err->msg, needle)),
          "%s: message '%s' (want one line naming %s%s%s)", what, err->msg, path, needle ? " and " : "", needle ? needle : "");
}

/* Copies SRC into DST replacing one u32 key (or dropping it when value < 0, or replacing tokens
 * by a short list when key is "tokens"). */
static int rewrite(const char *src, const char *dst, const char *key, long value) {
    gguf_file f;
    lorac_err err = {0};
    if (gguf_open(src, &f, &err)) return -1;
    gguf_writer *w = gguf_writer_new();
    for (size_t i = 0; i < f.n_kv; i++) {
        const gguf_kv *kv = &f.kvs[i];
        if (!strcmp(kv->key, "general.alignment")) continue;
        if (!strcmp(kv->key, key)) {
            if (value >= 0) gguf_writer_add_u32(w, key, (uint32_t)value);
            continue;
        }
        if (!strcmp(key, "tokens") && !strcmp(kv->key, "tokenizer.ggml.tokens")) {
            const char *few[3] = {"a", "b", "c"};
            gguf_writer_add_arr_str(w, kv->key, few, 3);
            continue;
        }
        gguf_writer_copy_kv(w, kv);
    }
    for (size_t i = 0; i < f.n_tensors; i++) {
        const gguf_tensor *t = &f.tensors[i];
        gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
    }
    int rc = gguf_writer_write(w, dst, &err);
    gguf_writer_free(w);
    gguf_close(&f);
    return rc;
}

static void test_bad_input(const char *tmp) {
    lorac_err err = {0};
    model *m = NULL;
    char p[600];
    char *data = NULL;
    size_t n = 0;
    CHECK(lorac_read_file(GG "/gqa.q8_0.gguf", &data, &n, NULL) == 0, "read fixture");
    /* truncated: the last tensor's bytes run past the end */
    snprintf(p, sizeof p, "%s/truncated.gguf", tmp);
    lorac_write_file(p, data, n - 100, NULL);
    expect_fail(load(p, &m, &err), &err, p, NULL, "truncated tensor");
    /* unknown type: blk.0.attn_v.weight's type field set to 99 */
    const char *name = "blk.0.attn_v.weight";
    size_t nl = strlen(name);
    for (size_t i = 8; i + nl + 4 + 16 + 4 < n; i++)
        if (!memcmp(data + i, name, nl) && (uint8_t)data[i - 8] == nl) {
            uint32_t nd, bad = 99;
            memcpy(&nd, data + i + nl, 4);
            memcpy(data + i + nl + 4 + 8 * nd, &bad, 4);
            break;
        }
    snprintf(p, sizeof p, "%s/unknown_type.gguf", tmp);
    lorac_write_file(p, data, n, NULL);
    expect_fail(load(p, &m, &err), &err, p, NULL, "unknown tensor type");
    free(data);
    /* corrupted header, key/values and tensor infos (400 seeded mutations of 1-4 bytes): a clean
     * error or a model that runs a forward, never a crash (this test also runs under ASan/UBSan) */
    CHECK(lorac_read_file(GG "/gqa.q8_0.gguf", &data, &n, NULL) == 0, "read fixture");
    char *mut = malloc(n);
    lorac_rng rng;
    lorac_rng_seed(&rng, 2024);
    int loaded = 0, refused = 0;
    snprintf(p, sizeof p, "%s/mutated.gguf", tmp);
    for (int it = 0; it < 400; it++) {
        memcpy(mut, data, n);
        int k = 1 + (int)(lorac_rng_u64(&rng) % 4);
        for (int j = 0; j < k; j++) mut[lorac_rng_u64(&rng) % 3584] = (char)lorac_rng_u64(&rng); /* 3584: data area */
        lorac_write_file(p, mut, n, NULL);
        if (load(p, &m, &err) != 0) {
            refused++;
            if (strchr(err.msg, '\n') || !strstr(err.msg, p)) CHECK(0, "mutation %d: message '%s'", it, err.msg);
            continue;
        }
        loaded++;
        model_acts *a = NULL;
        int32_t ids[4] = {1, 2, 3, 4};
        if (model_acts_alloc(m, 1, 4, &a, &err) == 0) {
            fx_lm_forward(m, a, ids, NULL, 1, 4, 0.0f, 0, NULL, NULL, NULL, &err);
            model_acts_free(a);
        }
        model_free(m);
    }
    printf("mutated GGUFs: %d refused with one-line errors, %d loaded and ran\n", refused, loaded);
    free(mut);
    free(data);
    /* a file that is not a GGUF (nor a model directory) */
    expect_fail(load(FIX "/gqa/base/config.json", &m, &err), &err, "config.json", "not a GGUF", "not GGUF");
    /* inconsistent metadata */
    const struct { const char *key; long v; const char *needle; } meta[] = {
        {"llama.attention.head_count", 5, "head_count"},
        {"llama.attention.head_count_kv", 3, "key/value heads"},
        {"llama.block_count", 3, "blk.2"},
        {"llama.feed_forward_length", 48, "ffn_gate"},
        {"llama.embedding_length", -1, "embedding_length"},
        {"tokens", 0, "tokenizer.ggml.tokens"},
    };
    for (size_t i = 0; i < sizeof meta / sizeof *meta; i++) {
        snprintf(p, sizeof p, "%s/meta%zu.gguf", tmp, i);
        CHECK(rewrite(GG "/gqa.q8_0.gguf", p, meta[i].key, meta[i].v) == 0, "rewrite %s", meta[i].key);
        expect_fail(load(p, &m, &err), &err, p, meta[i].needle, meta[i].key);
    }
    /* adapters that do not fit the base */
    model *g = NULL;
    CHECK(load(GG "/gqa.f32.gguf", &g, &err) == 0, "%s", err.msg);
    if (!g) return;
    static float zeros[64 * 8];
    const struct { const char *a, *b; int64_t ra, rb, in, out; const char *arch, *needle; } ads[] = {
        {"blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b", 4, 3, 32, 32, "llama", "rank"},
        {"blk.7.attn_q.weight.lora_a", "blk.7.attn_q.weight.lora_b", 4, 4, 32, 32, "llama", "blk.7"},
        {"blk.0.attn_qq.weight.lora_a", "blk.0.attn_qq.weight.lora_b", 4, 4, 32, 32, "llama", "attn_qq"},
        {"blk.0.attn_k.weight.lora_a", "blk.0.attn_k.weight.lora_b", 4, 4, 32, 32, "llama", "outputs"},
        {"blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b", 4, 4, 32, 32, "qwen2", "architecture"},
    };
    for (size_t i = 0; i < sizeof ads / sizeof *ads; i++) {
        snprintf(p, sizeof p, "%s/bad_adapter%zu.gguf", tmp, i);
        gguf_writer *w = gguf_writer_new();
        gguf_writer_add_str(w, "general.type", "adapter");
        gguf_writer_add_str(w, "general.architecture", ads[i].arch);
        gguf_writer_add_str(w, "adapter.type", "lora");
        gguf_writer_add_f32(w, "adapter.lora.alpha", 8.0f);
        int64_t nea[2] = {ads[i].in, ads[i].ra}, neb[2] = {ads[i].rb, ads[i].out};
        gguf_writer_add_tensor_f32(w, ads[i].a, QUANT_F32, 2, nea, zeros);
        gguf_writer_add_tensor_f32(w, ads[i].b, QUANT_F32, 2, neb, zeros);
        CHECK(gguf_writer_write(w, p, &err) == 0, "%s", err.msg);
        gguf_writer_free(w);
        expect_fail(attach(g, p, &err), &err, p, ads[i].needle, ads[i].needle);
        CHECK(!model_has_lora(g), "a failed adapter load left LoRA layers");
    }
    model_free(g);
}

/* ---------------------------------------------------------------- SmolLM2 */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static long peak_rss_kb(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss;
}

static void test_smollm2(void) {
    char path[1024];
    fx_smollm2_path(path, sizeof path);
    if (access(path, R_OK) != 0) {
        printf("SKIP smollm2: %s is absent (tools/fetch_smollm2.sh fetches it)\n", path);
        return;
    }
    FILE *fi = fopen(GG "/smollm2_rte_ids.txt", "r");
    int32_t *ids = malloc(4096 * sizeof *ids);
    int nid = 0;
    while (fi && nid < 4096 && fscanf(fi, "%d", &ids[nid]) == 1) nid++;
    if (fi) fclose(fi);
    lorac_err err = {0};
    model *m = NULL;
    long rss0 = peak_rss_kb();
    double t0 = now_s();
    int rc = load(path, &m, &err);
    double t_load = now_s() - t0;
    CHECK(rc == 0, "%s", err.msg);
    if (rc) {
        free(ids);
        return;
    }
    const model_config *c = model_cfg(m);
    CHECK(c->n_layer == 30 && c->n_embd == 576 && c->vocab_size == 49152 && c->n_kv_head == 3, "smollm2 config");
    struct stat st;
    long file_kb = stat(path, &st) == 0 ? (long)(st.st_size / 1024) : 0;
    CHECK(file_kb > 0, "stat %s", path);
    enum { T = 256, WINDOWS = 4 };
    model_acts *a8 = NULL, *a = NULL;
    int32_t tg[T];
    float loss = 0;
    int cnt = 0;
    rc = model_acts_alloc(m, 1, 8, &a8, &err);
    for (int i = 0; i < 8; i++) tg[i] = ids[i + 1];
    if (!rc) rc = fx_lm_forward(m, a8, ids, tg, 1, 8, 0.0f, 0, NULL, &loss, &cnt, &err);
    long rss1 = peak_rss_kb();
    model_acts_free(a8);
    CHECK(rc == 0, "%s", err.msg);
    printf("smollm2: load %.3f s; peak RSS after an 8-token forward %ld KB (+%ld KB) for a %ld KB file\n", t_load, rss1,
           rss1 - rss0, file_kb);
#if !defined(__SANITIZE_ADDRESS__) /* ASan's shadow memory and quarantine count as resident */
    CHECK(rss1 - rss0 < file_kb * 13 / 10, "smollm2: memory grew by %ld KB for a %ld KB file", rss1 - rss0, file_kb);
#endif
    CHECK(nid >= WINDOWS * T + 1, "smollm2_rte_ids.txt has %d ids", nid);
    double nll = 0;
    long n = 0;
    t0 = now_s();
    rc = rc ? rc : model_acts_alloc(m, 1, T, &a, &err);
    for (int w = 0; w < WINDOWS && !rc && nid >= WINDOWS * T + 1; w++) {
        for (int i = 0; i < T; i++) tg[i] = ids[w * T + i + 1];
        rc = fx_lm_forward(m, a, ids + w * T, tg, 1, T, 0.0f, 0, NULL, &loss, &cnt, &err);
        nll += (double)loss * cnt;
        n += cnt;
    }
    CHECK(rc == 0 && n > 0, "%s", err.msg);
    if (n) {
        nll /= (double)n;
        printf("smollm2: held-out English perplexity %.2f (mean NLL %.4f over %ld tokens, %.1f s); peak RSS %ld KB\n",
               exp(nll), nll, n, now_s() - t0, peak_rss_kb());
        CHECK(nll > 1.5 && nll < 4.5, "smollm2: mean NLL %.4f is not what a 135M model gets", nll);
    }
    model_acts_free(a);
    model_free(m);
    free(ids);
}

int main(void) {
    test_smollm2(); /* first, so that its memory numbers are the process's own */
    test_f32_matches_hf("gqa");
    test_f32_matches_hf("qwen2");
    test_f32_matches_hf("biased");
    test_llama3_rope_freqs();
    test_quantized("q8_0", QUANT_Q8_0);
    test_quantized("q4_0", QUANT_Q4_0);
    test_quantized("q4_1", QUANT_Q4_1);
    char tmp[] = "/tmp/lorac_llama_gguf_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    test_adapters(tmp);
    test_bad_input(tmp);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return check_summary();
}
