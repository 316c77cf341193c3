/* lorac/tokenizer.h — tokenizers, id for id with their references.
 *
 * Two layers. tok_* (below the bpe_* functions) is the generic tokenizer every model path uses:
 * GPT-2-style byte-level BPE (GPT-2, SmolLM2, Llama 3, Qwen2) and SentencePiece-style BPE (Llama 2,
 * TinyLlama), loaded from a GGUF file's tokenizer.ggml.* metadata, a Hugging Face tokenizer.json,
 * or GPT-2's vocab.json + merges.txt. bpe_* is GPT-2's tokenizer from its own files, documented
 * here first:
 *
 * Files: a vocabulary (JSON object token -> id: Hugging Face `vocab.json`, OpenAI `encoder.json`)
 * and a merges list (`merges.txt` / `vocab.bpe`: an optional "#version" line, then one "A B" merge
 * per line, highest priority first). Tokens are written in GPT-2's byte alphabet (each byte is a
 * printable code point, e.g. a space is "Ġ"); every one of the 256 bytes must have a token.
 *
 * Encoding is GPT-2's: the text is split by GPT-2's pre-tokenizer regex (contractions, letter /
 * number / punctuation runs with one leading space, whitespace rules) with the Unicode classes of
 * the Python `regex` module (see src/tok/unicode_gpt2.c for the version), then each piece is
 * merged by BPE exactly as encoder.py does (lowest-ranked pair first, all its occurrences left to
 * right). Any byte string is accepted: bytes that are not well-formed UTF-8 are taken one at a time
 * as punctuation-class characters (what Python's errors="surrogateescape" would give), so
 * bpe_decode(bpe_encode(x)) == x for every x. By default "<|endoftext|>" in the text is plain text,
 * as in GPT-2's encoder; bpe_encode_special maps the vocabulary's special tokens (those spelled
 * "<|...|>") to their ids.
 *
 * Memory: a loaded tokenizer is immutable; encode and decode allocate their results (free()).
 * Threads: any number of threads may encode and decode with one tokenizer at once.
 */
#ifndef LORAC_TOKENIZER_H
#define LORAC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"
#include "lorac/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bpe_tokenizer bpe_tokenizer;

/* Loads a vocabulary and a merges list. Errors name the file (and line): a missing file, a token
 * outside the byte alphabet, a repeated token or id, a malformed merges line, or a merge whose
 * parts or result are not in the vocabulary. */
int bpe_load(const char *vocab_path, const char *merges_path, bpe_tokenizer **out, lorac_err *err);
/* Loads DIR/vocab.json + DIR/merges.txt, or else DIR/encoder.json + DIR/vocab.bpe. */
int bpe_load_dir(const char *dir, bpe_tokenizer **out, lorac_err *err);
void bpe_free(bpe_tokenizer *tok);

/* Encodes text[0..len) into a malloc'd array *ids of *n ids (NULL and 0 for empty text). */
int bpe_encode(const bpe_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n,
               lorac_err *err);
/* The same, but special tokens ("<|endoftext|>") written in the text become their ids. */
int bpe_encode_special(const bpe_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                       size_t *n, lorac_err *err);
/* Decodes ids into malloc'd bytes *text (NUL-terminated; *len excludes the NUL). Fails
 * (LORAC_EINVAL) on an id that is not in the vocabulary. */
int bpe_decode(const bpe_tokenizer *tok, const int32_t *ids, size_t n, char **text, size_t *len,
               lorac_err *err);

/* One more than the largest id. */
int32_t bpe_vocab_size(const bpe_tokenizer *tok);
/* Id of a token written as in the vocabulary file ("Ġworld", "<|endoftext|>"), or -1. */
int32_t bpe_token_id(const bpe_tokenizer *tok, const char *token);
/* The bytes id decodes to (not NUL-terminated), or NULL if id is not in the vocabulary. */
const char *bpe_token_bytes(const bpe_tokenizer *tok, int32_t id, size_t *len);


