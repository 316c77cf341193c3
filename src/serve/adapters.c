/* The engine's adapters by name: loaded and unloaded while requests run, and the weighted
 * combinations requests ask for ("lora": [{"name", "scale"}]), made once per distinct list and
 * kept while a request uses them. An unloaded adapter leaves the set only when no request holds
 * it, so a running request never loses its adapter. Locks as in engine.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve_internal.h"

/* mu held */
static serve_adapter *find_named(serve_engine *e, const char *name) {
    for (serve_adapter *a = e->ads; a; a = a->next)
        if (a->name[0] && !a->unloaded && !strcmp(a->name, name)) return a;
    return NULL;
}

void serve_adapter_put(serve_engine *e, serve_adapter *a) {
    if (!a || --a->refs > 0 || !a->unloaded) return;
    e->collect = 1;
    pthread_cond_broadcast(&e->cv_in);
}

static void entry_free(serve_adapter *a) {
    peft_adapter_free(a->a);
    free(a);
}

void serve_adapter_collect(serve_engine *e) {
    serve_adapter *gone = NULL;
    pthread_mutex_lock(&e->mu);
    for (serve_adapter **pp = &e->ads; *pp;) {
        serve_adapter *a = *pp;
        if (a->unloaded && a->refs <= 0) {
            *pp = a->next;
            a->next = gone;
            gone = a;
        } else {
            pp = &a->next;
        }
    }
    e->collect = 0;
    pthread_mutex_unlock(&e->mu);
    while (gone) {
        serve_adapter *a = gone;
        gone = a->next;
        model_adapter_set_remove(e->set, a->id, NULL);
        entry_free(a);
    }
}

void serve_adapter_free_all(serve_engine *e) {
    while (e->ads) {
        serve_adapter *a = e->ads;
        e->ads = a->next;
        entry_free(a);
    }
}

/* Adds a (taken over) to the set as a new entry: named, or a hidden combination (key). */
static int add_entry(serve_engine *e, const char *name, const char *key, peft_adapter *a, serve_adapter **out, lorac_err *err) {
    serve_adapter *s = calloc(1, sizeof *s);
    if (!s) {
        peft_adapter_free(a);
        return lorac_fail(err, LORAC_ENOMEM, "out of memory");
    }
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->key, sizeof s->key, "%s", key);
    s->a = a;
    pthread_mutex_lock(&e->model_mu);
    int rc = model_adapter_set_add(e->set, a, &s->id, err);
    pthread_mutex_unlock(&e->model_mu);
    if (rc) {
        entry_free(s);
        return rc;
    }
    pthread_mutex_lock(&e->mu);
    if (name[0] && find_named(e, name)) { /* loaded meanwhile under the same name */
        rc = lorac_fail(err, LORAC_EINVAL, "an adapter named '%s' is loaded already", name);
        s->unloaded = 1;
        e->collect = 1;
        pthread_cond_broadcast(&e->cv_in);
    }
    s->unloaded |= !name[0]; /* a combination goes when its last request ends */
    s->refs = out ? 1 : 0;
    s->next = e->ads;
    e->ads = s;
    pthread_mutex_unlock(&e->mu);
    if (out) *out = rc ? NULL : s;
    return rc;
}

int serve_adapter_load(serve_engine *e, const char *name, const char *path, lorac_err *err) {
    if (!name[0] || strlen(name) >= sizeof ((serve_adapter *)0)->name || strchr(name, '/') || strchr(name, ':') || strchr(name, ','))
        return lorac_fail(err, LORAC_EINVAL, "adapter name '%s': 1 to 127 characters, without '/', ':' or ','", name);
    pthread_mutex_lock(&e->mu);
    int taken = find_named(e, name) != NULL;
    pthread_mutex_unlock(&e->mu);
    if (taken) return lorac_fail(err, LORAC_EINVAL, "an adapter named '%s' is loaded already", name);
    peft_adapter *a = NULL;
    char warn[512] = "";
    int rc = model_adapter_read(model_adapter_set_model(e->set), path, &a, warn, sizeof warn, err); /* PEFT or GGUF */
    return rc ? rc : add_entry(e, name, "", a, NULL, err);
}

