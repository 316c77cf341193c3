/* tok.c — the generic tokenizer: its vocabulary table, splitting text at added tokens, and
 * dispatching each stretch between them to the byte-level BPE (bpe.c) or the SentencePiece-style
 * model (spm.c); decoding; getters. Loading is in tok_gguf.c and tok_hf.c, chat in tok_chat.c. */
#include <stdlib.h>
#include <string.h>

#include "tok/tok_internal.h"

static uint64_t hash_str(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

int tok_push(int32_t **ids, size_t *n, size_t *cap, int32_t id) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        int32_t *g = c > SIZE_MAX / 8 ? NULL : realloc(*ids, c * sizeof *g);
        if (!g) return -1;
        *ids = g;
        *cap = c;
    }
    (*ids)[(*n)++] = id;
    return 0;
}

int tok_set_vocab(tok *t, const char *src, const bpe_spelling *sp, int32_t n, const uint8_t *attr, lorac_err *err) {
    size_t total = 0, count = 0;
    for (int32_t i = 0; i < n; i++)
        if (sp[i].s) {
            count++;
            if (lorac_size_add(total, sp[i].len + 1, &total)) total = SIZE_MAX;
        }
    if (count == 0) return lorac_fail(err, LORAC_EFORMAT, "%s: the vocabulary is empty", src);
    if (total >= UINT32_MAX) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: tokens total more than 4 GiB", src);
    size_t cap = 16;
    while (cap < 2 * count) cap *= 2;
    t->n_vocab = n;
    t->mask = cap - 1;
    t->spell = malloc(total);
    t->spell_off = malloc((size_t)n * sizeof *t->spell_off);
    t->spell_len = malloc((size_t)n * sizeof *t->spell_len);
    t->attr = malloc((size_t)n);
    t->slots = malloc(cap * sizeof *t->slots);
    if (!t->spell || !t->spell_off || !t->spell_len || !t->attr || !t->slots)
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", src);
    memset(t->slots, 0xFF, cap * sizeof *t->slots);
    uint32_t used = 0;
    for (int32_t i = 0; i < n; i++) {
        t->spell_off[i] = UINT32_MAX;
        t->spell_len[i] = 0;
        t->attr[i] = TOK_ATTR_NONE;
        if (!sp[i].s) continue;
        memcpy(t->spell + used, sp[i].s, sp[i].len);
        t->spell[used + sp[i].len] = 0;
        t->spell_off[i] = used;
        t->spell_len[i] = (uint32_t)sp[i].len;
        t->attr[i] = attr ? attr[i] : TOK_ATTR_NORMAL;
        if (t->attr[i] == TOK_ATTR_NONE || t->attr[i] > TOK_ATTR_BYTE) t->attr[i] = TOK_ATTR_NORMAL;
        used += (uint32_t)sp[i].len + 1;
        size_t k = hash_str(sp[i].s, sp[i].len) & t->mask;
        for (; t->slots[k] >= 0; k = (k + 1) & t->mask) {
            int32_t o = t->slots[k];
            if (t->spell_len[o] == sp[i].len && !memcmp(t->spell + t->spell_off[o], sp[i].s, sp[i].len)) break;
        }
        if (t->slots[k] < 0) t->slots[k] = i;
    }
    return LORAC_OK;
}

int32_t tok_find_n(const tok *t, const char *s, size_t n) {
    if (!t || !s) return -1;
    for (size_t k = hash_str(s, n) & t->mask;; k = (k + 1) & t->mask) {
        int32_t id = t->slots[k];
        if (id < 0) return -1;
        if (t->spell_len[id] == n && !memcmp(t->spell + t->spell_off[id], s, n)) return id;
    }
}

static int is_added(uint8_t a) { return a == TOK_ATTR_CONTROL || a == TOK_ATTR_UNKNOWN || a == TOK_ATTR_USER; }

