/* tok_hf.c — a tokenizer from Hugging Face files: tokenizer.json (model.type "BPE", byte-level or
 * SentencePiece-style), GPT-2's vocab.json + merges.txt, tokenizer_config.json beside them; and
 * tok_load, which tells those and GGUF apart. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lorac/json.h"
#include "tok/tok_internal.h"

/* The patterns of the Split pre-tokenizers lorac implements (tokenizer.json spelling). */
static const char LLAMA3_RE[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_RE[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const char *tok_hf_split_pattern(int max_digits) { return max_digits == 1 ? QWEN2_RE : LLAMA3_RE; }

static int is_type(const json_value *v, const char *type) {
    const char *s = json_get_str(v, "type", NULL, NULL);
    return s && !strcmp(s, type);
}

/* A pre-tokenizer list: the Sequence's members, or the single one. */
static size_t members(const json_value *v, const char *key, const json_value **out, size_t max) {
    if (!v || json_kind(v) == JSON_NULL) return 0;
    const json_value *seq = is_type(v, "Sequence") ? json_get(v, key) : NULL;
    if (!seq) {
        out[0] = v;
        return 1;
    }
    size_t n = json_len(seq);
    for (size_t i = 0; i < n && i < max; i++) out[i] = json_at(seq, i);
    return n;
}

/* Byte-level pre-tokenizers: sets t->pre and add_prefix_space, or fails naming what is there. */
static int parse_byte_level(tok *t, const char *path, const json_value *root, lorac_err *err) {
    const json_value *m[4];
    size_t n = members(json_get(root, "pre_tokenizer"), "pretokenizers", m, 4);
    const json_value *norm = json_get(root, "normalizer");
    if (norm && json_kind(norm) != JSON_NULL)
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: normalizer %s is not supported with a byte-level BPE", path,
                          json_get_str(norm, "type", "?", NULL));
    const json_value *bl = n ? m[n - 1] : NULL;
    int ok = bl && is_type(bl, "ByteLevel");
    if (ok) t->add_prefix_space = json_get_bool(bl, "add_prefix_space", 0, NULL);
    if (ok && n == 1) {
        t->pre = PRETOK_GPT2;
        ok = json_get_bool(bl, "use_regex", 1, NULL);
    } else if (ok && n == 2 && is_type(m[0], "Digits")) {
        t->pre = PRETOK_SMOLLM;
        ok = json_get_bool(m[0], "individual_digits", 0, NULL) && json_get_bool(bl, "use_regex", 1, NULL);
    } else if (ok && n == 2 && is_type(m[0], "Split")) {
        const char *re = json_get_str(json_get(m[0], "pattern"), "Regex", NULL, NULL);
        const char *beh = json_get_str(m[0], "behavior", "", NULL);
        t->pre = re && !strcmp(re, QWEN2_RE) ? PRETOK_QWEN2 : PRETOK_LLAMA3;
        ok = re && (!strcmp(re, LLAMA3_RE) || !strcmp(re, QWEN2_RE)) && !strcmp(beh, "Isolated") &&
             !json_get_bool(m[0], "invert", 0, NULL) && !json_get_bool(bl, "use_regex", 1, NULL);
    } else {
        ok = 0;
    }
    if (!ok)
        return lorac_fail(err, LORAC_EUNSUPPORTED,
                          "%s: pre_tokenizer is not one lorac implements (ByteLevel, Digits+ByteLevel, or Llama 3's/Qwen2's Split+ByteLevel)",
                          path);
    return LORAC_OK;
}

/* SentencePiece-style normalizer / Metaspace: the prepend mode, or fails. */
static int parse_spm(const char *path, const json_value *root, int *prepend, lorac_err *err) {
    const json_value *m[4];
    size_t n = members(json_get(root, "normalizer"), "normalizers", m, 4);
    int have_replace = 0, have_prepend = 0, bad = n > 2;
    for (size_t i = 0; i < n && i < 4; i++) {
        if (is_type(m[i], "Prepend")) have_prepend = !strcmp(json_get_str(m[i], "prepend", "", NULL), "\xE2\x96\x81");
        else if (is_type(m[i], "Replace"))
            have_replace = !strcmp(json_get_str(json_get(m[i], "pattern"), "String", "", NULL), " ") &&
                           !strcmp(json_get_str(m[i], "content", "", NULL), "\xE2\x96\x81");
        else bad = 1;
    }
    const json_value *pre = json_get(root, "pre_tokenizer");
    if (pre && json_kind(pre) != JSON_NULL) {
        const char *scheme = json_get_str(pre, "prepend_scheme", "always", NULL);
        bad |= n > 0 || !is_type(pre, "Metaspace") || json_get_bool(pre, "split", 1, NULL) ||
               strcmp(json_get_str(pre, "replacement", "", NULL), "\xE2\x96\x81");
        *prepend = !strcmp(scheme, "first") ? SPM_PREPEND_META_FIRST
                   : !strcmp(scheme, "never") ? SPM_PREPEND_NONE : SPM_PREPEND_META_ALWAYS;
    } else {
        bad |= !have_replace;
        *prepend = have_prepend ? SPM_PREPEND_ALWAYS : SPM_PREPEND_NONE;
    }
    if (bad)
        return lorac_fail(err, LORAC_EUNSUPPORTED,
                          "%s: a byte-fallback BPE needs normalizer Prepend(\"\xE2\x96\x81\")+Replace(\" \", \"\xE2\x96\x81\") or a Metaspace pre_tokenizer without split",
                          path);
    return LORAC_OK;
}

/* One merge: "a b" or ["a", "b"]. */
static int merge_parts(const json_value *v, const char **a, size_t *al, const char **b, size_t *bl) {
    if (json_kind(v) == JSON_ARRAY && json_len(v) == 2 && json_str(json_at(v, 0)) && json_str(json_at(v, 1))) {
        *a = json_str(json_at(v, 0));
        *al = json_str_len(json_at(v, 0));
        *b = json_str(json_at(v, 1));
        *bl = json_str_len(json_at(v, 1));
        return *al && *bl;
    }
    const char *s = json_str(v);
    size_t n = json_str_len(v);
    const char *sp = s && n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
    if (!sp || sp == s + n - 1) return 0;
    *a = s;
    *al = (size_t)(sp - s);
    *b = sp + 1;
    *bl = n - *al - 1;
    return 1;
}

/* "bos_token": "<s>" or {"content": "<s>", ...} in tokenizer_config.json. */
static int32_t config_token(const tok *t, const json_value *cfg, const char *key) {
    const json_value *v = json_get(cfg, key);
    const char *s = json_kind(v) == JSON_OBJECT ? json_get_str(v, "content", NULL, NULL) : json_str(v);
    return s ? tok_find(t, s) : -1;
}

static int32_t first_found(const tok *t, const char *const *names) {
    for (; *names; names++) {
        int32_t id = tok_find(t, *names);
        if (id >= 0) return id;
    }
    return -1;
}

/* bos/eos/pad, add_bos and the chat template from post_processor, tokenizer_config.json (cfg may
 * be NULL) and well-known names. */
static int special_ids(tok *t, const json_value *root, const json_value *cfg, lorac_err *err) {
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>", NULL};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", NULL};
    const json_value *m[4];
    size_t n = members(json_get(root, "post_processor"), "processors", m, 4);
    for (size_t i = 0; i < n && i < 4; i++) {
        const json_value *first = json_at(json_get(m[i], "single"), 0);
        const char *name = json_get_str(json_get(first, "SpecialToken"), "id", NULL, NULL);
        if (is_type(m[i], "TemplateProcessing") && name && tok_find(t, name) >= 0) {
            t->add_bos = 1;
            t->bos = tok_find(t, name);
        }
    }
    if (t->bos < 0) t->bos = config_token(t, cfg, "bos_token");
    if (t->bos < 0) t->bos = first_found(t, bos_names);
    t->eos = config_token(t, cfg, "eos_token");
    if (t->eos < 0) t->eos = first_found(t, eos_names);
    t->pad = config_token(t, cfg, "pad_token");
    t->add_bos = json_get_bool(cfg, "add_bos_token", t->add_bos, NULL);
    const json_value *ct = json_get(cfg, "chat_template");
    if (json_kind(ct) == JSON_ARRAY) /* [{"name": "default", "template": "..."}, ...] */
        for (size_t i = 0; i < json_len(ct); i++)
            if (!strcmp(json_get_str(json_at(ct, i), "name", "", NULL), "default")) ct = json_get(json_at(ct, i), "template");
    if (json_str(ct)) return tok_set_chat_template(t, json_str(ct), json_str_len(ct), err);
    return LORAC_OK;
}

