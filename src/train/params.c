/* The trainable tensors of a registry in one flat buffer (llm.c style): AdamW, clipping and the
 * checkpoint see a single vector; matrices decay, vectors (biases, norms) do not. */
#include <stdlib.h>
#include <string.h>

#include "lorac/train.h"

int train_params_init(train_params *f, lora_registry *reg, lorac_err *err) {
    memset(f, 0, sizeof *f);
    if (!(f->p = calloc(reg->n + 1, sizeof *f->p))) return lorac_fail(err, LORAC_ENOMEM, "train: out of memory");
    for (size_t i = 0; i < reg->n; i++)
        if (lora_param_requires_grad(&reg->params[i]) && reg->params[i].grad) {
            f->p[f->n++] = &reg->params[i];
            f->total += reg->params[i].numel;
        }
    f->params = malloc(f->total * sizeof(float) + 1);
    f->grads = malloc((f->total + TRAIN_PARAMS_TAIL) * sizeof(float));
    f->decay = malloc(f->total + 1);
    if (!f->params || !f->grads || !f->decay) return lorac_fail(err, LORAC_ENOMEM, "train: out of memory");
    for (size_t i = 0, off = 0; i < f->n; off += f->p[i]->numel, i++) memset(f->decay + off, f->p[i]->ndim == 2, f->p[i]->numel);
    return f->total ? LORAC_OK : lorac_fail(err, LORAC_EINVAL, "train: the model has nothing to train");
}

void train_params_free(train_params *f) {
    free(f->p);
    free(f->params);
    free(f->grads);
    free(f->decay);
    memset(f, 0, sizeof *f);
}

void train_params_gather(train_params *f, int with_grads) {
    size_t off = 0;
    for (size_t i = 0; i < f->n; i++) {
        memcpy(f->params + off, f->p[i]->data, f->p[i]->numel * sizeof(float));
        if (with_grads) memcpy(f->grads + off, f->p[i]->grad, f->p[i]->numel * sizeof(float));
        off += f->p[i]->numel;
    }
}

void train_params_scatter(const train_params *f) {
    size_t off = 0;
    for (size_t i = 0; i < f->n; i++) {
        memcpy(f->p[i]->data, f->params + off, f->p[i]->numel * sizeof(float));
        off += f->p[i]->numel;
    }
}

void train_params_add_grads(const train_params *f, float *dst, float w) {
    for (size_t i = 0, off = 0; i < f->n; off += f->p[i]->numel, i++) {
        const float *g = f->p[i]->grad;
        float *d = dst + off;
        for (size_t j = 0; j < f->p[i]->numel; j++) d[j] += w * g[j];
    }
}
