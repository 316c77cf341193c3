/* tok_gguf.c — a tokenizer from a GGUF file's tokenizer.ggml.* metadata (llama.cpp's keys):
 * model ("gpt2" or "llama"), tokens, token_type, merges (gpt2), scores (llama), pre, bos/eos/unk/
 * padding/eot token ids, add_bos_token, add_space_prefix, and tokenizer.chat_template. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

/* tokenizer.ggml.pre -> pre-tokenizer; -1 when lorac does not know it. */
static int pretok_from_name(const char *s, size_t n) {
    static const struct { const char *name; int pre; } names[] = {
        {"default", PRETOK_GPT2}, {"gpt2", PRETOK_GPT2},         {"gpt-2", PRETOK_GPT2},
        {"smollm", PRETOK_SMOLLM}, {"starcoder", PRETOK_SMOLLM}, {"refact", PRETOK_SMOLLM},
        {"codeshell", PRETOK_SMOLLM}, {"llama3", PRETOK_LLAMA3}, {"llama-bpe", PRETOK_LLAMA3},
        {"llama-v3", PRETOK_LLAMA3}, {"qwen2", PRETOK_QWEN2},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == n && !memcmp(names[i].name, s, n)) return names[i].pre;
    return -1;
}

/* An optional token id key: -1 when absent; an error when present but outside the vocabulary is
 * left to tok_finish. */
static int get_id(const gguf_file *g, const char *key, int32_t *id, lorac_err *err) {
    int64_t v = -1;
    const gguf_kv *kv = gguf_find_key(g, key);
    if (!kv) return LORAC_OK;
    if (kv->type == GGUF_ARR || kv->type == GGUF_STR || kv->type == GGUF_F32 || kv->type == GGUF_F64)
        return lorac_fail(err, LORAC_EFORMAT, "%s: %s is a %s, expected an integer", g->path, key,
                          gguf_vtype_name(kv->type));
    v = gguf_kv_int(kv);
    *id = v < 0 || v > INT32_MAX ? INT32_MAX : (int32_t)v; /* out of range: reported by tok_finish */
    return LORAC_OK;
}

static int load_gpt2(tok *t, const gguf_file *g, const char *path, const bpe_spelling *sp, const uint8_t *attr,
                     int32_t n, lorac_err *err) {
    const gguf_kv *merges = NULL;
    const char *pre = NULL;
    size_t pre_len = 0;
    int rc = gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_REQUIRED, GGUF_STR, &merges, err);
    if (!rc) rc = gguf_get_str(g, "tokenizer.ggml.pre", GGUF_OPTIONAL, &pre, &pre_len, err);
    if (rc) return rc;
    int p = pre ? pretok_from_name(pre, pre_len) : PRETOK_GPT2;
    char buf[200];
    if (p < 0)
        return lorac_fail(err, LORAC_EUNSUPPORTED,
                          "%s: tokenizer.ggml.pre is \"%s\"; lorac knows gpt2/default, smollm/starcoder, llama3/llama-bpe, qwen2",
                          path, tok_show(pre, pre_len, buf));
    t->pre = (tok_pretok)p;
    bpe_spelling *bsp = malloc((size_t)n * sizeof *bsp);
    size_t nm = (size_t)gguf_arr_len(merges);
    bpe_merge_in *mi = malloc((nm ? nm : 1) * sizeof *mi);
    if (!bsp || !mi) {
        free(bsp);
        free(mi);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    }
    for (int32_t i = 0; i < n; i++) {
        bsp[i] = sp[i];
        /* special and user-defined tokens are spelled as their text, not in the byte alphabet */
        bsp[i].literal = attr[i] == TOK_ATTR_CONTROL || attr[i] == TOK_ATTR_USER || attr[i] == TOK_ATTR_UNKNOWN;
    }
    for (size_t i = 0; i < nm && !rc; i++) {
        size_t len;
        const char *s = gguf_arr_str(merges, i, &len);
        const char *space = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL; /* as llama.cpp: the first space after byte 0 */
        if (!space || space == s + len - 1) {
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: tokenizer.ggml.merges[%zu] is \"%s\", expected two tokens separated by a space",
                            path, i, tok_show(s, len, buf));
            break;
        }
        mi[i] = (bpe_merge_in){s, space + 1, (size_t)(space - s), len - (size_t)(space + 1 - s), 0};
    }
    char msrc[600];
    snprintf(msrc, sizeof msrc, "%.500s: tokenizer.ggml.merges", path);
    if (!rc) rc = bpe_build(path, bsp, n, 0, msrc, mi, nm, &t->bpe, err);
    free(bsp);
    free(mi);
    if (!rc) t->bpe->ignore_merges = t->pre == PRETOK_LLAMA3; /* llama.cpp and HF do so for Llama 3 */
    return rc;
}

