/* tok_save.c — any tokenizer lorac reads, written as Hugging Face files (tokenizer.json and
 * tokenizer_config.json), so that a model directory made from a GGUF (`lorac merge`) carries its
 * tokenizer for lorac and transformers alike. Each setting is written in the spelling tok_hf.c reads
 * back: byte-level BPE with its pre-tokenizer (GPT-2's, SmolLM's digits, Llama 3's or Qwen2's Split),
 * SentencePiece-style BPE with byte fallback (a GGUF's scores become ranked merges, as transformers
 * converts them), special tokens as added_tokens, bos/eos/pad, add_bos_token and the chat template. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/json.h"
#include "tok/tok_internal.h"

#define SPM_SPACE "\xE2\x96\x81" /* "▁" */

static void key_str(json_writer *w, const char *k, const char *v) {
    jw_key(w, k);
    if (v) jw_string(w, v);
    else jw_null(w);
}

static void key_bool(json_writer *w, const char *k, int v) {
    jw_key(w, k);
    jw_bool(w, v);
}

static void piece(json_writer *w, const tok *t, int32_t id) {
    jw_string_n(w, t->spell + t->spell_off[id], t->spell_len[id]);
}

static int is_added(const tok *t, int32_t id) {
    return t->attr[id] == TOK_ATTR_CONTROL || t->attr[id] == TOK_ATTR_USER || t->attr[id] == TOK_ATTR_UNKNOWN;
}

static void added_tokens(json_writer *w, const tok *t) {
    jw_key(w, "added_tokens");
    jw_array_begin(w);
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (t->spell_off[i] == UINT32_MAX || !is_added(t, i)) continue;
        jw_object_begin(w);
        jw_key_int(w, "id", i);
        jw_key(w, "content");
        piece(w, t, i);
        key_bool(w, "single_word", 0);
        key_bool(w, "lstrip", 0);
        key_bool(w, "rstrip", 0);
        key_bool(w, "normalized", 0);
        key_bool(w, "special", t->attr[i] != TOK_ATTR_USER);
        jw_object_end(w);
    }
    jw_array_end(w);
}

static void byte_level(json_writer *w, int add_prefix_space, int use_regex) {
    jw_object_begin(w);
    key_str(w, "type", "ByteLevel");
    key_bool(w, "add_prefix_space", add_prefix_space);
    key_bool(w, "trim_offsets", 1);
    key_bool(w, "use_regex", use_regex);
    jw_object_end(w);
}

/* normalizer and pre_tokenizer. */
static void pre_tokenizer(json_writer *w, const tok *t) {
    if (t->kind == TOK_SPM) {
        int prepend = spm_get_parts(t).prepend;
        jw_key(w, "normalizer");
        if (prepend == SPM_PREPEND_ALWAYS || prepend == SPM_PREPEND_NONE) { /* the legacy normalizer */
            jw_object_begin(w);
            key_str(w, "type", "Sequence");
            jw_key(w, "normalizers");
            jw_array_begin(w);
            if (prepend == SPM_PREPEND_ALWAYS) {
                jw_object_begin(w);
                key_str(w, "type", "Prepend");
                key_str(w, "prepend", SPM_SPACE);
                jw_object_end(w);
            }
            jw_object_begin(w);
            key_str(w, "type", "Replace");
            jw_key(w, "pattern");
            jw_object_begin(w);
            key_str(w, "String", " ");
            jw_object_end(w);
            key_str(w, "content", SPM_SPACE);
            jw_object_end(w);
            jw_array_end(w);
            jw_object_end(w);
            jw_key(w, "pre_tokenizer");
            jw_null(w);
        } else {
            jw_null(w);
            jw_key(w, "pre_tokenizer");
            jw_object_begin(w);
            key_str(w, "type", "Metaspace");
            key_str(w, "replacement", SPM_SPACE);
            key_str(w, "prepend_scheme", prepend == SPM_PREPEND_META_FIRST ? "first" : "always");
            key_bool(w, "split", 0);
            jw_object_end(w);
        }
        return;
    }
    key_str(w, "normalizer", NULL);
    jw_key(w, "pre_tokenizer");
    if (t->pre == PRETOK_GPT2) {
        byte_level(w, t->add_prefix_space, 1);
        return;
    }
    jw_object_begin(w);
    key_str(w, "type", "Sequence");
    jw_key(w, "pretokenizers");
    jw_array_begin(w);
    jw_object_begin(w);
    if (t->pre == PRETOK_SMOLLM) {
        key_str(w, "type", "Digits");
        key_bool(w, "individual_digits", 1);
    } else {
        key_str(w, "type", "Split");
        jw_key(w, "pattern");
        jw_object_begin(w);
        key_str(w, "Regex", tok_hf_split_pattern(t->pre == PRETOK_QWEN2 ? 1 : 3));
        jw_object_end(w);
        key_str(w, "behavior", "Isolated");
        key_bool(w, "invert", 0);
    }
    jw_object_end(w);
    byte_level(w, t->add_prefix_space, t->pre == PRETOK_SMOLLM);
    jw_array_end(w);
    jw_object_end(w);
}

