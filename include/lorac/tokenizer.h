/* lorac/tokenizer.h — GPT-2's byte-level BPE tokenizer, id for id.
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

#ifdef __cplusplus
}
#endif
#endif