int serve_adapter_unload(serve_engine *e, const char *name, lorac_err *err) {
    pthread_mutex_lock(&e->mu);
    serve_adapter *a = find_named(e, name);
    if (a) {
        a->unloaded = 1;
        a->refs++;
        serve_adapter_put(e, a); /* collected now if no request holds it */
    }
    pthread_mutex_unlock(&e->mu);
    return a ? LORAC_OK : lorac_fail(err, LORAC_ENOTFOUND, "no adapter named '%s' is loaded", name);
}

int serve_adapter_names(serve_engine *e, char ***names, int *n) {
    pthread_mutex_lock(&e->mu);
    int k = 0, rc = LORAC_OK;
    for (serve_adapter *a = e->ads; a; a = a->next) k += a->name[0] && !a->unloaded;
    char **v = calloc((size_t)k + 1, sizeof *v);
    k = 0;
    for (serve_adapter *a = e->ads; v && a; a = a->next)
        if (a->name[0] && !a->unloaded && !(v[k++] = strdup(a->name))) rc = LORAC_ENOMEM;
    pthread_mutex_unlock(&e->mu);
    if (!v || rc) {
        serve_names_free(v, k);
        *names = NULL, *n = 0;
        return LORAC_ENOMEM;
    }
    *names = v, *n = k;
    return LORAC_OK;
}

void serve_names_free(char **names, int n) {
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

/* A weighted list: its existing combination, or a new one (PEFT's cat: Σ scale·ΔW exactly). */
static int acquire_combination(serve_engine *e, const serve_lora *lora, int n, serve_adapter **out, lorac_err *err) {
    char key[600] = "";
    serve_adapter *src[SERVE_MAX_LORA] = {0};
    int rc = LORAC_OK;
    if (n > SERVE_MAX_LORA) return lorac_fail(err, LORAC_EINVAL, "at most %d adapters in \"lora\"", SERVE_MAX_LORA);
    for (int i = 0; i < n; i++) {
        size_t at = strlen(key);
        snprintf(key + at, sizeof key - at, "%s%s:%.9g", i ? "," : "", lora[i].name, lora[i].scale);
    }
    pthread_mutex_lock(&e->mu);
    for (serve_adapter *a = e->ads; a && !*out; a = a->next)
        if (!a->name[0] && !strcmp(a->key, key)) a->refs++, *out = a;
    for (int i = 0; !*out && !rc && i < n; i++) {
        if (!(src[i] = find_named(e, lora[i].name))) rc = lorac_fail(err, LORAC_ENOTFOUND, "the model '%s' does not exist", lora[i].name);
        else src[i]->refs++; /* kept while the combination is made */
    }
    pthread_mutex_unlock(&e->mu);
    if (*out || rc) goto done;
    peft_adapter *ads[SERVE_MAX_LORA], *c = NULL;
    float w[SERVE_MAX_LORA];
    for (int i = 0; i < n; i++) ads[i] = src[i]->a, w[i] = lora[i].scale;
    rc = peft_adapter_combine(ads, w, n, PEFT_COMBINE_CAT, 0, &c, NULL, err);
    if (!rc) rc = add_entry(e, "", key, c, out, err);
done:
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < n; i++) serve_adapter_put(e, src[i]);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int serve_adapter_acquire(serve_engine *e, const serve_lora *lora, int n, serve_adapter **out, lorac_err *err) {
    *out = NULL;
    if (n <= 0) return LORAC_OK;
    if (n > 1 || lora[0].scale != 1.0f) return acquire_combination(e, lora, n, out, err);
    pthread_mutex_lock(&e->mu);
    serve_adapter *a = find_named(e, lora[0].name);
    if (a) a->refs++;
    pthread_mutex_unlock(&e->mu);
    if (!a) return lorac_fail(err, LORAC_ENOTFOUND, "the model '%s' does not exist", lora[0].name);
    *out = a;
    return LORAC_OK;
}
