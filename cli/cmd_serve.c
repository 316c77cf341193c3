/* lorac serve: many adapters over one base behind an OpenAI-compatible HTTP API, decoded together
 * by the serving engine (lorac/serve.h) behind libmicrohttpd (lorac/serve_http.h). SIGTERM or
 * SIGINT drains: no new connections or requests, the running and queued ones finish, then exit 0. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lorac/serve_http.h"

static void serve_usage(void) {
    printf("usage: lorac serve --model DIR|FILE.gguf [--adapter NAME=DIR|FILE.gguf]... [--host 127.0.0.1] [--port 8080]\n"
           "       [--max-batch 8] [--max-queue 64] [--ctx N] [--prefill-chunk 64] [--threads N] [--name NAME]\n"
           "  OpenAI's POST /v1/completions and /v1/chat/completions (\"stream\": true: server-sent events),\n"
           "  GET /v1/models, POST /v1/adapters {\"name\",\"path\"}, DELETE /v1/adapters/NAME, GET /health.\n"
           "  \"model\" picks the base (--name, default the model's file name) or an adapter (PEFT directory or GGUF file);\n"
           "  \"lora\": [{\"name\",\"scale\"}] adds weighted adapters. Every running request is decoded in one\n"
           "  batched step whatever its adapter (continuous batching, --max-batch sequences of --ctx tokens).\n"
           "  --port 0 takes a free port; the address is printed as \"lorac serve: listening on http://HOST:PORT\".\n");
}

#ifdef LORAC_HAVE_SERVE
/* The base's name: the last component of its path (a trailing '/' ignored). */
static void base_name(const char *path, char *out, size_t size) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && path[s - 1] != '/') s--;
    snprintf(out, size, "%.*s", (int)(n - s), path + s);
}

/* Waits for SIGTERM/SIGINT (blocked in every thread, so only this wait sees them), then drains. */
static void run_until_signal(serve_engine *e, serve_http *h, const sigset_t *set) {
    int sig = 0;
    sigwait(set, &sig);
    fprintf(stderr, "lorac serve: %s: draining\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    serve_http_quiesce(h);
    serve_engine_drain(e);
    /* the answers are generated; let the connections send them (a client that stopped reading
     * gets 60 s) before every connection is closed */
    int held = serve_engine_wait_released(e, 60.0);
    if (held) fprintf(stderr, "lorac serve: %d answers not read by their clients: closing\n", held);
    serve_http_stop(h);
}

static int load_adapters(serve_engine *e, const char *const *specs, int n) {
    lorac_err err = {0};
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(specs[i], '=');
        char name[128];
        if (!eq || eq == specs[i] || (size_t)(eq - specs[i]) >= sizeof name || !eq[1])
            return cli_error("--adapter '%s': NAME=DIR expected", specs[i]);
        snprintf(name, sizeof name, "%.*s", (int)(eq - specs[i]), specs[i]);
        if (serve_adapter_load(e, name, eq + 1, &err)) return cli_error("--adapter %s: %s", specs[i], err.msg);
    }
    return 0;
}
#endif

int cmd_serve(int argc, char **argv) {
    const char *model_arg = NULL, *host = "127.0.0.1", *name = NULL, *adapters[64];
    long port = 8080, batch = 0, queue = 0, ctx = 0, chunk = 0, threads = 0;
    int n_adapters = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            serve_usage();
            return 0;
        }
#define STR(flag, dst) else if (!strcmp(f, flag)) { if (cli_opt_str(argc, argv, &i, &dst)) return 2; }
#define INT(flag, dst) else if (!strcmp(f, flag)) { if (cli_opt_int(argc, argv, &i, &dst)) return 2; }
        STR("--model", model_arg)
        STR("--host", host)
        STR("--name", name)
        INT("--port", port)
        INT("--max-batch", batch)
        INT("--max-queue", queue)
        INT("--ctx", ctx)
        INT("--prefill-chunk", chunk)
        INT("--threads", threads)
#undef STR
#undef INT
        else if (!strcmp(f, "--adapter")) {
            if (n_adapters == 64) return cli_error("serve: at most 64 --adapter (load more with POST /v1/adapters)");
            if (cli_opt_str(argc, argv, &i, &adapters[n_adapters++])) return 2;
        } else {
            cli_error("serve: unknown option '%s' (see `lorac serve --help`)", f);
            return 2;
        }
    }
    if (!model_arg) {
        cli_error("serve: --model is required");
        return 2;
    }
    if (batch < 0 || batch > 256 || queue < 0 || queue > 100000 || ctx < 0 || chunk < 0 || chunk > 4096 || threads < 0 || port < 0 ||
        port > 65535)
        return cli_error("serve: --max-batch 1..256, --max-queue, --ctx, --prefill-chunk 1..4096, --threads >= 0, --port 0..65535");
#ifndef LORAC_HAVE_SERVE
    (void)host, (void)name, (void)adapters;
    return cli_error("serve: this lorac was built without libmicrohttpd (`make deps` installs libmicrohttpd-dev; then rebuild)");
#else
    model *m = NULL;
    serve_engine *e = NULL;
    serve_http *h = NULL;
    lorac_err err = {0};
    if (cli_open_model(model_arg, NULL, 0, NULL, &m)) return 1;
    serve_opts o;
    serve_opts_init(&o);
    o.max_batch = (int)batch, o.max_queue = (int)queue, o.ctx = (int)ctx, o.prefill_chunk = (int)chunk, o.threads = (int)threads;
    /* SIGTERM and SIGINT blocked before any thread starts: every thread inherits the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    char base[256];
    base_name(model_arg, base, sizeof base);
    serve_http_opts ho = {host, (int)port, name ? name : base, 0};
    ho.max_connections = (int)(queue > 0 ? queue : 64) + (int)(batch > 0 ? batch : 8) + 16;
    int rc = serve_engine_new(m, &o, &e, &err);
    if (rc) {
        model_free(m);
        return cli_fail(&err);
    }
    if (load_adapters(e, adapters, n_adapters)) rc = 1;
    else if (serve_http_start(e, &ho, &h, &err)) rc = cli_fail(&err);
    if (!rc) {
        printf("lorac serve: listening on http://%s:%d (model %s, %d adapters)\n", host, serve_http_port(h), ho.name, n_adapters);
        fflush(stdout);
        run_until_signal(e, h, &set);
        fprintf(stderr, "lorac serve: stopped\n");
    }
    serve_engine_free(e);
    model_free(m);
    return rc;
#endif
}
