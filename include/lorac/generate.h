/* lorac/generate.h — decoding: greedy, sampling (temperature, top-k, top-p) and beam search,
 * for any causal LM that implements the small gen_model interface below.
 *
 * Two pieces, kept apart as in llama2.c:
 *   gen_model    the model seen through three callbacks (begin / step / reorder). The model owns
 *                its KV cache: one "slot" per sequence being decoded. Model weights are shared;
 *                the cache is per-request state that the model keeps behind ctx.
 *   gen_generate one request: a prompt in, the best hypothesis (or n-best) out. Beams, scores,
 *                token histories and finished hypotheses live in a decode state allocated by the
 *                call and freed before it returns; the model struct is never written.
 *
 * Reference semantics: Hugging Face transformers' generate() (checked against 4.40.2):
 *   - logits processors, in HF's order: repetition_penalty (CTRL: for every distinct token already
 *     in the sequence, PROMPT INCLUDED: x > 0 ? x/p : x*p, so x == 0 stays 0), no_repeat_ngram_size
 *     (a token that would complete an n-gram already present in prompt+generated gets -inf),
 *     min_new_tokens (every eos id gets -inf while fewer than min_new_tokens were generated);
 *     then, when sampling, the warpers: temperature (x/t), top-k (keep x >= the k-th largest value,
 *     so ties at the k-th value are all kept), top-p (sort ascending, remove the tokens whose
 *     cumulative probability is <= 1-top_p, always keep the most probable one; among tied values
 *     the higher token id is removed first; probabilities and sums in double).
 *   - greedy: processors on the raw logits, then argmax (the lowest id on ties).
 *   - sampling: processors and warpers on the raw logits, softmax, one draw from a lorac_rng
 *     seeded with cfg.seed at the start of each call (reproducible; not torch's stream).
 *   - beam search (GEN_BEAM_HF): processors run on log_softmax(logits) (so repetition penalty always
 *     multiplies), plus the beam's running score; the top max(2, 1+n_eos)*num_beams candidates,
 *     best first (the lowest flat index beam*V+token first on ties), are scanned: an eos
 *     candidate ranked within the first num_beams becomes a finished hypothesis with score
 *     sum_logprobs / generated_len^length_penalty, where generated_len counts the new tokens
 *     INCLUDING the eos; other candidates fill the num_beams running beams. At the start only beam 0
 *     is live (the others start at -1e9, as HF). early_stopping as HF: GEN_EARLY_HEURISTIC (HF's
 *     False: done when num_beams hypotheses exist and the best candidate's sum / cur_new_len^lp
 *     cannot beat the worst of them), GEN_EARLY_FIRST (True), GEN_EARLY_NEVER ("never"). After
 *     max_new_tokens, unfinished sentences add their running beams (length = max_new_tokens).
 *     The hypothesis list keeps num_beams; the result is sorted best first (on equal scores the
 *     later-added first, as HF's sorted()+pop()). One intended difference: with several eos ids HF
 *     prints every finished beam hypothesis ending in eos_token_id[0]; lorac keeps the id emitted.
 *   - beam search (GEN_BEAM_LORA): the LoRA paper's own beam search, microsoft/LoRA
 *     examples/NLG/src/gpt2_beam.py, which differs from HF's in five ways: (1) the processors run
 *     on the RAW logits and log_softmax comes after them (a banned n-gram's mass is
 *     renormalised away); (2) repetition penalty and no-repeat-ngram look only at the GENERATED
 *     tokens, not the prompt; (3) only the top num_beams candidates are kept per step and an eos
 *     candidate takes a beam slot, is scored sum_logprobs / generated_len^length_penalty
 *     (generated_len including the eos, computed in float32) and then that slot's score is set to
 *     -inf; (4) a single best is kept, replaced only by a strictly better score; (5) decoding runs
 *     for all max_new_tokens steps, then every live beam is scored at length max_new_tokens.
 *     lorac stops early only when no live beam can still beat the best (exact: log-probs are
 *     <= 0, so a beam's sum never rises), which does not change the result.
 *   gen_config_e2e() is the paper's E2E setting: GEN_BEAM_LORA, num_beams 10, length_penalty 0.8,
 *   no_repeat_ngram_size 4, repetition_penalty 1.0, max_new_tokens 64 (--eval_len 64), eos ids
 *   {50256, 628} (628 is GPT-2's "\n\n"; the README passes --eos_token_id 628 on top of the
 *   default 50256).
 *
 * Memory: a call allocates its decode state once (O(num_beams*(V + prompt + max_new_tokens)));
 * the model's begin() sizes its KV cache. Threads: decoding itself is serial and keeps no global
 * state, so requests on separate gen_model contexts may run in parallel; the model's step may use
 * OpenMP/BLAS. Determinism: results are bit-reproducible for a fixed model, config and seed.
 * Cost on top of the model (V = 50257, measured on this machine's CPU): about 0.4 ms per token
 * greedy, 1 ms sampling with top-k 50 + top-p, 3 ms per step for 10 beams.
 */
