/* serve_internal.h — the engine's state, shared by src/serve's files (not public). */
#ifndef LORAC_SERVE_INTERNAL_H
#define LORAC_SERVE_INTERNAL_H

#include <pthread.h>

#include "lorac/generate.h"
#include "lorac/peft.h"
#include "lorac/serve.h"

/* A loaded adapter, or a weighted combination made for requests (name "", freed when unused). */
typedef struct serve_adapter {
    char name[128];
    char key[600];          /* a combination's "name:scale,..." */
    peft_adapter *a;        /* kept: combinations are made from it */
    int id;                 /* in the engine's adapter set */
    int refs;               /* requests (and combinations being made) holding it */
    int unloaded;           /* no new requests; removed from the set once refs is 0 */
    struct serve_adapter *next;
} serve_adapter;

enum { REQ_QUEUED = 0, REQ_PREFILL = 1, REQ_DECODE = 2 };

struct serve_req {
    serve_engine *e;
    int refs;                  /* mu */
    int32_t *prompt;
    int n_prompt;
    serve_params p;
    serve_adapter *ad;         /* NULL: the base */
    serve_req *qnext;          /* mu: the queue */
    /* engine */
    int slot, state, fed;      /* fed: prompt tokens in the cache */
    int32_t *out, next;        /* generated tokens (eos excluded), the last one (fed next step) */
    int n_out;
    lorac_rng rng;
    char *dec;                 /* the decoded output so far (text points here) */
    size_t dec_len, dec_cap;
    /* shared (mu) */
    int n_gen;                 /* generated tokens, eos included */
    char *text;                /* decoded text of out, cut at a stop string */
    size_t text_len, safe, taken; /* safe: may be read; taken: was read */
    const char *finish;        /* "stop", "length", "error"; NULL while running */
    int err_code, cancelled;
    char err_msg[1024];
};

struct serve_engine {
    model *m;
    model_adapter_set *set;
    model_session *ses;
    serve_opts o;
    gen_config gc;             /* eos ids */
    pthread_t thread;
    pthread_mutex_t mu, model_mu;
    pthread_cond_t cv_in, cv_out; /* work for the engine; news for readers */
    int inited, started, draining, collect;
    serve_req *qhead, *qtail;
    int nq;
    int live;                  /* requests not yet freed (mu) */
    serve_req **slots;         /* (max_batch) the request in each KV-cache slot */
    int *ids, ids_dirty;       /* (max_batch) each slot's adapter id in set */
    serve_adapter *ads;        /* mu */
    /* engine: one step's inputs and outputs */
    int *step_slots;
    int32_t *step_tok;         /* (max_batch·prefill_chunk) */
    float *logits, *fwork;     /* (max_batch, V), (V) */
    uint64_t *uwork;
    serve_stats st;
};

/* The adapter a request runs (NULL for the base), one reference taken; a new weighted combination is
 * made and added to the set. mu not held. */
int serve_adapter_acquire(serve_engine *e, const serve_lora *lora, int n, serve_adapter **out, lorac_err *err);
/* Drops a reference (mu held); an unused unloaded adapter is then collected by the engine. */
void serve_adapter_put(serve_engine *e, serve_adapter *a);
/* Removes unused unloaded adapters from the set (model_mu held, mu not). */
void serve_adapter_collect(serve_engine *e);
/* Frees every entry (the engine thread has stopped). */
void serve_adapter_free_all(serve_engine *e);

#endif