/* ================= the generic tokenizer =================
 *
 * Kinds and what is matched (see docs/tokenizers.md for the details and the references):
 *  TOK_GPT2_BPE  byte-level BPE. GGUF: tokenizer.ggml.model = "gpt2" with tokens, merges and
 *                optional token_type; tokenizer.ggml.pre picks the pre-tokenizer: "gpt2"/"default"
 *                (or absent): GPT-2's regex; "smollm"/"starcoder"/"refact"/"codeshell": every digit
 *                alone, then GPT-2's regex; "llama3"/"llama-bpe"/"llama-v3": Llama 3's regex;
 *                "qwen2": Llama 3's regex with single digits. tokenizer.json: model.type "BPE" with
 *                a ByteLevel pre-tokenizer (alone, after Digits(individual_digits), or after a Split
 *                with Llama 3's / Qwen2's pattern).
 *  TOK_SPM       SentencePiece-style BPE over "▁"-escaped text with a leading "▁", byte fallback
 *                <0xXX> and <unk>. GGUF: tokenizer.ggml.model = "llama", tokens, scores,
 *                token_type (merges by highest score, as llama.cpp and sentencepiece do).
 *                tokenizer.json: model.type "BPE" with byte_fallback, normalizer Prepend("▁") +
 *                Replace(" ", "▁") or a Metaspace pre-tokenizer (merges by rank, as HF does).
 * Special tokens: GGUF token types CONTROL / UNKNOWN (and tokenizer.json added_tokens with
 * "special": true) are matched in the text only when parse_special is 1; USER_DEFINED tokens (and
 * added tokens with "special": false) always are. The longest match at the earliest position wins;
 * the text between them is encoded as above (each stretch gets its own leading "▁" for TOK_SPM).
 * Decoding gives raw bytes (HF would turn bytes that are not UTF-8 into U+FFFD) and, for TOK_SPM,
 * turns "▁" into spaces and drops one leading space (the one the encoder adds). So
 * decode(encode(x)) == x for every byte string with TOK_GPT2_BPE (unless the vocabulary lacks a
 * byte's token: such bytes are dropped, as HF and llama.cpp drop them); for TOK_SPM when special
 * tokens are not parsed, x has no "▁" and no character became <unk>, and (Metaspace) x does not
 * start with a space.
 * Memory: immutable after loading; encode/decode allocate their results (free()). Threads: any.
 */
typedef struct tok tok; /* any tokenizer lorac supports */
typedef enum tok_kind { TOK_GPT2_BPE = 0, TOK_SPM = 1 } tok_kind;

/* A Hugging Face directory (tokenizer.json, else vocab.json+merges.txt / encoder.json+vocab.bpe;
 * tokenizer_config.json beside them is read for bos/eos, add_bos_token and chat_template), a
 * tokenizer.json file, or a .gguf file (tokenizer.ggml.* metadata). */
int tok_load(const char *path, tok **out, lorac_err *err);
int tok_load_gguf(const gguf_file *g, const char *path_for_errors, tok **out, lorac_err *err);
/* GPT-2's vocabulary and merges files given one by one (as bpe_load). */
int tok_load_gpt2_files(const char *vocab_path, const char *merges_path, tok **out, lorac_err *err);
/* Writes t as DIR/tokenizer.json and DIR/tokenizer_config.json (each under a temporary name, then
 * renamed), in the form tok_load and transformers read back: what a model directory made from a
 * GGUF carries. A GGUF's SentencePiece scores become merges ranked by score, as transformers converts
 * them. */
int tok_save_hf(const tok *t, const char *dir, lorac_err *err);
void tok_free(tok *t);
tok_kind tok_get_kind(const tok *t);
int tok_vocab_size(const tok *t); /* one more than the largest id */
int tok_bos_id(const tok *t);     /* -1 if none */
/* -1 if none; for chat models the end-of-turn token when known: the chat template's <|im_end|>
 * (ChatML) or <|eot_id|> (Llama 3), or GGUF's tokenizer.ggml.eot_token_id. */
int tok_eos_id(const tok *t);
int tok_unk_id(const tok *t);     /* -1 if none */
int tok_pad_id(const tok *t);     /* -1 if none */
/* 1 when the tokenizer's config says a BOS is prepended (GGUF tokenizer.ggml.add_bos_token, default
 * 1 for "llama" and 0 for "gpt2"; tokenizer.json: a TemplateProcessing post-processor that starts
 * with a special token, or tokenizer_config.json's add_bos_token). */