int tok_finish(tok *t, const char *src, lorac_err *err) {
    size_t k = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) k += is_added(t->attr[i]) && t->spell_len[i] > 0;
    if (!(t->added = malloc((k + 1) * sizeof *t->added))) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", src);
    k = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (!is_added(t->attr[i]) || t->spell_len[i] == 0) continue;
        size_t j = k++; /* insertion sort, longest first: the longest match at a position wins */
        for (; j > 0 && t->spell_len[t->added[j - 1]] < t->spell_len[i]; j--) t->added[j] = t->added[j - 1];
        t->added[j] = i;
        t->added_first[(uint8_t)t->spell[t->spell_off[i]]] = 1;
    }
    t->n_added = k;
    int32_t *ids[4] = {&t->bos, &t->eos, &t->unk, &t->pad};
    static const char *const names[4] = {"bos", "eos", "unknown", "padding"};
    for (int i = 0; i < 4; i++)
        if (*ids[i] >= t->n_vocab || (*ids[i] >= 0 && t->spell_off[*ids[i]] == UINT32_MAX))
            return lorac_fail(err, LORAC_EFORMAT, "%s: the %s token id %ld is not in the vocabulary of %ld tokens", src,
                              names[i], (long)*ids[i], (long)t->n_vocab);
    return LORAC_OK;
}

void tok_free_parts(tok *t) {
    free(t->spell);
    free(t->spell_off);
    free(t->spell_len);
    free(t->attr);
    free(t->slots);
    free(t->added);
    free(t->chat_template);
    bpe_free(t->bpe);
    spm_free(t->spm);
}

void tok_free(tok *t) {
    if (!t) return;
    tok_free_parts(t);
    free(t);
}

/* The added token that starts earliest in s[0..n) (the longest there): its id, or -1. */
static int32_t find_added(const tok *t, const uint8_t *s, size_t n, int parse_special, size_t *at) {
    if (!t->n_added) return -1;
    for (size_t p = 0; p < n; p++) {
        if (!t->added_first[s[p]]) continue;
        for (size_t k = 0; k < t->n_added; k++) {
            int32_t id = t->added[k];
            if (!parse_special && t->attr[id] != TOK_ATTR_USER) continue;
            size_t len = t->spell_len[id];
            if (len <= n - p && !memcmp(s + p, t->spell + t->spell_off[id], len)) {
                *at = p;
                return id;
            }
        }
    }
    return -1;
}

/* One stretch of plain text. */
static int encode_stretch(const tok *t, const uint8_t *s, size_t n, int at_start, int32_t **ids, size_t *nids,
                          size_t *cap, lorac_err *err) {
    if (t->kind == TOK_SPM) return spm_encode_append(t, s, n, at_start, ids, nids, cap, err);
    if (!t->add_prefix_space || s[0] == ' ') return bpe_encode_append(t->bpe, t->pre, s, n, ids, nids, cap, err);
    uint8_t *buf = malloc(n + 1); /* HF ByteLevel(add_prefix_space): " " + text */
    if (!buf) return lorac_fail(err, LORAC_ENOMEM, "tok_encode: out of memory");
    buf[0] = ' ';
    memcpy(buf + 1, s, n);
    int rc = bpe_encode_append(t->bpe, t->pre, buf, n + 1, ids, nids, cap, err);
    free(buf);
    return rc;
}

int tok_encode(const tok *t, const char *text, size_t len, int add_bos, int parse_special, int32_t **ids, size_t *n,
               lorac_err *err) {
    *ids = NULL;
    *n = 0;
    if (!t || (!text && len)) return lorac_fail(err, LORAC_EINVAL, "tok_encode: no tokenizer or text");
    int32_t *out = NULL;
    size_t nout = 0, cap = 0;
    int rc = LORAC_OK;
    if (add_bos && t->bos >= 0 && tok_push(&out, &nout, &cap, t->bos)) rc = LORAC_ENOMEM;
    const uint8_t *s = (const uint8_t *)text;
    size_t off = 0;
    while (!rc && off < len) {
        size_t at = len - off;
        int32_t special = find_added(t, s + off, len - off, parse_special, &at);
        if (at > 0) rc = encode_stretch(t, s + off, at, off == 0, &out, &nout, &cap, err);
        if (!rc && special >= 0 && tok_push(&out, &nout, &cap, special)) rc = LORAC_ENOMEM;
        off += at + (special >= 0 ? t->spell_len[special] : 0);
    }
    if (rc == LORAC_ENOMEM) lorac_fail(err, rc, "tok_encode: out of memory");
    if (rc) {
        free(out);
        return rc;
    }
    *ids = out;
    *n = nout;
    return LORAC_OK;
}

