/* Typed fields of a config object, with one-line errors that name the file and the key. */
#include "lorac/json.h"

static int fail_once(int *rc, lorac_err *err, const char *path, const char *key, const char *what) {
    if (!*rc) *rc = lorac_fail(err, LORAC_EFORMAT, "%s: \"%s\" must be %s", path, key, what);
    return 0;
}

long long json_field_int(const json_value *o, const char *key, const char *alias, long long def, const char *path, int *rc,
                         lorac_err *err) {
    const json_value *v = json_get(o, key);
    if (!v && alias) v = json_get(o, key = alias);
    if (!v || json_kind(v) == JSON_NULL) return def;
    long long x = 0;
    if (!json_int_exact(v, &x)) return fail_once(rc, err, path, key, "an integer"), def;
    return x;
}

double json_field_num(const json_value *o, const char *key, double def, const char *path, int *rc, lorac_err *err) {
    const json_value *v = json_get(o, key);
    if (!v || json_kind(v) == JSON_NULL) return def;
    if (json_kind(v) != JSON_NUMBER) return fail_once(rc, err, path, key, "a number"), def;
    return json_num(v);
}

int json_field_bool(const json_value *o, const char *key, int def, const char *path, int *rc, lorac_err *err) {
    const json_value *v = json_get(o, key);
    if (!v || json_kind(v) == JSON_NULL) return def;
    if (json_kind(v) != JSON_BOOL) return fail_once(rc, err, path, key, "true or false"), def;
    return json_bool(v);
}

float json_field_prob(const json_value *o, const char *key, double def, const char *path, int *rc, lorac_err *err) {
    double p = json_field_num(o, key, def, path, rc, err);
    if (!(p >= 0.0 && p < 1.0)) return fail_once(rc, err, path, key, "a number in [0, 1)"), (float)def;
    return (float)p;
}
