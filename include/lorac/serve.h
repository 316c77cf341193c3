/* lorac/serve.h — many adapters over one base, decoded together (continuous batching), for
 * `lorac serve` and any other front end.
 *
 * One engine thread owns the model: every step it admits queued requests into free KV-cache slots,
 * runs one chunk of the new prompts' prefill (several prompts in one batched step), then one batched
 * decode step of every running sequence whatever adapter each uses (the session's mixed-adapter
 * rows: the base matmul once for all rows, one gathered low-rank pair per adapter present), samples
 * each sequence's next token, and frees the slots of finished or abandoned sequences. Slots run at
 * their own lengths (model_session_step_slots).
 *
 * Requests are submitted from any thread and read back incrementally (serve_req_read: the text
 * generated so far, minus what a stop string might still claim and any incomplete UTF-8 tail), so a
 * front end can stream it. Adapters (PEFT directories, GGUF adapter files) are loaded and unloaded by name at run time:
 * an unloaded adapter takes no new requests and is freed when its last running request ends.
 *
 * Memory: the KV cache (max_batch slots of ctx tokens) is allocated once; a request holds its prompt,
 * at most max_tokens output tokens and their text; the queue holds at most max_queue requests.
 * Threads: every function here may be called from any thread (one mutex; the model is touched only
 * by the engine thread, and by adapter loading while the engine is between steps).
 * Errors: LORAC_OK or a status with a one-line message. Front ends map them: LORAC_ENOTFOUND (no such
 * adapter), LORAC_EINVAL (bad request: a prompt that does not fit the context), LORAC_EBUSY (queue
 * full), LORAC_ECLOSED (draining: no new requests).
 */
#ifndef LORAC_SERVE_H
#define LORAC_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "lorac/base.h"
#include "lorac/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct serve_opts {
    int max_batch;     /* sequences decoded together (KV-cache slots); default 8 */
    int max_queue;     /* requests waiting for a slot before submissions are refused; default 64 */
    int ctx;           /* tokens per sequence (prompt + output), <= model_max_len; default min(it, 2048) */
    int prefill_chunk; /* prompt tokens per sequence per step, so running streams wait for at most one
                          chunk; default 64 */
    int threads;       /* OpenMP/OpenBLAS threads of the engine thread; 0: every core */
} serve_opts;
/* Zeros: every field takes its default. */
void serve_opts_init(serve_opts *o);

#define SERVE_MAX_STOP 4
#define SERVE_MAX_LORA 8
/* Sampling as the OpenAI API: temperature 0 is greedy (the argmax, as `lorac generate`); otherwise
 * temperature, then top_k (0: off), then top_p (1: off), one draw from a generator seeded with seed
 * (as `lorac generate --sample`). Generation ends at the model's end-of-text (or end of turn), at a
 * stop string (not included in the text), or after max_tokens. */
typedef struct serve_params {
    int max_tokens;
    float temperature, top_p;
    int top_k;
    uint64_t seed;
    int n_stop;
    char stop[SERVE_MAX_STOP][64];
    int ignore_eos;    /* run to max_tokens past end-of-text (benchmarks; vLLM's and llama.cpp's field) */
} serve_params;
void serve_params_init(serve_params *p);

/* The adapter of a request: one loaded adapter by name, or a weighted sum of several (llama.cpp's
 * "lora": [{"name", "scale"}]); no name at all is the base. */
typedef struct serve_lora {
    const char *name;
    float scale;
} serve_lora;

typedef struct serve_engine serve_engine;
/* The engine over m (a causal LM without LoRA layers, which it must outlive); starts its thread. */
int serve_engine_new(model *m, const serve_opts *o, serve_engine **out, lorac_err *err);
/* Refuses new requests (LORAC_ECLOSED), finishes the queued and running ones, stops the thread. */
void serve_engine_drain(serve_engine *e);
/* Waits until every request has been released by its reader (a front end has sent all of each answer),
 * at most seconds; returns how many are still held. */
int serve_engine_wait_released(serve_engine *e, double seconds);
void serve_engine_free(serve_engine *e);
const model *serve_engine_model(const serve_engine *e);
int serve_engine_ctx(const serve_engine *e);

/* Loads the PEFT adapter directory path as name (names are unique; "" and names with '/' are refused). */
int serve_adapter_load(serve_engine *e, const char *name, const char *path, lorac_err *err);
/* Unloads name: new requests cannot use it; running ones finish with it. */
int serve_adapter_unload(serve_engine *e, const char *name, lorac_err *err);
/* The loaded adapters' names (malloc'd array of malloc'd strings; free with serve_names_free). */
int serve_adapter_names(serve_engine *e, char ***names, int *n);
void serve_names_free(char **names, int n);

typedef struct serve_req serve_req;
/* Queues a request: prompt (n tokens, >= 1; n + max_tokens <= ctx) over the adapters (n_lora 0: the
 * base). The caller holds one reference (serve_req_release). */
int serve_submit(serve_engine *e, const serve_lora *lora, int n_lora, const int32_t *prompt, int n, const serve_params *p,
                 serve_req **out, lorac_err *err);
/* Waits until the request has new text or has ended; copies the text not yet read to *delta
 * (malloc'd, *len bytes) and says whether it has ended. finish_reason: "stop" or "length" once it
 * has ended, NULL before; an engine error returns its status with the message in err. */
int serve_req_read(serve_req *r, char **delta, size_t *len, const char **finish_reason, lorac_err *err);
/* Tokens of the prompt and generated so far (usage). */
void serve_req_usage(serve_req *r, int *prompt_tokens, int *completion_tokens);
/* The client went away: the engine frees the request's slot at its next step. */
void serve_req_cancel(serve_req *r);
void serve_req_release(serve_req *r);

/* Counters for /health and tests: batched model steps, tokens generated, requests ended, the most
 * rows one step ran (prefill chunks count each token) and the most sequences one decode step ran. */
typedef struct serve_stats {
    int running, queued, adapters;
    long long steps, tokens, requests_done, max_step_rows, max_decode_seqs;
} serve_stats;
void serve_engine_stats(serve_engine *e, serve_stats *s);

#ifdef __cplusplus
}
#endif
#endif