/* The bytes id decodes to, before SentencePiece's leading-space removal. byte: a <0xXX> token's
 * byte (else -1). */
static const char *token_text(const tok *t, int32_t id, size_t *len, int *byte) {
    *byte = -1;
    if (t->kind == TOK_GPT2_BPE) return bpe_token_bytes(t->bpe, id, len);
    *len = t->spell_len[id];
    const char *s = t->spell + t->spell_off[id];
    if (t->attr[id] == TOK_ATTR_BYTE && *len == 6 && !memcmp(s, "<0x", 3)) *byte = (int)strtol(s + 3, NULL, 16);
    return s;
}

int tok_decode(const tok *t, const int32_t *ids, size_t n, int skip_special, char **text, size_t *len, lorac_err *err) {
    *text = NULL;
    if (len) *len = 0;
    if (!t || (!ids && n)) return lorac_fail(err, LORAC_EINVAL, "tok_decode: no tokenizer or ids");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab || t->spell_off[ids[i]] == UINT32_MAX)
            return lorac_fail(err, LORAC_EINVAL, "tok_decode: id %ld (at %zu) is not in the vocabulary", (long)ids[i], i);
        if (lorac_size_add(total, t->spell_len[ids[i]] + 8, &total))
            return lorac_fail(err, LORAC_ENOMEM, "tok_decode: text too long");
    }
    char *out = malloc(total + 1);
    if (!out) return lorac_fail(err, LORAC_ENOMEM, "tok_decode: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip_special && tok_is_special(t, ids[i])) continue;
        size_t tl = 0;
        int byte;
        const char *s = token_text(t, ids[i], &tl, &byte);
        if (byte >= 0) {
            out[k++] = (char)byte;
        } else if (t->kind == TOK_SPM && t->attr[ids[i]] != TOK_ATTR_CONTROL && t->attr[ids[i]] != TOK_ATTR_USER) {
            for (size_t j = 0; j < tl; j++) { /* "▁" (E2 96 81) is a space; the result is never longer */
                if (j + 2 < tl && !memcmp(s + j, "\xE2\x96\x81", 3)) {
                    out[k++] = ' ';
                    j += 2;
                } else {
                    out[k++] = s[j];
                }
            }
        } else {
            memcpy(out + k, s, tl);
            k += tl;
        }
    }
    if (t->kind == TOK_SPM && t->spm && k > 0 && out[0] == ' ') { /* the space the encoder prepended */
        memmove(out, out + 1, k - 1);
        k--;
    }
    out[k] = 0;
    *text = out;
    if (len) *len = k;
    return LORAC_OK;
}

tok_kind tok_get_kind(const tok *t) { return t ? t->kind : TOK_GPT2_BPE; }
int tok_vocab_size(const tok *t) { return t ? t->n_vocab : 0; }
int tok_bos_id(const tok *t) { return t ? t->bos : -1; }
int tok_eos_id(const tok *t) { return t ? t->eos : -1; }
int tok_unk_id(const tok *t) { return t ? t->unk : -1; }
int tok_pad_id(const tok *t) { return t ? t->pad : -1; }
int tok_add_bos(const tok *t) { return t ? t->add_bos : 0; }
const char *tok_chat_template(const tok *t) { return t ? t->chat_template : NULL; }

int tok_is_special(const tok *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && (t->attr[id] == TOK_ATTR_CONTROL || t->attr[id] == TOK_ATTR_UNKNOWN);
}

const char *tok_piece(const tok *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab || t->spell_off[id] == UINT32_MAX) return NULL;
    return t->spell + t->spell_off[id];
}

int32_t tok_find(const tok *t, const char *piece) { return piece ? tok_find_n(t, piece, strlen(piece)) : -1; }
