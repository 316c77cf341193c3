/* The model-generic causal-LM handle: dispatches to GPT-2 or the Llama family (see lorac/lm.h). */
#include <stdlib.h>
#include <string.h>

#include "lorac/json.h"
#include "lorac/lm.h"
#include "lorac/peft.h"

#define IS_GPT2(m) ((m)->arch == LM_GPT2)

const char *lm_arch_name(const lm *m) { return IS_GPT2(m) ? "gpt2" : m->llama.cfg.model_type; }

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* "gpt2" or a Llama-family name from DIR/config.json's model_type. */
static int read_model_type(const char *dir, char *type, size_t size, lorac_err *err) {
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_doc *doc = NULL;
    int rc = json_parse_file(path, &doc, err);
    if (rc) return rc;
    int bad = 0;
    const char *t = json_get_str(json_root(doc), "model_type", NULL, &bad);
    if (!t || bad) rc = lorac_fail(err, LORAC_EFORMAT, "%s: no \"model_type\" string", path);
    else snprintf(type, size, "%s", t);
    json_free(doc);
    return rc;
}

/* The tokenizer: GPT-2 keeps its own vocab.json + merges.txt reader (bpe_*); the Llama family uses
 * the generic one (tokenizer.json / vocab.json+merges.txt of a directory, or the GGUF's metadata). */
static int load_tokenizer(lm *m, const char *path, lorac_err *err) {
    int rc, V;
    if (IS_GPT2(m)) {
        if ((rc = bpe_load_dir(path, &m->bpe, err))) return rc;
        V = bpe_vocab_size(m->bpe);
        m->im_end_id = bpe_token_id(m->bpe, "<|im_end|>");
        m->has_chat = 0;
    } else {
        if ((rc = tok_load(path, &m->tok, err))) return rc;
        V = tok_vocab_size(m->tok);
        m->im_end_id = tok_find(m->tok, "<|im_end|>");
        m->has_chat = m->im_end_id >= 0 && tok_find(m->tok, "<|im_start|>") >= 0;
        m->add_bos = tok_add_bos(m->tok) && tok_bos_id(m->tok) >= 0;
        if (tok_bos_id(m->tok) >= 0) m->bos_id = tok_bos_id(m->tok);
        if (tok_eos_id(m->tok) >= 0) m->eos_id = tok_eos_id(m->tok);
    }
    if (V > m->vocab_size)
        return lorac_fail(err, LORAC_EFORMAT, "%s: the tokenizer has %d tokens but the model only %d", path, V,
                          m->vocab_size);
    return LORAC_OK;
}

/* The model alone (the tokenizer comes after adapters: an adapter error is reported first). */
static int load_model(const char *path, lm *m, lorac_err *err) {
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s", path);
    m->bos_id = m->eos_id = m->im_end_id = -1;
    m->training = 1;
    int rc;
    char type[64] = "";
    if (!llama_path_is_gguf(path) && (rc = read_model_type(path, type, sizeof type, err))) return rc;
    if (!strcmp(type, "gpt2")) {
        m->arch = LM_GPT2;
        if ((rc = gpt2_model_load(path, &m->gpt2, err))) return rc;
        m->vocab_size = m->gpt2.cfg.vocab_size;
        m->n_ctx = m->gpt2.cfg.n_positions;
        m->eos_id = m->gpt2.cfg.eos_token_id;
        m->bos_id = m->gpt2.cfg.bos_token_id;
    } else if (!type[0] || !strcmp(type, "llama") || !strcmp(type, "mistral") || !strcmp(type, "qwen2")) {
        m->arch = LM_LLAMA;
        if ((rc = llama_model_load(path, &m->llama, err))) return rc;
        m->vocab_size = m->llama.cfg.vocab_size;
        m->n_ctx = m->llama.cfg.n_positions;
        m->eos_id = m->llama.cfg.eos_token_id;
        m->bos_id = m->llama.cfg.bos_token_id;
    } else {
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s/config.json: model_type \"%s\" is not supported (gpt2, llama, "
                          "mistral, qwen2)", path, type);
    }
    return LORAC_OK;
}

