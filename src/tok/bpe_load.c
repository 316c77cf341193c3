/* bpe_load.c — building a byte-level BPE's lookup tables from spellings and merges in memory
 * (bpe_build; tok_load uses it for GGUF and tokenizer.json), and reading GPT-2's vocab.json +
 * merges.txt into them (bpe_load).
 *
 * Tokens are stored as the bytes they stand for (the byte alphabet undone), so encoding works on
 * ids and bytes only: tok->byte_id[] gives each byte's token, the pair table gives each merge's
 * rank and result, and spans[] gives each id's bytes for decoding.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lorac/json.h"
#include "lorac/tokenizer.h"
#include "tok/tok_internal.h"

/* ---- GPT-2's byte alphabet (bytes_to_unicode in encoder.py) ---- */

/* The 68 bytes that are not printable (0x00..0x20, 0x7F..0xA0, 0xAD) are written as U+0100.. in
 * byte order; the others as themselves. */
uint32_t tok_byte_cp(uint8_t b) {
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return 256u + 33u + (b - 0x7Fu);
    if (b == 0xAD) return 256u + 67u;
    return b;
}

int tok_cp_byte(uint32_t cp) {
    if (cp < 256) return tok_byte_cp((uint8_t)cp) == cp ? (int)cp : -1;
    uint32_t k = cp - 256;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(0x7F + (k - 33));
    if (k == 67) return 0xAD;
    return -1;
}

/* Rewrites a token in the byte alphabet (UTF-8, s[0..n)) as its bytes in out (n bytes suffice).
 * Returns the byte count, or -1 (with *bad set to the offending code point) if a character is not
 * in the alphabet. */
static long alphabet_to_bytes(const char *s, size_t n, uint8_t *out, uint32_t *bad) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0, k = 0;
    while (i < n) {
        uint32_t cp;
        size_t len = tok_utf8_next(u + i, n - i, &cp);
        int b = tok_cp_byte(cp);
        if (b < 0) {
            *bad = cp;
            return -1;
        }
        out[k++] = (uint8_t)b;
        i += len;
    }
    return (long)k;
}

const char *tok_show(const char *s, size_t n, char buf[200]) {
    size_t k = 0;
    for (size_t i = 0; i < n && k < 190; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 40) {
            k += (size_t)snprintf(buf + k, 200 - k, "...");
            break;
        }
        if (c < 0x20 || c == 0x7F || c == '"' || c == '\\') k += (size_t)snprintf(buf + k, 200 - k, "\\x%02X", c);
        else buf[k++] = (char)c;
    }
    buf[k] = 0;
    return buf;
}

/* ---- hash tables ---- */

static uint64_t hash_bytes(const uint8_t *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t key) {
    key *= 0x9E3779B97F4A7C15ull;
    return key ^ (key >> 31);
}

int32_t bpe_lookup_bytes(const bpe_tokenizer *tok, const uint8_t *s, size_t n) {
    for (size_t i = hash_bytes(s, n) & tok->str_mask;; i = (i + 1) & tok->str_mask) {
        int32_t id = tok->str_slots[i];
        if (id < 0) return -1;
        const bpe_token_span *sp = &tok->spans[id];
        if (sp->len == n && memcmp(tok->bytes + sp->off, s, n) == 0) return id;
    }
}

const bpe_pair_slot *bpe_lookup_pair(const bpe_tokenizer *tok, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = hash_pair(key) & tok->pair_mask;; i = (i + 1) & tok->pair_mask) {
        const bpe_pair_slot *p = &tok->pair_slots[i];
        if (p->key == key) return p;
        if (p->key == BPE_EMPTY_KEY) return NULL;
    }
}

/* Smallest power of two >= 2*n (and >= 16), as a mask; 0 on overflow. */
static size_t table_mask(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) {
        if (cap > SIZE_MAX / 4) return 0;
        cap *= 2;
    }
    return cap - 1;
}

void bpe_free(bpe_tokenizer *tok) {
    if (!tok) return;
    free(tok->spans);
    free(tok->bytes);
    free(tok->str_slots);
    free(tok->pair_slots);
    free(tok->special_ids);
    free(tok);
}

/* ---- building ---- */