static int load_json(tok *t, const char *path, const json_value *root, const json_value *cfg, lorac_err *err) {
    const json_value *model = json_get(root, "model"), *added = json_get(root, "added_tokens");
    const json_value *vocab = json_get(model, "vocab"), *merges = json_get(model, "merges");
    char buf[200];
    if (json_kind(root) != JSON_OBJECT || !is_type(model, "BPE"))
        return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: model.type is \"%s\"; lorac reads \"BPE\"", path,
                          json_get_str(model, "type", "(none)", NULL));
    if (json_kind(vocab) != JSON_OBJECT || json_kind(merges) != JSON_ARRAY)
        return lorac_fail(err, LORAC_EFORMAT, "%s: model.vocab must be an object and model.merges an array", path);
    static const char *const unsupported[] = {"dropout", "continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 3; i++) {
        const json_value *v = json_get(model, unsupported[i]);
        if (v && json_kind(v) != JSON_NULL && !(json_str(v) && !json_str_len(v)))
            return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: model.%s is set; lorac does not support it", path, unsupported[i]);
    }
    long long maxid = -1, id;
    size_t nv = json_len(vocab), na = json_len(added);
    for (size_t i = 0; i < nv + na; i++) {
        const json_value *v = i < nv ? json_at(vocab, i) : json_get(json_at(added, i - nv), "id");
        if (!json_int_exact(v, &id) || id < 0 || id > BPE_MAX_ID || (i >= nv && !json_str(json_get(json_at(added, i - nv), "content"))))
            return lorac_fail(err, LORAC_EFORMAT, "%s: %s %zu has no id in 0..%d (or no content)", path,
                              i < nv ? "model.vocab entry" : "added_tokens entry", i < nv ? i : i - nv, BPE_MAX_ID);
        if (id > maxid) maxid = id;
    }
    int32_t n = (int32_t)maxid + 1;
    bpe_spelling *sp = calloc((size_t)n + 1, sizeof *sp);
    uint8_t *attr = calloc((size_t)n + 1, 1);
    bpe_merge_in *mi = malloc((json_len(merges) + 1) * sizeof *mi);
    int32_t(*pairs)[2] = malloc((json_len(merges) + 1) * sizeof *pairs);
    int rc = LORAC_OK;
    if (!sp || !attr || !mi || !pairs) {
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < nv && !rc; i++) {
        json_int_exact(json_at(vocab, i), &id);
        if (sp[id].s)
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: model.vocab gives id %lld to two tokens (\"%s\" and another)", path, id,
                            tok_show(json_key_at(vocab, i), json_key_len_at(vocab, i), buf));
        sp[id] = (bpe_spelling){json_key_at(vocab, i), json_key_len_at(vocab, i), 0};
        attr[id] = TOK_ATTR_NORMAL;
    }
    for (size_t i = 0; i < na && !rc; i++) {
        const json_value *a = json_at(added, i), *c = json_get(a, "content");
        json_int_exact(json_get(a, "id"), &id);
        sp[id] = (bpe_spelling){json_str(c), json_str_len(c), 1};
        attr[id] = json_get_bool(a, "special", 0, NULL) ? TOK_ATTR_CONTROL : TOK_ATTR_USER;
    }
    if (rc) goto done;
    const json_value *pre = json_get(root, "pre_tokenizer");
    const json_value *m[4];
    size_t npre = members(pre, "pretokenizers", m, 4);
    t->kind = npre && is_type(m[npre - 1], "ByteLevel") ? TOK_GPT2_BPE : TOK_SPM;
    int byte_fallback = json_get_bool(model, "byte_fallback", 0, NULL), prepend = 0;
    if (t->kind == TOK_SPM)
        for (int32_t i = 0; i < n; i++)
            if (attr[i] == TOK_ATTR_NORMAL && sp[i].len == 6 && !memcmp(sp[i].s, "<0x", 3) && sp[i].s[5] == '>')
                attr[i] = TOK_ATTR_BYTE;
    const char *unk = json_get_str(model, "unk_token", NULL, NULL);
    rc = tok_set_vocab(t, path, sp, n, attr, err);
    if (!rc && unk) t->unk = tok_find(t, unk);
    if (!rc) rc = t->kind == TOK_GPT2_BPE ? parse_byte_level(t, path, root, err) : parse_spm(path, root, &prepend, err);
    size_t nm = json_len(merges);
    for (size_t i = 0; i < nm && !rc; i++) {
        bpe_merge_in *q = &mi[i];
        q->line = 0;
        if (!merge_parts(json_at(merges, i), &q->a, &q->alen, &q->b, &q->blen)) {
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: model.merges[%zu] is not \"a b\" or [\"a\", \"b\"]", path, i);
            break;
        }
        if (t->kind == TOK_GPT2_BPE) continue;
        pairs[i][0] = tok_find_n(t, q->a, q->alen);
        pairs[i][1] = tok_find_n(t, q->b, q->blen);
        if (pairs[i][0] < 0 || pairs[i][1] < 0)
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: model.merges[%zu]: token \"%s\" is not in the vocabulary", path, i,
                            pairs[i][0] < 0 ? tok_show(q->a, q->alen, buf) : tok_show(q->b, q->blen, buf));
    }
    char msrc[600];
    snprintf(msrc, sizeof msrc, "%.500s: model.merges", path);
    if (!rc && t->kind == TOK_GPT2_BPE) rc = bpe_build(path, sp, n, 0, msrc, mi, nm, &t->bpe, err);
    if (!rc && t->kind == TOK_GPT2_BPE) t->bpe->ignore_merges = json_get_bool(model, "ignore_merges", 0, NULL);
    if (!rc && t->kind == TOK_SPM)
        rc = spm_build(t, msrc, NULL, (const int32_t(*)[2])pairs, nm, byte_fallback, json_get_bool(model, "fuse_unk", 0, NULL),
                       prepend, &t->spm, err);
    if (!rc) rc = special_ids(t, root, cfg, err);
