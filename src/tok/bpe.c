/* bpe.c — GPT-2 byte-level BPE: encode (pre-tokenize, then merge each piece) and decode.
 *
 * Merging one piece follows encoder.py's bpe(): take the adjacent pair with the lowest merge rank,
 * merge ALL its occurrences left to right (non-overlapping), repeat until no pair has a rank.
 * Done naively that is quadratic in the piece's length; here a min-heap of candidate pairs keyed
 * by (rank, position) makes it O(n log n). Entries go stale when a neighbour merges; they are
 * checked against the current symbols when popped. All occurrences of the lowest rank are popped
 * together before any is merged: a merge can create a pair of even lower rank (possible with a
 * hand-made merges list, never with a trained one), and encoder.py only looks for it after the
 * whole pass, so it must wait.
 *
 * Everything mutable lives in a per-call workspace, so one tokenizer serves many threads.
 * bpe_encode_append serves tok_encode with the other pre-tokenizers (SmolLM2's digit split, Llama 3,
 * Qwen2), HF's ignore_merges, and vocabularies that lack some bytes' tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "lorac/tokenizer.h"
#include "tok/tok_internal.h"

typedef struct heap_entry {
    int32_t rank, pos, left, right, merged;
} heap_entry;

typedef struct bpe_work {
    int32_t *out; /* result ids */
    size_t n, cap;
    int32_t *lists; /* sym, prev, next: wcap each */
    int32_t *sym, *prev, *next; /* the piece's symbols as a linked list; sym[i] < 0: merged away */
    size_t wcap;
    heap_entry *heap, *batch;
    size_t hn, hcap, bcap;
} bpe_work;

static void work_free(bpe_work *w) {
    free(w->lists);
    free(w->heap);
    free(w->batch);
}

/* buf (of *cap elements of size elem) grown to hold at least need, updating *cap; NULL when out of
 * memory (buf is then unchanged). */
static void *grow(void *buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap && buf) return buf;
    size_t c = *cap ? *cap : 64, bytes;
    while (c < need) {
        if (c > SIZE_MAX / 2) return NULL;
        c *= 2;
    }
    if (lorac_size_mul(c, elem, &bytes)) return NULL;
    void *p = realloc(buf, bytes);
    if (p) *cap = c;
    return p;
}

static int emit(bpe_work *w, int32_t id) {
    if (w->n == w->cap) {
        int32_t *g = grow(w->out, &w->cap, w->n + 1, sizeof *w->out);
        if (!g) return -1;
        w->out = g;
    }
    w->out[w->n++] = id;
    return 0;
}