/* Fills the vocabulary tables: spans, bytes, str_slots, byte_id, special_ids. */
static int build_vocab(bpe_tokenizer *tok, const char *src, const bpe_spelling *vocab, int32_t nids, int all_bytes,
                       lorac_err *err) {
    char buf[200];
    size_t total = 0, n = 0;
    for (int32_t id = 0; id < nids; id++) {
        if (!vocab[id].s) continue;
        n++;
        if (lorac_size_add(total, vocab[id].len, &total)) total = SIZE_MAX; /* the bytes are never longer than the spelling */
    }
    if (n == 0) return lorac_fail(err, LORAC_EFORMAT, "%s: the vocabulary is empty", src);
    if (total >= UINT32_MAX) return lorac_fail(err, LORAC_EUNSUPPORTED, "%s: tokens total more than 4 GiB", src);
    tok->nids = nids;
    tok->str_mask = table_mask(n);
    size_t span_bytes, slot_bytes;
    if (!tok->str_mask || lorac_size_mul((size_t)nids, sizeof *tok->spans, &span_bytes) ||
        lorac_size_mul(tok->str_mask + 1, sizeof *tok->str_slots, &slot_bytes))
        return lorac_fail(err, LORAC_ENOMEM, "%s: vocabulary too large", src);
    tok->spans = malloc(span_bytes);
    tok->str_slots = malloc(slot_bytes);
    tok->bytes = malloc(total + 1);
    if (!tok->spans || !tok->str_slots || !tok->bytes) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", src);
    memset(tok->spans, 0xFF, span_bytes); /* off == UINT32_MAX: no token */
    memset(tok->str_slots, 0xFF, slot_bytes);
    uint32_t used = 0;
    for (int32_t id = 0; id < nids; id++) {
        const bpe_spelling *v = &vocab[id];
        if (!v->s) continue;
        uint32_t bad = 0;
        long len = (long)v->len;
        if (v->literal) memcpy(tok->bytes + used, v->s, v->len);
        else len = alphabet_to_bytes(v->s, v->len, tok->bytes + used, &bad);
        if (len < 0)
            return lorac_fail(err, LORAC_EFORMAT, "%s: token \"%s\" (id %ld) has U+%04X, which is not in GPT-2's byte alphabet",
                              src, tok_show(v->s, v->len, buf), (long)id, (unsigned)bad);
        if (len == 0) return lorac_fail(err, LORAC_EFORMAT, "%s: the empty string is not a token (id %ld)", src, (long)id);
        const uint8_t *s = tok->bytes + used;
        size_t slot = hash_bytes(s, (size_t)len) & tok->str_mask;
        for (; tok->str_slots[slot] >= 0; slot = (slot + 1) & tok->str_mask) {
            const bpe_token_span *sp = &tok->spans[tok->str_slots[slot]];
            if (sp->len == (uint32_t)len && memcmp(tok->bytes + sp->off, s, (size_t)len) == 0)
                return lorac_fail(err, LORAC_EFORMAT, "%s: token \"%s\" appears twice (ids %ld and %ld)", src,
                                  tok_show(v->s, v->len, buf), (long)tok->str_slots[slot], (long)id);
        }
        tok->str_slots[slot] = id;
        tok->spans[id].off = used;
        tok->spans[id].len = (uint32_t)len;
        used += (uint32_t)len;
    }
    for (int b = 0; b < 256; b++) {
        uint8_t byte = (uint8_t)b;
        tok->byte_id[b] = bpe_lookup_bytes(tok, &byte, 1);
        if (tok->byte_id[b] < 0 && all_bytes)
            return lorac_fail(err, LORAC_EFORMAT, "%s: no token for byte 0x%02X (a byte-level vocabulary has all 256)",
                              src, b);
    }
    /* special tokens: "<|...|>" without spaces; longest first, so the longest wins at a position */
    for (int pass = 0; pass < 2; pass++) {
        size_t k = 0;
        for (int32_t id = 0; id < tok->nids; id++) {
            const bpe_token_span *sp = &tok->spans[id];
            const uint8_t *s = tok->bytes + sp->off;
            if (sp->off == UINT32_MAX || sp->len < 5 || memcmp(s, "<|", 2) || memcmp(s + sp->len - 2, "|>", 2) ||
                memchr(s, ' ', sp->len))
                continue;
            if (pass == 1) {
                size_t j = k;
                for (; j > 0 && tok->spans[tok->special_ids[j - 1]].len < sp->len; j--)
                    tok->special_ids[j] = tok->special_ids[j - 1];
                tok->special_ids[j] = id;
            }
            k++;
        }
        tok->nspecial = k;
        if (pass == 0 && !(tok->special_ids = malloc(sizeof *tok->special_ids * (k + 1))))
            return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", src);
    }
    return LORAC_OK;
}

/* "SRC:LINE" or "SRC: merge N" for messages about merge i. */
static const char *merge_where(const char *src, const bpe_merge_in *m, size_t i, char buf[600]) {
    if (m->line) snprintf(buf, 600, "%.500s:%zu", src, m->line);
    else snprintf(buf, 600, "%.500s: merge %zu", src, i);
    return buf;
}

