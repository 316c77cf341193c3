/* Internal to src/tok: UTF-8 scanning, character classes and the GPT-2 pre-tokenizer. */
#ifndef LORAC_TOK_INTERNAL_H
#define LORAC_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"
#include "lorac/tokenizer.h"

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
    int32_t byte_id[256];     /* the token of each single byte, -1 when none (dropped) */
    int32_t *special_ids;     /* tokens spelled "<|...|>", longest first */
    size_t nspecial;
    int ignore_merges;        /* a pre-token that is itself a token is not merged (HF ignore_merges, Llama 3) */
};

/* Id of the token whose bytes are s[0..n), or -1. */
int32_t bpe_lookup_bytes(const struct bpe_tokenizer *tok, const uint8_t *s, size_t n);
/* Slot of pair (a, b), or NULL. */
const bpe_pair_slot *bpe_lookup_pair(const struct bpe_tokenizer *tok, int32_t a, int32_t b);

/* ---- building a byte-level BPE from memory (bpe_load.c) ---- */

/* One vocabulary entry: the token's spelling. literal == 0: written in GPT-2's byte alphabet
 * ("Ġworld"); literal == 1: the bytes are the spelling itself (special tokens such as
 * "<|im_start|>" from GGUF CONTROL/USER_DEFINED types or tokenizer.json added_tokens).
 * s == NULL: no token has this id. */
typedef struct bpe_spelling {
    const char *s;
    size_t len;
    int literal;
} bpe_spelling;

/* One merge "a b" (both in the byte alphabet); line > 0 is its line in merges_src for messages,
 * else messages say "merge N". */
typedef struct bpe_merge_in {
    const char *a, *b;
    size_t alen, blen;
    size_t line;
} bpe_merge_in;

/* Builds the tables from nids spellings (index = id) and merges (highest priority first). Errors
 * name src (vocabulary problems) or merges_src (merge problems). all_bytes: every byte must have a
 * token; else a byte without one is dropped when encoding (what HF `tokenizers` and llama.cpp do:
 * SmolLM2's vocabulary lacks 21 bytes such as 0x04 and 0xFF). */
int bpe_build(const char *src, const bpe_spelling *vocab, int32_t nids, int all_bytes, const char *merges_src,
              const bpe_merge_in *merges, size_t nmerges, struct bpe_tokenizer **out, lorac_err *err);

/* A string for a one-line message: at most 40 bytes, control characters and quotes escaped. */
const char *tok_show(const char *s, size_t n, char buf[200]);

/* Pre-tokenizers of byte-level BPE vocabularies (pretok_gpt2.c, pretok_llama3.c). */
typedef enum tok_pretok {
    PRETOK_GPT2 = 0,   /* GPT-2's regex */
    PRETOK_SMOLLM = 1, /* every \p{N} character alone, then GPT-2's regex (StarCoder, SmolLM) */
    PRETOK_LLAMA3 = 2, /* Llama 3's regex: numbers in runs of 1-3, case-insensitive contractions */
    PRETOK_QWEN2 = 3,  /* Llama 3's regex with single digits */
} tok_pretok;

/* Llama 3 / Qwen2 pre-tokenizer (max_digits 3 / 1): like pretok_gpt2_next. */
size_t pretok_llama3_next(const uint8_t *s, size_t n, size_t pos, int max_digits);

/* Encodes s[0..n) (no special tokens) with pre-tokenizer pre, appending to a growing array
 * (*ids, *n_ids, *cap). */
int bpe_encode_append(const struct bpe_tokenizer *tok, tok_pretok pre, const uint8_t *s, size_t n, int32_t **ids,
                      size_t *n_ids, size_t *cap, lorac_err *err);

/* ---- the generic tokenizer (tok.c, tok_gguf.c, tok_hf.c, spm.c) ---- */

/* Token attributes: GGUF's tokenizer.ggml.token_type values. */
enum tok_attr {
    TOK_ATTR_NONE = 0, /* no token has this id */
    TOK_ATTR_NORMAL = 1,
    TOK_ATTR_UNKNOWN = 2,
    TOK_ATTR_CONTROL = 3, /* special: matched in text only with parse_special; skipped by skip_special */
    TOK_ATTR_USER = 4,    /* user-defined: always matched in text as itself */
    TOK_ATTR_UNUSED = 5,
    TOK_ATTR_BYTE = 6,    /* SentencePiece byte fallback "<0xXX>" */
};

