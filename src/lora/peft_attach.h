/* peft_attach.h — attaching a PEFT adapter's tensors to a model (internal, used by src/models). */
#ifndef LORAC_PEFT_ATTACH_H
#define LORAC_PEFT_ATTACH_H

#include <stdint.h>

#include "lorac/peft.h"

/* A PEFT adapter being attached to a model: which of its tensors the model has taken. family names
 * the model in messages ("GPT-2", "Llama"). Trained biases (bias "all", or "lora_only" with bias
 * tensors) and modules_to_save copies go through hf_attach_extras. */
typedef struct hf_attach {
    const peft_adapter *a;
    const char *family;
    char src[4200];   /* DIR/adapter_model.safetensors, or "adapter" when built in memory */
    int *used;        /* (a->n) */
} hf_attach;
int hf_attach_begin(hf_attach *h, const peft_adapter *a, const char *family, lorac_err *err);

/* One base tensor of a model that an adapter may replace: HF name ("transformer.h.0.ln_1.bias"),
 * the model's pointer to it, and its shape (d1 = 0: 1-D). */
typedef struct hf_slot {
    char name[160];
    const float **slot;  /* an f32 tensor's pointer ... */
    struct qmat *q;      /* ... or a matrix the model may hold quantized (Llama), else NULL */
    int64_t d0, d1;
} hf_slot;
/* The adapter's non-LoRA tensors (trained biases as bias "all"/"lora_only" allows, modules_to_save
 * copies; PEFT's "<module>.base_layer.bias" read as "<module>.bias"), checked against slots (name,
 * shape, what the config allows; every tensor of a modules_to_save module present) and copied
 * into *extra (NULL when there are none; its cfg is the adapter's). Marks them taken. */
int hf_attach_extras(hf_attach *h, const hf_slot *slots, size_t n_slots, peft_adapter **extra, lorac_err *err);
/* The slot an extra tensor replaces (index into slots), or -1. */
long hf_slot_find(const hf_slot *slots, size_t n_slots, const char *peft_name);
/* Copies the 2-D tensor name (shape (d0, d1) checked) into dst and marks it taken. */
int hf_attach_take(hf_attach *h, const char *name, int64_t d0, int64_t d1, float *dst, lorac_err *err);
/* Fails on the first tensor no hf_attach_take took. */
int hf_attach_check_all_used(const hf_attach *h, lorac_err *err);
void hf_attach_end(hf_attach *h);

#endif
