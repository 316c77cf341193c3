/* Internal to src/tok: UTF-8 scanning, character classes and the GPT-2 pre-tokenizer. */
#ifndef LORAC_TOK_INTERNAL_H
#define LORAC_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Character classes of the GPT-2 pattern: \p{L}, \p{N}, \s, and everything else. */
enum tok_class { TOK_OTHER = 0, TOK_LETTER = 1, TOK_NUMBER = 2, TOK_SPACE = 3 };

typedef struct tok_class_range {
    uint32_t lo, hi; /* inclusive */
    uint8_t cls;
} tok_class_range;

/* Generated tables (unicode_gpt2.c). */
extern const uint8_t tok_ascii_class[128];
extern const tok_class_range tok_class_ranges[];
extern const size_t tok_class_nranges;

/* Class of code point cp (TOK_OTHER for unassigned ones and anything past U+10FFFF). */
int tok_class_of(uint32_t cp);

/* Decodes one character at s[0..n), n >= 1: sets *cp and returns its length (1..4). A byte that
 * does not start a well-formed UTF-8 sequence (overlong, surrogate, past U+10FFFF, truncated, stray
 * continuation) is one character of its own with *cp = 0xDC00 + byte, as Python's
 * errors="surrogateescape" decodes it; such a character is in class TOK_OTHER. */
size_t tok_utf8_next(const uint8_t *s, size_t n, uint32_t *cp);

/* GPT-2 pre-tokenizer: returns the end (exclusive) of the pre-token that starts at s[pos],
 * pos < n. Repeated from pos = 0, it splits s[0..n) exactly as GPT-2's regex findall does. */
size_t pretok_gpt2_next(const uint8_t *s, size_t n, size_t pos);

/* ---- byte-level BPE (bpe_load.c, bpe.c) ---- */

/* GPT-2's byte alphabet: byte b is written as code point tok_byte_cp(b) (printable bytes as
 * themselves, the other 68 as U+0100..U+0143 in byte order). */
uint32_t tok_byte_cp(uint8_t b);
/* The byte written as cp, or -1 if cp is not in the alphabet. */
int tok_cp_byte(uint32_t cp);

/* Pair table: (left id, right id) -> (rank, merged id), open addressing. */
typedef struct bpe_pair_slot {
    uint64_t key; /* (left << 32) | right; BPE_EMPTY_KEY when free */
    int32_t rank;
    int32_t merged;
} bpe_pair_slot;
#define BPE_EMPTY_KEY UINT64_MAX
#define BPE_MAX_ID ((1 << 24) - 1) /* ids are dense-ish; this bounds the per-id tables */

typedef struct bpe_token_span {
    uint32_t off, len; /* bytes of the token in tok->bytes; off == UINT32_MAX: no such id */
} bpe_token_span;

struct bpe_tokenizer {
    int32_t nids;             /* largest id + 1 */
    bpe_token_span *spans;    /* [nids] */
    uint8_t *bytes;           /* every token's bytes, back to back */
    int32_t *str_slots;       /* bytes -> id, open addressing: an id or -1 */
    size_t str_mask;
    bpe_pair_slot *pair_slots;
    size_t pair_mask;
    size_t nmerges;
    int32_t byte_id[256];     /* the token of each single byte */
    int32_t *special_ids;     /* tokens spelled "<|...|>", longest first */
    size_t nspecial;
};

/* Id of the token whose bytes are s[0..n), or -1. */
int32_t bpe_lookup_bytes(const struct bpe_tokenizer *tok, const uint8_t *s, size_t n);
/* Slot of pair (a, b), or NULL. */
const bpe_pair_slot *bpe_lookup_pair(const struct bpe_tokenizer *tok, int32_t a, int32_t b);

#endif