#ifndef LORAC_GENERATE_H
#define LORAC_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"
#include "lorac/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * The model interface. A model adapter (e.g. GPT-2 with its KV cache) fills one of these.
 * The decoder calls, for one request:
 *   begin(ctx, n_slots, max_len)          once: forget everything, make n_slots empty slots, each
 *                                         able to hold max_len tokens (prompt + generated);
 *   step(ctx, prompt, 1, n_prompt, logits) prefill slot 0 with the prompt;
 *   reorder(ctx, src, n_seq)              (beam search) slot i becomes a copy of what slot src[i]
 *                                         held before the call, for i < n_seq; src may repeat an
 *                                         index (a beam with two children); right after the
 *                                         prefill, src = {0,...,0} copies the prompt's cache into
 *                                         all num_beams slots;
 *   step(ctx, next, n_seq, 1, logits)     append one token to each of slots 0..n_seq-1;
 * and repeats the last two until done (reorder is skipped when src is the identity). Greedy and
 * sampling use one slot and never reorder.
 * gen_generate_many (several requests in one model step) also needs step_slots and reset_slot; it
 * then calls begin once, gives request g the slots g*num_beams.., prefills a request's first slot
 * with step_slots after reset_slot, and reorders every slot at once (slots that keep their content
 * have src[i] == i; a slot takes its source's length, so slots may hold different lengths).
 * ------------------------------------------------------------------------------------------- */
typedef struct gen_model {
    void *ctx;   /* the model and its per-request cache; the decoder only passes it back */
    int vocab;   /* V: logits per position */
    int max_len; /* the longest sequence the model accepts (e.g. n_positions); 0 = no limit */
    /* Discard all slots; make n_slots empty ones with room for max_len tokens each. */
    int (*begin)(void *ctx, int n_slots, int max_len, lorac_err *err);
    /* tokens is (n_seq, n_new): row s is appended to slot s (all n_seq slots hold the same
     * number of tokens before the call). logits is (n_seq, V): the logits after the LAST of the
     * n_new tokens of each slot. */
    int (*step)(void *ctx, const int32_t *tokens, int n_seq, int n_new, float *logits, lorac_err *err);
    /* For i < n_seq: slot i := old slot src[i] (0 <= src[i] < n_slots; slots >= n_seq are then
     * unspecified). A gather: src may repeat and overlap the targets, so copy through scratch
     * (or swap two cache buffers); only the first len tokens of each slot need copying. */
    int (*reorder)(void *ctx, const int32_t *src, int n_seq, lorac_err *err);
    /* Optional (NULL: gen_generate_many decodes one request at a time). tokens (n_seq, n_new): row
     * i is appended to the distinct slot slots[i], each at its own length; logits (n_seq, V) as
     * step's. A row's logits must not depend on the other rows of the call (batched decoding then
     * gives the bits of one request at a time). */
    int (*step_slots)(void *ctx, const int *slots, const int32_t *tokens, int n_seq, int n_new, float *logits,
                      lorac_err *err);
    /* Empties one slot (a new request's prompt follows); the others keep their content. */
    int (*reset_slot)(void *ctx, int slot, lorac_err *err);
} gen_model;

/* --------------------------------------------------------------------------------------------- */
typedef enum gen_early {
    GEN_EARLY_HEURISTIC = 0, /* HF early_stopping=False (its default) */
    GEN_EARLY_FIRST = 1,     /* HF early_stopping=True: stop at num_beams finished hypotheses */
    GEN_EARLY_NEVER = 2,     /* HF early_stopping="never": stop only when no beam can improve */
} gen_early;

typedef enum gen_beam_algo {
    GEN_BEAM_HF = 0,   /* transformers' beam search (default) */
    GEN_BEAM_LORA = 1, /* microsoft/LoRA gpt2_beam.py, the paper's E2E decoding */
} gen_beam_algo;

#define GEN_MAX_EOS 8

typedef struct gen_config {
    int max_new_tokens;       /* > 0; HF default 20 */
    int min_new_tokens;       /* eos banned until this many tokens were generated (0 = off) */
    int do_sample;            /* 0 greedy / beam, 1 sample (num_beams must be 1) */
    float temperature;        /* > 0; 1 = off (sampling only) */
    int top_k;                /* 0 = off (sampling only); HF's default is 50 */
    float top_p;              /* in (0,1]; 1 = off (sampling only) */
    float repetition_penalty; /* > 0; 1 = off */
    int no_repeat_ngram_size; /* 0 = off */
    /* NULL: no_repeat_ngram_size counts tokens (HF). Else (V entries, borrowed): 1 where a token
     * starts a word, and the rule counts words (gen_logits_no_repeat_word_ngram) */
    const uint8_t *ngram_word_start;
    int num_beams;            /* 1 = greedy or sampling */
    double length_penalty;    /* beam: score = sum_logprobs / generated_len^length_penalty */
    gen_early early_stopping; /* GEN_BEAM_HF only */
    gen_beam_algo beam_algo;
    int num_return;           /* hypotheses returned, 1..num_beams (1 for greedy, sampling, LORA) */
    int n_eos;                /* 0..GEN_MAX_EOS end-of-text ids; generation of a sequence ends */
    int32_t eos[GEN_MAX_EOS]; /* when it emits any of them */
    uint64_t seed;            /* sampling */
} gen_config;

/* HF's GenerationConfig defaults: greedy, max_new_tokens 20, no penalties, length_penalty 1,
 * early HEURISTIC, temperature 1, top_k 50 (HF applies it whenever do_sample is set; set 0 for
 * none), top_p 1, num_return 1, seed 0, beam_algo HF; one eos id (none when eos_id < 0). */
void gen_config_default(gen_config *cfg, int32_t eos_id);
/* The LoRA paper's E2E decoding (see the top of this file), for GPT-2's vocabulary. */
void gen_config_e2e(gen_config *cfg);
/* Checks ranges and combinations against a vocabulary of V tokens; a one-line message names the
 * offending option. */
int gen_config_check(const gen_config *cfg, int vocab, lorac_err *err);

/* One finished (or cut at max_new_tokens) hypothesis. */
typedef struct gen_hyp {
    int32_t *tokens; /* the generated tokens (prompt excluded); when finished, the last is the eos */
    int n_tokens;
    int finished;    /* 1 when ended by an eos id */
    /* beam: the final score (length-penalised, as above); greedy/sampling: the sum over steps of
     * the chosen token's log-probability under the processed (and warped) distribution */
    double score;
} gen_hyp;

typedef struct gen_result {
    gen_hyp *hyps; /* best first */
    int n_hyps;    /* cfg->num_return */
} gen_result;

/* Decodes one request. prompt (n_prompt >= 1 tokens, each < V) must fit with max_new_tokens in
 * model->max_len. On success fills *out (free with gen_result_free); on failure *out is empty. */
int gen_generate(const gen_model *model, const gen_config *cfg, const int32_t *prompt, int n_prompt,
                 gen_result *out, lorac_err *err);
void gen_result_free(gen_result *r);

/* Receives request i's result; gen_generate_many frees *r when it returns (move the result out by
 * copying *r and zeroing it). A non-zero return stops the decoding with that status. */
typedef int (*gen_emit_fn)(void *user, int i, gen_result *r, lorac_err *err);
/* Decodes n requests (prompts[i], n_prompts[i] tokens) and emits each result in request order, as n
 * calls of gen_generate would (the same tokens and scores, bit for bit, when the model's rows are
 * independent as step_slots promises). Beam search keeps up to `batch` requests in flight, one
 * model step for all their beams (batch x num_beams rows: the weights are read once per step for
 * all of them); when a request finishes, its slots take the next request (continuous batching).
 * batch 1, or a model without step_slots/reset_slot, decodes one request at a time (begin per
 * request, as gen_generate); greedy and sampling always do. */
int gen_generate_many(const gen_model *model, const gen_config *cfg, const int32_t *const *prompts, const int *n_prompts,
                      int n, int batch, gen_emit_fn emit, void *user, lorac_err *err);

/* A causal model's KV-cache session (lorac/model.h) as a gen_model: one request at a time per
 * session; with step_slots and reset_slot (gen_generate_many batches) only when
 * model_session_rows_exact (read here: attach adapters before). gen_model_eos sets cfg's eos ids for the model: its eos and, with a chat template,
 * <|im_end|> (which ends an assistant turn). */
void gen_model_session(gen_model *gm, const model *m, model_session *s);
void gen_model_eos(const model *m, gen_config *cfg);
/* The model's word starts for cfg.ngram_word_start (*out: V bytes, free()): 1 where a token's text
 * begins with whitespace or ASCII punctuation (or is empty), 0 where it continues a word (letters,
 * digits, bytes >= 0x80). */
int gen_model_word_starts(const model *m, uint8_t **out, lorac_err *err);
/* `generate --preset e2e` for any model: gen_config_e2e with the model's end-of-text ids (and its
 * "\n\n" when that is one token, as GPT-2's 628). The no-repeat 4-grams stay the paper's: tokens of
 * the generated text, on every vocabulary (docs/e2e.md measures the word rule against it on SmolLM2). */
void gen_model_e2e(const model *m, gen_config *cfg);

/* ---------------------------------------------------------------------------------------------
 * The logits processors, each on one row x (V), exposed for tests and for other decoders.
 * hist (n_hist) is the sequence the row continues.
 * ------------------------------------------------------------------------------------------- */
/* CTRL repetition penalty on the distinct tokens of hist: x > 0 ? x/p : x*p (x < 0 times p).
 * seen (V bytes) must be all zero on entry and is all zero again on return. */
void gen_logits_repetition_penalty(float *x, int V, const int32_t *hist, int n_hist, float penalty,
                                   uint8_t *seen);
/* Bans (-inf) every token that would complete an n-gram (n = ngram) already in hist. */
void gen_logits_no_repeat_ngram(float *x, int V, const int32_t *hist, int n_hist, int ngram);
/* The same rule over words: a word is a token with word_start[token] set and the tokens after it
 * without (hist[0] always starts one). A token that starts a word is banned when the last ngram-1
 * words of hist followed by it repeat an earlier run of ngram-1 whole words and the first token of
 * the word after them; tokens inside a word are never banned. word_start is (V). */
void gen_logits_no_repeat_word_ngram(float *x, int V, const int32_t *hist, int n_hist, int ngram,
                                     const uint8_t *word_start);
/* Bans every eos id while n_generated < min_new_tokens. */
void gen_logits_min_new_tokens(float *x, const int32_t *eos, int n_eos, int n_generated, int min_new_tokens);
void gen_logits_temperature(float *x, int V, float temperature);
/* Keeps the values >= the k-th largest (k = min(k, V)), the rest -inf. work is (V) floats. */
void gen_logits_top_k(float *x, int V, int k, float *work);
/* Nucleus filtering as HF's TopPLogitsWarper (min_tokens_to_keep = 1). work is (V) scratch. */
void gen_logits_top_p(float *x, int V, float top_p, uint64_t *work);
/* In place: x := x - logsumexp(x) (float exponentials summed in double; -inf stays -inf; a row
 * that is all -inf is left as it is). */
void gen_log_softmax(float *x, int V);
/* The index of the largest value, the lowest index on ties. */
int gen_argmax(const float *x, int V);
/* One draw from softmax(x) by the inverse CDF with u = lorac_rng_uniform(rng); -inf never drawn. */
int gen_sample(const float *x, int V, lorac_rng *rng);

#ifdef __cplusplus
}
#endif
#endif