static int load_llama(tok *t, const gguf_file *g, const char *path, lorac_err *err) {
    const gguf_kv *scores = NULL;
    int space = 1;
    int rc = gguf_get_arr(g, "tokenizer.ggml.scores", GGUF_REQUIRED, GGUF_VTYPE_LIMIT, &scores, err);
    if (!rc) rc = gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", GGUF_OPTIONAL, &space, err);
    if (rc) return rc;
    if (scores->arr_type != GGUF_F32 && scores->arr_type != GGUF_F64)
        return lorac_fail(err, LORAC_EFORMAT, "%s: tokenizer.ggml.scores holds %s, expected f32", path,
                          gguf_vtype_name(scores->arr_type));
    if (gguf_arr_len(scores) != (uint64_t)t->n_vocab)
        return lorac_fail(err, LORAC_EFORMAT, "%s: tokenizer.ggml.scores has %llu entries but there are %ld tokens", path,
                          (unsigned long long)gguf_arr_len(scores), (long)t->n_vocab);
    float *sc = malloc((size_t)t->n_vocab * sizeof *sc);
    if (!sc) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    for (int32_t i = 0; i < t->n_vocab; i++) sc[i] = (float)gguf_arr_float(scores, (uint64_t)i);
    rc = spm_build(t, path, sc, NULL, 0, 1, 0, space ? SPM_PREPEND_ALWAYS : SPM_PREPEND_NONE, &t->spm, err);
    free(sc);
    return rc;
}

static int load(tok *t, const gguf_file *g, const char *path, lorac_err *err) {
    const char *model = NULL, *tmpl = NULL;
    size_t model_len = 0, tmpl_len = 0;
    const gguf_kv *tokens = NULL, *types = NULL;
    int rc = gguf_get_str(g, "tokenizer.ggml.model", GGUF_REQUIRED, &model, &model_len, err);
    if (!rc) rc = gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_REQUIRED, GGUF_STR, &tokens, err);
    if (!rc) rc = gguf_get_arr(g, "tokenizer.ggml.token_type", GGUF_OPTIONAL, GGUF_VTYPE_LIMIT, &types, err);
    if (!rc) rc = gguf_get_str(g, "tokenizer.chat_template", GGUF_OPTIONAL, &tmpl, &tmpl_len, err);
    if (rc) return rc;
    char buf[200];
    if (model_len == 4 && !memcmp(model, "gpt2", 4)) t->kind = TOK_GPT2_BPE;
    else if (model_len == 5 && !memcmp(model, "llama", 5)) t->kind = TOK_SPM;
    else
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: tokenizer.ggml.model is \"%s\"; lorac reads \"gpt2\" and \"llama\"",
                          path, tok_show(model, model_len, buf));
    uint64_t n = gguf_arr_len(tokens);
    if (n == 0 || n > BPE_MAX_ID + 1)
        return lorac_fail(err, LORAC_EFORMAT, "%s: tokenizer.ggml.tokens has %llu entries (expected 1..%d)", path,
                          (unsigned long long)n, BPE_MAX_ID + 1);
    if (types && (gguf_arr_len(types) != n || types->arr_type == GGUF_STR || types->arr_type == GGUF_F32 ||
                  types->arr_type == GGUF_F64 || types->arr_type == GGUF_ARR))
        return lorac_fail(err, LORAC_EFORMAT, "%s: tokenizer.ggml.token_type has %llu %s entries, expected %llu integers",
                          path, (unsigned long long)gguf_arr_len(types), gguf_vtype_name(types->arr_type),
                          (unsigned long long)n);
    bpe_spelling *sp = malloc((size_t)n * sizeof *sp);
    uint8_t *attr = malloc((size_t)n);
    if (!sp || !attr) {
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (uint64_t i = 0; i < n; i++) {
        sp[i].s = gguf_arr_str(tokens, i, &sp[i].len);
        sp[i].literal = 0;
        int64_t ty = types ? gguf_arr_int(types, i) : TOK_ATTR_NORMAL;
        attr[i] = ty >= TOK_ATTR_NORMAL && ty <= TOK_ATTR_BYTE ? (uint8_t)ty : TOK_ATTR_NORMAL;
    }
    rc = tok_set_vocab(t, path, sp, (int32_t)n, attr, err);
    if (!rc) rc = get_id(g, "tokenizer.ggml.bos_token_id", &t->bos, err);
    if (!rc) rc = get_id(g, "tokenizer.ggml.eos_token_id", &t->eos, err);
    if (!rc) rc = get_id(g, "tokenizer.ggml.unknown_token_id", &t->unk, err);
    if (!rc) rc = get_id(g, "tokenizer.ggml.padding_token_id", &t->pad, err);
    if (!rc && t->kind == TOK_SPM && t->unk < 0) t->unk = tok_find(t, "<unk>");
    t->add_bos = t->kind == TOK_SPM;
    if (!rc) rc = gguf_get_bool(g, "tokenizer.ggml.add_bos_token", GGUF_OPTIONAL, &t->add_bos, err);
    if (!rc) rc = t->kind == TOK_GPT2_BPE ? load_gpt2(t, g, path, sp, attr, (int32_t)n, err) : load_llama(t, g, path, err);
    if (!rc && tmpl) rc = tok_set_chat_template(t, tmpl, tmpl_len, err);
    int32_t eot = -1;
    if (!rc) rc = get_id(g, "tokenizer.ggml.eot_token_id", &eot, err);
    if (!rc && eot >= 0) t->eos = eot;
    if (!rc) rc = tok_finish(t, path, err);
done:
    free(sp);
    free(attr);
    return rc;
}

int tok_load_gguf(const gguf_file *g, const char *path_for_errors, tok **out, lorac_err *err) {
    *out = NULL;
    const char *path = path_for_errors ? path_for_errors : g->path;
    tok *t = calloc(1, sizeof *t);
    if (!t) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    t->bos = t->eos = t->unk = t->pad = -1;
    int rc = load(t, g, path, err);
    if (rc) {
        tok_free(t);
        return rc;
    }
    *out = t;
    return LORAC_OK;
}