typedef struct spm_model spm_model;

/* How a SentencePiece-style tokenizer adds its leading "▁" to each stretch of text. */
enum spm_prepend {
    SPM_PREPEND_NONE = 0,
    SPM_PREPEND_ALWAYS = 1,       /* every stretch (HF normalizer Prepend; GGUF add_space_prefix), even " x" */
    SPM_PREPEND_META_ALWAYS = 2,  /* HF Metaspace "always": unless it already starts with a space */
    SPM_PREPEND_META_FIRST = 3,   /* HF Metaspace "first": only the stretch at offset 0, unless it starts with a space */
};

struct tok {
    tok_kind kind;
    int32_t n_vocab;
    char *spell;             /* every spelling, NUL-terminated, back to back */
    uint32_t *spell_off;     /* [n_vocab]: offset in spell, UINT32_MAX: no token */
    uint32_t *spell_len;
    uint8_t *attr;           /* [n_vocab] enum tok_attr */
    int32_t *slots;          /* spelling -> id, open addressing */
    size_t mask;
    int32_t *added;          /* CONTROL, UNKNOWN and USER tokens matched in text, longest first */
    size_t n_added;
    uint8_t added_first[256]; /* 1 where some added token starts with this byte */
    int32_t bos, eos, unk, pad;
    int add_bos;
    bpe_tokenizer *bpe;      /* TOK_GPT2_BPE */
    tok_pretok pre;
    int add_prefix_space;    /* HF ByteLevel add_prefix_space */
    spm_model *spm;          /* TOK_SPM */
    char *chat_template;     /* NULL when none */
};

/* Allocates t's vocabulary tables from n spellings (s == NULL: no such id) and attributes
 * (attr == NULL: all NORMAL). Copies the strings. Repeated spellings keep the first id for
 * tok_find. */
int tok_set_vocab(struct tok *t, const char *src, const bpe_spelling *sp, int32_t n, const uint8_t *attr,
                  lorac_err *err);
/* After tok_set_vocab: the added-token list, and bos/eos/unk defaults checked to be in range. */
int tok_finish(struct tok *t, const char *src, lorac_err *err);
/* Sets chat_template (copy of s[0..n)); eos becomes the end-of-turn token it names. */
int tok_set_chat_template(struct tok *t, const char *s, size_t n, lorac_err *err);
/* A spelling's id in t, or -1. */
int32_t tok_find_n(const struct tok *t, const char *s, size_t n);
void tok_free_parts(struct tok *t);

/* SentencePiece-style model (spm.c). scores != NULL: merge by highest score of the merged piece
 * (llama.cpp on GGUF); else merges (pairs of ids, highest priority first) as HF's BPE does. */
int spm_build(const struct tok *t, const char *src, const float *scores, const int32_t (*merges)[2], size_t nmerges,
              int byte_fallback, int fuse_unk, int prepend, spm_model **out, lorac_err *err);
void spm_free(spm_model *m);
/* Encodes one stretch of text (between added tokens); at_start: it starts at offset 0. */
int spm_encode_append(const struct tok *t, const uint8_t *s, size_t n, int at_start, int32_t **ids, size_t *n_ids,
                      size_t *cap, lorac_err *err);
/* The tokenizer.json Split pattern of Llama 3 (max_digits 3) or Qwen2 (1), as tok_hf.c reads it. */
const char *tok_hf_split_pattern(int max_digits);
/* For tok_save.c: a SentencePiece-style model's scores (GGUF; NULL in merges mode) or pair table
 * (merges mode: rank = position in the merges), and its settings. */
typedef struct spm_parts {
    const float *scores;
    const bpe_pair_slot *pairs;
    size_t pair_mask;
    int byte_fallback, fuse_unk, prepend;
} spm_parts;
spm_parts spm_get_parts(const struct tok *t);
/* Appends to ids; grows the array like emit. */
int tok_push(int32_t **ids, size_t *n, size_t *cap, int32_t id);

#endif