static void post_processor(json_writer *w, const tok *t) {
    jw_key(w, "post_processor");
    if (!(t->add_bos && t->bos >= 0)) {
        jw_null(w);
        return;
    }
    jw_object_begin(w); /* "<bos> $A" (pairs: "<bos> $A <bos> $B", as transformers writes Llama's) */
    key_str(w, "type", "TemplateProcessing");
    for (int pair = 0; pair < 2; pair++) {
        jw_key(w, pair ? "pair" : "single");
        jw_array_begin(w);
        for (int k = 0; k <= pair; k++) {
            jw_object_begin(w);
            jw_key(w, "SpecialToken");
            jw_object_begin(w);
            jw_key(w, "id");
            piece(w, t, t->bos);
            jw_key_int(w, "type_id", k);
            jw_object_end(w);
            jw_object_end(w);
            jw_object_begin(w);
            jw_key(w, "Sequence");
            jw_object_begin(w);
            key_str(w, "id", k ? "B" : "A");
            jw_key_int(w, "type_id", k);
            jw_object_end(w);
            jw_object_end(w);
        }
        jw_array_end(w);
    }
    jw_key(w, "special_tokens");
    jw_object_begin(w);
    jw_key(w, tok_piece(t, t->bos));
    jw_object_begin(w);
    jw_key(w, "id");
    piece(w, t, t->bos);
    jw_key(w, "ids");
    jw_array_begin(w);
    jw_int(w, t->bos);
    jw_array_end(w);
    jw_key(w, "tokens");
    jw_array_begin(w);
    piece(w, t, t->bos);
    jw_array_end(w);
    jw_object_end(w);
    jw_object_end(w);
    jw_object_end(w);
}

static void decoder(json_writer *w, const tok *t) {
    jw_key(w, "decoder");
    if (t->kind == TOK_GPT2_BPE) {
        byte_level(w, 1, 1);
        return;
    }
    int prepend = spm_get_parts(t).prepend;
    jw_object_begin(w); /* "▁" back to " ", <0xXX> to bytes, the prepended space dropped */
    key_str(w, "type", "Sequence");
    jw_key(w, "decoders");
    jw_array_begin(w);
    jw_object_begin(w);
    key_str(w, "type", "Replace");
    jw_key(w, "pattern");
    jw_object_begin(w);
    key_str(w, "String", SPM_SPACE);
    jw_object_end(w);
    key_str(w, "content", " ");
    jw_object_end(w);
    jw_object_begin(w);
    key_str(w, "type", "ByteFallback");
    jw_object_end(w);
    jw_object_begin(w);
    key_str(w, "type", "Fuse");
    jw_object_end(w);
    if (prepend != SPM_PREPEND_NONE) {
        jw_object_begin(w);
        key_str(w, "type", "Strip");
        key_str(w, "content", " ");
        jw_key_int(w, "start", 1);
        jw_key_int(w, "stop", 0);
        jw_object_end(w);
    }
    jw_array_end(w);
    jw_object_end(w);
}

