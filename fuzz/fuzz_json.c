/* libFuzzer target for the JSON reader and writer.
 * Any input: json_parse must return a status without crashing, leaking or reading out of bounds,
 * and fail with one line that names the input. When it parses, the document is written back with
 * the writer and read again, and must come back identical (types, keys, order, bytes, numbers). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/json.h"

static int depth_of(const json_value *v) {
    int d = 0;
    for (size_t i = 0; i < json_len(v); i++) {
        int c = depth_of(json_at(v, i));
        if (c > d) d = c;
    }
    return json_len(v) || json_kind(v) == JSON_ARRAY || json_kind(v) == JSON_OBJECT ? d + 1 : 0;
}

static void write_value(json_writer *w, const json_value *v) {
    long long i;
    switch (json_kind(v)) {
    case JSON_NULL: jw_null(w); break;
    case JSON_BOOL: jw_bool(w, json_bool(v)); break;
    case JSON_NUMBER:
        if (json_int_exact(v, &i)) jw_int(w, i);
        else jw_double(w, json_num(v));
        break;
    case JSON_STRING: jw_string_n(w, json_str(v), json_str_len(v)); break;
    case JSON_ARRAY:
        jw_array_begin(w);
        for (size_t k = 0; k < json_len(v); k++) write_value(w, json_at(v, k));
        jw_array_end(w);
        break;
    case JSON_OBJECT:
        jw_object_begin(w);
        for (size_t k = 0; k < json_len(v); k++) {
            /* keys with NUL cannot pass through jw_key's C string; they are not round-tripped */
            jw_key(w, json_key_at(v, k));
            write_value(w, json_at(v, k));
        }
        jw_object_end(w);
        break;
    }
}

static int has_nul_key(const json_value *v) {
    for (size_t k = 0; k < json_len(v); k++) {
        if (json_kind(v) == JSON_OBJECT && strlen(json_key_at(v, k)) != json_key_len_at(v, k)) return 1;
        if (has_nul_key(json_at(v, k))) return 1;
    }
    return 0;
}

static int same(const json_value *a, const json_value *b) {
    if (json_kind(a) != json_kind(b) || json_len(a) != json_len(b)) return 0;
    long long ia, ib;
    int ea, eb;
    switch (json_kind(a)) {
    case JSON_BOOL: return json_bool(a) == json_bool(b);
    case JSON_NUMBER:
        ea = json_int_exact(a, &ia);
        eb = json_int_exact(b, &ib);
        if (ea != eb) return 0;
        if (ea) return ia == ib; /* "-0" is written back as 0 */
        return memcmp(&(double){json_num(a)}, &(double){json_num(b)}, sizeof(double)) == 0;
    case JSON_STRING:
        return json_str_len(a) == json_str_len(b) && !memcmp(json_str(a), json_str(b), json_str_len(a));
    case JSON_OBJECT:
        for (size_t k = 0; k < json_len(a); k++) {
            if (json_key_len_at(a, k) != json_key_len_at(b, k) ||
                memcmp(json_key_at(a, k), json_key_at(b, k), json_key_len_at(a, k)))
                return 0;
        }
        /* json_get (hashed for large objects) finds the first member with a key */
        for (size_t k = 0; k < json_len(a); k++) {
            const char *key = json_key_at(a, k);
            size_t len = json_key_len_at(a, k), first = 0;
            if (strlen(key) != len) continue;
            while (json_key_len_at(a, first) != len || memcmp(json_key_at(a, first), key, len)) first++;
            if (json_get(a, key) != json_at(a, first)) return 0;
        }
        /* fall through */
    case JSON_ARRAY:
        for (size_t k = 0; k < json_len(a); k++)
            if (!same(json_at(a, k), json_at(b, k))) return 0;
        return 1;
    default: return 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_doc *doc = NULL;
    lorac_err err = {0};
    int rc = json_parse((const char *)data, size, "fuzz", 1, &doc, &err);
    if (rc) {
        if (doc || strncmp(err.msg, "fuzz:", 5) || strchr(err.msg, '\n')) abort();
        return 0;
    }
    const json_value *root = json_root(doc);
    if (depth_of(root) < 60 && !has_nul_key(root)) {
        for (int pretty = 0; pretty <= 1; pretty++) {
            char *buf = NULL;
            size_t n = 0;
            FILE *f = open_memstream(&buf, &n);
            if (!f) break;
            json_writer w;
            jw_init(&w, f, pretty);
            write_value(&w, root);
            if (fclose(f) || w.error) abort();
            json_doc *back = NULL;
            if (json_parse(buf, n, "again", 1, &back, &err) || !same(root, json_root(back))) abort();
            json_free(back);
            free(buf);
        }
    }
    json_free(doc);
    return 0;
}