done:
    free(sp);
    free(attr);
    free(mi);
    free(pairs);
    return rc;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* tokenizer_config.json beside path (in dir, or in path's directory when dir is NULL); NULL doc
 * when absent. */
static int read_config(const char *dir, const char *path, json_doc **cfg, lorac_err *err) {
    char p[4096];
    if (dir) snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    else {
        const char *slash = strrchr(path, '/');
        snprintf(p, sizeof p, "%.*s%stokenizer_config.json", slash ? (int)(slash - path) : 0, path, slash ? "/" : "");
    }
    *cfg = NULL;
    return is_file(p) ? json_parse_file(p, cfg, err) : LORAC_OK;
}

/* GPT-2's vocab.json + merges.txt (t->bpe loaded): spellings rebuilt from the byte tables,
 * "<|...|>" tokens special. */
static int wrap_gpt2(tok *t, const char *dir, lorac_err *err) {
    int rc = LORAC_OK;
    const bpe_tokenizer *b = t->bpe;
    int32_t n = b->nids;
    bpe_spelling *sp = calloc((size_t)n, sizeof *sp);
    uint8_t *attr = calloc((size_t)n, 1);
    char *text = NULL;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++)
        if (b->spans[i].off != UINT32_MAX) total += 2 * (size_t)b->spans[i].len; /* each byte is 1-2 UTF-8 bytes */
    text = malloc(total + 1);
    if (!sp || !attr || !text) {
        rc = lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", dir);
        goto done;
    }
    size_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        if (b->spans[i].off == UINT32_MAX) continue;
        sp[i].s = text + k;
        for (uint32_t j = 0; j < b->spans[i].len; j++) {
            uint32_t cp = tok_byte_cp(b->bytes[b->spans[i].off + j]);
            if (cp < 0x80) text[k++] = (char)cp;
            else {
                text[k++] = (char)(0xC0 | (cp >> 6));
                text[k++] = (char)(0x80 | (cp & 0x3F));
            }
        }
        sp[i].len = (size_t)(text + k - sp[i].s);
        attr[i] = TOK_ATTR_NORMAL;
    }
    for (size_t i = 0; i < b->nspecial; i++) attr[b->special_ids[i]] = TOK_ATTR_CONTROL;
    t->kind = TOK_GPT2_BPE;
    t->pre = PRETOK_GPT2;
    rc = tok_set_vocab(t, dir, sp, n, attr, err);
    t->bos = t->eos = tok_find(t, "<|endoftext|>");