static int build_merges(bpe_tokenizer *tok, const char *src, const char *merges_src, const bpe_merge_in *merges,
                        size_t nmerges, lorac_err *err) {
    char buf[200], buf2[200], where[600];
    size_t slot_bytes, longest = 0;
    for (size_t i = 0; i < nmerges; i++)
        if (merges[i].alen + merges[i].blen > longest) longest = merges[i].alen + merges[i].blen;
    tok->pair_mask = table_mask(nmerges);
    uint8_t *scratch = malloc(longest + 1); /* a merge's parts as bytes, then their concatenation */
    if (!tok->pair_mask || lorac_size_mul(tok->pair_mask + 1, sizeof *tok->pair_slots, &slot_bytes) || !scratch ||
        !(tok->pair_slots = malloc(slot_bytes))) {
        free(scratch);
        return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", merges_src);
    }
    for (size_t i = 0; i <= tok->pair_mask; i++) tok->pair_slots[i].key = BPE_EMPTY_KEY;
    int rc = LORAC_OK;
    for (size_t m = 0; m < nmerges && !rc; m++) {
        const bpe_merge_in *mi = &merges[m];
        const char *part[2] = {mi->a, mi->b};
        size_t part_len[2] = {mi->alen, mi->blen};
        int32_t id[2];
        long blen[2];
        for (int k = 0; k < 2 && !rc; k++) {
            uint32_t bad = 0;
            blen[k] = alphabet_to_bytes(part[k], part_len[k], scratch + (k ? blen[0] : 0), &bad);
            if (blen[k] <= 0) {
                rc = blen[k] < 0 ? lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" has U+%04X, which is not in GPT-2's byte alphabet",
                                              merge_where(merges_src, mi, m, where), tok_show(part[k], part_len[k], buf),
                                              (unsigned)bad)
                                 : lorac_fail(err, LORAC_EFORMAT, "%s: a merge has an empty part",
                                              merge_where(merges_src, mi, m, where));
                break;
            }
            id[k] = bpe_lookup_bytes(tok, scratch + (k ? blen[0] : 0), (size_t)blen[k]);
            if (id[k] < 0)
                rc = lorac_fail(err, LORAC_EFORMAT, "%s: token \"%s\" is not in %s", merge_where(merges_src, mi, m, where),
                                tok_show(part[k], part_len[k], buf), src);
        }
        if (rc) break;
        int32_t merged = bpe_lookup_bytes(tok, scratch, (size_t)(blen[0] + blen[1]));
        if (merged < 0) {
            rc = lorac_fail(err, LORAC_EFORMAT, "%s: merging \"%s %s\" gives a token that is not in %s",
                            merge_where(merges_src, mi, m, where), tok_show(part[0], part_len[0], buf),
                            tok_show(part[1], part_len[1], buf2), src);
            break;
        }
        /* a repeated pair keeps its last rank, as encoder.py's dict(zip(merges, range(...))) does */
        uint64_t key = ((uint64_t)(uint32_t)id[0] << 32) | (uint32_t)id[1];
        size_t i = hash_pair(key) & tok->pair_mask;
        while (tok->pair_slots[i].key != BPE_EMPTY_KEY && tok->pair_slots[i].key != key) i = (i + 1) & tok->pair_mask;
        tok->pair_slots[i].key = key;
        tok->pair_slots[i].rank = (int32_t)tok->nmerges++;
        tok->pair_slots[i].merged = merged;
    }
    free(scratch);
    return rc;
}

int bpe_build(const char *src, const bpe_spelling *vocab, int32_t nids, int all_bytes, const char *merges_src,
              const bpe_merge_in *merges, size_t nmerges, bpe_tokenizer **out, lorac_err *err) {
    *out = NULL;
    if (nids <= 0 || nids > BPE_MAX_ID + 1)
        return lorac_fail(err, LORAC_EFORMAT, "%s: %ld tokens (expected 1..%d)", src, (long)nids, BPE_MAX_ID + 1);
    bpe_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", src);
    int rc = build_vocab(tok, src, vocab, nids, all_bytes, err);
    if (!rc) rc = build_merges(tok, src, merges_src, merges, nmerges, err);
    if (rc) {
        bpe_free(tok);
        return rc;
    }
    *out = tok;
    return LORAC_OK;
}

/* ---- GPT-2's files: vocab.json and merges.txt ---- */

