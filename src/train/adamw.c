/* AdamW over one flat buffer of trainable parameters, with torch.optim.AdamW's arithmetic. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/train.h"

int adamw_init(adamw_state *s, size_t n, lorac_err *err) {
    memset(s, 0, sizeof *s);
    size_t bytes;
    if (n == 0) return lorac_fail(err, LORAC_EINVAL, "adamw: no trainable parameters");
    if (lorac_size_mul(n, sizeof(float), &bytes))
        return lorac_fail(err, LORAC_ENOMEM, "adamw: %zu parameters overflow", n);
    s->m = calloc(n, sizeof(float));
    s->v = calloc(n, sizeof(float));
    if (!s->m || !s->v) {
        adamw_free(s);
        return lorac_fail(err, LORAC_ENOMEM, "adamw: out of memory for %zu parameters", n);
    }
    s->n = n;
    return LORAC_OK;
}

void adamw_free(adamw_state *s) {
    free(s->m);
    free(s->v);
    memset(s, 0, sizeof *s);
}

// params, grads, m, v are (n); decay_mask (n) or NULL
void adamw_update(adamw_state *s, const adamw_config *c, double lr, float *params, const float *grads,
                  const uint8_t *decay_mask) {
    s->t += 1;
    /* Scalars are formed in double as Python does and rounded to float once, as torch's CPU kernels
     * take them; the per-element operations then follow torch's order:
     *   param.mul_(1 - lr*wd); exp_avg.lerp_(grad, 1-beta1);
     *   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1-beta2);
     *   denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps);
     *   param.addcdiv_(exp_avg, denom, value=-step_size) */
    double b1 = c->beta1, b2 = c->beta2;
    double bc1 = 1.0 - pow(b1, (double)s->t);
    double bc2 = 1.0 - pow(b2, (double)s->t);
    const float decay = (float)(1.0 - lr * c->weight_decay);
    const float w1 = (float)(1.0 - b1);
    const float beta2 = (float)c->beta2;
    const float w2 = (float)(1.0 - b2);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float neg_step = (float)(-(lr / bc1));
    const float eps = (float)c->eps;
    float *m = s->m, *v = s->v;
    const long long n = (long long)s->n;
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (long long i = 0; i < n; i++) {
        float g = grads[i];
        float p = params[i];
        if (c->weight_decay != 0.0 && (!decay_mask || decay_mask[i])) p = p * decay;
        /* torch's lerp with weight < 0.5: self + weight * (end - self) */
        float mi = m[i] + w1 * (g - m[i]);
        float vi = v[i] * beta2 + w2 * g * g;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p = p + neg_step * (mi / denom);
        m[i] = mi;
        v[i] = vi;
        params[i] = p;
    }
}
