/* GPT-2 LoRA placement and the PEFT adapter directory: a q,v split round-trips through PEFT's
 * c_attn layout bit-exactly; bad adapters are rejected with one-line errors; a few AdamW steps on
 * a fixed batch lower the loss; 1 and 2 threads give the same bits. */
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "lorac.h"
#include "lorac/gpt2.h"
#include "lorac/peft.h"
#include "lorac/safetensors.h"
#include "lorac/train.h"

static gpt2_config tiny(void) {
    gpt2_config c = {0};
    c.n_layer = 2;
    c.n_embd = 24;
    c.n_head = 3;
    c.n_positions = 16;
    c.n_inner = 96;
    c.vocab_size = 50;
    c.layer_norm_epsilon = 1e-5;
    c.activation = GPT2_ACT_GELU_NEW;
    c.eos_token_id = c.bos_token_id = 49;
    return c;
}

static void randomize_B(gpt2_model *m, uint64_t seed) {
    lorac_rng rng;
    lorac_rng_seed(&rng, seed);
    for (size_t i = 0; i < m->reg.n; i++) {
        lora_param *p = &m->reg.params[i];
        if (strstr(p->name, "lora_B") || strstr(p->name, "wte.lora_A")) /* embedding A starts at 0 */
            for (size_t j = 0; j < p->numel; j++) p->data[j] = 0.1f * lorac_rng_normal(&rng);
    }
}

static void make_batch(int32_t *ids, int32_t *tg, int B, int T, int V) {
    for (int i = 0; i < B * T; i++) ids[i] = (i * 7 + 3) % (V - 1);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) tg[b * T + t] = t < 2 || t == T - 1 ? TRAIN_IGNORE : ids[b * T + t + 1];
}