/* A pair table (byte-level BPE, or SentencePiece-style from merges) as its pairs in rank order; ranks
 * are below nranks, and a rank with no pair (a repeated merge dropped at load) leaves no hole. */
static int table_merges(const bpe_pair_slot *slots, size_t mask, size_t nranks, int32_t (**out)[2], size_t *n,
                        lorac_err *err) {
    *out = malloc((nranks ? nranks : 1) * sizeof **out);
    if (!*out) return lorac_fail(err, LORAC_ENOMEM, "tokenizer merges: out of memory");
    for (size_t i = 0; i < nranks; i++) (*out)[i][0] = -1;
    for (size_t i = 0; i <= mask; i++)
        if (slots[i].key != BPE_EMPTY_KEY && slots[i].rank >= 0 && (size_t)slots[i].rank < nranks)
            (*out)[slots[i].rank][0] = (int32_t)(slots[i].key >> 32), (*out)[slots[i].rank][1] = (int32_t)(uint32_t)slots[i].key;
    size_t k = 0;
    for (size_t i = 0; i < nranks; i++)
        if ((*out)[i][0] >= 0) (*out)[k][0] = (*out)[i][0], (*out)[k++][1] = (*out)[i][1];
    *n = k;
    return LORAC_OK;
}

typedef struct scored_merge {
    float score;                  /* the merged piece's: higher first */
    int32_t merged, left, right;  /* then by these ids: transformers' SentencePieceExtractor order */
} scored_merge;

static int scored_cmp(const void *pa, const void *pb) {
    const scored_merge *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->merged != b->merged) return a->merged < b->merged ? -1 : 1;
    if (a->left != b->left) return a->left < b->left ? -1 : 1;
    return (a->right > b->right) - (a->right < b->right);
}

/* A GGUF's SentencePiece scores as merges: every split of a NORMAL piece into two NORMAL pieces, ranked
 * by the piece's score, as transformers converts a SentencePiece model. */
static int scored_merges(const tok *t, const float *scores, int32_t (**out)[2], size_t *n, lorac_err *err) {
    size_t cap = 0, k = 0;
    for (int32_t v = 0; v < t->n_vocab; v++)
        if (t->attr[v] == TOK_ATTR_NORMAL && t->spell_off[v] != UINT32_MAX) cap += t->spell_len[v];
    scored_merge *r = malloc((cap ? cap : 1) * sizeof *r);
    *out = malloc((cap ? cap : 1) * sizeof **out);
    if (!r || !*out) {
        free(r), free(*out), *out = NULL;
        return lorac_fail(err, LORAC_ENOMEM, "tokenizer merges: out of memory");
    }
    for (int32_t v = 0; v < t->n_vocab; v++) {
        if (t->attr[v] != TOK_ATTR_NORMAL || t->spell_off[v] == UINT32_MAX) continue;
        const char *s = t->spell + t->spell_off[v];
        for (uint32_t c = 1; c < t->spell_len[v]; c++) {
            if (((uint8_t)s[c] & 0xC0) == 0x80) continue; /* split between characters only */
            int32_t a = tok_find_n(t, s, c), b = tok_find_n(t, s + c, t->spell_len[v] - c);
            if (a >= 0 && b >= 0 && t->attr[a] == TOK_ATTR_NORMAL && t->attr[b] == TOK_ATTR_NORMAL)
                r[k++] = (scored_merge){scores[v], v, a, b};
        }
    }
    qsort(r, k, sizeof *r, scored_cmp);
    for (size_t i = 0; i < k; i++) (*out)[i][0] = r[i].left, (*out)[i][1] = r[i].right;
    *n = k;
    free(r);
    return LORAC_OK;
}

static int merge_list(const tok *t, int32_t (**out)[2], size_t *n, lorac_err *err) {
    if (t->kind != TOK_SPM) return table_merges(t->bpe->pair_slots, t->bpe->pair_mask, t->bpe->nmerges, out, n, err);
    spm_parts sp = spm_get_parts(t);
    return sp.scores ? scored_merges(t, sp.scores, out, n, err) : table_merges(sp.pairs, sp.pair_mask, sp.pair_mask + 1, out, n, err);
}

