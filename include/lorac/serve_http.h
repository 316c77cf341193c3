/* lorac/serve_http.h — an OpenAI-compatible HTTP API over a serving engine (lorac/serve.h), on
 * libmicrohttpd (a thread per connection; built only when libmicrohttpd is found).
 *
 *   POST /v1/completions         {"model", "prompt", "max_tokens", "temperature", "top_p", "top_k",
 *   POST /v1/chat/completions     "seed", "stop", "stream", "lora": [{"name", "scale"}]} / "messages"
 *                                 (the model's chat template); "stream": true answers with
 *                                 server-sent events ending in "data: [DONE]"
 *   GET  /v1/models              the base (named after its file) and every loaded adapter
 *   POST /v1/adapters            {"name", "path"}: load a PEFT adapter directory
 *   DELETE /v1/adapters/NAME     unload it (running requests finish with it)
 *   GET  /health                 {"status": "ok", ...}; 503 while draining
 * "model" names the base or an adapter; "lora" adds weighted adapters (llama.cpp's field). Errors
 * are OpenAI's {"error": {"message", "type", "param", "code"}} with 400 (malformed JSON, a field of
 * the wrong type or range, a prompt longer than the context), 404 (an unknown model or path), 405,
 * 409 (an adapter name taken), 413 (a body over 1 MiB), 429 (the queue is full), 503 (draining).
 */
#ifndef LORAC_SERVE_HTTP_H
#define LORAC_SERVE_HTTP_H

#include "lorac/serve.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct serve_http_opts {
    const char *host;     /* an IPv4 address ("localhost" is 127.0.0.1); NULL: 127.0.0.1 */
    int port;             /* 0: any free port (serve_http_port says which) */
    const char *name;     /* the base model's name in "model" and /v1/models */
    int max_connections;  /* 0: max_queue + max_batch + 16 */
} serve_http_opts;

typedef struct serve_http serve_http;
int serve_http_start(serve_engine *e, const serve_http_opts *o, serve_http **out, lorac_err *err);
int serve_http_port(const serve_http *h);
/* Stops accepting connections (a drain begins); open ones are still served. */
void serve_http_quiesce(serve_http *h);
/* Closes every connection (after serve_engine_drain, streams have ended) and frees h. */
void serve_http_stop(serve_http *h);

#ifdef __cplusplus
}
#endif
#endif
