/* GPT-2 LoRA placement and the PEFT adapter directory: a q,v split round-trips through PEFT's
 * c_attn layout bit-exactly; bad adapters are rejected with one-line errors; a few AdamW steps on
 * a fixed batch lower the loss; 1 and 2 threads give the same bits. */
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fixture.h"

static model_config tiny(void) { return fx_gpt2_config(2, 24, 3, 96, 16, 50); }

static void make_batch(int32_t *ids, int32_t *tg, int B, int T, int V) {
    for (int i = 0; i < B * T; i++) ids[i] = (i * 7 + 3) % (V - 1);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) tg[b * T + t] = t < 2 || t == T - 1 ? TRAIN_IGNORE : ids[b * T + t + 1];
}

/* Rows of module's lora_B in m's registry: 0 when the module has no LoRA; with C = n_embd, a LoRA
 * Linear on c_attn has 3C, a MergedLinear on its q,v slices 2C. */
static int64_t lora_rows(model *m, const char *module) {
    char name[256];
    snprintf(name, sizeof name, "%s.lora_B", module);
    const lora_param *p = lora_registry_find(model_registry(m), name);
    return p ? p->shape[0] : 0;
}

/* --targets spec on a random tiny model: the LoRA layers it attaches (layer 1), by their B rows. */
static void targets_case(const char *spec, int64_t c_attn, int64_t attn_proj, int64_t mlp_fc, int64_t mlp_proj) {
    model_config c = tiny();
    model *m = NULL;
    lorac_err err = {0};
    model_lora_opts o = fx_lora_opts(0, 0, -1, spec);
    CHECK(model_random(&c, 7, &m, &err) == 0, "random: %s", err.msg);
    if (!m) return;
    CHECK(model_lora_check(m, &o, &err) == 0 && model_add_lora(m, &o, 1, &err) == 0, "%s: %s", spec, err.msg);
    int64_t got[4] = {lora_rows(m, "transformer.h.1.attn.c_attn"), lora_rows(m, "transformer.h.1.attn.c_proj"),
                      lora_rows(m, "transformer.h.1.mlp.c_fc"), lora_rows(m, "transformer.h.1.mlp.c_proj")};
    CHECK(got[0] == c_attn && got[1] == attn_proj && got[2] == mlp_fc && got[3] == mlp_proj,
          "%s: lora_B rows %lld %lld %lld %lld", spec, (long long)got[0], (long long)got[1], (long long)got[2],
          (long long)got[3]);
    model_free(m);
}