int lm_load(const char *path, lm *m, lorac_err *err) {
    int rc = load_model(path, m, err);
    if (!rc && (rc = load_tokenizer(m, path, err))) lm_free(m);
    return rc;
}

void lm_free(lm *m) {
    gpt2_session_free(m->gs);
    llama_session_free(m->ls);
    bpe_free(m->bpe);
    tok_free(m->tok);
    if (m->arch == LM_GPT2) gpt2_model_free(&m->gpt2);
    else if (m->arch == LM_LLAMA) llama_model_free(&m->llama);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- LoRA */

void lm_lora_opts_default(const lm *m, lm_lora_opts *o) {
    memset(o, 0, sizeof *o);
    if (IS_GPT2(m)) {
        gpt2_lora_opts g;
        gpt2_lora_opts_default(&g);
        o->r = g.r, o->alpha = g.alpha, o->dropout = g.dropout;
    } else {
        llama_lora_opts l;
        llama_lora_opts_default(&l);
        o->r = l.r, o->alpha = l.alpha, o->dropout = l.dropout;
    }
}

int lm_lora_targets_check(const lm *m, const char *targets, lorac_err *err) {
    if (!targets || !targets[0]) return LORAC_OK;
    if (IS_GPT2(m)) {
        gpt2_lora_opts g;
        gpt2_lora_opts_default(&g);
        return gpt2_lora_targets_parse(targets, &g, err);
    }
    llama_lora_opts l;
    llama_lora_opts_default(&l);
    return llama_lora_targets_parse(targets, &l, err);
}

int lm_add_lora(lm *m, const lm_lora_opts *o, uint64_t seed, lorac_err *err) {
    int rc;
    if (IS_GPT2(m)) {
        gpt2_lora_opts g;
        gpt2_lora_opts_default(&g);
        if (o->targets[0] && (rc = gpt2_lora_targets_parse(o->targets, &g, err))) return rc;
        g.r = o->r, g.alpha = o->alpha, g.dropout = o->dropout, g.use_rslora = o->use_rslora;
        g.gaussian_init = o->gaussian_init;
        rc = gpt2_model_add_lora(&m->gpt2, &g, seed, err);
    } else {
        llama_lora_opts l;
        llama_lora_opts_default(&l);
        if (o->targets[0] && (rc = llama_lora_targets_parse(o->targets, &l, err))) return rc;
        l.r = o->r, l.alpha = o->alpha, l.dropout = o->dropout, l.use_rslora = o->use_rslora;
        l.gaussian_init = o->gaussian_init;
        rc = llama_model_add_lora(&m->llama, &l, seed, err);
    }
    if (!rc) m->training = 1;
    return rc;
}

int lm_attach_adapters(lm *m, const char *const *specs, int n, char *warn, size_t warn_size, lorac_err *err) {
    if (n < 1) return LORAC_OK;
    char dir[4096];
    float scale = 1.0f;
    int rc = peft_adapter_spec_parse(specs[0], dir, sizeof dir, &scale, err);
    if (rc) return rc;
    if (n == 1 && !strcmp(dir, specs[0])) { /* one adapter as it is: read straight into the model */
        if (IS_GPT2(m)) rc = gpt2_peft_load(&m->gpt2, dir, warn, warn_size, err);
        else if (llama_path_is_gguf(dir)) rc = llama_gguf_adapter_load(&m->llama, dir, err);
        else rc = llama_peft_load(&m->llama, dir, warn, warn_size, err);
    } else { /* Σ scale_i·ΔW_i as one adapter */
        for (int i = 0; i < n; i++)
            if (!peft_adapter_spec_parse(specs[i], dir, sizeof dir, &scale, err) && llama_path_is_gguf(dir))
                return lorac_fail(err, LORAC_EUNSUPPORTED, "--adapter %s: a GGUF adapter cannot be scaled or combined; "
                                  "give one --adapter FILE.gguf", specs[i]);
        peft_adapter *a = NULL;
        rc = peft_adapters_load_weighted(specs, n, &a, warn, warn_size, err);
        if (!rc) rc = IS_GPT2(m) ? gpt2_peft_attach(&m->gpt2, a, err) : llama_peft_attach(&m->llama, a, err);
        peft_adapter_free(a);
    }
    if (!rc) m->training = 1;
    return rc;
}

int lm_open(const char *path, const char *const *adapters, int n_adapters, int with_tokenizer, lm *m, char *warn,
            size_t warn_size, lorac_err *err) {
    int rc = load_model(path, m, err);
    if (rc) return rc;
    if ((rc = lm_attach_adapters(m, adapters, n_adapters, warn, warn_size, err)) ||
        (with_tokenizer && (rc = load_tokenizer(m, path, err))))
        lm_free(m);
    return rc;
}

int lm_has_lora(const lm *m) { return IS_GPT2(m) ? m->gpt2.has_lora : m->llama.has_lora; }

lora_registry *lm_registry(lm *m) { return IS_GPT2(m) ? &m->gpt2.reg : &m->llama.reg; }

int lm_train_mode(lm *m, int mode, lorac_err *err) {
    int rc = IS_GPT2(m) ? gpt2_model_train_mode(&m->gpt2, mode, err) : llama_model_train_mode(&m->llama, mode, err);
    if (!rc) m->training = mode;
    return rc;
}

int lm_is_training(const lm *m) { return m->training; }

void lm_zero_grad(lm *m) {
    if (IS_GPT2(m)) gpt2_model_zero_grad(&m->gpt2);
    else llama_model_zero_grad(&m->llama);
}

/* ---------------------------------------------------------------- forward / backward */

struct lm_acts {
    gpt2_acts *g;
    llama_acts *l;
};

int lm_acts_alloc(lm *m, int B, int T, lm_acts **out, lorac_err *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    int rc = IS_GPT2(m) ? gpt2_acts_alloc(&m->gpt2, B, T, &(*out)->g, err) : llama_acts_alloc(&m->llama, B, T, &(*out)->l, err);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

void lm_acts_free(lm_acts *a) {
    if (!a) return;
    gpt2_acts_free(a->g);
    llama_acts_free(a->l);
    free(a);
}

int lm_forward(lm *m, lm_acts *a, const int32_t *ids, const int32_t *targets, int B, int T, float label_smoothing,
               int for_backward, lorac_rng *rng, float *loss, int *count, lorac_err *err) {
    if (IS_GPT2(m))
        return gpt2_forward(&m->gpt2, a->g, ids, targets, B, T, label_smoothing, for_backward, rng, loss, count, err);
    return llama_forward(&m->llama, a->l, ids, targets, B, T, label_smoothing, for_backward, rng, loss, count, err);
}

int lm_backward(lm *m, lm_acts *a, lorac_err *err) {
    return IS_GPT2(m) ? gpt2_backward(&m->gpt2, a->g, err) : llama_backward(&m->llama, a->l, err);
}

const float *lm_acts_logits(const lm_acts *a) { return a->g ? gpt2_acts_logits(a->g) : llama_acts_logits(a->l); }

/* ---------------------------------------------------------------- text */

int lm_encode(const lm *m, const char *text, size_t len, int parse_special, int32_t **ids, size_t *n, lorac_err *err) {
    if (m->tok) return tok_encode(m->tok, text, len, 0, parse_special, ids, n, err);
    return parse_special ? bpe_encode_special(m->bpe, text, len, ids, n, err) : bpe_encode(m->bpe, text, len, ids, n, err);
}

int lm_decode(const lm *m, const int32_t *ids, size_t n, int skip_special, char **text, size_t *len, lorac_err *err) {
    if (m->tok) return tok_decode(m->tok, ids, n, skip_special, text, len, err);
    if (!skip_special) return bpe_decode(m->bpe, ids, n, text, len, err);
    int32_t *keep = malloc(n * sizeof *keep + 1);
    if (!keep) return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) { /* GPT-2's specials are spelled "<|...|>" */
        size_t tl = 0;
        const char *t = bpe_token_bytes(m->bpe, ids[i], &tl);
        int special = t && tl > 4 && !memcmp(t, "<|", 2) && !memcmp(t + tl - 2, "|>", 2);
        if (!special) keep[k++] = ids[i];
    }
    int rc = bpe_decode(m->bpe, keep, k, text, len, err);
    free(keep);
    return rc;
}

int lm_chat_format(const lm *m, const lm_chat_msg *msgs, int n, int add_generation_prompt, char **out, size_t *len,
                   lorac_err *err) {
    *out = NULL;
    *len = 0;
    if (!m->has_chat) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: the tokenizer has no chat template (ChatML)", m->path);
    int rc = tok_chat_format(m->tok, (const tok_chat_msg *)msgs, n, add_generation_prompt, out, err);
    if (!rc) *len = strlen(*out);
    return rc;
}

/* ---------------------------------------------------------------- saving */

int lm_save_adapter(lm *m, const char *path, lorac_err *err) {
    if (ends_with(path, ".gguf")) {
        if (IS_GPT2(m)) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: GGUF adapters are written for Llama-family models only", path);
        return llama_gguf_adapter_save(&m->llama, path, err);
    }
    return IS_GPT2(m) ? gpt2_peft_save(&m->gpt2, path, err) : llama_peft_save(&m->llama, path, err);
}

/* Tokenizer and generation files that travel with a model directory. */
static const char *carried[] = {"vocab.json", "merges.txt", "encoder.json", "vocab.bpe", "tokenizer.json",
                                "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"};

static int carry_files(const char *from, const char *to, lorac_err *err) {
    for (size_t i = 0; i < sizeof carried / sizeof carried[0]; i++) {
        char src[2200], dst[2200];
        snprintf(src, sizeof src, "%s/%s", from, carried[i]);
        char *data = NULL;
        size_t n = 0;
        lorac_err ignore;
        if (lorac_read_file(src, &data, &n, &ignore)) continue; /* absent: nothing to carry */
        snprintf(dst, sizeof dst, "%s/%s", to, carried[i]);
        int rc = lorac_write_file(dst, data, n, err);
        free(data);
        if (rc) return rc;
    }
    return LORAC_OK;
}

int lm_save_merged(lm *m, const char *path, int type, lorac_err *err) {
    int rc;
    if (!IS_GPT2(m) && ends_with(path, ".gguf")) {
        quant_type t = type >= 0 ? (quant_type)type : m->llama.w.layers[0].w[LLAMA_SITE_Q].type;
        return llama_merged_save_gguf(&m->llama, path, t, err);
    }
    if (ends_with(path, ".gguf")) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: GGUF output is for Llama-family models", path);
    if (!IS_GPT2(m)) {
        if ((rc = llama_merged_save_hf(&m->llama, path, err))) return rc;
        return llama_path_is_gguf(m->path) ? LORAC_OK : carry_files(m->path, path, err);
    }
    gpt2_weights w;
    gpt2_config mc;
    if ((rc = gpt2_weights_merged(&m->gpt2, &mc, &w, err))) return rc;
    lorac_outdir od;
    rc = lorac_outdir_open(&od, path, err);
    if (!rc) {
        rc = gpt2_weights_save_files(&mc, &w, od.tmp, err);
        if (!rc) rc = carry_files(m->path, od.tmp, err);
        if (!rc) rc = lorac_outdir_commit(&od, err);
        else lorac_outdir_abort(&od);
    }
    gpt2_weights_free(&w);
    return rc;
}