int main(void) {
    lorac_err err = {0};
    gpt2_config c = tiny();
    enum { B = 2, T = 10 };
    int32_t ids[B * T], tg[B * T];
    make_batch(ids, tg, B, T, c.vocab_size);
    char dir[] = "/tmp/lorac_gpt2_lora_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char adir[256];
    snprintf(adir, sizeof adir, "%s/adapter", dir);

    /* targets parsing */
    gpt2_lora_opts o;
    gpt2_lora_opts_default(&o);
    CHECK(o.qkv[0] && !o.qkv[1] && o.qkv[2] && o.r == 4, "default is the paper's q,v r=4");
    CHECK(gpt2_lora_targets_parse("q,v,mlp.c_fc", &o, &err) == 0 && o.mlp_fc && o.qkv[2], "parse");
    CHECK(gpt2_lora_targets_parse("all-linear", &o, &err) == 0 && o.c_attn_full && o.attn_proj && o.mlp_proj, "all-linear");
    CHECK(gpt2_lora_targets_parse("q,wat", &o, &err) == LORAC_EINVAL && strstr(err.msg, "wat"), "unknown target: %s", err.msg);
    CHECK(gpt2_lora_targets_parse("c_attn,q", &o, &err) == LORAC_EINVAL, "c_attn and q together");

    /* q,v split: save as PEFT c_attn rank 2r, reload into the split form, same logits bit for bit */
    gpt2_model m, m2;
    gpt2_lora_opts_default(&o);
    o.r = 2;
    o.alpha = 4;
    o.dropout = 0;
    o.attn_proj = 1;
    o.wte = 1;
    CHECK(gpt2_model_random(&c, 7, &m, &err) == 0, "random: %s", err.msg);
    CHECK(gpt2_model_add_lora(&m, &o, 11, &err) == 0, "add lora: %s", err.msg);
    randomize_B(&m, 5);
    char report[160];
    lora_registry_report(&m.reg, report, sizeof report);
    CHECK(strstr(report, "trainable params: ") == report, "report: %s", report);
    gpt2_acts *a = NULL;
    CHECK(gpt2_acts_alloc(&m, B, T, &a, &err) == 0, "acts");
    float *l1 = malloc(sizeof(float) * B * T * c.vocab_size);
    CHECK(gpt2_forward(&m, a, ids, NULL, B, T, 0, 0, NULL, NULL, NULL, &err) == 0, "fwd: %s", err.msg);
    memcpy(l1, gpt2_acts_logits(a), sizeof(float) * B * T * c.vocab_size);
    CHECK(gpt2_peft_save(&m, adir, &err) == 0, "save: %s", err.msg);
    peft_config pc;
    CHECK(peft_config_load(adir, &pc, &err) == 0, "config: %s", err.msg);
    CHECK(pc.fan_in_fan_out && pc.r == 2 && peft_rank_for(&pc, "transformer.h.0.attn.c_attn") == 4, "ranks");
    CHECK_CLOSE(peft_scaling_for(&pc, "transformer.h.1.attn.c_attn"), 2.0, 0, 1e-12, "c_attn scaling kept");
    CHECK(gpt2_model_random(&c, 7, &m2, &err) == 0, "random");
    CHECK(gpt2_peft_load(&m2, adir, NULL, 0, &err) == 0, "load: %s", err.msg);
    CHECK(m2.blocks && m2.blocks[0].qkv && !m2.blocks[0].c_attn, "read back into the split form");
    CHECK(m2.blocks && m2.blocks[1].attn_proj != NULL, "attn.c_proj adapter");
    CHECK(m2.wte_lora != NULL, "wte adapter read back");
    CHECK(gpt2_forward(&m2, a, ids, NULL, B, T, 0, 0, NULL, NULL, NULL, &err) == 0, "fwd2");
    CHECK(memcmp(l1, gpt2_acts_logits(a), sizeof(float) * B * T * c.vocab_size) == 0, "same logits after round trip");
    gpt2_model_free(&m2);

    /* merged model (wte LoRA => untied head keeping W0) gives the adapter's logits */
    {
        gpt2_config mc;
        gpt2_weights mw;
        char mdir[300];
        snprintf(mdir, sizeof mdir, "%s/merged", dir);
        CHECK(gpt2_weights_merged(&m, &mc, &mw, &err) == 0, "merged: %s", err.msg);
        CHECK(!mc.tie_word_embeddings, "a wte adapter unties the merged head");
        CHECK(gpt2_weights_save_dir(&mc, &mw, mdir, &err) == 0, "save merged: %s", err.msg);
        gpt2_weights_free(&mw);
        CHECK(gpt2_model_load(mdir, &m2, &err) == 0, "load merged: %s", err.msg);
        CHECK(m2.w.lm_head != NULL, "lm_head.weight loaded");
        CHECK(gpt2_forward(&m2, a, ids, NULL, B, T, 0, 0, NULL, NULL, NULL, &err) == 0, "fwd merged");
        check_arrays_close(gpt2_acts_logits(a), l1, (size_t)B * T * c.vocab_size, 1e-5, 1e-5, "merged vs adapter logits");
        gpt2_model_free(&m2);
    }

    /* the wte LoRA gradient against central differences of the loss (float32 loss: loose tolerance) */
    {
        float loss0;
        gpt2_model_zero_grad(&m);
        CHECK(gpt2_forward(&m, a, ids, tg, B, T, 0.0f, 1, NULL, &loss0, NULL, &err) == 0, "fwd");
        CHECK(gpt2_backward(&m, a, &err) == 0, "bwd: %s", err.msg);
        lora_embedding *E = m.wte_lora;
        int checked = 0;
        for (int j = 0; j < E->cfg.r && checked < 4; j++) {
            size_t idx = (size_t)j * E->V + (size_t)ids[3];
            float g = E->grad_A[idx], keep = E->lora_A[idx], lp, lm, h = 1e-2f;
            if (fabsf(g) < 1e-4f) continue;
            E->lora_A[idx] = keep + h;
            gpt2_forward(&m, a, ids, tg, B, T, 0.0f, 0, NULL, &lp, NULL, &err);
            E->lora_A[idx] = keep - h;
            gpt2_forward(&m, a, ids, tg, B, T, 0.0f, 0, NULL, &lm, NULL, &err);
            E->lora_A[idx] = keep;
            CHECK_CLOSE(g, (lp - lm) / (2 * h), 2e-4, 3e-2, "d loss / d wte.lora_A");
            checked++;
        }
        CHECK(checked > 0, "no wte gradient to check");
    }

    /* bad adapters: another shape, a stray tensor, a missing tensor, not an adapter */
    gpt2_config c2 = c;
    c2.n_embd = 12;
    c2.n_inner = 48;
    CHECK(gpt2_model_random(&c2, 7, &m2, &err) == 0, "random small");
    int rc = gpt2_peft_load(&m2, adir, NULL, 0, &err);
    CHECK(rc == LORAC_ESHAPE && strstr(err.msg, "adapter_model.safetensors") && !strchr(err.msg, '\n'), "shape: %s", err.msg);
    CHECK(!m2.has_lora && m2.reg.n > 0, "nothing half-loaded");
    gpt2_model_free(&m2);
    CHECK(gpt2_model_random(&c, 7, &m2, &err) == 0, "random");
    rc = gpt2_peft_load(&m2, dir, NULL, 0, &err);
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
    rc = gpt2_peft_load(&m2, adir, NULL, 0, &err);
    CHECK(rc == LORAC_EFORMAT && strstr(err.msg, "unexpected tensor") && strstr(err.msg, "c_fc"), "stray: %s", err.msg);
    CHECK(!m2.has_lora, "nothing half-loaded");
    gpt2_model_free(&m2);

    /* training: loss falls over a few AdamW steps on a fixed batch; 1 and 2 threads agree */
    float losses[2][6];
    for (int th = 1; th <= 2; th++) {
        lorac_set_threads(th);
        gpt2_model t;
        gpt2_lora_opts_default(&o);
        o.dropout = 0.1f;
        CHECK(gpt2_model_random(&c, 3, &t, &err) == 0, "random");
        CHECK(gpt2_model_add_lora(&t, &o, 4, &err) == 0, "lora");
        size_t ntr = 0, nall = 0;
        lora_registry_count(&t.reg, &ntr, &nall);
        CHECK(ntr == (size_t)c.n_layer * 4 * o.r * c.n_embd /* A (2r,C) + B (2C,r) */, "trainable %zu", ntr);
        adamw_config ac = {0.9, 0.999, 1e-8, 0.01};
        adamw_state st[16];
        int np = 0;
        lora_param *ps[16];
        for (size_t i = 0; i < t.reg.n; i++)
            if (lora_param_requires_grad(&t.reg.params[i])) ps[np++] = &t.reg.params[i];
        for (int i = 0; i < np; i++) adamw_init(&st[i], ps[i]->numel, NULL);
        lorac_rng rng;
        lorac_rng_seed(&rng, 9);
        for (int s = 0; s < 6; s++) {
            gpt2_model_zero_grad(&t);
            CHECK(gpt2_forward(&t, a, ids, tg, B, T, 0.1f, 1, &rng, &losses[th - 1][s], NULL, &err) == 0, "fwd: %s", err.msg);
            CHECK(gpt2_backward(&t, a, &err) == 0, "bwd: %s", err.msg);
            for (int i = 0; i < np; i++) adamw_update(&st[i], &ac, 2e-2, ps[i]->data, ps[i]->grad, NULL);
        }
        CHECK(losses[th - 1][5] < losses[th - 1][0] - 0.05f, "loss falls: %g -> %g", losses[th - 1][0], losses[th - 1][5]);
        for (int i = 0; i < np; i++) adamw_free(&st[i]);
        gpt2_model_free(&t);
    }
    CHECK(memcmp(losses[0], losses[1], sizeof losses[0]) == 0, "1 and 2 threads give the same losses");

    gpt2_acts_free(a);
    gpt2_model_free(&m);
    free(l1);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return check_summary();
}