int tok_add_bos(const tok *t);
/* parse_special: text like "<|im_start|>" maps to the special token's id (else it is plain text).
 * add_bos: prepend tok_bos_id (when there is one). ids: malloc'd (NULL when *n == 0). */
int tok_encode(const tok *t, const char *text, size_t len, int add_bos, int parse_special, int32_t **ids,
               size_t *n, lorac_err *err);
/* skip_special: CONTROL and UNKNOWN tokens give no text. text: malloc'd, NUL-terminated. Fails on
 * an id outside the vocabulary. */
int tok_decode(const tok *t, const int32_t *ids, size_t n, int skip_special, char **text, size_t *len,
               lorac_err *err);
const char *tok_piece(const tok *t, int32_t id); /* the vocabulary string, or NULL */
int32_t tok_find(const tok *t, const char *piece); /* -1 if absent */
/* 1 for CONTROL / UNKNOWN tokens (those skip_special drops). */
int tok_is_special(const tok *t, int32_t id);
/* The chat template from the metadata (GGUF tokenizer.chat_template, tokenizer_config.json's
 * chat_template), or NULL. */
const char *tok_chat_template(const tok *t);

/* ChatML, the template of SmolLM2-Instruct (and Qwen2): per message
 *   "<|im_start|>" role "\n" content "<|im_end|>\n"
 * then "<|im_start|>assistant\n" when add_generation_prompt. When the first message's role is not
 * "system" and the tokenizer's chat template inserts a default system message in that case (its
 * source contains "messages[0]['role'] != 'system'" and a literal '<|im_start|>system\n...<|im_end|>'
 * string, as SmolLM2's does: "You are a helpful AI assistant named SmolLM, trained by Hugging
 * Face"), that message comes first. Fails when the vocabulary lacks <|im_start|> or <|im_end|>, or
 * the chat template is not ChatML. *out: NUL-terminated, malloc'd. */
typedef struct tok_chat_msg {
    const char *role, *content;
} tok_chat_msg;
int tok_chat_format(const tok *t, const tok_chat_msg *msgs, int n, int add_generation_prompt, char **out,
                    lorac_err *err);
/* The default system prompt tok_chat_format inserts (malloc'd), or NULL when none. */
char *tok_chat_default_system(const tok *t);

/* ---------------------------------------------------------------- a model family's tokenizer */

/* One of the three kinds a model family names: GPT-2-style vocab.json + merges.txt read by
 * bpe_load_dir (GPT-2, RoBERTa), anything tok_load reads (tokenizer.json, a GGUF's metadata: the
 * Llama family), or WordPiece vocab.txt (BERT, lorac/wordpiece.h). */
typedef enum text_tok_kind { TEXT_TOK_BPE_FILES = 0, TEXT_TOK_ANY = 1, TEXT_TOK_WORDPIECE = 2 } text_tok_kind;
typedef struct text_tok text_tok;
int text_tok_load(const char *path, text_tok_kind kind, text_tok **out, lorac_err *err);
void text_tok_free(text_tok *t);
int32_t text_tok_id(const text_tok *t, const char *piece); /* -1 if absent (or piece NULL) */
int text_tok_vocab_size(const text_tok *t);
/* The tok_load tokenizer (bos/eos, add_bos, chat template), or NULL for the other kinds. */
const tok *text_tok_generic(const text_tok *t);
/* parse_special: special tokens spelled in the text map to their ids (not for WordPiece). */
int text_tok_encode(const text_tok *t, const char *text, size_t len, int parse_special, int32_t **ids, size_t *n,
                    lorac_err *err);
/* skip_special drops the special tokens (a BPE vocabulary's "<|...|>" ones) and the n_extra ids in
 * extra (e.g. a family's <s>, </s>, <pad>). WordPiece ids are not decoded. */
int text_tok_decode(const text_tok *t, const int32_t *ids, size_t n, int skip_special, const int32_t *extra, int n_extra,
                    char **text, size_t *len, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