done:
    free(sp);
    free(attr);
    free(text);
    return rc;
}

static int load_path(tok *t, const char *path, lorac_err *err) {
    struct stat st;
    if (stat(path, &st) != 0) return lorac_fail(err, LORAC_ENOTFOUND, "%s: no such file or directory", path);
    char p[4096];
    json_doc *doc = NULL, *cfg = NULL;
    int rc, isdir = S_ISDIR(st.st_mode);
    if (isdir && (size_t)snprintf(p, sizeof p, "%s/tokenizer.json", path) >= sizeof p)
        return lorac_fail(err, LORAC_EINVAL, "%s: path too long", path);
    if (isdir && !is_file(p)) {
        rc = bpe_load_dir(path, &t->bpe, err);
        if (!rc) rc = wrap_gpt2(t, path, err);
        if (!rc) rc = read_config(path, NULL, &cfg, err);
        if (!rc && cfg) rc = special_ids(t, json_root(cfg), json_root(cfg), err);
    } else {
        const char *file = isdir ? p : path;
        if (gguf_is_file(file)) {
            gguf_file g;
            if ((rc = gguf_open(file, &g, err))) return rc;
            tok *gt = NULL;
            rc = tok_load_gguf(&g, file, &gt, err);
            gguf_close(&g);
            if (!rc) {
                *t = *gt; /* move */
                free(gt);
            }
            return rc;
        }
        rc = json_parse_file(file, &doc, err);
        if (!rc) rc = read_config(isdir ? path : NULL, file, &cfg, err);
        if (!rc) rc = load_json(t, file, json_root(doc), cfg ? json_root(cfg) : NULL, err);
    }
    if (!rc) rc = tok_finish(t, path, err);
    json_free(doc);
    json_free(cfg);
    return rc;
}

int tok_load(const char *path, tok **out, lorac_err *err) {
    *out = NULL;
    if (!path) return lorac_fail(err, LORAC_EINVAL, "tok_load: no path");
    tok *t = calloc(1, sizeof *t);
    if (!t) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    t->bos = t->eos = t->unk = t->pad = -1;
    int rc = load_path(t, path, err);
    if (rc) {
        tok_free(t);
        return rc;
    }
    *out = t;
    return LORAC_OK;
}

int tok_load_gpt2_files(const char *vocab_path, const char *merges_path, tok **out, lorac_err *err) {
    *out = NULL;
    tok *t = calloc(1, sizeof *t);
    if (!t) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", vocab_path);
    t->bos = t->eos = t->unk = t->pad = -1;
    int rc = bpe_load(vocab_path, merges_path, &t->bpe, err);
    if (!rc) rc = wrap_gpt2(t, vocab_path, err);
    if (!rc) rc = tok_finish(t, vocab_path, err);
    if (rc) {
        tok_free(t);
        return rc;
    }
    *out = t;
    return LORAC_OK;
}