static int heap_less(const heap_entry *a, const heap_entry *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_work *w, heap_entry e) { /* capacity reserved by the caller */
    size_t i = w->hn++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(&e, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = e;
}

static heap_entry heap_pop(bpe_work *w) {
    heap_entry top = w->heap[0], last = w->heap[--w->hn];
    size_t i = 0, n = w->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(&w->heap[c + 1], &w->heap[c])) c++;
        if (!heap_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* Queues the pair starting at symbol p, if it has a rank. */
static void push_pair(bpe_work *w, const bpe_tokenizer *tok, int32_t p) {
    if (p < 0) return;
    int32_t q = w->next[p];
    if (q < 0 || w->sym[p] < 0 || w->sym[q] < 0) return; /* a byte without a token never merges */
    const bpe_pair_slot *s = bpe_lookup_pair(tok, w->sym[p], w->sym[q]);
    if (s) heap_push(w, (heap_entry){s->rank, p, w->sym[p], w->sym[q], s->merged});
}

static int still_valid(const bpe_work *w, const heap_entry *e) {
    int32_t q = w->next[e->pos];
    return w->sym[e->pos] == e->left && q >= 0 && w->sym[q] == e->right;
}

/* BPE of one pre-token s[0..n), n >= 1; appends its ids to w->out. */
static int merge_piece(bpe_work *w, const bpe_tokenizer *tok, const uint8_t *s, size_t n) {
    if (n == 1) return tok->byte_id[s[0]] < 0 ? 0 : emit(w, tok->byte_id[s[0]]);
    if (tok->ignore_merges) { /* HF's ignore_merges: a pre-token that is a token stays whole */
        int32_t id = bpe_lookup_bytes(tok, s, n);
        if (id >= 0) return emit(w, id);
    }
    if (n > w->wcap) {
        size_t cap = 0, lists_n;
        int32_t *g = lorac_size_mul(n, 3, &lists_n) ? NULL : grow(w->lists, &cap, lists_n, sizeof *w->lists);
        if (!g) return -1;
        w->lists = g;
        w->wcap = cap / 3;
        w->sym = w->lists;
        w->prev = w->lists + w->wcap;
        w->next = w->lists + 2 * w->wcap;
    }
    /* n-1 initial pairs and at most 2 per merge, with at most n-1 merges */
    heap_entry *h = grow(w->heap, &w->hcap, 3 * n, sizeof *w->heap);
    if (!h) return -1;
    w->heap = h;
    if (!(h = grow(w->batch, &w->bcap, 3 * n, sizeof *w->batch))) return -1;
    w->batch = h;
    for (size_t i = 0; i < n; i++) {
        w->sym[i] = tok->byte_id[s[i]];
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->hn = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(w, tok, (int32_t)i);
    while (w->hn) {
        heap_entry e = heap_pop(w);
        if (!still_valid(w, &e)) continue;
        /* all queued occurrences of this rank, in position order */
        size_t nb = 0;
        w->batch[nb++] = e;
        while (w->hn && w->heap[0].rank == e.rank) w->batch[nb++] = heap_pop(w);
        for (size_t k = 0; k < nb; k++) {
            const heap_entry *b = &w->batch[k];
            if (!still_valid(w, b)) continue; /* its left symbol was eaten by the previous merge */
            int32_t p = b->pos, q = w->next[p], r = w->next[q];
            w->sym[p] = b->merged;
            w->sym[q] = -1;
            w->next[p] = r;
            if (r >= 0) w->prev[r] = p;
            push_pair(w, tok, w->prev[p]);
            push_pair(w, tok, p);
        }
    }
    for (int32_t i = 0; i >= 0; i = w->next[i])
        if (w->sym[i] >= 0 && emit(w, w->sym[i])) return -1;
    return 0;
}

/* Merges s[0..n) split by the pre-tokenizer next(). */
static int merge_pieces(bpe_work *w, const bpe_tokenizer *tok, tok_pretok pre, const uint8_t *s, size_t n,
                        lorac_err *err) {
    size_t pos = 0;
    while (pos < n) {
        size_t end = pre == PRETOK_LLAMA3 ? pretok_llama3_next(s, n, pos, 3)
                     : pre == PRETOK_QWEN2 ? pretok_llama3_next(s, n, pos, 1)
                                           : pretok_gpt2_next(s, n, pos);
        if (end - pos > (size_t)INT32_MAX / 4)
            return lorac_fail(err, LORAC_EUNSUPPORTED, "bpe_encode: a piece of %zu bytes without a break is too long",
                              end - pos);
        if (merge_piece(w, tok, s + pos, end - pos)) return lorac_fail(err, LORAC_ENOMEM, "bpe_encode: out of memory");
        pos = end;
    }
    return LORAC_OK;
}

/* Pre-tokenizes and merges s[0..n). SmolLM's pre-tokenizer first isolates every \p{N} character
 * (HF's Digits(individual_digits)), then applies GPT-2's regex to each stretch between them. */
static int encode_segment(bpe_work *w, const bpe_tokenizer *tok, tok_pretok pre, const uint8_t *s, size_t n,
                          lorac_err *err) {
    if (pre != PRETOK_SMOLLM) return merge_pieces(w, tok, pre, s, n, err);
    size_t pos = 0;
    while (pos < n) {
        size_t end = pos, len = 0;
        while (end < n) { /* the stretch without numbers */
            uint32_t cp;
            len = tok_utf8_next(s + end, n - end, &cp);
            if (tok_class_of(cp) == TOK_NUMBER) break;
            end += len;
        }
        int rc = merge_pieces(w, tok, PRETOK_GPT2, s + pos, end - pos, err);
        if (rc) return rc;
        if (end < n && merge_piece(w, tok, s + end, len)) return lorac_fail(err, LORAC_ENOMEM, "bpe_encode: out of memory");
        pos = end < n ? end + len : n;
    }
    return LORAC_OK;
}

int bpe_encode_append(const bpe_tokenizer *tok, tok_pretok pre, const uint8_t *s, size_t n, int32_t **ids,
                      size_t *n_ids, size_t *cap, lorac_err *err) {
    bpe_work w = {.out = *ids, .n = *n_ids, .cap = *cap};
    int rc = encode_segment(&w, tok, pre, s, n, err);
    work_free(&w);
    *ids = w.out;
    *n_ids = w.n;
    *cap = w.cap;
    return rc;
}

/* The special token that starts earliest in s[0..n) (the longest at that position): its id, or -1.
 * *at gets its offset and *len its length. */
static int32_t find_special(const bpe_tokenizer *tok, const uint8_t *s, size_t n, size_t *at, size_t *len) {
    for (const uint8_t *p = s; (p = memchr(p, '<', n - (size_t)(p - s))) != NULL; p++) {
        size_t left = n - (size_t)(p - s);
        for (size_t k = 0; k < tok->nspecial; k++) {
            const bpe_token_span *sp = &tok->spans[tok->special_ids[k]];
            if (sp->len <= left && memcmp(p, tok->bytes + sp->off, sp->len) == 0) {
                *at = (size_t)(p - s);
                *len = sp->len;
                return tok->special_ids[k];
            }
        }
    }
    return -1;
}

static int encode(const bpe_tokenizer *tok, const char *text, size_t len, int specials, int32_t **ids, size_t *n,
                  lorac_err *err) {
    *ids = NULL;
    *n = 0;
    if (!tok || (!text && len)) return lorac_fail(err, LORAC_EINVAL, "bpe_encode: no tokenizer or text");
    bpe_work w = {0};
    const uint8_t *s = (const uint8_t *)text;
    int rc = LORAC_OK;
    while (len > 0 && !rc) {
        size_t at = len, slen = 0;
        int32_t special = specials ? find_special(tok, s, len, &at, &slen) : -1;
        rc = encode_segment(&w, tok, PRETOK_GPT2, s, at, err);
        if (!rc && special >= 0 && emit(&w, special)) rc = lorac_fail(err, LORAC_ENOMEM, "bpe_encode: out of memory");
        s += at + slen;
        len -= at + slen;
    }
    work_free(&w);
    if (rc) {
        free(w.out);
        return rc;
    }
    *ids = w.out;
    *n = w.n;
    return LORAC_OK;
}

int bpe_encode(const bpe_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n, lorac_err *err) {
    return encode(tok, text, len, 0, ids, n, err);
}

int bpe_encode_special(const bpe_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n,
                       lorac_err *err) {
    return encode(tok, text, len, 1, ids, n, err);
}

int bpe_decode(const bpe_tokenizer *tok, const int32_t *ids, size_t n, char **text, size_t *len, lorac_err *err) {
    *text = NULL;
    if (len) *len = 0;
    if (!tok || (!ids && n)) return lorac_fail(err, LORAC_EINVAL, "bpe_decode: no tokenizer or ids");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t tl;
        if (!bpe_token_bytes(tok, ids[i], &tl))
            return lorac_fail(err, LORAC_EINVAL, "bpe_decode: id %ld (at %zu) is not in the vocabulary", (long)ids[i], i);
        if (lorac_size_add(total, tl, &total)) return lorac_fail(err, LORAC_ENOMEM, "bpe_decode: text too long");
    }
    char *out = malloc(total + 1);
    if (!out) return lorac_fail(err, LORAC_ENOMEM, "bpe_decode: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const bpe_token_span *sp = &tok->spans[ids[i]];
        memcpy(out + k, tok->bytes + sp->off, sp->len);
        k += sp->len;
    }
    out[k] = 0;
    *text = out;
    if (len) *len = k;
    return LORAC_OK;
}

int32_t bpe_vocab_size(const bpe_tokenizer *tok) { return tok ? tok->nids : 0; }

const char *bpe_token_bytes(const bpe_tokenizer *tok, int32_t id, size_t *len) {
    if (!tok || id < 0 || id >= tok->nids || tok->spans[id].off == UINT32_MAX) return NULL;
    if (len) *len = tok->spans[id].len;
    return (const char *)tok->bytes + tok->spans[id].off;
}

int32_t bpe_token_id(const bpe_tokenizer *tok, const char *token) {
    if (!tok || !token) return -1;
    size_t n = strlen(token), k = 0;
    uint8_t small[256], *buf = n <= sizeof small ? small : malloc(n);
    if (!buf) return -1;
    const uint8_t *u = (const uint8_t *)token;
    int32_t id = -1;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += tok_utf8_next(u + i, n - i, &cp);
        int b = tok_cp_byte(cp);
        if (b < 0) goto done;
        buf[k++] = (uint8_t)b;
    }
    id = k ? bpe_lookup_bytes(tok, buf, k) : -1;
done:
    if (buf != small) free(buf);
    return id;
}