int main(void) {
    lorac_err err = {0};
    model_config c = tiny();
    const int C = c.n_embd, I = c.n_inner, V = c.vocab_size;
    enum { B = 2, T = 10 };
    int32_t ids[B * T], tg[B * T];
    make_batch(ids, tg, B, T, V);
    char dir[] = "/tmp/lorac_gpt2_lora_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char adir[256];
    snprintf(adir, sizeof adir, "%s/adapter", dir);

    /* targets parsing */
    model *m = NULL, *m2 = NULL;
    CHECK(model_random(&c, 7, &m, &err) == 0, "random: %s", err.msg);
    if (!m) return check_summary();
    model_lora_opts o;
    model_lora_opts_init(&o);
    model_lora_opts_resolve(m, &o);
    CHECK(!strcmp(o.targets, "q,v") && o.r == 4, "default is the paper's q,v r=4: %s r %d", o.targets, o.r);
    targets_case("q,v,mlp.c_fc", 2 * C, 0, I, 0);
    targets_case("all-linear", 3 * C, C, I, C);
    o = fx_lora_opts(0, 0, -1, "q,wat");
    CHECK(model_lora_check(m, &o, &err) == LORAC_EINVAL && strstr(err.msg, "wat"), "unknown target: %s", err.msg);
    o = fx_lora_opts(0, 0, -1, "c_attn,q");
    CHECK(model_lora_check(m, &o, &err) == LORAC_EINVAL, "c_attn and q together");
    CHECK(model_add_lora(m, &o, 1, &err) == LORAC_EINVAL && !model_has_lora(m), "c_attn and q together: nothing attached");

    /* q,v split: save as PEFT c_attn rank 2r, reload into the split form, same logits bit for bit */
    o = fx_lora_opts(2, 4, 0, "q,v,attn.c_proj,wte");
    CHECK(model_add_lora(m, &o, 11, &err) == 0, "add lora: %s", err.msg);
    fx_lora_randomize(m, 0.1f, 5);
    char report[160];
    lora_registry_report(model_registry(m), report, sizeof report);
    CHECK(strstr(report, "trainable params: ") == report, "report: %s", report);
    model_acts *a = NULL;
    CHECK(model_acts_alloc(m, B, T, &a, &err) == 0, "acts");
    float *l1 = malloc(sizeof(float) * B * T * V);
    CHECK(fx_lm_forward(m, a, ids, NULL, B, T, 0, 0, NULL, NULL, NULL, &err) == 0, "fwd: %s", err.msg);
    memcpy(l1, model_acts_logits(a), sizeof(float) * B * T * V);
    CHECK(model_save_adapter(m, adir, &err) == 0, "save: %s", err.msg);
    peft_config pc;
    CHECK(peft_config_load(adir, &pc, &err) == 0, "config: %s", err.msg);
    CHECK(pc.fan_in_fan_out && pc.r == 2 && peft_rank_for(&pc, "transformer.h.0.attn.c_attn") == 4, "ranks");
    CHECK_CLOSE(peft_scaling_for(&pc, "transformer.h.1.attn.c_attn"), 2.0, 0, 1e-12, "c_attn scaling kept");
    CHECK(model_random(&c, 7, &m2, &err) == 0, "random");
    const char *spec = adir;
    CHECK(model_attach_adapters(m2, &spec, 1, NULL, 0, &err) == 0, "load: %s", err.msg);
    CHECK(lora_rows(m2, "transformer.h.0.attn.c_attn") == 2 * C, "read back into the split form (a MergedLinear on q,v)");
    CHECK(lora_rows(m2, "transformer.h.1.attn.c_proj") == C, "attn.c_proj adapter");
    CHECK(lora_registry_find(model_registry(m2), "transformer.wte.lora_A") != NULL, "wte adapter read back");
    CHECK(fx_lm_forward(m2, a, ids, NULL, B, T, 0, 0, NULL, NULL, NULL, &err) == 0, "fwd2");
    CHECK(memcmp(l1, model_acts_logits(a), sizeof(float) * B * T * V) == 0, "same logits after round trip");
    model_free(m2);
    m2 = NULL;

    /* merged model (wte LoRA => untied head keeping W0) gives the adapter's logits */
    {
        char mdir[300];
        snprintf(mdir, sizeof mdir, "%s/merged", dir);
        CHECK(model_save_merged(m, mdir, -1, &err) == 0, "save merged: %s", err.msg);
        CHECK(model_load(mdir, &FX_NO_TOK, &m2, &err) == 0, "load merged: %s", err.msg);
        if (m2) {
            CHECK(!model_cfg(m2)->tie_word_embeddings, "a wte adapter unties the merged head");
            CHECK(lora_registry_find(model_registry(m2), "lm_head.weight") != NULL, "lm_head.weight loaded");
            CHECK(fx_lm_forward(m2, a, ids, NULL, B, T, 0, 0, NULL, NULL, NULL, &err) == 0, "fwd merged");
            check_arrays_close(model_acts_logits(a), l1, (size_t)B * T * V, 1e-5, 1e-5, "merged vs adapter logits");
        }
        model_free(m2);
        m2 = NULL;
    }

    /* the wte LoRA gradient against central differences of the loss (float32 loss: loose tolerance) */
    {
        float loss0;
        model_zero_grad(m);
        CHECK(fx_lm_forward(m, a, ids, tg, B, T, 0.0f, 1, NULL, &loss0, NULL, &err) == 0, "fwd");
        CHECK(model_backward(m, a, &err) == 0, "bwd: %s", err.msg);
        lora_param *E = lora_registry_find(model_registry(m), "transformer.wte.lora_A"); /* (r, V) */
        int checked = 0;
        for (int j = 0; E && j < E->shape[0] && checked < 4; j++) {
            size_t idx = (size_t)j * E->shape[1] + (size_t)ids[3];
            float g = E->grad[idx], keep = E->data[idx], lp, lm, h = 1e-2f;
            if (fabsf(g) < 1e-4f) continue;
            E->data[idx] = keep + h;
            fx_lm_forward(m, a, ids, tg, B, T, 0.0f, 0, NULL, &lp, NULL, &err);
            E->data[idx] = keep - h;
            fx_lm_forward(m, a, ids, tg, B, T, 0.0f, 0, NULL, &lm, NULL, &err);
            E->data[idx] = keep;
            CHECK_CLOSE(g, (lp - lm) / (2 * h), 2e-4, 3e-2, "d loss / d wte.lora_A");
            checked++;
        }
        CHECK(checked > 0, "no wte gradient to check");
    }

    /* bad adapters: another shape, a stray tensor, a missing tensor, not an adapter */
    model_config c2 = fx_gpt2_config(2, 12, 3, 48, 16, 50);
    CHECK(model_random(&c2, 7, &m2, &err) == 0, "random small");
    int rc = model_attach_adapters(m2, &spec, 1, NULL, 0, &err);
    CHECK(rc == LORAC_ESHAPE && strstr(err.msg, "adapter_model.safetensors") && !strchr(err.msg, '\n'), "shape: %s", err.msg);
    CHECK(!model_has_lora(m2) && model_registry(m2)->n > 0, "nothing half-loaded");
    model_free(m2);
    CHECK(model_random(&c, 7, &m2, &err) == 0, "random");
    const char *not_adapter = dir;
    rc = model_attach_adapters(m2, &not_adapter, 1, NULL, 0, &err);
    CHECK(rc == LORAC_ENOTFOUND && strstr(err.msg, "adapter_config.json"), "not an adapter: %s", err.msg);
    {
        char st[300];
        snprintf(st, sizeof st, "%s/adapter_model.safetensors", adir);
        st_file f;
        CHECK(st_open(st, &f, &err) == 0, "open");
        st_entry e[64];
        for (size_t i = 0; i < f.n_tensors && i < 63; i++) {
            e[i].name = f.tensors[i].name;
            e[i].dtype = e[i].out_dtype = f.tensors[i].dtype;
            e[i].ndim = f.tensors[i].ndim;
            memcpy(e[i].shape, f.tensors[i].shape, sizeof e[i].shape);
            e[i].data = f.tensors[i].data;
        }
        size_t n = f.n_tensors;
        float junk[4] = {0};
        e[n] = e[0];
        e[n].name = "base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight";
        e[n].ndim = 1;
        e[n].shape[0] = 4;
        e[n].data = junk;
        char st2[300];
        snprintf(st2, sizeof st2, "%s/extra.safetensors", dir);
        CHECK(st_write(st2, e, n + 1, NULL, NULL, 0, &err) == 0, "write: %s", err.msg);
        st_close(&f);
        rename(st2, st);
    }
    rc = model_attach_adapters(m2, &spec, 1, NULL, 0, &err);
    CHECK(rc == LORAC_EFORMAT && strstr(err.msg, "unexpected tensor") && strstr(err.msg, "c_fc"), "stray: %s", err.msg);
    CHECK(!model_has_lora(m2), "nothing half-loaded");
    model_free(m2);

    /* training: loss falls over a few AdamW steps on a fixed batch; 1 and 2 threads agree */
    float losses[2][6];
    for (int th = 1; th <= 2; th++) {
        lorac_set_threads(th);
        model *t = NULL;
        o = fx_lora_opts(0, 0, 0.1f, NULL); /* the paper's q,v r 4 */
        CHECK(model_random(&c, 3, &t, &err) == 0, "random");
        if (!t) break;
        CHECK(model_add_lora(t, &o, 4, &err) == 0, "lora");
        model_lora_opts_resolve(t, &o);
        size_t ntr = 0, nall = 0;
        lora_registry_count(model_registry(t), &ntr, &nall);
        CHECK(ntr == (size_t)c.n_layer * 4 * o.r * c.n_embd /* A (2r,C) + B (2C,r) */, "trainable %zu", ntr);
        adamw_config ac = {0.9, 0.999, 1e-8, 0.01};
        adamw_state st[16];
        int np = 0;
        lora_param *ps[16];
        lora_registry *reg = model_registry(t);
        for (size_t i = 0; i < reg->n && np < 16; i++)
            if (lora_param_requires_grad(&reg->params[i])) ps[np++] = &reg->params[i];
        for (int i = 0; i < np; i++) adamw_init(&st[i], ps[i]->numel, NULL);
        lorac_rng rng;
        lorac_rng_seed(&rng, 9);
        for (int s = 0; s < 6; s++) {
            model_zero_grad(t);
            CHECK(fx_lm_forward(t, a, ids, tg, B, T, 0.1f, 1, &rng, &losses[th - 1][s], NULL, &err) == 0, "fwd: %s", err.msg);
            CHECK(model_backward(t, a, &err) == 0, "bwd: %s", err.msg);
            for (int i = 0; i < np; i++) adamw_update(&st[i], &ac, 2e-2, ps[i]->data, ps[i]->grad, NULL);
        }
        CHECK(losses[th - 1][5] < losses[th - 1][0] - 0.05f, "loss falls: %g -> %g", losses[th - 1][0], losses[th - 1][5]);
        for (int i = 0; i < np; i++) adamw_free(&st[i]);
        model_free(t);
    }
    CHECK(memcmp(losses[0], losses[1], sizeof losses[0]) == 0, "1 and 2 threads give the same losses");

    model_acts_free(a);
    model_free(m);
    free(l1);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return check_summary();
}