/* The vocabulary as spellings indexed by id (pointing into doc). */
static int read_vocab_json(const char *path, json_doc **doc, bpe_spelling **vocab, int32_t *nids, lorac_err *err) {
    int rc = json_parse_file(path, doc, err);
    if (rc) return rc;
    const json_value *root = json_root(*doc);
    char buf[200];
    size_t n = json_len(root);
    long long maxid = -1;
    if (json_kind(root) != JSON_OBJECT || n == 0)
        return lorac_fail(err, LORAC_EFORMAT, "%s: expected a JSON object mapping tokens to ids", path);
    for (size_t i = 0; i < n; i++) {
        long long id;
        if (!json_int_exact(json_at(root, i), &id) || id < 0 || id > BPE_MAX_ID)
            return lorac_fail(err, LORAC_EFORMAT, "%s: token \"%s\" has an id that is not an integer in 0..%d", path,
                              tok_show(json_key_at(root, i), json_key_len_at(root, i), buf), BPE_MAX_ID);
        if (id > maxid) maxid = id;
    }
    *nids = (int32_t)maxid + 1;
    if (!(*vocab = calloc((size_t)*nids, sizeof **vocab))) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        long long id;
        json_int_exact(json_at(root, i), &id);
        bpe_spelling *v = &(*vocab)[id];
        if (v->s)
            return lorac_fail(err, LORAC_EFORMAT, "%s: id %lld is given to two tokens (\"%s\" and another)", path, id,
                              tok_show(json_key_at(root, i), json_key_len_at(root, i), buf));
        v->s = json_key_at(root, i);
        v->len = json_key_len_at(root, i);
    }
    return LORAC_OK;
}

/* merges.txt's lines as merges (pointing into text). */
static int read_merges_txt(const char *path, const char *text, size_t len, bpe_merge_in **merges, size_t *nmerges,
                           lorac_err *err) {
    char buf[200];
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if (!(*merges = malloc(lines * sizeof **merges))) return lorac_fail(err, LORAC_ENOMEM, "%s: out of memory", path);
    size_t line = 0, k = 0;
    for (size_t pos = 0; pos < len;) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl != NULL);
        line++;
        if (n > 0 && s[n - 1] == '\r') n--;
        if (n >= 8 && memcmp(s, "#version", 8) == 0) continue;
        const char *sp = memchr(s, ' ', n);
        if (!sp || sp == s || sp == s + n - 1 || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)))
            return lorac_fail(err, LORAC_EFORMAT, "%s:%zu: expected two tokens separated by one space, got \"%s\"", path,
                              line, tok_show(s, n, buf));
        (*merges)[k++] = (bpe_merge_in){s, sp + 1, (size_t)(sp - s), n - (size_t)(sp + 1 - s), line};
    }
    *nmerges = k;
    return LORAC_OK;
}

int bpe_load(const char *vocab_path, const char *merges_path, bpe_tokenizer **out, lorac_err *err) {
    *out = NULL;
    json_doc *doc = NULL;
    bpe_spelling *vocab = NULL;
    bpe_merge_in *merges = NULL;
    char *text = NULL;
    size_t len = 0, nmerges = 0;
    int32_t nids = 0;
    int rc = read_vocab_json(vocab_path, &doc, &vocab, &nids, err);
    if (!rc) rc = lorac_read_file(merges_path, &text, &len, err);
    if (!rc) rc = read_merges_txt(merges_path, text, len, &merges, &nmerges, err);
    if (!rc) rc = bpe_build(vocab_path, vocab, nids, 1, merges_path, merges, nmerges, out, err);
    free(merges);
    free(text);
    free(vocab);
    json_free(doc);
    return rc;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int bpe_load_dir(const char *dir, bpe_tokenizer **out, lorac_err *err) {
    static const char *const names[2][2] = {{"vocab.json", "merges.txt"}, {"encoder.json", "vocab.bpe"}};
    char vocab[4096], merges[4096];
    *out = NULL;
    for (int k = 0; k < 2; k++) {
        int nv = snprintf(vocab, sizeof vocab, "%s/%s", dir, names[k][0]);
        int nm = snprintf(merges, sizeof merges, "%s/%s", dir, names[k][1]);
        if (nv < 0 || nm < 0 || (size_t)nv >= sizeof vocab || (size_t)nm >= sizeof merges)
            return lorac_fail(err, LORAC_EINVAL, "%s: path too long", dir);
        if (!is_file(vocab)) continue;
        if (!is_file(merges))
            return lorac_fail(err, LORAC_ENOTFOUND, "%s: missing (needed beside %s)", merges, names[k][0]);
        return bpe_load(vocab, merges, out, err);
    }
    return lorac_fail(err, LORAC_ENOTFOUND, "%s: has neither vocab.json + merges.txt nor encoder.json + vocab.bpe",
                      dir);
}