static void model_json(json_writer *w, const tok *t, const int32_t (*merges)[2], size_t nmerges) {
    jw_key(w, "model");
    jw_object_begin(w);
    key_str(w, "type", "BPE");
    key_str(w, "dropout", NULL);
    key_str(w, "unk_token", t->unk >= 0 ? tok_piece(t, t->unk) : NULL);
    key_str(w, "continuing_subword_prefix", NULL);
    key_str(w, "end_of_word_suffix", NULL);
    if (t->kind == TOK_SPM) {
        spm_parts sp = spm_get_parts(t);
        key_bool(w, "fuse_unk", sp.fuse_unk);
        key_bool(w, "byte_fallback", sp.byte_fallback);
        key_bool(w, "ignore_merges", 0);
    } else {
        key_bool(w, "fuse_unk", 0);
        key_bool(w, "byte_fallback", 0);
        key_bool(w, "ignore_merges", t->bpe->ignore_merges);
    }
    jw_key(w, "vocab");
    jw_object_begin(w);
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (t->spell_off[i] == UINT32_MAX) continue;
        jw_key(w, tok_piece(t, i)); /* spellings hold no NUL: GGUF strings and JSON keys are C strings here */
        jw_int(w, i);
    }
    jw_object_end(w);
    jw_key(w, "merges");
    jw_array_begin(w);
    for (size_t i = 0; i < nmerges; i++) {
        jw_array_begin(w);
        piece(w, t, merges[i][0]);
        piece(w, t, merges[i][1]);
        jw_array_end(w);
    }
    jw_array_end(w);
    jw_object_end(w);
}

static int write_tokenizer_json(const tok *t, const char *path, lorac_err *err) {
    int32_t (*merges)[2] = NULL;
    size_t nmerges = 0;
    int rc = merge_list(t, &merges, &nmerges, err);
    if (rc) return rc;
    json_writer w;
    lorac_out o;
    rc = jw_file_open(&w, &o, path, err);
    if (!rc) {
        jw_object_begin(&w);
        key_str(&w, "version", "1.0");
        key_str(&w, "truncation", NULL);
        key_str(&w, "padding", NULL);
        added_tokens(&w, t);
        pre_tokenizer(&w, t);
        post_processor(&w, t);
        decoder(&w, t);
        model_json(&w, t, (const int32_t(*)[2])merges, nmerges);
        jw_object_end(&w);
        rc = jw_file_commit(&w, &o, rc, path, err);
    }
    free(merges);
    return rc;
}

static int write_config(const tok *t, const char *path, lorac_err *err) {
    json_writer w;
    lorac_out o;
    int rc = jw_file_open(&w, &o, path, err);
    if (rc) return rc;
    jw_object_begin(&w);
    key_str(&w, "tokenizer_class", "PreTrainedTokenizerFast");
    key_bool(&w, "add_bos_token", t->add_bos);
    key_bool(&w, "add_eos_token", 0);
    key_str(&w, "bos_token", t->bos >= 0 ? tok_piece(t, t->bos) : NULL);
    key_str(&w, "eos_token", t->eos >= 0 ? tok_piece(t, t->eos) : NULL);
    key_str(&w, "unk_token", t->unk >= 0 ? tok_piece(t, t->unk) : NULL);
    key_str(&w, "pad_token", t->pad >= 0 ? tok_piece(t, t->pad) : NULL);
    key_bool(&w, "clean_up_tokenization_spaces", 0);
    if (t->chat_template) key_str(&w, "chat_template", t->chat_template);
    jw_object_end(&w);
    return jw_file_commit(&w, &o, rc, path, err);
}

int tok_save_hf(const tok *t, const char *dir, lorac_err *err) {
    char p[4200];
    if (!t || !dir) return lorac_fail(err, LORAC_EINVAL, "tok_save_hf: no tokenizer or directory");
    if ((size_t)snprintf(p, sizeof p, "%s/tokenizer.json", dir) >= sizeof p)
        return lorac_fail(err, LORAC_EINVAL, "%s: path too long", dir);
    int rc = write_tokenizer_json(t, p, err);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    return rc ? rc : write_config(t, p, err);
}
